//! Warming the engine's tables for a batch of events before applying them (issue #2).
//!
//! Applying an event is a chain of lookups that each wait for memory once the tables
//! outgrow the caches: event id → dedup table; id → name table bucket → name position and
//! node → name bytes → account record → the end of its touches. Within one event each step needs the one before,
//! so the misses follow one another. Across events they do not: [`Engine::warm`] takes a
//! batch of decoded events and walks the chains a step at a time for all of them, starting
//! the loads of the next step for every event before reading any, so a batch waits for
//! memory about once per step instead of once per step per event. Applying the batch then
//! finds its lines in the cache.
//!
//! Warming only reads and prefetches; whatever it finds is dropped. A name is matched by its
//! 8-bit tag alone, a guess that is usually right and harmless when wrong.

use super::identity::Ids;
use super::{Engine, Hashes};
use crate::event::Event;

/// Events warmed together: enough for their misses to overlap, few enough that what they
/// load stays in the core's own cache until they are applied.
pub const WARM_BATCH: usize = 16;

/// The [`Hashes`] of warmed events, in their order, for [`Engine::apply_hashed`]: each
/// event's are taken with `next()` as it is applied.
#[derive(Debug, Default)]
pub struct Warmed {
    hashes: [Hashes; WARM_BATCH],
    len: usize,
    next: usize,
}

impl Iterator for Warmed {
    type Item = Hashes;

    fn next(&mut self) -> Option<Hashes> {
        let hashes = self.hashes[..self.len].get(self.next).copied();
        self.next += 1;
        hashes
    }
}

impl Engine {
    /// Loads what applying `events` (at most [`WARM_BATCH`] are used) will read, and returns
    /// their hashes. It changes nothing, so the events are then applied as usual, in order.
    pub fn warm<'a, 'e: 'a>(&self, events: impl Iterator<Item = &'a Event<'e>>) -> Warmed {
        let mut warmed = Warmed::default();
        // 1. The name tables' buckets.
        for (h, event) in warmed.hashes.iter_mut().zip(events) {
            *h = self.hashes(event);
            warmed.len += 1;
        }
        let hashes = &warmed.hashes[..warmed.len];
        // 2. The dedup table (hashbrown's buckets cannot be prefetched, but lookups that do
        // not depend on each other overlap in a loop this short).
        for h in hashes {
            self.dedup.warm(h.event_id);
        }
        // 3. Buckets are in: the names' arena positions and their nodes or account records.
        let mut ids = [Ids::default(); WARM_BATCH];
        for (ids, h) in ids.iter_mut().zip(hashes) {
            let [account, contact, anon] = h.ids;
            *ids = Ids {
                account: account.and_then(|h| self.accounts.warm_name(h)),
                contact: contact.and_then(|h| self.identity.warm_contact(h)),
                anon: anon.and_then(|h| self.identity.warm_anon(h)),
            };
        }
        // 4. Positions and nodes are in: the names' bytes, and the account each touch goes
        // to.
        let mut accounts = [None; WARM_BATCH];
        for (account, &ids) in accounts.iter_mut().zip(&ids[..hashes.len()]) {
            if let Some(i) = ids.account {
                self.accounts.warm_name_bytes(&self.arena, i);
            }
            self.identity.warm_names(&self.arena, ids);
            *account = self.identity.resolve(ids);
            if let Some(a) = *account {
                self.accounts.prefetch_record(a);
            }
        }
        // 5. Records are in: the end of each account's touches.
        for &account in accounts[..hashes.len()].iter().flatten() {
            self.accounts.prefetch_touches(account);
        }
        warmed
    }
}
