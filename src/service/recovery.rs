//! Starting from the last good checkpoint (SPEC §6).
//!
//! Recovery loads the newest checkpoint that verifies (a torn or corrupted newer one is
//! reported and passed over), refuses state computed under other funnel settings, rebuilds
//! the engine, and reads the dead-letter topic from the ends the checkpoint recorded: the
//! letters found there were written after the checkpoint, before the crash, and reading their
//! messages again must not write them twice. Letters an earlier recovery found and the run has
//! not reached again when it checkpoints travel in the checkpoint (`dlq_ahead`): they lie
//! before its dead-letter ends, so no scan would find them again.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::ClientContext;
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::checkpoint::{Checkpoints, LocalDir, Objects, Storage};
use crate::config::{Config, ExportConfig, KafkaConfig, StateConfig, StateLocation};
use crate::engine::Engine;
use crate::export::{Exporter, Sealed, Target, highest_revision, publish};

use super::dlq::{OFFSET_HEADER, PARTITION_HEADER, TOPIC_HEADER};
use super::durable::{self, CheckpointCounters};
use super::partitions::{Position, TopicPartition};
use super::pipeline::client_config;

/// Source coordinates of a message: topic, partition, offset.
pub type Coordinates = (String, i32, i64);

/// What a start from a checkpoint resumes.
pub struct Restored {
    pub engine: Engine,
    pub positions: BTreeMap<TopicPartition, Position>,
    pub dlq_written: BTreeMap<i32, i64>,
    /// Letters the checkpoint knew to be on the topic ahead of its positions.
    pub dlq_ahead: HashSet<Coordinates>,
    pub generation: u64,
    /// The BI revisions the checkpoint covers that may not be published yet; empty if it was
    /// taken with the export off.
    pub export: Vec<Sealed>,
}

/// How long a start waits for the state directory's previous user to let go of it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The checkpoint store of `state` (or `storage` in its place), with the generation the next
/// checkpoint gets.
pub fn open(
    state: &StateConfig,
    storage: Option<Box<dyn Storage>>,
) -> Result<Option<(Checkpoints, u64)>> {
    let Some(location) = &state.location else {
        return Ok(None);
    };
    let storage: Box<dyn Storage> = match (storage, location) {
        (Some(storage), _) => storage,
        (None, StateLocation::Dir(dir)) => Box::new(
            // One process per state directory: two would take turns at one state.
            LocalDir::exclusive(dir, LOCK_WAIT)
                .with_context(|| format!("state.dir: cannot use {dir:?}"))?,
        ),
        (None, StateLocation::Url { url, options }) => {
            Box::new(Objects::open("state", url, options)?)
        }
    };
    let checkpoints = Checkpoints::new(storage, state.keep);
    let next = checkpoints
        .generations()
        .context("state: cannot list checkpoints")?
        .first()
        .map_or(1, |g| g + 1);
    Ok(Some((checkpoints, next)))
}

/// Loads the newest good checkpoint, or `None` when there is none (a first start).
pub fn restore(
    checkpoints: &Checkpoints,
    config: &Config,
    counters: &CheckpointCounters,
) -> Result<Option<Restored>> {
    let started = Instant::now();
    let Some(loaded) = checkpoints
        .latest()
        .context("state: refusing to start on state that cannot be verified; move the bad checkpoints away to start empty")?
    else {
        tracing::info!("no checkpoint: starting with empty state");
        return Ok(None);
    };
    // `latest` logged each checkpoint it passed over, and why.
    counters
        .fallbacks
        .store(loaded.skipped.len() as u64, Ordering::Relaxed);
    let (header, engine) = durable::decode(&loaded.payload)
        .with_context(|| format!("state: checkpoint generation {}", loaded.generation))?;
    let engine = Engine::restore(config, engine)
        .map_err(|e| anyhow!("state: checkpoint generation {}: {e}", loaded.generation))?;
    counters.restores.fetch_add(1, Ordering::Relaxed);
    let restored = Restored {
        engine,
        positions: header.positions(),
        dlq_written: header.dlq_written.iter().copied().collect(),
        dlq_ahead: header.dlq_ahead.into_iter().collect(),
        generation: loaded.generation,
        export: header.export,
    };
    tracing::info!(
        generation = restored.generation,
        partitions = restored.positions.len(),
        bytes = loaded.payload.len(),
        ms = started.elapsed().as_millis() as u64,
        "state restored from checkpoint"
    );
    Ok(Some(restored))
}

/// The BI export after a start: the files the checkpoint the state comes from covers are
/// published (the process may have died between the checkpoint and their publication), and
/// the next revision is above every revision already in the directory. A state restored from
/// a checkpoint taken with the export off is exported whole at the first checkpoint (its
/// touches' rows, which are written as messages are read, are not: see `docs/bi.md`).
pub fn resume_export(
    settings: &ExportConfig,
    from_checkpoint: bool,
    sealed: &[Sealed],
    engine: &mut Engine,
) -> Result<Exporter> {
    let dir = &settings.dir;
    let target = Target::open(settings).context("export.url")?;
    for sealed in sealed {
        match publish(&target, sealed) {
            Ok(()) => tracing::info!(
                revision = sealed.revision,
                files = sealed.files.len(),
                "BI files of the checkpoint published"
            ),
            Err(error) => tracing::error!(
                revision = sealed.revision,
                %error,
                "the BI files of the checkpoint are missing: queries over export.dir lack that revision's rows"
            ),
        }
    }
    let published = highest_revision(&target).context("export: cannot list the published files")?;
    let next = sealed.iter().map(|s| s.revision).fold(published, u64::max) + 1;
    engine.track_changes(from_checkpoint && sealed.is_empty());
    Exporter::open_at(settings, target, next)
        .with_context(|| format!("export.dir: cannot write {}", dir.display()))
}

/// Source coordinates of the letters on the dead-letter topic from `from` (per partition;
/// partitions not listed from their start) to the end.
pub fn dead_letters_since(
    kafka: &KafkaConfig,
    from: &BTreeMap<i32, i64>,
    timeout: Duration,
) -> Result<HashSet<Coordinates>> {
    let started = Instant::now();
    let mut config = client_config(kafka, true);
    // A group of its own, only because librdkafka wants one to assign partitions: nothing
    // is committed to it.
    config
        .set("group.id", format!("{}.recovery", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<Quiet> = config
        .create_with_context(Quiet)
        .context("cannot create the dead-letter reader")?;
    let metadata = consumer
        .fetch_metadata(Some(&kafka.dlq_topic), timeout)
        .with_context(|| format!("cannot read the metadata of {}", kafka.dlq_topic))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("kafka.dlq_topic: {} has no partitions", kafka.dlq_topic);
    }
    let mut list = TopicPartitionList::new();
    for &p in &partitions {
        let offset = from
            .get(&p)
            .map_or(Offset::Beginning, |&o| Offset::Offset(o));
        list.add_partition_offset(&kafka.dlq_topic, p, offset)?;
    }
    consumer.assign(&list)?;
    let mut open: HashSet<i32> = partitions.iter().copied().collect();
    let mut found = HashSet::new();
    while !open.is_empty() {
        if started.elapsed() > timeout {
            bail!(
                "cannot read {} to its end within {timeout:?} (still open: {open:?})",
                kafka.dlq_topic
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(error)) => tracing::warn!(%error, "reading the dead-letter topic"),
            Some(Ok(message)) => {
                if let Some(coordinates) = source_of(&message) {
                    found.insert(coordinates);
                }
            }
        }
    }
    tracing::info!(
        ?from,
        letters = found.len(),
        ms = started.elapsed().as_millis() as u64,
        "dead letters written after the checkpoint found"
    );
    Ok(found)
}

/// The reader's context: reaching the end of a partition is what it waits for, not an error.
struct Quiet;

impl ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        let end = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !end {
            tracing::warn!(target: "librdkafka", %error, "{reason}");
        }
    }
}

impl ConsumerContext for Quiet {}

fn source_of(message: &impl Message) -> Option<Coordinates> {
    let headers = message.headers()?;
    let (mut topic, mut partition, mut offset) = (None, None, None);
    for header in headers.iter() {
        let value = header.value.and_then(|v| std::str::from_utf8(v).ok());
        match header.key {
            TOPIC_HEADER => topic = value.map(str::to_string),
            PARTITION_HEADER => partition = value.and_then(|v| v.parse().ok()),
            OFFSET_HEADER => offset = value.and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    Some((topic?, partition?, offset?))
}
