//! Validating values nobody reads without building them: nested objects and arrays are
//! walked with an explicit stack rather than recursion, so nesting depth cannot overflow the
//! call stack. Also the two repeated-key checks: inside skipped objects ([`Skipper`]) and in
//! the objects the decoder walks itself ([`KeyCheck`]).

use std::borrow::Cow;

use hashbrown::HashSet;

use super::{Cursor, ErrorKind, JsonError, Result};

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

/// Out of line: validates the object or array at `cur` and returns the position after it.
#[inline(never)]
pub(super) fn skip_container<'a>(mut cur: Cursor<'a>, skip: &mut Skipper<'a>) -> Result<usize> {
    skip.skip_container(&mut cur)?;
    Ok(cur.pos)
}

/// The explicit stack that validates nested values without recursion, kept in the
/// [`Scanner`] so its allocations are reused across the fields of a message.
#[derive(Default)]
pub(super) struct Skipper<'a> {
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
                Some(open @ (b'{' | b'[')) => {
                    let is_object = open == b'{';
                    let close = if is_object { b'}' } else { b']' };
                    cur.pos += 1;
                    if cur.peek_byte() == Some(close) {
                        cur.pos += 1;
                    } else {
                        self.frames.push(Frame {
                            is_object,
                            keys_start: self.keys.len(),
                            big: None,
                        });
                        if is_object {
                            self.nested_key(cur)?;
                        }
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
