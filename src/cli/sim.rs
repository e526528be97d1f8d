//! `biofeedd sim serial`: play a recording as a serial device on a pseudo-terminal.

use super::daemon::replay_config;
use super::InputArgs;
use anyhow::Context;
use biofeedd::ingest::replay;
use biofeedd::sim::{DeviceFrames, Impairments, SimPort, SimProtocol};
use clap::Args;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Args)]
pub struct SerialSimArgs {
    /// The protocol the simulated device speaks: line, cyton or framed.
    #[arg(long)]
    pub protocol: SimProtocol,
    #[command(flatten)]
    pub input: InputArgs,
    /// Play N times faster than real time.
    #[arg(long, default_value_t = 1.0, value_parser = speed)]
    pub speed: f64,
    /// Drop each frame with this probability (the device's counter still advances).
    #[arg(long, default_value_t = 0.0, value_parser = impairment)]
    pub loss: f64,
    /// Put 1–40 random bytes before a frame with this probability.
    #[arg(long, default_value_t = 0.0, value_parser = impairment)]
    pub garbage: f64,
    /// Keep a symlink here pointing at the pseudo-terminal, so a config can name a stable path.
    #[arg(long)]
    pub link: Option<PathBuf>,
}

fn speed(text: &str) -> Result<f64, String> {
    biofeedd::bounds::REPLAY_SPEED.parse(text)
}

fn impairment(text: &str) -> Result<f64, String> {
    biofeedd::bounds::IMPAIRMENT.parse(text)
}

pub fn serial(args: SerialSimArgs) -> anyhow::Result<()> {
    let config = replay_config(&args.input, None)?;
    let source = config.sensors[0].source.as_replay().context("sim reads a recording")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let stream = replay::open(source, &source.path, now)?;
    let frames = DeviceFrames::new(args.protocol, stream.specs())
        .map_err(|why| anyhow::anyhow!("{}: {why}", args.input.input.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(async {
        let port = SimPort::open(args.link.as_deref()).context("cannot create the pseudo-terminal")?;
        // The device path on stdout alone, for scripts; the rest on stderr.
        println!("{}", port.path().display());
        if let Some(link) = &args.link {
            eprintln!("sim: {} -> {}", link.display(), port.path().display());
        }
        eprintln!(
            "sim: {} device playing {} at {}x; Ctrl-C unplugs it",
            protocol_name(args.protocol),
            args.input.input.display(),
            args.speed
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Ctrl-C, `kill` or a closed terminal all unplug the device and remove the link: a stale
        // link would later point at whatever terminal gets this pty number.
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hangup.recv() => {}
            }
            let _ = stop.send(true);
        });
        let impairments = Impairments::new(args.loss, args.garbage, now.to_bits());
        let report = port.play(stream, frames, args.speed, impairments, stopped).await?;
        eprintln!(
            "sim: {} frames sent, {} lost on purpose, {} after garbage, {} bytes nobody read",
            report.frames, report.lost_frames, report.garbled_frames, report.unread_bytes
        );
        Ok(())
    })
}

fn protocol_name(p: SimProtocol) -> &'static str {
    match p {
        SimProtocol::Line => "line",
        SimProtocol::Cyton => "cyton",
        SimProtocol::Framed => "framed",
    }
}
