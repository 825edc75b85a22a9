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
use crate::engine::Engine;
use crate::event::{Decoder, Rejection};
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
}

impl<W: Write> Replayer<W> {
    pub fn new(config: &Config, rejected: W) -> Result<Replayer<W>> {
        let engine = Engine::new(config).map_err(anyhow::Error::msg)?;
        let decoder = Decoder::new(
            config.pipeline.max_event_bytes,
            config.touchpoints.iter().cloned(),
        );
        Ok(Replayer {
            decoder,
            engine,
            rejected,
        })
    }

    /// One message: decoded and applied, or rejected and written out.
    pub fn message(&mut self, bytes: &[u8], file: &str, line: u64) -> io::Result<()> {
        match self.decoder.decode(bytes) {
            Ok(event) => {
                self.engine.apply(&event);
                Ok(())
            }
            Err(rejection) => {
                self.engine.reject(rejection.reason);
                write_rejected(&mut self.rejected, &rejection, bytes, file, line)
            }
        }
    }

    /// Reads one JSON Lines input to its end, calling `progress` with bytes read now and then.
    pub fn read(
        &mut self,
        input: impl Read,
        name: &str,
        mut progress: impl FnMut(u64),
    ) -> io::Result<()> {
        let mut reader = BufReader::with_capacity(1 << 20, input);
        let mut buf = Vec::with_capacity(4096);
        let mut line = 0u64;
        let mut unreported = 0u64;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            line += 1;
            unreported += n as u64;
            let mut msg = buf.as_slice();
            if let Some(rest) = msg.strip_suffix(b"\n") {
                msg = rest.strip_suffix(b"\r").unwrap_or(rest);
            }
            if !msg.is_empty() {
                self.message(msg, name, line)?;
            }
            if unreported >= 1 << 20 {
                progress(unreported);
                unreported = 0;
            }
        }
        progress(unreported);
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
        Ok((summary, self.engine))
    }
}

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

/// Writes the summary atomically: to a temporary name beside it, then renamed.
pub fn write_summary(path: &Path, summary: &Summary) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut text = serde_json::to_string_pretty(summary)?;
    text.push('\n');
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
