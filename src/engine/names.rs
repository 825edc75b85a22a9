//! The hash table behind [`super::store::Interner`]: name hash → (index, arena position).
//!
//! A lookup in hashbrown's table reads a group of control bytes, then the slot, in two cache
//! lines apart, then the name's bytes in the arena to compare: three cache misses once the
//! tables outgrow the caches, as they do at 100 000 accounts (profiles put the interner at
//! 13 % of a replay, most of it waiting on those loads). Here a bucket is one 64-byte line
//! holding five entries with their tags, so a lookup misses twice: the bucket and the
//! name. The bucket is chosen by the tag itself, so growing the table never reads a name
//! again (hashbrown rehashes each from the arena, one more miss per name), and a bucket's
//! address is known from the hash alone, so callers can prefetch it ([`NameTable::prefetch`]).
//!
//! The tag picks its bucket by multiplication (`tag × buckets / 2³²`), not by masking, so the
//! number of buckets need not be a power of two and the table grows by half, not double:
//! memory per name is a headline figure (issue #2), and doubling leaves a table 40 % to 80 %
//! full, 40 % of it idle on average (growing by half: 53 % to 80 %, about a third idle).
//!
//! A full bucket passes new entries on to the next one and remembers that it did
//! (`overflow`), so lookups stop at the first bucket that never overflowed. Removing an entry
//! leaves that mark set, which only makes some lookups read one bucket more; once there have
//! been as many removals as buckets, the table is rebuilt at its size, which clears the
//! stale marks (from the stored tags alone, like growth).

/// Entries per bucket: 4 bytes of length and overflow mark, five 4-byte tags, five 8-byte
/// entries.
const WIDTH: usize = 5;

/// Grow once this share (in fifths) of the entries is used: at 4/5, about one bucket in five
/// has passed entries on (Poisson, mean 4 per bucket), so most lookups read one line.
const MAX_FIFTHS: usize = 4;

#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    len: u8,
    overflow: bool,
    tags: [u32; WIDTH],
    /// (index, arena position) of each name.
    entries: [(u32, u32); WIDTH],
}

#[derive(Debug, Default)]
pub struct NameTable {
    /// None before the first insert.
    buckets: Vec<Bucket>,
    len: usize,
    /// Removals since the buckets were last laid out.
    removed: usize,
}

/// The tag kept for a hash: its high half, which also picks the bucket.
#[inline]
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// The bucket a tag belongs to among `n`.
#[inline]
fn home(tag: u32, n: usize) -> usize {
    ((tag as u64 * n as u64) >> 32) as usize
}

impl NameTable {
    pub fn with_capacity(names: usize) -> NameTable {
        let mut table = NameTable::default();
        let buckets = names * 5 / (WIDTH * MAX_FIFTHS) + 1;
        table.buckets = vec![Bucket::default(); buckets.max(8)];
        table
    }

    /// The index of the entry with this hash for which `eq(arena position)` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let (tag, n) = (tag(hash), self.buckets.len());
        let mut b = home(tag, n);
        loop {
            let bucket = &self.buckets[b];
            for i in 0..bucket.len as usize {
                if bucket.tags[i] == tag && eq(bucket.entries[i].1) {
                    return Some(bucket.entries[i].0);
                }
            }
            if !bucket.overflow {
                return None;
            }
            b = if b + 1 == n { 0 } else { b + 1 };
        }
    }

    /// Adds an entry known not to be here.
    pub fn insert(&mut self, hash: u64, index: u32, at: u32) {
        if self.len >= self.buckets.len() * WIDTH * MAX_FIFTHS / 5 {
            self.grow();
        }
        place(&mut self.buckets, tag(hash), (index, at));
        self.len += 1;
    }

    fn grow(&mut self) {
        self.rebuild((self.buckets.len() * 3 / 2).max(8));
    }

    /// Lays the entries out again in `n` buckets.
    fn rebuild(&mut self, n: usize) {
        let mut buckets = vec![Bucket::default(); n];
        for bucket in &self.buckets {
            for i in 0..bucket.len as usize {
                place(&mut buckets, bucket.tags[i], bucket.entries[i]);
            }
        }
        self.buckets = buckets;
        self.removed = 0;
    }

    /// Removes the entry with this hash and index, which must be present.
    pub fn remove(&mut self, hash: u64, index: u32) {
        let (tag, n) = (tag(hash), self.buckets.len());
        let mut b = home(tag, n);
        loop {
            let bucket = &mut self.buckets[b];
            let len = bucket.len as usize;
            if let Some(i) =
                (0..len).find(|&i| bucket.tags[i] == tag && bucket.entries[i].0 == index)
            {
                bucket.tags[i] = bucket.tags[len - 1];
                bucket.entries[i] = bucket.entries[len - 1];
                bucket.len -= 1;
                break;
            }
            assert!(bucket.overflow, "removing a name that is not in its table");
            b = if b + 1 == n { 0 } else { b + 1 };
        }
        self.len -= 1;
        self.removed += 1;
        if self.removed >= n {
            self.rebuild(n);
        }
    }

    /// Sets each entry's arena position to `at(index)` (after the arena was compacted).
    pub fn repoint(&mut self, at: impl Fn(u32) -> u32) {
        for bucket in &mut self.buckets {
            for entry in &mut bucket.entries[..bucket.len as usize] {
                entry.1 = at(entry.0);
            }
        }
    }

    /// Starts loading the bucket `hash` would be found in, so a lookup soon after does not
    /// wait for memory.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if self.buckets.is_empty() {
            return;
        }
        crate::mem::prefetch(&self.buckets[home(tag(hash), self.buckets.len())]);
    }

    /// The entry most likely to hold the name with this hash: the first in its home bucket
    /// with its tag, compared by tag only (for warming caches, never for answers).
    #[inline]
    pub fn likely(&self, hash: u64) -> Option<(u32, u32)> {
        let bucket = self.buckets.get(home(tag(hash), self.buckets.len()))?;
        let tags = &bucket.tags[..bucket.len as usize];
        let i = tags.iter().position(|&t| t == tag(hash))?;
        Some(bucket.entries[i])
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>()
    }
}

/// Puts an entry in the first bucket with room from its own on, marking the full ones passed.
/// The load limit leaves room somewhere, so this ends.
fn place(buckets: &mut [Bucket], tag: u32, entry: (u32, u32)) {
    let n = buckets.len();
    let mut b = home(tag, n);
    loop {
        let bucket = &mut buckets[b];
        let len = bucket.len as usize;
        if len < WIDTH {
            bucket.tags[len] = tag;
            bucket.entries[len] = entry;
            bucket.len += 1;
            return;
        }
        bucket.overflow = true;
        b = if b + 1 == n { 0 } else { b + 1 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(size_of::<Bucket>(), 64);
        assert_eq!(align_of::<Bucket>(), 64);
    }

    #[test]
    fn finds_every_entry_through_growth_and_overflow() {
        // Hashes whose tags share their high bits crowd a few buckets: overflow chains, and
        // wrapping past the last bucket, are taken on every lookup.
        for (spread, n) in [(u64::MAX, 20_000u64), (0x0007_00ff_0000_0000, 2_000)] {
            let mut table = NameTable::default();
            let hash = |i: u64| {
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & spread | 0xfff8_ff00_0000_0000 & !spread
            };
            for i in 0..n {
                assert_eq!(table.find(hash(i), |at| at == i as u32), None);
                table.insert(hash(i), i as u32 + 7, i as u32);
                if i % 97 == 0 {
                    for j in 0..=i {
                        assert_eq!(table.find(hash(j), |at| at == j as u32), Some(j as u32 + 7));
                    }
                }
            }
            assert_eq!(table.len, n as usize);
        }
    }

    #[test]
    fn removed_entries_are_gone_and_the_rest_stay_through_rebuilds() {
        // Crowded tags, so removals happen in overflow chains; more removals than buckets,
        // so the table is rebuilt at its size several times.
        let hash = |i: u64| (i % 50).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i << 3;
        let mut table = NameTable::default();
        let mut present = std::collections::BTreeSet::new();
        for round in 0..6u64 {
            for i in round * 1000..round * 1000 + 3000 {
                if present.insert(i) {
                    table.insert(hash(i), i as u32, i as u32 ^ 1);
                }
            }
            for i in (round * 1000..round * 1000 + 3000).filter(|i| i % 3 != round % 3) {
                if present.remove(&i) {
                    table.remove(hash(i), i as u32);
                }
            }
            assert_eq!(table.len, present.len());
            for i in 0..round * 1000 + 3000 {
                let found = table.find(hash(i), |at| at == i as u32 ^ 1);
                assert_eq!(
                    found,
                    present.contains(&i).then_some(i as u32),
                    "round {round}, {i}"
                );
            }
        }
        table.repoint(|index| index + 5);
        for &i in &present {
            assert_eq!(table.find(hash(i), |at| at == i as u32 + 5), Some(i as u32));
        }
    }

    #[test]
    fn equal_tags_are_told_apart_by_the_comparison() {
        let mut table = NameTable::with_capacity(10);
        for at in 0..12 {
            table.insert(42 << 32, at + 100, at);
        }
        for at in 0..12 {
            assert_eq!(table.find(42 << 32, |a| a == at), Some(at + 100));
        }
        assert_eq!(table.find(42 << 32, |a| a == 99), None);
        table.prefetch(42 << 32);
    }
}
