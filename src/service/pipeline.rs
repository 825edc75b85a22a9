//! The consumer thread: poll a batch, apply it to the engine, deliver its rejects to the
//! dead-letter topic, and only then store its offsets.
//!
//! It runs on its own OS thread, never on the async reactor: librdkafka's poll blocks, and a
//! batch holds the engine lock for a few milliseconds of pure CPU work.
//!
//! Offsets: `enable.auto.offset.store` is forced off and an offset is stored only after its
//! message was applied (and, when rejected, delivered to the dead-letter topic); librdkafka's
//! auto-commit then commits stored offsets, and a revocation or shutdown commits them at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::ClientContext;
use rdkafka::Offset;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;

use crate::config::KafkaConfig;
use crate::engine::{Applied, WARM_BATCH};
use crate::event::Decoder;

use super::dlq::{DeadLetter, DeadLetters};
use super::durable::Durable;
use super::outbox::Outbox;
use super::partitions::TopicPartition;
use super::state::{Shared, follow_partitions};
use crate::export::Exporter;
use crate::export::tables::Origin;

/// Settings applied before the operator's (they may change them).
const DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("enable.auto.commit", "true"),
    ("auto.commit.interval.ms", "1000"),
    // Lag per partition comes from librdkafka's statistics.
    ("statistics.interval.ms", "1000"),
    // Bounded prefetch: at most 32 MiB of fetched messages waiting per consumer.
    ("queued.max.messages.kbytes", "32768"),
    // librdkafka pauses fetching for this long once the prefetch is full (default 1 s). The
    // engine drains 32 MiB in well under a second, so the default left the consumer idle
    // half the time (117 k → 178 k msgs/s on Tansu, docs/performance.md).
    ("fetch.queue.backoff.ms", "10"),
];

/// The client settings: defaults, then `[kafka.client]`, then the client's own section, then
/// what Spiral owns (config validation already refused those keys under `[kafka.*]`).
pub fn client_config(kafka: &KafkaConfig, consumer: bool) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set_log_level(RDKafkaLogLevel::Warning);
    if consumer {
        for (key, value) in DEFAULTS {
            config.set(*key, *value);
        }
    }
    let own = if consumer {
        &kafka.consumer
    } else {
        &kafka.producer
    };
    for (key, value) in kafka.client.iter().chain(own) {
        config.set(key, value);
    }
    config.set("bootstrap.servers", &kafka.brokers);
    if consumer {
        config
            .set("group.id", &kafka.group_id)
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
    }
    config
}

/// Keeps the partition table in step with the group's assignments, commits stored offsets
/// before partitions go, and reads lag from librdkafka's statistics.
pub struct GroupContext {
    shared: Arc<Shared>,
    outbox: Arc<Mutex<Outbox>>,
    /// Checkpoints; `None` when `[state]` is disabled.
    durable: Arc<Mutex<Option<Durable>>>,
    /// Partitions revoked or assigned by rebalances since the poll loop last looked.
    moved: Mutex<Vec<TopicPartition>>,
    /// Set with `moved`, so the poll loop checks a flag per message, not a lock.
    any_moved: AtomicBool,
}

impl GroupContext {
    /// One instance per group until scale-out (docs/durability.md): partitions the engine has
    /// read that another member holds now mean each instance counts part of the stream. Said
    /// in the log when an assignment leaves any, and always in `/metrics`
    /// (`spiral_state_partitions_elsewhere`, alert SpiralGroupSplit).
    fn note_partitions_elsewhere(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr) {
        let subscribed: std::collections::HashSet<String> = consumer
            .subscription()
            .map(|list| {
                list.elements()
                    .iter()
                    .map(|e| e.topic().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut partitions = self.shared.partitions();
        let elsewhere = partitions.settle_rebalance(&subscribed);
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && !elsewhere.is_empty() {
            let elsewhere: Vec<String> =
                elsewhere.iter().map(|(t, p)| format!("{t}/{p}")).collect();
            tracing::error!(
                ?elsewhere,
                "another member of the group holds partitions this instance has read: run one \
                 Spiral instance per consumer group, or each counts part of the stream"
            );
        }
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_moved(&self) -> Vec<TopicPartition> {
        if !self.any_moved.swap(false, Ordering::Relaxed) {
            return Vec::new();
        }
        std::mem::take(&mut *self.moved.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn durable(&self) -> MutexGuard<'_, Option<Durable>> {
        self.durable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Settles the outbox and makes the state durable (or, without `[state]`, commits the
    /// stored offsets): before a revocation and at shutdown.
    fn settle_and_commit(&self, consumer: &BaseConsumer<Self>, why: &str) {
        let mut outbox = self.outbox();
        if let Err(error) = outbox.settle(consumer, &self.shared.dlq) {
            tracing::error!(%error, why, "cannot settle");
        }
        match &mut *self.durable() {
            Some(durable) => {
                if !durable.now(&self.shared, &outbox, consumer) {
                    tracing::error!(why, "no checkpoint could be written");
                }
            }
            None => commit(consumer, why),
        }
    }

    /// With `[state]`, where each newly assigned partition starts: where the engine's state
    /// left it, or its beginning when the state has none of it (committed offsets never lead
    /// the state, so they are not trusted over it).
    fn place(&self, list: &mut TopicPartitionList) {
        if self.durable().is_none() {
            return;
        }
        let partitions = self.shared.partitions();
        let positions = partitions.positions();
        let assigned: Vec<TopicPartition> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        for tp in assigned {
            let offset = positions
                .get(&tp)
                .map_or(Offset::Beginning, |p| Offset::Offset(p.next));
            tracing::debug!(topic = %tp.0, partition = tp.1, ?offset, "resuming");
            if let Err(error) = list.set_partition_offset(&tp.0, tp.1, offset) {
                tracing::error!(%error, "cannot place a partition");
            }
        }
    }
}

/// The partitions in librdkafka's statistics whose lag behind the stored offset is known,
/// each with its statistics (`consumer_lag_stored` ≥ 0).
pub fn partitions_with_lag(
    statistics: &Statistics,
) -> impl Iterator<Item = (&String, i32, &rdkafka::statistics::Partition)> {
    statistics.topics.iter().flat_map(|(topic, t)| {
        t.partitions
            .iter()
            // -1 is librdkafka's "unassigned" pseudo-partition; -1 lag means unknown.
            .filter(|&(&partition, p)| partition >= 0 && p.consumer_lag_stored >= 0)
            .map(move |(&partition, p)| (topic, partition, p))
    })
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        let mut partitions = self.shared.partitions();
        for (topic, partition, p) in partitions_with_lag(&statistics) {
            partitions.set_lag(topic, partition, p.consumer_lag_stored);
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for GroupContext {
    /// librdkafka's default rebalance, with each assigned partition placed where the state
    /// resumes it before fetching starts.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        self.moved.lock().unwrap_or_else(|p| p.into_inner()).extend(
            list.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition())),
        );
        self.any_moved.store(true, Ordering::Relaxed);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.place(list);
                let result = if cooperative {
                    consumer.incremental_assign(list)
                } else {
                    consumer.assign(list)
                };
                self.post_rebalance(consumer, &Rebalance::Assign(list));
                result
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(list));
                if cooperative {
                    consumer.incremental_unassign(list)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                let error = KafkaError::Rebalance(other.into());
                tracing::warn!(%error, "rebalance error");
                // As librdkafka's default: drop the assignment, the group will hand out a new one.
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "cannot apply the rebalance");
        }
        // An eager rebalance revokes everything before assigning anew, so only its assignment
        // says where partitions went; a cooperative one revokes just what moves elsewhere.
        if cooperative || err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            self.note_partitions_elsewhere(consumer, err);
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            // Rebalance callbacks run inside poll, with no batch being applied: settling
            // delivers the rejects of everything applied and stores its offsets, so the
            // checkpoint or commit that follows is exact. Messages polled but not applied yet
            // are dropped by the poll loop and read again (`poll`).
            self.settle_and_commit(consumer, "revocation");
            let mut partitions = self.shared.partitions();
            for e in list.elements() {
                partitions.revoke(&(e.topic().to_string(), e.partition()));
            }
            tracing::info!(partitions = list.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let now = Instant::now();
                let mut partitions = self.shared.partitions();
                for e in list.elements() {
                    partitions.assign((e.topic().to_string(), e.partition()), now);
                }
                tracing::info!(partitions = list.count(), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
        }
    }
}

/// librdkafka's log lines in ours: errors as errors, warnings as warnings, the rest at debug.
pub fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        _ => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

/// Commits the stored offsets now (at a revocation, a checkpoint, shutdown).
pub fn commit<C: ConsumerContext>(consumer: &BaseConsumer<C>, why: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::debug!(why, "offsets committed"),
        // Nothing stored since the last commit.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => tracing::warn!(%error, why, "offset commit failed"),
    }
}

/// What a start with `[state]` hands the pipeline.
pub struct Recovery {
    pub durable: Durable,
    /// Where the dead-letter topic ended at the checkpoint.
    pub dlq_written: std::collections::BTreeMap<i32, i64>,
    /// Rejected messages already on the dead-letter topic, written after the checkpoint.
    pub already_dead: std::collections::HashSet<super::recovery::Coordinates>,
}

pub struct Pipeline {
    shared: Arc<Shared>,
    consumer: BaseConsumer<GroupContext>,
    outbox: Arc<Mutex<Outbox>>,
    durable: Arc<Mutex<Option<Durable>>>,
    decoder: Decoder,
    poll_batch: usize,
    shutdown_timeout: Duration,
}

impl Pipeline {
    pub fn new(
        shared: Arc<Shared>,
        kafka: &KafkaConfig,
        decoder: Decoder,
        shutdown_timeout: Duration,
        recovery: Option<Recovery>,
    ) -> Result<Pipeline> {
        let dead_letters = DeadLetters::new(&client_config(kafka, false), &kafka.dlq_topic)?;
        let mut outbox = Outbox::new(dead_letters);
        let mut client = client_config(kafka, true);
        let durable = match recovery {
            Some(Recovery {
                durable,
                dlq_written,
                already_dead,
            }) => {
                outbox.dead_letters().set_written(dlq_written);
                outbox.set_already_dead(already_dead);
                // Committed offsets follow durable checkpoints (see `durable`).
                client.set("enable.auto.commit", "false");
                Some(durable)
            }
            None => None,
        };
        let outbox = Arc::new(Mutex::new(outbox));
        let durable = Arc::new(Mutex::new(durable));
        let context = GroupContext {
            shared: shared.clone(),
            outbox: outbox.clone(),
            durable: durable.clone(),
            moved: Mutex::new(Vec::new()),
            any_moved: AtomicBool::new(false),
        };
        let consumer: BaseConsumer<GroupContext> = client
            .create_with_context(context)
            .context("cannot create the Kafka consumer")?;
        let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .context("cannot subscribe to kafka.topics")?;
        Ok(Pipeline {
            shared,
            consumer,
            outbox,
            durable,
            decoder,
            poll_batch: kafka.poll_batch,
            shutdown_timeout,
        })
    }

    /// Consumes until a graceful stop is asked for, then commits and flushes.
    pub fn run(mut self) -> Result<()> {
        let result = self.consume();
        let context = self.consumer.context();
        context.settle_and_commit(&self.consumer, "shutdown");
        let flushed = context.outbox().flush(self.shutdown_timeout);
        self.consumer.unsubscribe();
        result.and(flushed)
    }

    fn consume(&mut self) -> Result<()> {
        let Pipeline {
            shared,
            consumer,
            outbox,
            durable,
            decoder,
            poll_batch,
            ..
        } = self;
        let mut batch = Vec::with_capacity(*poll_batch);
        let mut timing = Timing::default();
        while !shared.stopping() {
            let started = Instant::now();
            poll(consumer, *poll_batch, &mut batch);
            let polled = Instant::now();
            let ready = !shared.partitions().is_empty();
            shared.ready.store(ready, Ordering::Relaxed);
            // The outbox and durable locks are never held across poll: rebalance callbacks
            // take them.
            let mut outbox = outbox.lock().unwrap_or_else(|p| p.into_inner());
            let mut durable = durable.lock().unwrap_or_else(|p| p.into_inner());
            let export = durable.as_mut().and_then(Durable::export);
            if let Err(e) = apply(shared, decoder, &mut outbox, export, &batch)
                && let Some(durable) = durable.as_mut()
            {
                durable.fail(format!("cannot write BI rows: {e}"));
            }
            let applied = Instant::now();
            let messages = batch.len();
            batch.clear();
            // Even a graceful stop keeps retrying the dead-letter topic, so that no rejected
            // message is skipped; the shutdown deadline ends the process from outside.
            outbox.after_batch(consumer, &shared.dlq)?;
            if let Some(durable) = durable.as_mut() {
                durable.poll(shared, consumer);
                if durable.due(shared) {
                    outbox.settle(consumer, &shared.dlq)?;
                    durable.begin(shared, &outbox);
                }
                if let Some(why) = durable.fatal() {
                    return Err(anyhow::anyhow!("{why}"));
                }
            }
            timing.add(messages, started, polled, applied);
        }
        timing.log();
        Ok(())
    }
}

/// Where the consumer thread's time goes, logged at debug level every 10 s and at the end.
#[derive(Default)]
struct Timing {
    since: Option<Instant>,
    batches: u64,
    messages: u64,
    poll: Duration,
    apply: Duration,
    settle: Duration,
}

impl Timing {
    fn add(&mut self, messages: usize, started: Instant, polled: Instant, applied: Instant) {
        let now = Instant::now();
        let since = *self.since.get_or_insert(started);
        self.batches += 1;
        self.messages += messages as u64;
        self.poll += polled - started;
        self.apply += applied - polled;
        self.settle += now - applied;
        if now - since >= Duration::from_secs(10) {
            self.log();
        }
    }

    fn log(&mut self) {
        tracing::debug!(
            batches = self.batches,
            messages = self.messages,
            poll_ms = self.poll.as_millis() as u64,
            apply_ms = self.apply.as_millis() as u64,
            settle_ms = self.settle.as_millis() as u64,
            "consumer thread time"
        );
        *self = Timing::default();
    }
}

/// Waits up to 100 ms for a first message, then takes what is already fetched, up to `max`.
fn poll<'c>(
    consumer: &'c BaseConsumer<GroupContext>,
    max: usize,
    batch: &mut Vec<BorrowedMessage<'c>>,
) {
    let mut wait = Duration::from_millis(100);
    while batch.len() < max {
        let polled = consumer.poll(wait);
        // A rebalance ran inside that poll: messages of the partitions it moved that were
        // polled before it are not applied. Their partitions resume where the state left them
        // (or, without `[state]`, at the offsets committed on revocation), so they are read
        // again by whoever owns them now; applying them too would count them twice.
        let moved = consumer.context().take_moved();
        if !moved.is_empty() {
            let before = batch.len();
            batch.retain(|m| !moved.contains(&(m.topic().to_string(), m.partition())));
            if batch.len() < before {
                tracing::debug!(
                    dropped = before - batch.len(),
                    "messages polled before a rebalance are read again"
                );
            }
        }
        match polled {
            None => break,
            Some(Ok(message)) => batch.push(message),
            Some(Err(error)) => {
                // Broker and transport errors are retried by librdkafka itself.
                tracing::warn!(%error, "consumer error");
                break;
            }
        }
        wait = Duration::ZERO;
    }
}

/// Applies a batch under one engine lock, then moves the watermark. Accepted touches become
/// BI rows when the export is on; an error there means the export lost rows.
fn apply(
    shared: &Shared,
    decoder: &Decoder,
    outbox: &mut Outbox,
    mut export: Option<&mut Exporter>,
    batch: &[BorrowedMessage<'_>],
) -> std::io::Result<()> {
    let mut exported = Ok(());
    let now = Instant::now();
    // What the batch did per partition, gathered first so the partition table and the
    // outbox are touched once per partition, not once per message.
    let mut seen: Vec<Seen<'_>> = Vec::new();
    let mut engine = shared.engine();
    // Decoded WARM_BATCH at a time, so the engine's lookups for them overlap (`Engine::warm`).
    let mut decoded = Vec::with_capacity(WARM_BATCH);
    for chunk in batch.chunks(WARM_BATCH) {
        decoded.extend(
            chunk
                .iter()
                .map(|m| decoder.decode(m.payload().unwrap_or_default())),
        );
        let mut warmed = engine.warm(decoded.iter().filter_map(|outcome| outcome.as_ref().ok()));
        // Applied where they lie, as the replay does: a decoded event is a few hundred bytes.
        for (message, outcome) in chunk.iter().zip(&decoded) {
            let accepted_at = match outcome {
                Ok(event) => match engine.apply_hashed(event, warmed.next()) {
                    Applied::Accepted { late } => {
                        if let Some(export) = &mut export
                            && exported.is_ok()
                        {
                            let origin = Origin::Kafka {
                                topic: message.topic(),
                                partition: message.partition(),
                                offset: message.offset(),
                            };
                            exported = export.event(event, late, origin);
                        }
                        Some(event.occurred_at)
                    }
                    Applied::Duplicate => None,
                },
                Err(rejection) => {
                    engine.reject(rejection.reason);
                    outbox.reject(DeadLetter::new(message, rejection));
                    None
                }
            };
            let (topic, partition) = (message.topic(), message.partition());
            let at = match seen
                .iter()
                .position(|s| s.partition == partition && s.topic == topic)
            {
                Some(at) => at,
                None => {
                    seen.push(Seen {
                        topic,
                        partition,
                        newest: None,
                        offset: 0,
                    });
                    seen.len() - 1
                }
            };
            let s = &mut seen[at];
            s.newest = s.newest.max(accepted_at);
            s.offset = message.offset();
        }
        decoded.clear();
    }
    let mut partitions = shared.partitions();
    for s in &seen {
        partitions.message(s.topic, s.partition, s.newest, now);
        partitions.applied((s.topic, s.partition), s.offset + 1, s.newest);
        outbox.applied(s.topic, s.partition, s.offset);
    }
    follow_partitions(&mut engine, &partitions, shared.allowed_lateness, now);
    exported
}

struct Seen<'a> {
    topic: &'a str,
    partition: i32,
    /// Newest accepted event time in this batch.
    newest: Option<crate::time::Millis>,
    /// Last offset read in this batch.
    offset: i64,
}
