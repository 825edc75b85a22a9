//! The BI export (SPEC §5.3): Parquet files of touches, journeys and stage entries that give
//! the summary's numbers when queried with the rule in `docs/bi.md`.
//!
//! Touches are written as they are read: what a touch says never changes. Journeys and their
//! stage entries change (late touches, outcomes decided as the watermark moves), so every time
//! files are sealed the journeys that changed since the last time are written again, from the
//! first changed journey of each account and funnel to its last, as a new revision. For each
//! (funnel, account) the newest revision says how many journeys the account has; each journey
//! below that count is its newest row. The engine tracks what changed (`engine::changes`);
//! this module only turns it into rows.

mod files;
pub mod tables;
mod target;
mod transitions;

pub use target::{Sealed, Target, highest_revision, publish};
pub use transitions::for_each_transition;

use std::io;

use crate::config::ExportConfig;
use crate::engine::{Engine, JourneyChange};
use crate::event::{Event, EventType, MAX_ID_BYTES};
use crate::funnel::journey::Outcome;
use crate::time::Millis;
use files::Files;
use tables::{Journey, Origin, Rows, StageEntry, Table, Touch};

pub struct Exporter {
    files: Files,
    /// Scratch for a journey's channel pattern.
    spiral: String,
}

impl Exporter {
    /// An exporter whose next files carry `revision`.
    pub fn open(config: &ExportConfig, revision: u64) -> io::Result<Exporter> {
        Exporter::open_at(config, Target::open(config)?, revision)
    }

    /// [`Exporter::open`] publishing to `target`.
    pub fn open_at(config: &ExportConfig, target: Target, revision: u64) -> io::Result<Exporter> {
        Ok(Exporter {
            files: Files::open_at(config, target, revision)?,
            spiral: String::new(),
        })
    }

    /// An accepted event as read; identify events have no row.
    pub fn event(&mut self, event: &Event<'_>, late: bool, origin: Origin<'_>) -> io::Result<()> {
        if event.event_type != EventType::Touch {
            return Ok(());
        }
        let touch = Touch {
            event_id: &event.event_id,
            occurred_at: event.occurred_at,
            touchpoint: event.touchpoint.as_deref().unwrap_or_default(),
            channel: event.channel.map_or("offline", |c| c.as_str()),
            stage: event.stage.as_deref(),
            account_id: event.account_id.as_deref(),
            contact_id: event.contact_id.as_deref(),
            anonymous_id: event.anonymous_id.as_deref(),
            campaign: event.campaign.as_deref(),
            source: event.source.as_deref(),
            cost: event.cost,
            revenue: event.revenue,
            attributes: &event.attributes,
            late,
            origin,
        };
        let revision = self.files.revision();
        self.files
            .append(Table::Touches, touch.occurred_at, |rows| match rows {
                Rows::Touches(r) => r.push(&touch, revision),
                _ => unreachable!("a touches partition"),
            })
    }

    /// Writes the journeys that changed in `engine` since the last call, decided at its
    /// current watermark, or at `watermark` (a replay's `--watermark`).
    pub fn changes(&mut self, engine: &mut Engine, watermark: Option<Millis>) -> io::Result<()> {
        let mut result = Ok(());
        engine.drain_changes(watermark, |change| {
            if result.is_ok() {
                result = self.journeys(change);
            }
        });
        result
    }

    fn journeys(&mut self, c: &JourneyChange<'_>) -> io::Result<()> {
        let revision = self.files.revision();
        let funnel = c.funnel;
        let last = funnel.last_stage();
        let mut buf = [0u8; MAX_ID_BYTES];
        let decided = (c.watermark != Millis::MIN).then_some(c.watermark);
        for (i, (j, later)) in c.journeys.iter().enumerate() {
            // Revised rows are filed by the day they were decided, not by the journey's own
            // times: a revision then lands in one date partition instead of hundreds.
            let date = decided.unwrap_or(j.last_time);
            let ordinal = c.first_ordinal + i as u32;
            self.spiral.clear();
            let mut previous = None;
            for t in &c.touches[j.first..j.end_index] {
                let channel = if t.online() { "online" } else { "offline" };
                if previous != Some(channel) {
                    if previous.is_some() {
                        self.spiral.push('>');
                    }
                    self.spiral.push_str(channel);
                    previous = Some(channel);
                }
            }
            let row = Journey {
                funnel: &funnel.name,
                account_id: c.account,
                journey: ordinal,
                account_journeys: c.total,
                decided_at: decided,
                started_at: j.first_time,
                last_touch_at: j.last_time,
                touches: j.touch_count() as u32,
                stages_reached: j.reached as u8,
                highest_stage: j.reached.checked_sub(1).map(|s| funnel.stages[s].as_str()),
                status: j.status(funnel, c.watermark, *later),
                turns: j.turns,
                spiral: &self.spiral,
            };
            self.files.append(Table::Journeys, date, |rows| {
                let Rows::Journeys(r) = rows else {
                    unreachable!("a journeys partition")
                };
                r.push(&row, revision);
                for t in j.first..j.end_index {
                    r.event_id(c.event_id(t, &mut buf));
                }
                r.end();
            })?;
            for s in 0..j.reached {
                let outcome = (s < last).then(|| j.outcome(s, funnel, c.watermark, *later));
                let entering = j.entering_touch[s] as usize;
                let online = j.entered_online & (1 << s) != 0;
                let entry = StageEntry {
                    funnel: &funnel.name,
                    account_id: c.account,
                    journey: ordinal,
                    stage: &funnel.stages[s],
                    stage_index: s as u8,
                    entered_at: j.entered[s],
                    entering_event_id: c.event_id(entering, &mut buf),
                    channel: if online { "online" } else { "offline" },
                    turns_before_entry: j.turns_before[s],
                    outcome: outcome.map(Outcome::as_str),
                    converted_at: match outcome {
                        Some(Outcome::Converted(_)) => Some(j.entered[s + 1]),
                        _ => None,
                    },
                    time_to_convert_ms: match outcome {
                        Some(Outcome::Converted(ms)) => Some(ms),
                        _ => None,
                    },
                };
                self.files.append(Table::StageEntries, date, |rows| {
                    let Rows::StageEntries(r) = rows else {
                        unreachable!("a stage entries partition")
                    };
                    r.push(&entry, revision);
                })?;
            }
        }
        Ok(())
    }

    /// Closes the revision's files durably under staging names; [`publish`] makes them
    /// visible once the state that covers them is durable.
    pub fn seal(&mut self) -> io::Result<Sealed> {
        self.files.seal(true)
    }

    /// Closes the revision's files and publishes them at once (a replay: no checkpoint comes
    /// between), with one fsync, after the renames, instead of one before and one after.
    pub fn seal_and_publish(&mut self) -> io::Result<Sealed> {
        let sealed = self.files.seal(false)?;
        self.publish(&sealed)?;
        Ok(sealed)
    }

    /// Where this exporter publishes.
    pub fn target(&self) -> &Target {
        self.files.target()
    }

    /// Publishes a sealed revision of this exporter.
    pub fn publish(&self, sealed: &Sealed) -> io::Result<()> {
        publish(self.files.target(), sealed)
    }
}

#[cfg(test)]
mod tests;
