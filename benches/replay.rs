//! Replay throughput on generated traffic (issue #2): the full engine against the raw
//! `serde_json` parse of the same lines, which is the ceiling any JSON pipeline sees.
//!
//! `cargo bench --bench replay` (release, one thread). Sizes: SPIRAL_BENCH_EVENTS (default
//! 1 000 000) events over SPIRAL_BENCH_ACCOUNTS (default 100 000) accounts.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spiral::config::Config;
use spiral::event::Decoder;
use spiral::generate::{GenerateOptions, generate};
use spiral::replay::Replayer;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn traffic() -> (Vec<u8>, u64) {
    let options = GenerateOptions {
        seed: 7,
        events: env("SPIRAL_BENCH_EVENTS", 1_000_000),
        accounts: env("SPIRAL_BENCH_ACCOUNTS", 100_000),
        ..GenerateOptions::default()
    };
    let mut bytes = Vec::new();
    let stats = generate(&options, &mut bytes).expect("generate into memory");
    (bytes, stats.lines)
}

fn bench(c: &mut Criterion) {
    let config =
        Config::parse(include_str!("../config/spiral.toml"), "config/spiral.toml").unwrap();
    let (bytes, lines) = traffic();
    let mut group = c.benchmark_group("replay");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(lines));

    group.bench_function("serde_json_value_parse", |b| {
        b.iter(|| {
            let mut ok = 0u64;
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                ok += serde_json::from_slice::<serde_json::Value>(line).is_ok() as u64;
            }
            ok
        })
    });

    let decoder = Decoder::new(
        config.pipeline.max_event_bytes,
        config.touchpoints.iter().cloned(),
    );
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            let mut ok = 0u64;
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                ok += decoder.decode(line).is_ok() as u64;
            }
            ok
        })
    });

    group.bench_function("engine_end_to_end", |b| {
        b.iter(|| {
            let mut replayer = Replayer::new(&config, std::io::sink()).unwrap();
            replayer.read(bytes.as_slice(), "bench", |_| {}).unwrap();
            replayer.finish(None).unwrap().0
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
