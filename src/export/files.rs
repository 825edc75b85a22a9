//! Parquet files of the three tables, written into a staging area and published in one step.
//!
//! Layout under the export directory:
//!
//! ```text
//! touches/date=2026-03-01/part-000000000042-000.parquet      published, never rewritten
//! _staging/r000000000043/journeys/date=…/part-…-000.parquet  complete, not published yet
//! ```
//!
//! Rows are collected per table and date (the UTC date of the row's own time), encoded into a
//! file per partition as they come, in row groups of `row_group_rows`, and a file rolls over
//! at `max_file_bytes`. Encoded rows waiting for their row group are held in memory; past
//! `memory_budget_bytes` the biggest partitions cut their row groups early. [`Files::seal`]
//! closes and fsyncs every file of the revision; [`publish`] renames them to their final names
//! (deterministic: table, date, revision, sequence) once the checkpoint that covers them is
//! durable. A published name therefore only ever shows a whole file, and a crash before
//! publication leaves only staging files, which the next start removes.

use std::collections::BTreeMap;
#[cfg(not(target_os = "linux"))]
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::tables::{Rows, Table};
use crate::config::ExportConfig;
use crate::time::{Millis, format_date};

/// Rows collected before they are encoded as one Arrow batch.
const BATCH_ROWS: usize = 8192;
/// Rough size of a row waiting in the builders, for the memory budget.
const ROW_BYTES: usize = 160;
/// Files open at once at most; the least recently used partition's file is finished first.
/// A backfill over years of history has thousands of date partitions.
const MAX_OPEN: usize = 64;
const STAGING: &str = "_staging";

/// The files of one revision, complete and durable under their staging names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sealed {
    pub revision: u64,
    /// Final names, relative to the export directory.
    pub files: Vec<String>,
}

struct Part {
    rows: Rows,
    writer: Option<ArrowWriter<File>>,
    /// The final name of the file being written.
    name: String,
    /// When rows last went into the file, for [`MAX_OPEN`].
    used: u64,
}

pub struct Files {
    dir: PathBuf,
    revision: u64,
    props: WriterProperties,
    max_file_bytes: usize,
    memory_budget: usize,
    parts: BTreeMap<(Table, i64), Part>,
    /// Files of this revision per partition so far (their sequence numbers).
    sequence: BTreeMap<(Table, i64), u32>,
    sealed: Vec<String>,
    waiting_rows: usize,
    open: usize,
    clock: u64,
}

impl Files {
    /// Writes revision `revision` on: staging leftovers of earlier attempts are removed (they
    /// were never published, and the state that made them is being read again).
    pub fn open(config: &ExportConfig, revision: u64) -> io::Result<Files> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir)?;
        match fs::remove_dir_all(dir.join(STAGING)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("a valid level"),
            ))
            .set_max_row_group_row_count(Some(config.row_group_rows))
            .set_created_by(format!("spiral {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Files {
            dir,
            revision,
            props,
            max_file_bytes: config.max_file_bytes as usize,
            memory_budget: config.memory_budget_bytes,
            parts: BTreeMap::new(),
            sequence: BTreeMap::new(),
            sealed: Vec::new(),
            waiting_rows: 0,
            open: 0,
            clock: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The revision the rows being written will carry.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Adds rows to `table`'s partition for the date of `time`.
    pub fn append(
        &mut self,
        table: Table,
        time: Millis,
        add: impl FnOnce(&mut Rows),
    ) -> io::Result<()> {
        let key = (table, time.div_euclid(86_400_000));
        let part = self.parts.entry(key).or_insert_with(|| Part {
            rows: Rows::new(table),
            writer: None,
            name: String::new(),
            used: 0,
        });
        let before = part.rows.len();
        add(&mut part.rows);
        self.waiting_rows += part.rows.len() - before;
        if part.rows.len() >= BATCH_ROWS {
            self.encode(key)?;
            self.keep_to_budget()?;
        }
        Ok(())
    }

    /// Encodes the waiting rows of a partition into its file, rolling the file over when it
    /// is full.
    fn encode(&mut self, key: (Table, i64)) -> io::Result<()> {
        if self.parts[&key].rows.is_empty() {
            return Ok(());
        }
        if self.parts[&key].writer.is_none() && self.open >= MAX_OPEN {
            let oldest = self
                .parts
                .iter()
                .filter(|(_, p)| p.writer.is_some())
                .min_by_key(|(_, p)| p.used)
                .map(|(&k, _)| k)
                .expect("files are open");
            let part = self.parts.get_mut(&oldest).expect("listed");
            close(part, &mut self.sealed)?;
            self.open -= 1;
        }
        self.clock += 1;
        let part = self.parts.get_mut(&key).expect("the partition exists");
        part.used = self.clock;
        if part.writer.is_none() {
            let seq = self.sequence.entry(key).or_default();
            part.name = format!(
                "{}/date={}/part-{:012}-{:03}.parquet",
                key.0.name(),
                format_date(key.1 * 86_400_000),
                self.revision,
                seq
            );
            *seq += 1;
            let path = staging(&self.dir, self.revision).join(&part.name);
            fs::create_dir_all(path.parent().expect("a file has a directory"))?;
            let file = File::create(&path)?;
            let writer = ArrowWriter::try_new(file, key.0.schema(), Some(self.props.clone()))
                .map_err(io::Error::other)?;
            part.writer = Some(writer);
            self.open += 1;
        }
        self.waiting_rows -= part.rows.len();
        let batch = part.rows.finish(key.0);
        let writer = part.writer.as_mut().expect("opened above");
        writer.write(&batch).map_err(io::Error::other)?;
        if writer.bytes_written() + writer.in_progress_size() >= self.max_file_bytes {
            close(part, &mut self.sealed)?;
            self.open -= 1;
        }
        Ok(())
    }

    /// Bytes held in memory: encoded rows of unfinished row groups and rows not encoded yet.
    pub fn memory(&self) -> usize {
        let encoded: usize = self
            .parts
            .values()
            .filter_map(|p| p.writer.as_ref())
            .map(ArrowWriter::memory_size)
            .sum();
        encoded + self.waiting_rows * ROW_BYTES
    }

    /// Past the budget, the partitions holding the most cut their row groups now.
    fn keep_to_budget(&mut self) -> io::Result<()> {
        if self.memory() <= self.memory_budget {
            return Ok(());
        }
        let mut held: Vec<((Table, i64), usize)> = self
            .parts
            .iter()
            .map(|(&k, p)| {
                let encoded = p.writer.as_ref().map_or(0, ArrowWriter::memory_size);
                (k, encoded + p.rows.len() * ROW_BYTES)
            })
            .collect();
        held.sort_unstable_by_key(|h| std::cmp::Reverse(h.1));
        for (key, _) in held {
            if self.memory() <= self.memory_budget / 2 {
                break;
            }
            self.encode(key)?;
            if let Some(writer) = &mut self.parts.get_mut(&key).expect("listed").writer {
                writer.flush().map_err(io::Error::other)?;
            }
        }
        Ok(())
    }

    /// Closes every file of the revision, durably, and starts the next revision.
    pub fn seal(&mut self) -> io::Result<Sealed> {
        let keys: Vec<_> = self.parts.keys().copied().collect();
        for key in keys {
            // One partition at a time: encode what waits, finish the file.
            self.encode(key)?;
            let part = self.parts.get_mut(&key).expect("listed");
            if part.writer.is_some() {
                close(part, &mut self.sealed)?;
                self.open -= 1;
            }
        }
        self.parts.clear();
        self.sequence.clear();
        let mut files = std::mem::take(&mut self.sealed);
        files.sort();
        let root = staging(&self.dir, self.revision);
        sync(&root, &files)?;
        let sealed = Sealed {
            revision: self.revision,
            files,
        };
        self.revision += 1;
        Ok(sealed)
    }
}

/// Finishes the partition's file (its footer), if one is open. [`sync`] makes it durable.
fn close(part: &mut Part, sealed: &mut Vec<String>) -> io::Result<()> {
    if let Some(writer) = part.writer.take() {
        writer.into_inner().map_err(io::Error::other)?;
        sealed.push(std::mem::take(&mut part.name));
    }
    Ok(())
}

/// Makes `files` under `root` durable, with their directory entries. On Linux one `syncfs`
/// of the file system does it: a backfill writes thousands of small date partitions, and an
/// fsync each cost seconds.
fn sync(root: &Path, files: &[String]) -> io::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let dir = File::open(root)?;
        // SAFETY: `syncfs` only reads the descriptor, which `dir` keeps open.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for name in files {
            File::open(root.join(name))?.sync_all()?;
        }
        for dir in directories(root, files) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn staging(dir: &Path, revision: u64) -> PathBuf {
    dir.join(STAGING).join(format!("r{revision:012}"))
}

/// Every directory that holds one of `files` under `root`, and the ones above them up to it.
#[cfg(not(target_os = "linux"))]
fn directories(root: &Path, files: &[String]) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for name in files {
        let mut path = root.join(name);
        while path.pop() && path.starts_with(root) {
            dirs.insert(path.clone());
        }
    }
    dirs
}

/// Moves a sealed revision's files to their final names. Idempotent: a recovery calls it
/// again for the revision of the checkpoint it starts from, and files already moved are
/// skipped.
pub fn publish(dir: &Path, sealed: &Sealed) -> io::Result<()> {
    let root = staging(dir, sealed.revision);
    for name in &sealed.files {
        let (from, to) = (root.join(name), dir.join(name));
        match fs::metadata(&from) {
            Ok(_) => {
                fs::create_dir_all(to.parent().expect("a file has a directory"))?;
                fs::rename(&from, &to)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && to.exists() => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("staged file {} of revision {}: {e}", name, sealed.revision),
                ));
            }
        }
    }
    sync(dir, &sealed.files)?;
    match fs::remove_dir_all(&root) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The highest revision among the published files under `dir` (0 when there are none), so
/// that a start without a checkpoint never writes a revision that older files already hold.
pub fn highest_revision(dir: &Path) -> io::Result<u64> {
    let mut highest = 0;
    for table in Table::ALL {
        let Ok(dates) = fs::read_dir(dir.join(table.name())) else {
            continue;
        };
        for date in dates {
            for file in fs::read_dir(date?.path())? {
                let name = file?.file_name();
                let revision = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("part-"))
                    .and_then(|n| n.split('-').next())
                    .and_then(|r| r.parse::<u64>().ok());
                highest = highest.max(revision.unwrap_or(0));
            }
        }
    }
    Ok(highest)
}
