//! How busy the machine's CPUs were over a stretch of the benchmark, from `/proc/stat`:
//! a figure that misses its target while the CPUs are saturated is bound by them.

/// Busy and total jiffies of all CPUs so far.
#[derive(Clone, Copy)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

pub fn now() -> CpuTimes {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    let total: u64 = fields.iter().take(8).sum();
    CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    }
}

/// Percentage of CPU time spent busy since `start`.
pub fn busy_percent(start: CpuTimes) -> f64 {
    let end = now();
    let total = end.total.saturating_sub(start.total);
    if total == 0 {
        return 0.0;
    }
    100.0 * end.busy.saturating_sub(start.busy) as f64 / total as f64
}
