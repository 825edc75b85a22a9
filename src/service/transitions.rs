//! The stage-transition topic (SPEC §5.4, `kafka.transitions_topic`): after a checkpoint is
//! durable and its BI revision published, every stage entry of that revision goes to the
//! topic as a JSON message keyed by account (`export::for_each_transition`).
//!
//! A revision counts as done only once the broker has acknowledged all of its messages; until
//! then it stays in the checkpoints' list of waiting revisions and is sent again, whole, after
//! the next checkpoint or by a recovery. Delivery is at least once; the messages carry the
//! revision that lets a consumer keep the newest.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use super::dlq::send_queued;
use crate::export::{Sealed, Target, for_each_transition};

/// How long a revision's messages may take to be acknowledged before the attempt fails (it
/// is retried after the next checkpoint). Short enough that a stop with the topic down still
/// ends within the default `service.shutdown_timeout`: the checkpoint is durable by then, and
/// the restart sends the revision.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivery reports: how many failed, and the last error.
#[derive(Default)]
struct Reports {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().expect("reports") = Some(error.to_string());
        }
    }
}

pub struct Transitions {
    producer: BaseProducer<Reports>,
    topic: String,
}

impl Transitions {
    pub fn new(config: &ClientConfig, topic: &str) -> Result<Transitions> {
        let producer = config
            .create_with_context(Reports::default())
            .context("cannot create the stage-transition producer")?;
        Ok(Transitions {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Sends every stage entry of the published revision `sealed` and waits until the broker
    /// has acknowledged them all; returns how many. An error means some may be missing: the
    /// caller sends the whole revision again later.
    pub fn send(&self, target: &Target, sealed: &Sealed) -> io::Result<u64> {
        let reports = self.producer.context();
        reports.failed.store(0, Ordering::Relaxed);
        let sent = for_each_transition(target, sealed, |key, payload| {
            let record = BaseRecord::to(&self.topic).key(key).payload(payload);
            send_queued(&self.producer, record).map_err(io::Error::other)
        })?;
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| io::Error::other(format!("{}: {e}", self.topic)))?;
        let failed = reports.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let error = reports.last_error.lock().expect("reports").clone();
            return Err(io::Error::other(format!(
                "{}: {failed} of {sent} stage transitions of revision {} not delivered: {}",
                self.topic,
                sealed.revision,
                error.unwrap_or_default()
            )));
        }
        Ok(sent)
    }
}
