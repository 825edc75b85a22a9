//! Scale-out on librdkafka's mock cluster (issue #4, `[kafka.stages]`): instances of one group
//! come and go while traffic is produced — 1 → 3 → 1 — and the numbers of all instances,
//! summaries merged and `/metrics` summed as Prometheus would, equal a replay of the same
//! messages; the dead-letter topic holds each rejected message once.

mod common;
mod live;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use spiral::config::Config;
use spiral::service::Service;

const INPUT: &str = "touchpoints";
const DLQ: &str = "dead-letters";
const EVENTS: &str = "spiral.events";
const TOUCHES: &str = "spiral.touches";

struct Instance {
    runtime: tokio::runtime::Runtime,
    service: Service,
}

impl Instance {
    fn start(config: &Config) -> Instance {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let service = runtime
            .block_on(Service::start(config))
            .expect("an instance starts");
        Instance { runtime, service }
    }

    fn addr(&self) -> SocketAddr {
        self.service.addr
    }

    fn stop(self) {
        self.runtime
            .block_on(self.service.stop())
            .expect("a clean stop");
    }
}

/// Source coordinates of every letter on the dead-letter topic.
fn dead_letters(brokers: &str) -> Vec<(String, String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "dlq-reader")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(DLQ, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let headers = m.headers().expect("headers");
                let get = |name: &str| {
                    headers
                        .iter()
                        .find(|h| h.key == name)
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).to_string())
                        .unwrap_or_default()
                };
                letters.push((
                    get("spiral.source.topic"),
                    get("spiral.source.partition"),
                    get("spiral.source.offset"),
                ));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return letters,
            _ => {}
        }
    }
    panic!("cannot read the dead-letter topic to its end");
}

#[test]
fn one_to_three_to_one_instances_add_up_to_the_replay() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    for (topic, partitions) in [(INPUT, 4), (DLQ, 1), (EVENTS, 1), (TOUCHES, 6)] {
        cluster.create_topic(topic, partitions, 1).expect("topic");
    }
    let state = tempfile::tempdir().unwrap();
    let text = live::config_toml(&brokers, &[INPUT], DLQ, "stages-churn", Some(state.path()));
    let config = live::config(&format!(
        "{text}\n[kafka.stages]\nevents_topic = {EVENTS:?}\ntouches_topic = {TOUCHES:?}\n"
    ));
    let lines = live::traffic(61, 500, 6_000);
    let thirds = [lines.len() / 3, 2 * lines.len() / 3, lines.len()];

    // 1 instance reads the first third.
    let first = Instance::start(&config);
    live::produce(&brokers, INPUT, 4, &lines[..thirds[0]]);
    let summary = live::settled_merged(
        &[first.addr()],
        thirds[0] as u64,
        6,
        Duration::from_secs(90),
    );
    let (expected, _) = live::replay(&config, &lines[..thirds[0]], summary.watermark.as_deref());
    assert_eq!(live::order_free(summary), live::order_free(expected));

    // 3 instances: the group spreads the stage partitions, whose state moves with them.
    let second = Instance::start(&config);
    let third = Instance::start(&config);
    live::produce(&brokers, INPUT, 4, &lines[thirds[0]..thirds[1]]);
    let all = [&first, &second, &third];
    let addrs: Vec<SocketAddr> = all.iter().map(|i| i.addr()).collect();
    let summary = live::settled_merged(&addrs, thirds[1] as u64, 6, Duration::from_secs(120));
    let (expected, _) = live::replay(&config, &lines[..thirds[1]], summary.watermark.as_deref());
    assert_eq!(
        live::order_free(summary.clone()),
        live::order_free(expected)
    );
    live::assert_metrics_match(&live::summed_scrape(&addrs), &summary);
    let owners = all
        .iter()
        .filter(|i| live::summary_of(i.addr()).funnels[0].stages[0].entered > 0)
        .count();
    assert!(
        owners >= 2,
        "the journeys did not spread over the instances"
    );
    // The partitions that moved were taken over from their checkpoints.
    let restores: f64 = all
        .iter()
        .filter_map(|i| {
            live::scrape_values(&live::http_get(i.addr(), "/metrics").1)
                .get("spiral_checkpoint_restores_total")
                .copied()
        })
        .sum();
    assert!(
        restores > 0.0,
        "no partition state was restored from a checkpoint"
    );

    // Back to 1: the two leave cleanly, their partitions' state returns to the first.
    second.stop();
    third.stop();
    live::produce(&brokers, INPUT, 4, &lines[thirds[1]..]);
    let summary = live::settled_merged(
        &[first.addr()],
        lines.len() as u64,
        6,
        Duration::from_secs(120),
    );
    let (expected, rejected) = live::replay(&config, &lines, summary.watermark.as_deref());
    assert_eq!(
        live::order_free(summary.clone()),
        live::order_free(expected)
    );
    live::assert_metrics_match(&live::summed_scrape(&[first.addr()]), &summary);

    // Each rejected message is on the dead-letter topic once.
    let letters = dead_letters(&brokers);
    let mut unique = letters.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), letters.len(), "a letter was written twice");
    assert_eq!(letters.len(), rejected.len());

    // The one instance left fetches every partition, inputs and stage topics alike, and its
    // lag gauges show each of them once, caught up.
    let mut expected: Vec<(String, i32)> = (0..4).map(|p| (INPUT.to_string(), p)).collect();
    expected.push((EVENTS.to_string(), 0));
    expected.extend((0..6).map(|p| (TOUCHES.to_string(), p)));
    assert_caught_up(first.addr(), &expected);
    first.stop();
}

/// Waits (up to 30 s: statistics come every second) until `addr` shows a lag gauge of 0 for
/// exactly the partitions `expected`.
fn assert_caught_up(addr: SocketAddr, expected: &[(String, i32)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = live::http_get(addr, "/metrics").1;
        let mut lags: Vec<((String, i32), f64)> = live::scrape_values(&text)
            .into_iter()
            .filter_map(|(key, value)| {
                let labels = key.strip_prefix("spiral_kafka_consumer_lag_messages{")?;
                let label = |name: &str| {
                    let at = labels.find(&format!("{name}=\""))? + name.len() + 2;
                    Some(labels[at..].split('"').next()?.to_string())
                };
                Some(((label("topic")?, label("partition")?.parse().ok()?), value))
            })
            .collect();
        lags.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want: Vec<((String, i32), f64)> =
            expected.iter().map(|tp| (tp.clone(), 0.0)).collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        if lags == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "lag gauges {lags:?}, expected every one of {expected:?} at 0"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
