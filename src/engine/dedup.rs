//! Duplicate detection by `event_id` (SPEC §1).
//!
//! An accepted event is a duplicate when an earlier accepted event had the same id and that
//! earlier id is still remembered. An id is remembered for `dedup_window` of event time after
//! the `occurred_at` of the copy that was accepted: it is forgotten once the watermark is more
//! than `dedup_window` past that time. The check is exact whatever the purge schedule, because
//! an expired slot found by a lookup is treated as absent; purging only returns memory.
//!
//! The table keeps its own copy of each id and compares the whole id on every hash match, so
//! a hash collision can never make an event a duplicate. An id that fits in a word (16 hex
//! characters, the usual event id, or a short one: [`Word`]) is held in its slot, so a lookup
//! reads one line and a purge frees it with the slot (issue #2). A longer id is kept packed
//! in a store of its own ([`super::event_ids`]). Once forgotten ids make up a third of that
//! store, purging copies the remembered ones into a fresh one, so forgotten ids really are
//! let go (memory follows the window, not the whole history) while each id is copied a few
//! times in its life, not at every purge. Compaction re-points the slots where they lie
//! instead of rebuilding the table: rehashing every remembered id cost a random write each
//! and was two thirds of the purge time.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::SnapshotError;
use super::event_ids::{Encoded, EventIds, Word};
use super::store::StrRef;
use crate::codec::{Reader, Writer};
use crate::event::MAX_ID_BYTES;
use crate::time::Millis;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The id's [`Word`], or its position in the store.
    word: u64,
    /// The word's kind (`STORED`, `HEX16`, `SHORT`) in the top byte; below it the accepted
    /// copy's event time, 56 bits (± a million years) where SPEC §1 allows 0000 to 9999.
    meta: u64,
}

const STORED: u8 = 0;
const HEX16: u8 = 1;
const SHORT: u8 = 2;

impl Slot {
    /// A slot for an id held here (`Ok`) or at a position in the store (`Err`), as
    /// [`Slot::id`] gives it back.
    fn new(id: Result<Word, StrRef>, time: Millis) -> Slot {
        let (kind, word) = match id {
            Ok(Word::Hex16(word)) => (HEX16, word),
            Ok(Word::Short(word)) => (SHORT, word),
            Err(at) => (STORED, u64::from(at)),
        };
        Slot {
            word,
            meta: u64::from(kind) << 56 | (time as u64 & TIME_BITS),
        }
    }

    fn time(self) -> Millis {
        ((self.meta << 8) as i64) >> 8
    }

    fn with_time(self, time: Millis) -> Slot {
        Slot {
            word: self.word,
            meta: self.meta & !TIME_BITS | (time as u64 & TIME_BITS),
        }
    }

    fn kind(self) -> u8 {
        (self.meta >> 56) as u8
    }

    /// Its id: held here, or where it is in the store.
    fn id(self) -> Result<Word, StrRef> {
        match self.kind() {
            HEX16 => Ok(Word::Hex16(self.word)),
            SHORT => Ok(Word::Short(self.word)),
            _ => Err(self.word as StrRef),
        }
    }

    /// Its position in the store, for an id kept there.
    fn stored(self) -> Option<StrRef> {
        self.id().err()
    }

    /// Its id's encoding, from the slot or the store.
    fn encoded<'a>(self, ids: &'a EventIds, buf: &'a mut [u8; 9]) -> &'a [u8] {
        match self.id() {
            Ok(word) => word.encoded(buf),
            Err(at) => ids.encoded(at),
        }
    }

    /// Whether it holds `id` (`word` is the id's [`Word`], if it has one).
    #[inline]
    fn holds(self, id: &Encoded, word: Option<Word>, ids: &EventIds) -> bool {
        match (word, self.id()) {
            (Some(word), Ok(held)) => word == held,
            (None, Err(at)) => ids.encoded(at) == id.as_bytes(),
            _ => false,
        }
    }
}

/// The bits of [`Slot::meta`] that hold the time.
const TIME_BITS: u64 = (1 << 56) - 1;

/// Whether a slot can hold `time` ([`Slot::meta`]): any time SPEC §1 accepts can.
fn time_fits(time: Millis) -> bool {
    (time << 8) >> 8 == time
}

#[derive(Debug)]
pub struct Dedup {
    window: Millis,
    hasher: RandomState,
    table: HashTable<Slot>,
    ids: EventIds,
    /// Entries in `ids`, forgotten ones included (the slots of longer ids point to the
    /// remembered ones; ids held in their slots are not there).
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

    /// [`Dedup::hash`] of a slot's id, for a table that grows or is rebuilt.
    fn slot_hash(hasher: &RandomState, ids: &EventIds, slot: Slot) -> u64 {
        let mut buf = [0; MAX_ID_BYTES];
        match slot.id() {
            Ok(word) => hasher.hash_one(word.raw(&mut buf)),
            Err(at) => hasher.hash_one(ids.raw(at, &mut buf)),
        }
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
        let word = id.word();
        let window = self.window;
        let ids = &self.ids;
        if let Some(slot) = self.table.find_mut(hash, |slot| slot.holds(id, word, ids)) {
            if watermark > slot.time().saturating_add(window) {
                // Forgotten: this copy is a new event, remembered from its own time on.
                *slot = slot.with_time(time);
                return true;
            }
            return false;
        }
        let held = word.ok_or_else(|| {
            self.stored += 1;
            self.ids.push(id)
        });
        let hasher = &self.hasher;
        let ids = &self.ids;
        self.table
            .insert_unique(hash, Slot::new(held, time), |&slot| {
                Dedup::slot_hash(hasher, ids, slot)
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
        let mut live = 0;
        self.table.retain(|slot| {
            let kept = watermark <= slot.time().saturating_add(window);
            live += usize::from(kept && slot.kind() == STORED);
            kept
        });
        if self.stored > live + live / 2 + 512 {
            self.compact();
        }
    }

    /// Moves the remembered ids of the store to one of their own size and frees the old one
    /// with the forgotten ids in it. Ids keep their order, so the store's order (which a
    /// snapshot keeps) is always the order ids were first stored in, never the table's hash
    /// order; reading the old store in order also spares a cache miss per id.
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
        by_id.extend(table.iter_buckets().filter_map(|b| {
            let slot = table.get_bucket(b).expect("a full bucket");
            slot.stored().map(|at| (at, b as u32))
        }));
        let by_id = sort_by_key(by_id, |&(at, _)| u64::from(at));
        let mut kept = EventIds::with_capacity(
            self.ids.len() / self.stored.max(1) * (by_id.len() + by_id.len() / 8),
        );
        let mut moved = vec![StrRef::MAX; buckets];
        for &(id, bucket) in &by_id {
            moved[bucket as usize] = kept.copy_from(&self.ids, id);
        }
        for (bucket, &at) in moved.iter().enumerate() {
            if at != StrRef::MAX {
                self.table
                    .get_bucket_mut(bucket)
                    .expect("a full bucket")
                    .word = u64::from(at);
            }
        }
        self.ids = kept;
        self.stored = by_id.len();
    }

    /// [`Dedup::compact`] by reinserting every slot into the cleared table.
    fn rebuild(&mut self) {
        let (stored, held): (Vec<Slot>, Vec<Slot>) =
            self.table.iter().partition(|slot| slot.kind() == STORED);
        let stored = sort_by_key(stored, |slot| slot.word);
        let mut kept = EventIds::with_capacity(
            self.ids.len() / self.stored.max(1) * (stored.len() + stored.len() / 8),
        );
        self.table.clear();
        self.stored = stored.len();
        for mut slot in stored.into_iter().chain(held) {
            if let Some(at) = slot.stored() {
                slot.word = u64::from(kept.copy_from(&self.ids, at));
            }
            let (hasher, ids) = (&self.hasher, &kept);
            let hash = Dedup::slot_hash(hasher, ids, slot);
            self.table
                .insert_unique(hash, slot, |&slot| Dedup::slot_hash(hasher, ids, slot));
        }
        self.ids = kept;
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
        let word = key.word();
        self.table
            .find(self.hash(id), |slot| slot.holds(&key, word, &self.ids))
            .is_some_and(|&slot| !self.expired(slot, watermark))
    }

    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * (size_of::<Slot>() + 1) + self.ids.heap_bytes()
    }

    /// Saves every slot's time and id in an order that depends only on what the table holds,
    /// never on its hash order (equal histories save equal bytes), then those ids back to
    /// back: a compacted store. The table is rebuilt on load. Ids of the store keep the
    /// store's order (the order they were first stored in) among themselves.
    ///
    /// Forgotten slots not yet purged are saved too. `accept` treats them as absent, so
    /// dropping them would not change which events are duplicates, but it would change
    /// [`Dedup::len`] (a reported state size) and when the next purge has work to do.
    pub fn save(&self, w: &mut Writer<'_>) {
        let mut slots = crate::mem::vec_huge(self.table.len());
        slots.extend(self.table.iter().copied());
        let slots = canonical_order(slots);
        let id_bytes: usize = slots
            .iter()
            .map(|slot| match slot.id() {
                Ok(word) => word.encoded_len(),
                Err(at) => self.ids.encoded(at).len(),
            })
            .sum();
        w.reserve(24 + 8 * slots.len() + id_bytes);
        w.i64(self.purged_at);
        w.len(slots.len());
        for slot in &slots {
            w.i64(slot.time());
        }
        w.len(id_bytes);
        let mut buf = [0; 9];
        for slot in &slots {
            w.raw(slot.encoded(&self.ids, &mut buf));
        }
    }

    pub fn load(r: &mut Reader<'_>, window: Millis) -> Result<Dedup, SnapshotError> {
        r.section("dedup");
        let purged_at = r.i64()?;
        // A time and at least one byte of id each.
        let n = r.len(9)?;
        let times = r.take(8 * n)?;
        let saved = EventIds::load(r)?;
        let hasher = RandomState::default();
        let mut table = HashTable::with_capacity(n);
        let mut ids = EventIds::default();
        let mut at = 0;
        for time in times.chunks_exact(8) {
            let time = Millis::from_le_bytes(time.try_into().expect("chunks of 8"));
            let (Some(end), Ok(id)) = (saved.entry_end(at), StrRef::try_from(at)) else {
                return Err(r.corrupt("fewer ids than times"));
            };
            if !time_fits(time) {
                return Err(r.corrupt("a remembered id's time is out of range"));
            }
            let held = Word::of(saved.encoded(id)).ok_or_else(|| ids.copy_from(&saved, id));
            let slot = Slot::new(held, time);
            let hash = Dedup::slot_hash(&hasher, &ids, slot);
            table.insert_unique(hash, slot, |&slot| Dedup::slot_hash(&hasher, &ids, slot));
            at = end;
        }
        if at != saved.len() {
            return Err(r.corrupt("more ids than times"));
        }
        Ok(Dedup {
            window,
            hasher,
            stored: table.iter().filter(|slot| slot.kind() == STORED).count(),
            table,
            ids,
            purged_at,
        })
    }
}

/// Slots in the order a snapshot saves them: by [`order_key`], then (where keys tie) by kind
/// and word, which no two slots share. Radix-sorting by a 32-bit key and settling the rare
/// ties after costs the three passes that sorting by store position alone did; a sort by
/// the 64-bit word would take six, and held the consumer 75 % longer per checkpoint.
fn canonical_order(slots: Vec<Slot>) -> Vec<Slot> {
    let mut slots = sort_by_key(slots, |&slot| u64::from(order_key(slot)));
    for run in slots.chunk_by_mut(|a, b| order_key(*a) == order_key(*b)) {
        if run.len() > 1 {
            run.sort_unstable_by_key(|slot| (slot.kind(), slot.word));
        }
    }
    slots
}

/// A slot's place in [`canonical_order`]: its store position, for an id in the store (so
/// those keep their order); a fixed mix of its word's bits otherwise, as ids that count up
/// differ only in a few bytes (which bytes depends on their form). Deterministic, unlike the
/// table's hasher, which is seeded per process.
fn order_key(slot: Slot) -> u32 {
    match slot.id() {
        Ok(_) => (slot.word.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32,
        Err(at) => at,
    }
}

/// Sorts by a 64-bit key: a least-significant-digit radix sort, 11 bits per pass (passes
/// where every item has the same digit are skipped, so a 32-bit store position takes three).
/// Stable. Several times faster than a comparison sort on the millions of slots a snapshot
/// saves while the engine waits.
fn sort_by_key<T: Copy>(mut items: Vec<T>, key: impl Fn(&T) -> u64) -> Vec<T> {
    const BITS: u32 = 11;
    const DIGITS: usize = 1 << BITS;
    // The scratch half is as big as the items: on huge pages, like the slots the snapshot
    // collects (`crate::mem`), or faulting it in costs more than the sort.
    let mut spare = crate::mem::vec_huge(items.len());
    spare.extend_from_slice(&items);
    let mut starts = vec![0usize; DIGITS];
    for shift in (0..u64::BITS).step_by(BITS as usize) {
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
                let word = match i % 3 {
                    0 => state,
                    1 => state & 0xffff_ffff,
                    _ => state & 0xffff,
                };
                Slot::new(Ok(Word::Hex16(word)), i)
            })
            .collect();
        let sorted = sort_by_key(slots.clone(), |slot| slot.word);
        slots.sort_by_key(|slot| slot.word);
        let key = |s: &[Slot]| s.iter().map(|s| (s.word, s.time())).collect::<Vec<_>>();
        assert_eq!(key(&sorted), key(&slots), "stable, like sort_by_key");
        assert!(sort_by_key(Vec::<Slot>::new(), |slot| slot.word).is_empty());
    }

    #[test]
    fn the_saved_order_does_not_depend_on_the_table_order() {
        // Held ids of both kinds (some equal words, so their keys tie) and stored ones, in
        // two different orders, as two tables with different hashers would list them.
        let mut slots = Vec::new();
        for i in 0..3000u64 {
            let word = i.wrapping_mul(0x2545_f491_4f6c_dd1d) % 1000;
            slots.push(Slot::new(Ok(Word::Hex16(word)), i as Millis));
            slots.push(Slot::new(Ok(Word::Short(word + 7)), i as Millis));
            slots.push(Slot::new(Err((i * 7) as StrRef), i as Millis));
        }
        slots.sort_by_key(|s| (s.kind(), s.word));
        slots.dedup_by_key(|s| (s.kind(), s.word));
        let key = |s: &[Slot]| s.iter().map(|s| (s.word, s.meta)).collect::<Vec<_>>();
        let forward = canonical_order(slots.clone());
        slots.reverse();
        let backward = canonical_order(slots.clone());
        slots.rotate_left(1234);
        assert_eq!(key(&forward), key(&backward));
        assert_eq!(key(&forward), key(&canonical_order(slots)));
        let stored: Vec<_> = forward.iter().filter_map(|s| s.stored()).collect();
        assert!(stored.is_sorted(), "ids of the store keep its order");
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
            // Ids repeat within and beyond the window; some are long enough to go to the
            // store, the others are held in their slots (16 hex characters, or short).
            let n = state % 9000;
            let name = if n.is_multiple_of(7) {
                format!("id-{n}-{}", "x".repeat(n as usize % 40))
            } else if n.is_multiple_of(2) {
                format!("{n:016x}")
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
                let stored = dedup.table.iter().filter(|s| s.kind() == STORED).count();
                assert_eq!(dedup.stored, stored);
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
    fn ids_that_fit_a_word_are_held_in_their_slots() {
        let mut dedup = Dedup::new(DAY);
        assert!(dedup.accept_str("b168f04bd6e80e2a", 0, 0));
        assert!(dedup.accept_str("e1", 0, 0));
        assert!(
            dedup.accept_str("b168f04b", 0, 0),
            "hex, but short: not the 16 above"
        );
        assert_eq!(dedup.ids.len(), 0, "none of them in the store");
        assert!(dedup.accept_str("B168F04BD6E80E2A", 0, 0));
        assert!(
            dedup.ids.len() > 0,
            "uppercase hex is not packed: too long for a word"
        );
        for id in ["b168f04bd6e80e2a", "e1", "b168f04b", "B168F04BD6E80E2A"] {
            assert!(!dedup.accept_str(id, 0, 0), "{id} is a duplicate");
        }
        assert!(dedup.accept_str("b168f04bd6e80e2b", 0, 0));
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
        // Ids too long for a slot, so they go to the store.
        let id = |i| format!("event-number-{i}");
        for i in 0..100 {
            dedup.accept_str(&id(i), i * DAY / 10, Millis::MIN);
        }
        let before = dedup.ids.len();
        dedup.purge(5 * DAY);
        dedup.compact();
        assert!(dedup.len() < 100);
        assert!(
            dedup.ids.len() < before,
            "forgotten ids are let go on compaction"
        );
        assert!(!dedup.accept_str(&id(99), 0, 5 * DAY));
        assert!(
            dedup.accept_str(&id(1), 5 * DAY, 5 * DAY),
            "1 was forgotten"
        );
        assert!(
            !dedup.accept_str(&id(1), 5 * DAY, 5 * DAY),
            "and is remembered again"
        );
    }
}
