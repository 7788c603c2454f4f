//! The plain reader of JSON Lines: a line of the usual shape (an object whose keys hold no
//! escape, nested at most [`MAX_DEPTH`] deep) read in one pass over its bytes, without
//! serde_json's visitors.
//!
//! It takes only lines serde_json accepts, and gives exactly the values the serde_json walk
//! gives: each value's text is found here and turned into the field's value by the same
//! [`scalar`] the walk uses. Anything else (a key with an escape, deeper nesting, every
//! error) is declined, and the line is read again by the walk, which words the reject
//! reason. A property test holds the two readers to the same values on generated lines and on
//! JSON soup. In `perf record` of the JSON Lines vendors of the bench's tenth of a day, the
//! serde_json walk took 29 % of the CPU time of `process`.

use std::borrow::Cow;

use super::{KeyNode, scalar};

/// Deepest nesting of objects and arrays read here; deeper lines go to the walk, which has
/// its own limits.
pub(super) const MAX_DEPTH: usize = 32;

/// Bytes that end a run of plain string content: `"`, `\` and the control characters
/// (U+0000 to U+001F), which JSON does not allow unescaped in a string.
const STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

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
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(());
        }
        // The configured keys of this object seen so far, as the walk counts them.
        let mut seen = 0u64;
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
            // Keys are short: compared in line, not through `memcmp`.
            let named = |n: &KeyNode| {
                n.key.len() == key.len() && n.key.bytes().zip(key).all(|(a, &b)| a == b)
            };
            match keys.iter().position(named) {
                None => self.skip(depth)?,
                Some(index) => {
                    let node = &keys[index];
                    let bit = 1u64
                        .checked_shl(index as u32)
                        .filter(|_| index < 64)
                        .unwrap_or(0);
                    if bit == 0 || seen & bit != 0 {
                        self.repeated = true;
                    }
                    seen |= bit;
                    for &f in &node.all {
                        values[f] = None;
                    }
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
                        for &f in &node.ends {
                            values[f] = value.clone();
                        }
                    }
                }
            }
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
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
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Some(());
        }
        loop {
            self.skip(depth)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
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
    /// escape. Escapes are checked as serde_json checks them (a lone surrogate was refused
    /// for the whole line before).
    fn string(&mut self) -> Option<(std::ops::Range<usize>, bool)> {
        let start = self.i;
        let mut i = self.i + 1;
        let mut escaped = false;
        loop {
            i = plain_run_end(self.b, i);
            match self.b.get(i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match self.b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let hex = self.b.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
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

/// The end of the run of plain string content (no `"`, `\` or control character) that
/// starts at `i`: eight bytes at a time, then byte by byte.
pub(super) fn plain_run_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        // A byte equal to `"` or `\` becomes zero after the XOR; a zero byte, or one below
        // 0x20, borrows in the subtraction. The lowest flagged byte is always a real stop
        // (borrows only flag bytes above it).
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        let stops = zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if stops != 0 {
            return i + (stops.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !STRING_STOP[b[i] as usize] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The word-at-a-time search stops where the byte-by-byte one does.
        #[test]
        fn runs_end_at_the_first_stop(b in prop::collection::vec(prop::sample::select(vec![
            b'a', b' ', b'"', b'\\', 0, 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xa9, 0xff, b'!', b'#', b']',
        ]), 0..40), from in 0usize..8) {
            let from = from.min(b.len());
            let slow = from + b[from..].iter().take_while(|&&c| !STRING_STOP[c as usize]).count();
            prop_assert_eq!(plain_run_end(&b, from), slow);
        }
    }
}
