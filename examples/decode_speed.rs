//! Rough single-core throughput of `Decoder::decode` on realistic ~300-byte event lines.
//!
//! `cargo run --release --example decode_speed [LINES] [PASSES]` (defaults 1,000,000 and 3).
//! Prints the best pass, in wall time and in this thread's CPU time (which is what counts on
//! a machine shared with other work).
//! Not a benchmark harness: a quick number to compare against the SPEC's throughput needs.

use std::hint::black_box;
use std::time::Instant;

use spiral::event::{Channel, Decoder};
use spiral::time::format_rfc3339;

const TOUCHPOINTS: [(&str, Channel); 6] = [
    ("web_visit", Channel::Online),
    ("ad_click", Channel::Online),
    ("email_open", Channel::Online),
    ("webinar", Channel::Online),
    ("trade_show_scan", Channel::Offline),
    ("sales_call", Channel::Offline),
];

fn main() {
    let lines: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("LINES must be a number"))
        .unwrap_or(1_000_000);
    let passes: usize = std::env::args()
        .nth(2)
        .map(|n| n.parse().expect("PASSES must be a number"))
        .unwrap_or(3);

    // A small xorshift, so the example needs no RNG crate.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let start_ms = 1_767_225_600_000; // 2026-01-01
    let mut messages = Vec::with_capacity(lines);
    for i in 0..lines {
        let r = next();
        let (touchpoint, _) = TOUCHPOINTS[(r % 6) as usize];
        let at = start_ms + (r >> 8) as i64 % (90 * 86_400_000);
        let occurred_at = if r & 1 == 0 {
            format!("\"{}\"", format_rfc3339(at))
        } else {
            at.to_string()
        };
        let msg = format!(
            r#"{{"event_id":"evt-{i:010}-{r:016x}","type":"touch","occurred_at":{occurred_at},"account_id":"acct-{:06}","contact_id":"contact-{:08}","anonymous_id":"anon-{:016x}","touchpoint":"{touchpoint}","campaign":"spring-launch-{}","source":"linkedin","cost":{}.{:02},"attributes":{{"segment":"enterprise","region":"emea","industry":"software"}}}}"#,
            r % 50_000,
            (r >> 16) % 1_000_000,
            r.rotate_left(7),
            r % 12,
            r % 500,
            r % 100,
        );
        messages.push(msg.into_bytes());
    }
    let bytes: usize = messages.iter().map(Vec::len).sum();

    let decoder = Decoder::new(65_536, TOUCHPOINTS.iter().map(|&(k, c)| (k.to_string(), c)));
    // One warm-up pass, then the timed one.
    for msg in messages.iter().take(10_000) {
        black_box(decoder.decode(msg).is_ok());
    }
    let mut best = (f64::INFINITY, f64::INFINITY);
    for _ in 0..passes {
        let cpu_started = thread_cpu_seconds();
        let started = Instant::now();
        let mut accepted = 0usize;
        for msg in &messages {
            if let Ok(event) = decoder.decode(black_box(msg)) {
                accepted += 1;
                black_box(&event);
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = thread_cpu_seconds().map_or(wall, |end| end - cpu_started.unwrap_or(0.0));
        assert_eq!(accepted, lines, "every generated line is a valid touch");
        best = (best.0.min(wall), best.1.min(cpu));
    }
    // For scale on the same machine: serde_json into a borrowing struct (no validation of
    // the SPEC rules, no duplicate-key checks), best of the same number of passes.
    let mut serde_best = f64::INFINITY;
    for _ in 0..passes {
        let started = Instant::now();
        let mut ok = 0usize;
        for msg in &messages {
            ok += usize::from(serde_json::from_slice::<SerdeEvent>(black_box(msg)).is_ok());
        }
        assert_eq!(ok, lines, "serde_json reads every generated line");
        serde_best = serde_best.min(started.elapsed().as_secs_f64());
    }
    let avg = bytes as f64 / lines as f64;
    for (what, secs) in [("wall", best.0), ("cpu", best.1)] {
        println!(
            "{what}: {lines} lines of {avg:.0} bytes in {secs:.3}s: {:.2} M lines/s, {:.0} MB/s",
            lines as f64 / secs / 1e6,
            bytes as f64 / secs / 1e6,
        );
    }
    println!(
        "serde_json typed baseline (wall): {:.2} M lines/s, {:.0} MB/s",
        lines as f64 / serde_best / 1e6,
        bytes as f64 / serde_best / 1e6,
    );
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct SerdeEvent<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    event_type: Option<&'a str>,
    occurred_at: serde_json::Value,
    account_id: Option<&'a str>,
    contact_id: Option<&'a str>,
    anonymous_id: Option<&'a str>,
    touchpoint: Option<&'a str>,
    channel: Option<&'a str>,
    campaign: Option<&'a str>,
    source: Option<&'a str>,
    cost: Option<f64>,
    #[serde(borrow)]
    attributes: std::collections::HashMap<&'a str, &'a str>,
}

/// CPU time of this thread (Linux `/proc/thread-self/schedstat`, nanoseconds), if known.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}
