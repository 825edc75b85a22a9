//! Reading JSON strings: the borrowed fast path, unescaping (`\uXXXX` surrogate pairs
//! included), validation without building, and the search for the next special byte that
//! all of them run on (SSE2 on x86-64, eight bytes at a time elsewhere).

use std::borrow::Cow;

use super::{Cursor, Result};

impl<'a> Cursor<'a> {
    /// Reads a string at `"`, borrowing it unless it holds escapes.
    #[inline(always)]
    pub(super) fn string(&mut self) -> Result<Cow<'a, str>> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let i = find_special(self.bytes, start);
        match self.bytes.get(i) {
            Some(b'"') => {
                self.pos = i + 1;
                debug_assert!(self.src.is_char_boundary(start) && self.src.is_char_boundary(i));
                // SAFETY: `start` follows an ASCII quote and `i` is one, both inside the
                // message (`start <= i < len`), so both are char boundaries of the validated
                // UTF-8 `src`. The checked slice spent ~10 instructions per string on
                // proving this again, and every event has about twenty strings.
                Ok(Cow::Borrowed(unsafe { self.src.get_unchecked(start..i) }))
            }
            Some(b'\\') => {
                let (text, end) = unescape(*self, start, i)?;
                self.pos = end;
                Ok(Cow::Owned(text))
            }
            Some(_) => {
                self.pos = i;
                self.err("control character in string")
            }
            None => {
                self.pos = i;
                self.err("unterminated string")
            }
        }
    }

    /// Continues a string that started at `start` at its first backslash `i`, and consumes
    /// the closing quote.
    fn string_escaped(&mut self, start: usize, i: usize) -> Result<String> {
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&self.src[start..i]);
        self.pos = i;
        loop {
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let c = self.escape()?;
                    out.push(c);
                }
                Some(_) => {
                    let start = self.pos;
                    let i = find_special(self.bytes, start);
                    out.push_str(&self.src[start..i]);
                    self.pos = i;
                    match self.bytes.get(i) {
                        Some(b'"' | b'\\') => {}
                        Some(_) => return self.err("control character in string"),
                        None => return self.err("unterminated string"),
                    }
                }
                None => return self.err("unterminated string"),
            }
        }
    }

    /// Validates a string at `"` without building it (for values nobody reads).
    pub(super) fn skip_string(&mut self) -> Result<()> {
        self.pos += 1;
        loop {
            let i = find_special(self.bytes, self.pos);
            self.pos = i;
            match self.bytes.get(i) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.escape()?;
                }
                Some(_) => return self.err("control character in string"),
                None => return self.err("unterminated string"),
            }
        }
    }

    /// Decodes one escape at a backslash, pairing `\u` surrogates.
    fn escape(&mut self) -> Result<char> {
        let c = match self.bytes.get(self.pos + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let hi = self.hex4(self.pos + 2)?;
                self.pos += 6;
                return match hi {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return self.err("unpaired surrogate in \\u escape");
                        }
                        let lo = self.hex4(self.pos + 2)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return self.err("unpaired surrogate in \\u escape");
                        }
                        self.pos += 6;
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        Ok(char::from_u32(c).expect("a surrogate pair is a valid char"))
                    }
                    0xDC00..=0xDFFF => self.err("unpaired surrogate in \\u escape"),
                    _ => Ok(char::from_u32(hi).expect("a non-surrogate below 0x10000 is a char")),
                };
            }
            Some(_) => {
                self.pos += 1;
                return self.err("invalid escape");
            }
            None => return self.err("unterminated string"),
        };
        self.pos += 2;
        Ok(c)
    }

    fn hex4(&mut self, at: usize) -> Result<u32> {
        let Some(hex) = self.bytes.get(at..at + 4) else {
            self.pos = at;
            return self.err("expected 4 hex digits after \\u");
        };
        let mut v = 0;
        for &h in hex {
            let d = match h {
                b'0'..=b'9' => h - b'0',
                b'a'..=b'f' => h - b'a' + 10,
                b'A'..=b'F' => h - b'A' + 10,
                _ => {
                    self.pos = at;
                    return self.err("expected 4 hex digits after \\u");
                }
            };
            v = v << 4 | u32::from(d);
        }
        Ok(v)
    }
}

/// Out of line, because escapes are rare: the unescaped string that started at `start` and
/// has its first backslash at `i`, and the position after its closing quote.
#[inline(never)]
fn unescape(mut cur: Cursor<'_>, start: usize, i: usize) -> Result<(String, usize)> {
    let text = cur.string_escaped(start, i)?;
    Ok((text, cur.pos))
}

/// Out of line: validates the string at `cur` and returns the position after it.
#[inline(never)]
pub(super) fn skip_string(mut cur: Cursor<'_>) -> Result<usize> {
    cur.skip_string()?;
    Ok(cur.pos)
}

/// Index of the first `"`, `\` or control byte (< 0x20) at or after `i`, or `b.len()`.
///
/// Strings are most of an event's bytes, so this is the scanner's inner loop: sixteen bytes
/// at a time with SSE2 (part of every x86-64 CPU), eight elsewhere and near the end.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn find_special(b: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    while i + 16 <= b.len() {
        // SAFETY: `i + 16 <= b.len()`, so the unaligned 16-byte load stays inside `b`, and
        // SSE2 is part of the x86-64 baseline.
        let hits = unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(i).cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Unsigned v <= 0x1f exactly when max(v, 0x1f) == 0x1f.
            let low = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        };
        if hits != 0 {
            return i + hits.trailing_zeros() as usize;
        }
        i += 16;
    }
    find_special_swar(b, i)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(super) fn find_special(b: &[u8], i: usize) -> usize {
    find_special_swar(b, i)
}

/// Whether every byte of `b` is ASCII: the common case, in which the message needs no UTF-8
/// validation. Sixty-four bytes per step with SSE2, the rest by the standard library.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn is_ascii(b: &[u8]) -> bool {
    use std::arch::x86_64::{_mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128};
    let mut i = 0;
    while i + 64 <= b.len() {
        // SAFETY: `i + 64 <= b.len()`, so the four unaligned 16-byte loads stay inside `b`,
        // and SSE2 is part of the x86-64 baseline.
        let high = unsafe {
            let p = b.as_ptr().add(i);
            let v = _mm_or_si128(
                _mm_or_si128(_mm_loadu_si128(p.cast()), _mm_loadu_si128(p.add(16).cast())),
                _mm_or_si128(
                    _mm_loadu_si128(p.add(32).cast()),
                    _mm_loadu_si128(p.add(48).cast()),
                ),
            );
            _mm_movemask_epi8(v)
        };
        if high != 0 {
            return false;
        }
        i += 64;
    }
    b[i..].is_ascii()
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(super) fn is_ascii(b: &[u8]) -> bool {
    b.is_ascii()
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// [`find_special`] eight bytes at a time in a `u64` (SWAR). The classic zero-byte test can
/// flag a byte falsely only above a byte that truly matches, so the lowest flagged byte is
/// always a real one.
#[inline(always)]
fn find_special_swar(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quote = w ^ (LO * u64::from(b'"'));
        let backslash = w ^ (LO * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(LO) & !quote)
            | (backslash.wrapping_sub(LO) & !backslash)
            | (w.wrapping_sub(LO * 0x20) & !w);
        let hits = hits & HI;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}
