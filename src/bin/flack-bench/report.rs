//! Results: one JSON object per measurement, and a readable table.

use crate::fanout::Phase;
use crate::procstat::Sample;
use crate::servers::Kind;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One measurement. Fields that do not apply to a scenario are zero.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub server: String,
    pub receivers: usize,
    pub senders: usize,
    /// Messages per second the senders aimed for.
    pub target_rate: f64,
    pub seconds: f64,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub loss: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Deliveries (or pages, or connections) per second.
    pub per_second: f64,
    pub server_rss_kib: u64,
    pub server_cpu_secs: f64,
    /// Server CPU time per delivery (or page, or connection), in microseconds.
    pub server_cpu_us_per_unit: f64,
    pub harness_cpu_secs: f64,
    /// Idle scenario: server memory added per open connection, in KiB.
    pub rss_kib_per_connection: f64,
    /// First load: the page's size in bytes.
    pub page_bytes: usize,
    /// Fan-out against Flack: history fetches made during the run, and their latency.
    pub history_fetches: u64,
    pub history_p50_us: u64,
    pub history_p99_us: u64,
    /// Fan-out against Flack: send-to-ack latency seen by the senders (the ack waits until
    /// the message is stored).
    pub ack_p50_us: u64,
    pub ack_p99_us: u64,
    /// Abuse soak: posts of the ordinary clients the server refused.
    #[serde(skip_serializing_if = "is_zero")]
    pub refused: u64,
    /// Abuse soak: the server's peak resident memory (`VmHWM`), in KiB.
    #[serde(skip_serializing_if = "is_zero")]
    pub peak_rss_kib: u64,
    /// Abuse soak: the most files (sockets included) the server had open at once, sampled
    /// every 200 ms, and its limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub peak_open_files: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub open_file_limit: u64,
    /// Abuse soak: `GET /` every 100 ms on a new connection: how many, how many failed (no
    /// 200 within 5 s), and their latency.
    #[serde(skip_serializing_if = "is_zero")]
    pub probes: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub probe_failures: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub probe_p99_us: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub probe_max_us: u64,
    /// Abuse soak: CPU time the rest of the machine used while the run was measured (from
    /// its start to the end of its last waits, `machine_seconds` long), the sign of a
    /// shared machine.
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub other_cpu_secs: f64,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub machine_seconds: f64,
    /// Abuse soak: what each side got (frames by type, refusals by code, outcomes), by side.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tallies: BTreeMap<String, BTreeMap<String, u64>>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}

fn name(kind: Kind) -> String {
    match kind {
        Kind::Flack => "flack".into(),
        Kind::Ceiling => "ceiling".into(),
    }
}

fn quantiles(report: &mut Report, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    report.p50_us = h.value_at_quantile(0.50);
    report.p99_us = h.value_at_quantile(0.99);
    report.p999_us = h.value_at_quantile(0.999);
    report.max_us = h.max();
}

impl Report {
    /// A fan-out phase.
    pub fn fanout(
        kind: Kind,
        receivers: usize,
        senders: usize,
        rate: f64,
        phase: &Phase,
    ) -> Report {
        let seconds = phase.elapsed.as_secs_f64();
        let mut report = Report {
            scenario: "fanout".into(),
            server: name(kind),
            receivers,
            senders,
            target_rate: rate,
            seconds,
            sent: phase.sent,
            expected: phase.expected,
            received: phase.received,
            loss: phase.expected.saturating_sub(phase.received),
            per_second: phase.received as f64 / seconds.max(f64::EPSILON),
            server_rss_kib: phase.server_rss_kib,
            server_cpu_secs: phase.server_cpu_secs,
            server_cpu_us_per_unit: phase.server_cpu_secs * 1e6 / phase.received.max(1) as f64,
            harness_cpu_secs: phase.harness_cpu_secs,
            ..Report::default()
        };
        quantiles(&mut report, &phase.latency);
        if !phase.history.is_empty() {
            report.history_fetches = phase.history.len();
            report.history_p50_us = phase.history.value_at_quantile(0.5);
            report.history_p99_us = phase.history.value_at_quantile(0.99);
        }
        if !phase.acks.is_empty() {
            report.ack_p50_us = phase.acks.value_at_quantile(0.5);
            report.ack_p99_us = phase.acks.value_at_quantile(0.99);
        }
        report
    }

    /// An abuse soak (`attacks`: `all`, `none`, or which); the caller fills in what it
    /// measured.
    pub fn abuse(
        attacks: &str,
        members: usize,
        senders: usize,
        rate: f64,
        elapsed: Duration,
    ) -> Report {
        Report {
            scenario: match attacks {
                "all" => "abuse".into(),
                other => format!("abuse_{other}"),
            },
            server: name(Kind::Flack),
            receivers: members,
            senders,
            target_rate: rate,
            seconds: elapsed.as_secs_f64(),
            ..Report::default()
        }
    }

    /// Latency quantiles from `h`.
    pub fn set_latency(&mut self, h: &Histogram<u64>) {
        quantiles(self, h);
    }

    /// An idle-connections run; memory per connection is what the connections opened after
    /// `middle` added.
    pub fn idle(
        kind: Kind,
        wanted: usize,
        opened: usize,
        elapsed: Duration,
        before: Sample,
        (middle, opened_by_middle): (Sample, usize),
        after: Sample,
    ) -> Report {
        let seconds = elapsed.as_secs_f64();
        let second_half = opened.saturating_sub(opened_by_middle).max(1);
        Report {
            scenario: "idle".into(),
            server: name(kind),
            receivers: wanted,
            seconds,
            expected: wanted as u64,
            received: opened as u64,
            loss: (wanted - opened.min(wanted)) as u64,
            per_second: opened as f64 / seconds.max(f64::EPSILON),
            server_rss_kib: after.rss_kib,
            server_cpu_secs: after.cpu_secs - before.cpu_secs,
            server_cpu_us_per_unit: (after.cpu_secs - before.cpu_secs) * 1e6 / opened.max(1) as f64,
            rss_kib_per_connection: after.rss_kib.saturating_sub(middle.rss_kib) as f64
                / second_half as f64,
            ..Report::default()
        }
    }

    /// A first-load run.
    pub fn first_load(
        workers: usize,
        pages: u64,
        page_bytes: usize,
        latency: &Histogram<u64>,
        elapsed: Duration,
        before: Sample,
        after: Sample,
    ) -> Report {
        let seconds = elapsed.as_secs_f64();
        let mut report = Report {
            scenario: "first_load".into(),
            server: "flack".into(),
            receivers: workers,
            seconds,
            received: pages,
            per_second: pages as f64 / seconds.max(f64::EPSILON),
            server_rss_kib: after.rss_kib,
            server_cpu_secs: after.cpu_secs - before.cpu_secs,
            server_cpu_us_per_unit: (after.cpu_secs - before.cpu_secs) * 1e6 / pages.max(1) as f64,
            page_bytes,
            ..Report::default()
        };
        quantiles(&mut report, latency);
        report
    }
}

/// Prints reports as an aligned table.
pub fn print_table(reports: &[Report]) {
    println!(
        "{:<10} {:<7} {:>6} {:>4} {:>7} {:>9} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>8} {:>8} {:>7}",
        "scenario", "server", "recv", "send", "rate", "expected", "received", "loss", "p50ms",
        "p99ms", "p999ms", "maxms", "per_sec", "rss_MiB", "cpu_s", "us/unit", "harn_s"
    );
    for r in reports {
        println!(
            "{:<10} {:<7} {:>6} {:>4} {:>7.0} {:>9} {:>9} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.0} {:>9.1} {:>8.2} {:>8.2} {:>7.2}",
            r.scenario,
            r.server,
            r.receivers,
            r.senders,
            r.target_rate,
            r.expected,
            r.received,
            r.loss,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            r.p999_us as f64 / 1000.0,
            r.max_us as f64 / 1000.0,
            r.per_second,
            r.server_rss_kib as f64 / 1024.0,
            r.server_cpu_secs,
            r.server_cpu_us_per_unit,
            r.harness_cpu_secs,
        );
        if r.ack_p50_us > 0 {
            println!(
                "           send to ack (stored): p50 {:.2} ms, p99 {:.2} ms",
                r.ack_p50_us as f64 / 1000.0,
                r.ack_p99_us as f64 / 1000.0
            );
        }
        if r.scenario.starts_with("abuse") {
            print_abuse(r);
        }
        if r.scenario == "idle" {
            println!(
                "           memory per idle connection: {:.1} KiB",
                r.rss_kib_per_connection
            );
        }
    }
    let ratios = pair_ratios(reports);
    if let Some(median) = median(&ratios) {
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "CPU per delivery, Flack / ceiling, in alternating pairs (cpu_pair): {} (median {median:.2})",
            each.join(", ")
        );
    }
}

/// The abuse soak's extra lines: the server's peaks, `GET /`, the targets of issue 15, and
/// what each side got.
fn print_abuse(r: &Report) {
    let ms = |us: u64| us as f64 / 1000.0;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "           server peaks: RSS {:.1} MiB (VmHWM; sampled VmRSS {:.1}), open files {} (limit {}); ordinary posts refused: {}",
        mib(r.peak_rss_kib),
        mib(r.server_rss_kib),
        r.peak_open_files,
        r.open_file_limit,
        r.refused
    );
    println!(
        "           GET / every 100 ms: {} probes, p99 {:.2} ms, slowest {:.2} ms, {} failed",
        r.probes,
        ms(r.probe_p99_us),
        ms(r.probe_max_us),
        r.probe_failures
    );
    println!(
        "           CPU while measured ({:.1} s on {} cores): server {:.1} s, harness {:.1} s, other processes {:.1} s",
        r.machine_seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.server_cpu_secs,
        r.harness_cpu_secs,
        r.other_cpu_secs
    );
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "           targets: no loss {}; p99 < 100 ms {}; peak RSS < 512 MiB {}; GET / within 100 ms {}",
        mark(r.loss == 0),
        mark(r.p99_us < 100_000),
        mark(r.peak_rss_kib < 512 * 1024),
        mark(r.probe_max_us < 100_000 && r.probe_failures == 0)
    );
    for (side, counts) in &r.tallies {
        let each: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("           {side}: {}", each.join(", "));
    }
}

/// Flack's CPU per delivery over the ceiling's, for each `cpu_pair` measurement of Flack
/// followed by one of the ceiling, in order.
pub fn pair_ratios(reports: &[Report]) -> Vec<f64> {
    let pairs: Vec<&Report> = reports
        .iter()
        .filter(|r| r.scenario == "cpu_pair")
        .collect();
    pairs
        .windows(2)
        .filter(|w| w[0].server == "flack" && w[1].server == "ceiling")
        .filter(|w| w[1].server_cpu_us_per_unit > 0.0)
        .map(|w| w[0].server_cpu_us_per_unit / w[1].server_cpu_us_per_unit)
        .collect()
}

/// The middle value (the mean of the middle two for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(server: &str, us: f64) -> Report {
        Report {
            scenario: "cpu_pair".into(),
            server: server.into(),
            server_cpu_us_per_unit: us,
            ..Report::default()
        }
    }

    /// Each Flack measurement is compared with the ceiling's right after it, other
    /// scenarios in between are skipped, and the summary is the median of the ratios.
    #[test]
    fn pairs_compare_each_flack_run_with_the_next_ceiling_run() {
        let mut other = pair("ceiling", 1.0);
        other.scenario = "fanout".into();
        let reports = [
            pair("flack", 45.0),
            other,
            pair("ceiling", 30.0),
            pair("flack", 60.0),
            pair("ceiling", 30.0),
            pair("flack", 33.0),
            pair("ceiling", 33.0),
        ];
        let ratios = pair_ratios(&reports);
        assert_eq!(ratios, [1.5, 2.0, 1.0]);
        assert_eq!(median(&ratios), Some(1.5));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
        assert_eq!(median(&[]), None);
    }

    /// Memory per idle connection counts only what the second half of the connections
    /// added, so memory the server held before they came (and they reused) is not
    /// credited to them; connects per second and CPU cover all of them.
    #[test]
    fn idle_memory_is_measured_over_the_second_half() {
        let at = |cpu_secs, rss_kib| Sample { cpu_secs, rss_kib };
        let report = Report::idle(
            Kind::Flack,
            1000,
            1000,
            Duration::from_millis(500),
            at(1.0, 90_000),
            (at(1.5, 95_000), 500),
            at(2.0, 100_000),
        );
        assert_eq!(report.rss_kib_per_connection, 10.0);
        assert_eq!(report.per_second, 2000.0);
        assert_eq!(report.server_cpu_us_per_unit, 1000.0);
        assert_eq!(report.loss, 0);
    }
}
