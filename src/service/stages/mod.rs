//! Scale-out (`[kafka.stages]`, docs/durability.md): every instance of one consumer group
//! runs the three stages of [`crate::topology`], and the group spreads their partitions.
//!
//! - [`worker`]: the consumer thread, which routes each message to its stage and moves a
//!   stage partition's state through its checkpoints when the group moves the partition.
//! - [`owned`]: the stage partitions this instance holds, and their checkpoints.
//! - [`pace`]: how much the stages may produce ahead of the broker's acknowledgements.
//!
//! The HTTP surface is the one engine's ([`super::http`]), over what this instance owns: its
//! summary and metrics are its part of the stream, and the parts of all instances add up to
//! the whole (summaries with `Summary::add`, metrics summed over `partition` and `instance`).

pub mod owned;
pub mod pace;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use prometheus::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;

use crate::checkpoint::{LocalDir, Objects, Storage};
use crate::config::{Config, StateLocation};
use crate::engine::{AccountView, Engine};
use crate::summary::Summary;
use crate::topology::partition_of;

use super::dlq::DlqCounters;
use super::durable::CheckpointCounters;
use super::http::Numbers;
use super::metrics::{EngineNumbers, render_stages};
use super::pipeline::client_config;
use owned::Owned;
use worker::{Group, Worker};

/// What the consumer thread and the HTTP handlers share.
pub struct StagesShared {
    owned: Mutex<Owned>,
    /// The configured funnels with every count zero: the summary of an instance that owns
    /// nothing yet.
    empty: Summary,
    touches_partitions: u32,
    pub dlq: DlqCounters,
    pub checkpoints: CheckpointCounters,
    /// Messages behind each partition's end, past the last stored offset, for the partitions
    /// this instance fetches (inputs and stage topics), from librdkafka's statistics.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
    pub ready: AtomicBool,
    pub stopping: AtomicBool,
    pub stopped: AtomicBool,
}

impl StagesShared {
    pub fn owned(&self) -> MutexGuard<'_, Owned> {
        self.owned.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Numbers for StagesShared {
    fn summary(&self) -> Summary {
        self.owned().summary(&self.empty)
    }

    /// The account's journeys, when this instance holds the touches partition of its account.
    fn account(&self, account_id: &str) -> Option<AccountView> {
        let partition = partition_of(account_id, self.touches_partitions) as i32;
        let mut owned = self.owned();
        let owner = owned.journeys.get_mut(&partition)?;
        owner.stage.engine_mut().account(account_id)
    }

    fn metrics(&self, process: &Registry) -> String {
        let engines: Vec<(String, EngineNumbers)> = self
            .owned()
            .engines()
            .map(|(name, engine)| (name.to_string(), EngineNumbers::of(engine)))
            .collect();
        let lag = self.lag.lock().unwrap_or_else(|p| p.into_inner()).clone();
        render_stages(&engines, &lag, &self.dlq, &self.checkpoints, process)
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.stopping.load(Ordering::Relaxed)
    }

    fn ask_stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// The state location, shared by every instance: each stage partition keeps its own
/// generations in it (`checkpoint::Part`), fenced by generation, so it is not locked to one
/// process as a single instance's is.
fn root_storage(config: &Config, storage: Option<Box<dyn Storage>>) -> Result<Arc<dyn Storage>> {
    if let Some(storage) = storage {
        return Ok(Arc::from(storage));
    }
    match &config.service.state.location {
        None => bail!("kafka.stages: needs [state] enabled"),
        Some(StateLocation::Dir(dir)) => {
            Ok(Arc::new(LocalDir::new(dir).with_context(|| {
                format!("state.dir: cannot use {dir:?}")
            })?))
        }
        Some(StateLocation::Url { url, options }) => {
            Ok(Arc::new(Objects::open("state", url, options)?))
        }
    }
}

/// Partitions of `topic` (it must exist: Spiral does not size the internal topics itself).
fn partitions_of(config: &Config, topic: &str, key: &str) -> Result<u32> {
    let kafka = config
        .service
        .kafka
        .as_ref()
        .expect("checked by the caller");
    let consumer: BaseConsumer = client_config(kafka, false)
        .create()
        .context("cannot create a metadata client")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .with_context(|| format!("{key}: cannot read the metadata of {topic:?}"))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    if partitions == 0 {
        bail!(
            "{key}: topic {topic:?} does not exist: create it first (docs/durability.md, \"Topics\")"
        );
    }
    Ok(partitions as u32)
}

/// What [`start`] hands the service: the shared numbers and the consumer thread's outcome.
pub struct Started {
    pub shared: Arc<StagesShared>,
    pub done: tokio::sync::oneshot::Receiver<Result<()>>,
}

/// Checks the internal topics, joins the group and starts the consumer thread.
pub fn start(config: &Config, storage: Option<Box<dyn Storage>>) -> Result<Started> {
    let kafka = config
        .service
        .kafka
        .as_ref()
        .expect("checked by the caller");
    let names = kafka.stages.as_ref().expect("checked by the caller");
    let events = partitions_of(config, &names.events_topic, "kafka.stages.events_topic")?;
    if events != 1 {
        bail!(
            "kafka.stages.events_topic: {:?} has {events} partitions; stage B needs exactly 1 \
             (dedup and identity in one place, until the links topic is built)",
            names.events_topic
        );
    }
    let touches = partitions_of(config, &names.touches_topic, "kafka.stages.touches_topic")?;
    let root = root_storage(config, storage)?;
    let shared = Arc::new(StagesShared {
        owned: Mutex::new(Owned::default()),
        empty: Engine::new(config).map_err(|e| anyhow!(e))?.summary(),
        touches_partitions: touches,
        dlq: DlqCounters::default(),
        checkpoints: CheckpointCounters::default(),
        lag: Mutex::default(),
        ready: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
    });
    let worker = Arc::new(Worker::new(config, shared.clone(), root, touches)?);
    let mut client = client_config(kafka, true);
    // Offsets follow what was delivered and checkpointed, never lead it.
    client.set("enable.auto.commit", "false");
    let consumer: BaseConsumer<Group> = client
        .create_with_context(Group {
            worker: worker.clone(),
            failed: Mutex::new(None),
        })
        .context("cannot create the Kafka consumer")?;
    let mut topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    topics.push(&names.events_topic);
    topics.push(&names.touches_topic);
    consumer
        .subscribe(&topics)
        .context("cannot subscribe to kafka.topics and the stage topics")?;
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let poll_batch = kafka.poll_batch;
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name("spiral-stages".into())
        .spawn(move || {
            let result = consume(&consumer, &worker, &thread_shared, poll_batch);
            let finished = worker.finish(&consumer);
            consumer.unsubscribe();
            thread_shared.stopped.store(true, Ordering::Relaxed);
            let _ = done_tx.send(result.and(finished));
        })
        .context("cannot start the consumer thread")?;
    tracing::info!(
        topics = ?kafka.topics,
        events = %names.events_topic,
        touches = %names.touches_topic,
        touches_partitions = touches,
        group = %kafka.group_id,
        "spiral is running its stages"
    );
    Ok(Started { shared, done })
}

/// Polls and routes until a graceful stop is asked for.
fn consume(
    consumer: &BaseConsumer<Group>,
    worker: &Worker,
    shared: &StagesShared,
    poll_batch: usize,
) -> Result<()> {
    while !shared.stopping.load(Ordering::Relaxed) {
        let mut wait = Duration::from_millis(100);
        for _ in 0..poll_batch {
            // Each message is handled before the next poll, inside which a rebalance may run.
            let polled: Option<Result<BorrowedMessage<'_>, _>> = consumer.poll(wait);
            if let Some(error) = consumer.context().take_failure() {
                return Err(error);
            }
            match polled {
                None => break,
                Some(Ok(message)) => worker.message(&message)?,
                Some(Err(error)) => {
                    tracing::warn!(%error, "consumer error");
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        worker.after_batch(consumer)?;
    }
    Ok(())
}
