//! How fast `spiral::generate` runs, and what the traffic it makes looks like.
//!
//! `cargo run --release --example generate_speed -- [EVENTS] [ACCOUNTS] [SEED]`
//! (defaults: 1,000,000 events from 100,000 accounts, seed 1). Lines go to a sink; the
//! profile counts kinds, identify/late/duplicate/broken shares and the event-time span.

use std::collections::BTreeMap;
use std::time::Instant;

use spiral::generate::{GenerateOptions, LineKind, generate, generate_with};

/// The watermark trails the newest event time by this much (config/spiral.toml).
const ALLOWED_LATENESS_MS: i64 = 2 * 86_400_000;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let opts = GenerateOptions {
        events: args.next().unwrap_or(1_000_000),
        accounts: args.next().unwrap_or(100_000),
        seed: args.next().unwrap_or(1),
        ..GenerateOptions::default()
    };

    let started = Instant::now();
    let stats = generate(&opts, &mut std::io::sink())?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} lines from {} accounts in {secs:.3} s ({:.2} M lines/s)",
        stats.lines,
        opts.accounts,
        stats.lines as f64 / secs / 1e6
    );

    let mut bytes = 0u64;
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut late, mut offline, mut exact) = (0u64, 0u64, 0u64);
    let (mut first, mut newest) = (i64::MAX, i64::MIN);
    generate_with(&opts, |line, kind| {
        bytes += line.len() as u64;
        match kind {
            LineKind::Touch {
                touchpoint,
                occurred_at,
                offline: off,
                ..
            } => {
                *kinds.entry(touchpoint).or_default() += 1;
                offline += u64::from(off);
                late += u64::from(occurred_at < newest - ALLOWED_LATENESS_MS);
                first = first.min(occurred_at);
                newest = newest.max(occurred_at);
            }
            LineKind::Identify { occurred_at, .. } => {
                late += u64::from(occurred_at < newest - ALLOWED_LATENESS_MS);
                newest = newest.max(occurred_at);
            }
            LineKind::Duplicate { exact: e } => exact += u64::from(e),
            LineKind::Broken { reason } => *reasons.entry(reason).or_default() += 1,
        }
        Ok(())
    })?;
    let share = |n: u64| 100.0 * n as f64 / stats.lines as f64;
    println!(
        "{:.1} MB, {:.0} bytes a line",
        bytes as f64 / 1e6,
        bytes as f64 / stats.lines as f64
    );
    println!(
        "event time span: {:.0} days",
        (newest - first) as f64 / 86_400_000.0
    );
    println!(
        "touches {:.2}%  identify {:.2}%  duplicates {:.2}% ({} exact)  broken {:.2}%",
        share(stats.touches),
        share(stats.identify),
        share(stats.duplicates),
        exact,
        share(stats.broken)
    );
    println!(
        "offline touches {:.2}%  late (older than newest - 2d on arrival) {:.2}%",
        share(offline),
        share(late)
    );
    let mut by_count: Vec<_> = kinds.into_iter().collect();
    by_count.sort_by_key(|k| std::cmp::Reverse(k.1));
    for (kind, n) in by_count {
        println!("  {kind:<20} {:>6.2}%", share(n));
    }
    for (reason, n) in reasons {
        println!("  broken {reason:<18} {n}");
    }
    Ok(())
}
