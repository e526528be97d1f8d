//! One sample of what bounds the daemon: the machine's CPU and memory, the daemon's own CPU and
//! memory, the thermal zones, the cgroup's quota and limit, and the pipeline's deadline misses.
//!
//! Cheap enough for every tick: the sysinfo `System` is kept and only the CPU times, the memory
//! figures and this one process are refreshed; the thermal zones are found once; each file is
//! read through a small bound. A file that is missing, unreadable or holds garbage is left out
//! of the reading, never a panic; so is a value outside a plausible range.

use super::config::GovernorConfig;
use serde::Serialize;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// The pipeline's counters since start, as the caller reads them at each tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineLoad {
    /// Windows closed.
    pub windows: u64,
    /// Windows that missed fusion's deadline.
    pub deadline_misses: u64,
    /// Records waiting on the output queue now.
    pub queue_depth: usize,
}

/// One thermal zone's temperature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Zone {
    /// The zone's `type` (`cpu-thermal`, `GPU-therm`), else its folder's name.
    pub name: String,
    pub temp_c: f32,
}

/// What one sample saw. Percentages are 0–100 unless said otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    /// The machine's CPU use over all cores.
    pub cpu_percent: f32,
    /// The daemon's own CPU use since the last sample, in percent of one core (200 = two cores).
    pub process_cpu_percent: f32,
    pub memory_available_percent: f32,
    pub process_rss_bytes: u64,
    /// The 1-minute load average divided by the number of cores.
    pub load_1m_per_core: f32,
    /// The hottest zone; `None` without a readable zone.
    pub temp_c: Option<f32>,
    pub zones: Vec<Zone>,
    /// The cgroup's CPU use since the last sample against its quota; `None` without a quota.
    pub cgroup_cpu_percent: Option<f32>,
    /// The cgroup's memory use against its limit; `None` without a limit.
    pub cgroup_memory_percent: Option<f32>,
    /// Deadline misses in percent of the windows closed since the last sample (0 if none).
    pub deadline_miss_percent: f32,
    pub queue_depth: usize,
}

/// Takes [`Reading`]s, keeping what the next one's differences need.
pub struct Sampler {
    system: Option<System>,
    pid: Option<Pid>,
    zones: ThermalZones,
    cgroup: PathBuf,
    last: Last,
}

/// The counters at the previous sample.
struct Last {
    at: Instant,
    process_cpu_ms: Option<u64>,
    cgroup_cpu_usec: Option<u64>,
    pipeline: PipelineLoad,
}

impl Sampler {
    /// Finds the zones and the cgroup and takes the first counters: the first sample has an interval.
    pub fn new(config: &GovernorConfig) -> Sampler {
        let proc_cgroup = read_small(Path::new("/proc/self/cgroup"));
        let now = Instant::now();
        let last = Last { at: now, process_cpu_ms: None, cgroup_cpu_usec: None, pipeline: PipelineLoad::default() };
        let mut sampler = Sampler {
            system: System::new().ok(),
            pid: sysinfo::get_current_pid().ok(),
            zones: ThermalZones::discover(&config.sysfs_root),
            cgroup: cgroup_dir(&config.cgroup_root, proc_cgroup.as_deref()),
            last,
        };
        sampler.refresh_system();
        sampler.last.process_cpu_ms = sampler.process().map(|p| p.accumulated_cpu_time());
        sampler.last.cgroup_cpu_usec = CgroupUsage::read(&sampler.cgroup).cpu_usage_usec;
        sampler.last.at = Instant::now();
        sampler
    }

    /// What the machine, the daemon and the pipeline look like now; rates are over the time
    /// since the previous sample (or since [`new`](Self::new)).
    pub fn sample(&mut self, pipeline: PipelineLoad) -> Reading {
        self.refresh_system();
        let now = Instant::now();
        let elapsed_s = now.duration_since(self.last.at).as_secs_f64();

        let sys = self.system.as_ref();
        let cpu_percent = sys.map_or(0.0, |s| s.global_cpu_usage());
        let memory_available_percent = sys
            .filter(|s| s.total_memory() > 0)
            .map_or(100.0, |s| (s.available_memory() as f64 / s.total_memory() as f64 * 100.0) as f32);
        let cores = sys.map_or(0, |s| s.cpus().len()).max(1);
        let (process_cpu_ms, process_rss_bytes) =
            self.process().map_or((None, 0), |p| (Some(p.accumulated_cpu_time()), p.memory()));
        let process_cpu_percent = match (self.last.process_cpu_ms, process_cpu_ms) {
            (Some(before), Some(after)) if elapsed_s > 0.0 => {
                (after.saturating_sub(before) as f64 / 1000.0 / elapsed_s * 100.0) as f32
            }
            _ => 0.0,
        };
        let load_1m_per_core = System::load_average().map_or(0.0, |l| (l.one / cores as f64) as f32);

        let zones = self.zones.read();
        let temp_c = zones.iter().map(|z| z.temp_c).reduce(f32::max);

        let limits = CgroupLimits::read(&self.cgroup);
        let usage = CgroupUsage::read(&self.cgroup);
        let cgroup_cpu_percent = match (limits.cpu_quota_cores, self.last.cgroup_cpu_usec, usage.cpu_usage_usec) {
            (Some(quota), Some(before), Some(after)) if after >= before && elapsed_s > 0.0 => {
                Some(((after - before) as f64 / 1e6 / elapsed_s / quota * 100.0) as f32)
            }
            _ => None,
        };
        let cgroup_memory_percent = match (limits.memory_max_bytes, usage.memory_current_bytes) {
            (Some(max), Some(current)) => Some((current as f64 / max as f64 * 100.0) as f32),
            _ => None,
        };

        let windows = pipeline.windows.saturating_sub(self.last.pipeline.windows);
        let misses = pipeline.deadline_misses.saturating_sub(self.last.pipeline.deadline_misses);
        let deadline_miss_percent =
            if windows == 0 { 0.0 } else { (misses as f64 / windows as f64 * 100.0).min(100.0) as f32 };

        self.last = Last { at: now, process_cpu_ms, cgroup_cpu_usec: usage.cpu_usage_usec, pipeline };
        Reading {
            cpu_percent,
            process_cpu_percent,
            memory_available_percent,
            process_rss_bytes,
            load_1m_per_core,
            temp_c,
            zones,
            cgroup_cpu_percent,
            cgroup_memory_percent,
            deadline_miss_percent,
            queue_depth: pipeline.queue_depth,
        }
    }

    /// CPU times (sysinfo rereads them at most every 200 ms), memory, and this process (not its threads).
    fn refresh_system(&mut self) {
        let Some(sys) = &mut self.system else { return };
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        if let Some(pid) = self.pid {
            let kind = ProcessRefreshKind::nothing().with_cpu().with_memory().without_tasks();
            sys.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, kind);
        }
    }

    fn process(&self) -> Option<&sysinfo::Process> {
        self.system.as_ref()?.process(self.pid?)
    }
}

/// Temperatures outside this range are a broken sensor, not a reading.
const PLAUSIBLE_TEMP_C: std::ops::RangeInclusive<f32> = -40.0..=150.0;

/// The thermal zones found under a sysfs root: each one's name and its `temp` file.
#[derive(Debug, Clone, Default)]
pub struct ThermalZones {
    zones: Vec<(String, PathBuf)>,
}

impl ThermalZones {
    /// `{root}/class/thermal/thermal_zone*`, or where that folder is absent,
    /// `{root}/devices/virtual/thermal/thermal_zone*` (a Jetson), in zone order.
    pub fn discover(sysfs_root: &Path) -> ThermalZones {
        let mut dir = sysfs_root.join("class/thermal");
        if !dir.is_dir() {
            dir = sysfs_root.join("devices/virtual/thermal");
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { return ThermalZones::default() };
        let mut zones: Vec<(u64, String, PathBuf)> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let dir_name = e.file_name().into_string().ok()?;
                let number = dir_name.strip_prefix("thermal_zone")?.parse().unwrap_or(u64::MAX);
                let path = e.path();
                let name = read_small(&path.join("type"))
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| dir_name.clone());
                Some((number, name, path.join("temp")))
            })
            .collect();
        zones.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        ThermalZones { zones: zones.into_iter().map(|(_, name, temp)| (name, temp)).collect() }
    }

    /// Each zone whose `temp` (millidegrees Celsius as text) reads as a plausible temperature.
    pub fn read(&self) -> Vec<Zone> {
        self.zones
            .iter()
            .filter_map(|(name, temp)| {
                let milli: i64 = read_small(temp)?.trim().parse().ok()?;
                let temp_c = milli as f32 / 1000.0;
                PLAUSIBLE_TEMP_C.contains(&temp_c).then(|| Zone { name: name.clone(), temp_c })
            })
            .collect()
    }
}

/// The thermal zones under a sysfs root and their temperatures now.
pub fn read_thermal(sysfs_root: &Path) -> Vec<Zone> {
    ThermalZones::discover(sysfs_root).read()
}

/// A cgroup v2 folder's CPU quota and memory limit; `None` where there is none (`max`) or the
/// file is missing or garbled.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupLimits {
    /// `cpu.max`'s quota over its period, in cores (`50000 100000` is half a core).
    pub cpu_quota_cores: Option<f64>,
    /// `memory.max` in bytes.
    pub memory_max_bytes: Option<u64>,
}

impl CgroupLimits {
    pub fn read(dir: &Path) -> CgroupLimits {
        let cpu_quota_cores = read_small(&dir.join("cpu.max")).and_then(|text| {
            let mut fields = text.split_whitespace();
            let quota: f64 = fields.next()?.parse().ok()?; // `max` does not parse: no quota
            let period: f64 = fields.next()?.parse().ok()?;
            (fields.next().is_none() && quota > 0.0 && period > 0.0).then(|| quota / period)
        });
        let memory_max_bytes = read_number(&dir.join("memory.max")).filter(|&max| max > 0);
        CgroupLimits { cpu_quota_cores, memory_max_bytes }
    }
}

/// A cgroup v2 folder's counters now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// `cpu.stat`'s `usage_usec`: CPU time used by the cgroup since it was made.
    pub cpu_usage_usec: Option<u64>,
    /// `memory.current` in bytes.
    pub memory_current_bytes: Option<u64>,
}

impl CgroupUsage {
    pub fn read(dir: &Path) -> CgroupUsage {
        let cpu_usage_usec = read_small(&dir.join("cpu.stat")).and_then(|text| {
            text.lines().find_map(|line| line.strip_prefix("usage_usec ")).and_then(|v| v.trim().parse().ok())
        });
        CgroupUsage { cpu_usage_usec, memory_current_bytes: read_number(&dir.join("memory.current")) }
    }
}

/// The cgroup folder to read: `root` itself when it has the limit files (a container's own
/// cgroup namespace), else the process's cgroup under it (`0::/system.slice/x.service` in
/// `/proc/self/cgroup`) when that folder exists (a service on the host), else `root`.
pub fn cgroup_dir(root: &Path, proc_self_cgroup: Option<&str>) -> PathBuf {
    if root.join("cpu.max").exists() || root.join("memory.max").exists() {
        return root.to_path_buf();
    }
    let own = proc_self_cgroup
        .and_then(|text| text.lines().find_map(|line| line.strip_prefix("0::")))
        .map(|path| path.trim().trim_start_matches('/'))
        .filter(|path| !path.is_empty() && !path.split('/').any(|part| part == ".."))
        .map(|path| root.join(path));
    own.filter(|dir| dir.is_dir()).unwrap_or_else(|| root.to_path_buf())
}

/// A sysfs, procfs or cgroupfs file: such files are small, so at most 4 KiB is read.
fn read_small(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path).ok()?.take(4096).read_to_string(&mut text).ok()?;
    Some(text)
}

fn read_number(path: &Path) -> Option<u64> {
    read_small(path)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_raspberry_pi_zone_reads_in_degrees_with_its_type_and_no_folder_no_zones() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "class/thermal/thermal_zone0/temp", "48312\n");
        write(dir.path(), "class/thermal/thermal_zone0/type", "cpu-thermal\n");
        write(dir.path(), "class/thermal/cooling_device0/type", "fan\n");
        assert_eq!(read_thermal(dir.path()), vec![Zone { name: "cpu-thermal".into(), temp_c: 48.312 }]);
        assert!(read_thermal(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn jetson_zones_are_found_under_devices_virtual_and_garbage_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let zone = |n: usize, ty: &str, temp: &str| {
            write(dir.path(), &format!("devices/virtual/thermal/thermal_zone{n}/type"), ty);
            write(dir.path(), &format!("devices/virtual/thermal/thermal_zone{n}/temp"), temp);
        };
        zone(0, "CPU-therm\n", "51500\n");
        zone(1, "GPU-therm\n", "49000\n");
        zone(2, "SOC-therm\n", "not a number\n");
        zone(10, "Tboard_tegra\n", "62750\n");
        zone(3, "PMIC-Die\n", "400000\n"); // 400 °C: a broken sensor
        zone(4, "\n", "-2000\n"); // no type: named after its folder
        std::fs::create_dir_all(dir.path().join("devices/virtual/thermal/thermal_zone5")).unwrap(); // no files
        let zones = read_thermal(dir.path());
        let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(names, ["CPU-therm", "GPU-therm", "thermal_zone4", "Tboard_tegra"]);
        assert_eq!(zones[2].temp_c, -2.0);
        let hottest = zones.iter().map(|z| z.temp_c).reduce(f32::max).unwrap();
        assert_eq!(hottest, 62.75);
    }

    #[test]
    fn cgroup_quota_and_memory_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "cpu.max", "50000 100000\n");
        write(root, "memory.max", "536870912\n");
        write(root, "memory.current", "134217728\n");
        write(root, "cpu.stat", "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n");
        let limits = CgroupLimits::read(root);
        assert_eq!(limits, CgroupLimits { cpu_quota_cores: Some(0.5), memory_max_bytes: Some(512 << 20) });
        let usage = CgroupUsage::read(root);
        assert_eq!(usage, CgroupUsage { cpu_usage_usec: Some(1_234_567), memory_current_bytes: Some(128 << 20) });

        write(root, "cpu.max", "max 100000\n");
        write(root, "memory.max", "max\n");
        assert_eq!(CgroupLimits::read(root), CgroupLimits::default());
        write(root, "cpu.max", "0 100000\n");
        write(root, "memory.max", "\u{0}\u{ff}garbage");
        assert_eq!(CgroupLimits::read(root), CgroupLimits::default());
        assert_eq!(CgroupLimits::read(&root.join("missing")), CgroupLimits::default());
        assert_eq!(CgroupUsage::read(&root.join("missing")), CgroupUsage::default());
    }

    #[test]
    fn the_sampler_compares_cgroup_use_with_quota_and_limit_and_counts_deadline_misses() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "cpu.max", "50000 100000\n");
        write(root, "memory.max", "1000\n");
        write(root, "memory.current", "250\n");
        write(root, "cpu.stat", "usage_usec 1000000\n");
        let config =
            GovernorConfig { cgroup_root: root.to_path_buf(), sysfs_root: root.to_path_buf(), ..Default::default() };
        let mut sampler = Sampler::new(&config);
        std::thread::sleep(Duration::from_millis(200));
        // 100 ms of CPU in ≥ 200 ms: at most half of the half-core quota.
        write(root, "cpu.stat", "usage_usec 1100000\n");
        let r = sampler.sample(PipelineLoad { windows: 10, deadline_misses: 1, queue_depth: 3 });
        let cpu = r.cgroup_cpu_percent.unwrap();
        assert!(cpu > 10.0 && cpu <= 100.0, "{cpu}");
        assert_eq!(r.cgroup_memory_percent, Some(25.0));
        assert_eq!((r.temp_c, r.zones.len()), (None, 0));
        // Deadline misses are a share of the windows closed since the last sample.
        assert_eq!((r.deadline_miss_percent, r.queue_depth), (10.0, 3));
        let r = sampler.sample(PipelineLoad { windows: 14, deadline_misses: 3, queue_depth: 0 });
        assert_eq!(r.deadline_miss_percent, 50.0);
        let r = sampler.sample(PipelineLoad { windows: 14, deadline_misses: 3, queue_depth: 0 });
        assert_eq!(r.deadline_miss_percent, 0.0, "no window closed");
    }

    #[test]
    fn the_own_cgroup_is_found_under_the_hosts_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("system.slice/biofeedd.service")).unwrap();
        let proc = "0::/system.slice/biofeedd.service\n";
        assert_eq!(cgroup_dir(root, Some(proc)), root.join("system.slice/biofeedd.service"));
        assert_eq!(cgroup_dir(root, Some("0::/gone.scope\n")), root);
        assert_eq!(cgroup_dir(root, Some("0::/../etc\n")), root);
        assert_eq!(cgroup_dir(root, None), root);
        write(root, "cpu.max", "max 100000\n");
        assert_eq!(cgroup_dir(root, Some(proc)), root, "a container's namespace root has the files");
    }
}
