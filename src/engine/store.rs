//! Compact storage for the strings the engine must keep: event ids, account, contact and
//! anonymous ids.
//!
//! Memory per retained touch is a headline figure (issue #2: 48 bytes per touch, 64 per
//! account), so strings live back to back in one byte arena and everything else refers to them
//! by a `u32` offset instead of owning a `String` (24 bytes of header plus an allocation each).

use foldhash::fast::RandomState;
use std::hash::BuildHasher;

use super::SnapshotError;
use super::name_code::{self, Shapes};
use super::names::NameTable;
use crate::codec::{Reader, Writer};
use crate::event::MAX_ID_BYTES;

/// Offset of a string in a [`StrArena`].
pub type StrRef = u32;

/// Byte arena of names, each an entry of [`super::name_code`] (a header, then the name with
/// its hex tail packed and its shape coded), appended to as names are interned. The names an
/// [`Interner`] forgets are counted as dead bytes, and [`StrArena::compact`] slides the live
/// ones together once the dead make up a fifth of the arena.
#[derive(Debug, Default)]
pub struct StrArena {
    bytes: Vec<u8>,
    /// The shapes of names (prefix, tail length) entries refer to by code.
    shapes: Shapes,
    /// Bytes of forgotten strings.
    dead: usize,
}

/// Bytes of the arena compacted at a time ([`StrArena::compact`]): about 11 000 names of
/// the usual 20-odd bytes, 90 KB to sort. Each span scans every name, which smaller spans
/// pay for in time; tested 32 at a time, a 1 M event replay's two compactions take 0.7 % of
/// its samples (0.9 % when all names were sorted at once, 1.6 % one name at a time). Tests
/// take many small spans.
const COMPACT_SPAN: usize = if cfg!(test) { 64 } else { 1 << 18 };
/// Names tested together for whether any lies in the span being compacted.
const CHUNK: usize = 32;

/// Where a forgotten name's position was in [`Interner::names`].
const FREE: StrRef = StrRef::MAX;

impl StrArena {
    /// Appends a name's entry.
    pub fn push(&mut self, name: &[u8]) -> StrRef {
        let at = self.bytes.len();
        let Ok(at) = StrRef::try_from(at) else {
            // Four GiB of ids is far past the memory this engine is sized for; stopping loudly
            // beats silently aliasing ids.
            panic!("string arena is full (4 GiB of ids): split the input over more partitions");
        };
        name_code::encode(name, &mut self.shapes, &mut self.bytes);
        at
    }

    /// The encoded entry at `at`.
    #[cfg(test)]
    pub fn entry(&self, at: StrRef) -> &[u8] {
        &self.bytes[at as usize..at as usize + self.stored_len(at)]
    }

    /// The name at `at`, decoded into `buf` when its tail was packed.
    pub fn get<'a>(&'a self, at: StrRef, buf: &'a mut [u8; MAX_ID_BYTES]) -> &'a [u8] {
        name_code::decode(&self.bytes[at as usize..], &self.shapes, buf)
    }

    /// Bytes the entry at `at` takes, its header included.
    fn stored_len(&self, at: StrRef) -> usize {
        name_code::entry_len(&self.bytes[at as usize..], &self.shapes)
            .expect("the arena holds whole entries")
    }

    /// Whether forgotten strings are a fifth of the arena, so [`StrArena::compact`] is due.
    /// Each compaction then moves at most four live bytes per dead byte it frees.
    pub fn compaction_due(&self) -> bool {
        self.dead > 4096 && self.dead * 5 >= self.bytes.len()
    }

    /// Slides the live names of `interners` (all the arena's owners) together, in arena
    /// order and in place, and points their tables at the new positions.
    ///
    /// The arena is taken a span of [`COMPACT_SPAN`] bytes at a time: the live names in the
    /// span are gathered from the interners, sorted by position and moved. Sorting all the
    /// names at once took 4 bytes per name for the moment, 1.4 MB at the end of a 1 M event
    /// replay, where it set the peak RSS. (Finding each entry's owner by its hash instead
    /// needs no memory at all, but a table miss or three per entry made compaction six times
    /// slower.)
    pub fn compact(&mut self, interners: &mut [&mut Interner]) {
        // One u64 per live name of the span, which sorts by position: its offset in the span
        // (below 2^20), the interner (below 4), its index (below 2^32).
        const _: () = assert!(COMPACT_SPAN <= 1 << 20);
        assert!(interners.len() <= 4, "two bits name the interner");
        let mut span: Vec<u64> = Vec::new();
        let (mut lo, mut to) = (0, 0);
        while lo < self.bytes.len() {
            let lo32 = lo as u32;
            for (k, interner) in interners.iter().enumerate() {
                for (c, chunk) in interner.names.chunks(CHUNK).enumerate() {
                    // `lo <= at < lo + span` in one comparison (a forgotten name's `FREE`
                    // is past any span); most chunks have no name in the span, and this
                    // test of a whole chunk compiles to vector instructions.
                    let inside = |at: u32| at.wrapping_sub(lo32) < COMPACT_SPAN as u32;
                    if !chunk.iter().fold(false, |any, &at| any | inside(at)) {
                        continue;
                    }
                    for (j, &at) in chunk.iter().enumerate() {
                        if inside(at) && at != FREE {
                            let i = (c * CHUNK + j) as u64;
                            span.push(u64::from(at - lo32) << 34 | (k as u64) << 32 | i);
                        }
                    }
                }
            }
            span.sort_unstable();
            for item in span.drain(..) {
                let (at, k, i) = ((item >> 34) as usize + lo, (item >> 32) & 3, item as u32);
                let len = self.stored_len(at as StrRef);
                self.bytes.copy_within(at..at + len, to);
                interners[k as usize].names[i as usize] = to as StrRef;
                to += len;
            }
            lo += COMPACT_SPAN;
        }
        assert_eq!(
            to + self.dead,
            self.bytes.len(),
            "the arena holds only interned names"
        );
        self.bytes.truncate(to);
        self.bytes.shrink_to_fit();
        self.dead = 0;
    }

    /// Counts as dead every byte not in a live name of `interners` (all the arena's owners):
    /// the arena is saved as it is, dead bytes included, and this restores the count. Names
    /// that overlap are refused: compaction moves each name once, in arena order.
    pub fn recount_dead(&mut self, interners: &[&Interner]) -> Result<(), SnapshotError> {
        let mut spans: Vec<(usize, usize)> = interners
            .iter()
            .flat_map(|n| n.names.iter().filter(|&&at| at != FREE))
            .map(|&at| (at as usize, at as usize + self.stored_len(at)))
            .collect();
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err(SnapshotError::Corrupt(
                "string arena: two names overlap".to_string(),
            ));
        }
        let live: usize = spans.iter().map(|(start, end)| end - start).sum();
        self.dead = self.bytes.len() - live;
        Ok(())
    }

    /// The name as text; the engine only stores validated UTF-8.
    pub fn get_string(&self, at: StrRef) -> String {
        let mut buf = [0; MAX_ID_BYTES];
        String::from_utf8_lossy(self.get(at, &mut buf)).into_owned()
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// Whether `at` starts a well-formed entry that lies inside the arena (a snapshot check:
    /// it makes [`StrArena::get`] safe, not necessarily meaningful).
    pub fn valid(&self, at: StrRef) -> bool {
        self.bytes
            .get(at as usize..)
            .and_then(|entry| name_code::entry_len(entry, &self.shapes))
            .is_some()
    }

    pub fn save(&self, w: &mut Writer<'_>) {
        w.bytes(&self.bytes);
        self.shapes.save(w);
    }

    pub fn load(r: &mut Reader<'_>) -> Result<StrArena, SnapshotError> {
        r.section("string arena");
        Ok(StrArena {
            bytes: r.bytes()?.to_vec(),
            shapes: Shapes::load(r)?,
            dead: 0,
        })
    }
}

/// (index, hash) of each of `names` that is not forgotten, in index order: nearly the order
/// of the names in the arena.
fn entries<'a>(
    hasher: &'a RandomState,
    names: &'a [StrRef],
    arena: &'a StrArena,
) -> impl Iterator<Item = (u32, u64)> + 'a {
    let live = (0..).zip(names).filter(|&(_, &at)| at != FREE);
    live.map(|(i, &at)| (i, hasher.hash_one(arena.get(at, &mut [0; MAX_ID_BYTES]))))
}

/// A set of names, each given a dense index `0, 1, 2, …` in order of first appearance.
///
/// The table holds indexes: a lookup reads a bucket, the name's arena position here and its
/// entry in the arena.
/// A name can be forgotten ([`Interner::forget`]); its index is then handed to the next new
/// name, so the per-index tables of the owner stay as long as the names alive at once.
#[derive(Debug, Default)]
pub struct Interner {
    hasher: RandomState,
    table: NameTable,
    names: Vec<StrRef>,
    /// Forgotten indexes, the next to reuse last.
    free: Vec<u32>,
}

impl Interner {
    /// Indexes handed out, forgotten ones included: every index is below this.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Names known now.
    pub fn live(&self) -> usize {
        self.names.len() - self.free.len()
    }

    /// Forgets the name with index `i`: it is as if it had never been interned, and `i` goes
    /// to the next new name.
    pub fn forget(&mut self, arena: &mut StrArena, i: u32) {
        let at = self.names[i as usize];
        self.table
            .remove(self.hash(arena.get(at, &mut [0; MAX_ID_BYTES])), i);
        arena.dead += arena.stored_len(at);
        self.names[i as usize] = FREE;
        self.free.push(i);
    }

    /// Whether index `i` was forgotten (and not handed out again).
    pub fn is_forgotten(&self, i: u32) -> bool {
        self.names.get(i as usize) == Some(&FREE)
    }

    pub fn get(&self, arena: &StrArena, name: &[u8]) -> Option<u32> {
        self.find(arena, name, self.hash(name))
    }

    /// The hash [`Interner::intern_hashed`] takes for `name`.
    #[inline]
    pub fn hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    /// [`Interner::hash`], with the table's line for it prefetched: a caller computes it
    /// early and interns after other work, by which time the line has arrived.
    #[inline]
    pub fn prefetch(&self, name: &[u8]) -> u64 {
        let hash = self.hash(name);
        self.table.prefetch(hash);
        hash
    }

    /// The index of `name`, and whether it was new.
    pub fn intern(&mut self, arena: &mut StrArena, name: &[u8]) -> (u32, bool) {
        self.intern_hashed(arena, name, self.hash(name))
    }

    /// The index of `name`, whose hash is `hash`, if it is known.
    #[inline]
    fn find(&self, arena: &StrArena, name: &[u8], hash: u64) -> Option<u32> {
        self.table.find(hash, |i| {
            let entry = &arena.bytes[self.names[i as usize] as usize..];
            name_code::is(entry, &arena.shapes, name)
        })
    }

    /// The index the name with this hash most likely has, with its arena position
    /// prefetched ([`NameTable::likely`]: for warming caches, never for answers).
    #[inline]
    pub fn warm(&self, hash: u64) -> Option<u32> {
        let i = self.table.likely(hash)?;
        crate::mem::prefetch(&self.names[i as usize]);
        Some(i)
    }

    /// Prefetches the bytes of the name with index `i`, once [`Interner::warm`] has brought
    /// in its position.
    #[inline]
    pub fn warm_bytes(&self, arena: &StrArena, i: u32) {
        let at = self.names[i as usize];
        if let Some(byte) = arena.bytes.get(at as usize) {
            crate::mem::prefetch(byte);
        }
    }

    /// [`Interner::intern`] with `hash` = [`Interner::hash`]`(name)`.
    pub fn intern_hashed(&mut self, arena: &mut StrArena, name: &[u8], hash: u64) -> (u32, bool) {
        if let Some(i) = self.find(arena, name, hash) {
            return (i, false);
        }
        let at = arena.push(name);
        let i = match self.free.pop() {
            Some(i) => i,
            None => u32::try_from(self.names.len()).expect("fewer than 2^32 names"),
        };
        // Into the table first: if it grows, it takes the names known so far.
        let arena = &*arena;
        let (hasher, names) = (&self.hasher, &self.names);
        self.table.insert(hash, i, || entries(hasher, names, arena));
        match self.names.get_mut(i as usize) {
            Some(slot) => *slot = at,
            None => self.names.push(at),
        }
        (i, true)
    }

    pub fn name(&self, arena: &StrArena, i: u32) -> String {
        arena.get_string(self.names[i as usize])
    }

    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes() + (self.names.capacity() + self.free.capacity()) * 4
    }

    /// Saves the names (`u32::MAX` for a forgotten one) and the free list: the table is
    /// rebuilt on load (its hasher is randomly seeded, so its layout means nothing to
    /// another process).
    pub fn save(&self, w: &mut Writer<'_>) {
        w.reserve(8 + 4 * self.names.len());
        w.len(self.names.len());
        for &at in &self.names {
            w.u32(at);
        }
        w.u32s(&self.free);
    }

    pub fn load(r: &mut Reader<'_>, arena: &StrArena) -> Result<Interner, SnapshotError> {
        let n = r.len(4)?;
        let mut names = Vec::with_capacity(n);
        let mut forgotten = 0;
        for i in 0..n as u32 {
            let at = r.u32()?;
            if at == FREE {
                forgotten += 1;
            } else if !arena.valid(at) {
                return Err(r.corrupt(format_args!("name {i} is not in the string arena")));
            }
            names.push(at);
        }
        let hasher = RandomState::default();
        let table = NameTable::from_entries(n, entries(&hasher, &names, arena));
        let free = r.u32s()?;
        let mut seen = vec![false; n];
        for &i in &free {
            if names.get(i as usize) != Some(&FREE)
                || std::mem::replace(&mut seen[i as usize], true)
            {
                return Err(r.corrupt(format_args!("free name index {i}")));
            }
        }
        if free.len() != forgotten {
            return Err(r.corrupt("forgotten names missing from the free list"));
        }
        Ok(Interner {
            hasher,
            table,
            names,
            free,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_round_trips_short_long_and_packed_names() {
        let mut arena = StrArena::default();
        let long = "x".repeat(256);
        let names = [
            &b""[..],
            b"evt-1",
            long.as_bytes(),
            &[b'y'; 127],
            b"anon-3fc640a93fa5840a",
        ];
        let at: Vec<StrRef> = names.iter().map(|n| arena.push(n)).collect();
        for (&at, name) in at.iter().zip(names) {
            assert!(arena.valid(at));
            assert_eq!(arena.get(at, &mut [0; MAX_ID_BYTES]), name);
        }
        assert_eq!(
            arena.entry(at[4]).len(),
            9,
            "the hex tail is packed, its shape coded"
        );
        assert_eq!(arena.get_string(at[1]), "evt-1");
    }

    #[test]
    fn forgotten_names_free_their_index_and_compaction_keeps_the_rest() {
        let mut arena = StrArena::default();
        let mut kept = Interner::default();
        let mut churn = Interner::default();
        for i in 0..5000 {
            kept.intern(&mut arena, format!("kept-{i}").as_bytes());
            churn.intern(&mut arena, format!("churn-{i}").as_bytes());
        }
        for i in (0..5000).filter(|i| i % 5 != 0) {
            churn.forget(&mut arena, i);
        }
        assert_eq!((churn.len(), churn.live()), (5000, 1000));
        assert!(churn.is_forgotten(1) && !churn.is_forgotten(5));
        assert_eq!(churn.get(&arena, b"churn-1"), None);
        // A new name takes a forgotten index.
        let (i, new) = churn.intern(&mut arena, b"newcomer");
        assert!(new && i < 5000 && i % 5 != 0);
        assert!(arena.compaction_due());
        let before = arena.bytes.len();
        arena.compact(&mut [&mut kept, &mut churn]);
        assert!(!arena.compaction_due());
        assert!(
            arena.bytes.len() < before * 3 / 4,
            "{} of {before}",
            arena.bytes.len()
        );
        for i in 0..5000 {
            assert_eq!(kept.get(&arena, format!("kept-{i}").as_bytes()), Some(i));
            assert_eq!(kept.name(&arena, i), format!("kept-{i}"));
            let churned = churn.get(&arena, format!("churn-{i}").as_bytes());
            assert_eq!(churned, (i % 5 == 0).then_some(i));
        }
        assert_eq!(churn.get(&arena, b"newcomer"), Some(i));
        assert_eq!(churn.name(&arena, i), "newcomer");
        // Saved and loaded, forgotten indexes stay free and are reused in the same order.
        let mut bytes = Vec::new();
        let mut w = Writer::new(&mut bytes);
        arena.save(&mut w);
        churn.save(&mut w);
        let mut r = Reader::new(&bytes);
        let mut loaded_arena = StrArena::load(&mut r).unwrap();
        let mut loaded = Interner::load(&mut r, &loaded_arena).unwrap();
        assert_eq!(loaded.live(), churn.live());
        assert_eq!(loaded.get(&loaded_arena, b"churn-5"), Some(5));
        assert_eq!(
            loaded.intern(&mut loaded_arena, b"later"),
            churn.intern(&mut arena, b"later")
        );
    }

    #[test]
    fn names_that_overlap_in_a_loaded_arena_are_refused() {
        let mut arena = StrArena::default();
        let mut first = Interner::default();
        first.intern(&mut arena, b"acme");
        let mut bytes = Vec::new();
        let mut w = Writer::new(&mut bytes);
        arena.save(&mut w);
        first.save(&mut w);
        first.save(&mut w);
        let mut r = Reader::new(&bytes);
        let mut loaded = StrArena::load(&mut r).unwrap();
        let (a, b) = (
            Interner::load(&mut r, &loaded).unwrap(),
            Interner::load(&mut r, &loaded).unwrap(),
        );
        assert!(matches!(
            loaded.recount_dead(&[&a, &b]),
            Err(SnapshotError::Corrupt(_))
        ));
        assert_eq!(loaded.recount_dead(&[&a]), Ok(()));
        assert_eq!(loaded.dead, 0);
    }

    #[test]
    fn a_loaded_name_with_a_code_the_arena_does_not_hold_is_refused() {
        let mut arena = StrArena::default();
        let mut names = Interner::default();
        names.intern(&mut arena, b"anon-3fc640a93fa5840a");
        let save = |shapes: &Shapes| {
            let mut bytes = Vec::new();
            let mut w = Writer::new(&mut bytes);
            w.bytes(&arena.bytes);
            shapes.save(&mut w);
            names.save(&mut w);
            bytes
        };
        let load = |bytes: &[u8]| {
            let mut r = Reader::new(bytes);
            let arena = StrArena::load(&mut r).unwrap();
            Interner::load(&mut r, &arena).map(|names| names.name(&arena, 0))
        };
        assert_eq!(load(&save(&arena.shapes)).unwrap(), "anon-3fc640a93fa5840a");
        assert!(matches!(
            load(&save(&Shapes::default())),
            Err(SnapshotError::Corrupt(_))
        ));
    }

    #[test]
    fn interner_gives_dense_stable_indexes() {
        let mut arena = StrArena::default();
        let mut names = Interner::default();
        assert_eq!(names.intern(&mut arena, b"acme"), (0, true));
        assert_eq!(names.intern(&mut arena, b"globex"), (1, true));
        assert_eq!(names.intern(&mut arena, b"acme"), (0, false));
        assert_eq!(names.get(&arena, b"globex"), Some(1));
        assert_eq!(names.get(&arena, b"initech"), None);
        for i in 0..10_000 {
            names.intern(&mut arena, format!("n{i}").as_bytes());
        }
        assert_eq!(names.get(&arena, b"n9999"), Some(10_001));
        assert_eq!(names.name(&arena, 1), "globex");
    }
}
