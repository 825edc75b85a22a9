//! Helpers for the live-service tests (mock cluster and real broker): traffic whose summary
//! does not depend on arrival order, a configuration, the service in process, a tiny HTTP
//! client, and the replay a live summary must equal.
#![allow(dead_code)]

pub mod process;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use spiral::config::Config;
use spiral::generate::{self, GenerateOptions};
use spiral::replay::Replayer;
use spiral::summary::Summary;
use spiral::time::parse_rfc3339;

/// The funnels of the example configuration, with identity and dedup windows long enough that
/// nothing expires, so that the final numbers do not depend on arrival order (SPEC §4).
/// `state`: the checkpoint directory, or `None` for no checkpoints.
pub fn config_toml(
    brokers: &str,
    topics: &[&str],
    dlq: &str,
    group: &str,
    state: Option<&std::path::Path>,
) -> String {
    let state = match state {
        Some(dir) => format!("dir = {:?}\ninterval = \"1s\"", dir.display().to_string()),
        None => "enabled = false".to_string(),
    };
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/spiral.toml"))
            .expect("config/spiral.toml");
    let funnels = &example[example.find("[touchpoints]").expect("touchpoints")
        ..example.find("[kafka]").expect("kafka section")];
    let topics = topics
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[pipeline]
allowed_lateness = "2d"
dedup_window = "3650d"

[identity]
pending_ttl = "3650d"

{funnels}
[kafka]
brokers = "{brokers}"
group_id = "{group}"
topics = [{topics}]
dlq_topic = "{dlq}"
idle_timeout = "1s"
poll_batch = 500

[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
# Tansu holds every fetch this long even when data waits (docs/performance.md).
"fetch.wait.max.ms" = 10

[http]
listen = "127.0.0.1:0"

[service]
shutdown_timeout = "20s"

[state]
{state}
"#
    )
}

pub fn config(text: &str) -> Config {
    Config::parse(text, "live-test.toml").expect("valid test configuration")
}

/// Generated traffic (broken lines and retries included), without the lines whose effect
/// depends on arrival order by definition: ids re-sent with a different payload, and links
/// that contradict an earlier link (identity conflicts). What is left gives the same summary,
/// `late` aside, in any order.
pub fn traffic(seed: u64, accounts: u64, events: u64) -> Vec<Vec<u8>> {
    let options = GenerateOptions {
        seed,
        accounts,
        events,
        ..GenerateOptions::default()
    };
    let mut lines = Vec::new();
    generate::generate_with(&options, |line, _| {
        lines.push(line.strip_suffix(b"\n").unwrap_or(line).to_vec());
        Ok(())
    })
    .expect("generate");
    let mut by_id: HashMap<String, Vec<u8>> = HashMap::new();
    let mut links: HashMap<(u8, String), String> = HashMap::new();
    lines.retain(|line| {
        let Ok(serde_json::Value::Object(event)) = serde_json::from_slice(line) else {
            return true;
        };
        let text = |k: &str| match event.get(k) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        if let Some(id) = text("event_id") {
            match by_id.get(&id) {
                Some(first) if first != line => return false,
                Some(_) => return true,
                None => {}
            }
        }
        let (anon, contact, account) =
            (text("anonymous_id"), text("contact_id"), text("account_id"));
        let wanted: Vec<((u8, String), String)> = [
            (0, &anon, &contact),
            (1, &anon, &account),
            (2, &contact, &account),
        ]
        .into_iter()
        .filter_map(|(kind, from, to)| Some(((kind, from.clone()?), to.clone()?)))
        .collect();
        if wanted
            .iter()
            .any(|(k, to)| links.get(k).is_some_and(|first| first != to))
        {
            return false;
        }
        for (k, to) in wanted {
            links.entry(k).or_insert(to);
        }
        if let Some(id) = text("event_id") {
            by_id.insert(id, line.clone());
        }
        true
    });
    lines
}

/// Replays `lines` in order and decides outcomes at `watermark`; also returns the rejected
/// lines with their reasons.
pub fn replay(
    config: &Config,
    lines: &[Vec<u8>],
    watermark: Option<&str>,
) -> (Summary, Vec<(Vec<u8>, String)>) {
    let mut rejected = Vec::new();
    let mut replayer = Replayer::new(config, &mut rejected).expect("replayer");
    for (i, line) in lines.iter().enumerate() {
        replayer
            .message(line, "traffic", i as u64 + 1)
            .expect("replay");
    }
    let watermark = watermark.map(|w| parse_rfc3339(w).expect("watermark"));
    let (summary, _) = replayer.finish(watermark).expect("finish");
    let rejects = String::from_utf8(rejected)
        .expect("rejected file is UTF-8")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("rejected line");
            let text = match (&v["text"], &v["text_base64"]) {
                (serde_json::Value::String(t), _) => t.as_bytes().to_vec(),
                (_, serde_json::Value::String(b)) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .expect("base64")
                }
                _ => panic!("rejected line without text: {l}"),
            };
            (text, v["reason"].as_str().expect("reason").to_string())
        })
        .collect();
    (summary, rejects)
}

/// The summary without what arrival order decides by definition (SPEC §4): `late`.
pub fn order_free(mut summary: Summary) -> Summary {
    summary.events.late = 0;
    summary
}

/// `GET path` over a fresh connection: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the service");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let text = String::from_utf8(response).expect("UTF-8 response");
    let status = text[9..12].parse().expect("status code");
    let body_at = text.find("\r\n\r\n").expect("end of headers") + 4;
    let headers = &text[..body_at];
    let body = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&text[body_at..])
    } else {
        text[body_at..].to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let line_end = rest.find("\r\n").expect("chunk size");
        let size = usize::from_str_radix(rest[..line_end].trim(), 16).expect("hex size");
        if size == 0 {
            return body;
        }
        body.push_str(&rest[line_end + 2..line_end + 2 + size]);
        rest = &rest[line_end + 2 + size + 2..];
    }
}

pub fn summary_of(addr: SocketAddr) -> Summary {
    let (status, body) = http_get(addr, "/api/v1/summary");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("summary JSON")
}

/// Polls the summary until `received` reaches `n` and then the watermark has not moved for
/// two seconds (every partition idle), or panics after `timeout`.
pub fn settled_summary(addr: SocketAddr, n: u64, timeout: Duration) -> Summary {
    let start = Instant::now();
    let mut last: Option<(Summary, Instant)> = None;
    loop {
        let summary = summary_of(addr);
        assert!(
            start.elapsed() < timeout,
            "the service read {} of {n} messages in {timeout:?}",
            summary.events.received
        );
        if summary.events.received == n {
            match &last {
                Some((prev, since))
                    if prev.watermark == summary.watermark
                        && since.elapsed() > Duration::from_secs(2) =>
                {
                    return summary;
                }
                Some((prev, _)) if prev.watermark == summary.watermark => {}
                _ => last = Some((summary, Instant::now())),
            }
        } else {
            assert!(
                summary.events.received < n,
                "read more than was produced: {summary:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The summaries of instances that each own part of the stream (scale-out), added up.
pub fn merged(addrs: &[SocketAddr]) -> Summary {
    let mut summaries = addrs.iter().map(|&a| summary_of(a));
    let mut merged = summaries.next().expect("an instance");
    for summary in summaries {
        merged.add(&summary).expect("same funnels");
    }
    merged
}

/// Waits until all instances together have read `n` messages and the merged watermark has
/// not moved for two seconds.
pub fn settled_merged(
    addrs: &[SocketAddr],
    n: u64,
    touches_partitions: usize,
    timeout: Duration,
) -> Summary {
    let start = Instant::now();
    let mut last: Option<(Summary, Instant)> = None;
    loop {
        // A partition no instance holds (still assigned to a member that was killed, until
        // its session times out) leaves its numbers out of every summary: not settled.
        if !every_stage_partition_owned_once(addrs, touches_partitions) {
            assert!(
                start.elapsed() < timeout,
                "some stage partition is not owned by exactly one instance after {timeout:?}"
            );
            last = None;
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let summary = merged(addrs);
        assert!(
            start.elapsed() < timeout,
            "the instances read {} of {n} messages in {timeout:?}: {summary:?}",
            summary.events.received
        );
        assert!(summary.events.received <= n, "counted twice: {summary:?}");
        if summary.events.received == n {
            match &last {
                Some((prev, since)) if *prev == summary => {
                    if since.elapsed() > Duration::from_secs(2) {
                        return summary;
                    }
                }
                _ => last = Some((summary, Instant::now())),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the instances together export `events-0` and each of `touches_partitions` touches
/// partitions, each from one instance only (the `partition` labels in their scrapes).
pub fn every_stage_partition_owned_once(addrs: &[SocketAddr], touches_partitions: usize) -> bool {
    let mut owned = Vec::new();
    for &addr in addrs {
        let text = http_get(addr, "/metrics").1;
        let mut mine: Vec<String> = scrape_values(&text)
            .keys()
            // Consumer lag has a `partition` label too: the Kafka partition, not a stage's.
            .filter(|key| !key.starts_with("spiral_kafka_consumer_lag_messages"))
            .filter_map(|key| {
                let at = key.find("partition=\"")? + 11;
                Some(key[at..at + key[at..].find('"')?].to_string())
            })
            .collect();
        mine.sort();
        mine.dedup();
        owned.extend(mine);
    }
    let mut expected: Vec<String> = (0..touches_partitions)
        .map(|p| format!("touches-{p}"))
        .collect();
    expected.push("events-0".to_string());
    expected.sort();
    owned.sort();
    owned == expected
}

/// Every instance's scrape summed over `partition` (and so over instances), as
/// `sum without (partition, instance)` does.
pub fn summed_scrape(addrs: &[SocketAddr]) -> String {
    let mut sums: HashMap<String, f64> = HashMap::new();
    let mut partitions = Vec::new();
    for &addr in addrs {
        let text = http_get(addr, "/metrics").1;
        for (key, value) in scrape_values(&text) {
            let Some(at) = key.find("partition=\"") else {
                continue;
            };
            let end = at + key[at + 11..].find('"').expect("closing quote") + 12;
            partitions.push(key[at + 11..end - 1].to_string());
            let mut stripped = format!("{}{}", &key[..at], &key[end..]);
            stripped = stripped.replace(",}", "}").replace("{}", "");
            *sums.entry(stripped).or_default() += value;
        }
    }
    assert!(
        !partitions.is_empty(),
        "no series carries a partition label"
    );
    sums.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
}

/// Parses a Prometheus text scrape into (name{labels}, value) with labels in written order.
pub fn scrape_values(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("sample line");
            (key.to_string(), value.parse().expect("sample value"))
        })
        .collect()
}

/// Asserts that a scrape's business counters equal the summary's numbers.
pub fn assert_metrics_match(scrape: &str, summary: &Summary) {
    let values = scrape_values(scrape);
    let get = |key: String| -> f64 {
        *values
            .get(&key)
            .unwrap_or_else(|| panic!("no sample {key} in the scrape"))
    };
    for funnel in &summary.funnels {
        let last = funnel.stages.len() - 1;
        for (s, stage) in funnel.stages.iter().enumerate() {
            let labels = format!("funnel=\"{}\",stage=\"{}\"", funnel.name, stage.name);
            let entered = get(format!(
                "spiral_stage_entered_total{{{labels},channel=\"online\"}}"
            )) + get(format!(
                "spiral_stage_entered_total{{{labels},channel=\"offline\"}}"
            ));
            assert_eq!(entered as i64, stage.entered, "entered {labels}");
            if s < last {
                assert_eq!(
                    get(format!("spiral_stage_converted_total{{{labels}}}")) as i64,
                    stage.converted,
                    "converted {labels}"
                );
                assert_eq!(
                    get(format!("spiral_stage_dropped_total{{{labels}}}")) as i64,
                    stage.dropped,
                    "dropped {labels}"
                );
                assert_eq!(
                    get(format!("spiral_stage_open{{{labels}}}")) as i64,
                    stage.open,
                    "open {labels}"
                );
            }
        }
    }
    let rejected = &summary.events.rejected;
    for (reason, n) in [
        ("oversized", rejected.oversized),
        ("malformed", rejected.malformed),
        ("missing_field", rejected.missing_field),
        ("invalid_timestamp", rejected.invalid_timestamp),
        ("invalid_channel", rejected.invalid_channel),
        ("no_identity", rejected.no_identity),
    ] {
        assert_eq!(
            get(format!(
                "spiral_events_rejected_total{{reason=\"{reason}\"}}"
            )) as u64,
            n,
            "{reason}"
        );
    }
    assert_eq!(
        get("spiral_events_total{result=\"accepted\"}".into()) as u64,
        summary.events.accepted
    );
}

/// Produces `lines` round-robin over `partitions` partitions and waits for every delivery.
pub fn produce(brokers: &str, topic: &str, partitions: i32, lines: &[Vec<u8>]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (i, line) in lines.iter().enumerate() {
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(&line[..])
            .partition(i as i32 % partitions);
        while let Err((_, back)) = producer.send(record) {
            producer.poll(Duration::from_millis(10));
            record = back;
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// A mock cluster with a topic of generated traffic and a dead-letter topic, and the
/// configuration of a service that consumes it.
pub struct Mock {
    pub cluster: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    pub brokers: String,
    pub lines: Vec<Vec<u8>>,
    pub config: Config,
}

pub const MOCK_TOPIC: &str = "touchpoints";
pub const MOCK_DLQ: &str = "dead-letters";

impl Mock {
    /// `traffic(seed, accounts, events)` produced round-robin over `partitions`.
    pub fn new(partitions: i32, seed: u64, accounts: u64, events: u64, group: &str) -> Mock {
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        cluster
            .create_topic(MOCK_TOPIC, partitions, 1)
            .expect("topic");
        cluster
            .create_topic(MOCK_DLQ, 1, 1)
            .expect("dead-letter topic");
        let lines = traffic(seed, accounts, events);
        produce(&brokers, MOCK_TOPIC, partitions, &lines);
        let config = config(&config_toml(&brokers, &[MOCK_TOPIC], MOCK_DLQ, group, None));
        Mock {
            cluster,
            brokers,
            lines,
            config,
        }
    }

    /// The service in process, on its own runtime.
    pub fn start(&self) -> (tokio::runtime::Runtime, spiral::service::Service) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let service = runtime
            .block_on(spiral::service::Service::start(&self.config))
            .expect("service starts");
        (runtime, service)
    }
}
