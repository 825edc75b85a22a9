//! Event ids as the engine keeps them: packed, and in stores that can let them go.
//!
//! Event ids are most of the engine's string bytes (issue #2 budgets 48 bytes per retained
//! touch), and most of them are lowercase hex (`b168f04bd6e80e2a`, UUIDs without dashes), so
//! such an id is stored as its nibbles, half the size. The encoding is canonical — one string,
//! one encoding — so equality and hashing work on encoded bytes, and it keeps the byte order
//! that SPEC §3 breaks `occurred_at` ties with: `0-9` sort below `a-f` in ASCII as their
//! nibble values do, so two packed ids compare like their strings.
//!
//! Layout of one entry, a header byte then the payload:
//! - `0x00..=0x7f`: that many raw bytes;
//! - `0x80..=0xbf`: raw, length `(h & 0x3f) << 8 | next byte`, then the bytes;
//! - `0xc0..=0xff`: `h & 0x3f` bytes of packed lowercase hex (2 to 126 characters, even).

use std::cmp::Ordering;

use super::SnapshotError;
use super::store::StrRef;
use crate::codec::{Reader, Writer};
use crate::event::MAX_ID_BYTES;

const HEX: u8 = 0xc0;
const LONG: u8 = 0x80;
/// The most packed bytes a header can count.
const MAX_PACKED: usize = 0x3f;

/// One id in its stored form. The engine keeps one and refills it for each event
/// ([`Encoded::set`]), so the 258-byte buffer is neither cleared nor moved per event.
#[derive(Debug)]
pub struct Encoded {
    buf: [u8; MAX_ID_BYTES + 2],
    len: usize,
}

impl Default for Encoded {
    fn default() -> Encoded {
        Encoded {
            buf: [0; MAX_ID_BYTES + 2],
            len: 0,
        }
    }
}

impl Encoded {
    #[cfg(test)]
    pub fn new(id: &[u8]) -> Encoded {
        let mut e = Encoded::default();
        e.set(id);
        e
    }

    /// Encodes `id`, replacing what was here.
    pub fn set(&mut self, id: &[u8]) {
        let e = self;
        let n = id.len();
        assert!(n <= MAX_ID_BYTES, "ids are at most 256 bytes (SPEC §1)");
        if n >= 2 && n.is_multiple_of(2) && n / 2 <= MAX_PACKED && pack_hex(id, &mut e.buf[1..]) {
            e.buf[0] = HEX | (n / 2) as u8;
            e.len = 1 + n / 2;
        } else if n < 0x80 {
            e.buf[0] = n as u8;
            e.buf[1..1 + n].copy_from_slice(id);
            e.len = 1 + n;
        } else {
            e.buf[0] = LONG | (n >> 8) as u8;
            e.buf[1] = n as u8;
            e.buf[2..2 + n].copy_from_slice(id);
            e.len = 2 + n;
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The id as one word, when it fits ([`Word`]).
    pub fn word(&self) -> Option<Word> {
        Word::of(self.as_bytes())
    }
}

/// An id that fits in 64 bits, so a table can hold the id itself rather than a reference to
/// its bytes elsewhere (a second cache miss per lookup): 16 lowercase hex characters, the
/// usual event id, as their 8 packed bytes; or any id whose encoding takes at most 8 bytes,
/// as that encoding padded with zeros. Equal ids give equal words and different ids
/// different ones, as encodings do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Hex16(u64),
    Short(u64),
}

impl Word {
    /// The word of an encoded id, if it fits.
    pub fn of(encoded: &[u8]) -> Option<Word> {
        match encoded.len() {
            9 if encoded[0] == HEX | 8 => Some(Word::Hex16(u64::from_le_bytes(
                encoded[1..].try_into().expect("8 bytes"),
            ))),
            0..=8 => {
                let mut word = [0; 8];
                word[..encoded.len()].copy_from_slice(encoded);
                Some(Word::Short(u64::from_le_bytes(word)))
            }
            _ => None,
        }
    }

    /// The length of [`Word::encoded`].
    pub fn encoded_len(self) -> usize {
        match self {
            Word::Hex16(_) => 9,
            Word::Short(word) => {
                let (start, len, _) = span(&word.to_le_bytes(), 0);
                start + len
            }
        }
    }

    /// The id's encoding, in `buf`.
    pub fn encoded(self, buf: &mut [u8; 9]) -> &[u8] {
        match self {
            Word::Hex16(word) => {
                buf[0] = HEX | 8;
                buf[1..].copy_from_slice(&word.to_le_bytes());
                &buf[..]
            }
            Word::Short(word) => {
                buf[..8].copy_from_slice(&word.to_le_bytes());
                let (start, len, _) = span(buf, 0);
                &buf[..start + len]
            }
        }
    }

    /// The id's bytes as they came in, in `buf`.
    pub fn raw(self, buf: &mut [u8; MAX_ID_BYTES]) -> &[u8] {
        let mut encoded = [0; 9];
        let encoded = self.encoded(&mut encoded);
        let (start, len, hex) = span(encoded, 0);
        let payload = &encoded[start..start + len];
        if hex {
            return unpack_hex(payload, buf);
        }
        buf[..len].copy_from_slice(payload);
        &buf[..len]
    }
}

/// A touch's event id: a 16-hex-character id (the usual one) as its packed word, held in the
/// touch itself, or any other id as where a store keeps it. Holding the usual id in the touch
/// saves the 9 bytes it took in the store and the 4 of the reference (5 net, as a touch grows
/// from 20 to 24 bytes), and a store write per touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchId {
    /// The 8 packed bytes of [`Word::Hex16`].
    Hex16(u64),
    Stored(StrRef),
}

/// Nibble value of each lowercase hex digit; `0x80` for every other byte.
pub(super) const NIBBLE: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};

/// Packs `id` (even length) as nibbles into `out` if it is all lowercase hex. Runs once per
/// event, so branch-free per pair: a non-hex byte only sets the `0x80` bit of `bad`.
#[inline]
pub(super) fn pack_hex(id: &[u8], out: &mut [u8]) -> bool {
    let mut bad = 0;
    for (pair, o) in id.chunks_exact(2).zip(out.iter_mut()) {
        let (hi, lo) = (NIBBLE[pair[0] as usize], NIBBLE[pair[1] as usize]);
        bad |= hi | lo;
        *o = hi << 4 | (lo & 0x0f);
    }
    bad & 0x80 == 0
}

/// Where an entry's payload is, and whether it is packed hex.
#[inline]
fn span(bytes: &[u8], at: usize) -> (usize, usize, bool) {
    let h = bytes[at];
    if h >= HEX {
        (at + 1, (h & 0x3f) as usize, true)
    } else if h >= LONG {
        (
            at + 2,
            ((h & 0x3f) as usize) << 8 | bytes[at + 1] as usize,
            false,
        )
    } else {
        (at + 1, h as usize, false)
    }
}

/// Byte order of the strings of the entries that `a` and `b` start with.
fn cmp_entries(a: &[u8], b: &[u8]) -> Ordering {
    let (sa, la, ha) = span(a, 0);
    let (sb, lb, hb) = span(b, 0);
    if ha == hb {
        // Both raw, or both packed: packed nibbles order like their hex strings.
        return a[sa..sa + la].cmp(&b[sb..sb + lb]);
    }
    let (mut x, mut y) = ([0; MAX_ID_BYTES], [0; MAX_ID_BYTES]);
    unpack(a, 0, &mut x).cmp(unpack(b, 0, &mut y))
}

/// The string of an entry, unpacked into `buf` if it was packed.
fn unpack<'a>(bytes: &'a [u8], at: usize, buf: &'a mut [u8; MAX_ID_BYTES]) -> &'a [u8] {
    let (start, len, hex) = span(bytes, at);
    let payload = &bytes[start..start + len];
    if !hex {
        return payload;
    }
    unpack_hex(payload, buf)
}

/// Packed nibbles back to their lowercase hex characters, in `buf`.
fn unpack_hex<'a>(packed: &[u8], buf: &'a mut [u8; MAX_ID_BYTES]) -> &'a [u8] {
    let len = 2 * packed.len();
    super::name_code::unpack_hex(packed, &mut buf[..len]);
    &buf[..len]
}

/// Append-only bytes of encoded ids, addressed by offset. Stores that must let ids go copy
/// the live ones into a fresh `EventIds` ([`EventIds::copy_from`]) and drop the old one.
#[derive(Debug, Default)]
pub struct EventIds {
    bytes: Vec<u8>,
}

impl EventIds {
    pub fn with_capacity(bytes: usize) -> EventIds {
        EventIds {
            bytes: Vec::with_capacity(bytes),
        }
    }

    pub fn push(&mut self, id: &Encoded) -> StrRef {
        self.push_encoded(id.as_bytes())
    }

    fn push_encoded(&mut self, encoded: &[u8]) -> StrRef {
        let Ok(at) = StrRef::try_from(self.bytes.len()) else {
            // Four GiB of ids is far past the memory this engine is sized for; stopping
            // loudly beats silently aliasing ids.
            panic!("event id store is full (4 GiB): split the input over more partitions");
        };
        self.bytes.extend_from_slice(encoded);
        at
    }

    /// Copies entry `at` of `other` here.
    #[inline]
    pub fn copy_from(&mut self, other: &EventIds, at: StrRef) -> StrRef {
        self.push_encoded(other.encoded(at))
    }

    /// Entry `at` as stored, header included: equal ids have equal encodings.
    #[inline]
    pub fn encoded(&self, at: StrRef) -> &[u8] {
        let (start, len, _) = span(&self.bytes, at as usize);
        &self.bytes[at as usize..start + len]
    }

    /// Byte order of the two ids' strings (SPEC §3 tie-break).
    pub fn cmp(&self, a: StrRef, b: StrRef) -> Ordering {
        cmp_entries(&self.bytes[a as usize..], &self.bytes[b as usize..])
    }

    /// Keeps a touch's id: in the touch when it is a [`Word::Hex16`], here otherwise.
    #[inline]
    pub fn keep(&mut self, id: &Encoded) -> TouchId {
        match id.word() {
            Some(Word::Hex16(word)) => TouchId::Hex16(word),
            _ => TouchId::Stored(self.push(id)),
        }
    }

    /// Keeps here a touch id that `other` kept.
    #[inline]
    pub fn keep_copy(&mut self, other: &EventIds, id: TouchId) -> TouchId {
        match id {
            TouchId::Hex16(_) => id,
            TouchId::Stored(at) => TouchId::Stored(self.copy_from(other, at)),
        }
    }

    /// Byte order of two touch ids' strings (SPEC §3 tie-break).
    pub fn order(&self, a: TouchId, b: TouchId) -> Ordering {
        match (a, b) {
            // Packed nibbles order like their hex strings, the first byte most significant.
            (TouchId::Hex16(a), TouchId::Hex16(b)) => a.swap_bytes().cmp(&b.swap_bytes()),
            (TouchId::Stored(a), TouchId::Stored(b)) => self.cmp(a, b),
            (TouchId::Hex16(a), TouchId::Stored(b)) => cmp_entries(
                Word::Hex16(a).encoded(&mut [0; 9]),
                &self.bytes[b as usize..],
            ),
            (TouchId::Stored(a), TouchId::Hex16(b)) => cmp_entries(
                &self.bytes[a as usize..],
                Word::Hex16(b).encoded(&mut [0; 9]),
            ),
        }
    }

    /// A touch id's bytes as they came in, unpacked into `buf`.
    pub fn touch_raw<'a>(&'a self, id: TouchId, buf: &'a mut [u8; MAX_ID_BYTES]) -> &'a [u8] {
        match id {
            TouchId::Hex16(word) => Word::Hex16(word).raw(buf),
            TouchId::Stored(at) => self.raw(at, buf),
        }
    }

    /// A touch id as text (ids came in as validated UTF-8).
    pub fn touch_str<'a>(&'a self, id: TouchId, buf: &'a mut [u8; MAX_ID_BYTES]) -> &'a str {
        std::str::from_utf8(self.touch_raw(id, buf)).unwrap_or_default()
    }

    /// A touch id as text: for the account view.
    pub fn touch_string(&self, id: TouchId) -> String {
        self.touch_str(id, &mut [0; MAX_ID_BYTES]).to_string()
    }

    /// The bytes a touch id takes here.
    pub fn kept_len(&self, id: TouchId) -> usize {
        match id {
            TouchId::Hex16(_) => 0,
            TouchId::Stored(at) => self.encoded(at).len(),
        }
    }

    /// Whether a touch id is whole (a snapshot check, as [`EventIds::valid`]).
    pub fn holds(&self, id: TouchId) -> bool {
        match id {
            TouchId::Hex16(_) => true,
            TouchId::Stored(at) => self.valid(at),
        }
    }

    /// The id's bytes as they came in, unpacked into `buf` when they were packed.
    #[inline]
    pub fn raw<'a>(&'a self, at: StrRef, buf: &'a mut [u8; MAX_ID_BYTES]) -> &'a [u8] {
        unpack(&self.bytes, at as usize, buf)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Forgets every entry, keeping the memory for the next ones.
    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// The end of the entry at `at` if one lies inside the store (a snapshot check: it makes
    /// the accessors safe, not necessarily meaningful).
    pub fn entry_end(&self, at: usize) -> Option<usize> {
        let &h = self.bytes.get(at)?;
        if (LONG..HEX).contains(&h) {
            self.bytes.get(at + 1)?;
        }
        let (start, len, _) = span(&self.bytes, at);
        Some(start + len).filter(|&end| end <= self.bytes.len())
    }

    pub fn valid(&self, at: StrRef) -> bool {
        self.entry_end(at as usize).is_some()
    }

    /// The raw bytes, dead entries included: offsets stay valid.
    pub fn save(&self, w: &mut Writer<'_>) {
        w.bytes(&self.bytes);
    }

    pub fn load(r: &mut Reader<'_>) -> Result<EventIds, SnapshotError> {
        Ok(EventIds {
            bytes: r.bytes()?.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{1,40}",
            "[0-9a-f]{16}",
            "[0-9a-f]{14,18}",
            "[0-9a-fA-F]{2,6}",
            "[0-9a-g]{1,8}",
            "[0-9a-f]{120,130}",
            ".{1,4}",
            "x{200,256}",
        ]
    }

    proptest! {
        #[test]
        fn round_trips_and_orders_like_the_strings(a in id(), b in id()) {
            let mut ids = EventIds::default();
            let (ea, eb) = (Encoded::new(a.as_bytes()), Encoded::new(b.as_bytes()));
            let (ra, rb) = (ids.push(&ea), ids.push(&eb));
            prop_assert_eq!(ids.touch_string(TouchId::Stored(ra)), a.as_str());
            prop_assert_eq!(ids.touch_string(TouchId::Stored(rb)), b.as_str());
            prop_assert_eq!(ids.cmp(ra, rb), a.as_bytes().cmp(b.as_bytes()));
            // Touch ids, kept in the touch or here, order and read back the same.
            let (ta, tb) = (ids.keep(&ea), ids.keep(&eb));
            let hex16 = a.len() == 16 && a.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
            prop_assert_eq!(matches!(ta, TouchId::Hex16(_)), hex16);
            prop_assert_eq!(ids.order(ta, tb), a.as_bytes().cmp(b.as_bytes()));
            prop_assert_eq!(ids.touch_string(ta), a.as_str());
            let mut other = EventIds::default();
            let copied = other.keep_copy(&ids, tb);
            prop_assert_eq!(other.touch_string(copied), b.as_str());
            prop_assert_eq!(other.kept_len(copied), if matches!(tb, TouchId::Hex16(_)) { 0 } else { eb.as_bytes().len() });
            prop_assert_eq!(ids.encoded(ra) == ids.encoded(rb), a == b);
            prop_assert_eq!(ids.encoded(ra), ea.as_bytes());
            // An id that fits a word comes back from it whole, and only equal ids share one.
            if let Some(word) = ea.word() {
                let (mut encoded, mut raw) = ([0; 9], [0; MAX_ID_BYTES]);
                prop_assert_eq!(word.encoded(&mut encoded), ea.as_bytes());
                prop_assert_eq!(word.encoded_len(), ea.as_bytes().len());
                prop_assert_eq!(word.raw(&mut raw), a.as_bytes());
                prop_assert_eq!(Some(word) == eb.word(), a == b);
            }
        }
    }

    #[test]
    fn hex_ids_take_half_the_bytes() {
        let mut ids = EventIds::default();
        ids.push(&Encoded::new(b"b168f04bd6e80e2a"));
        assert_eq!(ids.len(), 9);
        ids.push(&Encoded::new(b"B168F04BD6E80E2A"));
        assert_eq!(ids.len(), 9 + 17, "uppercase is kept as written");
    }
}
