//! `flack-bench`: Flack's load generator. It starts the servers it measures as separate
//! processes (Flack, and a bare broadcast "ceiling" for comparison), drives them over
//! Flack's documented protocol, and reports latency, loss, throughput, and the servers' and
//! its own CPU and memory.
//!
//! Commands:
//! - `suite [--quick] [--out DIR]`: the standard suite (see BENCHMARKS.md).
//! - `smoke`: a seconds-long run of every scenario, for CI.
//! - `fanout --receivers N --senders M --rate R --seconds T [--server flack|ceiling]
//!   [--history-probe true] [--room anonymous|members]` (also fetch the history every 20 ms
//!   and time it; `members`: a real room, see `fanout::Mode`; `anonymous` by default)
//!   [--slow-every K --slow-delay-ms D] (every K-th receiver waits D ms after each frame it
//!   reads, and is reported apart: `fanout::Slow`)
//! - `step --receivers N --senders M --start R --p99-ms B --seconds T [--server ...]
//!   [--room ...]`
//! - `storm [--clients 1000] [--addresses 16] [--history 20] [--missed 10]
//!   [--patience-secs 60]`: the reconnect storm (issue 19): every client reconnects,
//!   authenticates and joins one room with a cursor at once; see `storm.rs`.
//! - `idle --connections C [--server ...]`
//! - `first-load --workers W --seconds T --posts P` (P new messages a second meanwhile)
//! - `abuse [--seconds 60] [--attacks all|none|1,2,...]`: 100 ordinary clients chat while
//!   the attacks of hardening issue 15 (all, none, or those numbered) run against Flack with
//!   its default limits. `--fill N`: messages of 4,000 characters put in the channels
//!   attacks 1 and 7 use (100).
//! - `cluster [--quick] [--seconds 10] [--clients 1000] [--baseline sqlite|postgres|both]`: cluster
//!   mode (issue 16) against single-node Flack in the same run: delivery across two
//!   instances (`--seconds` long), the CPU of Flack, Redis and PostgreSQL, one room's
//!   acknowledged post rate, and failover of `--clients` clients when an instance is killed.
//!   PostgreSQL from `FLACK_BENCH_POSTGRES` (default `postgres://postgres@127.0.0.1:5432`),
//!   Redis from `FLACK_BENCH_REDIS` (default `redis://127.0.0.1:6379/`). `--quick`: the
//!   smoke run's sizes (a few seconds each), which the other options then change.
//! - `cluster-beat [--users 1000] [--channels 100] [--addresses N] [--seconds 10]
//!   [--split true]`: what one heartbeat of a cluster instance costs (Redis commands,
//!   bytes and CPU, wall time) with `--users` users over `--channels` channels on two
//!   instances, connecting from `--addresses` client addresses (one each by default), on a
//!   Redis of the run's own. Each channel has users through both instances, or with
//!   `--split true` through one.
//! - `markup [--iterations 1000]`: the time to read and render one 4,000-character message
//!   body as formatted HTML (issue 18: under 1 ms), for several shapes of body.
//! - `ceiling --addr A`: serve the ceiling (used by the others).

mod abuse;
mod ceiling;
mod cluster;
mod fanout;
mod first_load;
mod heartbeat;
mod idle;
mod markup;
mod net;
mod procstat;
mod report;
mod servers;
mod storm;

use fanout::{Mode, Slow};
use report::{print_table, Report};
use servers::Kind;
use std::collections::HashMap;
use std::time::Duration;

/// `--name value` pairs.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: &[String]) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut iter = raw.iter();
        while let Some(arg) = iter.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg}"))?;
            let value = if name == "quick" {
                "true".to_owned()
            } else {
                iter.next()
                    .cloned()
                    .ok_or_else(|| format!("--{name} needs a value"))?
            };
            map.insert(name.to_owned(), value);
        }
        Ok(Args(map))
    }

    fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.0.get(name) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot read {v:?}")),
            None => Ok(default),
        }
    }

    fn mode(&self) -> Result<fanout::Mode, String> {
        match self.0.get("room").map(String::as_str) {
            None | Some("anonymous") => Ok(fanout::Mode::Anonymous),
            Some("members") => Ok(fanout::Mode::Members),
            Some(other) => Err(format!("--room {other}: expected anonymous or members")),
        }
    }

    fn kind(&self) -> Result<Kind, String> {
        match self.0.get("server").map(String::as_str) {
            None | Some("flack") => Ok(Kind::Flack),
            Some("ceiling") => Ok(Kind::Ceiling),
            Some(other) => Err(format!("--server {other}: expected flack or ceiling")),
        }
    }
}

/// Lets this process (and the servers it starts) hold tens of thousands of sockets.
fn raise_open_file_limit() {
    let wanted: libc::rlim_t = 200_000;
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: wanted.max(limit.rlim_cur),
            rlim_max: wanted.max(limit.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            // Not allowed to raise the hard limit: take what there is.
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v)
}

/// Where finished measurements go as soon as they exist, so a run that fails late keeps
/// what it measured.
fn record(args: &Args, command: &str, report: &Report) {
    let Ok(line) = serde_json::to_string(report) else {
        return;
    };
    eprintln!("  {line}");
    if let Some(dir) = args.0.get("out") {
        let _ = std::fs::create_dir_all(dir);
        let path = std::path::Path::new(dir).join(format!("{command}.jsonl"));
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// The most connections this process can hold: its open-file limit, less some room for
/// everything else (the server started with it has the same limit).
fn connection_budget(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok {
        return wanted;
    }
    wanted.min((limit.rlim_cur as usize).saturating_sub(100))
}

async fn suite(args: &Args, smoke: bool) -> Result<Vec<Report>, String> {
    let quick = smoke || args.0.contains_key("quick");
    let (t, step_t, sizes, idle_n, load_t): (f64, f64, Vec<usize>, usize, f64) = if smoke {
        (2.0, 1.0, vec![5], 50, 1.0)
    } else if quick {
        (10.0, 5.0, vec![10, 1000], 5000, 5.0)
    } else {
        (60.0, 10.0, vec![10, 1000, 5000], 20_000, 20.0)
    };
    let mut reports = Vec::new();
    for &n in &sizes {
        for kind in [Kind::Flack, Kind::Ceiling] {
            let rate = if smoke { 20.0 } else { 100.0 };
            let senders = if smoke { 2 } else { 10 };
            eprintln!("fan-out: {n} receivers, {senders} senders, {rate}/s for {t}s ({kind:?})");
            let report = fanout::run(
                kind,
                n,
                senders,
                rate,
                secs(t),
                false,
                (Mode::Anonymous, Slow::NONE),
            )
            .await?;
            record(args, "suite", &report);
            reports.push(report);
        }
    }
    // CPU per delivery at 10 receivers: a run there is only a few seconds of CPU, and the
    // machine's speed drifts from one minute to the next, so Flack and the ceiling are also
    // measured in short runs taken in alternating pairs; the table ends with each pair's
    // ratio and their median.
    let (pairs, pair_t, pair_n) = if smoke {
        (1, 1.0, 5)
    } else if quick {
        (3, 10.0, 10)
    } else {
        (5, 20.0, 10)
    };
    for i in 0..pairs {
        for kind in [Kind::Flack, Kind::Ceiling] {
            let senders = if smoke { 2 } else { 10 };
            let rate = if smoke { 20.0 } else { 100.0 };
            eprintln!(
                "CPU pair {}: {pair_n} receivers for {pair_t}s ({kind:?})",
                i + 1
            );
            let mut report = fanout::run(
                kind,
                pair_n,
                senders,
                rate,
                secs(pair_t),
                false,
                (Mode::Anonymous, Slow::NONE),
            )
            .await?;
            report.scenario = "cpu_pair".into();
            record(args, "suite", &report);
            reports.push(report);
        }
    }
    // History fetches while 1,000 receivers take the standard load, measured on its own run
    // so that the fetches' CPU does not count against Flack's per-delivery figure above.
    let (history_n, history_t) = if smoke { (5, 2.0) } else { (1000, 20.0) };
    eprintln!("history under load: {history_n} receivers, fetching history every 20 ms");
    let senders = if smoke { 2 } else { 10 };
    let rate = if smoke { 20.0 } else { 100.0 };
    let mut report = fanout::run(
        Kind::Flack,
        history_n,
        senders,
        rate,
        secs(history_t),
        true,
        (Mode::Anonymous, Slow::NONE),
    )
    .await?;
    report.scenario = "history".into();
    record(args, "suite", &report);
    reports.push(report);
    let step_n = if smoke { 5 } else { 1000 };
    for kind in [Kind::Flack, Kind::Ceiling] {
        eprintln!("step: {step_n} receivers, raising the rate until p99 > 100 ms ({kind:?})");
        let max_steps = if smoke { 2 } else { 30 };
        let (best, steps) = fanout::step(
            (kind, Mode::Anonymous),
            step_n,
            10,
            100.0,
            Duration::from_millis(100),
            secs(step_t),
            max_steps,
        )
        .await?;
        for mut s in steps {
            s.scenario = "step".into();
            record(args, "suite", &s);
            reports.push(s);
        }
        if let Some(mut best) = best {
            best.scenario = "step_best".into();
            record(args, "suite", &best);
            reports.push(best);
        }
    }
    // Real rooms (issue 19): members that authenticate and join, senders in the room, every
    // frame decoded; the ceiling moves frames of the same size, decoded the same way.
    let member_sizes: Vec<usize> = if smoke { vec![5] } else { vec![100, 1000] };
    for &n in &member_sizes {
        for kind in [Kind::Flack, Kind::Ceiling] {
            let rate = if smoke { 20.0 } else { 100.0 };
            let senders = if smoke { 2 } else { 10 };
            eprintln!("members: {n} receivers, {senders} senders, {rate}/s for {t}s ({kind:?})");
            let report = fanout::run(
                kind,
                n,
                senders,
                rate,
                secs(t),
                false,
                (Mode::Members, Slow::NONE),
            )
            .await?;
            record(args, "suite", &report);
            reports.push(report);
        }
    }
    let storm_sizes: Vec<usize> = if smoke { vec![20] } else { vec![1000, 10_000] };
    for &clients in &storm_sizes {
        eprintln!("storm: {clients} clients reconnect at once");
        let report = storm::run(&storm::Scale {
            clients: connection_budget(clients),
            addresses: 16,
            history: 20,
            missed: 10,
            patience: secs(60.0),
        })
        .await?;
        record(args, "suite", &report);
        reports.push(report);
    }
    let idle_n = connection_budget(idle_n);
    for kind in [Kind::Flack, Kind::Ceiling] {
        eprintln!("idle: {idle_n} connections ({kind:?})");
        let report = idle::run(kind, idle_n).await?;
        record(args, "suite", &report);
        reports.push(report);
    }
    // Once with a channel nobody writes in (every load after the first is served from the
    // page cache), once with 10 new messages a second (each one forces a new render).
    for posts in [0.0, 10.0] {
        eprintln!("first load: 100-message channel page for {load_t}s, {posts} posts/s");
        let report = first_load::run(if smoke { 2 } else { 16 }, secs(load_t), posts).await?;
        record(args, "suite", &report);
        reports.push(report);
    }
    if smoke {
        eprintln!("cluster: two instances, a few seconds of each measurement, small");
        reports.extend(cluster::run(&cluster::Scale::smoke()).await?);
        eprintln!("abuse: every attack, a few seconds, small");
        let all = abuse::parse_attacks("all")?;
        let report = abuse::run(secs(3.0), &all, abuse::Scale::smoke()).await?;
        record(args, "suite", &report);
        reports.push(report);
    }
    Ok(reports)
}

async fn run(command: &str, args: &Args) -> Result<Vec<Report>, String> {
    match command {
        "suite" => suite(args, false).await,
        "smoke" => {
            let reports = suite(args, true).await?;
            // The smoke run checks that everything works, not how fast.
            for r in &reports {
                if r.scenario != "step" && r.received == 0 {
                    return Err(format!(
                        "{} against {} received nothing",
                        r.scenario, r.server
                    ));
                }
            }
            Ok(reports)
        }
        "fanout" => Ok(vec![
            fanout::run(
                args.kind()?,
                args.get("receivers", 100)?,
                args.get("senders", 10)?,
                args.get("rate", 100.0)?,
                secs(args.get("seconds", 10.0)?),
                args.get("history-probe", false)?,
                (
                    args.mode()?,
                    Slow {
                        every: args.get("slow-every", 0)?,
                        delay: Duration::from_millis(args.get("slow-delay-ms", 0)?),
                    },
                ),
            )
            .await?,
        ]),
        "storm" => Ok(vec![
            storm::run(&storm::Scale {
                clients: connection_budget(args.get("clients", 1000)?),
                addresses: args.get("addresses", 16)?,
                history: args.get("history", 20)?,
                missed: args.get("missed", 10)?,
                patience: secs(args.get("patience-secs", 60.0)?),
            })
            .await?,
        ]),
        "step" => {
            let (best, mut steps) = fanout::step(
                (args.kind()?, args.mode()?),
                args.get("receivers", 1000)?,
                args.get("senders", 10)?,
                args.get("start", 100.0)?,
                Duration::from_millis(args.get("p99-ms", 100)?),
                secs(args.get("seconds", 10.0)?),
                args.get("max-steps", 30)?,
            )
            .await?;
            if let Some(mut best) = best {
                best.scenario = "step_best".into();
                steps.push(best);
            }
            Ok(steps)
        }
        "idle" => Ok(vec![
            idle::run(args.kind()?, args.get("connections", 1000)?).await?,
        ]),
        "first-load" => Ok(vec![
            first_load::run(
                args.get("workers", 16)?,
                secs(args.get("seconds", 10.0)?),
                args.get("posts", 0.0)?,
            )
            .await?,
        ]),
        "abuse" => {
            let attacks = abuse::parse_attacks(&args.get("attacks", "all".to_owned())?)?;
            let duration = secs(args.get("seconds", 60.0)?);
            let mut scale = abuse::Scale::soak();
            scale.fill = args.get("fill", scale.fill)?;
            Ok(vec![abuse::run(duration, &attacks, scale).await?])
        }
        "cluster" => {
            let mut scale = if args.0.contains_key("quick") {
                cluster::Scale::smoke()
            } else {
                cluster::Scale::full()
            };
            scale.delivery = secs(args.get("seconds", scale.delivery.as_secs_f64())?);
            scale.clients = args.get("clients", scale.clients)?;
            scale.baselines = cluster::Baseline::parse(&args.get("baseline", "both".to_owned())?)?;
            cluster::run(&scale).await
        }
        "cluster-beat" => {
            let users = args.get("users", 1000)?;
            let scale = heartbeat::Scale {
                users,
                channels: args.get("channels", 100)?,
                addresses: args.get("addresses", users)?,
                window: secs(args.get("seconds", 10.0)?),
                split: args.get("split", false)?,
            };
            Ok(vec![heartbeat::run(&scale).await?])
        }
        other => Err(format!(
            "unknown command {other:?}; see the top of src/bin/flack-bench/main.rs"
        )),
    }
}

#[tokio::main]
async fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = raw.split_first() else {
        eprintln!(
            "usage: flack-bench suite|smoke|fanout|step|storm|idle|first-load|abuse|cluster|cluster-beat|markup|ceiling [--options]"
        );
        std::process::exit(2);
    };
    let args = match Args::parse(rest) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if command == "ceiling" {
        let addr = args.get(
            "addr",
            "127.0.0.1:3999".parse().unwrap_or_else(|_| unreachable!()),
        );
        match addr {
            Ok(addr) => {
                if let Err(e) = ceiling::serve(addr).await {
                    eprintln!("ceiling: {e}");
                    std::process::exit(1);
                }
            }
            Err(e) => eprintln!("{e}"),
        }
        return;
    }
    if command == "markup" {
        if let Err(e) = args.get("iterations", 1000).and_then(markup::run) {
            eprintln!("flack-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    raise_open_file_limit();
    match run(command, &args).await {
        Ok(reports) => {
            print_table(&reports);
            let json: Vec<String> = reports
                .iter()
                .filter_map(|r| serde_json::to_string(r).ok())
                .collect();
            if args.0.contains_key("out") && command == "suite" {
                // Already written, one line at a time, by `record`.
            } else if let Some(dir) = args.0.get("out") {
                let _ = std::fs::create_dir_all(dir);
                let path = std::path::Path::new(dir).join(format!("{command}.jsonl"));
                if let Err(e) = std::fs::write(&path, json.join("\n") + "\n") {
                    eprintln!("cannot write {}: {e}", path.display());
                }
            } else {
                for line in json {
                    println!("{line}");
                }
            }
        }
        Err(e) => {
            eprintln!("flack-bench: {e}");
            std::process::exit(1);
        }
    }
}
