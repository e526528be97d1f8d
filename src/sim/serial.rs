//! `biofeedd sim serial`: a recording played as a serial device on a pseudo-terminal.
//!
//! The simulator owns the pty's master side; the daemon opens the slave by its path (or by the
//! symlink `--link` keeps, as socat does). Stopping the simulator closes the master, which the
//! daemon sees as an unplug; starting it again with the same link is a replug. OpenBCI's text
//! protocol is answered as a Cyton board would (`v` → banner ending `$$$`, `b` starts, `s` stops).

use super::frames::{DeviceFrames, Impairments, SimReport};
use crate::ingest::replay::{ReadError, RecordingStream, Segment};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_serial::SerialPort;
use tokio_serial::SerialStream;

/// Recording time played per step.
const STEP_S: f64 = 0.01;
/// How long a write may wait for the reader; past it the bytes are dropped, as a device with no
/// host listening loses them, instead of piling up for the next reader. Long enough that a
/// reader merely slowed by a loaded machine (two cores shared with a build) loses nothing: at
/// 50 ms a CI run under load once saw a dropped line.
const WRITE_PATIENCE: Duration = Duration::from_millis(500);

/// A pseudo-terminal standing in for a device, optionally reachable through a symlink.
pub struct SimPort {
    master: SerialStream,
    path: PathBuf,
    link: Option<PathBuf>,
}

impl SimPort {
    /// Create the pty and, with `link`, point a symlink there at its slave (replacing an old
    /// symlink; refusing to replace anything else).
    pub fn open(link: Option<&Path>) -> std::io::Result<SimPort> {
        let (master, slave) = SerialStream::pair()?;
        let path =
            PathBuf::from(slave.name().ok_or_else(|| std::io::Error::other("the pseudo-terminal has no device path"))?);
        if let Some(link) = link {
            match std::fs::symlink_metadata(link) {
                Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(link)?,
                Ok(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a symlink; not replacing it", link.display()),
                    ))
                }
                Err(_) => {}
            }
            std::os::unix::fs::symlink(&path, link)?;
        }
        // The slave is not kept open: a daemon's exclusive open (TIOCEXCL) then ends with its last
        // close, so a restarted daemon can open the device again. Until one does, the master
        // reads EIO, which the command loop waits out.
        drop(slave);
        Ok(SimPort { master, path, link: link.map(Path::to_path_buf) })
    }

    /// The slave's device path (what a config names, or the link points to).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Play `stream` as `frames` until it ends or `shutdown`; then close (an unplug).
    pub async fn play(
        mut self,
        mut stream: RecordingStream,
        mut frames: DeviceFrames,
        speed: f64,
        mut impairments: Impairments,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<SimReport, ReadError> {
        let mut report = SimReport::default();
        let Some(t0) = stream.next_time()? else { return Ok(report) };
        let mut batch: Vec<Vec<Segment>> = vec![Vec::new(); stream.specs().len()];
        let mut bytes = Vec::new();
        let mut commands = [0u8; 64];
        let mut streaming = !frames.waits_for_start();
        let mut host_start = tokio::time::Instant::now();
        let mut step = 0u64;
        loop {
            step += 1;
            let t_end = t0 + step as f64 * STEP_S;
            let due = host_start + Duration::from_secs_f64(step as f64 * STEP_S / speed);
            // Between steps: answer commands (the Cyton's `v`, `b`, `s`) or stop.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    _ = stopped(&mut shutdown) => return Ok(report),
                    read = self.master.read(&mut commands) => {
                        let n = match read { Ok(n) => n, Err(_) => { tokio::time::sleep(Duration::from_millis(5)).await; continue } };
                        for &c in &commands[..n] {
                            match frames.command(c, &mut bytes) {
                                Some(true) if !streaming => {
                                    streaming = true;
                                    // The recording went on while the board was idle; pace the
                                    // steps still to come from now.
                                    let played = Duration::from_secs_f64(step as f64 * STEP_S / speed);
                                    host_start = tokio::time::Instant::now().checked_sub(played).unwrap_or(host_start);
                                }
                                Some(false) => streaming = false,
                                _ => {}
                            }
                        }
                        self.write(&mut bytes, &mut report).await;
                    }
                }
            }
            stream.read_before(t_end, &mut batch)?;
            if streaming {
                frames.encode(&batch, &mut impairments, &mut bytes, &mut report);
                self.write(&mut bytes, &mut report).await;
            }
            for b in &mut batch {
                b.clear();
            }
            if stream.next_time()?.is_none() {
                return Ok(report);
            }
        }
    }

    async fn write(&mut self, bytes: &mut Vec<u8>, report: &mut SimReport) {
        if bytes.is_empty() {
            return;
        }
        match tokio::time::timeout(WRITE_PATIENCE, self.master.write_all(bytes)).await {
            Ok(Ok(())) => {}
            _ => report.unread_bytes += bytes.len() as u64,
        }
        bytes.clear();
    }
}

impl Drop for SimPort {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            // Only our own link: another simulator may have replaced it since.
            if std::fs::read_link(link).is_ok_and(|target| target == self.path) {
                let _ = std::fs::remove_file(link);
            }
        }
    }
}

/// Resolves when `shutdown` turns true (or its sender is gone). Unlike `wait_for` itself it holds
/// no lock guard, so the future stays `Send` across the other branches' awaits.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
