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
    /// Fan-out: `anonymous` (readers that never sign in, senders outside the room) or
    /// `members` (a real room: see `fanout::Mode`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub room: String,
    /// Fan-out in members mode: bytes of a frame carrying one live message, on average.
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub message_frame_bytes: f64,
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
    /// Fan-out against Flack on SQLite: the store threads' part of
    /// `server_cpu_us_per_unit` (its writer and checkpoints).
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub store_cpu_us_per_unit: f64,
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
    /// Cluster: CPU seconds of Redis, of the PostgreSQL backends serving the run's
    /// databases, and of every PostgreSQL process (its WAL writer and checkpointer too,
    /// and anyone else's backends) while measured.
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub redis_cpu_secs: f64,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub postgres_cpu_secs: f64,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub postgres_all_cpu_secs: f64,
    /// Cluster post rate: the slowest acknowledgement.
    #[serde(skip_serializing_if = "is_zero")]
    pub ack_max_us: u64,
    /// Cluster failover: time from the kill until each client's join on the other instance
    /// was answered (`p50_us`.. `max_us` hold the time until it held every message
    /// acknowledged before the kill).
    #[serde(skip_serializing_if = "is_zero")]
    pub rejoined_p50_us: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub rejoined_p99_us: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub rejoined_max_us: u64,
    /// Cluster failover: messages a client got twice, got before an older one, clients that
    /// did not rejoin or catch up, and the different problems clients met.
    #[serde(skip_serializing_if = "is_zero")]
    pub duplicates: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub out_of_order: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub clients_behind: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub client_problems: u64,
    /// Cluster failover: connections the machine's listening sockets dropped (accept queue
    /// full) from the kill until every client was back.
    #[serde(skip_serializing_if = "is_zero")]
    pub listen_overflows: u64,
    /// Cluster: warning and error lines in the instances' logs.
    #[serde(skip_serializing_if = "is_zero")]
    pub logged_problems: u64,
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
            store_cpu_us_per_unit: phase.store_cpu_secs * 1e6 / phase.received.max(1) as f64,
            message_frame_bytes: phase.message_frame_bytes,
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
        if !r.room.is_empty() {
            println!(
                "           room: {} (frame per message: {:.0} bytes)",
                r.room, r.message_frame_bytes
            );
        }
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
        if r.scenario.starts_with("cluster") {
            print_cluster(r);
        }
        if r.scenario == "storm" {
            for (what, values) in &r.tallies {
                let each: Vec<String> = values.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("           {what}: {}", each.join(", "));
            }
        }
        if r.scenario == "idle" {
            println!(
                "           memory per idle connection: {:.1} KiB",
                r.rss_kib_per_connection
            );
        }
    }
    print_cluster_targets(reports);
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

/// A cluster measurement's extra lines: where the CPU went, and the failover's outcome.
fn print_cluster(r: &Report) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "           CPU while measured ({:.1} s): Flack {:.2} s, Redis {:.2} s, PostgreSQL {:.2} s (the run's backends; {:.2} s all its processes), harness {:.2} s, other processes {:.2} s",
        r.machine_seconds,
        r.server_cpu_secs,
        r.redis_cpu_secs,
        r.postgres_cpu_secs,
        r.postgres_all_cpu_secs,
        r.harness_cpu_secs,
        r.other_cpu_secs
    );
    match r.scenario.as_str() {
        "cluster_delivery" => {
            let per = |secs: f64| secs * 1e6 / r.received.max(1) as f64;
            println!(
                "           CPU per delivery: Flack {:.2} us, Redis {:.2} us, PostgreSQL {:.2} us (all its processes {:.2} us)",
                per(r.server_cpu_secs),
                per(r.redis_cpu_secs),
                per(r.postgres_cpu_secs),
                per(r.postgres_all_cpu_secs)
            );
        }
        "cluster_elsewhere" => println!(
            "           instance B, with no reader of the room: {:.3} s of CPU over {:.1} s ({:.2} us per delivery made on A)",
            r.server_cpu_secs,
            r.machine_seconds,
            r.server_cpu_us_per_unit
        ),
        "cluster_post_rate" | "cluster_post_paced" => println!(
            "           one room: {:.0} acknowledged posts/s from {} posters; send to ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; refused {}",
            r.per_second,
            r.senders,
            ms(r.ack_p50_us),
            ms(r.ack_p99_us),
            ms(r.ack_max_us),
            r.refused
        ),
        "cluster_failover" => {
            println!(
                "           after the kill: rejoined on B p50 {:.0} ms, p99 {:.0} ms, all {:.0} ms; caught up p50 {:.0} ms, p99 {:.0} ms, all {:.0} ms",
                ms(r.rejoined_p50_us),
                ms(r.rejoined_p99_us),
                ms(r.rejoined_max_us),
                ms(r.p50_us),
                ms(r.p99_us),
                ms(r.max_us)
            );
            println!(
                "           connections dropped by a full accept queue meanwhile (the client retries after 1 s): {}",
                r.listen_overflows
            );
            println!(
                "           {} acknowledged messages x {} clients: {} missing, {} duplicates, {} out of order; {} clients behind, {} kinds of client problem, {} warning/error lines logged",
                r.sent,
                r.receivers,
                r.loss,
                r.duplicates,
                r.out_of_order,
                r.clients_behind,
                r.client_problems,
                r.logged_problems
            );
        }
        _ => {}
    }
}

/// The cluster's figures against single-node Flack's and against issue 16's targets.
fn print_cluster_targets(reports: &[Report]) {
    let find = |scenario: &str, server: &str| {
        reports
            .iter()
            .find(|r| r.scenario == scenario && r.server == server)
    };
    let ms = |us: u64| us as f64 / 1000.0;
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    let cluster = find("cluster_delivery", "cluster");
    for baseline in ["flack", "flackpg"] {
        let (Some(c), Some(b)) = (cluster, find("cluster_delivery", baseline)) else {
            continue;
        };
        let cpu = |r: &Report| {
            (r.server_cpu_secs + r.redis_cpu_secs + r.postgres_cpu_secs) * 1e6
                / r.received.max(1) as f64
        };
        println!(
            "cluster against {baseline}: delivery p50 {:.2} / {:.2} ms, p99 {:.2} / {:.2} ms (p99 within +25 ms: {}; loss {}: {}); Flack CPU per delivery {:.2} / {:.2} us ({:.2}x), with Redis and the run's PostgreSQL backends {:.2} / {:.2} us ({:.2}x)",
            ms(c.p50_us),
            ms(b.p50_us),
            ms(c.p99_us),
            ms(b.p99_us),
            mark(c.p99_us <= b.p99_us + 25_000),
            c.loss,
            mark(c.loss == 0),
            c.server_cpu_us_per_unit,
            b.server_cpu_us_per_unit,
            c.server_cpu_us_per_unit / b.server_cpu_us_per_unit.max(f64::EPSILON),
            cpu(c),
            cpu(b),
            cpu(c) / cpu(b).max(f64::EPSILON)
        );
        if let (Some(c), Some(b)) = (
            find("cluster_post_rate", "cluster"),
            find("cluster_post_rate", baseline),
        ) {
            println!(
                "cluster against {baseline}: one room's acknowledged posts {:.0} / {:.0} per second ({:.2}x; >= 2,000: {}), ack p99 {:.2} / {:.2} ms",
                c.per_second,
                b.per_second,
                c.per_second / b.per_second.max(f64::EPSILON),
                mark(c.per_second >= 2000.0),
                ms(c.ack_p99_us),
                ms(b.ack_p99_us)
            );
        }
        if let (Some(c), Some(b)) = (
            find("cluster_post_paced", "cluster"),
            find("cluster_post_paced", baseline),
        ) {
            println!(
                "cluster against {baseline}: at {:.0} posts/s in one room, acknowledged {:.0} / {:.0} per second, ack p50 {:.2} / {:.2} ms, p99 {:.2} / {:.2} ms",
                c.target_rate,
                c.per_second,
                b.per_second,
                ms(c.ack_p50_us),
                ms(b.ack_p50_us),
                ms(c.ack_p99_us),
                ms(b.ack_p99_us)
            );
        }
    }
    if let Some(f) = find("cluster_failover", "cluster") {
        println!(
            "cluster failover: all {} clients caught up within {:.2} s (<= 5 s: {}); acknowledged loss {}, duplicates {}, out of order {} (none: {})",
            f.receivers,
            ms(f.max_us) / 1000.0,
            mark(f.clients_behind == 0 && f.max_us > 0 && f.max_us <= 5_000_000),
            f.loss,
            f.duplicates,
            f.out_of_order,
            mark(f.loss == 0 && f.duplicates == 0 && f.out_of_order == 0)
        );
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
