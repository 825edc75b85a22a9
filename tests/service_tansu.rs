//! `spiral run` as a separate process against a real Kafka-API broker (Tansu): the live summary
//! equals `spiral replay` of the same messages, the dead-letter topic holds exactly the
//! rejects, a scrape passes `promtool check metrics` and equals the summary, SIGTERM drains and
//! exits 0 with offsets committed and a checkpoint written, and a restart resumes it and reads
//! nothing twice and nothing less.
//!
//! Needs `tansu` and `promtool` (`scripts/deps.sh` installs both; `scripts/test.sh` runs it).

mod broker;
mod live;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use broker::Broker;
use live::process::{Running, free_port, replay_payloads, route, without_late};

const ONLINE: &str = "touchpoints.online";
const IDENTITY: &str = "identity";
const DLQ: &str = "spiral.dlq";
const GROUP: &str = "spiral-tansu-test";

/// Next offset to read per partition: one past the last record.
fn ends(records: &[broker::Record]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for r in records {
        let end = ends.entry(r.partition).or_insert(0);
        *end = (*end).max(r.offset + 1);
    }
    ends
}

#[test]
fn live_service_on_a_real_broker() {
    let broker = Broker::start();
    broker.create_topic(ONLINE, 3);
    broker.create_topic(IDENTITY, 2);
    broker.create_topic(DLQ, 1);
    let lines = live::traffic(21, 1_000, 10_000);
    let (first, later) = lines.split_at(8_000);
    let (online, identity) = route(first);
    broker.produce(ONLINE, online);
    broker.produce(IDENTITY, identity);

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("spiral.toml");
    let state = dir.path().join("state");
    let text = live::config_toml(
        &broker.bootstrap(),
        &[ONLINE, IDENTITY],
        DLQ,
        GROUP,
        Some(&state),
    );
    std::fs::write(&config_path, &text).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    // Run until every message is read and every partition has gone idle.
    let spiral = Running::start(&config_path, addr);
    let live_summary = live::settled_summary(addr, first.len() as u64, Duration::from_secs(120));
    let (status, scrape) = live::http_get(addr, "/metrics");
    assert_eq!(status, 200);
    let live_json: serde_json::Value =
        serde_json::from_str(&live::http_get(addr, "/api/v1/summary").1).unwrap();

    // The scrape is valid Prometheus text and its counters are the summary's.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (run scripts/deps.sh)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    live::assert_metrics_match(&scrape, &live_summary);

    // SIGTERM drains, commits and exits 0.
    assert!(spiral.terminate().success(), "exit status 0 after SIGTERM");
    let online_records = broker.consume_all(ONLINE);
    let identity_records = broker.consume_all(IDENTITY);
    for (topic, records) in [(ONLINE, &online_records), (IDENTITY, &identity_records)] {
        let committed = broker.committed_offsets(GROUP, topic);
        for (partition, end) in ends(records) {
            assert_eq!(
                committed.get(&partition).copied().flatten(),
                Some(end),
                "{topic}/{partition} committed to its end"
            );
        }
    }

    // `spiral replay` of the same messages at the live watermark gives the same summary.
    let watermark = live_summary.watermark.clone().expect("a live watermark");
    let payloads = (online_records.iter().chain(&identity_records))
        .map(|r| r.payload.as_deref().unwrap_or_default());
    let replayed = replay_payloads(&config_path, payloads, &watermark, dir.path());
    assert_eq!(without_late(live_json), without_late(replayed));

    // The dead-letter topic holds exactly the rejected messages, with their reason and source.
    let rejected: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("replay.rejected.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let letters = broker.consume_all(DLQ);
    assert!(
        letters.len() > 50,
        "the traffic has broken lines of every kind"
    );
    assert_eq!(letters.len() as u64, live_summary.events.rejected.total());
    assert_eq!(letters.len(), rejected.len());
    let mut want: Vec<(String, String)> = rejected
        .iter()
        .map(|r| {
            (
                r["text"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut got: Vec<(String, String)> = Vec::new();
    for letter in &letters {
        let topic = letter
            .header("spiral.source.topic")
            .expect("source topic header");
        let partition: i32 = letter
            .header("spiral.source.partition")
            .unwrap()
            .parse()
            .unwrap();
        let offset: i64 = letter
            .header("spiral.source.offset")
            .unwrap()
            .parse()
            .unwrap();
        let source = if topic == ONLINE {
            &online_records
        } else {
            &identity_records
        };
        let original = source
            .iter()
            .find(|r| r.partition == partition && r.offset == offset)
            .expect("the source message exists");
        assert_eq!(
            original.payload, letter.payload,
            "the letter is the original bytes"
        );
        got.push((
            letter.payload_str(),
            letter.header("spiral.reason").expect("reason header"),
        ));
    }
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // A restart resumes the checkpoint written at SIGTERM and reads exactly the messages
    // produced since: nothing twice, nothing less.
    let (online, identity) = route(later);
    broker.produce(ONLINE, online);
    broker.produce(IDENTITY, identity);
    let spiral = Running::start(&config_path, addr);
    let after = live::settled_summary(addr, lines.len() as u64, Duration::from_secs(120));
    assert_eq!(after.events.received, lines.len() as u64);
    let scrape = live::http_get(addr, "/metrics").1;
    let values = live::scrape_values(&scrape);
    assert_eq!(values.get("spiral_checkpoint_restores_total"), Some(&1.0));
    assert!(spiral.terminate().success());
}
