//! A real Kafka-API broker for integration tests and benchmarks: Tansu 0.6.0 on a free loopback
//! port, one per [`Broker`] (issue #3): in memory, or with its topics in SQLite files so that
//! it can be killed and restarted with its data ([`Broker::start_file_backed`],
//! [`Broker::restart`]).
//!
//! Use it as `mod broker;` from a file in `tests/`, or as
//! `#[path = "../tests/broker/mod.rs"] mod broker;` from an example or bench.
//!
//! ```ignore
//! let broker = broker::Broker::start();
//! broker.create_topic("touchpoints", 3);
//! broker.produce("touchpoints", [(Some("acct-1"), r#"{"event_id":"e1"}"#)]);
//! let records = broker.consume_all("touchpoints");
//! ```
//!
//! Tansu does not create topics on first use, so every test creates its own. A Tansu consumer
//! that resumes from an offset in the middle of a record batch skips the rest of that batch, so
//! [`Broker::produce`] writes one record per batch (`batch.num.messages=1`): tests that restart
//! consumers then see every message. [`Broker::produce_with`] takes other producer settings
//! (the benchmark batches normally).
//!
//! Tansu answers a fetch only after the consumer's `fetch.wait.max.ms` (librdkafka's default:
//! 500 ms), even when data is waiting, which caps a consumer near 100 k msgs/s and makes every
//! read of a topic's end slow (docs/performance.md). [`Broker::consumer_config`] sets it to
//! [`FETCH_WAIT_MS`]; a `spiral run` under test wants the same in `[kafka.consumer]`.
//!
//! No broker outlives its test. The broker runs under a small `sh` watchdog in its own process
//! group, and the watchdog kills it as soon as its standard input closes: when the
//! [`Broker`] is dropped (also while a failing test unwinds) and when the test process dies in
//! any way, `kill -9` included, because the kernel then closes the pipe.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// `fetch.wait.max.ms` for consumers of Tansu (see the module docs).
pub const FETCH_WAIT_MS: &str = "10";

/// How long one broker may take to answer its first metadata request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How many free ports [`Broker::start`] tries before giving up.
const START_ATTEMPTS: usize = 5;
/// Upper bound for any single wait on the broker (reading to the end, admin calls).
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for delivering what one call produces: Tansu on SQLite just after a restart,
/// with `spiral run` reading beside it on two busy cores, once took more than a minute for
/// 30 000 messages (CI, session 7).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(240);

/// The `tansu` binary: `$TANSU`, then `PATH`, then `~/.cargo/bin/tansu`. Panics with what to
/// run when none is there.
pub fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU").map(PathBuf::from) {
        assert!(path.is_file(), "$TANSU={} is not a file", path.display());
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"));
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin/tansu"));
    on_path
        .chain(in_cargo_home)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the Kafka-API broker `tansu` (0.6.0) is not installed: it is neither on PATH nor \
                 in ~/.cargo/bin. Run ./scripts/deps.sh (builds it once, about 20 minutes) or set \
                 $TANSU to the binary."
            )
        })
}

/// A message read back from the broker, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Headers in order; a header may have no value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// The value of the first header named `name`, as UTF-8 (lossy).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The payload as UTF-8 (lossy); empty when there is none.
    pub fn payload_str(&self) -> String {
        String::from_utf8_lossy(self.payload.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Where a broker keeps its topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In memory: gone when the broker stops.
    Memory,
    /// SQLite in the broker's directory: survives [`Broker::restart`].
    File,
}

impl Storage {
    /// Tansu's `--storage-engine` (a SQLite path is relative to the working directory).
    fn url(self) -> &'static str {
        match self {
            Storage::Memory => "memory://tansu/",
            Storage::File => "sqlite://data/tansu.db",
        }
    }
}

/// One Tansu broker on `127.0.0.1:<free port>`, killed on drop.
pub struct Broker {
    port: u16,
    storage: Storage,
    /// The broker's pid (a child of the watchdog shell).
    pid: u32,
    /// The watchdog shell; the broker runs in its process group.
    watchdog: Child,
    /// Closing this makes the watchdog kill the broker.
    lifeline: Option<ChildStdin>,
    /// Holds the broker's log file, and its data with [`Storage::File`].
    dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker with in-memory storage on a free loopback port and waits until it
    /// answers metadata requests. Another process may take the port between finding it and
    /// the broker binding it, so a broker that exits or does not answer is retried on a new
    /// port.
    pub fn start() -> Broker {
        Broker::start_with(Storage::Memory)
    }

    /// [`Broker::start`] with the topics in SQLite files, so that they survive
    /// [`Broker::restart`].
    pub fn start_file_backed() -> Broker {
        Broker::start_with(Storage::File)
    }

    fn start_with(storage: Storage) -> Broker {
        let tansu = tansu_binary();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Broker::try_start(&tansu, storage) {
                Ok(broker) => return broker,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "tansu did not start in {START_ATTEMPTS} attempts ({}):\n{}",
            tansu.display(),
            failures.join("\n---\n")
        );
    }

    fn try_start(tansu: &Path, storage: Storage) -> Result<Broker, String> {
        let port = free_port();
        let dir = tempfile::Builder::new()
            .prefix("spiral-tansu-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        std::fs::create_dir_all(dir.path().join("data")).map_err(|e| format!("data dir: {e}"))?;
        let (pid, watchdog, lifeline) = spawn(tansu, port, storage, dir.path())?;
        let broker = Broker {
            port,
            storage,
            pid,
            watchdog,
            lifeline,
            dir,
        };
        broker.wait_ready()?;
        Ok(broker)
    }

    /// Kills the broker (`kill -9`) and starts it again on the same port and storage: with
    /// [`Storage::File`] its topics, messages and committed offsets are back.
    pub fn restart(&mut self) {
        self.kill();
        let tansu = tansu_binary();
        let mut failures = Vec::new();
        // The port was just released; a new bind may need a moment.
        for _ in 0..START_ATTEMPTS {
            match spawn(&tansu, self.port, self.storage, self.dir.path()) {
                Ok((pid, watchdog, lifeline)) => {
                    (self.pid, self.watchdog, self.lifeline) = (pid, watchdog, lifeline);
                    match self.wait_ready() {
                        Ok(()) => return,
                        Err(failure) => {
                            failures.push(failure);
                            self.kill();
                        }
                    }
                }
                Err(failure) => failures.push(failure),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "tansu did not restart on port {}:\n{}",
            self.port,
            failures.join("\n---\n")
        );
    }

    /// Kills the broker and waits for its watchdog to exit.
    fn kill(&mut self) {
        drop(self.lifeline.take());
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        let _ = self.watchdog.wait();
    }

    /// Waits until the broker answers a metadata request, or it exits, or [`READY_TIMEOUT`].
    fn wait_ready(&self) -> Result<(), String> {
        let started = Instant::now();
        let addr = format!("127.0.0.1:{}", self.port);
        loop {
            if !self.is_running() {
                return Err(format!(
                    "tansu exited on port {}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "tansu on port {} did not answer metadata requests within {READY_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            if TcpStream::connect(&addr).is_ok() {
                let consumer: BaseConsumer = self
                    .client_config()
                    .create()
                    .map_err(|e| format!("consumer for metadata: {e}"))?;
                if consumer
                    .fetch_metadata(None, Duration::from_secs(2))
                    .is_ok()
                {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the broker process is still alive (not exited, not a zombie).
    pub fn is_running(&self) -> bool {
        process_alive(self.pid)
    }

    /// What the broker wrote to its standard output and error so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("tansu.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// A client configuration for this broker (`bootstrap.servers` only); add your own keys.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }

    /// A consumer configuration for this broker: `group.id`, no auto-commit, reading from the
    /// earliest offset where the group has none, and a short `fetch.wait.max.ms`.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", FETCH_WAIT_MS);
        config
    }

    /// Creates a topic (replication factor 1) through the Kafka admin API; panics on failure.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .expect("admin client for tansu");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(OP_TIMEOUT));
        let results = block_on(admin.create_topics([&topic], &options))
            .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
        for result in results {
            if let Err((topic, code)) = result {
                panic!("create topic {topic}: {code}");
            }
        }
        // Wait until the metadata shows every partition, so a producer started right away
        // does not see an unknown topic.
        let consumer: BaseConsumer = self.client_config().create().expect("consumer");
        let started = Instant::now();
        while self.partitions_of(&consumer, name).len() != partitions as usize {
            assert!(
                started.elapsed() < OP_TIMEOUT,
                "topic {name} never showed {partitions} partitions in metadata"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The partition ids of a topic (empty when it does not exist).
    pub fn partitions(&self, topic: &str) -> Vec<i32> {
        let consumer: BaseConsumer = self.client_config().create().expect("consumer");
        self.partitions_of(&consumer, topic)
    }

    fn partitions_of(&self, consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
        let Ok(metadata) = consumer.fetch_metadata(Some(topic), OP_TIMEOUT) else {
            return Vec::new();
        };
        let mut ids: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Produces messages one record per batch (see the module docs), keyed when a key is given
    /// (keys pick the partition as in Kafka's default partitioner), and waits until every one
    /// is acknowledged. Panics on the first delivery error. Returns how many were sent.
    pub fn produce<I, K, P>(&self, topic: &str, messages: I) -> usize
    where
        I: IntoIterator<Item = (Option<K>, P)>,
        K: AsRef<[u8]>,
        P: AsRef<[u8]>,
    {
        self.produce_with(
            topic,
            &[("batch.num.messages", "1"), ("linger.ms", "0")],
            messages,
        )
    }

    /// [`Broker::produce`] with other producer settings, applied over the defaults
    /// (`acks=all`, retries on).
    pub fn produce_with<I, K, P>(
        &self,
        topic: &str,
        settings: &[(&str, &str)],
        messages: I,
    ) -> usize
    where
        I: IntoIterator<Item = (Option<K>, P)>,
        K: AsRef<[u8]>,
        P: AsRef<[u8]>,
    {
        let mut config = self.client_config();
        config.set("acks", "all").set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        );
        for (k, v) in settings {
            config.set(*k, *v);
        }
        let producer: BaseProducer<CheckedDelivery> = config
            .create_with_context(CheckedDelivery::default())
            .expect("producer for tansu");
        let mut sent = 0usize;
        for (key, payload) in messages {
            let mut record = BaseRecord::to(topic).payload(payload.as_ref());
            if let Some(key) = key.as_ref() {
                record = record.key(key.as_ref());
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => panic!("produce to {topic}: {e}"),
                }
            }
            sent += 1;
            if sent.is_multiple_of(1024) {
                producer.poll(Duration::ZERO);
                producer.context().check(topic);
            }
        }
        producer
            .flush(DELIVERY_TIMEOUT)
            .unwrap_or_else(|e| panic!("flush to {topic}: {e}"));
        producer.context().check(topic);
        let delivered = producer.context().delivered.load(Ordering::Relaxed);
        assert_eq!(
            delivered, sent,
            "{sent} messages sent to {topic} but {delivered} acknowledged"
        );
        sent
    }

    /// `(low, high)` offsets of every partition of a topic as the broker reports them
    /// (ListOffsets). Beware: Tansu 0.6.0 reports as `high` the base offset of the last record
    /// batch plus one, so after a batch of several records it is short of the real end (a batch
    /// of 10 at offsets 0..=9 reads as `(0, 1)`). It is exact for topics written by
    /// [`Broker::produce`] (one record per batch) only; [`Broker::consume_all`] does not rely on it.
    pub fn watermarks(&self, topic: &str) -> BTreeMap<i32, (i64, i64)> {
        let consumer: BaseConsumer = self.client_config().create().expect("consumer");
        self.partitions_of(&consumer, topic)
            .into_iter()
            .map(|p| {
                let marks = consumer
                    .fetch_watermarks(topic, p, OP_TIMEOUT)
                    .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"));
                (p, marks)
            })
            .collect()
    }

    /// Every message of a topic from the beginning to its end, ordered by partition and
    /// offset. Reads with a fresh consumer that commits nothing. The end of a partition is
    /// where librdkafka reports end-of-partition (a fetch found nothing more) at or past the
    /// high watermark: the watermark alone is not exact on Tansu (see [`Broker::watermarks`]).
    /// Panics when the end is not reached within a minute.
    pub fn consume_all(&self, topic: &str) -> Vec<Record> {
        let marks = self.watermarks(topic);
        assert!(!marks.is_empty(), "topic {topic} does not exist");
        let consumer: BaseConsumer = self
            .consumer_config(&format!("spiral-harness-reader-{}", std::process::id()))
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .create()
            .expect("consumer for tansu");
        let mut assignment = TopicPartitionList::new();
        // Partition → (next offset to read, reported high watermark); done ones are removed.
        let mut remaining = BTreeMap::new();
        for (&partition, &(low, high)) in &marks {
            // From the low watermark, not `Offset::Beginning`: the offset lookup that the
            // latter costs takes Tansu about 500 ms per partition.
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(low))
                .expect("assignment");
            remaining.insert(partition, (low, high));
        }
        consumer.assign(&assignment).expect("assign");
        let mut records = Vec::new();
        let started = Instant::now();
        while !remaining.is_empty() {
            assert!(
                started.elapsed() < OP_TIMEOUT,
                "reading {topic} to its end: (next, reported high) still {remaining:?} after \
                 {OP_TIMEOUT:?} ({} messages read)",
                records.len()
            );
            let message = match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    if let Some(&(next, high)) = remaining.get(&partition)
                        && next >= high
                    {
                        remaining.remove(&partition);
                    }
                    continue;
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                Some(Ok(message)) => message,
            };
            let partition = message.partition();
            if let Some(entry) = remaining.get_mut(&partition) {
                entry.0 = message.offset() + 1;
            }
            records.push(Record {
                partition,
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    }

    /// The offsets a consumer group has committed on each partition of a topic: the next
    /// offset the group would read, `None` where it committed nothing.
    pub fn committed_offsets(&self, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
        let consumer: BaseConsumer = self
            .consumer_config(group)
            .create()
            .expect("consumer for tansu");
        let mut list = TopicPartitionList::new();
        for partition in self.partitions_of(&consumer, topic) {
            list.add_partition(topic, partition);
        }
        let committed = consumer
            .committed_offsets(list, OP_TIMEOUT)
            .unwrap_or_else(|e| panic!("committed offsets of {group} on {topic}: {e}"));
        committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => (e.partition(), Some(o)),
                _ => (e.partition(), None),
            })
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Closing the lifeline makes the watchdog kill the broker; the watchdog then exits.
        drop(self.lifeline.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.watchdog.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    // The watchdog did not do its job: kill the whole process group.
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{}", self.watchdog.id())])
                        .status();
                    let _ = self.watchdog.wait();
                    break;
                }
            }
        }
    }
}

/// Runs tansu on `port` under a watchdog shell in `dir`: (broker pid, watchdog, lifeline).
fn spawn(
    tansu: &Path,
    port: u16,
    storage: Storage,
    dir: &Path,
) -> Result<(u32, Child, Option<ChildStdin>), String> {
    let url = format!("tcp://127.0.0.1:{port}");
    // The watchdog: start the broker, print its pid, then wait for EOF on stdin (the
    // lifeline) in the background and kill the broker when it comes. (A background job's
    // stdin is /dev/null in sh, hence the lifeline is kept as fd 3.) The shell itself waits
    // for the broker, so it exits (and reaps it) when the broker does. The log is appended
    // to, so a restarted broker's log follows the first one's.
    let script = r#"
        exec 3<&0
        "$0" "$@" >>"$TANSU_LOG" 2>&1 3<&- &
        pid=$!
        echo "$pid"
        (cat <&3 >/dev/null; kill -9 "$pid" 2>/dev/null) &
        wait "$pid"
    "#;
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(tansu)
        .args(["broker", "--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .args(["--storage-engine", storage.url()])
        .env("TANSU_LOG", dir.join("tansu.log"))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null()) // tansu's own output goes to its log file
        // Its own process group: a Ctrl-C meant for the test runner reaches the test, whose
        // exit then closes the lifeline.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run sh for {}: {e}", tansu.display()))?;
    let mut line = String::new();
    BufReader::new(watchdog.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(|e| format!("reading the broker's pid: {e}"))?;
    let pid = line
        .trim()
        .parse()
        .map_err(|_| format!("the watchdog printed {line:?} instead of a pid"))?;
    let lifeline = watchdog.stdin.take();
    Ok((pid, watchdog, lifeline))
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Whether a process exists and is not a zombie (Linux `/proc`).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Runs a future to completion on a throwaway current-thread runtime (the admin API is async).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// A producer context that counts acknowledged messages and keeps the first delivery error,
/// for producers built outside [`Broker::produce_with`].
#[derive(Default)]
pub struct CheckedDelivery {
    delivered: AtomicUsize,
    failure: Mutex<Option<String>>,
}

impl CheckedDelivery {
    /// How many messages were acknowledged so far.
    pub fn delivered(&self) -> usize {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Panics with the first delivery error, if any.
    pub fn check(&self, topic: &str) {
        if let Some(failure) = self.failure.lock().unwrap().as_ref() {
            panic!("delivery to {topic} failed: {failure}");
        }
    }
}

impl ClientContext for CheckedDelivery {}

impl ProducerContext for CheckedDelivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                let mut failure = self.failure.lock().unwrap();
                if failure.is_none() {
                    *failure = Some(format!(
                        "{error} (partition {}, {} payload bytes)",
                        message.partition(),
                        message.payload().map_or(0, <[u8]>::len)
                    ));
                }
            }
        }
    }
}
