//! Durable state against a real broker (Tansu), with `spiral replay` as the oracle (SPEC §6,
//! issue #4): `spiral run` is stopped 15 times at random moments while 200 000 generated
//! messages are being produced and read — 10 times with SIGKILL, 5 with SIGTERM — restarted
//! each time, and must end with the summary of a replay of the same messages and every
//! rejected message exactly once on the dead-letter topic. The BI files written on the way
//! must give the same numbers through the shipped DuckDB views, hold every accepted touch
//! exactly once, and never show a file that is not whole.
//!
//! Needs `tansu` (`scripts/deps.sh` installs it; `scripts/test.sh` runs this).

mod broker;
mod common;
mod live;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use broker::Broker;
use live::process::{Lcg, Running, free_port, replay_payloads, route, without_late};

const ONLINE: &str = "touchpoints.online";
const IDENTITY: &str = "identity";
const DLQ: &str = "spiral.dlq";
const TRANSITIONS: &str = "spiral.transitions";
const GROUP: &str = "spiral-durability-test";

/// Stops of the service while messages arrive: every third a SIGTERM (a clean restart under
/// load), the others SIGKILL (at least 10, issue #4).
const STOPS: usize = 15;

/// The live-test configuration with checkpoints every second into `state`, the BI export
/// into `export` beside it, and the stage-transition topic. The dead-letter
/// producer writes one record per batch: Tansu 0.6.0 resumes a read in the middle of a batch
/// by skipping the rest of it, and recovery reads the dead-letter topic from where the last
/// checkpoint left it.
fn write_config(dir: &Path, broker: &Broker, state: &Path) -> std::path::PathBuf {
    let mut text = live::config_toml(
        &broker.bootstrap(),
        &[ONLINE, IDENTITY],
        DLQ,
        GROUP,
        Some(state),
    )
    .replace(
        "dlq_topic = ",
        &format!("transitions_topic = {TRANSITIONS:?}\ndlq_topic = "),
    );
    text.push_str("\n[kafka.producer]\n\"batch.num.messages\" = 1\n\"linger.ms\" = 0\n");
    // Nothing reads the transitions from the middle of a batch: they may go in batches.
    text.push_str(
        "\n[kafka.transitions_producer]\n\"batch.num.messages\" = 10000\n\"linger.ms\" = 5\n",
    );
    let export = state.with_file_name("export");
    text.push_str(&format!(
        "\n[export]\ndir = {:?}\n",
        export.display().to_string()
    ));
    let path = dir.join("spiral.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Asserts that the input topics hold every one of `lines` and that a replay of them, decided
/// at `watermark`, gives the live summary `live` (all but `late`); returns the messages.
fn assert_equals_replay(
    broker: &Broker,
    config: &Path,
    dir: &Path,
    lines: &[Vec<u8>],
    live: serde_json::Value,
    watermark: &str,
) -> Vec<broker::Record> {
    let records: Vec<_> = broker
        .consume_all(ONLINE)
        .into_iter()
        .chain(broker.consume_all(IDENTITY))
        .collect();
    assert_eq!(records.len(), lines.len(), "every message is on the broker");
    let payloads = records
        .iter()
        .map(|r| r.payload.as_deref().unwrap_or_default());
    let replayed = replay_payloads(config, payloads, watermark, dir);
    assert_eq!(without_late(live), without_late(replayed));
    records
}

#[test]
fn kill_9_loops_lose_nothing_and_count_nothing_twice() {
    let broker = Broker::start();
    broker.create_topic(ONLINE, 3);
    broker.create_topic(IDENTITY, 2);
    broker.create_topic(DLQ, 1);
    broker.create_topic(TRANSITIONS, 2);
    let lines = live::traffic(41, 20_000, 200_000);
    assert!(lines.len() >= 190_000, "{} lines", lines.len());
    let (online, identity) = route(&lines);

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config_path = write_config(dir.path(), &broker, &state);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    std::thread::scope(|scope| {
        // Produce in chunks, so kills land while messages still arrive.
        let producer = scope.spawn(|| {
            let (o, i): (Vec<_>, Vec<_>) = (
                online.chunks(10_000).collect(),
                identity.chunks(2_000).collect(),
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
        let mut rng = Lcg(7);
        let mut kills = 0;
        for stop in 0..STOPS {
            let log = std::env::var("SPIRAL_TEST_LOG").unwrap_or_else(|_| "warn".into());
            let spiral = Running::spawn(&config_path, addr, &log);
            // Some kills land during start-up (restore, dead-letter scan, group join), most
            // while consuming and checkpointing.
            let wait = if stop % 4 == 0 {
                rng.next_ms(300, 2_000)
            } else {
                spiral.wait_ready(addr, Duration::from_secs(60));
                rng.next_ms(500, 4_000)
            };
            std::thread::sleep(Duration::from_millis(wait));
            if stop % 3 == 2 {
                spiral.wait_ready(addr, Duration::from_secs(60));
                assert!(spiral.terminate().success(), "SIGTERM under load exits 0");
            } else {
                spiral.kill9();
                kills += 1;
            }
        }
        assert!(kills >= 10);
        producer.join().expect("producer");
    });

    // The last run reads what is left and must end where a replay of everything ends.
    let spiral = Running::start(&config_path, addr);
    let live_summary = live::settled_summary(addr, lines.len() as u64, Duration::from_secs(300));
    assert_eq!(live_summary.events.received, lines.len() as u64);
    let live_json: serde_json::Value =
        serde_json::from_str(&live::http_get(addr, "/api/v1/summary").1).unwrap();
    let scrape = live::http_get(addr, "/metrics").1;
    let values = live::scrape_values(&scrape);
    assert_eq!(values.get("spiral_checkpoint_restores_total"), Some(&1.0));
    assert!(values.contains_key("spiral_checkpoint_last_success_timestamp_seconds"));
    assert!(spiral.terminate().success());

    let watermark = live_summary.watermark.clone().expect("a live watermark");
    let records = assert_equals_replay(
        &broker,
        &config_path,
        dir.path(),
        &lines,
        live_json,
        &watermark,
    );

    // Each rejected message exactly once on the dead-letter topic.
    let letters = broker.consume_all(DLQ);
    let mut sources = HashMap::new();
    let mut twice = Vec::new();
    for letter in &letters {
        let source = (
            letter.header("spiral.source.topic").expect("topic header"),
            letter.header("spiral.source.partition").expect("partition"),
            letter.header("spiral.source.offset").expect("offset"),
        );
        if let Some(first) = sources.insert(source.clone(), letter.offset) {
            twice.push((source, first, letter.offset));
        }
    }
    assert!(
        twice.is_empty(),
        "dead-lettered twice (source, first and second dead-letter offsets): {twice:?}"
    );
    assert_eq!(letters.len() as u64, live_summary.events.rejected.total());
    let started = Instant::now();
    let rejected = std::fs::read_to_string(dir.path().join("replay.rejected.jsonl")).unwrap();
    assert_eq!(letters.len(), rejected.lines().count());

    // The BI files: the last revision was sealed at shutdown, decided at the watermark then;
    // a replay decided at that watermark is what they must give.
    let export = dir.path().join("export");
    assert!(
        !export.join("_staging").exists(),
        "a clean stop publishes everything"
    );
    let facts = common::bi::query(
        &export,
        &[
            "SELECT epoch_ms(max(decided_at)) AS decided, count(DISTINCT revision) AS revisions \
             FROM journeys_all",
            "SELECT count(*) AS rows, count(DISTINCT (event_id, occurred_at)) AS touches \
             FROM touches_all",
        ],
    );
    let decided = spiral::time::format_rfc3339(facts[0][0]["decided"].as_i64().unwrap());
    assert!(facts[0][0]["revisions"].as_i64().unwrap() > 5, "{facts:?}");
    let oracle = replay_payloads(
        &config_path,
        records
            .iter()
            .map(|r| r.payload.as_deref().unwrap_or_default()),
        &decided,
        dir.path(),
    );
    let oracle: spiral::summary::Summary = serde_json::from_value(oracle).unwrap();
    common::bi::assert_files_match(&export, &oracle);
    // The stage-transition topic, sent at least once across the stops, folds to the same.
    let transitions: Vec<_> = broker
        .consume_all(TRANSITIONS)
        .into_iter()
        .map(|r| (r.key.unwrap_or_default(), r.payload.unwrap_or_default()))
        .collect();
    common::bi::assert_transitions_match(&transitions, &oracle);
    let touches = live_summary.events.accepted - live_summary.events.identify;
    assert_eq!(
        (
            facts[1][0]["rows"].as_u64(),
            facts[1][0]["touches"].as_u64()
        ),
        (Some(touches), Some(touches)),
        "every accepted touch has exactly one row, across {STOPS} stops"
    );
    eprintln!(
        "{STOPS} stops ({} SIGTERM), {} messages, {} letters, {} transitions; checked in {:?}",
        STOPS / 3,
        lines.len(),
        letters.len(),
        transitions.len(),
        started.elapsed()
    );
}

/// The broker is killed (`kill -9`) and restarted on its file-backed storage while `spiral run`
/// reads: Spiral keeps running, reconnects, and ends with a replay's numbers; every rejected
/// message reaches the dead-letter topic (a letter in flight when the broker died may be
/// there twice: the producer retries what it could not confirm).
#[test]
fn a_broker_restart_on_file_storage_loses_nothing() {
    let mut broker = Broker::start_file_backed();
    for (topic, partitions) in [(ONLINE, 3), (IDENTITY, 2), (DLQ, 1), (TRANSITIONS, 2)] {
        broker.create_topic(topic, partitions);
    }
    let lines = live::traffic(43, 5_000, 60_000);
    let (online, identity) = route(&lines);
    let (online_first, online_rest) = online.split_at(online.len() / 2);
    let (identity_first, identity_rest) = identity.split_at(identity.len() / 2);
    broker.produce(ONLINE, online_first.to_vec());
    broker.produce(IDENTITY, identity_first.to_vec());

    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &broker, &dir.path().join("state"));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut spiral = Running::start(&config_path, addr);
    let half = (online_first.len() + identity_first.len()) as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while live::summary_of(addr).events.received < half / 2 {
        assert!(Instant::now() < deadline, "spiral run reads nothing");
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.restart();
    assert!(
        spiral.is_running(),
        "spiral run survives the broker's restart"
    );
    broker.produce(ONLINE, online_rest.to_vec());
    broker.produce(IDENTITY, identity_rest.to_vec());

    let summary = live::settled_summary(addr, lines.len() as u64, Duration::from_secs(180));
    assert_eq!(summary.events.received, lines.len() as u64);
    let live_json: serde_json::Value =
        serde_json::from_str(&live::http_get(addr, "/api/v1/summary").1).unwrap();
    assert!(spiral.terminate().success());

    let watermark = summary.watermark.clone().expect("a live watermark");
    assert_equals_replay(
        &broker,
        &config_path,
        dir.path(),
        &lines,
        live_json,
        &watermark,
    );
    let sources: std::collections::HashSet<_> = broker
        .consume_all(DLQ)
        .iter()
        .map(|l| {
            (
                l.header("spiral.source.topic"),
                l.header("spiral.source.partition"),
                l.header("spiral.source.offset"),
            )
        })
        .collect();
    assert_eq!(sources.len() as u64, summary.events.rejected.total());
}
