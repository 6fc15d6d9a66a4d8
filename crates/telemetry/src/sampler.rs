//! The system sampler: process and host figures every second, on its own thread.
//!
//! This module owns [`SystemSampler`] (the sampler's gauges) and [`BackgroundHandle`] (stops the
//! thread). Each tick does only a few `/proc` reads and gauge stores: CPU utilisation of the
//! process and of the host (fractions 0–1 of the host's total CPU capacity), the host's CPU count
//! and memory, plus an optional hook where the server refreshes per-model memory gauges.
//! The standard `process_*` metrics are read at gather time by
//! [`crate::process::ProcessCollector`].

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::MetricsError;
use crate::metrics::{Gauge, Registry};
use crate::process::{HostCpuTimes, HostMemory, ProcessStats};

/// Metric names written by the sampler.
pub mod names {
    /// Process CPU use as a fraction of the host's total CPU capacity.
    pub const PROCESS_CPU: &str = "recserve_process_cpu_utilization_ratio";
    /// Host CPU use (all processes), fraction of total capacity.
    pub const HOST_CPU: &str = "recserve_host_cpu_utilization_ratio";
    /// Host CPU time taken by the hypervisor (steal), fraction of total capacity.
    pub const HOST_CPU_STEAL: &str = "recserve_host_cpu_steal_ratio";
    /// Logical CPUs of the host.
    pub const HOST_CPUS: &str = "recserve_host_cpus";
    /// Host memory total.
    pub const HOST_MEMORY_TOTAL: &str = "recserve_host_memory_total_bytes";
    /// Host memory available.
    pub const HOST_MEMORY_AVAILABLE: &str = "recserve_host_memory_available_bytes";
}

/// A hook run on every tick of the sampler (e.g. to refresh `recserve_model_memory_bytes`).
pub type TickHook = Box<dyn FnMut() + Send>;

/// The sampler's gauges and previous readings.
pub struct SystemSampler {
    process_cpu: Gauge,
    host_cpu: Gauge,
    host_steal: Gauge,
    host_cpus: Gauge,
    mem_total: Gauge,
    mem_available: Gauge,
    last: Option<(Instant, f64, HostCpuTimes)>,
    hook: Option<TickHook>,
}

impl std::fmt::Debug for SystemSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemSampler").finish_non_exhaustive()
    }
}

impl SystemSampler {
    /// Registers the sampler's gauges.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        Ok(Self {
            process_cpu: registry.gauge(
                names::PROCESS_CPU,
                "CPU used by this process as a fraction (0-1) of the host's total CPU capacity.",
            )?,
            host_cpu: registry.gauge(names::HOST_CPU, "CPU used on the host as a fraction (0-1) of its capacity.")?,
            host_steal: registry.gauge(
                names::HOST_CPU_STEAL,
                "CPU time the hypervisor gave to others while this machine's CPUs were ready to run \
                 (steal), as a fraction (0-1) of its capacity; counted as busy in the utilization.",
            )?,
            host_cpus: registry.gauge(names::HOST_CPUS, "Logical CPUs of the host.")?,
            mem_total: registry.gauge(names::HOST_MEMORY_TOTAL, "Total memory of the host in bytes.")?,
            mem_available: registry.gauge(names::HOST_MEMORY_AVAILABLE, "Available memory of the host in bytes.")?,
            last: None,
            hook: None,
        })
    }

    /// Sets a hook run after each sample.
    pub fn with_hook(mut self, hook: TickHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Takes one sample now. Utilisation gauges need two samples and are set from the second on.
    pub fn sample(&mut self) {
        let now = Instant::now();
        let proc_cpu = ProcessStats::read().map(|p| p.cpu_seconds);
        let host = HostCpuTimes::read();
        if let Some(h) = host {
            self.host_cpus.set(h.cpus as f64);
            if let (Some((t0, p0, h0)), Some(p1)) = (&self.last, proc_cpu) {
                if let Some(u) = h.utilization_since(h0) {
                    self.host_cpu.set(u);
                }
                if let Some(steal) = h.steal_since(h0) {
                    self.host_steal.set(steal);
                }
                let wall = now.duration_since(*t0).as_secs_f64();
                if wall > 0.0 {
                    self.process_cpu.set(((p1 - p0) / wall / h.cpus as f64).clamp(0.0, 1.0));
                }
            }
            if let Some(p) = proc_cpu {
                self.last = Some((now, p, h));
            }
        }
        if let Some(m) = HostMemory::read() {
            self.mem_total.set(m.total_bytes);
            self.mem_available.set(m.available_bytes);
        }
        if let Some(hook) = self.hook.as_mut() {
            hook();
        }
    }

    /// Starts sampling every `interval` on a dedicated thread.
    pub fn start(mut self, interval: Duration) -> BackgroundHandle {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("recserve-sampler".into()).spawn(move || {
            loop {
                self.sample();
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            }
        });
        match thread {
            Ok(t) => BackgroundHandle { stop: Some(stop), thread: Some(t) },
            Err(err) => {
                tracing::error!(%err, "could not start the system sampler thread");
                BackgroundHandle { stop: None, thread: None }
            }
        }
    }
}

/// Stops a background thread (sampler or store scraper) when dropped or on [`BackgroundHandle::stop`].
#[derive(Debug)]
pub struct BackgroundHandle {
    pub(crate) stop: Option<mpsc::Sender<()>>,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl BackgroundHandle {
    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BackgroundHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
