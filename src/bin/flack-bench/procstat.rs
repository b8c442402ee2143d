//! CPU time, resident memory and open files of a process, read from `/proc` (Linux).

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
    let rss_kib = status_kib(&status, "VmRSS:").unwrap_or(0);
    Some(Sample {
        cpu_secs: (utime + stime) / TICKS_PER_SECOND,
        rss_kib,
    })
}

/// CPU time so far of a process's threads whose name starts with `prefix`, in seconds, from
/// each thread's `schedstat` (nanoseconds on a CPU, finer than `stat`'s clock ticks).
pub fn threads_cpu_secs(pid: u32, prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut nanos = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let named =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|name| name.starts_with(prefix));
        if !named {
            continue;
        }
        let on_cpu = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        nanos += on_cpu.unwrap_or(0);
    }
    nanos as f64 / 1e9
}

/// This process's own CPU time so far, in seconds.
pub fn own_cpu_secs() -> f64 {
    sample(std::process::id()).map_or(0.0, |s| s.cpu_secs)
}

/// CPU time the whole machine has spent busy so far (every core, every process, the
/// kernel's interrupt work included), in seconds, from `/proc/stat`.
pub fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    stat.lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(busy_ticks)
        .unwrap_or(0) as f64
        / TICKS_PER_SECOND
}

/// The busy ticks of a `/proc/stat` CPU line after its name: user, nice, system, irq,
/// softirq and steal (everything but idle and iowait; guest time is already in user).
fn busy_ticks(fields: &str) -> u64 {
    let ticks: Vec<u64> = fields
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0))
        .sum()
}

/// A `/proc/<pid>/status` line's value in KiB (`VmRSS:  1234 kB`).
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Resident memory now and at its peak since the process started (`VmRSS`, `VmHWM`), in
/// KiB; `None` if the process is gone.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_kib(&status, "VmRSS:")?,
        status_kib(&status, "VmHWM:")?,
    ))
}

/// How many files (sockets included) a process has open; `None` if it is gone.
pub fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// A process's soft limit on open files, from `/proc/<pid>/limits`.
pub fn open_file_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The processes whose command name (`/proc/<pid>/comm`) is `name`, with their command
/// lines (arguments joined by spaces; PostgreSQL backends rewrite theirs to say which
/// database they serve).
pub fn processes_named(name: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        found.push((pid, line.trim_end().to_owned()));
    }
    found
}

/// How many connections the machine's listening sockets have dropped so far because their
/// accept queue was full (`TcpExt: ListenOverflows` in `/proc/net/netstat`; the client
/// then tries again after its SYN timeout, a second at first).
pub fn listen_overflows() -> u64 {
    let netstat = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's own readings are there and plausible.
    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let (rss, peak) = memory(pid).unwrap_or_default();
        assert!(rss > 0 && peak >= rss, "rss {rss}, peak {peak}");
        assert!(open_files(pid).unwrap_or(0) >= 3);
        assert!(open_file_limit(pid).unwrap_or(0) >= 1);
        assert_eq!(status_kib("VmHWM:\t  2048 kB\n", "VmHWM:"), Some(2048));
        assert_eq!(
            busy_ticks(" 10 1 5 1000 7 2 3 4 0 0"),
            10 + 1 + 5 + 2 + 3 + 4
        );
        assert!(machine_busy_secs() > 0.0);
        let me = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let found = processes_named(me.trim_end());
        assert!(found.iter().any(|(p, _)| *p == pid), "{found:?}");
    }
}
