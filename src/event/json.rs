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

use std::borrow::Cow;
use std::fmt;

use hashbrown::HashSet;

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

/// An object or array being skipped by [`Skipper::skip_container`].
struct Frame<'a> {
    is_object: bool,
    /// Where this object's keys start in `Skipper::keys`.
    keys_start: usize,
    /// Once an object has many keys, a set replaces the linear search in `keys`.
    big: Option<Box<KeySet<'a>>>,
}

type KeySet<'a> = HashSet<Cow<'a, str>, foldhash::fast::RandomState>;

/// Objects with more keys than this switch from a linear scan to a hash set for duplicate
/// detection, so a hostile object with thousands of keys stays linear time.
const LINEAR_KEYS: usize = 16;

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
        let src = std::str::from_utf8(msg).map_err(|e| {
            JsonError::new(ErrorKind::NotUtf8 {
                at: e.valid_up_to(),
            })
        })?;
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

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline(always)]
    fn peek_byte(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.pos).copied()
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
            Some(b'1'..=b'9') => {
                i += 1;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
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
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
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
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
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

    /// Reads a string at `"`, borrowing it unless it holds escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let i = find_special(self.bytes, start);
        match self.bytes.get(i) {
            Some(b'"') => {
                self.pos = i + 1;
                // Slicing at ASCII quotes keeps to char boundaries of the validated message.
                Ok(Cow::Borrowed(&self.src[start..i]))
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
    fn skip_string(&mut self) -> Result<()> {
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
fn skip_string(mut cur: Cursor<'_>) -> Result<usize> {
    cur.skip_string()?;
    Ok(cur.pos)
}

/// Out of line: validates the object or array at `cur` and returns the position after it.
#[inline(never)]
fn skip_container<'a>(mut cur: Cursor<'a>, skip: &mut Skipper<'a>) -> Result<usize> {
    skip.skip_container(&mut cur)?;
    Ok(cur.pos)
}

/// The explicit stack that validates nested values without recursion, kept in the
/// [`Scanner`] so its allocations are reused across the fields of a message.
#[derive(Default)]
struct Skipper<'a> {
    /// Open containers, innermost last.
    frames: Vec<Frame<'a>>,
    /// Keys of the open objects in `frames`, innermost last.
    keys: Vec<Cow<'a, str>>,
}

impl<'a> Skipper<'a> {
    /// Validates the object or array at the cursor to its end without building it, using
    /// the explicit `frames` stack so that depth costs heap, not call stack.
    fn skip_container(&mut self, cur: &mut Cursor<'a>) -> Result<()> {
        let frames_base = self.frames.len();
        let keys_base = self.keys.len();
        let result = self.skip_container_inner(cur, frames_base);
        // After an error, forget the half-walked containers so the scanner stays consistent.
        self.frames.truncate(frames_base);
        self.keys.truncate(keys_base);
        result
    }

    fn skip_container_inner(&mut self, cur: &mut Cursor<'a>, base: usize) -> Result<()> {
        'value: loop {
            // Expecting a value.
            match cur.peek_byte() {
                Some(b'{') => {
                    cur.pos += 1;
                    if cur.peek_byte() == Some(b'}') {
                        cur.pos += 1;
                    } else {
                        self.frames.push(Frame {
                            is_object: true,
                            keys_start: self.keys.len(),
                            big: None,
                        });
                        self.nested_key(cur)?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    cur.pos += 1;
                    if cur.peek_byte() == Some(b']') {
                        cur.pos += 1;
                    } else {
                        self.frames.push(Frame {
                            is_object: false,
                            keys_start: self.keys.len(),
                            big: None,
                        });
                        continue 'value;
                    }
                }
                Some(b'"') => cur.skip_string()?,
                Some(b'-' | b'0'..=b'9') => {
                    cur.number()?;
                }
                Some(b't' | b'f' | b'n') => {
                    cur.literal()?;
                }
                Some(_) => return cur.err("expected a value"),
                None => return cur.err("unexpected end of input"),
            }
            // A value is complete: close what ends here, then expect the next value.
            loop {
                if self.frames.len() == base {
                    return Ok(());
                }
                let is_object = self.frames.last().is_some_and(|f| f.is_object);
                match cur.peek_byte() {
                    Some(b',') => {
                        cur.pos += 1;
                        if is_object {
                            self.nested_key(cur)?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if is_object => {
                        cur.pos += 1;
                        let frame = self.frames.pop().expect("checked above");
                        self.keys.truncate(frame.keys_start);
                    }
                    Some(b']') if !is_object => {
                        cur.pos += 1;
                        self.frames.pop();
                    }
                    Some(_) if is_object => return cur.err("expected ',' or '}'"),
                    Some(_) => return cur.err("expected ',' or ']'"),
                    None => return cur.err("unexpected end of input"),
                }
            }
        }
    }

    /// Reads a key of the innermost (object) frame and checks it was not seen in that object.
    fn nested_key(&mut self, cur: &mut Cursor<'a>) -> Result<()> {
        let at = cur.pos;
        let key = cur.key()?;
        let frame = self.frames.last_mut().expect("inside an object");
        let seen = &self.keys[frame.keys_start..];
        let fresh = match &mut frame.big {
            Some(set) => set.insert(key),
            None if seen.len() < LINEAR_KEYS => {
                if seen.contains(&key) {
                    false
                } else {
                    self.keys.push(key);
                    true
                }
            }
            None => {
                let mut set: KeySet<'a> = self.keys.drain(frame.keys_start..).collect();
                let fresh = set.insert(key);
                frame.big = Some(Box::new(set));
                fresh
            }
        };
        if fresh {
            return Ok(());
        }
        // Re-read the (already validated) key from its opening quote, for the message.
        let mut again = *cur;
        again.pos = at + cur.bytes[at..].iter().position(|&c| c == b'"').unwrap_or(0);
        let quote = again.pos;
        let key = again.string().map(Cow::into_owned).unwrap_or_default();
        Err(JsonError::new(ErrorKind::DuplicateKey { key, at: quote }))
    }
}

/// Detects a repeated key in an object the caller walks itself (the event's top level,
/// `attributes`): the first few keys live inline, so the common case never allocates; past
/// that a hash set keeps a hostile object with thousands of keys linear.
pub(crate) struct KeyCheck<'a> {
    few: [Cow<'a, str>; INLINE_KEYS],
    len: usize,
    many: Option<KeySet<'a>>,
}

const INLINE_KEYS: usize = 8;

impl<'a> KeyCheck<'a> {
    pub fn new() -> KeyCheck<'a> {
        KeyCheck {
            few: [const { Cow::Borrowed("") }; INLINE_KEYS],
            len: 0,
            many: None,
        }
    }

    /// Records `key`; `false` if it was already recorded.
    pub fn insert(&mut self, key: Cow<'a, str>) -> bool {
        if let Some(set) = &mut self.many {
            return set.insert(key);
        }
        if self.few[..self.len].contains(&key) {
            return false;
        }
        if self.len < INLINE_KEYS {
            self.few[self.len] = key;
            self.len += 1;
        } else {
            let mut set: KeySet<'a> = self.few.iter_mut().map(std::mem::take).collect();
            set.insert(key);
            self.many = Some(set);
        }
        true
    }
}

/// Index of the first `"`, `\` or control byte (< 0x20) at or after `i`, or `b.len()`.
///
/// Strings are most of an event's bytes, so this is the scanner's inner loop: sixteen bytes
/// at a time with SSE2 (part of every x86-64 CPU), eight elsewhere and near the end.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn find_special(b: &[u8], mut i: usize) -> usize {
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
fn find_special(b: &[u8], i: usize) -> usize {
    find_special_swar(b, i)
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

#[cfg(test)]
mod tests;
