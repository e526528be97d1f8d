//! The resource governor's pure core: it watches what bounds the daemon on a small board and
//! says how hard the machine is pressed.
//!
//! - `sample`: a [`Sampler`] takes a [`Reading`] every `[governor] interval_s` — the machine's
//!   CPU and available memory, the daemon's own CPU and RSS, the load average, the hottest
//!   thermal zone, the cgroup's CPU use against its quota and memory against its limit, and the
//!   pipeline's deadline misses ([`PipelineLoad`], counters the caller passes in). Cheap enough
//!   for every tick; a file it cannot read is left out, never a panic.
//! - `pressure`: [`Pressure`] turns readings into a [`Level`] (normal, constrained, critical)
//!   with hysteresis: up only after `rise_samples` worse samples in a row, straight to the worst
//!   level seen; down one level at a time, only after `dwell_s` at the level and `dwell_s` of
//!   every reading clear of its thresholds by `release_margin_percent`. Each switch is a
//!   [`Change`] naming the reading that decided it. A level can be pinned (`--pressure`).
//! - `policy`: `[policy]`, what each level means for the pipeline (variants, offload, stages
//!   run here, work shed), as the [`Plan`] sent to it.
//! - `tiers`: `[tiers]`, each subject's latency [`Tier`] and its deadline.
//! - `config`: [`GovernorConfig`], the `[governor]` table.
//!
//! Nothing here spawns or acts: the tokio task that samples on a tick and sends each new plan to
//! the pipeline through the control channel is `daemon::governor`.

pub mod config;
pub mod policy;
pub mod pressure;
pub mod sample;
pub mod tiers;

pub use config::GovernorConfig;
pub use policy::{Plan, PolicyConfig, Shed};
pub use pressure::{Change, Level, Pressure};
pub use sample::{PipelineLoad, Reading, Sampler};
pub use tiers::{Tier, TiersConfig};

/// The sampler and the pressure on this machine, with this process burning CPU.
#[cfg(test)]
mod tests {
    use super::pressure::tests::{calm, config};
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    /// Threads burning CPU until dropped; one burn at a time in this test binary, so a test
    /// measuring the process's CPU sees only its own.
    struct Burn {
        stop: Arc<AtomicBool>,
        threads: Vec<JoinHandle<()>>,
        _one_at_a_time: MutexGuard<'static, ()>,
    }

    impl Burn {
        fn start(threads: usize) -> Burn {
            static LOCK: Mutex<()> = Mutex::new(());
            let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let stop = Arc::new(AtomicBool::new(false));
            let threads = (0..threads)
                .map(|_| {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        let mut x = 1u64;
                        while !stop.load(Ordering::Relaxed) {
                            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                        }
                    })
                })
                .collect();
            Burn { stop, threads, _one_at_a_time: guard }
        }
    }

    impl Drop for Burn {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }

    #[test]
    fn a_sample_is_cheap_and_sane() {
        let mut sampler = Sampler::new(&GovernorConfig::default());
        let (n, mut busy) = (4, Duration::ZERO);
        let mut r = sampler.sample(PipelineLoad::default());
        for _ in 0..n {
            // Past sysinfo's 200 ms, so every sample rereads the CPU times as a 1 s tick does.
            std::thread::sleep(Duration::from_millis(210));
            let started = Instant::now();
            r = sampler.sample(PipelineLoad::default());
            busy += started.elapsed();
        }
        let each = busy / n;
        eprintln!("one sample: {each:?}; {r:?}");
        assert!(each < Duration::from_millis(20), "{each:?}");
        assert!(r.memory_available_percent > 0.0 && r.memory_available_percent <= 100.0);
        assert!(r.process_rss_bytes > 0);
        assert!((0.0..=100.0).contains(&r.cpu_percent));
    }

    #[test]
    fn two_burning_threads_are_more_than_one_core() {
        let mut sampler = Sampler::new(&GovernorConfig::default());
        let burn = Burn::start(2);
        std::thread::sleep(Duration::from_millis(500));
        sampler.sample(PipelineLoad::default());
        std::thread::sleep(Duration::from_millis(800));
        let r = sampler.sample(PipelineLoad::default());
        drop(burn);
        assert!(r.process_cpu_percent > 100.0, "{}", r.process_cpu_percent);
    }

    #[test]
    fn burning_cpu_constrains_and_the_calm_after_releases() {
        let mut config = config(2, 0.3);
        config.constrained.process_cpu_percent = 50.0;
        config.critical.process_cpu_percent = 400.0;
        // Only this process's CPU counts: the rest of the machine may be as busy as it likes.
        let own_cpu = |r: Reading| Reading { process_cpu_percent: r.process_cpu_percent, ..calm() };
        let burn = Burn::start(2);
        let mut sampler = Sampler::new(&config);
        let mut p = Pressure::new(&config, Instant::now());
        let mut burning = vec![];
        while p.level() == Level::Normal && burning.len() < 10 {
            std::thread::sleep(Duration::from_millis(250));
            let r = sampler.sample(PipelineLoad::default());
            burning.push(r.process_cpu_percent);
            p.update(&own_cpu(r), Instant::now());
        }
        assert_eq!(p.level(), Level::Constrained, "{burning:?}");
        assert_eq!(burning.len(), 2, "after rise_samples burning samples: {burning:?}");
        let stopped = Instant::now();
        drop(burn);
        let mut calm_samples = vec![];
        while p.level() == Level::Constrained && stopped.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
            let r = sampler.sample(PipelineLoad::default());
            calm_samples.push(r.process_cpu_percent);
            if let Some(change) = p.update(&own_cpu(r), Instant::now()) {
                assert_eq!(change.reason, "every reading below the constrained thresholds for 0.3 s");
            }
        }
        assert_eq!(p.level(), Level::Normal, "{calm_samples:?}");
        assert!(stopped.elapsed() >= Duration::from_millis(300), "not before the dwell");
    }
}
