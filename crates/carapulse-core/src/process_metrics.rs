//! Process metrics every service exports (the Prometheus client convention, under the
//! registry's `carapulse_` prefix): CPU seconds, resident and virtual memory, open and maximum
//! file descriptors, start time. Read from `/proc/self` at each scrape, so they cost nothing
//! between scrapes; on a system without `/proc` they are simply absent.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Adds the process collector to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}

#[derive(Debug)]
struct ProcessCollector;

/// One reading of `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: i64,
    pub virtual_bytes: i64,
    pub open_fds: i64,
    pub max_fds: i64,
    pub start_time_seconds: f64,
}

impl ProcessSample {
    /// Reads the current process; `None` where `/proc` is missing or unreadable.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces and parentheses: fields are counted after
        // the last ')'. Field 3 (state) is then index 0.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let cpu = (field(14)? + field(15)?) as f64 / ticks;
        let start_ticks = field(22)? as f64;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        let max_fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            i64::try_from(limit.rlim_cur).unwrap_or(i64::MAX)
        } else {
            -1
        };
        Some(Self {
            cpu_seconds: cpu,
            resident_bytes: i64::try_from(field(24)? * page).unwrap_or(i64::MAX),
            virtual_bytes: i64::try_from(field(23)?).unwrap_or(i64::MAX),
            open_fds,
            max_fds,
            start_time_seconds: boot + start_ticks / ticks,
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = ProcessSample::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, i64); 4] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size",
                s.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size",
                s.virtual_bytes,
            ),
            ("process_open_fds", "Open file descriptors", s.open_fds),
            (
                "process_max_fds",
                "Limit of open file descriptors",
                s.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let start = ConstGauge::new(s.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time since the Unix epoch",
            None,
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_encodes_it() {
        let first = ProcessSample::read().expect("/proc is readable here");
        assert!(first.resident_bytes > 1 << 20, "{first:?}");
        assert!(first.virtual_bytes >= first.resident_bytes, "{first:?}");
        assert!(
            first.open_fds >= 3 && first.max_fds >= first.open_fds,
            "{first:?}"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(first.start_time_seconds <= now && first.start_time_seconds > now - 3600.0);
        // Burn some CPU: the counter moves.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let second = ProcessSample::read().unwrap();
        assert!(
            second.cpu_seconds > first.cpu_seconds,
            "{first:?} {second:?}"
        );

        let mut registry = Registry::with_prefix("carapulse");
        register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for name in [
            "carapulse_process_cpu_seconds_total ",
            "carapulse_process_resident_memory_bytes ",
            "carapulse_process_open_fds ",
            "carapulse_process_max_fds ",
            "carapulse_process_start_time_seconds ",
        ] {
            assert!(out.contains(name), "{name} missing:\n{out}");
        }
    }
}
