//! A small, strict, pull-style JSON scanner for event messages (RFC 8259).
//!
//! Why not serde: decoding is the hot loop of the whole service (SPEC §1 runs on every
//! message), and an event needs none of what a generic deserializer builds. The scanner walks
//! the bytes once, hands out strings without escapes as borrowed `&str` (owned only when an
//! escape forces it), numbers as their raw text, and validates the values of fields nobody
//! reads without building them — iteratively, so nesting depth cannot overflow the stack.
//!
//! The caller drives it: [`Scanner::object_start`] and [`Scanner::next_key`] walk an object
//! whose keys it checks itself (the decoder knows its fields), [`Scanner::value`] reads a
//! scalar or validates and skips a container (duplicate keys included),
//! [`Scanner::skip_value`] validates any value without building it, and [`Scanner::end`]
//! requires nothing but whitespace after the top-level value.
//!
//! This file holds the API (the scanner, its values and errors) and the cursor's small token
//! readers; `strings` reads strings (the scanner's inner loop) and `skip` validates nested
//! containers and detects repeated keys.

mod skip;
mod strings;

use std::borrow::Cow;
use std::fmt;

pub(crate) use skip::KeyCheck;
use skip::{Skipper, skip_container};
use strings::skip_string;

/// Why a message is not acceptable JSON for us. Boxed, so that the `Result`s of the hot
/// path stay as small as the values they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError(Box<ErrorKind>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The message is not UTF-8; `at` is the byte offset of the first bad byte.
    NotUtf8 { at: usize },
    /// Not RFC 8259 JSON; `what` says what was wrong at byte offset `at`.
    Syntax { what: &'static str, at: usize },
    /// A key repeated within one object (compared after unescaping).
    DuplicateKey { key: String, at: usize },
}

impl JsonError {
    #[cold]
    #[inline(never)]
    fn new(kind: ErrorKind) -> JsonError {
        JsonError(Box::new(kind))
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            ErrorKind::NotUtf8 { at } => write!(f, "not valid utf-8 at byte {at}"),
            ErrorKind::Syntax { what, at } => write!(f, "invalid json at byte {at}: {what}"),
            ErrorKind::DuplicateKey { key, at } => {
                write!(f, "key {} repeated at byte {at}", quote_short(key))
            }
        }
    }
}

/// `key` in double quotes for an error message, cut to a readable length.
pub(crate) fn quote_short(key: &str) -> String {
    const MAX: usize = 64;
    if key.len() <= MAX {
        return format!("{key:?}");
    }
    let mut cut = MAX;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{:?}…", &key[..cut])
}

/// The kind of the next value, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// A JSON number as written. Its value is only computed when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Number<'a> {
    /// The exact text, e.g. `-0`, `1.5e3`, `1700000000000`.
    pub raw: &'a str,
    /// Written with no fraction and no exponent (`-?(0|[1-9][0-9]*)`).
    pub is_integer: bool,
}

impl Number<'_> {
    /// The nearest `f64`; infinite when the number is too large (`1e400`).
    #[inline(always)]
    pub fn to_f64(self) -> f64 {
        if let Some(v) = self.to_f64_fast() {
            return v;
        }
        // The JSON number grammar is a subset of what `f64::from_str` accepts, and Rust's
        // parser is correctly rounded, so this cannot fail.
        self.raw.parse().unwrap_or(f64::NAN)
    }

    /// Clinger's fast path for the common short numbers (`12.5`, `1700000000000`): with at
    /// most 15 digits and no exponent, the digits and the power of ten are both exact
    /// doubles, so one correctly rounded division gives the correctly rounded value.
    #[inline(always)]
    fn to_f64_fast(self) -> Option<f64> {
        const POW10: [f64; 16] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        ];
        let (negative, digits) = match self.raw.strip_prefix('-') {
            Some(rest) => (true, rest.as_bytes()),
            None => (false, self.raw.as_bytes()),
        };
        if digits.len() > 16 {
            return None;
        }
        let mut mantissa = 0u64;
        let mut scale = None;
        for (i, &c) in digits.iter().enumerate() {
            match c {
                b'0'..=b'9' => mantissa = mantissa * 10 + u64::from(c - b'0'),
                b'.' => scale = Some(digits.len() - i - 1),
                _ => return None,
            }
        }
        if scale.is_none() && digits.len() > 15 {
            return None;
        }
        let v = mantissa as f64 / POW10[scale.unwrap_or(0)];
        Some(if negative { -v } else { v })
    }

    /// Whether the number is below zero. Exact, unlike the sign of `to_f64` (`-1e-400`
    /// is negative but rounds to `-0.0`); `-0` and `-0.0e5` are not negative.
    pub fn is_negative(self) -> bool {
        let Some(rest) = self.raw.strip_prefix('-') else {
            return false;
        };
        rest.bytes()
            .take_while(|&c| c != b'e' && c != b'E')
            .any(|c| matches!(c, b'1'..=b'9'))
    }

    /// The value of an integer that fits in `i64`; `None` for a fraction or exponent, or on
    /// overflow.
    pub fn to_i64(self) -> Option<i64> {
        if self.is_integer {
            self.raw.parse().ok()
        } else {
            None
        }
    }
}

/// A value read by [`Scanner::value`]. Containers come back validated and skipped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Str(Cow<'a, str>),
    Num(Number<'a>),
    Bool(bool),
    Null,
    Object,
    Array,
}

type Result<T> = std::result::Result<T, JsonError>;

#[cold]
#[inline(never)]
fn syntax(what: &'static str, at: usize) -> JsonError {
    JsonError::new(ErrorKind::Syntax { what, at })
}

/// A cursor over one JSON message. See the module docs for how to drive it.
pub(crate) struct Scanner<'a> {
    cur: Cursor<'a>,
    skip: Skipper<'a>,
}

impl<'a> Scanner<'a> {
    /// Checks that `msg` is UTF-8 and positions the cursor at its start.
    pub fn new(msg: &'a [u8]) -> Result<Scanner<'a>> {
        let src = if strings::is_ascii(msg) {
            // SAFETY: ASCII is UTF-8.
            unsafe { std::str::from_utf8_unchecked(msg) }
        } else {
            std::str::from_utf8(msg).map_err(|e| {
                JsonError::new(ErrorKind::NotUtf8 {
                    at: e.valid_up_to(),
                })
            })?
        };
        Ok(Scanner {
            cur: Cursor {
                src,
                bytes: msg,
                pos: 0,
            },
            skip: Skipper::default(),
        })
    }

    /// The kind of the next value (after whitespace), judged by its first byte.
    #[inline(always)]
    pub fn peek(&mut self) -> Result<Kind> {
        self.cur.peek()
    }

    /// Consumes the `{` that opens an object; then call [`Scanner::next_key`] until `None`.
    #[inline(always)]
    pub fn object_start(&mut self) -> Result<()> {
        if self.cur.peek_byte() != Some(b'{') {
            return self.cur.err("expected '{'");
        }
        self.cur.pos += 1;
        Ok(())
    }

    /// The next key of the object opened by [`Scanner::object_start`], with the `:` after it
    /// consumed, so the member's value comes next. `None` once the closing `}` is consumed.
    /// `first` must start `true` for each object. Duplicate keys are the caller's to check.
    #[inline(always)]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>> {
        let cur = &mut self.cur;
        match cur.peek_byte() {
            Some(b'}') if *first => {
                cur.pos += 1;
                return Ok(None);
            }
            _ if *first => *first = false,
            Some(b',') => cur.pos += 1,
            Some(b'}') => {
                cur.pos += 1;
                return Ok(None);
            }
            Some(_) => return cur.err("expected ',' or '}'"),
            None => return cur.err("unexpected end of input"),
        }
        cur.key().map(Some)
    }

    /// Reads the next value. Objects and arrays are validated to their end (syntax and
    /// duplicate keys at every depth) and come back as [`Value::Object`] / [`Value::Array`].
    #[inline(always)]
    pub fn value(&mut self) -> Result<Value<'a>> {
        let cur = &mut self.cur;
        Ok(match cur.peek()? {
            Kind::String => Value::Str(cur.string()?),
            Kind::Number => Value::Num(cur.number()?),
            Kind::Bool | Kind::Null => cur.literal()?,
            Kind::Object => {
                cur.pos = skip_container(*cur, &mut self.skip)?;
                Value::Object
            }
            Kind::Array => {
                cur.pos = skip_container(*cur, &mut self.skip)?;
                Value::Array
            }
        })
    }

    /// Validates and skips the next value, building nothing (not even an escaped string):
    /// for the values of fields nobody reads.
    #[inline(always)]
    pub fn skip_value(&mut self) -> Result<()> {
        let cur = &mut self.cur;
        match cur.peek()? {
            Kind::String => cur.pos = skip_string(*cur)?,
            Kind::Number => {
                cur.number()?;
            }
            Kind::Bool | Kind::Null => {
                cur.literal()?;
            }
            Kind::Object | Kind::Array => cur.pos = skip_container(*cur, &mut self.skip)?,
        }
        Ok(())
    }

    /// Requires only whitespace after the top-level value.
    pub fn end(&mut self) -> Result<()> {
        match self.cur.peek_byte() {
            None => Ok(()),
            Some(_) => self.cur.err("unexpected data after the json value"),
        }
    }
}

/// The position in the message, and the token readers. `Copy`, and handed by value to the
/// out-of-line slow paths (escapes, skipped containers), which return the new position: so
/// no pointer to the hot path's cursor escapes, and it can live in registers.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn err<T>(&self, what: &'static str) -> Result<T> {
        Err(syntax(what, self.pos))
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Skips whitespace and returns the next byte without consuming it. Event messages are
    /// mostly written without whitespace, so one comparison settles the common case.
    #[inline(always)]
    fn peek_byte(&mut self) -> Option<u8> {
        match self.bytes.get(self.pos) {
            Some(&c) if c > b' ' => Some(c),
            _ => {
                self.skip_ws();
                self.bytes.get(self.pos).copied()
            }
        }
    }

    #[inline(always)]
    fn peek(&mut self) -> Result<Kind> {
        match self.peek_byte() {
            Some(b'{') => Ok(Kind::Object),
            Some(b'[') => Ok(Kind::Array),
            Some(b'"') => Ok(Kind::String),
            Some(b'-' | b'0'..=b'9') => Ok(Kind::Number),
            Some(b't' | b'f') => Ok(Kind::Bool),
            Some(b'n') => Ok(Kind::Null),
            Some(_) => self.err("expected a value"),
            None => self.err("unexpected end of input"),
        }
    }

    /// A member key and its `:`.
    #[inline(always)]
    fn key(&mut self) -> Result<Cow<'a, str>> {
        if self.peek_byte() != Some(b'"') {
            return self.err("expected a string key");
        }
        let key = self.string()?;
        if self.peek_byte() != Some(b':') {
            return self.err("expected ':'");
        }
        self.pos += 1;
        Ok(key)
    }

    #[inline(always)]
    fn literal(&mut self) -> Result<Value<'a>> {
        let rest = &self.bytes[self.pos..];
        let (value, len) = if rest.starts_with(b"true") {
            (Value::Bool(true), 4)
        } else if rest.starts_with(b"false") {
            (Value::Bool(false), 5)
        } else if rest.starts_with(b"null") {
            (Value::Null, 4)
        } else {
            return self.err("invalid literal");
        };
        self.pos += len;
        Ok(value)
    }

    #[inline(always)]
    fn number(&mut self) -> Result<Number<'a>> {
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits_end(b, i + 1),
            _ => {
                self.pos = i;
                return self.err("invalid number");
            }
        }
        let mut is_integer = true;
        if b.get(i) == Some(&b'.') {
            is_integer = false;
            i += 1;
            let digits = i;
            i = digits_end(b, i);
            if i == digits {
                self.pos = i;
                return self.err("expected a digit after '.'");
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            is_integer = false;
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let digits = i;
            i = digits_end(b, i);
            if i == digits {
                self.pos = i;
                return self.err("expected a digit in the exponent");
            }
        }
        self.pos = i;
        Ok(Number {
            raw: &self.src[start..i],
            is_integer,
        })
    }
}

/// Where the run of ASCII digits starting at `i` ends (`i` itself when there is none).
#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests;
