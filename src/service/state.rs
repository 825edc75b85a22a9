//! What the consumer thread and the HTTP handlers share.
//!
//! The consumer thread owns the Kafka clients and applies a batch of messages under the engine
//! lock; handlers take the same lock briefly to read the summary, an account or the metrics.
//! Lock order, where two are held: engine, then partitions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::engine::Engine;
use crate::time::Millis;

use super::dlq::DlqCounters;
use super::durable::CheckpointCounters;
use super::partitions::Partitions;

pub struct Shared {
    pub engine: Mutex<Engine>,
    pub partitions: Mutex<Partitions>,
    pub dlq: DlqCounters,
    pub checkpoints: CheckpointCounters,
    /// Whether the BI export is on (its metrics are shown).
    pub export_on: bool,
    pub allowed_lateness: Millis,
    /// Partitions are assigned and a poll has completed since.
    pub ready: AtomicBool,
    /// A graceful stop was asked for: finish the batch in hand, commit, leave.
    pub stopping: AtomicBool,
    /// The consumer thread has ended (normally or not).
    pub stopped: AtomicBool,
}

impl Shared {
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine with its watermark brought up to this moment, for whatever reads it (the
    /// summary, an account, the metrics). Partitions go idle with the wall clock, not only
    /// when the consumer thread comes round to apply a batch, and that thread can be busy for
    /// seconds writing a checkpoint and its BI files: a reader must not see the watermark of
    /// the last batch as if it were settled.
    pub fn engine_now(&self) -> MutexGuard<'_, Engine> {
        let mut engine = self.engine();
        let partitions = self.partitions();
        follow_partitions(
            &mut engine,
            &partitions,
            self.allowed_lateness,
            Instant::now(),
        );
        engine
    }

    pub fn partitions(&self) -> MutexGuard<'_, Partitions> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// Moves the engine's watermark to where the partitions put it at `now` (SPEC §4):
/// `allowed_lateness` behind the event time the slowest active partition has reached.
pub fn follow_partitions(
    engine: &mut Engine,
    partitions: &Partitions,
    allowed_lateness: Millis,
    now: Instant,
) {
    if let Some(time) = partitions.event_time(now) {
        engine.advance_watermark(time.saturating_sub(allowed_lateness));
    }
}
