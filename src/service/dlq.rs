//! The dead-letter topic (SPEC §1, §5.4): every rejected message, unchanged, with its reason
//! and where it came from in headers.
//!
//! Rejected messages of a batch are delivered before the batch's offsets are stored, so a
//! rejected message is never skipped: if the dead-letter topic cannot be written, delivery is
//! retried with backoff (counted and logged) and the consumer waits. Waiting longer than
//! `max.poll.interval.ms` makes librdkafka leave the group; the offsets were not stored, so
//! whoever gets the partitions reads the messages again.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::event::Rejection;

/// Header names of a dead letter.
pub const REASON_HEADER: &str = "spiral.reason";
pub const DETAIL_HEADER: &str = "spiral.detail";
pub const TOPIC_HEADER: &str = "spiral.source.topic";
pub const PARTITION_HEADER: &str = "spiral.source.partition";
pub const OFFSET_HEADER: &str = "spiral.source.offset";

/// Counters of the dead-letter output, exported as metrics.
#[derive(Debug, Default)]
pub struct DlqCounters {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
}

/// One rejected message waiting for delivery.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub reason: &'static str,
    pub detail: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl DeadLetter {
    pub fn new(message: &impl Message, rejection: &Rejection) -> DeadLetter {
        DeadLetter {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            reason: rejection.reason.as_str(),
            detail: rejection.detail.to_string(),
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
        }
    }

    fn headers(&self) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        OwnedHeaders::new_with_capacity(5)
            .insert(header(REASON_HEADER, self.reason))
            .insert(header(DETAIL_HEADER, &self.detail))
            .insert(header(TOPIC_HEADER, &self.topic))
            .insert(header(PARTITION_HEADER, &partition))
            .insert(header(OFFSET_HEADER, &offset))
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Records which letters of the current round were delivered. A letter whose report is an
/// error, or has not come, is sent again: the dead-letter topic is at least once.
#[derive(Default)]
pub struct DeliveryLog {
    round: AtomicU64,
    delivered: Mutex<Vec<usize>>,
    last_error: Mutex<Option<String>>,
    /// The offset after the last letter written, per dead-letter partition: a checkpoint
    /// records it, so that recovery reads only the letters written after it.
    written: Mutex<BTreeMap<i32, i64>>,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    /// (round, index of the letter in that round).
    type DeliveryOpaque = Box<(u64, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (round, index) = *opaque;
        if let Ok(message) = result {
            let mut written = self.written.lock().expect("delivery log");
            let next = written.entry(message.partition()).or_default();
            *next = (*next).max(message.offset() + 1);
        }
        match result {
            Ok(_) if round == self.round.load(Ordering::Relaxed) => {
                self.delivered.lock().expect("delivery log").push(index);
            }
            Ok(_) => {}
            Err((error, _)) => {
                *self.last_error.lock().expect("delivery log") = Some(error.to_string());
            }
        }
    }
}

pub struct DeadLetters {
    producer: BaseProducer<DeliveryLog>,
    topic: String,
    pending: Vec<DeadLetter>,
    /// First pause after a failed round; doubles up to `max_backoff`.
    backoff: Duration,
    max_backoff: Duration,
}

impl DeadLetters {
    pub fn new(config: &ClientConfig, topic: &str) -> Result<DeadLetters> {
        let producer = config
            .create_with_context(DeliveryLog::default())
            .context("cannot create the dead-letter producer")?;
        Ok(DeadLetters {
            producer,
            topic: topic.to_string(),
            pending: Vec::new(),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        })
    }

    /// Where the letters written so far end, per partition of the dead-letter topic.
    pub fn written(&self) -> BTreeMap<i32, i64> {
        self.producer.context().written.lock().expect("log").clone()
    }

    /// Starts from the ends a restored checkpoint recorded.
    pub fn set_written(&self, written: BTreeMap<i32, i64>) {
        *self.producer.context().written.lock().expect("log") = written;
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn push(&mut self, letter: DeadLetter) {
        self.pending.push(letter);
    }

    /// Delivers every pending letter, retrying undelivered ones with backoff until the broker
    /// takes them: a rejected message is never skipped. A shutdown that cannot wait that long
    /// ends the process from outside (`service.shutdown_timeout`), offsets not stored.
    pub fn deliver(&mut self, counters: &DlqCounters) {
        let mut backoff = self.backoff;
        while !self.pending.is_empty() {
            let delivered = self.round();
            counters
                .delivered
                .fetch_add(delivered.len() as u64, Ordering::Relaxed);
            if delivered.len() == self.pending.len() {
                self.pending.clear();
                break;
            }
            let mut was_delivered = vec![false; self.pending.len()];
            for i in delivered {
                was_delivered[i] = true;
            }
            let mut flags = was_delivered.into_iter();
            self.pending.retain(|_| !flags.next().unwrap_or(false));
            counters.retries.fetch_add(1, Ordering::Relaxed);
            let error = self
                .producer
                .context()
                .last_error
                .lock()
                .expect("log")
                .clone();
            tracing::warn!(
                topic = %self.topic,
                undelivered = self.pending.len(),
                error = error.as_deref().unwrap_or("no delivery report in time"),
                retry_in_ms = backoff.as_millis() as u64,
                "cannot write to the dead-letter topic; holding the consumer back"
            );
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    /// Sends every pending letter once and waits for their reports; returns the indices of
    /// the delivered ones.
    fn round(&mut self) -> Vec<usize> {
        let log = self.producer.context();
        let round = log.round.fetch_add(1, Ordering::Relaxed) + 1;
        log.delivered.lock().expect("delivery log").clear();
        for (i, letter) in self.pending.iter().enumerate() {
            let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new((round, i)))
                .payload(&letter.payload[..])
                .headers(letter.headers());
            if let Some(key) = &letter.key {
                record = record.key(&key[..]);
            }
            if let Err(error) = send_queued(&self.producer, record) {
                *log.last_error.lock().expect("delivery log") = Some(error.to_string());
            }
        }
        // `flush` polls until every sent letter has its report (or the time is up).
        if let Err(error) = self.producer.flush(Duration::from_secs(30)) {
            tracing::warn!(%error, "dead-letter flush did not finish");
        }
        std::mem::take(&mut *log.delivered.lock().expect("delivery log"))
    }

    /// Waits for anything still in flight (at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .context("cannot flush the dead-letter producer")
    }
}

/// Sends `record`, waiting for deliveries to drain while librdkafka's local queue is full.
pub(crate) fn send_queued<'a, C: ProducerContext>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'a, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                producer.poll(Duration::from_millis(50));
                record = back;
            }
            Err((error, _)) => return Err(error),
        }
    }
}
