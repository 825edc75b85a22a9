//! How the string arena stores a name (account, contact or anonymous id): its hex tail packed.
//!
//! Ids are usually a short prefix and a run of lowercase hex (`anon-3fc640a93fa5840a`,
//! `c-9eb8c19c`, `acct-000123`, UUIDs), and names are the engine's largest strings after the
//! touches (issue #2 budgets memory per account). The even-length hex tail is kept as its
//! nibbles, half the size: `anon-3fc640a93fa5840a` takes 15 bytes instead of 22.
//!
//! A lookup compares the name as it comes with the entries its hash leads to ([`is`]), so
//! only new names are encoded; hashes are taken of the name itself. The encoding is
//! canonical all the same (one name, one entry), so equal entries are equal names.
//!
//! The shapes repeat too: every anonymous id of a site is `anon-` and 16 hex characters,
//! every account id `acct-` and 6 digits. A packed name's prefix (of at most
//! [`MAX_CODED_PREFIX`] bytes) with its tail's length is given a one-byte code the first time
//! it is seen ([`Shapes`], the arena's, at most [`MAX_CODES`] of them), and entries carry
//! that code instead of the prefix and the length: `anon-3fc640a93fa5840a` takes 9 bytes,
//! 2.5 MB less resident at the end of issue #2's 1 M event replay. Codes are never withdrawn,
//! so a shape is coded in every entry or in none, and equal entries of one arena still mean
//! equal names.
//!
//! An entry, a header then the payload:
//! - `0x00..=0x7f`: that many raw bytes;
//! - `0x80..=0x82`: raw, length `(h & 0x7f) << 7 | next byte` (128 to 256 bytes);
//! - `0x83..=0xbf`: the prefix and length coded `h - 0x83`, then the packed bytes;
//! - `0xc0..=0xff`: a raw prefix of `h & 0x3f` bytes (at most 63), then a byte counting the
//!   packed bytes (2 to 128), then the prefix, then the packed bytes.
//!
//! A name is packed when its tail of lowercase hex characters, less one if that is odd, is at
//! least 4 characters long and what precedes it at most 63 bytes; it is raw otherwise.

use super::SnapshotError;
use super::event_ids::{NIBBLE, pack_hex};
use crate::codec::{Reader, Writer};
use crate::event::MAX_ID_BYTES;

const LONG: u8 = 0x80;
const DIGITS: &[u8; 16] = b"0123456789abcdef";
const PACKED: u8 = 0xc0;
const MAX_PREFIX: usize = 0x3f;
/// The shortest hex tail worth packing: 4 characters save one byte.
const MIN_TAIL: usize = 4;
/// The first header of an entry with a coded shape.
const CODED: u8 = 0x83;
/// Shapes one [`Shapes`] can code: the headers from [`CODED`] to [`PACKED`].
pub const MAX_CODES: usize = (PACKED - CODED) as usize;
/// The longest prefix given a code: id schemes' prefixes are short words, and a long prefix
/// is more likely a name's own text than something many names share.
pub const MAX_CODED_PREFIX: usize = 16;

/// The shapes an arena's entries refer to by code, in the order they were first seen: a
/// prefix and the number of packed bytes after it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shapes {
    list: Vec<(Box<[u8]>, u8)>,
}

impl Shapes {
    /// The code of `prefix` followed by `packed` packed bytes, given one now if it has none
    /// and may have one. Only new names are encoded, and an arena holds a handful of shapes:
    /// a scan is enough.
    fn code(&mut self, prefix: &[u8], packed: u8) -> Option<u8> {
        if let Some(k) = self.find(prefix, packed) {
            return Some(k);
        }
        let fits = (1..=MAX_CODED_PREFIX).contains(&prefix.len())
            && (MIN_TAIL / 2..=MAX_ID_BYTES / 2).contains(&usize::from(packed));
        if !fits || self.list.len() == MAX_CODES {
            return None;
        }
        self.list.push((prefix.into(), packed));
        Some((self.list.len() - 1) as u8)
    }

    /// The code already handed out to this shape.
    fn find(&self, prefix: &[u8], packed: u8) -> Option<u8> {
        let same = |(p, n): &(Box<[u8]>, u8)| **p == *prefix && *n == packed;
        self.list.iter().position(same).map(|k| k as u8)
    }

    /// The prefix and packed length coded `k`, if `k` was handed out.
    #[inline]
    fn get(&self, k: u8) -> Option<(&[u8], usize)> {
        let (prefix, packed) = self.list.get(usize::from(k))?;
        Some((prefix, usize::from(*packed)))
    }

    /// Codes handed out.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn save(&self, w: &mut Writer<'_>) {
        w.len(self.list.len());
        for (prefix, packed) in &self.list {
            w.bytes(prefix);
            w.u8(*packed);
        }
    }

    /// Loads what [`Shapes::save`] wrote, refusing what `code` could not have made.
    pub fn load(r: &mut Reader<'_>) -> Result<Shapes, SnapshotError> {
        let n = r.len(10)?;
        if n > MAX_CODES {
            return Err(r.corrupt(format_args!("{n} coded name shapes")));
        }
        let mut shapes = Shapes::default();
        for _ in 0..n {
            let (prefix, packed) = (r.bytes()?, r.u8()?);
            let fresh = shapes.find(prefix, packed).is_none();
            if !(fresh && shapes.code(prefix, packed).is_some()) {
                return Err(r.corrupt("a coded name shape is out of range or repeated"));
            }
        }
        Ok(shapes)
    }
}

/// Appends `name`'s entry to `out`, coding its shape in `shapes` when it can.
pub fn encode(name: &[u8], shapes: &mut Shapes, out: &mut Vec<u8>) {
    let n = name.len();
    assert!(n <= MAX_ID_BYTES, "ids are at most 256 bytes (SPEC §1)");
    out.reserve(n + 2);
    let hex = name.iter().rev().take_while(|&&b| NIBBLE[b as usize] < 16);
    let tail = hex.count() & !1;
    let prefix = n - tail;
    if tail >= MIN_TAIL && prefix <= MAX_PREFIX {
        match shapes.code(&name[..prefix], (tail / 2) as u8) {
            Some(k) => out.push(CODED + k),
            None => {
                out.extend_from_slice(&[PACKED | prefix as u8, (tail / 2) as u8]);
                out.extend_from_slice(&name[..prefix]);
            }
        }
        let at = out.len();
        out.resize(at + tail / 2, 0);
        let packed = pack_hex(&name[prefix..], &mut out[at..]);
        debug_assert!(packed, "the tail is hex");
    } else {
        if n < 0x80 {
            out.push(n as u8);
        } else {
            out.extend_from_slice(&[LONG | (n >> 7) as u8, (n & 0x7f) as u8]);
        }
        out.extend_from_slice(name);
    }
}

/// The length of the entry that `bytes` starts with, if it is a well-formed entry that ends
/// within `bytes` and uses only codes of `shapes` (loading checks snapshots with this; the
/// arena's own entries always are).
pub fn entry_len(bytes: &[u8], shapes: &Shapes) -> Option<usize> {
    let (&h, rest) = bytes.split_first()?;
    let len = match h {
        0..0x80 => 1 + h as usize,
        LONG..CODED => {
            let n = ((h & 0x7f) as usize) << 7 | *rest.first()? as usize;
            (0x80..=MAX_ID_BYTES).contains(&n).then_some(2 + n)?
        }
        CODED..PACKED => 1 + shapes.get(h - CODED)?.1,
        PACKED.. => {
            let packed = *rest.first()? as usize;
            (2..=MAX_ID_BYTES / 2)
                .contains(&packed)
                .then_some(2 + (h & 0x3f) as usize + packed)?
        }
    };
    (len <= bytes.len()).then_some(len)
}

/// An entry's raw bytes (the whole name, or the prefix of a packed one) and its packed tail
/// (empty for a raw entry).
#[inline(always)]
fn parts<'a>(entry: &'a [u8], shapes: &'a Shapes) -> (&'a [u8], &'a [u8]) {
    let h = entry[0];
    if h < LONG {
        (&entry[1..1 + h as usize], &[])
    } else if h < CODED {
        let n = ((h & 0x7f) as usize) << 7 | entry[1] as usize;
        (&entry[2..2 + n], &[])
    } else if h < PACKED {
        let (prefix, packed) = shapes.get(h - CODED).expect("a code the arena handed out");
        (prefix, &entry[1..1 + packed])
    } else {
        let (prefix, packed) = ((h & 0x3f) as usize, entry[1] as usize);
        entry[2..2 + prefix + packed].split_at(prefix)
    }
}

/// The name of the entry that `entry` starts with, decoded into `buf` when it was packed.
#[inline]
pub fn decode<'a>(
    entry: &'a [u8],
    shapes: &'a Shapes,
    buf: &'a mut [u8; MAX_ID_BYTES],
) -> &'a [u8] {
    let (raw, packed) = parts(entry, shapes);
    if packed.is_empty() {
        return raw;
    }
    let len = raw.len() + 2 * packed.len();
    buf[..raw.len()].copy_from_slice(raw);
    unpack_hex(packed, &mut buf[raw.len()..len]);
    &buf[..len]
}

/// Packed bytes as their hex characters, into `out` (twice as long), 16 at a time.
#[inline]
pub fn unpack_hex(packed: &[u8], out: &mut [u8]) {
    let mut words = packed.chunks_exact(8);
    let mut chars = out.chunks_exact_mut(16);
    for (word, chars) in (&mut words).zip(&mut chars) {
        chars.copy_from_slice(&hex16(word));
    }
    let rest = chars.into_remainder().chunks_exact_mut(2);
    for (pair, &b) in rest.zip(words.remainder()) {
        pair.copy_from_slice(&hex2(b));
    }
}

/// A packed byte as its two hex characters.
#[inline]
fn hex2(b: u8) -> [u8; 2] {
    [DIGITS[(b >> 4) as usize], DIGITS[(b & 15) as usize]]
}

/// Eight packed bytes as their sixteen hex characters, byte `j` giving characters `2j` and
/// `2j + 1`: a few operations on one 128-bit word instead of sixteen lookups (decoding runs
/// for every name each time a table grows, and for every comparison in a lookup).
#[inline]
fn hex16(word: &[u8]) -> [u8; 16] {
    const fn bytes(b: u8) -> u128 {
        u128::from_le_bytes([b; 16])
    }
    let mut t = u128::from(u64::from_le_bytes(word.try_into().expect("8 bytes")));
    // Byte j to byte 2j, in three halvings.
    t = (t | t << 32) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    t = (t | t << 16) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    t = (t | t << 8) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    // High nibble in byte 2j, low nibble in byte 2j + 1.
    let n = (t >> 4 & bytes(0x0f)) | (t & bytes(0x0f)) << 8;
    // '0' + n, and 39 more where n >= 10 (n + 6 carries into bit 4): no byte overflows.
    let letters = ((n + bytes(6)) & bytes(0x10)) >> 4;
    (n + bytes(b'0') + letters * 39).to_le_bytes()
}

/// Whether the entry that `entry` starts with is `name`'s. A lookup asks this of the entries
/// its hash leads to, so it compares with the name as it comes, encoding nothing.
#[inline]
pub fn is(entry: &[u8], shapes: &Shapes, name: &[u8]) -> bool {
    let (raw, bytes) = parts(entry, shapes);
    if name.len() != raw.len() + 2 * bytes.len() || name[..raw.len()] != *raw {
        return false;
    }
    // The stored tail is decoded and compared: its characters are canonical, so this is
    // exact whatever the name holds.
    let tail = &name[raw.len()..];
    let mut words = bytes.chunks_exact(8);
    let mut chars = tail.chunks_exact(16);
    let mut same = true;
    for (word, chars) in (&mut words).zip(&mut chars) {
        same &= hex16(word) == chars;
    }
    for (pair, &b) in chars.remainder().chunks_exact(2).zip(words.remainder()) {
        same &= hex2(b) == pair;
    }
    same
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(name: &[u8], shapes: &mut Shapes) -> Vec<u8> {
        let mut entry = vec![];
        encode(name, shapes, &mut entry);
        entry
    }

    fn round_trip_in(shapes: &mut Shapes, name: &[u8]) -> usize {
        let entry = &encoded(name, shapes)[..];
        assert_eq!(entry_len(entry, shapes), Some(entry.len()), "{name:?}");
        let mut buf = [0; MAX_ID_BYTES];
        assert_eq!(decode(entry, shapes, &mut buf), name);
        entry.len()
    }

    /// Codes for shapes no test name has, all of them: prefixes stay in their entries.
    fn full() -> Shapes {
        let mut shapes = Shapes::default();
        for k in 0..MAX_CODES {
            assert_eq!(shapes.code(&[0xff, k as u8], 2), Some(k as u8));
        }
        shapes
    }

    /// The entry's size when no code is left for its shape.
    fn round_trip(name: &[u8]) -> usize {
        round_trip_in(&mut full(), name)
    }

    #[test]
    fn shared_shapes_take_one_byte() {
        let mut shapes = Shapes::default();
        let anon = b"anon-3fc640a93fa5840a";
        assert_eq!(round_trip_in(&mut shapes, anon), 1 + 8);
        assert_eq!(round_trip_in(&mut shapes, b"acct-000123"), 1 + 3);
        assert_eq!(round_trip_in(&mut shapes, b"anon-0011223344556677"), 1 + 8);
        assert_eq!(shapes.len(), 2, "anon- with 8 packed bytes, acct- with 3");
        // The same prefix with another length is another shape.
        assert_eq!(round_trip_in(&mut shapes, b"anon-00112233"), 1 + 4);
        assert_eq!(shapes.len(), 3);
        // No prefix, or one too long: spelled out as before, and given no code.
        let uuid = b"0f8e2a7c-3b1d-4e5f-9a6b-7c8d9e0f1a2b";
        assert_eq!(round_trip_in(&mut shapes, uuid), 2 + 24 + 6);
        assert_eq!(round_trip_in(&mut shapes, &[b'f'; 256]), 2 + 128);
        let mut name = vec![b'-'; MAX_CODED_PREFIX];
        name.extend_from_slice(b"beef");
        assert_eq!(round_trip_in(&mut shapes, &name), 1 + 2);
        name.insert(0, b'-');
        assert_eq!(round_trip_in(&mut shapes, &name), 2 + 17 + 2);
        assert_eq!(shapes.len(), 4);
        // Raw names take no code; the longest packed tail takes one.
        assert_eq!(round_trip_in(&mut shapes, b"acct-007"), 1 + 8);
        let mut name = b"x-".to_vec();
        name.extend_from_slice(&[b'a'; 252]);
        assert_eq!(round_trip_in(&mut shapes, &name), 1 + 126);
        assert_eq!(shapes.len(), 5);
    }

    #[test]
    fn once_every_code_is_taken_new_shapes_stay_in_their_entries() {
        let mut shapes = full();
        let anon = b"anon-3fc640a93fa5840a";
        assert_eq!(round_trip_in(&mut shapes, anon), 2 + 5 + 8);
        assert_eq!(shapes.len(), MAX_CODES);
        // A code already handed out is still used, for its length only.
        let mut name = vec![0xff, 7];
        name.extend_from_slice(b"0123");
        assert_eq!(round_trip_in(&mut shapes, &name), 1 + 2);
        name.extend_from_slice(b"45");
        assert_eq!(round_trip_in(&mut shapes, &name), 2 + 2 + 3);
    }

    #[test]
    fn shapes_load_what_they_saved_and_refuse_what_they_could_not_hold() {
        let mut shapes = Shapes::default();
        encoded(b"anon-3fc640a93fa5840a", &mut shapes);
        encoded(b"c-9eb8c19c", &mut shapes);
        let mut bytes = vec![];
        shapes.save(&mut Writer::new(&mut bytes));
        assert_eq!(Shapes::load(&mut Reader::new(&bytes)).unwrap(), shapes);
        let save = |list: &[(&[u8], u8)]| {
            let mut bytes = vec![];
            let mut w = Writer::new(&mut bytes);
            w.len(list.len());
            for (prefix, packed) in list {
                w.bytes(prefix);
                w.u8(*packed);
            }
            bytes
        };
        let long = [b'x'; MAX_CODED_PREFIX + 1];
        let bad: [&[(&[u8], u8)]; 6] = [
            &[(b"a-", 4), (b"a-", 4)],
            &[(b"", 4)],
            &[(&long, 4)],
            &[(b"a-", 1)],
            &[(b"a-", 129)],
            &[(b"a-", 0)],
        ];
        for bad in bad {
            let loaded = Shapes::load(&mut Reader::new(&save(bad)));
            assert!(loaded.is_err(), "{bad:?}");
        }
        assert!(Shapes::load(&mut Reader::new(&save(&[(b"a-", 4), (b"a-", 5)]))).is_ok());
        let too_many: Vec<[u8; 2]> = (0..=MAX_CODES).map(|k| [b'p', k as u8]).collect();
        let too_many: Vec<(&[u8], u8)> = too_many.iter().map(|p| (&p[..], 2)).collect();
        assert!(Shapes::load(&mut Reader::new(&save(&too_many))).is_err());
        assert!(Shapes::load(&mut Reader::new(&save(&too_many[1..]))).is_ok());
    }

    #[test]
    fn usual_ids_take_their_tail_at_half_size() {
        assert_eq!(round_trip(b"anon-3fc640a93fa5840a"), 2 + 5 + 8);
        assert_eq!(round_trip(b"c-9eb8c19c"), 2 + 2 + 4);
        assert_eq!(round_trip(b"acct-000123"), 2 + 5 + 3);
        let uuid = b"0f8e2a7c-3b1d-4e5f-9a6b-7c8d9e0f1a2b";
        assert_eq!(round_trip(uuid), 2 + 24 + 6);
        assert_eq!(round_trip(&[b'f'; 256]), 2 + 128);
    }

    #[test]
    fn edges_of_the_rule() {
        // An odd tail leaves its first character in the prefix.
        assert_eq!(round_trip(b"x-abcde"), 2 + 3 + 2);
        // Too short a tail, upper case, non-hex: raw.
        for raw in [&b"acct-007"[..], b"ab1", b"ACCT-DEADBEEF", b"", b"x"] {
            assert_eq!(round_trip(raw), 1 + raw.len());
        }
        // A 63-byte prefix packs, a 64-byte one does not.
        let mut name = vec![b'-'; 63];
        name.extend_from_slice(b"beef");
        assert_eq!(round_trip(&name), 2 + 63 + 2);
        name.insert(0, b'-');
        assert_eq!(round_trip(&name), 1 + name.len());
        // Long raw names.
        assert_eq!(round_trip(&[b'z'; 128]), 2 + 128);
        assert_eq!(round_trip(&[b'z'; 256]), 2 + 256);
        assert_eq!(round_trip(&[b'z'; 127]), 1 + 127);
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            &[][..],
            &[3, b'a', b'b'],
            &[0x80, 5],
            &[0x83, 0],
            &[0xa0, 0],
            &[0xc0, 1, 0],
            &[0xc0, 129],
            &[0xc1, 2, b'a', 0xab],
        ] {
            assert_eq!(entry_len(bad, &Shapes::default()), None, "{bad:?}");
        }
        // A coded entry is well formed when its code was handed out and its bytes are there.
        let mut shapes = Shapes::default();
        shapes.code(b"a-", 3);
        assert_eq!(entry_len(&[0x84, 0xab, 0xcd, 0xef], &shapes), None);
        assert_eq!(entry_len(&[0x83, 0xab, 0xcd, 0xef], &shapes), Some(4));
        assert_eq!(entry_len(&[0x83, 0xab, 0xcd], &shapes), None);
    }

    #[test]
    fn sixteen_characters_at_once_are_the_ones_at_a_time() {
        let mut word = [0u8; 8];
        for seed in 0..2000u64 {
            word = (u64::from_le_bytes(word) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .rotate_left(seed as u32 % 64)
                .to_le_bytes();
            let chars: Vec<u8> = word.iter().flat_map(|&b| hex2(b)).collect();
            assert_eq!(hex16(&word)[..], chars[..]);
        }
        assert_eq!(
            &hex16(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
            b"0123456789abcdef"
        );
    }

    #[test]
    fn names_are_recognised_in_their_entries() {
        let names = [
            &b"anon-3fc640a93fa5840a"[..],
            b"anon-3fc640a93fa5840b",
            b"anon-3fc640a93fa5840",
            b"anon-3fc640a93fa5840A",
            b"anon-3fc640a93fa5840g",
            b"anOn-3fc640a93fa5840a",
            b"0f8e2a7c3b1d4e5f9a6b7c8d9e0f1a2b3c",
            b"0f8e2a7c3b1d4e5f9a6b7c8d9e0f1a2b3d",
            b"0f8e2a7c3b1d4e5f9a6b7c8d9e0f1a2b3",
            b"0f8e2a7c3b1d4e5f9a6b7c8d9e0F1a2b3c",
            b"acct-007",
            b"acct-008",
            &[b'z'; 200],
            &[b'y'; 200],
            b"",
        ];
        // Shapes coded (anon-, acct- once they pack; 0f8e… has no prefix) and spelled out.
        for mut shapes in [Shapes::default(), full()] {
            for a in names {
                let e = encoded(a, &mut shapes);
                for b in names {
                    assert_eq!(is(&e, &shapes, b), a == b, "{a:?} {b:?}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn names_round_trip_and_equal_encodings_mean_equal_names(
            a in "[a-z0-9A-F_-]{0,70}",
            b in "[a-f0-9-]{0,40}",
        ) {
            // One arena's shapes, as names share them.
            let mut p = Shapes::default();
            round_trip_in(&mut p, a.as_bytes());
            round_trip_in(&mut p, b.as_bytes());
            let (ea, eb) = (encoded(a.as_bytes(), &mut p), encoded(b.as_bytes(), &mut p));
            prop_assert_eq!(ea == eb, a == b);
            prop_assert_eq!(is(&ea, &p, b.as_bytes()), a == b);
            prop_assert!(is(&eb, &p, b.as_bytes()));
        }
    }
}
