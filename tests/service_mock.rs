//! The live service against librdkafka's in-process mock cluster: fast checks of the consumer
//! logic (summary equals replay, dead letters, broker errors on the dead-letter topic,
//! rebalances). The same checks against a real broker process are in `service_tansu.rs`.

mod live;

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use spiral::service::Service;

const TOPIC: &str = "touchpoints";
const DLQ: &str = "dead-letters";

/// Every message of a topic: (partition, offset, payload, headers).
type Read = (i32, i64, Vec<u8>, HashMap<String, String>);

fn read_all(brokers: &str, topic: &str, expected: usize) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Read until the expected count, then a little longer to catch extras.
    let mut quiet_until = None;
    while std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                            (h.key.to_string(), value.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
        if out.len() >= expected {
            let until =
                *quiet_until.get_or_insert(std::time::Instant::now() + Duration::from_secs(2));
            if std::time::Instant::now() > until {
                break;
            }
        }
    }
    out
}

fn start(config: &spiral::config::Config) -> (tokio::runtime::Runtime, Service) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let service = runtime
        .block_on(Service::start(config))
        .expect("service starts");
    (runtime, service)
}

#[test]
fn live_summary_equals_replay_and_dead_letters_hold_every_reject() {
    let mock = live::Mock::new(3, 11, 800, 8_000, "mock-e2e");
    let (brokers, lines, config) = (&mock.brokers, &mock.lines, &mock.config);

    let (runtime, service) = mock.start();
    let live_summary =
        live::settled_summary(service.addr, lines.len() as u64, Duration::from_secs(60));
    let (_, scrape) = live::http_get(service.addr, "/metrics");
    runtime.block_on(service.stop()).expect("clean stop");

    let (replayed, rejects) = live::replay(config, lines, live_summary.watermark.as_deref());
    assert!(
        live_summary.events.rejected.malformed > 0,
        "traffic has broken lines"
    );
    assert_eq!(
        live::order_free(live_summary.clone()),
        live::order_free(replayed)
    );
    live::assert_metrics_match(&scrape, &live_summary);

    // The dead-letter topic holds exactly the rejected messages, unchanged, with their reason
    // and their source in headers.
    let sources: HashMap<(i32, i64), Vec<u8>> = read_all(brokers, TOPIC, lines.len())
        .into_iter()
        .map(|(p, o, payload, _)| ((p, o), payload))
        .collect();
    let letters = read_all(brokers, DLQ, rejects.len());
    let mut got: Vec<(Vec<u8>, String)> = letters
        .iter()
        .map(|(_, _, payload, h)| {
            assert_eq!(h["spiral.source.topic"], TOPIC);
            let at = (
                h["spiral.source.partition"].parse().unwrap(),
                h["spiral.source.offset"].parse().unwrap(),
            );
            assert_eq!(
                &sources[&at], payload,
                "the header points at the original message"
            );
            (payload.clone(), h["spiral.reason"].clone())
        })
        .collect();
    let mut want = rejects;
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}

#[test]
fn dead_letter_failures_hold_the_consumer_back_and_lose_nothing() {
    let mock = live::Mock::new(2, 12, 300, 3_000, "mock-dlq");
    let (brokers, lines) = (&mock.brokers, &mock.lines);
    // The next produce requests (the dead-letter producer's) fail without librdkafka retrying.
    let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 4];
    mock.cluster.request_errors(RDKafkaApiKey::Produce, &errors);

    let (runtime, service) = mock.start();
    let summary = live::settled_summary(service.addr, lines.len() as u64, Duration::from_secs(60));
    let rejected = summary.events.rejected.total() as usize;
    // Delivery is retried with backoff until the broker takes the letters.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let values = loop {
        let (_, scrape) = live::http_get(service.addr, "/metrics");
        let values = live::scrape_values(&scrape);
        if values["spiral_dlq_messages_total"] as usize == rejected {
            break values;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "letters never delivered: {values:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    runtime.block_on(service.stop()).expect("clean stop");
    assert!(
        values["spiral_dlq_retries_total"] >= 1.0,
        "the failures were retried"
    );
    let letters = read_all(brokers, DLQ, rejected);
    assert_eq!(
        letters.len(),
        rejected,
        "every reject delivered exactly once"
    );
}

#[test]
fn a_rebalance_moves_partitions_without_reading_anything_twice() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic(TOPIC, 4, 1).expect("topic");
    cluster.create_topic(DLQ, 1, 1).expect("dlq");
    let lines = live::traffic(13, 400, 4_000);
    let (first, second) = lines.split_at(2_000);
    live::produce(&brokers, TOPIC, 4, first);

    let config = live::config(&live::config_toml(
        &brokers,
        &[TOPIC],
        DLQ,
        "mock-rebalance",
        None,
    ));
    let (runtime_a, a) = start(&config);
    live::settled_summary(a.addr, first.len() as u64, Duration::from_secs(60));
    // A second member joins: the group rebalances, A commits before giving partitions up.
    let (runtime_b, b) = start(&config);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !b.ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "B never got partitions"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    live::produce(&brokers, TOPIC, 4, second);
    let total = lines.len() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (ra, rb) = (
            live::summary_of(a.addr).events.received,
            live::summary_of(b.addr).events.received,
        );
        assert!(ra + rb <= total, "read twice: {ra} + {rb} > {total}");
        if ra + rb == total {
            std::thread::sleep(Duration::from_secs(2));
            let (ra, rb) = (
                live::summary_of(a.addr).events.received,
                live::summary_of(b.addr).events.received,
            );
            assert_eq!(ra + rb, total, "nothing read twice after settling");
            assert!(rb > 0, "B got partitions and read from them");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "read {ra} + {rb} of {total}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    runtime_b.block_on(b.stop()).expect("B stops");
    runtime_a.block_on(a.stop()).expect("A stops");
}

#[test]
fn broker_errors_on_fetch_lose_and_repeat_nothing() {
    let mock = live::Mock::new(2, 14, 300, 3_000, "mock-fetch");
    let (lines, config) = (&mock.lines, &mock.config);
    // Fetches fail for a while: leadership moves, the broker is unavailable, requests time out.
    let errors = [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
    ];
    mock.cluster.request_errors(RDKafkaApiKey::Fetch, &errors);

    let (runtime, service) = mock.start();
    let summary = live::settled_summary(service.addr, lines.len() as u64, Duration::from_secs(60));
    runtime.block_on(service.stop()).expect("clean stop");
    let (replayed, _) = live::replay(config, lines, summary.watermark.as_deref());
    assert_eq!(live::order_free(summary), live::order_free(replayed));
}
