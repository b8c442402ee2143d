//! CPU time and resident memory of a process, read from `/proc` (Linux).

/// Clock ticks per second in `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// User plus system CPU time so far, in seconds.
    pub cpu_secs: f64,
    /// Resident set size, in KiB.
    pub rss_kib: u64,
}

/// Reads a process's CPU time and resident memory; `None` if it is gone.
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Sample {
        cpu_secs: (utime + stime) / TICKS_PER_SECOND,
        rss_kib,
    })
}

/// This process's own CPU time so far, in seconds.
pub fn own_cpu_secs() -> f64 {
    sample(std::process::id()).map_or(0.0, |s| s.cpu_secs)
}
