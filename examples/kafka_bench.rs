//! How fast messages come out of Kafka (issue #3): a baseline for `spiral run`.
//!
//! `scripts/bench-kafka.sh` (or `cargo run --release --example kafka_bench -- --help`).
//!
//! 1. Generates `--events` lines with `spiral::generate` (what `spiral generate` writes),
//!    starts Tansu through the test harness (`tests/broker/mod.rs`) and fills a topic of
//!    `--partitions` partitions with them, one line a message, batched the way a normal
//!    producer batches (linger, no compression).
//! 2. **(a) bare consumer**: a librdkafka `BaseConsumer`, in a child process of its own so that
//!    its peak RSS is its own, reads the topic from the beginning to the end and only counts:
//!    the ceiling any consumer of this broker can reach on this machine.
//! 3. **(a) on the mock cluster**: the same bare consumer against librdkafka's in-process mock
//!    cluster, which shows whether Tansu or the client is the bottleneck. Mock partitions keep
//!    only 5 MB, so the lines go in chunks that fit; each chunk is produced, then read, and only
//!    the reading is timed (from its first message to its last).
//! 4. **(b) `--with-spiral`**: `spiral run` against the Tansu topic of step 1, timed until its
//!    `/api/v1/summary` shows `events.received` equal to the message count.
//!
//! Throughput is messages/s and MB/s of payload (the JSON lines, not Kafka's framing).
//! `--consumer KEY=VALUE` passes librdkafka settings to the measured consumers (and to
//! `spiral run`'s `[kafka.consumer]`): on Tansu, `fetch.wait.max.ms=10` is the one that
//! matters, since Tansu holds every fetch that long (docs/performance.md, "Kafka consumption").

#[path = "../tests/broker/mod.rs"]
mod broker;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use broker::{Broker, CheckedDelivery};
use spiral::generate::{GenerateOptions, generate_with};

const TOPIC: &str = "touchpoints";

#[derive(Parser)]
#[command(
    about = "Kafka consumption baseline: bare librdkafka consumer on Tansu and on the \
                   mock cluster, optionally `spiral run`"
)]
struct Args {
    /// Messages to produce (one generated line each).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Accounts the generated traffic comes from.
    #[arg(long, default_value_t = 100_000)]
    accounts: u64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Share of broken lines (rejected, so dead letters for `spiral run`).
    #[arg(long, default_value_t = 0.01)]
    broken_share: f64,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// librdkafka setting for the bare consumer, `KEY=VALUE`, repeatable (for instance
    /// `--consumer max.partition.fetch.bytes=8388608`).
    #[arg(long = "consumer", value_name = "KEY=VALUE")]
    consumer_settings: Vec<String>,
    /// The bare consumer joins a consumer group (subscribe) instead of assigning partitions.
    #[arg(long)]
    subscribe: bool,
    /// Skip the mock-cluster measurement.
    #[arg(long)]
    no_mock: bool,
    /// Also run `spiral run` against the filled topic (needs a `spiral run` subcommand).
    #[arg(long)]
    with_spiral: bool,
    /// The spiral binary for `--with-spiral`; repeat it to compare builds, run after run.
    #[arg(long, default_value = "target/release/spiral")]
    spiral_bin: Vec<PathBuf>,
    /// Checkpoints of `spiral run`: an interval such as `10s` (into a fresh temporary
    /// directory), or `off` to measure without them; several, comma-separated (`off,30s`), are
    /// run one after the other on the same topic.
    #[arg(long, default_value = "10s", value_delimiter = ',')]
    state: Vec<String>,
    /// How many times to run every (binary, state) pair, interleaved (`off, 30s, off, 30s`),
    /// so that a slow spell of the machine falls on both sides of a comparison.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// `spiral run` also writes the BI files (`[export]`, into a fresh temporary directory);
    /// needs `--state` on.
    #[arg(long)]
    export: bool,
    /// `spiral run` with `[kafka.stages]` (scale-out's three stages, one instance) and this
    /// many partitions of the touches topic; 0: one engine.
    #[arg(long, default_value_t = 0)]
    stages: i32,
    /// The configuration whose funnels `spiral run` uses; its `[kafka]`/`[http]` sections (if
    /// any) are replaced by ones pointing at the benchmark's broker.
    #[arg(long, default_value = "config/spiral.toml")]
    config: PathBuf,
    /// Internal: be the child process of the bare-consumer measurement, reading this many
    /// messages from `--bootstrap`.
    #[arg(long, hide = true)]
    consume_only: Option<u64>,
    #[arg(long, hide = true)]
    bootstrap: Option<String>,
}

fn main() {
    let args = Args::parse();
    if let Some(expected) = args.consume_only {
        let bootstrap = args.bootstrap.as_deref().expect("--bootstrap");
        let result = bare_consume(&args, bootstrap, expected);
        // The parent parses this line.
        println!(
            "RESULT {} {} {:.6} {} {:.3}",
            result.messages,
            result.bytes,
            result.seconds,
            peak_rss_kib(std::process::id()).unwrap_or(0),
            cpu_seconds(std::process::id()).unwrap_or(0.0)
        );
        return;
    }

    let started = Instant::now();
    let lines = Lines::generate(&args);
    println!(
        "generated {} lines, {:.1} MB (mean {:.0} bytes) from {} accounts, seed {}, in {:.1} s",
        lines.len(),
        lines.bytes() as f64 / 1e6,
        lines.bytes() as f64 / lines.len() as f64,
        args.accounts,
        args.seed,
        started.elapsed().as_secs_f64()
    );

    let broker = Broker::start();
    broker.create_topic(TOPIC, args.partitions);
    let fill = fill(&broker.bootstrap(), &lines, args.partitions, 0..lines.len());
    // Every message was acknowledged (fill checks). Tansu's high watermarks are no count of
    // them: they stop at the last batch's base offset + 1 (see tests/broker/mod.rs).
    println!(
        "tansu: produced {} messages in {:.2} s ({:.0} k msgs/s); broker RSS now {} MiB",
        lines.len(),
        fill,
        lines.len() as f64 / fill / 1e3,
        rss_kib(broker.pid()).unwrap_or(0) / 1024
    );

    // (a) the bare consumer, in a child process.
    let tansu_cpu = cpu_seconds(broker.pid()).unwrap_or(0.0);
    let child = Command::new(std::env::current_exe().expect("own path"))
        .args(["--consume-only", &lines.len().to_string()])
        .args(["--bootstrap", &broker.bootstrap()])
        .args(["--partitions", &args.partitions.to_string()])
        .args(
            args.consumer_settings
                .iter()
                .flat_map(|s| ["--consumer", s]),
        )
        .stderr(Stdio::inherit())
        .output()
        .expect("run the consumer child");
    let tansu_cpu = cpu_seconds(broker.pid()).unwrap_or(0.0) - tansu_cpu;
    assert!(child.status.success(), "the consumer child failed");
    let out = String::from_utf8_lossy(&child.stdout);
    let fields: Vec<f64> = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT from the consumer child: {out}"))
        .split_whitespace()
        .map(|f| f.parse().expect("number"))
        .collect();
    let bare = Measured {
        messages: fields[0] as u64,
        bytes: fields[1] as u64,
        seconds: fields[2],
    };
    println!(
        "(a) bare BaseConsumer on tansu:   {} — consumer peak RSS {} MiB, CPU {:.1} s; \
         tansu CPU {:.1} s",
        bare.show(),
        fields[3] as u64 / 1024,
        fields[4],
        tansu_cpu
    );

    // (a) on the mock cluster.
    if !args.no_mock {
        let mock = mock_consume(&args, &lines);
        println!("(a) bare BaseConsumer on mock:    {}", mock.show());
    }

    // (b) spiral run.
    if args.with_spiral {
        let mut runs = Vec::new();
        for _ in 0..args.rounds {
            for bin in &args.spiral_bin {
                for state in &args.state {
                    let run = Run {
                        index: runs.len(),
                        bin,
                        state,
                    };
                    runs.push(spiral_round(&args, &broker, &lines, &run));
                }
            }
        }
        if runs.len() > 1 {
            println!("\n| run | binary | --state | msgs/s | CPU s | peak RSS MiB |");
            println!("|---|---|---|---|---|---|");
            for line in &runs {
                println!("{line}");
            }
        }
    }
    println!(
        "tansu RSS at the end {} MiB; total {:.1} s",
        rss_kib(broker.pid()).unwrap_or(0) / 1024,
        started.elapsed().as_secs_f64()
    );
}

/// The generated lines, without their newlines, in one buffer.
struct Lines {
    buf: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

impl Lines {
    fn generate(args: &Args) -> Lines {
        let opts = GenerateOptions {
            seed: args.seed,
            accounts: args.accounts,
            events: args.events,
            broken_share: args.broken_share,
            ..GenerateOptions::default()
        };
        let mut lines = Lines {
            buf: Vec::with_capacity(args.events as usize * 220),
            ranges: Vec::with_capacity(args.events as usize),
        };
        generate_with(&opts, |line, _| {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let start = lines.buf.len();
            lines.buf.extend_from_slice(line);
            lines.ranges.push(start..lines.buf.len());
            Ok(())
        })
        .expect("generate");
        lines
    }

    fn len(&self) -> usize {
        self.ranges.len()
    }

    fn bytes(&self) -> usize {
        self.ranges.iter().map(|r| r.len()).sum()
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.buf[self.ranges[i].clone()]
    }
}

/// A number of messages read in some time.
struct Measured {
    messages: u64,
    bytes: u64,
    seconds: f64,
}

impl Measured {
    fn show(&self) -> String {
        format!(
            "{} msgs in {:.2} s = {:.0} k msgs/s, {:.1} MB/s",
            self.messages,
            self.seconds,
            self.messages as f64 / self.seconds / 1e3,
            self.bytes as f64 / self.seconds / 1e6
        )
    }
}

/// Produces `lines[range]` round-robin over the partitions with normal batching and waits
/// for every acknowledgement. Returns the seconds it took.
fn fill(bootstrap: &str, lines: &Lines, partitions: i32, range: Range<usize>) -> f64 {
    let producer: BaseProducer<CheckedDelivery> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "10000")
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000")
        .create_with_context(CheckedDelivery::default())
        .expect("producer");
    let started = Instant::now();
    let count = range.len();
    for i in range {
        let mut record = BaseRecord::<(), [u8]>::to(TOPIC)
            .payload(lines.get(i))
            .partition(i as i32 % partitions);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
        if i.is_multiple_of(4096) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    producer.context().check(TOPIC);
    assert_eq!(
        producer.context().delivered(),
        count,
        "acknowledged messages"
    );
    started.elapsed().as_secs_f64()
}

/// The measured consumer: librdkafka defaults plus `--consumer` settings, assigned every
/// partition from the beginning outside any group, or with `--subscribe` a member of the
/// group `kafka-bench` starting from the earliest offsets.
fn bare_consumer(args: &Args, bootstrap: &str) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for setting in &args.consumer_settings {
        let (key, value) = setting
            .split_once('=')
            .unwrap_or_else(|| panic!("--consumer {setting}: expected KEY=VALUE"));
        config.set(key, value);
    }
    if args.subscribe {
        config.set("auto.offset.reset", "earliest");
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    if args.subscribe {
        consumer.subscribe(&[TOPIC]).expect("subscribe");
        return consumer;
    }
    let mut assignment = TopicPartitionList::new();
    for p in 0..args.partitions {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// Reads `expected` messages, counting them and their payload bytes; the clock runs from the
/// first message to the last.
fn read_counting(consumer: &BaseConsumer, expected: u64) -> Measured {
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while messages < expected {
        assert!(Instant::now() < deadline, "read {messages} of {expected}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                messages += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    Measured {
        messages,
        bytes,
        seconds: first.map_or(0.0, |t| t.elapsed().as_secs_f64()),
    }
}

/// (a): the child process' whole job.
fn bare_consume(args: &Args, bootstrap: &str, expected: u64) -> Measured {
    let consumer = bare_consumer(args, bootstrap);
    read_counting(&consumer, expected)
}

/// (a) against librdkafka's mock cluster, chunk by chunk (mock partitions keep 5 MB each).
fn mock_consume(args: &Args, lines: &Lines) -> Measured {
    let partitions = args.partitions;
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster
        .create_topic(TOPIC, partitions, 1)
        .expect("mock topic");
    let bootstrap = cluster.bootstrap_servers();
    let consumer = bare_consumer(args, &bootstrap);
    // 3 MB per partition and chunk, well inside the 5 MB the mock keeps.
    let mean = lines.bytes() / lines.len().max(1);
    let chunk = (partitions as usize * 3_000_000 / mean.max(1)).max(1);
    let mut total = Measured {
        messages: 0,
        bytes: 0,
        seconds: 0.0,
    };
    let mut start = 0;
    while start < lines.len() {
        let end = (start + chunk).min(lines.len());
        fill(&bootstrap, lines, partitions, start..end);
        let m = read_counting(&consumer, (end - start) as u64);
        total.messages += m.messages;
        total.bytes += m.bytes;
        total.seconds += m.seconds;
        start = end;
    }
    total
}

/// (b): `spiral run` over the filled topic until its summary has received every message.
/// Writes a configuration with the funnels of `--config` and `[kafka]`/`[http]` sections for
/// this broker (the bench's `--consumer` settings go to `[kafka.consumer]`), starts the
/// service, polls `GET /api/v1/summary` every 100 ms, and reports the time from start to
/// `events.received == expected` (startup and group join included), and the seconds from the
/// first poll that showed any event received.
/// One `spiral run` of a series: its own consumer group, dead-letter topic and state
/// directory, so that runs over the same topic do not see each other.
struct Run<'a> {
    index: usize,
    bin: &'a PathBuf,
    state: &'a str,
}

impl Run<'_> {
    fn dlq(&self) -> String {
        format!("spiral.dlq.{}", self.index)
    }
}

/// Runs `spiral run` once, prints what it measured and returns its row of the summary table.
fn spiral_round(args: &Args, broker: &Broker, lines: &Lines, run: &Run<'_>) -> String {
    broker.create_topic(&run.dlq(), 1);
    if args.stages > 0 {
        broker.create_topic(&format!("spiral.events.{}", run.index), 1);
        broker.create_topic(&format!("spiral.touches.{}", run.index), args.stages);
    }
    println!(
        "(b) run {}: {} with --state {}",
        run.index,
        run.bin.display(),
        run.state
    );
    match run_spiral(args, broker, lines.len() as u64, run) {
        Ok((from_start, from_first, cpu, rss)) => {
            let bytes = lines.bytes() as u64;
            let measured = Measured {
                bytes,
                ..from_start
            };
            println!(
                "(b) spiral run on tansu:          {} (from process start; from the first \
                 event counted: {:.2} s)",
                measured.show(),
                from_first
            );
            let dead = broker.consume_all(&run.dlq()).len();
            println!("    dead-letter topic holds {dead} messages");
            format!(
                "| {} | {} | {} | {:.0} | {:.1} | {} |",
                run.index,
                run.bin.display(),
                run.state,
                measured.messages as f64 / measured.seconds,
                cpu,
                rss / 1024
            )
        }
        Err(e) => {
            println!("(b) spiral run on tansu: not measured: {e}");
            format!(
                "| {} | {} | {} | failed | | |",
                run.index,
                run.bin.display(),
                run.state
            )
        }
    }
}

/// Runs `spiral run` until it has received `expected` messages: the time from its start and
/// from its first event, its CPU seconds and its peak RSS in KiB.
fn run_spiral(
    args: &Args,
    broker: &Broker,
    expected: u64,
    run: &Run<'_>,
) -> Result<(Measured, f64, f64, u64), String> {
    if !run.bin.is_file() {
        return Err(format!(
            "{} is missing (cargo build --release)",
            run.bin.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?;
    let config = spiral_config(
        args,
        &broker.bootstrap(),
        &http.to_string(),
        run,
        dir.path(),
    )?;
    let config_path = dir.path().join("bench.toml");
    std::fs::write(&config_path, config).map_err(|e| e.to_string())?;

    let log = std::fs::File::create(dir.path().join("spiral.log")).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(run.bin)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", run.bin.display()))?;
    let pid = child.id();
    let result = (|| {
        let deadline = started + Duration::from_secs(600);
        let mut first: Option<Instant> = None;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("spiral run exited with {status}"));
            }
            if Instant::now() > deadline {
                return Err("spiral run did not receive every message within 600 s".into());
            }
            if let Ok(body) = http_get(&http.to_string(), "/api/v1/summary") {
                let summary: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| format!("summary: {e}: {body}"))?;
                let received = summary["events"]["received"].as_u64().unwrap_or(0);
                if received > 0 {
                    first.get_or_insert_with(Instant::now);
                }
                if received >= expected {
                    let events = &summary["events"];
                    println!(
                        "    summary: received {received}, accepted {}, duplicates {}, \
                         rejected {}",
                        events["accepted"],
                        events["duplicates"],
                        events["rejected"]
                            .as_object()
                            .map_or(0, |r| r.values().filter_map(|v| v.as_u64()).sum::<u64>())
                    );
                    return Ok((
                        Measured {
                            messages: received,
                            bytes: 0,
                            seconds: started.elapsed().as_secs_f64(),
                        },
                        first.map_or(0.0, |t| t.elapsed().as_secs_f64()),
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })();
    let rss = peak_rss_kib(pid);
    let cpu = cpu_seconds(pid);
    // A graceful stop (SIGTERM), so that dead letters still queued are delivered before the
    // bench counts them; SIGKILL after 40 s.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let stop = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if stop.elapsed() > Duration::from_secs(40) {
            eprintln!("spiral run ignored SIGTERM for 40 s; killing it");
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait();
    println!(
        "    spiral run stopped in {:.2} s after SIGTERM: {status:?}",
        stop.elapsed().as_secs_f64()
    );
    if result.is_err() {
        let log = std::fs::read_to_string(dir.path().join("spiral.log")).unwrap_or_default();
        eprintln!("spiral run log:\n{log}");
    }
    println!(
        "    spiral run peak RSS {} MiB, CPU {:.1} s",
        rss.unwrap_or(0) / 1024,
        cpu.unwrap_or(0.0)
    );
    result
        .map(|(measured, from_first)| (measured, from_first, cpu.unwrap_or(0.0), rss.unwrap_or(0)))
}

/// The funnel part of `--config` (its service sections left out) plus `[kafka]` and `[http]`
/// for the benchmark.
fn spiral_config(
    args: &Args,
    bootstrap: &str,
    listen: &str,
    run: &Run<'_>,
    dir: &std::path::Path,
) -> Result<String, String> {
    let index = run.index;
    let base = &args.config;
    let text = std::fs::read_to_string(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let service_sections = [
        "[kafka]",
        "[kafka.",
        "[http]",
        "[metrics]",
        "[service]",
        "[state",
    ];
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let header = line.trim_start();
        if header.starts_with('[') {
            skipping = service_sections.iter().any(|s| header.starts_with(s));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        r#"
[kafka]
brokers = "{bootstrap}"
group_id = "spiral-bench-{index}"
topics = ["{TOPIC}"]
dlq_topic = "spiral.dlq.{index}"

[http]
listen = "{listen}"

[kafka.consumer]
"auto.offset.reset" = "earliest"
"#
    ));
    if args.stages > 0 {
        out = out.replacen(
            "\n[http]\n",
            &format!(
                "\n[kafka.stages]\nevents_topic = \"spiral.events.{index}\"\n\
                 touches_topic = \"spiral.touches.{index}\"\n\n[http]\n"
            ),
            1,
        );
    }
    // `[kafka.consumer]` stays last: the --consumer settings below are appended to it.
    // State and BI files go into the run's own temporary directory, removed after it.
    let state = if run.state == "off" {
        "enabled = false".to_string()
    } else {
        format!(
            "dir = {:?}\ninterval = {:?}",
            dir.join("state").display().to_string(),
            run.state
        )
    };
    let export = if args.export {
        format!(
            "[export]\ndir = {:?}\n\n",
            dir.join("export").display().to_string()
        )
    } else {
        String::new()
    };
    out = out.replacen(
        "\n[kafka]\n",
        &format!("\n[state]\n{state}\n\n{export}[kafka]\n"),
        1,
    );
    for setting in &args.consumer_settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("--consumer {setting}: expected KEY=VALUE"))?;
        out.push_str(&format!("{key:?} = {value:?}\n"));
    }
    Ok(out)
}

/// A minimal HTTP/1.1 GET over a plain TCP stream; the body on a 200.
fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).map_err(|e| e.to_string())?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {}", status.trim()));
    }
    let mut chunked = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).map_err(|e| e.to_string())?;
        let header = header.trim();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    String::from_utf8(body).map_err(|e| e.to_string())
}

/// Peak resident set of a process (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

/// Current resident set of a process (VmRSS), KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// User plus system CPU time of a process so far, seconds (Linux clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state is the 3rd field of the line, utime the 14th.
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: f64 = rest.nth(11)?.parse().ok()?;
    let stime: f64 = rest.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
