//! The pure core (SPEC §1–§5.1): accepted events in, counters and journeys out.
//!
//! No I/O, no clocks, no globals. Replay and the live service feed the same [`Engine`]:
//! [`Engine::apply`] for a decoded event, [`Engine::reject`] for a rejected message, and
//! [`Engine::advance_watermark`] where the caller knows more about event time than the events
//! themselves (end of input, idle partitions).

pub(crate) mod accounts;
mod changes;
mod dedup;
pub mod dims;
mod event_ids;
mod identity;
mod name_code;
mod names;
mod snapshot;
mod split;
pub mod store;
mod timers;
mod touch_pool;
mod view;
mod warm;
pub mod watermark;

pub use changes::JourneyChange;
pub use event_ids::TouchId;
pub use snapshot::{SNAPSHOT_VERSION, SnapshotError};
pub use split::{LinkedIds, ResolvedTouch};
pub use view::{AccountView, FunnelView, JourneyView, StageView, TouchView};

use crate::config::Config;
use crate::event::{Event, EventType, RejectReason};
use crate::funnel::stats::FunnelStats;
use crate::funnel::{Funnels, Touch};
use crate::summary::{self, Summary};
use crate::time::Millis;

use accounts::{Accounts, Context};
use dedup::Dedup;
use dims::Dimensions;
use event_ids::{Encoded, EventIds};
use identity::{Identity, Ids};
use store::StrArena;
pub use warm::{WARM_BATCH, Warmed};

/// Hashes of an event's account, contact and anonymous ids, each in its own table.
type IdHashes = [Option<u64>; 3];

/// The hashes applying an event looks it up by: its event id in the dedup table and its
/// other ids in theirs. Found once per event, by [`Engine::warm`] or else by
/// [`Engine::apply`] (issue #2: hashing and encoding each id twice was ~3 % of the work).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Hashes {
    event_id: u64,
    ids: IdHashes,
}

fn id_bytes<'a>(id: &'a Option<std::borrow::Cow<'_, str>>) -> Option<&'a [u8]> {
    id.as_deref().map(str::as_bytes)
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Accepted; `late` when its event time was older than the watermark when it was read.
    Accepted {
        late: bool,
    },
    Duplicate,
}

/// Event counters of the summary (SPEC §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub identify: u64,
    pub late: u64,
    /// Late touches that changed a stage's numbers when applied (SPEC §4); not in the summary.
    pub late_corrections: u64,
    pub rejected: [u64; 6],
}

#[derive(Debug)]
pub struct Engine {
    funnels: Funnels,
    allowed_lateness: Millis,
    /// Account, contact and anonymous ids.
    arena: StrArena,
    /// Event ids of the touches in accounts, other than the 16-hex-character ones touches
    /// hold themselves (dedup and waiting touches keep their own).
    touch_ids: EventIds,
    dedup: Dedup,
    identity: Identity,
    accounts: Accounts,
    stats: Vec<FunnelStats>,
    counters: Counters,
    /// Newest accepted event time; `None` before any.
    newest: Option<Millis>,
    /// `Millis::MIN` until the first accepted event.
    watermark: Millis,
    /// Breakdown dimensions and touch costs (metrics only, not in the summary).
    dims: Dimensions,
    /// Scratch for touches that a link releases.
    joined: Vec<(u32, Touch)>,
    /// Scratch copy of `stats` to tell whether a late touch corrected them.
    stats_before: Vec<FunnelStats>,
    /// Whether [`Engine::apply`] moves the watermark itself (replay: one stream) or the caller
    /// does (the live service: the slowest active partition decides, SPEC §4).
    external_watermark: bool,
    /// Scratch for the event id being applied, in stored form.
    id: Encoded,
    /// In a resolver, the touches resolved and not taken yet (`split`); `None` otherwise.
    released: Option<split::Released>,
}

impl Engine {
    pub fn new(config: &Config) -> Result<Engine, String> {
        let funnels = Funnels::new(&config.funnels)?;
        let dims = Dimensions::new(&config.service.metrics);
        let with_dims = !dims.is_empty();
        let stats = funnels
            .funnels
            .iter()
            .map(|f| FunnelStats::new(f, with_dims))
            .collect();
        Ok(Engine {
            funnels,
            allowed_lateness: config.pipeline.allowed_lateness,
            arena: StrArena::default(),
            touch_ids: EventIds::default(),
            dedup: Dedup::new(config.pipeline.dedup_window),
            identity: Identity::new(config.identity.pending_ttl),
            accounts: Accounts::default(),
            stats,
            counters: Counters::default(),
            newest: None,
            watermark: Millis::MIN,
            dims,
            joined: Vec::new(),
            stats_before: Vec::new(),
            external_watermark: false,
            id: Encoded::default(),
            released: None,
        })
    }

    /// An engine whose watermark only [`Engine::advance_watermark`] moves: events still count
    /// as late against it, but their times no longer push it forward.
    pub fn with_external_watermark(mut self) -> Engine {
        self.external_watermark = true;
        self
    }

    /// Counts a rejected message (SPEC §1): it has no other effect.
    pub fn reject(&mut self, reason: RejectReason) {
        self.counters.received += 1;
        self.counters.rejected[reason.index()] += 1;
    }

    /// Applies one accepted event, read after everything applied before it.
    ///
    /// The watermark in force while the event is read (for `late` and dedup) is the one before
    /// it; then the event's time moves the watermark to `newest − allowed_lateness`.
    pub fn apply(&mut self, event: &Event<'_>) -> Applied {
        self.apply_hashed(event, None)
    }

    /// [`Engine::apply`] with the event's [`Hashes`] if [`Engine::warm`] found them already.
    pub fn apply_hashed(&mut self, event: &Event<'_>, hashes: Option<Hashes>) -> Applied {
        // The id tables' lines start loading now and arrive while dedup waits for its own
        // (warming loaded them already).
        let hashes = hashes.unwrap_or_else(|| self.hashes(event));
        debug_assert_eq!(hashes, self.hashes(event), "the hashes of another event");
        self.counters.received += 1;
        let time = event.occurred_at;
        self.id.set(event.event_id.as_bytes());
        if !self
            .dedup
            .accept(&self.id, hashes.event_id, time, self.watermark)
        {
            self.counters.duplicates += 1;
            return Applied::Duplicate;
        }
        self.counters.accepted += 1;
        let late = event.event_type == EventType::Touch && time < self.watermark;

        let ids = self.intern_hashed(event, hashes.ids);
        // A resolver that learns links from a log only notes them here (`split`). Its own
        // touch loses nothing by that: an event's new links never resolve its own touch
        // further than its ids and the links known before it do.
        if !self.note_links(event) {
            self.link(ids, true);
        }

        match event.event_type {
            EventType::Identify => self.counters.identify += 1,
            EventType::Touch => {
                if late {
                    self.counters.late += 1;
                }
                let touchpoint = event.touchpoint.as_deref().unwrap_or_default();
                let kind = self.funnels.kind(touchpoint, event.stage.as_deref());
                let channel = event.channel.unwrap_or(crate::event::Channel::Offline);
                let dims = self.dims.touch(event, channel);
                let online = channel == crate::event::Channel::Online;
                // The id goes where the touch does: with the account, or with it waiting.
                let mut touch = Touch::new(time, TouchId::Hex16(0), kind, online, dims);
                match self.identity.resolve(ids) {
                    Some(account) => {
                        touch.set_id(self.touch_ids.keep(&self.id));
                        self.insert_touch(account, touch, late);
                    }
                    None => self.identity.wait(touch, ids, &self.id),
                }
            }
        }

        let newest = self.newest.map_or(time, |n| n.max(time));
        self.newest = Some(newest);
        if !self.external_watermark {
            self.advance_watermark(newest.saturating_sub(self.allowed_lateness));
        }
        // A touch that waits although the watermark is already past its time plus
        // `pending_ttl` is given up at once, whether or not the watermark moved.
        self.expire_waiting(self.watermark);
        Applied::Accepted { late }
    }

    /// Gives up on touches that waited for an account past `pending_ttl`, and compacts the
    /// arena once the anonymous ids forgotten with them are a fifth of it.
    fn expire_waiting(&mut self, watermark: Millis) {
        if self.identity.expire(watermark, &mut self.arena) > 0 && self.arena.compaction_due() {
            let [contacts, anons] = self.identity.interners();
            self.arena
                .compact(&mut [self.accounts.interner(), contacts, anons]);
        }
    }

    /// Records the links between `ids` and places every waiting touch they release.
    /// `count_conflicts` is false where another engine counts them (`split`).
    fn link(&mut self, ids: Ids, count_conflicts: bool) {
        let conflicts = self.identity.conflicts;
        let mut joined = std::mem::take(&mut self.joined);
        self.identity.link(ids, &mut joined, &mut self.touch_ids);
        for (account, touch) in joined.drain(..) {
            self.insert_touch(account, touch, false);
        }
        self.joined = joined;
        if !count_conflicts {
            self.identity.conflicts = conflicts;
        }
    }

    /// The event's [`Hashes`]. The lines of its account, contact and anonymous ids in their
    /// tables are prefetched: the three lookups' first cache misses overlap each other and
    /// the dedup lookup instead of following one another.
    fn hashes(&self, event: &Event<'_>) -> Hashes {
        let account = event
            .account_id
            .as_deref()
            .map(|a| self.accounts.prefetch(a.as_bytes()));
        let contact = event
            .contact_id
            .as_deref()
            .map(|c| self.identity.prefetch_contact(c.as_bytes()));
        let anon = event
            .anonymous_id
            .as_deref()
            .map(|a| self.identity.prefetch_anon(a.as_bytes()));
        Hashes {
            event_id: self.dedup.hash(event.event_id.as_bytes()),
            ids: [account, contact, anon],
        }
    }

    /// [`Engine::intern`] of the event's ids, with the hashes [`Engine::hashes`] gave.
    fn intern_hashed(&mut self, event: &Event<'_>, [account, contact, anon]: IdHashes) -> Ids {
        let arena = &mut self.arena;
        Ids {
            account: id_bytes(&event.account_id)
                .zip(account)
                .map(|(a, h)| self.accounts.intern_hashed(arena, a, h)),
            contact: id_bytes(&event.contact_id)
                .zip(contact)
                .map(|(c, h)| self.identity.contact_hashed(arena, c, h)),
            anon: id_bytes(&event.anonymous_id)
                .zip(anon)
                .map(|(a, h)| self.identity.anon_hashed(arena, a, h)),
        }
    }

    /// Account index, contact node and anonymous node of these ids, made if new.
    fn intern(&mut self, account: Option<&str>, contact: Option<&str>, anon: Option<&str>) -> Ids {
        let arena = &mut self.arena;
        Ids {
            account: account.map(|a| self.accounts.intern(arena, a.as_bytes())),
            contact: contact.map(|c| self.identity.contact(arena, c.as_bytes())),
            anon: anon.map(|a| self.identity.anon(arena, a.as_bytes())),
        }
    }

    /// Places a resolved touch in its account's journeys (in a resolver: hands it on). A late
    /// one that changes the counters is a late correction (SPEC §4).
    fn insert_touch(&mut self, account: u32, touch: Touch, late: bool) {
        if self.release(account, touch, late) {
            return;
        }
        if late {
            self.stats_before.clone_from(&self.stats);
            self.place(account, touch);
            if self.stats_before != self.stats {
                self.counters.late_corrections += 1;
            }
        } else {
            self.place(account, touch);
        }
    }

    fn place(&mut self, account: u32, touch: Touch) {
        let mut cx = Context {
            funnels: &self.funnels,
            touch_ids: &self.touch_ids,
            stats: &mut self.stats,
            watermark: self.watermark,
        };
        self.accounts.insert(account, touch, &mut cx);
    }

    /// Moves the watermark forward to `to` (never back): open stages whose window or journey
    /// timeout has passed become dropped, and waiting touches past `pending_ttl` are given up.
    pub fn advance_watermark(&mut self, to: Millis) {
        if to <= self.watermark {
            return;
        }
        let from = self.watermark;
        self.watermark = to;
        let mut cx = Context {
            funnels: &self.funnels,
            touch_ids: &self.touch_ids,
            stats: &mut self.stats,
            watermark: to,
        };
        self.accounts.advance(from, to, &mut cx);
        self.expire_waiting(to);
        self.dedup.purge(to);
    }

    /// End of a replay's input: the watermark becomes the newest accepted event time (SPEC §4).
    pub fn finish(&mut self) {
        if let Some(newest) = self.newest {
            self.advance_watermark(newest);
        }
    }

    /// The watermark, `None` before any accepted event.
    pub fn watermark(&self) -> Option<Millis> {
        (self.watermark != Millis::MIN).then_some(self.watermark)
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn funnels(&self) -> &Funnels {
        &self.funnels
    }

    /// Breakdown dimensions and the cost of touches, for the metrics.
    pub fn dimensions(&self) -> &Dimensions {
        &self.dims
    }

    pub fn stats(&self) -> &[FunnelStats] {
        &self.stats
    }

    /// The summary of SPEC §5.1 at the current watermark.
    pub fn summary(&self) -> Summary {
        summary::build(
            self.watermark(),
            &self.counters,
            self.identity.unresolved,
            self.identity.conflicts,
            &self.funnels,
            &self.stats,
        )
    }

    /// The summary with outcomes decided at `watermark` instead (replay's `--watermark`).
    /// Counts that depend on arrival (late, unresolved, duplicates) stay as they are.
    pub fn summary_at(&mut self, watermark: Millis) -> Summary {
        let stats = self.recompute_stats(watermark);
        summary::build(
            Some(watermark),
            &self.counters,
            self.identity.unresolved,
            self.identity.conflicts,
            &self.funnels,
            &stats,
        )
    }

    /// Funnel counters computed from scratch over every account at `watermark`: the slow,
    /// obviously right way, used for `--watermark` and to check the incremental counters.
    pub fn recompute_stats(&mut self, watermark: Millis) -> Vec<FunnelStats> {
        let mut all = Vec::with_capacity(self.funnels.len());
        for f in 0..self.funnels.len() {
            let funnel = &self.funnels.funnels[f];
            let mut stats = FunnelStats::new(funnel, !self.dims.is_empty());
            self.accounts
                .for_each_journey(f, &self.funnels, |_, j, later| {
                    stats.add(j, funnel, watermark, later, 1)
                });
            all.push(stats);
        }
        all
    }

    /// Journeys this long keep their state between touches (default 64). Tests lower it so
    /// the cached path is taken as often as possible; results never depend on it.
    #[doc(hidden)]
    pub fn set_long_journey(&mut self, touches: usize) {
        self.accounts.long_journey = touches.max(1);
    }

    /// Touches waiting for an account.
    pub fn pending(&self) -> usize {
        self.identity.pending()
    }

    /// Sizes of the state, for memory reports.
    pub fn state_sizes(&self) -> StateSizes {
        StateSizes {
            accounts: self.accounts.len(),
            touches: self.accounts.touch_count(),
            pending: self.identity.pending(),
            contacts: self.identity.contact_count(),
            anonymous_ids: self.identity.anon_count(),
            dedup_ids: self.dedup.len(),
            bytes: StateBytes {
                strings: self.arena.heap_bytes() + self.touch_ids.heap_bytes(),
                accounts: self.accounts.heap_bytes(),
                identity: self.identity.heap_bytes(),
                dedup: self.dedup.heap_bytes(),
            },
        }
    }
}

/// How much state the engine holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSizes {
    pub accounts: usize,
    pub touches: usize,
    pub pending: usize,
    pub contacts: usize,
    pub anonymous_ids: usize,
    pub dedup_ids: usize,
    pub bytes: StateBytes,
}

/// Approximate heap bytes of the engine's tables (capacities, not lengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBytes {
    /// Account, contact and anonymous ids, and the event ids of touches in accounts.
    pub strings: usize,
    /// The account index, touch records and timers.
    pub accounts: usize,
    /// Contacts, anonymous ids, their links and the touches waiting for an account.
    pub identity: usize,
    pub dedup: usize,
}

impl StateBytes {
    pub fn total(&self) -> usize {
        self.strings + self.accounts + self.identity + self.dedup
    }
}

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
