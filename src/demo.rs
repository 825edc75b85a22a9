//! `spiral demo`: the live service on realistic traffic with nothing to set up.
//!
//! It starts librdkafka's in-process mock cluster (a real Kafka protocol server on loopback),
//! creates the topics of the example configuration, produces the generator's traffic into them
//! at a steady pace (online touches, offline imports arriving days late, identify events from a
//! CRM sync, a few broken messages), and runs `spiral run` on it with the example
//! configuration, printing a short funnel table every few seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::config::{Config, ExportConfig, StateLocation};
use crate::export::{Target, highest_revision};
use crate::generate::{self, GenerateOptions, LineKind};
use crate::report;
use crate::service::{self, Hooks};

/// The example configuration, compiled in so the demo runs from any directory.
pub const EXAMPLE_CONFIG: &str = include_str!("../config/spiral.toml");

const ONLINE: &str = "touchpoints.online";
const OFFLINE: &str = "touchpoints.offline";
const IDENTITY: &str = "identity";
const TRANSITIONS: &str = "spiral.transitions";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Messages produced in all (then the demo keeps serving until stopped).
    pub events: u64,
    pub accounts: u64,
    /// Messages per second.
    pub rate: u64,
    pub seed: u64,
    /// Stop by itself after this long (as if sent SIGTERM).
    pub stop_after: Option<Duration>,
    /// Seconds between funnel tables on the terminal.
    pub table_every: Duration,
    /// Also write the BI files (Parquet) into this directory, which must hold none yet.
    pub export: Option<std::path::PathBuf>,
}

pub fn run(options: &DemoOptions) -> Result<()> {
    let cluster = MockCluster::new(1).map_err(|e| anyhow!("cannot start the mock cluster: {e}"))?;
    let mut config = Config::parse(EXAMPLE_CONFIG, "config/spiral.toml (built in)")?;
    // Where it serves can be chosen, as for `spiral run` (a free port with `127.0.0.1:0`).
    config
        .service
        .apply_http_env(|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)?;
    let kafka = config
        .service
        .kafka
        .as_mut()
        .context("the example configuration has a [kafka] section")?;
    kafka.brokers = cluster.bootstrap_servers();
    // Quiet partitions let the watermark move within seconds, not half a minute.
    kafka.idle_timeout = Duration::from_secs(2);
    for (topic, partitions) in [(ONLINE, 3), (OFFLINE, 2), (IDENTITY, 1)] {
        cluster.create_topic(topic, partitions, 1)?;
    }
    cluster.create_topic(&kafka.dlq_topic, 1, 1)?;
    if options.export.is_some() {
        // Each published revision's stage transitions too (docs/bi.md), as a service with
        // the export would send them.
        cluster.create_topic(TRANSITIONS, 3, 1)?;
        kafka.transitions_topic = Some(TRANSITIONS.into());
    }
    let brokers = kafka.brokers.clone();
    // The topics are new every time, so state from an earlier demo must not be resumed: the
    // demo checkpoints into a directory of its own, removed when it ends.
    let state_dir = tempfile::Builder::new()
        .prefix("spiral-demo-state-")
        .tempdir()
        .context("cannot create the demo's state directory")?;
    config.service.state.location = Some(StateLocation::Dir(state_dir.path().to_path_buf()));
    if let Some(dir) = &options.export {
        let settings = ExportConfig {
            dir: dir.clone(),
            ..ExportConfig::default()
        };
        let target = Target::open(&settings)?;
        if highest_revision(&target)? > 0 {
            anyhow::bail!(
                "--export {}: already holds files of another run; give an empty directory",
                dir.display()
            );
        }
        config.service.export = Some(settings);
    }

    let produced = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (options, produced, stop) = (options.clone(), produced.clone(), stop.clone());
        std::thread::Builder::new()
            .name("demo-producer".into())
            .spawn(move || produce(&brokers, &options, &produced, &stop))?
    };

    let listen = config.service.http.listen;
    println!(
        "spiral demo: a mock Kafka cluster at {}",
        cluster.bootstrap_servers()
    );
    println!(
        "producing {} messages over {} accounts at {} msg/s into {ONLINE}, {OFFLINE}, {IDENTITY}",
        options.events, options.accounts, options.rate
    );
    if listen.port() == 0 {
        println!(
            "HTTP:     a free port on {} (the \"spiral is running\" line names it)",
            listen.ip()
        );
    } else {
        println!("metrics:  http://{listen}/metrics");
        println!("summary:  http://{listen}/api/v1/summary");
        println!("accounts: http://{listen}/api/v1/accounts/acct-000001");
    }
    if let Some(dir) = &options.export {
        println!(
            "BI files: {} (published with every checkpoint; see the end)",
            dir.display()
        );
        println!("transitions: topic {TRANSITIONS} (spiral_transitions_sent_total in the metrics)");
    }
    println!("Ctrl-C stops it.\n");

    let tick_produced = produced.clone();
    let hooks = Hooks {
        tick: Some((
            options.table_every,
            Box::new(move |shared: &service::state::Shared| {
                let summary = shared.engine().summary();
                println!(
                    "--- {} messages produced so far",
                    tick_produced.load(Ordering::Relaxed)
                );
                print!("{}", report::funnel_table(&summary));
            }),
        )),
        stop_after: options.stop_after,
    };
    let result = service::run(&config, hooks);
    stop.store(true, Ordering::Relaxed);
    let _ = producer.join();
    drop(cluster);
    if let (Ok(()), Some(dir)) = (&result, &options.export) {
        println!(
            "\nThe BI files of this run are in {}; the stage table from them:\n  \
             ~/.cache/spiral/duckdb/bin/python deploy/bi/query.py {} \"FROM stage_table\"\n\
             (any Python with the duckdb package will do; scripts/deps.sh installs that one)",
            dir.display(),
            dir.display()
        );
    }
    result
}

/// Produces the generator's lines, routed by what they are, at `options.rate` per second.
fn produce(brokers: &str, options: &DemoOptions, produced: &AtomicU64, stop: &AtomicBool) {
    let producer: ThreadedProducer<DefaultProducerContext> = match ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
    {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "demo producer");
            return;
        }
    };
    let generate = GenerateOptions {
        seed: options.seed,
        accounts: options.accounts,
        events: options.events,
        ..GenerateOptions::default()
    };
    let started = Instant::now();
    let result = generate::generate_with(&generate, |line, kind| {
        if stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("stopped"));
        }
        let topic = match kind {
            LineKind::Touch { offline: true, .. } => OFFLINE,
            LineKind::Identify { .. } => IDENTITY,
            _ => ONLINE,
        };
        let payload = line.strip_suffix(b"\n").unwrap_or(line);
        let mut record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(payload);
        while let Err((_, back)) = producer.send(record) {
            std::thread::sleep(Duration::from_millis(5));
            record = back;
        }
        let n = produced.fetch_add(1, Ordering::Relaxed) + 1;
        // Steady pace: sleep whenever ahead of schedule.
        if n.is_multiple_of(500) {
            let due = Duration::from_secs_f64(n as f64 / options.rate.max(1) as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        Ok(())
    });
    if let Err(e) = result
        && !stop.load(Ordering::Relaxed)
    {
        tracing::error!(error = %e, "demo producer");
    }
    let _ = producer.flush(Duration::from_secs(5));
    tracing::info!(
        messages = produced.load(Ordering::Relaxed),
        "demo producer finished"
    );
}
