//! A tiny binary codec for engine snapshots: little-endian integers and length-prefixed byte
//! strings appended to a `Vec<u8>`, read back from a slice.
//!
//! Reading never panics on bad input: running out of bytes, an impossible length or a bad
//! flag is a [`SnapshotError::Corrupt`] naming the section being read and the byte offset.
//! Lengths are `u64` so no table the engine can hold is ever cut short.

use crate::engine::SnapshotError;

/// Appends encoded values to a buffer.
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Writer<'a> {
        Writer { out }
    }

    /// Makes room for `additional` more bytes, so big tables are written without regrowing.
    pub fn reserve(&mut self, additional: usize) {
        self.out.reserve(additional);
    }

    /// Bytes as they are, without a length: the reader must know how many.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.raw(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.raw(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.raw(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.raw(&v.to_le_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }

    /// A count of items that follow.
    pub fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }

    /// A length, then the bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.raw(bytes);
    }

    /// A length, then the values.
    pub fn u32s(&mut self, values: &[u32]) {
        self.reserve(8 + 4 * values.len());
        self.len(values.len());
        for &v in values {
            self.u32(v);
        }
    }
}

/// Reads values back in the order they were written.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// What is being read, for error messages.
    section: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            at: 0,
            section: "header",
        }
    }

    /// Names what follows, for the errors about it.
    pub fn section(&mut self, name: &'static str) {
        self.section = name;
    }

    /// A [`SnapshotError::Corrupt`] saying `problem` about the current section.
    pub fn corrupt(&self, problem: impl std::fmt::Display) -> SnapshotError {
        SnapshotError::Corrupt(format!("{}: {problem} (at byte {})", self.section, self.at))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.corrupt(format_args!(
                "needs {n} more bytes, {} left",
                self.bytes.len() - self.at
            )));
        };
        let bytes = &self.bytes[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("take returns N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, SnapshotError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn bool(&mut self) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.corrupt(format_args!("{b} is not a flag"))),
        }
    }

    /// A count of items of at least `min_item_bytes` each: a count the remaining bytes cannot
    /// hold is an error, so a corrupt count never makes the caller reserve a huge table.
    pub fn len(&mut self, min_item_bytes: usize) -> Result<usize, SnapshotError> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_item_bytes.max(1) as u64) > left {
            return Err(self.corrupt(format_args!("{n} items cannot fit in {left} bytes")));
        }
        Ok(n as usize)
    }

    /// A length, then that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let n = self.len(1)?;
        self.take(n)
    }

    /// What [`Writer::u32s`] wrote.
    pub fn u32s(&mut self) -> Result<Vec<u32>, SnapshotError> {
        let n = self.len(4)?;
        let bytes = self.take(4 * n)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("chunks of 4")))
            .collect())
    }

    /// Checks that everything was read.
    pub fn finish(&self) -> Result<(), SnapshotError> {
        let left = self.bytes.len() - self.at;
        if left > 0 {
            return Err(self.corrupt(format_args!("{left} bytes after the end")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        w.u8(7);
        w.u16(0xbeef);
        w.u32(u32::MAX - 1);
        w.u64(1 << 40);
        w.i64(-5);
        w.bool(true);
        w.bytes(b"acme");
        w.u32s(&[1, 2, 3]);
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u16().unwrap(), 0xbeef);
        assert_eq!(r.u32().unwrap(), u32::MAX - 1);
        assert_eq!(r.u64().unwrap(), 1 << 40);
        assert_eq!(r.i64().unwrap(), -5);
        assert!(r.bool().unwrap());
        assert_eq!(r.bytes().unwrap(), b"acme");
        assert_eq!(r.u32s().unwrap(), [1, 2, 3]);
        r.finish().unwrap();
    }

    #[test]
    fn short_or_nonsense_input_is_an_error() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.section("test");
        let err = r.u32().unwrap_err();
        assert!(
            matches!(&err, SnapshotError::Corrupt(m) if m.starts_with("test:")),
            "{err}"
        );
        let huge = u64::MAX.to_le_bytes();
        assert!(Reader::new(&huge).len(1).is_err());
        assert!(Reader::new(&huge).bytes().is_err());
        assert!(Reader::new(&[2]).bool().is_err());
        assert!(Reader::new(&[0, 0]).finish().is_err());
    }
}
