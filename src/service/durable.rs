//! Checkpoints of the live service (SPEC §6): the engine's state together with the offsets it
//! reflects, written every `state.interval`, before partitions are revoked and at shutdown.
//!
//! A checkpoint is taken on the consumer thread between batches, after the outbox settled
//! (every rejected message up to the positions is on the dead-letter topic), so the engine,
//! the positions and the dead-letter topic agree. Taking it costs one snapshot of the engine
//! under its lock; writing it (fsync, read-back, pruning) happens on a thread of its own while
//! consuming goes on. Kafka's committed offsets follow a checkpoint once it is durable, never
//! lead it: they stay right for lag tools, and the checkpoint stays the source of truth.
//!
//! The payload: `SPIRALSV`, a little-endian `u32` length, a JSON header (positions and
//! dead-letter ends), then the engine snapshot.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::TopicPartitionList;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoints, format};
use crate::export::{Exporter, Sealed, publish};
use crate::time::Millis;

use super::outbox::Outbox;
use super::partitions::{Position, TopicPartition};
use super::state::Shared;
use super::transitions::Transitions;

const MAGIC: &[u8; 8] = b"SPIRALSV";

/// Nice value of the checkpoint writer thread: under contention the scheduler gives it about a
/// tenth of the weight of the consumer (nice 0), so the write fills spare cycles instead of
/// taking them from consuming; an idle core still runs it at full speed.
const WRITER_NICE: libc::c_int = 10;

/// Checkpoint figures, exported as metrics.
#[derive(Debug, Default)]
pub struct CheckpointCounters {
    /// Unix milliseconds of the last durable checkpoint (0: none yet).
    pub last_success_ms: AtomicI64,
    pub last_duration_us: AtomicU64,
    pub last_bytes: AtomicU64,
    /// Time the consumer was held for the last snapshot (the rest is written beside it).
    pub last_snapshot_us: AtomicU64,
    pub saved: AtomicU64,
    pub failed: AtomicU64,
    /// Starts from a checkpoint (0 or 1 per process).
    pub restores: AtomicU64,
    /// Newer checkpoints passed over at restore because they did not verify.
    pub fallbacks: AtomicU64,
    /// The BI export: the last revision published, files published, and revisions whose
    /// checkpoint is durable but whose files could not be published yet.
    pub export_revision: AtomicU64,
    pub export_files: AtomicU64,
    pub export_unpublished: AtomicU64,
    /// Stage-transition messages acknowledged by the broker.
    pub transitions_sent: AtomicU64,
}

/// What a checkpoint holds besides the engine (whose snapshot checks that the funnels and
/// dimensions it was taken with are the configured ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub positions: Vec<SavedPosition>,
    pub dlq_topic: String,
    /// Offset after the last letter written, per dead-letter partition.
    pub dlq_written: Vec<(i32, i64)>,
    /// Letters already on the dead-letter topic, before `dlq_written`, for messages past the
    /// positions: written by a run that crashed, found by the recovery of this one, and not
    /// reached again yet. A recovery from this checkpoint must skip them too.
    #[serde(default)]
    pub dlq_ahead: Vec<(String, i32, i64)>,
    /// The BI files sealed with this checkpoint and any earlier revisions not published yet
    /// (their checkpoint failed to write, or the renames failed), in order: published once
    /// this checkpoint is durable, and again by a recovery from it (publishing is
    /// idempotent). Empty when the export is off: with it on, every checkpoint seals one.
    #[serde(default)]
    pub export: Vec<Sealed>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPosition {
    pub topic: String,
    pub partition: i32,
    pub next: i64,
    pub newest: Option<i64>,
}

impl Header {
    pub fn positions(&self) -> BTreeMap<TopicPartition, Position> {
        self.positions
            .iter()
            .map(|p| {
                (
                    (p.topic.clone(), p.partition),
                    Position {
                        next: p.next,
                        newest: p.newest,
                    },
                )
            })
            .collect()
    }
}

/// Appends a payload to `out`: a header and an engine snapshot (appended by `engine`).
pub fn encode(out: &mut Vec<u8>, header: &Header, engine: impl FnOnce(&mut Vec<u8>)) {
    let json = serde_json::to_vec(header).expect("a header serializes");
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    engine(out);
}

/// The header and the engine snapshot of a payload.
pub fn decode(payload: &[u8]) -> Result<(Header, &[u8])> {
    let rest = payload
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| anyhow!("not a Spiral service checkpoint"))?;
    if rest.len() < 4 {
        bail!("checkpoint header is truncated");
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let rest = &rest[4..];
    if rest.len() < len {
        bail!("checkpoint header is truncated");
    }
    let header = serde_json::from_slice(&rest[..len]).context("checkpoint header")?;
    Ok((header, &rest[len..]))
}

struct Job {
    generation: u64,
    /// The checkpoint file, framed ([`format::start`]).
    frame: Vec<u8>,
    /// BI revisions to publish once the checkpoint is durable.
    publish: Vec<Sealed>,
    positions: BTreeMap<TopicPartition, Position>,
    watermark: Option<Millis>,
    started: Instant,
}

struct Done {
    generation: u64,
    result: io::Result<usize>,
    /// The revisions published after this checkpoint, and the error that stopped the rest.
    published: Vec<u64>,
    publish_error: Option<io::Error>,
    /// Stage-transition messages of the published revisions.
    transitions_sent: u64,
    /// The job's buffer, handed back for the next checkpoint.
    frame: Vec<u8>,
    positions: BTreeMap<TopicPartition, Position>,
    watermark: Option<Millis>,
    started: Instant,
}

/// The consumer thread's side of checkpointing.
pub struct Durable {
    interval: Duration,
    last: Instant,
    next_generation: u64,
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    in_flight: bool,
    /// The buffer checkpoints are built in, while no write holds it.
    frame: Vec<u8>,
    /// Size of the last checkpoint taken.
    last_size: usize,
    /// Positions and watermark of the last durable checkpoint.
    saved: Option<(BTreeMap<TopicPartition, Position>, Option<Millis>)>,
    /// The BI export, sealed with every checkpoint.
    export: Option<Exporter>,
    /// Sealed revisions not published yet, oldest first.
    waiting: Vec<Sealed>,
    /// An export failure: rows are lost unless the service restarts from the last checkpoint,
    /// so the consumer stops (see `docs/bi.md`).
    fatal: Option<String>,
}

impl Durable {
    /// Starts the writer thread. `next_generation` is above every generation in storage.
    pub fn start(
        checkpoints: Checkpoints,
        next_generation: u64,
        interval: Duration,
        export: Option<Exporter>,
        transitions: Option<Transitions>,
        waiting: Vec<Sealed>,
    ) -> Result<Durable> {
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (done_tx, done) = sync_channel::<Done>(1);
        let target = export.as_ref().map(|e| e.target().clone());
        std::thread::Builder::new()
            .name("spiral-checkpoint".into())
            .spawn(move || {
                lower_priority();
                for mut job in job_rx {
                    let result = checkpoints.save_frame(job.generation, &job.frame);
                    // Room for the next checkpoint, faulted in here rather than under the
                    // consumer's snapshot (the state only grows between checkpoints).
                    let written = job.frame.len();
                    if reserve(&mut job.frame, written) {
                        prefault(&mut job.frame);
                    }
                    // The files become visible only once the state that covers them is.
                    let (mut published, mut publish_error) = (Vec::new(), None);
                    let mut transitions_sent = 0;
                    if let (Ok(_), Some(target)) = (&result, &target) {
                        for sealed in &job.publish {
                            // A revision is done once its files are published and, with the
                            // transition topic on, its messages acknowledged.
                            let done = publish(target, sealed).and_then(|()| {
                                transitions
                                    .as_ref()
                                    .map_or(Ok(0), |t| t.send(target, sealed))
                            });
                            match done {
                                Ok(sent) => {
                                    published.push(sealed.revision);
                                    transitions_sent += sent;
                                }
                                Err(e) => {
                                    publish_error = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                    let done = Done {
                        generation: job.generation,
                        result,
                        published,
                        publish_error,
                        transitions_sent,
                        frame: job.frame,
                        positions: job.positions,
                        watermark: job.watermark,
                        started: job.started,
                    };
                    if done_tx.send(done).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the checkpoint writer")?;
        Ok(Durable {
            interval,
            last: Instant::now(),
            next_generation,
            jobs,
            done,
            in_flight: false,
            frame: Vec::new(),
            last_size: 0,
            saved: None,
            export,
            waiting,
            fatal: None,
        })
    }

    /// The BI exporter, for the touch rows of messages as they are applied.
    pub fn export(&mut self) -> Option<&mut Exporter> {
        self.export.as_mut()
    }

    /// Notes an export failure; the consumer stops at its next check.
    pub fn fail(&mut self, why: String) {
        tracing::error!(error = %why, "the BI export failed: stopping, so that a restart from the last checkpoint writes the lost rows again");
        self.fatal.get_or_insert(why);
    }

    /// The failure that must stop the consumer, if any: the BI export's, or a checkpoint
    /// refused because another instance writes the same state.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Whether a periodic checkpoint is due: none is being written, the interval has passed,
    /// and the state changed since the last one (an idle service writes nothing).
    pub fn due(&self, shared: &Shared) -> bool {
        !self.in_flight && self.last.elapsed() >= self.interval && !self.is_saved(shared)
    }

    /// Whether the last durable checkpoint already holds the state: the same positions and
    /// the same watermark (which moves on idle partitions without any message).
    fn is_saved(&self, shared: &Shared) -> bool {
        let Some((positions, watermark)) = &self.saved else {
            return false;
        };
        // Revisions still waiting (files or transitions that failed) are retried with the
        // next checkpoint, so one is due even when nothing else changed.
        self.waiting.is_empty()
            && *watermark == shared.engine().watermark()
            && positions == shared.partitions().positions()
    }

    /// Takes a snapshot and hands it to the writer. The caller has settled the outbox.
    ///
    /// With the BI export on, the journeys changed since the last checkpoint are written and
    /// the revision's files sealed first, under the same engine lock as the snapshot, so the
    /// files hold exactly what the checkpoint covers. A failure to seal skips the checkpoint
    /// and stops the consumer ([`Durable::fatal`]).
    pub fn begin(&mut self, shared: &Shared, outbox: &Outbox) {
        if self.fatal.is_some() {
            return;
        }
        let dead_letters = outbox.dead_letters();
        let started = Instant::now();
        let mut engine = shared.engine();
        if let Some(export) = &mut self.export {
            match export
                .changes(&mut engine, None)
                .and_then(|()| export.seal())
            {
                // A revision without files (nothing changed) has nothing to publish or send.
                Ok(sealed) if sealed.files.is_empty() => {}
                Ok(sealed) => self.waiting.push(sealed),
                Err(e) => {
                    drop(engine);
                    shared.checkpoints.failed.fetch_add(1, Ordering::Relaxed);
                    self.fail(format!("cannot write the BI files: {e}"));
                    return;
                }
            }
        }
        let positions = shared.partitions().positions().clone();
        let header = Header {
            positions: positions
                .iter()
                .map(|((topic, partition), p)| SavedPosition {
                    topic: topic.clone(),
                    partition: *partition,
                    next: p.next,
                    newest: p.newest,
                })
                .collect(),
            dlq_topic: dead_letters.topic().to_string(),
            dlq_written: dead_letters.written().into_iter().collect(),
            dlq_ahead: outbox
                .already_dead()
                .iter()
                .filter(|(topic, partition, offset)| {
                    positions
                        .get(&(topic.clone(), *partition))
                        .is_none_or(|p| *offset >= p.next)
                })
                .cloned()
                .collect(),
            export: self.waiting.clone(),
        };
        let mut frame = std::mem::take(&mut self.frame);
        reserve(&mut frame, self.last_size);
        format::start(&mut frame);
        encode(&mut frame, &header, |out| engine.snapshot(out));
        let watermark = engine.watermark();
        drop(engine);
        format::finish(&mut frame, self.next_generation);
        self.last_size = frame.len();
        shared
            .checkpoints
            .last_snapshot_us
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let job = Job {
            generation: self.next_generation,
            frame,
            publish: self.waiting.clone(),
            positions,
            watermark,
            started,
        };
        self.next_generation += 1;
        self.last = Instant::now();
        self.in_flight = true;
        if self.jobs.send(job).is_err() {
            // The writer thread is gone (it only ends with this handle): count it as failed.
            self.in_flight = false;
            shared.checkpoints.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("the checkpoint writer has stopped");
        }
    }

    /// Handles a finished write, if any: on success Kafka's committed offsets catch up.
    pub fn poll<C: ConsumerContext>(&mut self, shared: &Shared, consumer: &BaseConsumer<C>) {
        match self.done.try_recv() {
            Ok(done) => self.finish(done, shared, consumer, CommitMode::Async),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => self.in_flight = false,
        }
    }

    /// A checkpoint now, waiting until it is durable and its offsets committed (revocation,
    /// shutdown). Returns whether it was written.
    pub fn now<C: ConsumerContext>(
        &mut self,
        shared: &Shared,
        outbox: &Outbox,
        consumer: &BaseConsumer<C>,
    ) -> bool {
        if self.in_flight
            && let Ok(done) = self.done.recv()
        {
            self.finish(done, shared, consumer, CommitMode::Async);
        }
        if self.is_saved(shared)
            && let Some((positions, _)) = &self.saved
        {
            // Nothing changed since the last durable checkpoint.
            commit(consumer, positions, CommitMode::Sync);
            return true;
        }
        self.begin(shared, outbox);
        if !self.in_flight {
            return false; // nothing was handed to the writer (see `fatal`)
        }
        match self.done.recv() {
            Ok(done) => {
                let ok = done.result.is_ok();
                self.finish(done, shared, consumer, CommitMode::Sync);
                ok
            }
            Err(_) => false,
        }
    }

    fn finish<C: ConsumerContext>(
        &mut self,
        done: Done,
        shared: &Shared,
        consumer: &BaseConsumer<C>,
        mode: CommitMode,
    ) {
        self.in_flight = false;
        self.frame = done.frame;
        let counters = &shared.checkpoints;
        if done.result.is_ok() && self.export.is_some() {
            for revision in &done.published {
                if let Some(at) = self.waiting.iter().position(|s| s.revision == *revision) {
                    let sealed = self.waiting.remove(at);
                    counters.export_revision.store(*revision, Ordering::Relaxed);
                    counters
                        .export_files
                        .fetch_add(sealed.files.len() as u64, Ordering::Relaxed);
                }
            }
            counters
                .transitions_sent
                .fetch_add(done.transitions_sent, Ordering::Relaxed);
            if let Some(error) = &done.publish_error {
                tracing::error!(
                    revisions = self.waiting.len(),
                    %error,
                    "cannot publish the BI files of a durable checkpoint (or send their stage transitions); they wait and are retried after the next one"
                );
            }
            // What still waits was covered by this durable checkpoint and failed to publish.
            counters
                .export_unpublished
                .store(self.waiting.len() as u64, Ordering::Relaxed);
        }
        let took = done.started.elapsed();
        match done.result {
            Ok(bytes) => {
                counters.saved.fetch_add(1, Ordering::Relaxed);
                counters.last_bytes.store(bytes as u64, Ordering::Relaxed);
                counters
                    .last_duration_us
                    .store(took.as_micros() as u64, Ordering::Relaxed);
                counters
                    .last_success_ms
                    .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
                tracing::debug!(
                    generation = done.generation,
                    bytes,
                    ms = took.as_millis() as u64,
                    "checkpoint written"
                );
                commit(consumer, &done.positions, mode);
                self.saved = Some((done.positions, done.watermark));
            }
            Err(error) if Checkpoints::is_fenced(&error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                // Going on would mean two engines taking turns at one state: stop instead.
                tracing::error!(
                    generation = done.generation,
                    %error,
                    "checkpoint refused: stopping, since another instance writes this state"
                );
                self.fatal.get_or_insert(format!("state: {error}"));
            }
            Err(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                // The previous generation is intact; Kafka's offsets stay behind it.
                tracing::error!(
                    generation = done.generation,
                    %error,
                    "checkpoint failed: state since the last good one would be read again after a crash"
                );
            }
        }
    }
}

/// Makes room for a checkpoint of about `last` bytes, with headroom for growth, so that the
/// buffer is reallocated rarely. Fresh memory is what costs: on the machine measured, faulting
/// in 4 KiB pages cost about 15 µs each, over a second for 400 MB, every time a growing state
/// outgrew the buffer. A new buffer therefore asks for transparent huge pages (2 MiB, where the
/// kernel allows them), and grows by half again what it needs.
///
/// Returns whether it allocated. The writer thread calls it after each write, for the next
/// checkpoint, and touches the new pages there ([`prefault`]), so the consumer thread, which
/// takes the snapshot, normally finds the room ready and pays no page faults.
pub fn reserve(frame: &mut Vec<u8>, last: usize) -> bool {
    if frame.capacity() >= last + last / 10 + (4 << 20) {
        return false;
    }
    let want = last + last / 2 + (8 << 20);
    *frame = crate::mem::vec_huge(want);
    true
}

/// Writes one byte per page of `frame`'s spare room, so the kernel backs it now, on the
/// calling thread, instead of page by page under the next snapshot.
pub fn prefault(frame: &mut Vec<u8>) {
    for byte in frame.spare_capacity_mut().iter_mut().step_by(4096) {
        byte.write(0);
    }
}

/// Puts the calling thread (the checkpoint writer) at a lower CPU priority: a write that
/// competes for a core with the consumer or the broker yields to them. Linux only; elsewhere
/// (or if the call is refused) the thread keeps the default priority.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on a thread id changes only that
    // thread's nice value (Linux semantics of PRIO_PROCESS with a tid).
    let refused = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, WRITER_NICE) != 0
    };
    if refused {
        tracing::debug!("cannot lower the checkpoint writer's priority; it keeps the default");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    positions: &BTreeMap<TopicPartition, Position>,
    mode: CommitMode,
) {
    // Only partitions this member holds now: a commit outside a group generation fails
    // (and, on the mock cluster, disturbs the join); the new owner of a partition moved away
    // commits from its own checkpoint.
    let assigned = match consumer.assignment() {
        Ok(list) => list,
        Err(error) => {
            tracing::warn!(%error, "cannot read the assignment");
            return;
        }
    };
    let mut list = TopicPartitionList::with_capacity(positions.len());
    for ((topic, partition), position) in positions {
        if assigned.find_partition(topic, *partition).is_none() {
            continue;
        }
        let offset = Offset::Offset(position.next);
        if let Err(error) = list.add_partition_offset(topic, *partition, offset) {
            tracing::warn!(%error, "cannot list an offset to commit");
        }
    }
    if list.count() == 0 {
        return;
    }
    if let Err(error) = consumer.commit(&list, mode) {
        tracing::warn!(%error, "cannot commit the checkpoint's offsets");
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_rejects_garbage() {
        let header = Header {
            positions: vec![SavedPosition {
                topic: "t".into(),
                partition: 2,
                next: 41,
                newest: Some(1_767_225_600_000),
            }],
            dlq_topic: "dlq".into(),
            dlq_written: vec![(0, 7)],
            dlq_ahead: vec![("t".into(), 2, 45)],
            export: vec![Sealed {
                revision: 4,
                files: vec!["touches/date=2026-01-01/part-000000000004-000.parquet".into()],
            }],
        };
        let mut payload = Vec::new();
        encode(&mut payload, &header, |out| {
            out.extend_from_slice(b"engine")
        });
        let (back, engine) = decode(&payload).unwrap();
        assert_eq!(back, header);
        assert_eq!(engine, b"engine");
        assert_eq!(back.positions()[&("t".to_string(), 2)].next, 41);
        for cut in 0..payload.len() - 6 {
            assert!(decode(&payload[..cut]).is_err(), "cut at {cut}");
        }
    }
}
