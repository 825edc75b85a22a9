//! The broker harness (`tests/broker/mod.rs`) against a real Tansu: what it writes comes back
//! exactly, committed offsets are read right, headers survive, and no broker outlives its test.
//! Needs `tansu` (./scripts/deps.sh).

mod broker;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use broker::{Broker, process_alive};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

fn line(i: usize) -> String {
    format!(
        r#"{{"event_id":"e{i}","occurred_at":{},"touchpoint":"web_visit","account_id":"acct-{}"}}"#,
        1_700_000_000_000u64 + i as u64,
        i % 50
    )
}

#[test]
fn consume_all_returns_exactly_what_was_produced() {
    let broker = Broker::start();
    broker.create_topic("touchpoints", 3);
    let messages: Vec<(Option<String>, String)> = (0..1000)
        .map(|i| (Some(format!("acct-{}", i % 50)), line(i)))
        .collect();
    assert_eq!(broker.produce("touchpoints", messages.clone()), 1000);

    let records = broker.consume_all("touchpoints");
    assert_eq!(records.len(), 1000);

    // Every partition holds offsets 0.. without gaps, and all three got some keys.
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in &records {
        per_partition.entry(r.partition).or_default().push(r.offset);
        assert!(r.headers.is_empty());
    }
    assert_eq!(per_partition.len(), 3, "{per_partition:?}");
    for (partition, offsets) in &per_partition {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "partition {partition}");
    }
    let ends: BTreeMap<i32, i64> = broker
        .watermarks("touchpoints")
        .into_iter()
        .map(|(p, (_, high))| (p, high))
        .collect();
    let counts: BTreeMap<i32, i64> = per_partition
        .iter()
        .map(|(p, o)| (*p, o.len() as i64))
        .collect();
    assert_eq!(ends, counts);

    // One key, one partition, in the order produced: so reading by partition and offset and
    // then by key gives back the produced sequence of each key.
    let mut by_key: BTreeMap<Vec<u8>, (i32, Vec<String>)> = BTreeMap::new();
    for r in &records {
        let entry = by_key
            .entry(r.key.clone().expect("keyed"))
            .or_insert((r.partition, Vec::new()));
        assert_eq!(entry.0, r.partition, "a key spread over partitions");
        entry.1.push(r.payload_str());
    }
    let mut produced: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for (key, payload) in messages {
        produced
            .entry(key.unwrap().into_bytes())
            .or_default()
            .push(payload);
    }
    let read: BTreeMap<Vec<u8>, Vec<String>> =
        by_key.into_iter().map(|(k, (_, v))| (k, v)).collect();
    assert_eq!(read, produced);
}

#[test]
fn consume_all_keeps_headers_and_unkeyed_messages() {
    let broker = Broker::start();
    broker.create_topic("spiral.dlq", 1);
    // Headers the way a dead-letter producer writes them, one valueless.
    let producer: ThreadedProducer<DefaultProducerContext> =
        broker.client_config().create().expect("producer");
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "spiral.reason",
            value: Some("malformed"),
        })
        .insert(Header {
            key: "spiral.source.offset",
            value: Some("41"),
        })
        .insert::<str>(Header {
            key: "empty",
            value: None,
        });
    producer
        .send(
            BaseRecord::<(), _>::to("spiral.dlq")
                .payload("{not json")
                .headers(headers),
        )
        .map_err(|(e, _)| e)
        .expect("send");
    producer.flush(Duration::from_secs(30)).expect("flush");
    broker.produce("spiral.dlq", [(None::<&str>, "second")]);

    let records = broker.consume_all("spiral.dlq");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].payload_str(), "{not json");
    assert_eq!(records[0].key, None);
    assert_eq!(
        records[0].header("spiral.reason").as_deref(),
        Some("malformed")
    );
    assert_eq!(
        records[0].header("spiral.source.offset").as_deref(),
        Some("41")
    );
    assert_eq!(records[0].headers[2], ("empty".to_string(), None));
    assert_eq!(
        (records[1].offset, records[1].payload_str()),
        (1, "second".to_string())
    );
}

#[test]
fn consume_all_reads_batched_topics_to_their_real_end() {
    // Tansu 0.6.0 reports the high watermark as the last batch's base offset + 1, so a reader
    // that stops at the watermark misses most of a batched topic (what a DLQ producer writes).
    let broker = Broker::start();
    broker.create_topic("batched", 2);
    let messages = (0..500).map(|i| (Some(format!("k{i}")), line(i)));
    broker.produce_with(
        "batched",
        &[("linger.ms", "100"), ("batch.num.messages", "10000")],
        messages,
    );
    let reported: i64 = broker.watermarks("batched").values().map(|(_, h)| h).sum();
    assert!(reported <= 500, "{reported}");
    let records = broker.consume_all("batched");
    assert_eq!(records.len(), 500, "watermarks reported {reported}");
    let payloads: std::collections::BTreeSet<String> =
        records.iter().map(|r| r.payload_str()).collect();
    assert_eq!(payloads, (0..500).map(line).collect());
}

#[test]
fn committed_offsets_are_where_a_group_stopped() {
    let broker = Broker::start();
    broker.create_topic("touchpoints", 2);
    broker.produce(
        "touchpoints",
        (0..200).map(|i| (Some(format!("k{i}")), line(i))),
    );

    let group = "spiral-test";
    assert_eq!(
        broker.committed_offsets(group, "touchpoints"),
        BTreeMap::from([(0, None), (1, None)]),
        "nothing committed yet"
    );

    // A group member that subscribes (JoinGroup/SyncGroup through Tansu), reads everything
    // and commits synchronously.
    let consumer: BaseConsumer = broker.consumer_config(group).create().expect("consumer");
    consumer.subscribe(&["touchpoints"]).expect("subscribe");
    let mut read = 0;
    let started = Instant::now();
    while read < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the group read {read} of 200 messages"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message.expect("message");
            read += 1;
        }
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");

    let ends: BTreeMap<i32, Option<i64>> = broker
        .watermarks("touchpoints")
        .into_iter()
        .map(|(p, (_, high))| (p, Some(high)))
        .collect();
    assert_eq!(ends.values().flatten().sum::<i64>(), 200);
    assert_eq!(broker.committed_offsets(group, "touchpoints"), ends);
    // Another group is unaffected.
    assert_eq!(
        broker.committed_offsets("someone-else", "touchpoints"),
        BTreeMap::from([(0, None), (1, None)])
    );
}

#[test]
fn broker_is_gone_after_drop() {
    let broker = Broker::start();
    let (pid, port) = (broker.pid(), broker.port());
    assert!(broker.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(broker);
    assert!(!process_alive(pid), "tansu {pid} survived its Broker");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn broker_is_gone_after_a_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let failing = std::thread::spawn(move || {
        let broker = Broker::start();
        tx.send(broker.pid()).unwrap();
        panic!("a failing test (expected)");
    });
    assert!(failing.join().is_err());
    let pid = rx.recv().unwrap();
    assert!(!process_alive(pid), "tansu {pid} survived a panicking test");
}

#[test]
fn brokers_run_side_by_side() {
    let (a, b) = (Broker::start(), Broker::start());
    assert_ne!(a.port(), b.port());
    a.create_topic("t", 2);
    assert_eq!(a.partitions("t"), vec![0, 1]);
    assert!(
        a.consume_all("t").is_empty(),
        "empty partitions end at once"
    );
    assert!(b.partitions("t").is_empty(), "topics are per broker");
}
