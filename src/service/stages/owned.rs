//! The stage partitions an instance owns, each with its own checkpoints: restored when the
//! group assigns the partition, written every `state.interval`, before it is revoked and at
//! shutdown. A partition's state moves between instances through them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};

use crate::checkpoint::{Checkpoints, Part, Storage};
use crate::codec::{Reader, Writer};
use crate::config::Config;
use crate::engine::{Engine, SnapshotError};
use crate::service::durable::CheckpointCounters;
use crate::summary::Summary;
use crate::topology::{Place, Resolve};

/// Version of the payload around a stage's snapshot.
const PAYLOAD_VERSION: u8 = 1;

/// A stage whose state a checkpoint can hold.
pub trait Stage: Sized {
    fn snapshot(&self, out: &mut Vec<u8>);
    fn restore(
        config: &Config,
        touches_partitions: u32,
        bytes: &[u8],
    ) -> Result<Self, SnapshotError>;
    fn fresh(config: &Config, touches_partitions: u32) -> Result<Self, String>;
    fn engine(&self) -> &Engine;
}

impl Stage for Resolve {
    fn snapshot(&self, out: &mut Vec<u8>) {
        Resolve::snapshot(self, out);
    }

    fn restore(config: &Config, partitions: u32, bytes: &[u8]) -> Result<Self, SnapshotError> {
        Resolve::restore(config, partitions, bytes)
    }

    fn fresh(config: &Config, partitions: u32) -> Result<Self, String> {
        Resolve::new(config, partitions)
    }

    fn engine(&self) -> &Engine {
        Resolve::engine(self)
    }
}

impl Stage for Place {
    fn snapshot(&self, out: &mut Vec<u8>) {
        Place::snapshot(self, out);
    }

    fn restore(config: &Config, _: u32, bytes: &[u8]) -> Result<Self, SnapshotError> {
        Place::restore(config, bytes)
    }

    fn fresh(config: &Config, _: u32) -> Result<Self, String> {
        Place::new(config)
    }

    fn engine(&self) -> &Engine {
        Place::engine(self)
    }
}

/// One owned stage partition.
pub struct Owner<T> {
    pub stage: T,
    /// The offset after the last record of its input partition it reflects.
    pub next: i64,
    /// Stage B: where the dead-letter topic ended after its letters (per DLQ partition).
    pub dlq_written: BTreeMap<i32, i64>,
    /// Its metrics label and checkpoint prefix (`events-0`, `touches-3`).
    pub name: String,
    checkpoints: Checkpoints,
    generation: u64,
}

impl<T: Stage> Owner<T> {
    /// The partition's state from its newest good checkpoint, or empty when it has none.
    pub fn open(
        root: &Arc<dyn Storage>,
        name: &str,
        keep: usize,
        config: &Config,
        touches_partitions: u32,
        counters: &CheckpointCounters,
    ) -> Result<Owner<T>> {
        let checkpoints = Checkpoints::new(Box::new(Part::new(root.clone(), name)), keep);
        let newest = checkpoints
            .generations()
            .with_context(|| format!("state: cannot list the checkpoints of {name}"))?
            .first()
            .copied()
            .unwrap_or(0);
        let loaded = checkpoints.latest().with_context(|| {
            format!(
                "state: {name}: refusing to take the partition on state that cannot be verified"
            )
        })?;
        let mut owner = Owner {
            stage: T::fresh(config, touches_partitions).map_err(|e| anyhow!(e))?,
            next: 0,
            dlq_written: BTreeMap::new(),
            name: name.to_string(),
            checkpoints,
            generation: newest + 1,
        };
        let Some(loaded) = loaded else {
            tracing::info!(partition = name, "no checkpoint: starting with empty state");
            return Ok(owner);
        };
        let started = Instant::now();
        counters
            .fallbacks
            .fetch_add(loaded.skipped.len() as u64, Ordering::Relaxed);
        let fail =
            |e: SnapshotError| anyhow!("state: {name} generation {}: {e}", loaded.generation);
        let mut r = Reader::new(&loaded.payload);
        r.section("stage checkpoint");
        let version = r.u8().map_err(fail)?;
        if version != PAYLOAD_VERSION {
            return Err(anyhow!(
                "state: {name} generation {}: payload version {version}, this build reads {PAYLOAD_VERSION}",
                loaded.generation
            ));
        }
        owner.next = r.i64().map_err(fail)?;
        for _ in 0..r.len(12).map_err(fail)? {
            let partition = r.u32().map_err(fail)? as i32;
            let next = r.i64().map_err(fail)?;
            owner.dlq_written.insert(partition, next);
        }
        owner.stage =
            T::restore(config, touches_partitions, r.bytes().map_err(fail)?).map_err(fail)?;
        r.finish().map_err(fail)?;
        counters.restores.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            partition = name,
            generation = loaded.generation,
            next = owner.next,
            ms = started.elapsed().as_millis() as u64,
            "partition state restored"
        );
        Ok(owner)
    }

    /// Writes the next generation. `Ok(false)`: fenced, another instance has taken the
    /// partition (the group moved it while this one was busy and had not heard yet); its
    /// caller drops the partition, whose state is the new owner's now.
    pub fn save(&mut self, counters: &CheckpointCounters) -> Result<bool> {
        let started = Instant::now();
        let mut snapshot = Vec::new();
        self.stage.snapshot(&mut snapshot);
        let mut payload = Vec::with_capacity(snapshot.len() + 64);
        let mut w = Writer::new(&mut payload);
        w.u8(PAYLOAD_VERSION);
        w.i64(self.next);
        w.len(self.dlq_written.len());
        for (&partition, &next) in &self.dlq_written {
            w.u32(partition as u32);
            w.i64(next);
        }
        w.bytes(&snapshot);
        let saved = self.checkpoints.save(self.generation, &payload);
        match saved {
            Ok(bytes) => {
                self.generation += 1;
                let now = crate::service::durable::unix_ms(std::time::SystemTime::now());
                counters.last_success_ms.store(now, Ordering::Relaxed);
                counters.last_bytes.store(bytes as u64, Ordering::Relaxed);
                counters
                    .last_duration_us
                    .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                counters.saved.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(error) if Checkpoints::is_fenced(&error) => {
                tracing::warn!(
                    partition = %self.name,
                    %error,
                    "the partition was taken over by another instance: dropping it here"
                );
                Ok(false)
            }
            Err(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                Err(anyhow!("state: cannot checkpoint {}: {error}", self.name))
            }
        }
    }
}

/// Everything one instance owns: stage B when it holds the events partition, and the
/// journeys of the touches partitions it holds.
#[derive(Default)]
pub struct Owned {
    pub resolve: Option<Owner<Resolve>>,
    pub journeys: BTreeMap<i32, Owner<Place>>,
}

impl Owned {
    /// The summary of what this instance owns; `empty` (the configured funnels, all zero)
    /// when it owns nothing. Summed over instances, it is the stream's.
    pub fn summary(&self, empty: &Summary) -> Summary {
        let mut summary = empty.clone();
        for engine in self.engines().map(|(_, e)| e) {
            summary
                .add(&engine.summary())
                .expect("every stage runs the configured funnels");
        }
        summary
    }

    pub fn engines(&self) -> impl Iterator<Item = (&str, &Engine)> {
        self.resolve
            .iter()
            .map(|o| (o.name.as_str(), o.stage.engine()))
            .chain(
                self.journeys
                    .values()
                    .map(|o| (o.name.as_str(), o.stage.engine())),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::LocalDir;

    const CONFIG: &str = r#"
[[funnel]]
name = "f"
stages = ["a", "b"]
conversion_window = "1d"
"#;

    #[test]
    fn a_partition_taken_over_is_fenced_for_its_old_owner_and_resumes_at_its_offset() {
        let config = Config::parse(CONFIG, "t.toml").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root: Arc<dyn Storage> = Arc::new(LocalDir::new(dir.path()).unwrap());
        let counters = CheckpointCounters::default();
        let open = || Owner::<Place>::open(&root, "touches-2", 3, &config, 4, &counters).unwrap();
        let mut old = open();
        old.next = 40;
        assert!(old.save(&counters).unwrap());
        // The group moves the partition; its new owner resumes where the old one saved.
        let mut new = open();
        assert_eq!(new.next, 40);
        new.next = 55;
        assert!(new.save(&counters).unwrap());
        // The old owner, which had not heard, may not write over it.
        assert!(!old.save(&counters).unwrap());
        assert_eq!(open().next, 55);
        // Another partition's generations are its own.
        let other = Owner::<Place>::open(&root, "touches-3", 3, &config, 4, &counters).unwrap();
        assert_eq!(other.next, 0);
        assert_eq!(counters.restores.load(Ordering::Relaxed), 2);
    }
}
