//! Reading process and host figures from `/proc` (Linux), and the `process_*` collector.
//!
//! This module owns the cheap `/proc` readers ([`ProcessStats::read`], [`HostCpuTimes::read`],
//! [`HostMemory::read`]) and [`ProcessCollector`], which adds the standard `process_*` families
//! (the names the Go and Python clients use) to every gather. On systems without `/proc` the
//! readers return `None` and the collector adds nothing.

use std::fs;

use crate::metrics::{Collector, FamilySnapshot, MetricKind, SeriesSnapshot, SnapshotValue};

/// Kernel clock ticks per second for `/proc` times. `USER_HZ` is fixed at 100 in the Linux ABI
/// on every architecture recserve targets.
pub const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Figures about this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_memory_bytes: f64,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: f64,
    /// Number of OS threads.
    pub threads: f64,
    /// Start time since the Unix epoch, seconds.
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// Soft limit of open file descriptors.
    pub max_fds: f64,
}

fn boot_time() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

impl ProcessStats {
    /// Reads `/proc/self/{stat,status,fd,limits}` and `/proc/stat` (for the boot time).
    pub fn read() -> Option<Self> {
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<f64> { f.get(n - 3)?.parse::<f64>().ok() };
        let utime = field(14)?;
        let stime = field(15)?;
        let threads = field(20)?;
        let start_ticks = field(22)?;
        let vsize = field(23)?;
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let rss_kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let open_fds = fs::read_dir("/proc/self/fd").map(|d| d.count() as f64).unwrap_or(0.0);
        let max_fds = fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l["Max open files".len()..].split_whitespace().next().map(str::to_string))
            })
            .and_then(|v| if v == "unlimited" { Some(f64::INFINITY) } else { v.parse().ok() })
            .unwrap_or(0.0);
        Some(Self {
            cpu_seconds: (utime + stime) / CLOCK_TICKS_PER_SECOND,
            resident_memory_bytes: rss_kb * 1024.0,
            virtual_memory_bytes: vsize,
            threads,
            start_time_seconds: boot_time().unwrap_or(0.0) + start_ticks / CLOCK_TICKS_PER_SECOND,
            open_fds,
            max_fds,
        })
    }
}

/// Cumulative host CPU times from the first line of `/proc/stat`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostCpuTimes {
    /// All time (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: f64,
    /// Idle + iowait.
    pub idle: f64,
    /// Steal: time this (virtual) machine's CPUs were ready to run while the hypervisor ran
    /// something else. 0 where the kernel reports no steal column.
    pub steal: f64,
    /// Number of logical CPUs (`cpuN` lines).
    pub cpus: usize,
}

impl HostCpuTimes {
    /// Reads `/proc/stat`.
    pub fn read() -> Option<Self> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        Self::parse(&stat)
    }

    /// Parses the text of `/proc/stat`.
    pub fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<f64> = line.split_whitespace().skip(1).take(8).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 5 {
            return None;
        }
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count()
            .max(1);
        Some(Self {
            total: v.iter().sum::<f64>() / CLOCK_TICKS_PER_SECOND,
            idle: (v[3] + v[4]) / CLOCK_TICKS_PER_SECOND,
            steal: v.get(7).copied().unwrap_or(0.0) / CLOCK_TICKS_PER_SECOND,
            cpus,
        })
    }

    /// Busy fraction (0–1) between an earlier reading and this one.
    pub fn utilization_since(&self, earlier: &HostCpuTimes) -> Option<f64> {
        let total = self.total - earlier.total;
        let idle = self.idle - earlier.idle;
        (total > 0.0).then(|| ((total - idle) / total).clamp(0.0, 1.0))
    }

    /// Fraction (0–1) of the CPU time between an earlier reading and this one that the
    /// hypervisor took away (steal). Part of [`Self::utilization_since`]'s busy time.
    pub fn steal_since(&self, earlier: &HostCpuTimes) -> Option<f64> {
        let total = self.total - earlier.total;
        (total > 0.0).then(|| ((self.steal - earlier.steal) / total).clamp(0.0, 1.0))
    }
}

/// Host memory from `/proc/meminfo`, bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostMemory {
    /// MemTotal.
    pub total_bytes: f64,
    /// MemAvailable.
    pub available_bytes: f64,
}

impl HostMemory {
    /// Reads `/proc/meminfo`.
    pub fn read() -> Option<Self> {
        let info = fs::read_to_string("/proc/meminfo").ok()?;
        let get = |key: &str| -> Option<f64> {
            info.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .map(|kb| kb * 1024.0)
        };
        Some(Self { total_bytes: get("MemTotal:")?, available_bytes: get("MemAvailable:")? })
    }
}

/// Adds the standard `process_*` families at gather time.
#[derive(Debug, Default)]
pub struct ProcessCollector;

fn scalar_family(name: &str, help: &str, kind: MetricKind, v: f64) -> FamilySnapshot {
    FamilySnapshot {
        name: name.into(),
        help: help.into(),
        kind,
        series: vec![SeriesSnapshot { labels: vec![], value: SnapshotValue::Scalar(v) }],
    }
}

impl Collector for ProcessCollector {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        let Some(p) = ProcessStats::read() else { return };
        out.push(scalar_family(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            MetricKind::Counter,
            p.cpu_seconds,
        ));
        out.push(scalar_family("process_open_fds", "Number of open file descriptors.", MetricKind::Gauge, p.open_fds));
        out.push(scalar_family(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            MetricKind::Gauge,
            p.max_fds,
        ));
        out.push(scalar_family(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            MetricKind::Gauge,
            p.virtual_memory_bytes,
        ));
        out.push(scalar_family(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            MetricKind::Gauge,
            p.resident_memory_bytes,
        ));
        out.push(scalar_family(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            MetricKind::Gauge,
            p.start_time_seconds,
        ));
        out.push(scalar_family(
            "process_threads",
            "Number of OS threads in the process.",
            MetricKind::Gauge,
            p.threads,
        ));
    }
}
