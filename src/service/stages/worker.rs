//! The consumer thread of scale-out: one consumer in the group reads the input topics and
//! both internal topics, and routes each message to its stage (`topology`): input messages are
//! forwarded (A), `spiral.events` goes through stage B when this instance holds it, and each
//! `spiral.touches` partition it holds through its journeys engine (C).
//!
//! Nothing is acknowledged before what it produced is: every 200 ms, and before a checkpoint
//! or a revocation, the producer is flushed and the dead letters delivered, and only then are
//! input offsets stored and stage checkpoints written. A crash at any point redoes work that
//! the next stage recognises (B by input offset, C by [`crate::topology::Seq`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rdkafka::ClientContext;
use rdkafka::Offset;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;

use crate::checkpoint::Storage;
use crate::config::{Config, KafkaConfig, StagesConfig};
use crate::service::dlq::{DeadLetter, DeadLetters, send_queued};
use crate::service::pipeline::{client_config, commit, log_librdkafka, partitions_with_lag};
use crate::service::recovery::{Coordinates, dead_letters_since};
use crate::topology::{EventsRecord, Outgoing, Place, Read, Resolve, Source, TouchesRecord};

use super::StagesShared;
use super::owned::Owner;
use super::pace::InFlight;

/// Longest a stage B takeover may spend reading the dead-letter topic's letters since its
/// checkpoint.
const DLQ_SCAN_TIMEOUT: Duration = Duration::from_secs(120);

/// How often what the stages produced is waited for, and then input offsets stored.
const DELIVER_EVERY: Duration = Duration::from_millis(200);

/// An input partition as stage A sees it.
struct Input {
    last_message: Instant,
    idle_sent: bool,
    /// The offset to store once what was forwarded is delivered.
    store: Option<i64>,
}

/// What the thread and the rebalance callbacks share (callbacks run inside `poll`, on the
/// same thread, never while a message is being handled).
pub struct Worker {
    config: Config,
    kafka: KafkaConfig,
    names: StagesConfig,
    shared: Arc<StagesShared>,
    root: Arc<dyn Storage>,
    keep: usize,
    interval: Duration,
    touches_partitions: u32,
    producer: BaseProducer,
    /// How far production may run ahead of the broker's acknowledgements.
    pace: Mutex<InFlight>,
    letters: Mutex<DeadLetters>,
    inner: Mutex<Inner>,
}

struct Inner {
    inputs: BTreeMap<(String, i32), Input>,
    /// Rejects already on the dead-letter topic, written after stage B's checkpoint.
    already_dead: HashSet<Coordinates>,
    out: Vec<Outgoing>,
    last_checkpoint: Instant,
    last_delivery: Instant,
}

impl Worker {
    pub fn new(
        config: &Config,
        shared: Arc<StagesShared>,
        root: Arc<dyn Storage>,
        touches_partitions: u32,
    ) -> Result<Worker> {
        let kafka = config.service.kafka.clone().expect("checked by the caller");
        let names = kafka.stages.clone().expect("checked by the caller");
        let mut producer = client_config(&kafka, false);
        // Forwarded records and touches in order, once each, with no delivery deadline: a
        // record not delivered holds the batch back instead of being dropped.
        producer
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "0");
        let producer: BaseProducer<DefaultProducerContext> = producer
            .create()
            .context("cannot create the stages producer")?;
        let letters = DeadLetters::new(&client_config(&kafka, false), &kafka.dlq_topic)?;
        Ok(Worker {
            keep: config.service.state.keep,
            interval: config.service.state.interval,
            config: config.clone(),
            kafka,
            names,
            shared,
            root,
            touches_partitions,
            producer,
            pace: Mutex::new(InFlight::new(config.service.shutdown_timeout)),
            letters: Mutex::new(letters),
            inner: Mutex::new(Inner {
                inputs: BTreeMap::new(),
                already_dead: HashSet::new(),
                out: Vec::new(),
                last_checkpoint: Instant::now(),
                last_delivery: Instant::now(),
            }),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn letters(&self) -> MutexGuard<'_, DeadLetters> {
        self.letters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, topic: &str, partition: i32, key: Option<&[u8]>, payload: &[u8]) -> Result<()> {
        let mut record = BaseRecord::to(topic).partition(partition).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        send_queued(&self.producer, record)
            .with_context(|| format!("cannot produce to {topic}"))?;
        self.hold_back();
        Ok(())
    }

    fn pace(&self) -> MutexGuard<'_, InFlight> {
        self.pace.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// While more is in flight than the broker acknowledges within the pace's budget, waits
    /// until half of it is: a SIGTERM then never finds more than a clean stop can drain.
    fn hold_back(&self) {
        let limit = self.pace().limit();
        if self.producer.in_flight_count() as usize <= limit {
            return;
        }
        let mut warn_at = Instant::now() + Duration::from_secs(1);
        while self.producer.in_flight_count() as usize > limit / 2 {
            self.producer.poll(Duration::from_millis(10));
            if Instant::now() >= warn_at {
                tracing::warn!(
                    in_flight = self.producer.in_flight_count(),
                    limit,
                    "the internal topics acknowledge slowly: holding the consumer back"
                );
                warn_at += Duration::from_secs(10);
            }
        }
    }

    /// One message, to its stage.
    pub fn message(&self, message: &BorrowedMessage<'_>) -> Result<()> {
        let topic = message.topic();
        if topic == self.names.events_topic {
            self.resolve(message)
        } else if topic == self.names.touches_topic {
            self.place(message)
        } else {
            self.forward(message)
        }
    }

    /// Stage A: the message as read, with where it was read.
    fn forward(&self, message: &BorrowedMessage<'_>) -> Result<()> {
        let payload = message.payload().unwrap_or_default();
        let source = Source {
            topic: message.topic(),
            partition: message.partition(),
        };
        let mut record = Vec::with_capacity(payload.len() + source.topic.len() + 32);
        EventsRecord::Message {
            source,
            offset: message.offset(),
            bytes: payload,
        }
        .encode(&mut record);
        self.send(&self.names.events_topic, 0, message.key(), &record)?;
        let mut inner = self.inner();
        let input = inner
            .inputs
            .entry((source.topic.to_string(), source.partition))
            .or_insert(Input {
                last_message: Instant::now(),
                idle_sent: false,
                store: None,
            });
        input.last_message = Instant::now();
        input.idle_sent = false;
        input.store = Some(message.offset() + 1);
        Ok(())
    }

    /// Stage B, when this instance holds `spiral.events`.
    fn resolve(&self, message: &BorrowedMessage<'_>) -> Result<()> {
        let mut inner = self.inner();
        let inner = &mut *inner;
        let mut owned = self.shared.owned();
        let Some(owner) = owned.resolve.as_mut() else {
            return Ok(());
        };
        let offset = message.offset();
        if offset < owner.next {
            return Ok(());
        }
        let payload = message.payload().unwrap_or_default();
        match EventsRecord::decode(payload) {
            Err(error) => tracing::error!(
                %error,
                offset,
                "a record of the events topic this build cannot read is skipped: is another \
                 build of Spiral writing to it?"
            ),
            Ok(record) => {
                if let Read::Rejected(rejection) = owner.stage.read(offset, &record, &mut inner.out)
                    && let EventsRecord::Message {
                        source,
                        offset: at,
                        bytes,
                    } = record
                {
                    let coordinates = (source.topic.to_string(), source.partition, at);
                    if !inner.already_dead.contains(&coordinates) {
                        self.letters().push(DeadLetter {
                            key: None,
                            payload: bytes.to_vec(),
                            reason: rejection.reason.as_str(),
                            detail: rejection.detail.to_string(),
                            topic: coordinates.0,
                            partition: coordinates.1,
                            offset: coordinates.2,
                        });
                    }
                }
            }
        }
        owner.next = offset + 1;
        drop(owned);
        self.send_touches(&mut inner.out)
    }

    fn send_touches(&self, out: &mut Vec<Outgoing>) -> Result<()> {
        for o in out.drain(..) {
            self.send(
                &self.names.touches_topic,
                o.partition as i32,
                o.key.as_deref().map(str::as_bytes),
                &o.record,
            )?;
        }
        Ok(())
    }

    /// Stage C, for the touches partitions this instance holds.
    fn place(&self, message: &BorrowedMessage<'_>) -> Result<()> {
        let mut owned = self.shared.owned();
        let Some(owner) = owned.journeys.get_mut(&message.partition()) else {
            return Ok(());
        };
        let offset = message.offset();
        if offset < owner.next {
            return Ok(());
        }
        let placed = TouchesRecord::decode(message.payload().unwrap_or_default())
            .and_then(|record| owner.stage.read(&record));
        if let Err(error) = placed {
            tracing::error!(
                %error,
                partition = message.partition(),
                offset,
                "a touch this instance cannot place is skipped: do all instances run the same funnels and dimensions?"
            );
        }
        owner.next = offset + 1;
        Ok(())
    }

    /// After a batch: idle inputs and stage B's watermark are told; every `DELIVER_EVERY`
    /// everything produced is delivered, then offsets are stored and, when due, checkpoints
    /// written.
    pub fn after_batch(&self, consumer: &BaseConsumer<Group>) -> Result<()> {
        {
            let mut inner = self.inner();
            let inner = &mut *inner;
            let idle_timeout = self.kafka.idle_timeout;
            for ((topic, partition), input) in &mut inner.inputs {
                if !input.idle_sent && input.last_message.elapsed() >= idle_timeout {
                    let mut record = Vec::new();
                    EventsRecord::Idle {
                        source: Source {
                            topic,
                            partition: *partition,
                        },
                    }
                    .encode(&mut record);
                    self.send(&self.names.events_topic, 0, None, &record)?;
                    input.idle_sent = true;
                }
            }
            if let Some(owner) = self.shared.owned().resolve.as_mut() {
                owner.stage.flush(&mut inner.out);
            }
            self.send_touches(&mut inner.out)?;
        }
        // Waiting for acknowledgements after every small batch would bound throughput by the
        // broker's round trip; offsets are stored only after a delivery, so they wait too.
        let due = self.inner().last_checkpoint.elapsed() >= self.interval;
        if !due && self.inner().last_delivery.elapsed() < DELIVER_EVERY {
            return Ok(());
        }
        self.deliver()?;
        self.store_offsets(consumer);
        if due {
            self.checkpoint_all()?;
            commit(consumer, "checkpoint");
        }
        Ok(())
    }

    /// Waits until every produced record and dead letter is acknowledged.
    fn deliver(&self) -> Result<()> {
        let (records, started) = (self.producer.in_flight_count() as usize, Instant::now());
        loop {
            match self.producer.flush(Duration::from_secs(1)) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                    tracing::warn!(
                        in_flight = self.producer.in_flight_count(),
                        "the internal topics do not acknowledge: holding the consumer back"
                    );
                }
                Err(error) => {
                    return Err(anyhow!("cannot deliver to the internal topics: {error}"));
                }
            }
        }
        self.pace().delivered(records, started.elapsed());
        self.inner().last_delivery = Instant::now();
        let mut letters = self.letters();
        letters.deliver(&self.shared.dlq);
        if let Some(owner) = self.shared.owned().resolve.as_mut() {
            owner.dlq_written = letters.written();
        }
        Ok(())
    }

    fn store_offsets(&self, consumer: &BaseConsumer<Group>) {
        let mut stores: Vec<(String, i32, i64)> = Vec::new();
        for ((topic, partition), input) in &mut self.inner().inputs {
            if let Some(next) = input.store.take() {
                stores.push((topic.clone(), *partition, next));
            }
        }
        {
            let owned = self.shared.owned();
            if let Some(owner) = &owned.resolve {
                stores.push((self.names.events_topic.clone(), 0, owner.next));
            }
            for (&partition, owner) in &owned.journeys {
                stores.push((self.names.touches_topic.clone(), partition, owner.next));
            }
        }
        for (topic, partition, next) in stores {
            if next <= 0 {
                continue;
            }
            // Fails for a partition revoked since: its new owner stores its own.
            let _ = consumer.store_offset(&topic, partition, next - 1);
        }
    }

    /// Every owned stage partition to its next checkpoint generation; one another instance
    /// has taken over meanwhile is dropped.
    fn checkpoint_all(&self) -> Result<()> {
        let mut owned = self.shared.owned();
        let counters = &self.shared.checkpoints;
        if let Some(owner) = owned.resolve.as_mut()
            && !owner.save(counters)?
        {
            owned.resolve = None;
        }
        let mut lost = Vec::new();
        for (&partition, owner) in owned.journeys.iter_mut() {
            if !owner.save(counters)? {
                lost.push(partition);
            }
        }
        for partition in lost {
            owned.journeys.remove(&partition);
        }
        self.inner().last_checkpoint = Instant::now();
        Ok(())
    }

    /// Before partitions go: everything delivered, their state checkpointed and dropped,
    /// input offsets stored and committed.
    fn revoke(&self, consumer: &BaseConsumer<Group>, list: &TopicPartitionList) -> Result<()> {
        self.deliver()?;
        self.store_offsets(consumer);
        // Lost, not revoked (the group went on without this member, which was too slow to
        // answer): another instance may own them already, so their state is dropped unsaved.
        let lost = consumer.assignment_lost();
        if lost {
            tracing::warn!(
                "the group reassigned this instance's partitions before it answered: dropping                  their state unsaved, their new owners resume from their checkpoints"
            );
        }
        let counters = &self.shared.checkpoints;
        for e in list.elements() {
            let (topic, partition) = (e.topic(), e.partition());
            if topic == self.names.events_topic {
                let owner = self.shared.owned().resolve.take();
                if let Some(mut owner) = owner.filter(|_| !lost) {
                    owner.save(counters)?;
                }
            } else if topic == self.names.touches_topic {
                let owner = self.shared.owned().journeys.remove(&partition);
                if let Some(mut owner) = owner.filter(|_| !lost) {
                    owner.save(counters)?;
                }
            } else {
                self.inner().inputs.remove(&(topic.to_string(), partition));
            }
        }
        commit(consumer, "revocation");
        tracing::info!(partitions = list.count(), "partitions revoked");
        Ok(())
    }

    /// Newly assigned partitions: stage partitions restored and placed where their state
    /// resumes; inputs resume at their committed offsets, and stage B is told they are here.
    fn assign(&self, list: &mut TopicPartitionList) -> Result<()> {
        let assigned: Vec<(String, i32)> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let counters = &self.shared.checkpoints;
        for (topic, partition) in assigned {
            let next = if topic == self.names.events_topic {
                let owner: Owner<Resolve> = Owner::open(
                    &self.root,
                    &format!("events-{partition}"),
                    self.keep,
                    &self.config,
                    self.touches_partitions,
                    counters,
                )?;
                let dead = dead_letters_since(&self.kafka, &owner.dlq_written, DLQ_SCAN_TIMEOUT)
                    .context("a stage B takeover reads the letters written since its checkpoint")?;
                self.letters().set_written(owner.dlq_written.clone());
                self.inner().already_dead = dead;
                let next = owner.next;
                self.shared.owned().resolve = Some(owner);
                Some(next)
            } else if topic == self.names.touches_topic {
                let owner: Owner<Place> = Owner::open(
                    &self.root,
                    &format!("touches-{partition}"),
                    self.keep,
                    &self.config,
                    self.touches_partitions,
                    counters,
                )?;
                let next = owner.next;
                self.shared.owned().journeys.insert(partition, owner);
                Some(next)
            } else {
                self.inner().inputs.insert(
                    (topic.clone(), partition),
                    Input {
                        last_message: Instant::now(),
                        idle_sent: false,
                        store: None,
                    },
                );
                let mut record = Vec::new();
                EventsRecord::Assigned {
                    source: Source {
                        topic: &topic,
                        partition,
                    },
                }
                .encode(&mut record);
                self.send(&self.names.events_topic, 0, None, &record)?;
                None
            };
            if let Some(next) = next {
                let offset = if next > 0 {
                    Offset::Offset(next)
                } else {
                    Offset::Beginning
                };
                list.set_partition_offset(&topic, partition, offset)?;
            }
        }
        tracing::info!(partitions = list.count(), "partitions assigned");
        Ok(())
    }

    /// At shutdown: everything delivered and checkpointed, offsets committed.
    pub fn finish(&self, consumer: &BaseConsumer<Group>) -> Result<()> {
        self.deliver()?;
        self.store_offsets(consumer);
        self.checkpoint_all()?;
        commit(consumer, "shutdown");
        Ok(())
    }
}

/// The consumer's context: rebalances move stage partitions' state (a callback that fails
/// stops the service, as a failed checkpoint does).
pub struct Group {
    pub worker: Arc<Worker>,
    pub failed: Mutex<Option<anyhow::Error>>,
}

impl Group {
    fn fail(&self, error: anyhow::Error) {
        tracing::error!(%error, "rebalance");
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(error);
    }

    pub fn take_failure(&self) -> Option<anyhow::Error> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl ClientContext for Group {
    /// Every second (the consumer defaults ask for statistics): the lag of each partition
    /// this instance fetches now. A partition the group moved elsewhere stops being fetched
    /// and leaves the map, so summed over instances each partition counts once.
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        let lag: BTreeMap<_, _> = partitions_with_lag(&statistics)
            .filter(|(_, _, p)| p.fetch_state == "active")
            .map(|(topic, partition, p)| ((topic.clone(), partition), p.consumer_lag_stored))
            .collect();
        *self
            .worker
            .shared
            .lag
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = lag;
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }
}

impl ConsumerContext for Group {
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
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Err(error) = self.worker.assign(list) {
                    self.fail(error);
                }
                if cooperative {
                    consumer.incremental_assign(list)
                } else {
                    consumer.assign(list)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Err(error) = self.worker.revoke(consumer, list) {
                    self.fail(error);
                }
                if cooperative {
                    consumer.incremental_unassign(list)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = %KafkaError::Rebalance(other.into()), "rebalance error");
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "cannot apply the rebalance");
        }
        self.worker.shared.ready.store(
            err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS,
            Ordering::Relaxed,
        );
    }
}
