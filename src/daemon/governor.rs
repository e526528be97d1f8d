//! The governor's task: every `[governor] interval_s` it samples the machine and the pipeline,
//! updates the pressure level, and on a change logs it once, sends the level's [`Plan`] to the
//! pipeline through the control channel and records the level for the `metrics` report and the
//! retained status.
//!
//! Sampling reads a dozen small `/proc` and sysfs files (≈ 0.3 ms, see benches/governor.rs): on
//! tokio's thread that is less than a log line's worth of blocking, so it is not moved to a
//! blocking thread. Sending a plan never blocks (the control queue is unbounded and the
//! pipeline drains it at the top of its next loop, waking for it at once), so a new level
//! reaches the pipeline well within one hop.

use crate::control::ControlHandle;
use crate::governor::{GovernorConfig, Level, PipelineLoad, PolicyConfig, Pressure, Sampler};
use crate::metrics::{PressureState, SharedMetrics};
use crate::sink::queue::DepthGauge;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// What the governor task needs.
pub struct Governor {
    pub config: GovernorConfig,
    pub policy: PolicyConfig,
    /// `--pressure`: hold this level whatever the readings say.
    pub pinned: Option<Level>,
    pub control: ControlHandle,
    pub metrics: SharedMetrics,
    pub queue: DepthGauge,
    /// New thresholds from a reload (SIGHUP); the sampling settings stay as started.
    pub retune: watch::Receiver<GovernorConfig>,
}

impl Governor {
    /// Run until `shutdown` turns true or the pipeline is gone.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Governor { config, policy, pinned, control, metrics, queue, mut retune } = self;
        let mut sampler = Sampler::new(&config);
        let mut pressure = Pressure::new(&config, Instant::now());
        if let Some(level) = pinned {
            pressure.pin(level);
        }
        let period = Duration::from_secs_f64(config.interval_s);
        let mut retune_open = true;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
                changed = retune.changed(), if retune_open => {
                    match changed {
                        Ok(()) => {
                            pressure.retune(&retune.borrow_and_update());
                            tracing::debug!("governor: thresholds reloaded");
                        }
                        // The daemon is going away; sampling goes on until shutdown says stop.
                        Err(_) => retune_open = false,
                    }
                    continue;
                }
            }
            let load = {
                let m = metrics.lock().expect("metrics lock");
                let c = &m.counters;
                PipelineLoad {
                    windows: c.windows,
                    // The local cascade's misses only: an offload time-out says the workers are
                    // missing or slow, not that this hub is short of CPU, and must not push it
                    // towards critical (which offloads more).
                    deadline_misses: c.fallbacks,
                    queue_depth: queue.depth(),
                }
            };
            let reading = sampler.sample(load);
            let Some(change) = pressure.update(&reading, Instant::now()) else { continue };
            tracing::info!("governor: pressure {} → {}: {}", change.from, change.to, change.reason);
            metrics.lock().expect("metrics lock").counters.pressure_changes += 1;
            if !apply(&policy, change.to, false, change.reason, &control, &metrics) {
                return;
            }
        }
    }
}

/// The first plan, queued before the pipeline starts so that its first window runs under it:
/// the pinned level's (`--pressure`), or normal's until the first samples say otherwise.
pub fn start(policy: &PolicyConfig, pinned: Option<Level>, control: &ControlHandle, metrics: &SharedMetrics) {
    let (level, reason) = match pinned {
        Some(level) => {
            tracing::info!("governor: pressure pinned at {level} (--pressure)");
            (level, "pinned with --pressure")
        }
        None => (Level::Normal, "start"),
    };
    // Before the pipeline runs, its queue is always there to take the message.
    apply(policy, level, pinned.is_some(), reason.to_string(), control, metrics);
}

/// Send `level`'s plan to the pipeline and record the level; `false` when the pipeline is gone.
fn apply(
    policy: &PolicyConfig,
    level: Level,
    pinned: bool,
    reason: String,
    control: &ControlHandle,
    metrics: &SharedMetrics,
) -> bool {
    let plan = policy.plan(level);
    let shed = plan.shed.clone();
    if control.send(crate::control::Control::SetPlan(plan)).is_err() {
        return false;
    }
    metrics.lock().expect("metrics lock").pressure = Some(PressureState { level, pinned, reason, shed });
    true
}
