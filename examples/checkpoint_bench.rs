//! What a checkpoint costs at scale (issue #4): the snapshot that holds the consumer, the
//! framed write (fsync, rename, read-back verification, pruning) that runs beside it, and a
//! restore, for an engine built from generated traffic the way `spiral run` builds it.
//!
//! `cargo run --release --example checkpoint_bench -- [EVENTS] [ACCOUNTS] [DIR]`
//! (defaults: 6,000,000 events over 1,000,000 accounts, checkpoints in a temporary directory
//! under `target/`). Prints the engine's size, then each step three times (the first snapshot
//! also grows its buffer, as the service's first does; later ones reuse it).

use std::time::Instant;

use spiral::checkpoint::format;
use spiral::checkpoint::{Checkpoints, LocalDir};
use spiral::config::Config;
use spiral::demo::EXAMPLE_CONFIG;
use spiral::engine::Engine;
use spiral::generate::{GenerateOptions, generate_with};
use spiral::replay::Replayer;
use spiral::service::durable::{self, Header};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map_or(Ok(6_000_000), |a| a.parse())?;
    let accounts: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target/checkpoint-bench"));
    let _ = std::fs::remove_dir_all(&dir);

    let config = Config::parse(EXAMPLE_CONFIG, "config/spiral.toml")?;
    let engine = Engine::new(&config).map_err(anyhow::Error::msg)?;
    let mut replayer =
        Replayer::with_engine(engine.with_external_watermark(), &config, std::io::sink());
    let options = GenerateOptions {
        events,
        accounts,
        seed: 1,
        ..GenerateOptions::default()
    };
    let started = Instant::now();
    let mut line = 0;
    generate_with(&options, |bytes, _| {
        line += 1;
        replayer.message(
            bytes.strip_suffix(b"\n").unwrap_or(bytes),
            "generated",
            line,
        )
    })?;
    let engine = replayer.engine();
    let sizes = engine.state_sizes();
    println!(
        "engine from {line} generated lines in {:.1} s: {} accounts, {} touches, {} waiting, \
         {} contacts, {} anonymous ids, {} dedup ids; {:.0} MiB of tables",
        started.elapsed().as_secs_f64(),
        sizes.accounts,
        sizes.touches,
        sizes.pending,
        sizes.contacts,
        sizes.anonymous_ids,
        sizes.dedup_ids,
        sizes.bytes.total() as f64 / (1 << 20) as f64
    );

    let checkpoints = Checkpoints::new(Box::new(LocalDir::new(&dir)?), 3);
    let header = Header {
        positions: Vec::new(),
        dlq_topic: "spiral.dlq".into(),
        dlq_written: Vec::new(),
        dlq_ahead: Vec::new(),
        export: Vec::new(),
    };
    let mut frame = Vec::new();
    let mut last = 0;
    println!(
        "| run | snapshot (consumer held) | frame + CRC | write, fsync, verify | size | restore |"
    );
    println!("|---|---|---|---|---|---|");
    for generation in 1..=3 {
        let t0 = Instant::now();
        durable::reserve(&mut frame, last);
        format::start(&mut frame);
        durable::encode(&mut frame, &header, |out| engine.snapshot(out));
        let snapshot = t0.elapsed();
        let t1 = Instant::now();
        format::finish(&mut frame, generation);
        last = frame.len();
        let framed = t1.elapsed();
        let t2 = Instant::now();
        let bytes = checkpoints.save_frame(generation, &frame)?;
        let write = t2.elapsed();

        let t3 = Instant::now();
        let loaded = checkpoints.latest()?.expect("a checkpoint");
        let (_, snapshot_bytes) = durable::decode(&loaded.payload)?;
        let restored = Engine::restore(&config, snapshot_bytes)?;
        let restore = t3.elapsed();
        assert_eq!(
            restored.summary(),
            engine.summary(),
            "the restored engine agrees"
        );
        drop(restored);
        println!(
            "| {generation} | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} MiB | {:.0} ms |",
            snapshot.as_secs_f64() * 1e3,
            framed.as_secs_f64() * 1e3,
            write.as_secs_f64() * 1e3,
            bytes as f64 / (1 << 20) as f64,
            restore.as_secs_f64() * 1e3
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
