//! Duplicate detection by `event_id` (SPEC §1).
//!
//! An accepted event is a duplicate when an earlier accepted event had the same id and that
//! earlier id is still remembered. An id is remembered for `dedup_window` of event time after
//! the `occurred_at` of the copy that was accepted: it is forgotten once the watermark is more
//! than `dedup_window` past that time. The check is exact whatever the purge schedule, because
//! an expired slot found by a lookup is treated as absent; purging only returns memory.
//!
//! The table keeps its own copy of each id (packed, [`super::event_ids`]) and compares full
//! bytes on every hash match, so a hash collision can never make an event a duplicate. Once
//! forgotten ids make up a third of that store, purging copies the remembered ones into a
//! fresh one, so forgotten ids really are let go (issue #2: memory follows the window, not the
//! whole history) while each id is copied a few times in its life, not at every purge.
//! Compaction re-points the slots where they lie instead of rebuilding the table: rehashing
//! every remembered id cost a random write each and was two thirds of the purge time.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::SnapshotError;
use super::event_ids::{Encoded, EventIds};
use super::store::StrRef;
use crate::codec::{Reader, Writer};
use crate::event::MAX_ID_BYTES;
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
    ids: EventIds,
    /// Entries in `ids`, forgotten ones included (slots point to `table.len()` of them).
    /// Entries, not bytes: counting bytes would read each forgotten id's length from the
    /// store as it is purged, a cache miss per id.
    stored: usize,
    purged_at: Millis,
}

impl Dedup {
    pub fn new(window: Millis) -> Dedup {
        Dedup {
            window,
            hasher: RandomState::default(),
            table: HashTable::new(),
            ids: EventIds::default(),
            stored: 0,
            purged_at: Millis::MIN,
        }
    }

    #[cfg(test)]
    fn expired(&self, slot: Slot, watermark: Millis) -> bool {
        watermark > slot.time().saturating_add(self.window)
    }

    /// The hash an id is looked up by, of its bytes as they came in rather than as stored,
    /// so that [`Engine::warm`](super::Engine::warm) can find it before the id is encoded
    /// and hand it on to [`Dedup::accept`] (issue #2: encoding and hashing each id once).
    pub fn hash(&self, raw: &[u8]) -> u64 {
        self.hasher.hash_one(raw)
    }

    /// [`Dedup::hash`] of a stored id, for a table that grows or is rebuilt.
    fn stored_hash(hasher: &RandomState, ids: &EventIds, at: StrRef) -> u64 {
        let mut buf = [0; MAX_ID_BYTES];
        hasher.hash_one(ids.raw(at, &mut buf))
    }

    /// Reads the table's control bytes where `hash` is looked up, so the lookup soon after
    /// finds them in the cache (hashbrown gives no address to prefetch; lookups of
    /// different ids in a short loop overlap instead). Compares no id: finds nothing.
    pub fn warm(&self, hash: u64) {
        std::hint::black_box(self.table.find(hash, |_| false));
    }

    /// Remembers `id` as accepted at `time` and returns `true`, or returns `false` when it is
    /// a duplicate of a remembered id. `hash` is [`Dedup::hash`] of the id; `watermark` is
    /// the one in force when the event is read.
    pub fn accept(&mut self, id: &Encoded, hash: u64, time: Millis, watermark: Millis) -> bool {
        let key = id.as_bytes();
        let window = self.window;
        let ids = &self.ids;
        if let Some(slot) = self
            .table
            .find_mut(hash, |slot| ids.encoded(slot.id) == key)
        {
            if watermark > slot.time().saturating_add(window) {
                // Forgotten: this copy is a new event, remembered from its own time on.
                *slot = Slot::new(slot.id, time);
                return true;
            }
            return false;
        }
        let at = self.ids.push(id);
        self.stored += 1;
        let hasher = &self.hasher;
        let ids = &self.ids;
        self.table.insert_unique(hash, Slot::new(at, time), |slot| {
            Dedup::stored_hash(hasher, ids, slot.id)
        });
        true
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
        let live = self.table.len();
        if self.stored > live + live / 2 + 512 {
            self.compact();
        }
    }

    /// Moves the remembered ids to a store of their own size and frees the old one with the
    /// forgotten ids in it. Ids keep their order, so the store's order (which a snapshot
    /// saves) is always the order ids were first stored in, never the table's hash order;
    /// reading the old store in order also spares a cache miss per id.
    ///
    /// The slots stay in their buckets and only their store positions change: every step
    /// reads or writes in memory order (or within a bucket-sized index that fits the cache),
    /// where rehashing each id into a cleared table wrote to a random bucket per id. Erasing
    /// leaves a tombstone where a probe run passed the bucket, and tombstones use up the
    /// table's room like ids do; once they fill half the room left, the table is rebuilt
    /// instead, which clears them, so they never make it grow.
    fn compact(&mut self) {
        let buckets = self.table.num_buckets();
        let full_capacity = if buckets < 8 {
            buckets.saturating_sub(1)
        } else {
            buckets / 8 * 7
        };
        let tombstones = full_capacity.saturating_sub(self.table.capacity());
        if tombstones > (full_capacity - self.table.len()) / 2 {
            return self.rebuild();
        }
        let table = &self.table;
        let mut by_id = crate::mem::vec_huge(table.len());
        by_id.extend(
            table
                .iter_buckets()
                .map(|b| (table.get_bucket(b).expect("a full bucket").id, b as u32)),
        );
        let by_id = sort_by_key(by_id, |&(id, _)| id);
        let mut kept = EventIds::with_capacity(
            self.ids.len() / self.stored.max(1) * (by_id.len() + by_id.len() / 8),
        );
        let mut moved = vec![StrRef::MAX; buckets];
        for &(id, bucket) in &by_id {
            moved[bucket as usize] = kept.copy_from(&self.ids, id);
        }
        for (bucket, &id) in moved.iter().enumerate() {
            if id != StrRef::MAX {
                self.table.get_bucket_mut(bucket).expect("a full bucket").id = id;
            }
        }
        self.ids = kept;
        self.stored = self.table.len();
    }

    /// [`Dedup::compact`] by reinserting every slot into the cleared table.
    fn rebuild(&mut self) {
        let slots = sort_by_key(self.table.iter().copied().collect(), |slot| slot.id);
        let mut kept = EventIds::with_capacity(
            self.ids.len() / self.stored.max(1) * (slots.len() + slots.len() / 8),
        );
        self.table.clear();
        for slot in slots {
            let id = kept.copy_from(&self.ids, slot.id);
            let (hasher, ids) = (&self.hasher, &kept);
            let hash = Dedup::stored_hash(hasher, ids, id);
            self.table
                .insert_unique(hash, Slot::new(id, slot.time()), |slot| {
                    Dedup::stored_hash(hasher, ids, slot.id)
                });
        }
        self.ids = kept;
        self.stored = self.table.len();
    }

    /// Ids currently remembered (including forgotten ones not yet purged).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    #[cfg(test)]
    fn accept_str(&mut self, id: &str, time: Millis, watermark: Millis) -> bool {
        let hash = self.hash(id.as_bytes());
        self.accept(&Encoded::new(id.as_bytes()), hash, time, watermark)
    }

    #[cfg(test)]
    fn is_remembered(&self, id: &[u8], watermark: Millis) -> bool {
        let key = Encoded::new(id);
        let hash = self.hash(id);
        self.table
            .find(hash, |slot| self.ids.encoded(slot.id) == key.as_bytes())
            .is_some_and(|&slot| !self.expired(slot, watermark))
    }

    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * (size_of::<Slot>() + 1) + self.ids.heap_bytes()
    }

    /// Saves every slot's time and id in the order of the id store (the order ids were first
    /// stored in, whatever the table's hash order: equal histories save equal bytes), then
    /// those ids back to back: a compacted store. The table is rebuilt on load.
    ///
    /// Forgotten slots not yet purged are saved too. `accept` treats them as absent, so
    /// dropping them would not change which events are duplicates, but it would change
    /// [`Dedup::len`] (a reported state size) and when the next purge has work to do.
    pub fn save(&self, w: &mut Writer<'_>) {
        let mut slots = crate::mem::vec_huge(self.table.len());
        slots.extend(self.table.iter().copied());
        let slots = sort_by_key(slots, |slot| slot.id);
        let id_bytes: usize = slots.iter().map(|s| self.ids.encoded(s.id).len()).sum();
        w.reserve(24 + 8 * slots.len() + id_bytes);
        w.i64(self.purged_at);
        w.len(slots.len());
        for slot in &slots {
            w.i64(slot.time());
        }
        w.len(id_bytes);
        for slot in &slots {
            w.raw(self.ids.encoded(slot.id));
        }
    }

    pub fn load(r: &mut Reader<'_>, window: Millis) -> Result<Dedup, SnapshotError> {
        r.section("dedup");
        let purged_at = r.i64()?;
        // A time and at least one byte of id each.
        let n = r.len(9)?;
        let times = r.take(8 * n)?;
        let ids = EventIds::load(r)?;
        let hasher = RandomState::default();
        let mut table = HashTable::with_capacity(n);
        let mut at = 0;
        for time in times.chunks_exact(8) {
            let time = Millis::from_le_bytes(time.try_into().expect("chunks of 8"));
            let (Some(end), Ok(id)) = (ids.entry_end(at), StrRef::try_from(at)) else {
                return Err(r.corrupt("fewer ids than times"));
            };
            let hash = Dedup::stored_hash(&hasher, &ids, id);
            table.insert_unique(hash, Slot::new(id, time), |slot| {
                Dedup::stored_hash(&hasher, &ids, slot.id)
            });
            at = end;
        }
        if at != ids.len() {
            return Err(r.corrupt("more ids than times"));
        }
        Ok(Dedup {
            window,
            hasher,
            stored: table.len(),
            table,
            ids,
            purged_at,
        })
    }
}

/// Sorts by a store position: a least-significant-digit radix sort, 11 bits per pass, so
/// three passes cover the 32-bit position (passes where every item has the same digit are
/// skipped). Stable. Several times faster than a comparison sort on the millions of slots a
/// snapshot saves while the engine waits.
fn sort_by_key<T: Copy>(mut items: Vec<T>, key: impl Fn(&T) -> StrRef) -> Vec<T> {
    const BITS: u32 = 11;
    const DIGITS: usize = 1 << BITS;
    // The scratch half is as big as the items: on huge pages, like the slots the snapshot
    // collects (`crate::mem`), or faulting it in costs more than the sort.
    let mut spare = crate::mem::vec_huge(items.len());
    spare.extend_from_slice(&items);
    let mut starts = vec![0usize; DIGITS];
    for shift in (0..u32::BITS).step_by(BITS as usize) {
        let digit = |item: &T| (key(item) >> shift) as usize & (DIGITS - 1);
        starts.fill(0);
        for item in &items {
            starts[digit(item)] += 1;
        }
        if starts.contains(&items.len()) {
            continue;
        }
        let mut sum = 0;
        for start in &mut starts {
            (*start, sum) = (sum, sum + *start);
        }
        for item in &items {
            let at = &mut starts[digit(item)];
            spare[*at] = *item;
            *at += 1;
        }
        std::mem::swap(&mut items, &mut spare);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Millis = 86_400_000;

    #[test]
    fn equal_histories_save_equal_bytes_across_compactions() {
        // Each table has its own random hasher, so only the store's order can make this hold.
        let save = || {
            let mut dedup = Dedup::new(DAY);
            // Until the store has just been compacted, with a hundred ids remembered.
            for i in 0.. {
                let before = dedup.ids.len();
                dedup.accept_str(&format!("event-{i}"), i * DAY / 100, Millis::MIN);
                dedup.purge(i * DAY / 100);
                if dedup.ids.len() < before {
                    break;
                }
            }
            assert!(dedup.len() > 50);
            let mut bytes = Vec::new();
            dedup.save(&mut Writer::new(&mut bytes));
            bytes
        };
        assert!(save() == save());
    }

    #[test]
    fn slots_sort_by_key_like_a_comparison_sort() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut slots: Vec<Slot> = (0..5000)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let id = if i % 2 == 0 {
                    state as u32
                } else {
                    state as u32 & 0xffff
                };
                Slot::new(id, i)
            })
            .collect();
        let sorted = sort_by_key(slots.clone(), |slot| slot.id);
        slots.sort_by_key(|slot| slot.id);
        let key = |s: &[Slot]| s.iter().map(|s| (s.id, s.time())).collect::<Vec<_>>();
        assert_eq!(key(&sorted), key(&slots), "stable, like sort_by_key");
        assert!(sort_by_key(Vec::<Slot>::new(), |slot| slot.id).is_empty());
    }

    #[test]
    fn compaction_in_place_or_by_rebuild_keeps_what_is_remembered() {
        // A model of the rule (SPEC §1) beside the table, through many purges, with both
        // kinds of compaction forced in turn as well as the ones purging decides on.
        let mut dedup = Dedup::new(DAY);
        let mut model = std::collections::HashMap::<String, Millis>::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut watermark = Millis::MIN;
        let (mut rebuilt, mut in_place) = (0, 0);
        for i in 0..60_000i64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Ids repeat within and beyond the window; some are long enough to go unpacked.
            let n = state % 9000;
            let name = if n.is_multiple_of(7) {
                format!("id-{n}-{}", "x".repeat(n as usize % 40))
            } else {
                format!("{n:08x}")
            };
            let time = i * DAY / 2000 - (state >> 40) as i64 % (DAY / 4);
            let remembered = model.get(&name).is_some_and(|&t| watermark <= t + DAY);
            assert_eq!(
                dedup.accept_str(&name, time, watermark),
                !remembered,
                "event {i}, id {name}"
            );
            if !remembered {
                model.insert(name, time);
            }
            watermark = watermark.max(i * DAY / 2000 - DAY / 10);
            dedup.purge(watermark);
            if i % 5000 == 2500 {
                if (i / 5000) % 2 == 0 {
                    dedup.rebuild();
                    rebuilt += 1;
                } else {
                    dedup.compact();
                    in_place += 1;
                }
                assert_eq!(dedup.stored, dedup.len());
            }
        }
        assert!(rebuilt > 3 && in_place > 3);
        for (name, &time) in &model {
            assert_eq!(
                dedup.is_remembered(name.as_bytes(), watermark),
                watermark <= time + DAY,
                "{name}"
            );
        }
    }

    #[test]
    fn second_copy_is_a_duplicate_within_the_window() {
        let mut dedup = Dedup::new(30 * DAY);
        assert!(dedup.accept_str("e1", 0, Millis::MIN));
        assert!(!dedup.accept_str("e1", 5 * DAY, 0));
        assert!(dedup.accept_str("e2", 0, 0));
    }

    #[test]
    fn id_is_remembered_exactly_for_the_window() {
        let mut dedup = Dedup::new(30 * DAY);
        assert!(dedup.accept_str("e1", DAY, Millis::MIN));
        // At exactly window past the first copy it is still remembered…
        assert!(!dedup.accept_str("e1", DAY, 31 * DAY));
        // …one millisecond later it is forgotten, and the new copy is remembered from its time.
        assert!(dedup.accept_str("e1", 40 * DAY, 31 * DAY + 1));
        assert!(dedup.is_remembered(b"e1", 70 * DAY));
        assert!(!dedup.is_remembered(b"e1", 70 * DAY + 1));
    }

    #[test]
    fn purge_keeps_remembered_ids_and_drops_forgotten_ones() {
        let mut dedup = Dedup::new(DAY);
        for i in 0..100 {
            dedup.accept_str(&format!("e{i}"), i * DAY / 10, Millis::MIN);
        }
        let before = dedup.ids.len();
        dedup.purge(5 * DAY);
        dedup.compact();
        assert!(dedup.len() < 100);
        assert!(
            dedup.ids.len() < before,
            "forgotten ids are let go on compaction"
        );
        assert!(!dedup.accept_str("e99", 0, 5 * DAY));
        assert!(dedup.accept_str("e1", 5 * DAY, 5 * DAY), "e1 was forgotten");
        assert!(
            !dedup.accept_str("e1", 5 * DAY, 5 * DAY),
            "and is remembered again"
        );
    }
}
