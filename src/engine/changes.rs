//! Which accounts changed since the BI export last took them (SPEC §5.3), and from which
//! touch on.
//!
//! An account's journeys change in two ways only (see `accounts`): a touch is inserted, which
//! changes the journey it lands in and every later one, or the watermark passes a deadline of
//! its last journey. Both mark the account here with the smallest touch index affected, so the
//! export rewrites just those journeys, as a new revision, instead of every account every time.
//! Off unless the export is on: it costs 4 bytes an account.

use super::Engine;
use super::event_ids::EventIds;
use crate::event::MAX_ID_BYTES;
use crate::funnel::journey::{self, Journey};
use crate::funnel::{Funnel, MARKED_FUNNELS, Touch};
use crate::time::Millis;

const CLEAN: u32 = u32::MAX;

#[derive(Debug, Default)]
pub struct Changes {
    /// Per account: the smallest touch index changed since the last drain, `CLEAN` if none.
    from: Vec<u32>,
    /// The accounts whose `from` is set, in the order they first changed.
    dirty: Vec<u32>,
}

impl Changes {
    /// Notes that `account` changed from touch `at` on. An insert at `i` shifts only indices
    /// at or after `i`, so keeping the smallest index stays right across several inserts.
    #[inline]
    pub fn mark(&mut self, account: u32, at: usize) {
        let a = account as usize;
        if a >= self.from.len() {
            self.from.resize(a + 1, CLEAN);
        }
        let at = at.min(CLEAN as usize - 1) as u32;
        if self.from[a] == CLEAN {
            self.dirty.push(account);
        }
        self.from[a] = self.from[a].min(at);
    }

    pub fn heap_bytes(&self) -> usize {
        (self.from.capacity() + self.dirty.capacity()) * size_of::<u32>()
    }

    /// Every account, from its first touch (after a restore whose state was never exported).
    pub fn mark_all(&mut self, accounts: usize) {
        for a in 0..accounts {
            self.mark(a as u32, 0);
        }
    }
}

/// The journeys of one account in one funnel that changed, from the first changed one to the
/// account's last, with their outcomes decided at `watermark`.
pub struct JourneyChange<'a> {
    pub account: &'a str,
    /// Index of the funnel in the configuration.
    pub funnel_index: usize,
    pub funnel: &'a Funnel,
    /// The ordinal (0-based, in event-time order) of `journeys[0]` among the account's
    /// journeys in this funnel; the earlier ones did not change.
    pub first_ordinal: u32,
    /// How many journeys the account has in this funnel now.
    pub total: u32,
    /// Each journey with whether a later one follows it.
    pub journeys: &'a [(Journey, bool)],
    /// All of the account's touches, in order; journeys index into them.
    pub touches: &'a [Touch],
    pub watermark: Millis,
    ids: &'a EventIds,
}

impl JourneyChange<'_> {
    /// The event id of `touches[i]`, unpacked into `buf` when needed.
    pub fn event_id<'b>(&'b self, i: usize, buf: &'b mut [u8; MAX_ID_BYTES]) -> &'b str {
        self.ids.touch_str(self.touches[i].id(), buf)
    }
}

impl Engine {
    /// Starts noting which accounts change, for [`Engine::drain_changes`]. With `everything`,
    /// every account already known counts as changed (a state that was never exported).
    pub fn track_changes(&mut self, everything: bool) {
        let mut changes = Changes::default();
        if everything {
            changes.mark_all(self.accounts.len());
        }
        self.accounts.changes = Some(changes);
    }

    /// Accounts changed since the last drain (0 when changes are not tracked).
    pub fn changed_accounts(&self) -> usize {
        self.accounts.changes.as_ref().map_or(0, |c| c.dirty.len())
    }

    /// Visits the journeys that changed since the last drain, per account and funnel, decided
    /// at `watermark` (the engine's own unless it is a replay's `--watermark`), and forgets
    /// the changes. Nothing when changes are not tracked.
    pub fn drain_changes(
        &mut self,
        watermark: Option<Millis>,
        mut visit: impl FnMut(&JourneyChange<'_>),
    ) {
        let watermark = watermark.unwrap_or(self.watermark);
        let Some(mut changes) = self.accounts.changes.take() else {
            return;
        };
        let mut journeys: Vec<(Journey, bool)> = Vec::new();
        for account in changes.dirty.drain(..) {
            let from = std::mem::replace(&mut changes.from[account as usize], CLEAN) as usize;
            let name = self.accounts.name(&self.arena, account);
            let touches = self.accounts.touches_mut(account);
            for (f, funnel) in self.funnels.funnels.iter().enumerate() {
                // The journey holding the touch before the first change may have changed too
                // (the change may have joined, closed or followed it).
                let start = if from > 0 && f < MARKED_FUNNELS {
                    journey::journey_start(touches, (from - 1).min(touches.len() - 1), f)
                } else {
                    0
                };
                let first_ordinal = touches[..start]
                    .iter()
                    .filter(|t| t.starts_journey(f))
                    .count() as u32;
                journeys.clear();
                journey::walk(touches, start, f, &self.funnels, false, |j, later| {
                    journeys.push((j.clone(), later))
                });
                visit(&JourneyChange {
                    account: &name,
                    funnel_index: f,
                    funnel,
                    first_ordinal,
                    total: first_ordinal + journeys.len() as u32,
                    journeys: &journeys,
                    touches,
                    watermark,
                    ids: &self.touch_ids,
                });
            }
        }
        self.accounts.changes = Some(changes);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;
    use crate::event::Decoder;
    use crate::funnel::stats::FunnelStats;
    use crate::generate::{GenerateOptions, generate_with};

    /// What the BI files say under the rule of `docs/bi.md`: per (funnel, account) the
    /// journey count of the newest revision, and per journey its newest row (kept here as the
    /// journey itself, with whether a later one followed and the watermark it was decided at).
    #[derive(Default)]
    struct Files {
        accounts: HashMap<(usize, String), u32>,
        journeys: HashMap<(usize, String, u32), (Journey, bool, Millis)>,
    }

    impl Files {
        fn take(&mut self, engine: &mut Engine) {
            engine.drain_changes(None, |c| {
                let account = c.account.to_string();
                self.accounts
                    .insert((c.funnel_index, account.clone()), c.total);
                for (i, (j, later)) in c.journeys.iter().enumerate() {
                    let key = (c.funnel_index, account.clone(), c.first_ordinal + i as u32);
                    self.journeys.insert(key, (j.clone(), *later, c.watermark));
                }
            });
        }

        /// The funnel counters a query over the files gives.
        fn stats(&self, engine: &Engine) -> Vec<FunnelStats> {
            let funnels = &engine.funnels().funnels;
            let dims = !engine.dimensions().is_empty();
            let mut stats: Vec<_> = funnels.iter().map(|f| FunnelStats::new(f, dims)).collect();
            for ((f, account, ordinal), (j, later, decided)) in &self.journeys {
                if *ordinal < self.accounts[&(*f, account.clone())] {
                    stats[*f].add(j, &funnels[*f], *decided, *later, 1);
                }
            }
            stats
        }
    }

    fn run(seed: u64, long_journey: usize) {
        let config =
            Config::parse(include_str!("../../config/spiral.toml"), "spiral.toml").unwrap();
        let decoder = Decoder::new(
            config.pipeline.max_event_bytes,
            config.touchpoints.iter().cloned(),
        );
        let mut engine = Engine::new(&config).unwrap();
        engine.set_long_journey(long_journey);
        engine.track_changes(false);
        let mut files = Files::default();
        let opts = GenerateOptions {
            seed,
            accounts: 300,
            events: 20_000,
            ..GenerateOptions::default()
        };
        let mut n = 0u64;
        let mut drains = 0;
        generate_with(&opts, |line, _| {
            if let Ok(event) = decoder.decode(line.strip_suffix(b"\n").unwrap_or(line)) {
                engine.apply(&event);
            }
            n += 1;
            // Drains at uneven moments, so that revisions overlap every kind of change.
            if n.is_multiple_of(997 + seed % 500) {
                files.take(&mut engine);
                drains += 1;
                assert_eq!(
                    files.stats(&engine),
                    engine.stats(),
                    "seed {seed}, drain {drains}"
                );
            }
            Ok(())
        })
        .unwrap();
        engine.finish();
        files.take(&mut engine);
        assert_eq!(
            files.stats(&engine),
            engine.stats(),
            "seed {seed}, at the end"
        );
        assert_eq!(engine.changed_accounts(), 0);
        assert!(drains >= 10);
    }

    #[test]
    fn newest_revisions_give_the_live_counters_at_every_drain() {
        for seed in 1..=4 {
            run(seed, crate::engine::accounts::LONG_JOURNEY);
        }
        // Kept long journeys take other paths through insert and advance.
        run(5, 2);
    }

    #[test]
    fn nothing_is_tracked_until_asked_and_everything_can_be() {
        let config =
            Config::parse(include_str!("../../config/spiral.toml"), "spiral.toml").unwrap();
        let decoder = Decoder::new(65536, config.touchpoints.iter().cloned());
        let mut engine = Engine::new(&config).unwrap();
        let line = br#"{"event_id":"a","occurred_at":"2026-01-01T00:00:00Z","account_id":"x","touchpoint":"web_visit"}"#;
        engine.apply(&decoder.decode(line).unwrap());
        assert_eq!(engine.changed_accounts(), 0);
        let mut seen = 0;
        engine.drain_changes(None, |_| seen += 1);
        assert_eq!(seen, 0);
        engine.track_changes(true);
        assert_eq!(engine.changed_accounts(), 1);
        engine.drain_changes(None, |c| {
            assert_eq!((c.account, c.first_ordinal, c.total), ("x", 0, 1));
            seen += 1;
        });
        assert_eq!(seen, config.funnels.len());
    }
}
