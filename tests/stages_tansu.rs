//! Scale-out against a real broker (Tansu), with `spiral replay` as the oracle (issue #4):
//! two `spiral run` processes with `[kafka.stages]` share one group and one state location;
//! one of them is stopped at random moments while messages are produced — mostly `kill -9`,
//! sometimes SIGTERM — and started again, so stage partitions keep moving between them and
//! their state is taken over from checkpoints that may be seconds behind. At the end the two
//! summaries merged, and their `/metrics` summed, equal a replay of the same messages, and the
//! dead-letter topic holds each rejected message exactly once.
//!
//! Needs `tansu` (`scripts/deps.sh` installs it; `scripts/test.sh` runs this).

mod broker;
mod common;
mod live;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use broker::Broker;
use live::process::{Running, free_port, replay_payloads, route, without_late};

const ONLINE: &str = "touchpoints.online";
const IDENTITY: &str = "identity";
const DLQ: &str = "spiral.dlq";
const EVENTS: &str = "spiral.events";
const TOUCHES: &str = "spiral.touches";
const GROUP: &str = "spiral-stages-test";
const STOPS: usize = 10;

/// The live-test configuration with the stages and checkpoints every second into `state`.
/// Every producer writes one record per batch: Tansu 0.6.0 resumes a read in the middle of
/// a batch by skipping the rest of it, and stage partitions resume from their checkpoints.
fn write_config(dir: &Path, broker: &Broker, state: &Path) -> std::path::PathBuf {
    let mut text = live::config_toml(
        &broker.bootstrap(),
        &[ONLINE, IDENTITY],
        DLQ,
        GROUP,
        Some(state),
    );
    text.push_str("\n[kafka.producer]\n\"batch.num.messages\" = 1\n\"linger.ms\" = 0\n");
    text.push_str(&format!(
        "\n[kafka.stages]\nevents_topic = {EVENTS:?}\ntouches_topic = {TOUCHES:?}\n"
    ));
    let path = dir.join("spiral.toml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Lcg(u64);

impl Lcg {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

#[test]
fn instances_killed_at_random_moments_lose_nothing_and_count_nothing_twice() {
    let broker = Broker::start();
    for (topic, partitions) in [
        (ONLINE, 3),
        (IDENTITY, 2),
        (DLQ, 1),
        (EVENTS, 1),
        (TOUCHES, 4),
    ] {
        broker.create_topic(topic, partitions);
    }
    let lines = live::traffic(47, 3_000, 30_000);
    let (online, identity) = route(&lines);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = write_config(dir.path(), &broker, &state);
    let addrs: Vec<SocketAddr> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap())
        .collect();
    let log = std::env::var("SPIRAL_TEST_LOG").unwrap_or_else(|_| "warn".into());

    let mut running: Vec<Running> = addrs
        .iter()
        .map(|&addr| Running::spawn(&config, addr, &log))
        .collect();
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            let (o, i): (Vec<_>, Vec<_>) = (
                online.chunks(2_000).collect(),
                identity.chunks(400).collect(),
            );
            for k in 0..o.len().max(i.len()) {
                if let Some(chunk) = o.get(k) {
                    broker.produce(ONLINE, chunk.to_vec());
                }
                if let Some(chunk) = i.get(k) {
                    broker.produce(IDENTITY, chunk.to_vec());
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let mut rng = Lcg(11);
        for stop in 0..STOPS {
            let slot = stop % 2;
            running[slot].wait_ready(addrs[slot], Duration::from_secs(120));
            std::thread::sleep(Duration::from_millis(rng.next_ms(500, 4_000)));
            let instance = running.remove(slot);
            if stop % 4 == 3 {
                assert!(instance.terminate().success(), "SIGTERM under load exits 0");
            } else {
                instance.kill9();
            }
            running.insert(slot, Running::spawn(&config, addrs[slot], &log));
        }
        producer.join().expect("producer");
    });

    // Tansu 0.6.0 leaves a SIGKILLed member in the group until the next join after its
    // session timed out (a Kafka coordinator rebalances when it expires): the partitions it
    // held stay with nobody. Once sessions have expired, each instance is restarted cleanly,
    // so that the group is rebuilt from live members only.
    std::thread::sleep(Duration::from_secs(8));
    for (slot, &addr) in addrs.iter().enumerate() {
        let instance = running.remove(slot);
        assert!(instance.terminate().success(), "SIGTERM exits 0");
        running.insert(slot, Running::spawn(&config, addr, &log));
    }
    for (instance, &addr) in running.iter().zip(&addrs) {
        instance.wait_ready(addr, Duration::from_secs(120));
    }
    let summary = live::settled_merged(&addrs, lines.len() as u64, 4, Duration::from_secs(300));
    let scrape = live::summed_scrape(&addrs);
    live::assert_metrics_match(&scrape, &summary);
    let restores: f64 = addrs
        .iter()
        .filter_map(|&addr| {
            live::scrape_values(&live::http_get(addr, "/metrics").1)
                .get("spiral_checkpoint_restores_total")
                .copied()
        })
        .sum();
    assert!(
        restores > 0.0,
        "no stage partition was taken over from a checkpoint"
    );

    // The oracle: a replay of what is on the input topics, decided at the live watermark.
    let records: Vec<_> = broker
        .consume_all(ONLINE)
        .into_iter()
        .chain(broker.consume_all(IDENTITY))
        .collect();
    assert_eq!(records.len(), lines.len(), "every message is on the broker");
    let watermark = summary.watermark.clone().expect("a live watermark");
    let replayed = replay_payloads(
        &config,
        records
            .iter()
            .map(|r| r.payload.as_deref().unwrap_or_default()),
        &watermark,
        dir.path(),
    );
    let live_json = serde_json::to_value(&summary).unwrap();
    assert_eq!(without_late(live_json), without_late(replayed));

    // Each rejected message exactly once on the dead-letter topic.
    let letters = broker.consume_all(DLQ);
    let mut sources = HashMap::new();
    for letter in &letters {
        let source = (
            letter.header("spiral.source.topic").expect("topic header"),
            letter.header("spiral.source.partition").expect("partition"),
            letter.header("spiral.source.offset").expect("offset"),
        );
        let first = sources.insert(source.clone(), letter.offset);
        assert!(first.is_none(), "dead-lettered twice: {source:?}");
    }
    assert_eq!(letters.len() as u64, summary.events.rejected.total());
    for instance in running {
        assert!(instance.terminate().success());
    }
    eprintln!(
        "{STOPS} stops, {} messages, {} letters, {restores} restores",
        lines.len(),
        letters.len()
    );
}
