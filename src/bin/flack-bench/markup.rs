//! `flack-bench markup`: how long the server takes to read and render one message body of
//! 4,000 characters (the default limit) as formatted HTML, for bodies of several shapes,
//! including hostile ones. Issue 18 asks for under 1 ms each.

use flack::app::markup::blocks_html;
use flack::chat::model::markup::parse;
use std::time::{Duration, Instant};

/// Characters in every body measured.
const CHARS: usize = 4000;

/// `unit` repeated up to [`CHARS`] characters (cut at a character boundary).
fn fill(unit: &str) -> String {
    unit.chars().cycle().take(CHARS).collect()
}

/// The bodies measured: a name and the text.
fn shapes() -> Vec<(&'static str, String)> {
    vec![
        (
            "plain prose",
            fill("The quick brown fox jumps over the lazy dog, and @ada reads it twice. "),
        ),
        (
            "heavy formatting",
            fill(
                "**bold** *italic* ~~gone~~ `code` [docs](https://example.org/a?b=1) \
                 https://example.org/x_(y). :tada: @ada\n- item **one**\n> quoted _text_\n",
            ),
        ),
        (
            "one code block",
            format!(
                "```rust\n{}\n```",
                fill("fn main() { let x = \"<b>*not* **markup**</b>\"; }\n")
                    .chars()
                    .take(CHARS - 12)
                    .collect::<String>()
            ),
        ),
        ("emphasis bomb", fill("*a **b ***c ~~d _e __f ")),
        ("4,000 stars", "*".repeat(CHARS)),
        (
            "unclosed links and ticks",
            fill("[a](b ` `` [x](javascript:y) "),
        ),
        ("shortcodes", fill(":tada::fire::nope:")),
    ]
}

/// The median, 90th and 99th percentiles and slowest of `times`.
fn summary(times: &mut [Duration]) -> [Duration; 4] {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    [at(0.5), at(0.9), at(0.99), at(1.0)]
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Measures every shape `iterations` times (after as many untimed warm-up rounds) and prints
/// one table row per shape: reading alone, and reading plus rendering to HTML, in µs.
pub fn run(iterations: usize) -> Result<(), String> {
    if iterations == 0 {
        return Err("--iterations must be at least 1".into());
    }
    // On a machine shared with other work, the slowest runs are the scheduler's (a few
    // milliseconds of waiting for a core), so the load is printed with the times.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.trim());
    println!("| body (4,000 characters) | read p50 / p90 µs | read + render p50 / p90 / p99 / max µs | HTML bytes |");
    println!("|---|---|---|---|");
    let mut slowest = Duration::ZERO;
    for (name, body) in shapes() {
        let mut read = Vec::with_capacity(iterations);
        let mut rendered = Vec::with_capacity(iterations);
        let mut bytes = 0;
        for round in 0..2 * iterations {
            let started = Instant::now();
            let blocks = parse(&body);
            let parsed = started.elapsed();
            let html = blocks_html(&blocks, "ada");
            let total = started.elapsed();
            bytes = html.len();
            if round >= iterations {
                read.push(parsed);
                rendered.push(total);
            }
        }
        let [r50, r90, ..] = summary(&mut read);
        let [t50, t90, t99, tmax] = summary(&mut rendered);
        slowest = slowest.max(t90);
        println!(
            "| {name} | {} / {} | {} / {} / {} / {} | {bytes} |",
            micros(r50),
            micros(r90),
            micros(t50),
            micros(t90),
            micros(t99),
            micros(tmax)
        );
    }
    println!("\nslowest p90 (read + render): {} µs", micros(slowest));
    Ok(())
}
