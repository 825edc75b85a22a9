//! `spiral replay` (SPEC §8): JSON Lines files through the engine, in file and line order.
//!
//! One message a line; empty lines are not messages (a trailing `\r` is taken as part of a
//! CRLF line ending, not of the message). Rejected lines go to a JSON Lines file beside the
//! summary with their reason, file, line number and original text.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Config;
use crate::engine::{Applied, Engine, WARM_BATCH, Warmed};
use crate::event::{Decoder, Event, Rejection};
use crate::export::tables::Origin;
use crate::export::{Exporter, Target, highest_revision};
use crate::summary::Summary;
use crate::time::Millis;

/// Where the rejected lines of a replay go when no path is given: `OUT.rejected.jsonl` beside
/// the summary `OUT.json`.
pub fn default_rejected_path(summary: &Path) -> PathBuf {
    let stem = summary
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    summary.with_file_name(format!("{stem}.rejected.jsonl"))
}

/// Feeds messages to the engine and writes rejections out; shared by every replay input.
pub struct Replayer<W: Write> {
    decoder: Decoder,
    engine: Engine,
    rejected: W,
    /// The BI files of a backfill (`--export`).
    export: Option<Exporter>,
}

impl<W: Write> Replayer<W> {
    pub fn new(config: &Config, rejected: W) -> Result<Replayer<W>> {
        // Breakdown dimensions feed only the live metrics, never the summary: a replay does
        // not pay for them.
        let mut config = config.clone();
        config.service.metrics.dimensions.clear();
        let engine = Engine::new(&config).map_err(anyhow::Error::msg)?;
        Ok(Replayer::with_engine(engine, &config, rejected))
    }

    /// A replay into a given engine (tests use it to keep breakdown dimensions).
    pub fn with_engine(engine: Engine, config: &Config, rejected: W) -> Replayer<W> {
        let decoder = Decoder::new(
            config.pipeline.max_event_bytes,
            config.touchpoints.iter().cloned(),
        );
        Replayer {
            decoder,
            engine,
            rejected,
            export: None,
        }
    }

    /// Writes the BI files too: touches as they are read, journeys at the end.
    pub fn with_export(mut self, export: Exporter) -> Replayer<W> {
        self.engine.track_changes(false);
        self.export = Some(export);
        self
    }

    /// One message: decoded and applied, or rejected and written out.
    pub fn message(&mut self, bytes: &[u8], file: &str, line: u64) -> io::Result<()> {
        let decoded = self.decode(bytes, line);
        self.settle(&decoded, file, &mut Warmed::default())
    }

    /// Decodes a message; nothing changes until it is settled, so a reader may decode a
    /// batch before settling any of it.
    fn decode<'a>(&self, bytes: &'a [u8], line: u64) -> Decoded<'a> {
        Decoded {
            bytes,
            line,
            outcome: self.decoder.decode(bytes),
        }
    }

    /// Applies a decoded message to the engine, or counts and writes out its rejection. An
    /// event takes the next of `warmed`'s hashes (none if it was not warmed).
    fn settle(&mut self, decoded: &Decoded<'_>, file: &str, warmed: &mut Warmed) -> io::Result<()> {
        let line = decoded.line;
        match &decoded.outcome {
            Ok(event) => match (
                self.engine.apply_hashed(event, warmed.next()),
                &mut self.export,
            ) {
                (Applied::Accepted { late }, Some(export)) => {
                    export.event(event, late, Origin::File { name: file, line })
                }
                _ => Ok(()),
            },
            Err(rejection) => {
                self.engine.reject(rejection.reason);
                write_rejected(&mut self.rejected, rejection, decoded.bytes, file, line)
            }
        }
    }

    /// Settles a batch in order, after warming the engine's tables for all of its events
    /// ([`Engine::warm`]): their lookups' cache misses overlap instead of following one
    /// another.
    fn settle_batch(&mut self, batch: &mut Vec<Decoded<'_>>, file: &str) -> io::Result<()> {
        let mut warmed = self.engine.warm(
            batch
                .iter()
                .filter_map(|decoded| decoded.outcome.as_ref().ok()),
        );
        // Settled where they lie: a decoded event is a few hundred bytes.
        for decoded in batch.iter() {
            self.settle(decoded, file, &mut warmed)?;
        }
        batch.clear();
        Ok(())
    }

    /// Reads one JSON Lines input to its end, calling `progress` with bytes read now and then.
    ///
    /// Lines are handed over straight from the read buffer; only a line that spans two reads
    /// is copied. Messages are decoded in batches of [`WARM_BATCH`], settled together.
    pub fn read(
        &mut self,
        input: impl Read,
        name: &str,
        mut progress: impl FnMut(u64),
    ) -> io::Result<()> {
        let mut reader = BufReader::with_capacity(READ_BUFFER, input);
        let mut spanning = Vec::new();
        let mut line = 0u64;
        loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let mut start = 0;
            let mut batch = Vec::with_capacity(WARM_BATCH);
            while let Some(n) = memchr::memchr(b'\n', &buf[start..]) {
                let end = start + n;
                line += 1;
                if spanning.is_empty() {
                    if let Some(msg) = message_of(&buf[start..end]) {
                        batch.push(self.decode(msg, line));
                        if batch.len() == WARM_BATCH {
                            self.settle_batch(&mut batch, name)?;
                        }
                    }
                } else {
                    spanning.extend_from_slice(&buf[start..end]);
                    if let Some(msg) = message_of(&spanning) {
                        self.message(msg, name, line)?;
                    }
                    spanning.clear();
                }
                start = end + 1;
            }
            self.settle_batch(&mut batch, name)?;
            spanning.extend_from_slice(&buf[start..]);
            let read = buf.len();
            reader.consume(read);
            progress(read as u64);
        }
        if let Some(msg) = message_of(&spanning) {
            self.message(msg, name, line + 1)?;
        }
        Ok(())
    }

    /// Publishes what the export holds so far as one revision, with the journeys changed
    /// since the last one decided at the current watermark, as the live service does at every
    /// checkpoint. Nothing without an export.
    pub fn publish_export(&mut self) -> io::Result<()> {
        if let Some(export) = &mut self.export {
            export.changes(&mut self.engine, None)?;
            export.seal_and_publish()?;
        }
        Ok(())
    }

    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Ends the input: the summary at the newest event time, or at `watermark` if given.
    pub fn finish(mut self, watermark: Option<Millis>) -> io::Result<(Summary, Engine)> {
        self.rejected.flush()?;
        self.engine.finish();
        let summary = match watermark {
            Some(w) => self.engine.summary_at(w),
            None => self.engine.summary(),
        };
        if let Some(export) = &mut self.export {
            let started = std::time::Instant::now();
            export.changes(&mut self.engine, watermark)?;
            let changes = started.elapsed();
            let sealed = export.seal_and_publish()?;
            tracing::debug!(
                changes_ms = changes.as_millis() as u64,
                seal_and_publish_ms = (started.elapsed() - changes).as_millis() as u64,
                files = sealed.files.len(),
                "export written"
            );
        }
        Ok((summary, self.engine))
    }
}

/// A message decoded ahead of being applied ([`Replayer::decode`]).
struct Decoded<'a> {
    bytes: &'a [u8],
    line: u64,
    outcome: Result<Event<'a>, Rejection>,
}

/// The message of one line without its `\n`: a trailing `\r` belongs to a CRLF line ending,
/// and an empty line is not a message.
fn message_of(line: &[u8]) -> Option<&[u8]> {
    let msg = line.strip_suffix(b"\r").unwrap_or(line);
    (!msg.is_empty()).then_some(msg)
}

/// Bytes read from an input at a time: small enough that the lines are still in the core's
/// own cache when they are decoded right after the kernel copied them in (a 1 MiB buffer
/// was slower and held 1 MB more at the peak).
const READ_BUFFER: usize = 128 << 10;

/// One line of the rejected output: `{"reason","detail","file","line","text"}`, with
/// `text_base64` instead of `text` when the original bytes are not UTF-8.
fn write_rejected(
    out: &mut impl Write,
    rejection: &Rejection,
    bytes: &[u8],
    file: &str,
    line: u64,
) -> io::Result<()> {
    let mut record = serde_json::json!({
        "reason": rejection.reason.as_str(),
        "detail": rejection.detail,
        "file": file,
        "line": line,
    });
    match std::str::from_utf8(bytes) {
        Ok(text) => record["text"] = text.into(),
        Err(_) => {
            record["text_base64"] = base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into()
        }
    }
    serde_json::to_writer(&mut *out, &record)?;
    out.write_all(b"\n")
}

/// Options of `spiral replay`.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub inputs: Vec<PathBuf>,
    pub summary: PathBuf,
    pub rejected: Option<PathBuf>,
    pub watermark: Option<Millis>,
    pub progress: bool,
    /// Writes the BI files into this directory (a backfill), which must hold none yet.
    pub export: Option<PathBuf>,
}

/// Runs a whole replay: every input in order, then the summary file.
pub fn run(config: &Config, options: &ReplayOptions) -> Result<(Summary, Engine)> {
    let rejected_path = options
        .rejected
        .clone()
        .unwrap_or_else(|| default_rejected_path(&options.summary));
    let rejected = File::create(&rejected_path).with_context(|| {
        format!(
            "cannot create the rejected-lines file {}",
            rejected_path.display()
        )
    })?;
    let mut replayer = Replayer::new(config, BufWriter::with_capacity(1 << 16, rejected))?;
    if let Some(dir) = &options.export {
        replayer = replayer.with_export(backfill(config, dir)?);
    }

    let total: u64 = options
        .inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = if options.progress {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} replay [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    for path in &options.inputs {
        let name = path.display().to_string();
        if name == "-" {
            replayer.read(io::stdin().lock(), "-", |n| bar.inc(n))?;
        } else {
            let file = File::open(path).with_context(|| format!("cannot open input {name}"))?;
            replayer
                .read(file, &name, |n| bar.inc(n))
                .with_context(|| format!("reading {name}"))?;
        }
    }
    bar.finish_and_clear();
    let (summary, engine) = replayer.finish(options.watermark)?;
    write_summary(&options.summary, &summary)?;
    Ok((summary, engine))
}

/// The exporter of a backfill into `to`, a directory or an object store URL (`s3://…`,
/// `file://…`), with the configuration's `[export]` settings. It must hold no files yet:
/// revisions of two runs would supersede each other's rows.
fn backfill(config: &Config, to: &Path) -> Result<Exporter> {
    let mut settings = config.service.export.clone().unwrap_or_default();
    let shown = to.display().to_string();
    if shown.contains("://") {
        // Files are written in a scratch directory, then uploaded and published.
        settings.url = Some(shown.clone());
        settings.dir = std::env::temp_dir().join(format!("spiral-backfill-{}", std::process::id()));
    } else {
        settings.url = None;
        settings.options.clear();
        settings.dir = to.to_path_buf();
    }
    let target = Target::open(&settings).with_context(|| format!("--export {shown}"))?;
    let published = highest_revision(&target)
        .with_context(|| format!("--export {shown}: cannot list what it holds"))?;
    if published > 0 {
        anyhow::bail!(
            "--export {shown}: already holds files (revision {published}); a backfill writes into an \
             empty directory, so that its revisions supersede nothing"
        );
    }
    Exporter::open_at(&settings, target, 1)
        .with_context(|| format!("--export {shown}: cannot write there"))
}

/// Writes the summary atomically: to a temporary name beside it, then renamed.
pub fn write_summary(path: &Path, summary: &Summary) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut text = serde_json::to_string_pretty(summary)?;
    text.push('\n');
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, so lines span reads.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(self.0.len()).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_spanning_reads_crlf_empty_and_unterminated_lines() {
        let config = Config::parse(include_str!("../config/spiral.toml"), "spiral.toml").unwrap();
        let a = r#"{"event_id":"a","occurred_at":"2026-01-01T00:00:00Z","account_id":"x","touchpoint":"web_visit"}"#;
        let b = r#"{"event_id":"b","occurred_at":"2026-01-02T00:00:00Z","account_id":"x","touchpoint":"sales_call"}"#;
        let input = format!("{a}\r\n\n\r\nnot json\n{b}");
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let mut rejected = Vec::new();
            let mut replayer = Replayer::new(&config, &mut rejected).unwrap();
            let mut seen = 0;
            replayer
                .read(Trickle(input.as_bytes(), chunk), "in", |n| seen += n)
                .unwrap();
            let (summary, _) = replayer.finish(None).unwrap();
            assert_eq!(seen, input.len() as u64);
            assert_eq!(
                (summary.events.received, summary.events.accepted),
                (3, 2),
                "chunk {chunk}"
            );
            assert_eq!(
                summary.funnels[0].stages[3].entered, 1,
                "chunk {chunk}: b was read whole"
            );
            let rejected: serde_json::Value = serde_json::from_slice(&rejected).unwrap();
            assert_eq!(
                rejected["line"], 4,
                "chunk {chunk}: empty lines are counted"
            );
            assert_eq!(rejected["text"], "not json");
        }
    }
}
