//! `spiral run` as a separate process against a real Kafka-API broker (Tansu): the live summary
//! equals `spiral replay` of the same messages, the dead-letter topic holds exactly the
//! rejects, a scrape passes `promtool check metrics` and equals the summary, SIGTERM drains and
//! exits 0 with offsets committed, and a restart reads nothing twice and nothing less.
//!
//! Needs `tansu` and `promtool` (`scripts/deps.sh` installs both; `scripts/test.sh` runs it).

mod broker;
mod live;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker::Broker;

const ONLINE: &str = "touchpoints.online";
const IDENTITY: &str = "identity";
const DLQ: &str = "spiral.dlq";
const GROUP: &str = "spiral-tansu-test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `spiral run` in its own process, killed if the test fails before stopping it.
struct Running {
    child: Option<Child>,
}

impl Running {
    fn start(config: &Path, addr: SocketAddr) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_spiral"))
            .args(["run", "--config"])
            .arg(config)
            .env("SPIRAL_HTTP_LISTEN", addr.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("spiral run starts");
        let running = Running { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(addr).is_ok()
                && live::http_get(addr, "/readyz").0 == 200
            {
                return running;
            }
            assert!(Instant::now() < deadline, "spiral run never became ready");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "spiral run did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Keyed messages for one topic.
type Keyed = Vec<(Option<String>, Vec<u8>)>;

/// Identify events go to the identity topic, everything else (broken lines too) to the online
/// topic, keyed by whatever id the line carries first, as producers do.
fn route(lines: &[Vec<u8>]) -> (Keyed, Keyed) {
    let (mut online, mut identity) = (Vec::new(), Vec::new());
    for line in lines {
        let value: Option<serde_json::Value> = serde_json::from_slice(line).ok();
        let key = value.as_ref().and_then(|v| {
            ["anonymous_id", "contact_id", "account_id"]
                .iter()
                .find_map(|k| v.get(*k)?.as_str().map(str::to_string))
        });
        let is_identify = value
            .as_ref()
            .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("identify"));
        if is_identify {
            identity.push((key, line.clone()));
        } else {
            online.push((key, line.clone()));
        }
    }
    (online, identity)
}

fn run_replay(config: &Path, input: &Path, watermark: &str, dir: &Path) -> serde_json::Value {
    let summary = dir.join("replay.json");
    let out = Command::new(env!("CARGO_BIN_EXE_spiral"))
        .args(["replay", "-q", "--config"])
        .arg(config)
        .args(["--watermark", watermark, "--summary"])
        .arg(&summary)
        .arg(input)
        .output()
        .expect("spiral replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap()
}

fn without_late(mut v: serde_json::Value) -> serde_json::Value {
    v["events"]["late"] = 0.into();
    v
}

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
    let text = live::config_toml(&broker.bootstrap(), &[ONLINE, IDENTITY], DLQ, GROUP);
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
    let input = dir.path().join("messages.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for r in online_records.iter().chain(&identity_records) {
        file.write_all(r.payload.as_deref().unwrap_or_default())
            .unwrap();
        file.write_all(b"\n").unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    let watermark = live_summary.watermark.clone().expect("a live watermark");
    let replayed = run_replay(&config_path, &input, &watermark, dir.path());
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

    // A restart reads exactly the messages produced since: nothing twice, nothing less.
    let (online, identity) = route(later);
    broker.produce(ONLINE, online);
    broker.produce(IDENTITY, identity);
    let spiral = Running::start(&config_path, addr);
    let after = live::settled_summary(addr, later.len() as u64, Duration::from_secs(120));
    assert_eq!(after.events.received, later.len() as u64);
    assert!(spiral.terminate().success());
}
