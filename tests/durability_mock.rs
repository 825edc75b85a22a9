//! Durable state in process, on librdkafka's mock cluster (SPEC §6, issue #4), each run
//! compared with a replay of the same messages: the broker going down and up, torn and
//! corrupted checkpoints, a full disk, and state that cannot be trusted at all; and the BI
//! files, which wait for a durable checkpoint before anyone can see them.

mod common;
mod live;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use spiral::checkpoint::{FullDisk, LocalDir, Storage};
use spiral::config::{Config, Dimension, ExportConfig, StateLocation};
use spiral::service::Service;
use spiral::summary::Summary;

fn with_state(config: &Config, dir: &Path) -> Config {
    let mut config = config.clone();
    config.service.state.location = Some(StateLocation::Dir(dir.to_path_buf()));
    config.service.state.interval = Duration::from_millis(300);
    config
}

fn with_export(config: &Config, dir: &Path) -> Config {
    let mut config = config.clone();
    config.service.export = Some(ExportConfig {
        dir: dir.to_path_buf(),
        ..ExportConfig::default()
    });
    config
}

fn start(config: &Config, storage: Option<Box<dyn Storage>>) -> (tokio::runtime::Runtime, Service) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let service = runtime
        .block_on(Service::start_with_storage(config, storage))
        .expect("service starts");
    (runtime, service)
}

fn metric(addr: std::net::SocketAddr, name: &str) -> Option<f64> {
    live::scrape_values(&live::http_get(addr, "/metrics").1)
        .get(name)
        .copied()
}

/// One run of the service until all `n` messages are read and the watermark has settled:
/// its summary and its metrics at that point.
fn run_once(
    config: &Config,
    storage: Option<Box<dyn Storage>>,
    n: usize,
) -> (Summary, HashMap<String, f64>) {
    let (runtime, service) = start(config, storage);
    let summary = live::settled_summary(service.addr, n as u64, Duration::from_secs(60));
    let metrics = live::scrape_values(&live::http_get(service.addr, "/metrics").1);
    runtime.block_on(service.stop()).expect("clean stop");
    (summary, metrics)
}

/// Checkpoint files in `dir`, newest first.
fn checkpoints(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    files.reverse();
    files
}

#[test]
fn broker_down_and_up_loses_nothing_and_a_restart_resumes_exactly() {
    let mock = live::Mock::new(3, 51, 600, 6_000, "durable-broker");
    let state = tempfile::tempdir().unwrap();
    let config = with_state(&mock.config, state.path());
    let (runtime, service) = start(&config, None);
    let addr = service.addr;
    std::thread::sleep(Duration::from_millis(3_500));
    // The only broker goes away for a few seconds, through at least one checkpoint.
    mock.cluster.broker_down(1).expect("broker down");
    std::thread::sleep(Duration::from_secs(3));
    mock.cluster.broker_up(1).expect("broker up");
    let summary = live::settled_summary(addr, mock.lines.len() as u64, Duration::from_secs(90));
    assert!(metric(addr, "spiral_checkpoint_last_success_timestamp_seconds").is_some());
    runtime.block_on(service.stop()).expect("clean stop");
    let (replayed, _) = live::replay(&config, &mock.lines, summary.watermark.as_deref());
    assert_eq!(
        live::order_free(summary.clone()),
        live::order_free(replayed)
    );

    // A restart resumes the shutdown checkpoint: the same numbers, nothing read again.
    let (again, metrics) = run_once(&config, None, mock.lines.len());
    assert_eq!(metrics["spiral_checkpoint_restores_total"], 1.0);
    assert_eq!(again, summary);
}

#[test]
fn torn_and_corrupted_checkpoints_fall_back_to_an_older_generation() {
    let mock = live::Mock::new(2, 52, 400, 4_000, "durable-torn");
    let state = tempfile::tempdir().unwrap();
    let config = with_state(&mock.config, state.path());
    let (runtime, service) = start(&config, None);
    let summary = live::settled_summary(
        service.addr,
        mock.lines.len() as u64,
        Duration::from_secs(60),
    );
    // Let a few periodic checkpoints pass, so three generations are kept.
    std::thread::sleep(Duration::from_secs(1));
    runtime.block_on(service.stop()).expect("clean stop");

    let files = checkpoints(state.path());
    assert_eq!(files.len(), 3, "{files:?}");
    // The newest is torn (a crash during a non-atomic copy), the next has a flipped byte.
    let newest = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &newest[..newest.len() / 2]).unwrap();
    let mut second = std::fs::read(&files[1]).unwrap();
    let middle = second.len() / 2;
    second[middle] ^= 0x40;
    std::fs::write(&files[1], &second).unwrap();

    let (resumed, metrics) = run_once(&config, None, mock.lines.len());
    assert_eq!(metrics["spiral_checkpoint_fallbacks_total"], 2.0);
    assert_eq!(metrics["spiral_checkpoint_restores_total"], 1.0);
    assert_eq!(live::order_free(resumed), live::order_free(summary));

    // When no generation verifies, Spiral refuses to start rather than guess.
    for file in checkpoints(state.path()) {
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, bytes).unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = match runtime.block_on(Service::start(&config)) {
        Ok(_) => panic!("started on state that does not verify"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("no usable checkpoint"), "{error}");
}

/// The service with checkpoints into `state` on a disk that is full until the returned flag
/// is cleared, after it has read every message of `mock` and tried to checkpoint for a second.
fn start_on_a_full_disk(
    config: &Config,
    state: &Path,
    mock: &live::Mock,
) -> (tokio::runtime::Runtime, Service, Arc<AtomicBool>, Summary) {
    let full = Arc::new(AtomicBool::new(true));
    let storage = FullDisk {
        inner: LocalDir::new(state).unwrap(),
        full: full.clone(),
    };
    let (runtime, service) = start(config, Some(Box::new(storage)));
    let summary = live::settled_summary(
        service.addr,
        mock.lines.len() as u64,
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(1));
    (runtime, service, full, summary)
}

#[test]
fn a_full_disk_is_reported_and_never_gives_wrong_numbers() {
    let mock = live::Mock::new(2, 53, 400, 4_000, "durable-full");
    let state = tempfile::tempdir().unwrap();
    let config = with_state(&mock.config, state.path());
    let (runtime, service, full, summary) = start_on_a_full_disk(&config, state.path(), &mock);
    let addr = service.addr;
    let scrape = live::scrape_values(&live::http_get(addr, "/metrics").1);
    assert!(
        scrape["spiral_checkpoints_total{result=\"failed\"}"] >= 1.0,
        "{scrape:?}"
    );
    assert_eq!(scrape["spiral_checkpoints_total{result=\"ok\"}"], 0.0);
    assert!(!scrape.contains_key("spiral_checkpoint_last_success_timestamp_seconds"));
    // Nothing durable: a restart on this state reads everything again, from the start, and
    // counts it once.
    runtime
        .block_on(service.stop())
        .expect("a stop with a full disk still drains");
    assert!(checkpoints(state.path()).is_empty());
    let (again, metrics) = run_once(&config, None, mock.lines.len());
    assert_eq!(metrics["spiral_checkpoint_restores_total"], 0.0);
    assert_eq!(live::order_free(again), live::order_free(summary.clone()));

    // Space comes back: checkpoints succeed again and a restart resumes them.
    full.store(false, Ordering::Relaxed);
    let storage = FullDisk {
        inner: LocalDir::new(state.path()).unwrap(),
        full,
    };
    run_once(&config, Some(Box::new(storage)), mock.lines.len());
    assert!(!checkpoints(state.path()).is_empty());
}

/// Parquet files under `dir` outside the staging area.
fn published(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            // Staging, and the empty schema file every table starts with.
            if path
                .file_name()
                .is_some_and(|f| f == "_staging" || f == "date=1970-01-01")
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn bi_files_wait_until_a_durable_checkpoint_covers_them() {
    let mock = live::Mock::new(2, 55, 500, 5_000, "durable-export");
    let (state, export) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = with_export(&with_state(&mock.config, state.path()), export.path());
    let (runtime, service, full, summary) = start_on_a_full_disk(&config, state.path(), &mock);
    let addr = service.addr;
    // Every checkpoint failed: their revisions are sealed in staging, none is visible.
    assert!(metric(addr, "spiral_checkpoints_total{result=\"failed\"}").unwrap() >= 1.0);
    assert_eq!(metric(addr, "spiral_export_revision"), Some(0.0));
    assert_eq!(published(export.path()), 0);
    assert!(export.path().join("_staging").is_dir());

    // Space comes back: the next durable checkpoint publishes every waiting revision.
    full.store(false, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metric(addr, "spiral_export_revision") == Some(0.0) {
        assert!(std::time::Instant::now() < deadline, "nothing published");
        std::thread::sleep(Duration::from_millis(100));
    }
    runtime.block_on(service.stop()).expect("clean stop");
    assert!(published(export.path()) > 0);
    assert!(!export.path().join("_staging").exists());
    common::bi::assert_files_match(export.path(), &summary);
    let touches = common::bi::query(
        export.path(),
        &["SELECT count(*) AS n, count(DISTINCT (event_id, occurred_at)) AS d FROM touches_all"],
    );
    let expected = summary.events.accepted - summary.events.identify;
    assert_eq!(touches[0][0]["n"].as_u64(), Some(expected));
    assert_eq!(touches[0][0]["d"].as_u64(), Some(expected));
}

#[test]
fn turning_the_export_on_later_writes_every_journey_of_the_restored_state() {
    let mock = live::Mock::new(2, 56, 300, 3_000, "durable-export-later");
    let (state, export) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = with_state(&mock.config, state.path());
    let (summary, _) = run_once(&config, None, mock.lines.len());
    assert_eq!(published(export.path()), 0);

    // The same state, now with the export: the first checkpoint writes every journey.
    let config = with_export(&config, export.path());
    let (again, metrics) = run_once(&config, None, mock.lines.len());
    assert_eq!(metrics["spiral_checkpoint_restores_total"], 1.0);
    assert_eq!(live::order_free(again.clone()), live::order_free(summary));
    common::bi::assert_files_match(export.path(), &again);
}

#[test]
fn checkpoints_and_bi_files_in_an_object_store_survive_a_restart() {
    let mock = live::Mock::new(2, 54, 300, 3_000, "durable-objects");
    let (state, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config = with_export(&with_state(&mock.config, state.path()), scratch.path());
    // object_store's local-filesystem back end, through the same URL parsing as s3://.
    config.service.state.location = Some(StateLocation::Url {
        url: format!("file://{}/prefix", state.path().display()),
        options: Default::default(),
    });
    let bucket = state.path().join("bi");
    std::fs::create_dir_all(&bucket).unwrap();
    config.service.export.as_mut().unwrap().url = Some(format!("file://{}", bucket.display()));
    let (summary, _) = run_once(&config, None, mock.lines.len());
    assert!(!checkpoints(&state.path().join("prefix")).is_empty());
    let (again, metrics) = run_once(&config, None, mock.lines.len());
    assert_eq!(metrics["spiral_checkpoint_restores_total"], 1.0);
    assert_eq!(again, summary);
    // The files are in the store, published; the scratch directory holds none of them.
    assert!(published(&bucket) > 3);
    assert_eq!(published(scratch.path()), 0);
    common::bi::assert_files_match(&bucket, &summary);
}

/// A message's key and payload.
type Keyed = (Vec<u8>, Vec<u8>);

/// Every message of `topic` on the mock cluster: (key, payload), by partition and offset.
fn read_topic(brokers: &str, topic: &str) -> Vec<Keyed> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "transitions-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in metadata.topics()[0].partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(low, 0, "the mock cluster kept every message of {topic}");
        if high > 0 {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Offset(0))
                .unwrap();
            ends.insert(p.id(), high);
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut by_partition: std::collections::BTreeMap<i32, Vec<Keyed>> = Default::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ends
        .iter()
        .any(|(p, end)| by_partition.get(p).map_or(0, Vec::len) < *end as usize)
    {
        assert!(std::time::Instant::now() < deadline, "reading {topic}");
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let m = message.expect("a message");
            by_partition.entry(m.partition()).or_default().push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    by_partition.into_values().flatten().collect()
}

#[test]
fn stage_transitions_fold_to_the_summary_across_restarts() {
    let mock = live::Mock::new(2, 57, 300, 3_000, "durable-transitions");
    mock.cluster
        .create_topic("transitions", 3, 1)
        .expect("transitions topic");
    let (state, export) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config = with_export(&with_state(&mock.config, state.path()), export.path());
    config.service.kafka.as_mut().unwrap().transitions_topic = Some("transitions".into());
    let (summary, metrics) = run_once(&config, None, mock.lines.len());
    let sent = metrics["spiral_transitions_sent_total"];
    assert!(sent > 0.0);
    let messages = read_topic(&mock.brokers, "transitions");
    assert!(messages.len() as f64 >= sent, "{} < {sent}", messages.len());
    common::bi::assert_transitions_match(&messages, &summary);

    // A restart resumes the checkpoint (its revisions are sent again, here empty ones: the
    // kill -9 test of durability_tansu has them sent twice); the fold still gives the numbers.
    let (again, metrics) = run_once(&config, None, mock.lines.len());
    assert_eq!(metrics["spiral_checkpoint_restores_total"], 1.0);
    assert_eq!(again, summary);
    let more = read_topic(&mock.brokers, "transitions");
    assert!(more.len() >= messages.len());
    common::bi::assert_transitions_match(&more, &summary);
    common::bi::assert_files_match(export.path(), &summary);
}

#[test]
fn bi_files_break_stage_entries_down_like_the_metrics() {
    let mock = live::Mock::new(2, 58, 300, 3_000, "durable-dimensions");
    let (state, export) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config = with_export(&with_state(&mock.config, state.path()), export.path());
    config.service.metrics.dimensions =
        vec![Dimension::Campaign, Dimension::Attribute("segment".into())];
    config.service.metrics.top_n = 253;
    let (summary, metrics) = run_once(&config, None, mock.lines.len());
    // The metrics: entries per (funnel, stage, campaign, segment), channels summed.
    let mut from_metrics: HashMap<(String, String, String, String), f64> = HashMap::new();
    for (key, value) in &metrics {
        let Some(labels) = key.strip_prefix("spiral_stage_entered_total{") else {
            continue;
        };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            labels[start..][..labels[start..].find('"').unwrap()].to_string()
        };
        *from_metrics
            .entry((
                label("funnel"),
                label("stage"),
                label("campaign"),
                label("segment"),
            ))
            .or_default() += value;
    }
    assert!(
        from_metrics.keys().any(|k| k.3 != "none"),
        "segments are labelled"
    );
    assert!(
        !from_metrics
            .keys()
            .any(|k| k.2 == "other" || k.3 == "other"),
        "within top_n, so every value has its own label"
    );
    let rows = &common::bi::query(
        export.path(),
        &[
            "SELECT funnel, stage, coalesce(campaign, 'none') AS campaign, \
           coalesce(attributes['segment'], 'none') AS segment, count(*) AS entered \
           FROM stage_entries_touch GROUP BY ALL",
        ],
    )[0];
    let from_files: HashMap<(String, String, String, String), f64> = rows
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_string();
            (
                (
                    text("funnel"),
                    text("stage"),
                    text("campaign"),
                    text("segment"),
                ),
                r["entered"].as_f64().unwrap(),
            )
        })
        .collect();
    let from_metrics: HashMap<_, _> = from_metrics.into_iter().filter(|(_, v)| *v > 0.0).collect();
    assert_eq!(from_files, from_metrics);
    common::bi::assert_files_match(export.path(), &summary);
}

#[test]
fn stage_transitions_wait_while_their_topic_refuses_them_then_arrive() {
    use rdkafka::types::RDKafkaRespErr;
    let mock = live::Mock::new(2, 59, 300, 3_000, "durable-transitions-refused");
    mock.cluster
        .create_topic("transitions", 2, 1)
        .expect("transitions topic");
    // The producer is not allowed to write the topic (as with a missing ACL).
    mock.cluster
        .topic_error(
            "transitions",
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    let (state, export) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config = with_export(&with_state(&mock.config, state.path()), export.path());
    let kafka = config.service.kafka.as_mut().unwrap();
    kafka.transitions_topic = Some("transitions".into());
    // Fail fast and notice the topic's recovery soon, so the test takes seconds.
    for (key, value) in [
        ("message.timeout.ms", "2000"),
        ("topic.metadata.refresh.interval.ms", "500"),
    ] {
        kafka.transitions_producer.insert(key.into(), value.into());
    }
    let (runtime, service) = start(&config, None);
    let addr = service.addr;
    let summary = live::settled_summary(addr, mock.lines.len() as u64, Duration::from_secs(60));
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let unpublished = || metric(addr, "spiral_export_unpublished_revisions").unwrap_or(0.0);
    wait_for("a revision waits for its transitions", &|| {
        unpublished() >= 1.0
    });
    assert_eq!(metric(addr, "spiral_transitions_sent_total"), Some(0.0));

    // Allowed again: the next checkpoint sends every waiting revision, whole.
    mock.cluster
        .topic_error("transitions", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .unwrap();
    wait_for("the waiting revisions are sent", &|| unpublished() == 0.0);
    runtime.block_on(service.stop()).expect("clean stop");
    let messages = read_topic(&mock.brokers, "transitions");
    assert!(!messages.is_empty());
    common::bi::assert_transitions_match(&messages, &summary);
    common::bi::assert_files_match(export.path(), &summary);
}

#[test]
fn a_second_instance_on_the_same_state_directory_is_refused_at_start() {
    let mock = live::Mock::new(2, 55, 100, 1_000, "durable-exclusive");
    let state = tempfile::tempdir().unwrap();
    let config = with_state(&mock.config, state.path());
    let (runtime, first) = start(&config, None);
    let second = runtime.block_on(Service::start_with_storage(&config, None));
    let error = format!("{:#}", second.err().expect("the second start is refused"));
    assert!(
        error.starts_with("state.dir: ") && error.contains("another Spiral process"),
        "{error}"
    );
    runtime.block_on(first.stop()).expect("clean stop");
    // Once the first has stopped the directory is free, and its checkpoint resumes.
    let (summary, metrics) = run_once(&config, None, mock.lines.len());
    assert_eq!(metrics["spiral_checkpoint_restores_total"], 1.0);
    assert_eq!(summary.events.received, mock.lines.len() as u64);
}

#[test]
fn two_instances_writing_one_object_store_state_stop_rather_than_take_turns() {
    let mock = live::Mock::new(2, 56, 200, 2_000, "durable-fenced-a");
    let state = tempfile::tempdir().unwrap();
    let mut config = with_state(&mock.config, state.path());
    config.service.state.location = Some(StateLocation::Url {
        url: format!("file://{}/prefix", state.path().display()),
        options: Default::default(),
    });
    let (runtime_a, a) = start(&config, None);
    live::settled_summary(a.addr, mock.lines.len() as u64, Duration::from_secs(60));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while checkpoints(&state.path().join("prefix")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint from the first"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A second deployment pointed at the same state by mistake (another group, so it reads
    // everything too): it resumes the first one's checkpoint and writes its own.
    let mut other = config.clone();
    other.service.kafka.as_mut().unwrap().group_id = "durable-fenced-b".into();
    let (runtime_b, b) = start(&other, None);
    std::thread::sleep(Duration::from_secs(2));
    live::produce(
        &mock.brokers,
        live::MOCK_TOPIC,
        2,
        &live::traffic(57, 50, 500),
    );
    std::thread::sleep(Duration::from_secs(4));
    let stopped = [runtime_a.block_on(a.stop()), runtime_b.block_on(b.stop())];
    let refused: Vec<String> = stopped
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    assert!(
        !refused.is_empty(),
        "one of them must stop: the other wrote a generation it was about to write"
    );
    for error in &refused {
        assert!(
            error.starts_with("state: another writer wrote checkpoint generation"),
            "{error}"
        );
    }
}

#[test]
fn a_second_member_in_the_group_is_shown_until_it_leaves() {
    let mock = live::Mock::new(3, 58, 200, 2_000, "durable-split");
    let (first_state, second_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = with_state(&mock.config, first_state.path());
    let (runtime, first) = start(&config, None);
    live::settled_summary(first.addr, mock.lines.len() as u64, Duration::from_secs(60));
    let elsewhere = || metric(first.addr, "spiral_state_partitions_elsewhere");
    assert_eq!(elsewhere(), Some(0.0));
    // A second replica of the same deployment: same group, a state of its own.
    let (runtime_2, second) = start(&with_state(&mock.config, second_state.path()), None);
    let wait_for = |want: &dyn Fn(f64) -> bool, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let now = elsewhere().unwrap_or(-1.0);
            if want(now) {
                return now;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: still {now}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let split = wait_for(&|n| n > 0.0, "the second member takes partitions");
    assert!(split < 3.0, "the first keeps some: {split}");
    runtime_2.block_on(second.stop()).expect("clean stop");
    wait_for(
        &|n| n == 0.0,
        "the second left, the first holds everything again",
    );
    runtime.block_on(first.stop()).expect("clean stop");
}
