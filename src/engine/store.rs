//! Compact storage for the strings the engine must keep: event ids, account, contact and
//! anonymous ids.
//!
//! Memory per retained touch is a headline figure (issue #2: 48 bytes per touch, 64 per
//! account), so strings live back to back in one byte arena and everything else refers to them
//! by a `u32` offset instead of owning a `String` (24 bytes of header plus an allocation each).

use foldhash::fast::RandomState;
use std::hash::BuildHasher;

use super::SnapshotError;
use super::names::NameTable;
use crate::codec::{Reader, Writer};

/// Offset of a string in a [`StrArena`].
pub type StrRef = u32;

/// Append-only byte arena of length-prefixed strings (one length byte below 128, two above;
/// ids are at most 256 bytes, SPEC §1).
#[derive(Debug, Default)]
pub struct StrArena {
    bytes: Vec<u8>,
}

impl StrArena {
    pub fn push(&mut self, s: &[u8]) -> StrRef {
        let at = self.bytes.len();
        let Ok(at) = StrRef::try_from(at) else {
            // Four GiB of ids is far past the memory this engine is sized for; stopping loudly
            // beats silently aliasing ids.
            panic!("string arena is full (4 GiB of ids): split the input over more partitions");
        };
        let len = s.len();
        assert!(len < 1 << 14, "ids are at most 256 bytes");
        if len < 0x80 {
            self.bytes.push(len as u8);
        } else {
            self.bytes.push(0x80 | (len >> 7) as u8);
            self.bytes.push((len & 0x7f) as u8);
        }
        self.bytes.extend_from_slice(s);
        at
    }

    pub fn get(&self, at: StrRef) -> &[u8] {
        let at = at as usize;
        let first = self.bytes[at] as usize;
        let (len, start) = if first < 0x80 {
            (first, at + 1)
        } else {
            (((first & 0x7f) << 7) | self.bytes[at + 1] as usize, at + 2)
        };
        &self.bytes[start..start + len]
    }

    /// The string as text; the engine only stores validated UTF-8.
    pub fn get_str(&self, at: StrRef) -> &str {
        std::str::from_utf8(self.get(at)).unwrap_or("\u{fffd}")
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// Whether `at` starts a string that lies inside the arena (a snapshot check: it makes
    /// [`StrArena::get`] safe, not necessarily meaningful).
    pub fn valid(&self, at: StrRef) -> bool {
        let at = at as usize;
        let Some(&first) = self.bytes.get(at) else {
            return false;
        };
        let (len, start) = if first < 0x80 {
            (first as usize, at + 1)
        } else {
            match self.bytes.get(at + 1) {
                Some(&low) => ((((first & 0x7f) as usize) << 7) | low as usize, at + 2),
                None => return false,
            }
        };
        start + len <= self.bytes.len()
    }

    pub fn save(&self, w: &mut Writer<'_>) {
        w.bytes(&self.bytes);
    }

    pub fn load(r: &mut Reader<'_>) -> Result<StrArena, SnapshotError> {
        r.section("string arena");
        Ok(StrArena {
            bytes: r.bytes()?.to_vec(),
        })
    }
}

/// A set of names, each given a dense index `0, 1, 2, …` in order of first appearance.
///
/// The table holds (index, string) pairs so a lookup touches the table and the arena only.
#[derive(Debug, Default)]
pub struct Interner {
    hasher: RandomState,
    table: NameTable,
    names: Vec<StrRef>,
}

impl Interner {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn get(&self, arena: &StrArena, name: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table.find(hash, |at| arena.get(at) == name)
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

    /// [`Interner::intern`] with `hash` = [`Interner::hash`]`(name)`.
    pub fn intern_hashed(&mut self, arena: &mut StrArena, name: &[u8], hash: u64) -> (u32, bool) {
        if let Some(i) = self.table.find(hash, |at| arena.get(at) == name) {
            return (i, false);
        }
        let i = u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        let at = arena.push(name);
        self.names.push(at);
        self.table.insert(hash, i, at);
        (i, true)
    }

    pub fn name<'a>(&self, arena: &'a StrArena, i: u32) -> &'a str {
        arena.get_str(self.names[i as usize])
    }

    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes() + self.names.capacity() * size_of::<StrRef>()
    }

    /// Saves the names only: the table is rebuilt on load (its hasher is randomly seeded, so
    /// its layout means nothing to another process).
    pub fn save(&self, w: &mut Writer<'_>) {
        w.reserve(8 + 4 * self.names.len());
        w.len(self.names.len());
        for &at in &self.names {
            w.u32(at);
        }
    }

    pub fn load(r: &mut Reader<'_>, arena: &StrArena) -> Result<Interner, SnapshotError> {
        let n = r.len(4)?;
        let hasher = RandomState::default();
        let mut table = NameTable::with_capacity(n);
        let mut names = Vec::with_capacity(n);
        for i in 0..n as u32 {
            let at = r.u32()?;
            if !arena.valid(at) {
                return Err(r.corrupt(format_args!("name {i} is not in the string arena")));
            }
            names.push(at);
            table.insert(hasher.hash_one(arena.get(at)), i, at);
        }
        Ok(Interner {
            hasher,
            table,
            names,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_round_trips_short_and_long_strings() {
        let mut arena = StrArena::default();
        let long = "x".repeat(256);
        let a = arena.push(b"");
        let b = arena.push(b"evt-1");
        let c = arena.push(long.as_bytes());
        let d = arena.push(&[b'y'; 127]);
        assert_eq!(arena.get(a), b"");
        assert_eq!(arena.get(b), b"evt-1");
        assert_eq!(arena.get(c), long.as_bytes());
        assert_eq!(arena.get(d), &[b'y'; 127]);
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
