//! The plain reader of JSON Lines: a line of the usual shape (an object whose keys hold no
//! escape, nested at most [`MAX_DEPTH`] deep) read in one pass over its bytes, without
//! serde_json's visitors.
//!
//! It takes only lines serde_json accepts, and gives exactly the values the serde_json walk
//! gives: each value's text is found here and turned into the field's value by the same
//! [`scalar`] the walk uses. Anything else (a key with an escape, deeper nesting, a `\u`
//! escape that is half of a surrogate pair alone, every error) is declined, and the line is
//! read again by the walk, which words the reject reason. `JsonlDecoder::check_plain_reader`
//! holds the two readers to the same values: the property tests run it on generated lines, on
//! JSON soup and on damaged lines, and the `jsonl` fuzz target on every line it is given. In
//! `perf record` of the JSON Lines vendors of the bench's tenth of a day, the serde_json walk
//! took 29 % of the CPU time of `process`.

use std::borrow::Cow;

use super::{KeyNode, escape_unit as unit, scalar};

/// Deepest nesting of objects and arrays read here; deeper lines go to the walk, which has
/// its own limits.
pub(super) const MAX_DEPTH: usize = 32;

/// Reads `text` into `values` (cleared by the caller to `None`): `Some(repeated)` when the
/// line is read, with `repeated` as the walk reports it (a configured key twice in one
/// object); `None` when it is declined, with `values` partly filled.
pub(super) fn read<'d>(
    keys: &[KeyNode],
    text: &'d str,
    values: &mut [Option<Cow<'d, str>>],
) -> Option<bool> {
    let mut r = Reader {
        text,
        b: text.as_bytes(),
        i: 0,
        repeated: false,
    };
    r.ws();
    if r.peek() != Some(b'{') {
        return None;
    }
    r.object(keys, values, 1)?;
    r.ws();
    (r.i == r.b.len()).then_some(r.repeated)
}

struct Reader<'d> {
    text: &'d str,
    b: &'d [u8],
    i: usize,
    repeated: bool,
}

impl<'d> Reader<'d> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips JSON white space.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Reads the object at `self.i` (a `{`), taking the values of the fields under `keys`.
    fn object(
        &mut self,
        keys: &[KeyNode],
        values: &mut [Option<Cow<'d, str>>],
        depth: usize,
    ) -> Option<()> {
        if self.open(b'}', depth)? {
            return Some(());
        }
        // The configured keys of this object seen so far, as the walk counts them.
        let mut seen = 0u64;
        // Where the search for the next key among `keys` starts.
        let mut next = 0;
        loop {
            if self.peek() != Some(b'"') {
                return None;
            }
            let (key, escaped) = self.string()?;
            if escaped {
                return None;
            }
            let key = &self.b[key.start + 1..key.end - 1];
            self.ws();
            if self.peek() != Some(b':') {
                return None;
            }
            self.i += 1;
            self.ws();
            // Keys mostly come in the order the fields name them: the key after the last one
            // found is tried first, then all of them.
            let is = |n: &KeyNode| crate::codecs::same(n.key.as_bytes(), key);
            let found = match keys.get(next) {
                Some(n) if is(n) => Some(next),
                _ => keys.iter().position(is),
            };
            if let Some(index) = found {
                next = index + 1;
            }
            match found {
                None => self.skip(depth)?,
                Some(index) => {
                    let node = &keys[index];
                    let bit = 1u64
                        .checked_shl(index as u32)
                        .filter(|_| index < 64)
                        .unwrap_or(0);
                    // A key seen before in this object: what it gave is replaced. The first time,
                    // its fields are still `None` (the caller's, or cleared with the key of the
                    // object around this one when that key was repeated): nothing to clear.
                    if bit == 0 || seen & bit != 0 {
                        self.repeated = true;
                        for &f in &node.all {
                            values[f] = None;
                        }
                    }
                    seen |= bit;
                    let start = self.i;
                    let mut plain_string = false;
                    match self.peek() {
                        Some(b'{') if !node.children.is_empty() => {
                            self.object(&node.children, values, depth + 1)?;
                        }
                        Some(b'"') => plain_string = !self.string()?.1,
                        _ => self.skip(depth)?,
                    }
                    if !node.ends.is_empty() {
                        let raw = self.text.get(start..self.i)?;
                        // A string without escapes is what `scalar` makes of it, borrowed
                        // between its quotes, without looking for a `\` again.
                        let value = match plain_string {
                            true => Some(Cow::Borrowed(raw.get(1..raw.len() - 1)?)),
                            false => scalar(raw).ok()?,
                        };
                        // Most keys give one field: its value is moved, not copied.
                        match node.ends[..] {
                            [f] => values[f] = value,
                            _ => node.ends.iter().for_each(|&f| values[f] = value.clone()),
                        }
                    }
                }
            }
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    /// Passes over the value at `self.i`, checking it as serde_json would.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.object(&[], &mut [], depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if self.open(b']', depth)? {
            return Some(());
        }
        loop {
            self.skip(depth)?;
            if !self.more(b']')? {
                return Some(());
            }
        }
    }

    /// Past the `{` or `[` at `self.i`: `Some(true)` when `close` follows at once (and is
    /// passed too), `None` past the deepest nesting read here.
    fn open(&mut self, close: u8, depth: usize) -> Option<bool> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        let empty = self.peek() == Some(close);
        if empty {
            self.i += 1;
        }
        Some(empty)
    }

    /// After a member or an element: `Some(true)` past a `,` (another one follows),
    /// `Some(false)` past the `close` that ends the object or array.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let b = self.peek()?;
        self.i += 1;
        match b {
            b',' => {
                self.ws();
                Some(true)
            }
            _ => (b == close).then_some(false),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b
            .get(self.i..self.i + word.len())
            .filter(|w| *w == word)?;
        self.i += word.len();
        Some(())
    }

    /// A number as JSON writes it: `-`? (`0` | a digit 1-9 and digits) (`.` digits)?
    /// ([eE] [+-]? digits)?.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let from = self.i;
        self.digits();
        (self.i > from).then_some(())
    }

    /// The string at `self.i` (a `"`): its range with the quotes, and whether it holds an
    /// escape. Escapes are checked as serde_json checks them; a line with a `\u` escape that
    /// is half of a surrogate pair without its other half is declined.
    ///
    /// Always in line: a line of the bench's JSON Lines vendors holds about 23 strings, keys
    /// and values, and as a call each paid for saving and restoring registers. In line,
    /// callgrind of one of their files (3,810 records) counted 1,024 instructions a record
    /// fewer (the reader's 23.6M -> 19.7M); `scripts/compare` of the vendors gave CPU 0.946 (12
    /// rounds), the median of 16 alternating runs 0.959 of before. `#[inline]` alone left it a
    /// call.
    #[inline(always)]
    fn string(&mut self) -> Option<(std::ops::Range<usize>, bool)> {
        let start = self.i;
        let mut i = self.i + 1;
        let mut escaped = false;
        loop {
            i += crate::codecs::find_json_escape(&self.b[i..]).unwrap_or(self.b.len() - i);
            match self.b.get(i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match self.b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            // Half of a surrogate pair only with its other half right after
                            // it: a lone one is refused by the caller's check, not here.
                            match unit(self.b, i)? {
                                0xD800..=0xDBFF => {
                                    if !(0xDC00..=0xDFFF).contains(&unit(self.b, i + 6)?) {
                                        return None;
                                    }
                                    i += 12;
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => i += 6,
                            }
                        }
                        _ => return None,
                    }
                }
                // A control character.
                _ => return None,
            }
        }
        self.i = i + 1;
        Some((start..self.i, escaped))
    }
}
