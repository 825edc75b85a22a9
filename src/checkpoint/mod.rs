//! Durable checkpoints (SPEC §6, issue #4): generations of a state blob in a [`Storage`],
//! each verified before it is believed.
//!
//! - [`format`] frames a payload with its generation and a checksum.
//! - [`storage`]: a local directory or an object store, both written atomically.
//!
//! [`Checkpoints::save`] writes generation `g` under a name that sorts by generation (the
//! storage makes the write atomic and durable), then deletes all but the newest `keep`. It does
//! not read the file back: that doubled the I/O and the memory of every checkpoint, and the
//! checksum is verified where it matters, when a checkpoint is loaded. [`Checkpoints::latest`] returns
//! the newest generation that verifies, and names every newer one it had to pass over: a
//! torn or corrupted checkpoint makes Spiral fall back to an older one and say so, never run
//! on wrong state.
//!
//! One writer per state location: a generation is created, never replaced, and a save that
//! finds its generation taken, or a newer one present, fails with [`Checkpoints::FENCED`]
//! instead of writing. The service stops on it: another instance writes here, and two engines
//! taking turns at one state would each resume the other's numbers.

pub mod format;
pub mod storage;

use std::io;

pub use format::Corrupt;
pub use storage::{FullDisk, LocalDir, Objects, Part, Storage};

const PREFIX: &str = "checkpoint-";
const SUFFIX: &str = ".bin";

/// A checkpoint that verified, and the newer ones that did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub generation: u64,
    pub payload: Vec<u8>,
    /// Newer checkpoints passed over, with why (newest first).
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Checkpoints {
    storage: Box<dyn Storage>,
    keep: usize,
    /// The store cannot create exclusively (an S3 endpoint without conditional writes): only
    /// the check for newer generations guards it, and that was said once.
    unfenced: std::sync::atomic::AtomicBool,
}

impl Checkpoints {
    /// Keeps the newest `keep` generations (at least 2, so that one bad write never leaves
    /// nothing to fall back on).
    pub fn new(storage: Box<dyn Storage>, keep: usize) -> Checkpoints {
        Checkpoints {
            storage,
            keep: keep.max(2),
            unfenced: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The start of the message of a save refused because another writer got there first.
    pub const FENCED: &str = "another writer";

    /// Whether `error` is a save refused because another writer got there first
    /// ([`Checkpoints::save_frame`]).
    pub fn is_fenced(error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::AlreadyExists
            && error.to_string().starts_with(Checkpoints::FENCED)
    }

    pub fn name(generation: u64) -> String {
        format!("{PREFIX}{generation:020}{SUFFIX}")
    }

    fn generation_of(name: &str) -> Option<u64> {
        name.strip_prefix(PREFIX)?
            .strip_suffix(SUFFIX)?
            .parse()
            .ok()
    }

    /// Generations present, newest first.
    pub fn generations(&self) -> io::Result<Vec<u64>> {
        let mut found: Vec<u64> = self
            .storage
            .list()?
            .iter()
            .filter_map(|n| Checkpoints::generation_of(n))
            .collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        Ok(found)
    }

    /// Writes generation `generation`, then prunes old ones. On error the previous
    /// generations are untouched.
    pub fn save(&self, generation: u64, payload: &[u8]) -> io::Result<usize> {
        self.save_frame(generation, &format::encode(generation, payload))
    }

    /// [`Checkpoints::save`] of a frame already built with [`format::start`] and
    /// [`format::finish`] for `generation`.
    ///
    /// Fails with [`io::ErrorKind::AlreadyExists`] and a message starting with
    /// [`Checkpoints::FENCED`] when generation `generation` or a newer one exists: this
    /// process numbers its generations above every one it found at start, so another
    /// process wrote them.
    pub fn save_frame(&self, generation: u64, bytes: &[u8]) -> io::Result<usize> {
        let fenced = |found: u64| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} wrote checkpoint generation {found} where this process was to write                      {generation}: two Spiral instances share this state location",
                    Checkpoints::FENCED
                ),
            )
        };
        let mut generations = self.generations()?;
        if let Some(&newest) = generations.first()
            && newest >= generation
        {
            return Err(fenced(newest));
        }
        let name = Checkpoints::name(generation);
        match self.storage.create(&name, bytes) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(fenced(generation)),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                if !self
                    .unfenced
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        error = %e,
                        "the state store cannot create objects exclusively, so two instances \
                         writing the same state location are caught only between writes \
                         (S3 and MinIO have them with state.options.conditional_put = \"etag\", \
                         the default)"
                    );
                }
                self.storage.put(&name, bytes)?;
            }
            other => other?,
        }
        // Newer than every generation listed above, so first: no second listing needed.
        generations.insert(0, generation);
        for old in generations.into_iter().skip(self.keep) {
            self.storage.delete(&Checkpoints::name(old))?;
        }
        Ok(bytes.len())
    }

    /// The newest checkpoint that verifies, or `None` when there is none at all. An I/O error
    /// reading one counts as unusable too (and is named in `skipped`).
    pub fn latest(&self) -> io::Result<Option<Loaded>> {
        let mut skipped = Vec::new();
        for generation in self.generations()? {
            let name = Checkpoints::name(generation);
            let bytes = match self.storage.get(&name) {
                Ok(bytes) => bytes,
                Err(e) => {
                    skipped.push((name, format!("cannot read: {e}")));
                    continue;
                }
            };
            match format::decode(&bytes) {
                Ok((stored, _)) if stored != generation => skipped.push((
                    name,
                    Corrupt::Generation {
                        named: generation,
                        stored,
                    }
                    .to_string(),
                )),
                Ok((_, payload)) => {
                    for (name, why) in &skipped {
                        tracing::error!(
                            checkpoint = %name,
                            problem = %why,
                            "unusable checkpoint: falling back to an older one"
                        );
                    }
                    return Ok(Some(Loaded {
                        generation,
                        payload: payload.to_vec(),
                        skipped,
                    }));
                }
                Err(corrupt) => skipped.push((name, corrupt.to_string())),
            }
        }
        if !skipped.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "no usable checkpoint: {}",
                    skipped
                        .iter()
                        .map(|(n, why)| format!("{n}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
