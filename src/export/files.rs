//! Parquet files of the three tables, written into a staging area and published in one step.
//!
//! Layout under the export directory:
//!
//! ```text
//! touches/date=2026-03-01/part-000000000042-000.parquet      published, never rewritten
//! _staging/r000000000043/journeys/date=…/part-…-000.parquet  complete, not published yet
//! ```
//!
//! Rows are collected per table and date partition (see `docs/bi.md` for which date), handed
//! in batches to a writer thread that encodes them into a file per partition (ZSTD), in row
//! groups of `row_group_rows`; a file rolls over at `max_file_bytes`. `memory_budget_bytes` is
//! split in quarters: rows in the builders, batches on their way to the writer, open files
//! (about [`OPEN_FILE_BYTES`] each, at most [`MAX_OPEN`]; the least recently used closes
//! first), and row groups being encoded (past it the biggest partitions cut theirs early). [`Files::seal`]
//! closes and fsyncs every file of the revision; [`super::publish`] moves them to their final names
//! (deterministic: table, date, revision, sequence) once the checkpoint that covers them is
//! durable. A published name therefore only ever shows a whole file, and a crash before
//! publication leaves only staging files, which the next start removes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::tables::{Rows, Table};
use super::target::{Sealed, Target, schema_files, staging, sync};
use crate::config::ExportConfig;
use crate::time::{Millis, format_date};

/// Rows collected before they are encoded as one Arrow batch.
const BATCH_ROWS: usize = 8192;
/// Rough size of a row waiting in the builders, for the memory budget.
const ROW_BYTES: usize = 160;
/// Most bytes of rows waiting in the builders, over all partitions.
const WAITING_BYTES: usize = 16 << 20;
/// Files open at once at most; the least recently used partition's file is finished first.
/// A backfill over years of history has thousands of date partitions.
const MAX_OPEN: usize = 64;
/// Memory an open file holds whatever its rows: an encoder and a ZSTD context per column.
/// Measured: 56 more open touch files, 85 MB more resident.
const OPEN_FILE_BYTES: usize = 3 << 19;
const DAY: i64 = 86_400_000;
/// Parquet column paths with (nearly) as many values as rows: a dictionary overflows and
/// falls back to plain encoding after hashing every value for nothing (measured: journeys
/// encode 38 % faster without, files no bigger), and min/max prune nothing.
const HIGH_CARDINALITY: &[&str] = &[
    "event_id",
    "origin_offset",
    "entering_event_id",
    "event_ids.list.item",
    "account_id",
    "contact_id",
    "anonymous_id",
];

type Key = (Table, i64);

/// What the caller's thread hands the writer thread.
enum Job {
    /// Rows of a partition, and the bytes they hold in memory.
    Batch(Key, RecordBatch, usize),
    /// Close every file of the revision and answer with its names; `durable`: fsynced too.
    Seal { durable: bool },
}

/// The caller's side: rows are collected into Arrow builders per partition, and full batches
/// go to a thread of their own that encodes and compresses them into Parquet (most of the
/// export's cost), so that the consumer thread pays little more than copying the fields.
pub struct Files {
    target: Target,
    revision: u64,
    /// Bytes of rows kept in the builders before every partition hands its rows over.
    waiting_budget: usize,
    parts: BTreeMap<Key, Rows>,
    waiting_rows: usize,
    jobs: Sender<Job>,
    /// Bytes of batches handed over and not yet encoded.
    in_flight: Arc<InFlight>,
    sealed: Receiver<io::Result<Sealed>>,
}

/// Bounds the batches on their way to the writer thread by their bytes, not their number: a
/// flush of hundreds of small partitions (a day's late touches each) must not stop the
/// caller until the writer has worked through all but a few of them.
struct InFlight {
    /// Bytes in flight, and whether the writer thread has ended (then nobody waits).
    held: Mutex<(usize, bool)>,
    drained: Condvar,
    limit: usize,
}

impl InFlight {
    fn new(limit: usize) -> InFlight {
        InFlight {
            held: Mutex::new((0, false)),
            drained: Condvar::new(),
            limit,
        }
    }

    /// Waits until the batches in flight are under the limit, then counts `bytes` more.
    fn add(&self, bytes: usize) {
        let mut held = self.held.lock().expect("never poisoned");
        while held.0 > self.limit && !held.1 {
            held = self.drained.wait(held).expect("never poisoned");
        }
        held.0 += bytes;
    }

    fn done(&self, bytes: usize) {
        self.held.lock().expect("never poisoned").0 -= bytes;
        self.drained.notify_one();
    }
}

/// Marks the writer thread's end, however it ends, so that the caller gets an error instead
/// of waiting for it forever.
struct Ended(Arc<InFlight>);

impl Drop for Ended {
    fn drop(&mut self) {
        if let Ok(mut held) = self.0.held.lock() {
            held.1 = true;
        }
        self.0.drained.notify_all();
    }
}

impl Files {
    /// Writes revision `revision` on: staging leftovers of earlier attempts are removed (they
    /// were never published, and the state that made them is being read again).
    #[cfg(test)]
    pub fn open(config: &ExportConfig, revision: u64) -> io::Result<Files> {
        Files::open_at(config, Target::open(config)?, revision)
    }

    /// [`Files::open`] with a target already opened (its store client must not be dropped
    /// inside async code, where a start may open it).
    pub fn open_at(config: &ExportConfig, target: Target, revision: u64) -> io::Result<Files> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir)?;
        target.clear_staging()?;
        let mut props = WriterProperties::builder().set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("a valid level"),
        ));
        // Row-group statistics serve pruning; page-level ones cost more than they save here.
        props = props.set_statistics_enabled(EnabledStatistics::Chunk);
        // See HIGH_CARDINALITY.
        for column in HIGH_CARDINALITY {
            let path = ColumnPath::new(column.split('.').map(str::to_string).collect());
            props = props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_statistics_enabled(path, EnabledStatistics::None);
        }
        let props = props
            .set_max_row_group_row_count(Some(config.row_group_rows))
            .set_created_by(format!("spiral {}", env!("CARGO_PKG_VERSION")))
            .build();
        schema_files(&target, &props)?;
        let mut writer = Writer {
            target: target.clone(),
            dir: dir.clone(),
            revision,
            props,
            max_file_bytes: config.max_file_bytes as usize,
            memory_budget: config.memory_budget_bytes / 4,
            max_open: (config.memory_budget_bytes / 4 / OPEN_FILE_BYTES).clamp(4, MAX_OPEN),
            open: BTreeMap::new(),
            sequence: BTreeMap::new(),
            sealed: Vec::new(),
            clock: 0,
            error: None,
        };
        // The budget in quarters: rows in the builders, batches on their way to the writer,
        // open files, and row groups being encoded.
        let waiting_budget = (config.memory_budget_bytes / 4).min(WAITING_BYTES);
        let in_flight = Arc::new(InFlight::new(waiting_budget));
        let (jobs, job_rx) = channel::<Job>();
        let (sealed_tx, sealed): (SyncSender<_>, _) = sync_channel(1);
        let writer_in_flight = in_flight.clone();
        std::thread::Builder::new()
            .name("spiral-export".into())
            .spawn(move || {
                let _ended = Ended(writer_in_flight.clone());
                let mut busy = std::time::Duration::ZERO;
                for job in job_rx {
                    let started = std::time::Instant::now();
                    match job {
                        Job::Batch(key, batch, bytes) => {
                            writer.batch(key, &batch);
                            drop(batch);
                            writer_in_flight.done(bytes);
                            busy += started.elapsed();
                        }
                        Job::Seal { durable } => {
                            tracing::debug!(
                                busy_ms = busy.as_millis() as u64,
                                "export writer before seal"
                            );
                            if sealed_tx.send(writer.seal(durable)).is_err() {
                                break;
                            }
                        }
                    }
                }
            })?;
        Ok(Files {
            target,
            revision,
            waiting_budget,
            parts: BTreeMap::new(),
            waiting_rows: 0,
            jobs,
            in_flight,
            sealed,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
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
        let key = (table, time.div_euclid(DAY));
        let rows = self.parts.entry(key).or_insert_with(|| Rows::new(table));
        let before = rows.len();
        add(rows);
        self.waiting_rows += rows.len() - before;
        if rows.len() >= BATCH_ROWS {
            self.send(key)?;
        }
        if self.waiting_rows * ROW_BYTES > self.waiting_budget {
            // Many partitions with a few rows each (a day's touches, a backfill over years):
            // hand them all over, so the writer thread works while rows come in.
            let keys: Vec<Key> = self.parts.keys().copied().collect();
            for key in keys {
                self.send(key)?;
            }
        }
        Ok(())
    }

    fn send(&mut self, key: Key) -> io::Result<()> {
        let rows = self.parts.get_mut(&key).expect("the partition exists");
        if rows.is_empty() {
            return Ok(());
        }
        self.waiting_rows -= rows.len();
        let batch = rows.finish(key.0);
        let bytes = batch.get_array_memory_size();
        self.in_flight.add(bytes);
        self.jobs
            .send(Job::Batch(key, batch, bytes))
            .map_err(|_| io::Error::other("the export writer has stopped"))
    }

    /// Closes every file of the revision and starts the next revision; `durable`: the files
    /// are fsynced too (a checkpoint will name them), which a caller that publishes at once
    /// leaves to the publication. An error loses the revision's rows: the caller must not go
    /// on as if they were written.
    pub fn seal(&mut self, durable: bool) -> io::Result<Sealed> {
        let keys: Vec<Key> = self.parts.keys().copied().collect();
        for key in keys {
            self.send(key)?;
        }
        self.parts.clear();
        self.revision += 1;
        self.jobs
            .send(Job::Seal { durable })
            .map_err(|_| io::Error::other("the export writer has stopped"))?;
        self.sealed
            .recv()
            .map_err(|_| io::Error::other("the export writer has stopped"))?
    }
}

/// An open file of one partition.
struct Open {
    writer: ArrowWriter<File>,
    /// Its final name.
    name: String,
    /// When rows last went into it: the least recently used file is closed first.
    used: u64,
}

/// The writer thread's side: Parquet files in the staging area.
struct Writer {
    target: Target,
    dir: PathBuf,
    revision: u64,
    props: WriterProperties,
    max_file_bytes: usize,
    memory_budget: usize,
    max_open: usize,
    open: BTreeMap<Key, Open>,
    /// Files of this revision per partition so far (their sequence numbers).
    sequence: BTreeMap<Key, u32>,
    sealed: Vec<String>,
    clock: u64,
    /// The first error of this revision; the rest of it is dropped, and sealing reports it.
    error: Option<io::Error>,
}

impl Writer {
    fn batch(&mut self, key: Key, batch: &RecordBatch) {
        if self.error.is_none()
            && let Err(e) = self.write(key, batch)
        {
            self.error = Some(e);
        }
    }

    fn write(&mut self, key: Key, batch: &RecordBatch) -> io::Result<()> {
        if !self.open.contains_key(&key) {
            if self.open.len() >= self.max_open {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, o)| o.used)
                    .map(|(&k, _)| k)
                    .expect("files are open");
                self.close(oldest)?;
            }
            let seq = self.sequence.entry(key).or_default();
            let name = format!(
                "{}/date={}/part-{:012}-{:03}.parquet",
                key.0.name(),
                format_date(key.1 * DAY),
                self.revision,
                seq
            );
            *seq += 1;
            let path = staging(&self.dir, self.revision).join(&name);
            fs::create_dir_all(path.parent().expect("a file has a directory"))?;
            let writer = ArrowWriter::try_new(
                File::create(&path)?,
                key.0.schema(),
                Some(self.props.clone()),
            )
            .map_err(io::Error::other)?;
            self.open.insert(
                key,
                Open {
                    writer,
                    name,
                    used: 0,
                },
            );
        }
        self.clock += 1;
        let open = self.open.get_mut(&key).expect("opened above");
        open.used = self.clock;
        open.writer.write(batch).map_err(io::Error::other)?;
        if open.writer.bytes_written() + open.writer.in_progress_size() >= self.max_file_bytes {
            self.close(key)?;
        }
        // Summing every open file's buffers costs; a few batches' worth of slack is fine.
        if self.clock.is_multiple_of(16) {
            self.keep_to_budget()?;
        }
        Ok(())
    }

    /// Past the budget, the files holding the most in memory cut their row groups now.
    fn keep_to_budget(&mut self) -> io::Result<()> {
        let mut held: Vec<(Key, usize)> = self
            .open
            .iter()
            .map(|(&k, o)| (k, o.writer.memory_size()))
            .collect();
        let mut total: usize = held.iter().map(|h| h.1).sum();
        if total <= self.memory_budget {
            return Ok(());
        }
        held.sort_unstable_by_key(|h| std::cmp::Reverse(h.1));
        for (key, bytes) in held {
            if total <= self.memory_budget / 2 {
                break;
            }
            let writer = &mut self.open.get_mut(&key).expect("listed").writer;
            writer.flush().map_err(io::Error::other)?;
            total -= bytes;
        }
        Ok(())
    }

    /// Finishes a partition's file (its footer); [`sync`] makes it durable.
    fn close(&mut self, key: Key) -> io::Result<()> {
        if let Some(open) = self.open.remove(&key) {
            open.writer.into_inner().map_err(io::Error::other)?;
            self.sealed.push(open.name);
        }
        Ok(())
    }

    fn seal(&mut self, durable: bool) -> io::Result<Sealed> {
        let started = std::time::Instant::now();
        let keys: Vec<Key> = self.open.keys().copied().collect();
        for key in keys {
            if self.error.is_none()
                && let Err(e) = self.close(key)
            {
                self.error = Some(e);
            }
        }
        self.open.clear();
        self.sequence.clear();
        let mut files = std::mem::take(&mut self.sealed);
        files.sort();
        let revision = self.revision;
        self.revision += 1;
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let closed = started.elapsed();
        if durable {
            sync(&staging(&self.dir, revision), &files)?;
        }
        self.target.upload(revision, &files)?;
        tracing::debug!(
            close_ms = closed.as_millis() as u64,
            sync_ms = (started.elapsed() - closed).as_millis() as u64,
            "export revision sealed (and uploaded, with a store)"
        );
        Ok(Sealed { revision, files })
    }
}
