//! Duplicate detection by `event_id` (SPEC §1).
//!
//! An accepted event is a duplicate when an earlier accepted event had the same id and that
//! earlier id is still remembered. An id is remembered for `dedup_window` of event time after
//! the `occurred_at` of the copy that was accepted: it is forgotten once the watermark is more
//! than `dedup_window` past that time. The check is exact whatever the purge schedule, because
//! an expired slot found by a lookup is treated as absent; purging only returns memory.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::store::{StrArena, StrRef};
use crate::time::Millis;

#[derive(Debug, Clone, Copy)]
struct Slot {
    id: StrRef,
    // The accepted copy's event time, split so a slot is 12 bytes rather than 16.
    time_hi: u32,
    time_lo: u32,
}

impl Slot {
    fn new(id: StrRef, time: Millis) -> Slot {
        Slot {
            id,
            time_hi: ((time as u64) >> 32) as u32,
            time_lo: time as u32,
        }
    }

    fn time(self) -> Millis {
        (((self.time_hi as u64) << 32) | self.time_lo as u64) as i64
    }
}

#[derive(Debug)]
pub struct Dedup {
    window: Millis,
    hasher: RandomState,
    table: HashTable<Slot>,
    purged_at: Millis,
}

impl Dedup {
    pub fn new(window: Millis) -> Dedup {
        Dedup {
            window,
            hasher: RandomState::default(),
            table: HashTable::new(),
            purged_at: Millis::MIN,
        }
    }

    #[cfg(test)]
    fn expired(&self, slot: Slot, watermark: Millis) -> bool {
        watermark > slot.time().saturating_add(self.window)
    }

    /// Remembers `id` as accepted at `time` and returns where its bytes are stored, or `None`
    /// when it is a duplicate of a remembered id. `watermark` is the one in force when the
    /// event is read.
    pub fn accept(
        &mut self,
        arena: &mut StrArena,
        id: &[u8],
        time: Millis,
        watermark: Millis,
    ) -> Option<StrRef> {
        let hash = self.hasher.hash_one(id);
        let window = self.window;
        let found = self.table.find_mut(hash, |slot| arena.get(slot.id) == id);
        if let Some(slot) = found {
            if watermark > slot.time().saturating_add(window) {
                // Forgotten: this copy is a new event, remembered from its own time on.
                *slot = Slot::new(slot.id, time);
                return Some(slot.id);
            }
            return None;
        }
        let at = arena.push(id);
        let hasher = &self.hasher;
        let arena = &*arena;
        self.table.insert_unique(hash, Slot::new(at, time), |slot| {
            hasher.hash_one(arena.get(slot.id))
        });
        Some(at)
    }

    /// Drops forgotten ids once the watermark has moved an eighth of the window (at least a
    /// minute) since the last purge, so purging costs a bounded share of the work.
    pub fn purge(&mut self, watermark: Millis) {
        let step = (self.window / 8).max(60_000);
        if watermark < self.purged_at.saturating_add(step) {
            return;
        }
        self.purged_at = watermark;
        let window = self.window;
        self.table
            .retain(|slot| watermark <= slot.time().saturating_add(window));
    }

    /// Ids currently remembered (including forgotten ones not yet purged).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    #[cfg(test)]
    fn is_remembered(&self, arena: &StrArena, id: &[u8], watermark: Millis) -> bool {
        let hash = self.hasher.hash_one(id);
        self.table
            .find(hash, |slot| arena.get(slot.id) == id)
            .is_some_and(|&slot| !self.expired(slot, watermark))
    }

    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * (size_of::<Slot>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Millis = 86_400_000;

    #[test]
    fn second_copy_is_a_duplicate_within_the_window() {
        let mut arena = StrArena::default();
        let mut dedup = Dedup::new(30 * DAY);
        assert!(dedup.accept(&mut arena, b"e1", 0, Millis::MIN).is_some());
        assert!(dedup.accept(&mut arena, b"e1", 5 * DAY, 0).is_none());
        assert!(dedup.accept(&mut arena, b"e2", 0, 0).is_some());
    }

    #[test]
    fn id_is_remembered_exactly_for_the_window() {
        let mut arena = StrArena::default();
        let mut dedup = Dedup::new(30 * DAY);
        let first = dedup.accept(&mut arena, b"e1", DAY, Millis::MIN).unwrap();
        // At exactly window past the first copy it is still remembered…
        assert!(dedup.accept(&mut arena, b"e1", DAY, 31 * DAY).is_none());
        // …one millisecond later it is forgotten, and the new copy is remembered from its time.
        let again = dedup
            .accept(&mut arena, b"e1", 40 * DAY, 31 * DAY + 1)
            .unwrap();
        assert_eq!(first, again, "the stored bytes are reused");
        assert!(dedup.is_remembered(&arena, b"e1", 70 * DAY));
        assert!(!dedup.is_remembered(&arena, b"e1", 70 * DAY + 1));
    }

    #[test]
    fn purge_keeps_remembered_ids_and_drops_forgotten_ones() {
        let mut arena = StrArena::default();
        let mut dedup = Dedup::new(DAY);
        for i in 0..100 {
            dedup.accept(
                &mut arena,
                format!("e{i}").as_bytes(),
                i * DAY / 10,
                Millis::MIN,
            );
        }
        dedup.purge(5 * DAY);
        assert!(dedup.len() < 100);
        assert!(dedup.accept(&mut arena, b"e99", 0, 5 * DAY).is_none());
    }
}
