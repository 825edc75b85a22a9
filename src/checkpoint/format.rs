//! The checkpoint file: a header, the payload, and a checksum over both, so that a torn write
//! or a flipped byte is detected before any of it is believed.
//!
//! ```text
//! "SPIRALCK"  magic, 8 bytes
//! version     u32 little endian (FORMAT_VERSION)
//! generation  u64 little endian
//! length      u64 little endian, payload bytes
//! payload     `length` bytes
//! crc32       u32 little endian, CRC-32 (IEEE) of everything before it
//! ```

use std::fmt;

pub const MAGIC: &[u8; 8] = b"SPIRALCK";
pub const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 8;
const TRAILER: usize = 4;

/// Why a checkpoint file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corrupt {
    TooShort(usize),
    BadMagic,
    Version(u32),
    /// The length field disagrees with the file size: a torn or truncated write.
    Length {
        header: u64,
        actual: u64,
    },
    Checksum {
        stored: u32,
        computed: u32,
    },
    /// The name says one generation, the header another.
    Generation {
        named: u64,
        stored: u64,
    },
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corrupt::TooShort(n) => write!(f, "only {n} bytes, shorter than a header"),
            Corrupt::BadMagic => write!(f, "not a Spiral checkpoint (bad magic)"),
            Corrupt::Version(v) => write!(
                f,
                "format version {v}, this build reads version {FORMAT_VERSION}"
            ),
            Corrupt::Length { header, actual } => write!(
                f,
                "payload length {header} in the header but {actual} bytes present (torn write?)"
            ),
            Corrupt::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch: stored {stored:08x}, computed {computed:08x}"
            ),
            Corrupt::Generation { named, stored } => {
                write!(f, "named generation {named} but holds generation {stored}")
            }
        }
    }
}

pub fn encode(generation: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len() + TRAILER);
    start(&mut out);
    out.extend_from_slice(payload);
    finish(&mut out, generation);
    out
}

/// Empties `frame` and leaves room for the header: append the payload, then [`finish`]. Big
/// checkpoints are framed in place, in a buffer reused from one checkpoint to the next (a
/// fresh buffer of a few hundred MB costs a second of page faults here).
pub fn start(frame: &mut Vec<u8>) {
    frame.clear();
    frame.extend_from_slice(&[0; HEADER]);
}

/// Fills in the header of a frame begun with [`start`] and appends the checksum.
pub fn finish(frame: &mut Vec<u8>, generation: u64) {
    let length = (frame.len() - HEADER) as u64;
    frame[..8].copy_from_slice(MAGIC);
    frame[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    frame[12..20].copy_from_slice(&generation.to_le_bytes());
    frame[20..28].copy_from_slice(&length.to_le_bytes());
    let crc = crc32fast::hash(frame);
    frame.extend_from_slice(&crc.to_le_bytes());
}

/// The generation and payload of a checkpoint file, after every check.
pub fn decode(bytes: &[u8]) -> Result<(u64, &[u8]), Corrupt> {
    if bytes.len() < HEADER + TRAILER {
        return Err(Corrupt::TooShort(bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err(Corrupt::BadMagic);
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != FORMAT_VERSION {
        return Err(Corrupt::Version(version));
    }
    let generation = u64_at(12);
    let length = u64_at(20);
    let actual = (bytes.len() - HEADER - TRAILER) as u64;
    if length != actual {
        return Err(Corrupt::Length {
            header: length,
            actual,
        });
    }
    let body = &bytes[..bytes.len() - TRAILER];
    let stored = u32_at(bytes.len() - TRAILER);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(Corrupt::Checksum { stored, computed });
    }
    Ok((generation, &body[HEADER..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let file = encode(7, b"state");
        assert_eq!(decode(&file), Ok((7, &b"state"[..])));
        assert_eq!(decode(&encode(0, b"")), Ok((0, &b""[..])));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_detected() {
        let file = encode(3, b"journeys, counters, dedup ids, identity links");
        for len in 0..file.len() {
            assert!(decode(&file[..len]).is_err(), "truncated to {len}");
        }
        for at in 0..file.len() {
            let mut bad = file.clone();
            bad[at] ^= 0x10;
            assert!(decode(&bad).is_err(), "byte {at} flipped");
        }
    }

    #[test]
    fn problems_are_named() {
        let mut file = encode(1, b"abc");
        let n = file.len();
        file[n - 6] ^= 1;
        assert!(
            decode(&file)
                .unwrap_err()
                .to_string()
                .starts_with("checksum mismatch")
        );
        let torn = &encode(1, b"abcdefghijklmnop")[..40];
        assert!(matches!(decode(torn), Err(Corrupt::Length { .. })));
        assert_eq!(
            decode(b"not a checkpoint at all, really, no"),
            Err(Corrupt::BadMagic)
        );
    }
}
