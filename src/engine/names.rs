//! The hash table behind [`super::store::Interner`]: name hash → index.
//!
//! A lookup in hashbrown's table reads a group of control bytes, then the slot, in two cache
//! lines apart, then the name's bytes in the arena to compare: three cache misses once the
//! tables outgrow the caches, as they do at 100 000 accounts (profiles put the interner at
//! 13 % of a replay, most of it waiting on those loads). Here a bucket is one 64-byte line
//! holding twelve entries with their one-byte tags, and a bucket's address is known from the
//! hash alone, so callers can prefetch it ([`NameTable::prefetch`]) and, once it is in, the
//! likely entry's position and name ([`NameTable::likely`]): a lookup reads three lines too
//! (bucket, position, name), but a batch of events loads them together (`Engine::warm`).
//!
//! An entry is the name's index alone, 4 bytes: the owner keeps index → arena position
//! anyway, and the position here too took 12 bytes an entry, 6.6 MB of tables at the end of
//! a 1 M event replay (issue #2 budgets memory per account). Growing the table therefore
//! hashes each name again, from the owner's walk over its names ([`NameTable::insert`]): a
//! table grows a dozen times in a replay, by half each time, so about three hashings per
//! name in all.
//!
//! The bucket is chosen from the hash's high half by multiplication (`h × buckets / 2³²`),
//! not by masking, so the number of buckets need not be a power of two and the table grows
//! by half, not double: doubling leaves a table 40 % to 80 % full, 40 % of it idle on average
//! (growing by half: 53 % to 80 %, about a third idle). The tag is taken from other bits.
//!
//! A full bucket passes new entries on to the next one and counts the entries that passed it
//! and are still in the table (`passed`, as folly's F14 does), so lookups stop at the first
//! bucket no entry passed. Removing an entry counts it off every bucket before its own from
//! its home on, so removals leave no stale marks and never call for a rebuild (rebuilding
//! would hash every name again). A count that reaches 255 stays there: it only makes lookups
//! read one bucket more, until the table next grows.

/// Entries per bucket: a length byte, a count of passing entries, twelve 1-byte tags, twelve
/// 4-byte indexes.
const WIDTH: usize = 12;

/// Grow once this share (in fifths) of the entries is used: at 4/5, about one bucket in six
/// has passed entries on (Poisson, mean 9.6 per bucket), so most lookups read one line.
const MAX_FIFTHS: usize = 4;

#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    len: u8,
    /// Entries placed past this bucket from it or before it (saturating at 255).
    passed: u8,
    tags: [u8; WIDTH],
    indexes: [u32; WIDTH],
}

#[derive(Debug, Default)]
pub struct NameTable {
    /// None before the first insert.
    buckets: Vec<Bucket>,
    len: usize,
}

/// The tag kept for a hash: bits that do not choose the bucket. One name in 256 that shares
/// a bucket with the one sought is compared for nothing.
#[inline]
fn tag(hash: u64) -> u8 {
    (hash >> 24) as u8
}

/// Bytes whose high bit only is set, then bytes whose low seven bits are.
const HIGH: u128 = u128::from_le_bytes([0x80; 16]);
const LOW: u128 = !HIGH;

impl Bucket {
    /// The entries of this bucket with this tag, as a mask with the high bit of byte `i` set
    /// for entry `i`: all twelve tags are compared at once, in two registers.
    #[inline]
    fn matches(&self, tag: u8) -> u128 {
        let mut tags = [0; 16];
        tags[..WIDTH].copy_from_slice(&self.tags);
        let v = u128::from_le_bytes(tags) ^ u128::from_le_bytes([tag; 16]);
        // The high bit of each byte of `v` that is zero, exactly (no borrow crosses bytes).
        let zero = !(((v & LOW) + LOW) | v | LOW);
        zero & ((1 << (8 * self.len)) - 1)
    }
}

/// The entry a [`Bucket::matches`] mask names first.
#[inline]
fn first(mask: u128) -> usize {
    mask.trailing_zeros() as usize / 8
}

/// The bucket a hash belongs to among `n`.
#[inline]
fn home(hash: u64, n: usize) -> usize {
    (((hash >> 32) * n as u64) >> 32) as usize
}

impl NameTable {
    pub fn with_capacity(names: usize) -> NameTable {
        let mut table = NameTable::default();
        let buckets = names * 5 / (WIDTH * MAX_FIFTHS) + 1;
        table.buckets = vec![Bucket::default(); buckets.max(8)];
        table
    }

    /// The index of the entry with this hash for which `eq(index)` holds. Inlined into its
    /// callers (every event's lookups): 0.6 % fewer instructions in a replay.
    #[inline(always)]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let (tag, n) = (tag(hash), self.buckets.len());
        let mut b = home(hash, n);
        loop {
            let bucket = &self.buckets[b];
            let mut matches = bucket.matches(tag);
            while matches != 0 {
                let index = bucket.indexes[first(matches)];
                if eq(index) {
                    return Some(index);
                }
                matches &= matches - 1;
            }
            if bucket.passed == 0 {
                return None;
            }
            b = if b + 1 == n { 0 } else { b + 1 };
        }
    }

    /// A table of `entries`, (index, hash) pairs, sized for `capacity` of them.
    pub fn from_entries(capacity: usize, entries: impl Iterator<Item = (u32, u64)>) -> NameTable {
        let mut table = NameTable::with_capacity(capacity);
        for (index, hash) in entries {
            assert!(
                table.len < capacity,
                "more entries than the table is sized for"
            );
            place(&mut table.buckets, hash, index);
            table.len += 1;
        }
        table
    }

    /// Adds an entry known not to be here. To grow, the table asks for `entries()`: the
    /// (index, hash) of every entry already in it, from the owner, which walks its names in
    /// its own order and so reads them nearly in arena order (walking the buckets would read
    /// them at random, a cache miss or two per name).
    pub fn insert<I: Iterator<Item = (u32, u64)>>(
        &mut self,
        hash: u64,
        index: u32,
        entries: impl FnOnce() -> I,
    ) {
        if self.len >= self.buckets.len() * WIDTH * MAX_FIFTHS / 5 {
            self.rebuild((self.buckets.len() * 3 / 2).max(8), entries());
        }
        place(&mut self.buckets, hash, index);
        self.len += 1;
    }

    /// Lays `entries` out in `n` buckets: they must be the table's.
    #[cold]
    #[inline(never)]
    fn rebuild(&mut self, n: usize, entries: impl Iterator<Item = (u32, u64)>) {
        let mut buckets = vec![Bucket::default(); n];
        let mut count = 0;
        for (index, hash) in entries {
            place(&mut buckets, hash, index);
            count += 1;
        }
        assert_eq!(count, self.len, "a name table grows with all its entries");
        self.buckets = buckets;
    }

    /// Removes the entry with this hash and index, which must be present.
    pub fn remove(&mut self, hash: u64, index: u32) {
        let (tag, n) = (tag(hash), self.buckets.len());
        let mut b = home(hash, n);
        loop {
            let bucket = &mut self.buckets[b];
            let len = bucket.len as usize;
            if let Some(i) = (0..len).find(|&i| bucket.tags[i] == tag && bucket.indexes[i] == index)
            {
                bucket.tags[i] = bucket.tags[len - 1];
                bucket.indexes[i] = bucket.indexes[len - 1];
                bucket.len -= 1;
                break;
            }
            // The entry passed this bucket when it was placed.
            assert!(
                bucket.passed > 0,
                "removing a name that is not in its table"
            );
            if bucket.passed < u8::MAX {
                bucket.passed -= 1;
            }
            b = if b + 1 == n { 0 } else { b + 1 };
        }
        self.len -= 1;
    }

    /// Starts loading the bucket `hash` would be found in, so a lookup soon after does not
    /// wait for memory.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if self.buckets.is_empty() {
            return;
        }
        crate::mem::prefetch(&self.buckets[home(hash, self.buckets.len())]);
    }

    /// The index most likely to be the name with this hash: the first in its home bucket
    /// with its tag, compared by tag only (for warming caches, never for answers).
    #[inline]
    pub fn likely(&self, hash: u64) -> Option<u32> {
        let bucket = self.buckets.get(home(hash, self.buckets.len()))?;
        let matches = bucket.matches(tag(hash));
        (matches != 0).then(|| bucket.indexes[first(matches)])
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>()
    }
}

/// Puts an entry in the first bucket with room from its own on, marking the full ones passed.
/// The load limit leaves room somewhere, so this ends.
fn place(buckets: &mut [Bucket], hash: u64, index: u32) {
    let n = buckets.len();
    let mut b = home(hash, n);
    loop {
        let bucket = &mut buckets[b];
        let len = bucket.len as usize;
        if len < WIDTH {
            bucket.tags[len] = tag(hash);
            bucket.indexes[len] = index;
            bucket.len += 1;
            return;
        }
        bucket.passed = bucket.passed.saturating_add(1);
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
    fn matches_are_the_entries_with_the_tag() {
        let mut bucket = Bucket::default();
        for (i, tag) in [7u8, 0, 0x80, 7, 0xff, 0x7f, 1, 7, 0x81, 0, 7, 0xfe]
            .into_iter()
            .enumerate()
        {
            bucket.tags[i] = tag;
        }
        for len in 0..=WIDTH as u8 {
            bucket.len = len;
            for tag in 0..=255 {
                let mut expected = 0u128;
                for i in (0..len as usize).filter(|&i| bucket.tags[i] == tag) {
                    expected |= 0x80 << (8 * i);
                }
                assert_eq!(bucket.matches(tag), expected, "tag {tag}, len {len}");
            }
        }
    }

    #[test]
    fn finds_every_entry_through_growth_and_overflow() {
        // Hashes that share their high bits crowd a few buckets: overflow chains, and
        // wrapping past the last bucket, are taken on every lookup. The second kind also has
        // a single tag, so only the comparison tells entries apart.
        for (spread, n) in [(u64::MAX, 20_000u64), (0x0007_00ff_0000_0000, 2_000)] {
            let mut table = NameTable::default();
            let hash = |i: u64| {
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & spread | 0xfff8_ff00_0000_0000 & !spread
            };
            // Indexes are offset from `i`, so a mix-up of the two would show.
            for i in 0..n {
                assert_eq!(table.find(hash(i), |index| index == i as u32 + 7), None);
                let entries = || (0..i).map(|j| (j as u32 + 7, hash(j)));
                table.insert(hash(i), i as u32 + 7, entries);
                if i % 97 == 0 {
                    for j in 0..=i {
                        let found = table.find(hash(j), |index| index == j as u32 + 7);
                        assert_eq!(found, Some(j as u32 + 7));
                    }
                }
            }
            assert_eq!(table.len, n as usize);
        }
    }

    #[test]
    fn removed_entries_are_gone_and_the_rest_stay() {
        // Crowded hashes, so removals happen in overflow chains, some of them counted off
        // buckets passed 255 times or more; every lookup is checked after each round.
        let hash = |i: u64| (i % 50).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i << 3;
        let mut table = NameTable::default();
        let mut present = std::collections::BTreeSet::new();
        for round in 0..6u64 {
            for i in round * 1000..round * 1000 + 3000 {
                if !present.contains(&i) {
                    let entries = || present.iter().map(|&j| (j as u32, hash(j)));
                    table.insert(hash(i), i as u32, entries);
                    present.insert(i);
                }
            }
            for i in (round * 1000..round * 1000 + 3000).filter(|i| i % 3 != round % 3) {
                if present.remove(&i) {
                    table.remove(hash(i), i as u32);
                }
            }
            assert_eq!(table.len, present.len());
            for i in 0..round * 1000 + 3000 {
                let found = table.find(hash(i), |index| index == i as u32);
                assert_eq!(
                    found,
                    present.contains(&i).then_some(i as u32),
                    "round {round}, {i}"
                );
            }
        }
    }

    #[test]
    fn removals_count_off_the_buckets_their_entries_passed() {
        // One home for all: the first 12 fill it, the rest pass it (and later ones the
        // buckets after it), until its count saturates.
        let mut table = NameTable::with_capacity(1000);
        let n = table.buckets.len();
        let hash = |i: u32| ((7 << 32) / n as u64 + 1) << 32 | u64::from(i & 0xff) << 24;
        let home = home(hash(0), n);
        for i in 0..20 {
            table.insert(hash(i), i, std::iter::empty);
        }
        assert_eq!(table.buckets[home].passed, 8);
        for i in 12..20 {
            table.remove(hash(i), i);
        }
        assert_eq!(table.buckets[home].passed, 0, "no entry passes it any more");
        for i in 12..300 {
            table.insert(hash(i), i, std::iter::empty);
        }
        assert_eq!(table.buckets[home].passed, u8::MAX);
        for i in 12..300 {
            table.remove(hash(i), i);
        }
        // The buckets passed 288, 276 and 264 times saturated and stay so (lookups read them
        // for nothing, and still find); those passed 252 times or fewer are clear again.
        let passed: Vec<u8> = table.buckets[home..home + 26]
            .iter()
            .map(|b| b.passed)
            .collect();
        assert_eq!(passed[..3], [u8::MAX; 3]);
        assert_eq!(passed[3..], [0; 23]);
        for i in 0..12 {
            assert_eq!(table.find(hash(i), |index| index == i), Some(i));
        }
        assert_eq!(table.find(hash(12), |index| index == 12), None);
    }

    #[test]
    #[should_panic(expected = "a name table grows with all its entries")]
    fn growing_without_every_entry_is_refused() {
        let mut table = NameTable::default();
        for i in 0..1000 {
            table.insert(u64::from(i) << 40, i, || {
                (0..i / 2).map(|j| (j, u64::from(j) << 40))
            });
        }
    }

    #[test]
    fn equal_hashes_are_told_apart_by_the_comparison() {
        let mut table = NameTable::with_capacity(10);
        for index in 0..40 {
            let entries = || (100..index + 100).map(|i| (i, 42 << 32));
            table.insert(42 << 32, index + 100, entries);
        }
        for index in 0..40 {
            let found = table.find(42 << 32, |i| i == index + 100);
            assert_eq!(found, Some(index + 100));
        }
        assert_eq!(table.find(42 << 32, |i| i == 99), None);
        assert_eq!(table.likely(42 << 32), Some(100));
        table.prefetch(42 << 32);
    }
}
