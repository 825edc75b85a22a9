//! Warming the engine's tables for a batch of events before applying them (issue #2).
//!
//! Applying an event is a chain of lookups that each wait for memory once the tables
//! outgrow the caches: event id → dedup table; id → name table bucket → name bytes → node →
//! account record → the end of its touches. Within one event each step needs the one before,
//! so the misses follow one another. Across events they do not: [`Engine::warm`] takes a
//! batch of decoded events and walks the chains a step at a time for all of them, starting
//! the loads of the next step for every event before reading any, so a batch waits for
//! memory about once per step instead of once per step per event. Applying the batch then
//! finds its lines in the cache.
//!
//! Warming only reads and prefetches; whatever it finds is dropped. A name is matched by its
//! 32-bit tag alone, a guess that is almost always right and harmless when wrong.

use super::event_ids::Encoded;
use super::identity::Ids;
use super::{Engine, IdHashes};
use crate::event::Event;

/// Events warmed together: enough for their misses to overlap, few enough that what they
/// load stays in the core's own cache until they are applied.
pub const WARM_BATCH: usize = 16;

impl Engine {
    /// Loads what applying `events` (at most [`WARM_BATCH`] are used) will read. It changes
    /// nothing, so the events are then applied as usual, in order.
    pub fn warm<'a, 'e: 'a>(&self, events: impl Iterator<Item = &'a Event<'e>> + Clone) {
        let mut hashes: [IdHashes; WARM_BATCH] = [[None; 3]; WARM_BATCH];
        let events = events.take(WARM_BATCH);
        // 1. The name tables' buckets.
        for (h, event) in hashes.iter_mut().zip(events.clone()) {
            *h = self.hash_ids(event);
        }
        let n = events.clone().count();
        // 2. The dedup table (hashbrown's buckets cannot be prefetched, but lookups that do
        // not depend on each other overlap in a loop this short).
        let mut id = Encoded::default();
        let mut dedup = [0; WARM_BATCH];
        for (hash, event) in dedup.iter_mut().zip(events) {
            id.set(event.event_id.as_bytes());
            *hash = self.dedup.hash(&id);
        }
        for &hash in &dedup[..n] {
            self.dedup.warm(hash);
        }
        // 3. Buckets are in: the names' bytes and their nodes or account records.
        let mut ids = [Ids::default(); WARM_BATCH];
        for (ids, [account, contact, anon]) in ids.iter_mut().zip(&hashes[..n]) {
            let arena = &self.arena;
            *ids = Ids {
                account: account.and_then(|h| self.accounts.warm_name(arena, h)),
                contact: contact.and_then(|h| self.identity.warm_contact(arena, h)),
                anon: anon.and_then(|h| self.identity.warm_anon(arena, h)),
            };
        }
        // 4. Nodes are in: the account each touch goes to.
        let mut accounts = [None; WARM_BATCH];
        for (account, &ids) in accounts.iter_mut().zip(&ids[..n]) {
            *account = self.identity.resolve(ids);
            if let Some(a) = *account {
                self.accounts.prefetch_record(a);
            }
        }
        // 5. Records are in: the end of each account's touches.
        for &account in accounts[..n].iter().flatten() {
            self.accounts.prefetch_touches(account);
        }
    }
}
