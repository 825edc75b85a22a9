//! Stage-transition messages (SPEC §5.4): every journey and every stage entry of a published
//! revision as JSON messages keyed by account, for consumers that react to an account
//! entering a stage or a stage's outcome being decided.
//!
//! Two kinds, told apart by `type`:
//! - `journey`: one per journey of the revision, with the account's journey count
//!   (`account_journeys`), its status and the stages it reached — also for journeys that
//!   reached no stage (only `lost` or stageless touches), which have no stage entries;
//! - `stage`: one per stage entry, with its outcome (`converted`, `dropped`, `open`; none for
//!   the last stage), as the `stage_entries` table has it.
//!
//! The messages are read back from the revision's published files, so they say exactly what
//! the files say, and a revision is sent again after a crash from files that are already
//! durable. Delivery is therefore at least once, and a consumer folds the messages with the
//! files' rule (`docs/bi.md`): per (funnel, account) the newest `journey` message gives the
//! journey count; each journey below it is its newest revision; a journey's stages are the
//! `stage` messages of that revision.

use std::io;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Int64Type, TimestampMillisecondType, UInt8Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, PrimitiveArray, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use super::tables::Table;
use super::target::{Sealed, Target};
use crate::time::format_rfc3339;

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Transition<'a> {
    Journey {
        revision: u64,
        /// When the revision was decided (its watermark); `None` before any watermark.
        decided_at: Option<String>,
        funnel: &'a str,
        account_id: &'a str,
        journey: u32,
        account_journeys: u32,
        status: &'a str,
        stages_reached: u8,
        highest_stage: Option<&'a str>,
        started_at: String,
        last_touch_at: String,
        touches: u32,
        turns: u32,
        spiral: &'a str,
    },
    Stage {
        revision: u64,
        funnel: &'a str,
        account_id: &'a str,
        journey: u32,
        stage: &'a str,
        stage_index: u8,
        entered_at: String,
        entering_event_id: &'a str,
        channel: &'a str,
        turns_before_entry: u32,
        outcome: Option<&'a str>,
        converted_at: Option<String>,
        time_to_convert_ms: Option<i64>,
    },
}

/// Calls `send(key, payload)` for every journey, then every stage entry, of the published
/// revision `sealed`, in file order; returns how many messages.
pub fn for_each_transition(
    target: &Target,
    sealed: &Sealed,
    mut send: impl FnMut(&[u8], &[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut sent = 0;
    let mut payload = Vec::with_capacity(512);
    let mut emit = |message: &Transition<'_>, account: &str| {
        payload.clear();
        serde_json::to_writer(&mut payload, message).map_err(io::Error::other)?;
        sent += 1;
        send(account.as_bytes(), &payload)
    };
    for table in [Table::Journeys, Table::StageEntries] {
        let prefix = format!("{}/", table.name());
        for name in sealed.files.iter().filter(|n| n.starts_with(&prefix)) {
            for batch in read(target, name)? {
                match table {
                    Table::Journeys => journeys(&batch, &mut emit),
                    _ => stages(&batch, &mut emit),
                }
                .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
            }
        }
    }
    Ok(sent)
}

type Emit<'e> = dyn FnMut(&Transition<'_>, &str) -> io::Result<()> + 'e;

fn journeys(batch: &RecordBatch, emit: &mut Emit<'_>) -> io::Result<()> {
    let revision = column::<UInt64Type>(batch, "revision")?;
    let decided = column::<TimestampMillisecondType>(batch, "decided_at")?;
    let funnel = strings(batch, "funnel")?;
    let account = strings(batch, "account_id")?;
    let journey = column::<UInt32Type>(batch, "journey")?;
    let total = column::<UInt32Type>(batch, "account_journeys")?;
    let status = strings(batch, "status")?;
    let reached = column::<UInt8Type>(batch, "stages_reached")?;
    let highest = strings(batch, "highest_stage")?;
    let started = column::<TimestampMillisecondType>(batch, "started_at")?;
    let last = column::<TimestampMillisecondType>(batch, "last_touch_at")?;
    let touches = column::<UInt32Type>(batch, "touches")?;
    let turns = column::<UInt32Type>(batch, "turns")?;
    let spiral = strings(batch, "spiral")?;
    for row in 0..batch.num_rows() {
        let message = Transition::Journey {
            revision: revision.value(row),
            decided_at: decided
                .is_valid(row)
                .then(|| format_rfc3339(decided.value(row))),
            funnel: funnel.value(row),
            account_id: account.value(row),
            journey: journey.value(row),
            account_journeys: total.value(row),
            status: status.value(row),
            stages_reached: reached.value(row),
            highest_stage: highest.is_valid(row).then(|| highest.value(row)),
            started_at: format_rfc3339(started.value(row)),
            last_touch_at: format_rfc3339(last.value(row)),
            touches: touches.value(row),
            turns: turns.value(row),
            spiral: spiral.value(row),
        };
        emit(&message, account.value(row))?;
    }
    Ok(())
}

fn stages(batch: &RecordBatch, emit: &mut Emit<'_>) -> io::Result<()> {
    let revision = column::<UInt64Type>(batch, "revision")?;
    let funnel = strings(batch, "funnel")?;
    let account = strings(batch, "account_id")?;
    let journey = column::<UInt32Type>(batch, "journey")?;
    let stage = strings(batch, "stage")?;
    let stage_index = column::<UInt8Type>(batch, "stage_index")?;
    let entered = column::<TimestampMillisecondType>(batch, "entered_at")?;
    let entering = strings(batch, "entering_event_id")?;
    let channel = strings(batch, "channel")?;
    let turns = column::<UInt32Type>(batch, "turns_before_entry")?;
    let outcome = strings(batch, "outcome")?;
    let converted = column::<TimestampMillisecondType>(batch, "converted_at")?;
    let to_convert = column::<Int64Type>(batch, "time_to_convert_ms")?;
    for row in 0..batch.num_rows() {
        let message = Transition::Stage {
            revision: revision.value(row),
            funnel: funnel.value(row),
            account_id: account.value(row),
            journey: journey.value(row),
            stage: stage.value(row),
            stage_index: stage_index.value(row),
            entered_at: format_rfc3339(entered.value(row)),
            entering_event_id: entering.value(row),
            channel: channel.value(row),
            turns_before_entry: turns.value(row),
            outcome: outcome.is_valid(row).then(|| outcome.value(row)),
            converted_at: converted
                .is_valid(row)
                .then(|| format_rfc3339(converted.value(row))),
            time_to_convert_ms: to_convert.is_valid(row).then(|| to_convert.value(row)),
        };
        emit(&message, account.value(row))?;
    }
    Ok(())
}

/// A published file's rows.
fn read(target: &Target, name: &str) -> io::Result<Vec<RecordBatch>> {
    let bytes = target.read(name)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}")))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}")))
}

/// A column of the table's schema, of its type: a file that lacks it was not written by
/// this version of Spiral.
fn column<'a, T: ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &str,
) -> io::Result<&'a PrimitiveArray<T>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<T>())
        .ok_or_else(|| unexpected(name))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> io::Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| unexpected(name))
}

fn unexpected(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("no column {name} of the expected type"),
    )
}
