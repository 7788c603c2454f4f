//! The text of record values. Comparing and searching short texts (a currency, a status, a
//! lookup key, an e-mail address) in line, without calling into the C library: for values of a
//! few bytes, the call and set-up of `memcmp` or a vectorized search cost more than the work
//! (measured: `memcmp` was 3.4 % of the CPU time of the CSV vendors of a tenth of a day, the
//! search for an e-mail's `@` 1.2 %). Longer texts go to the standard library as before. A text
//! of at most 8 bytes as one word ([`Short`]), for the short lists a value is sought in
//! ([`ShortList`]). And
//! the strings new output text is written into, kept from record to record ([`Texts`]).

use std::borrow::Cow;
use std::cmp::Ordering;

/// Up to this many bytes, texts are compared and searched a byte at a time.
const SHORT: usize = 32;

/// Up to this many bytes, a text is searched for a short needle by its first byte
/// ([`contains`]): at worst every byte starts a compare of up to [`SHORT`] bytes.
const SEARCHED: usize = 4096;

/// Whether `a` and `b` are the same text.
#[inline]
pub fn eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if a.len() > SHORT {
        return a == b;
    }
    let mut same = true;
    for (x, y) in a.iter().zip(b) {
        same &= x == y;
    }
    same
}

/// `a.cmp(b)`: texts ordered byte by byte, a prefix first.
#[inline]
pub fn cmp(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if x.len().min(y.len()) > SHORT {
        return x.cmp(y);
    }
    for (p, q) in x.iter().zip(y) {
        if p != q {
            return p.cmp(q);
        }
    }
    x.len().cmp(&y.len())
}

/// `text.rfind(byte)` for an ASCII `byte`.
#[inline]
pub fn rfind(text: &str, byte: u8) -> Option<usize> {
    let b = text.as_bytes();
    if b.len() > SHORT {
        return memchr::memrchr(byte, b);
    }
    b.iter().rposition(|&c| c == byte)
}

/// Whether `needle` occurs in `hay`. A short needle in a text of at most [`SEARCHED`] bytes
/// (a record's text, a reason) is sought by its first byte (`memchr`) and compared where that
/// byte stands, without the set-up of the standard library's search: 13.9M instructions in
/// callgrind for the nine searches each of about 10,000 rejected records made (three masked
/// fields, one problem), about 150 a search; `memchr::memmem` set up more still. Past those
/// sizes the standard library's search, whose time grows with the text alone.
#[inline]
pub fn contains(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let Some((&first, _)) = n.split_first() else {
        return true;
    };
    if n.len() > SHORT || h.len() > SEARCHED {
        return hay.contains(needle);
    }
    memchr::memchr_iter(first, h).any(|i| h[i..].starts_with(n))
}

/// A text of at most 8 bytes as one word with its length ([`Short::of`]): two are equal exactly
/// when their texts are, so a value is compared with each entry of a short list (allowed
/// values, a lookup table's keys) by one comparison of words made once for the list. From four
/// to eight bytes the word holds the first four and the last four (overlapping below eight),
/// below four the first, middle and last byte; either way every byte of the text. Compared
/// text by text ([`eq`]), a check of a currency among five and of a status among three and the
/// lookup of the currency's name took about 370 instructions a record of V009's file 0093 of
/// the bench's day (callgrind); by words, 264 fewer in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    word: u64,
    len: u8,
}

impl Short {
    /// What a list's text longer than 8 bytes is given: equal to no value's [`Short::of`].
    pub const NONE: Short = Short {
        word: 0,
        len: u8::MAX,
    };

    /// The word of `text`, or `None` past 8 bytes.
    #[inline]
    pub fn of(text: &str) -> Option<Short> {
        let b = text.as_bytes();
        let n = b.len();
        let word = match n {
            4..=8 => {
                let half = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                u64::from(half(0)) | u64::from(half(n - 4)) << 32
            }
            1..=3 => u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
            0 => 0,
            _ => return None,
        };
        Some(Short { word, len: n as u8 })
    }

    /// [`Short::of`], or [`Short::NONE`] past 8 bytes: for a list's entries.
    fn entry(text: &str) -> Short {
        Short::of(text).unwrap_or(Short::NONE)
    }
}

/// The words ([`Short`]) of a short list of texts (allowed values, a lookup table's keys),
/// made once: where a value stands in the list, found by its word, or by comparing texts
/// ([`eq`]) for a value longer than a word.
#[derive(Debug, Clone, Default)]
pub struct ShortList(Vec<Short>);

impl ShortList {
    pub fn new<'t>(texts: impl IntoIterator<Item = &'t str>) -> ShortList {
        ShortList(texts.into_iter().map(Short::entry).collect())
    }

    /// The place of `value` in the list, whose text at place `i` is `text(i)`.
    #[inline]
    pub fn position<'t>(&self, value: &str, text: impl Fn(usize) -> &'t str) -> Option<usize> {
        match Short::of(value) {
            Some(word) => self.0.iter().position(|w| *w == word),
            None => (0..self.0.len()).find(|&i| eq(text(i), value)),
        }
    }
}

/// Strings for output values that are new text (a token, a reformatted date or number, a
/// changed case), kept from record to record: taken here instead of allocated, and given back
/// once the record is written ([`Texts::reclaim`]). Each keeps its capacity, so a chunk's
/// records allocate no text after the first few (measured: allocating and freeing five such
/// strings a record was 3 % of the CPU time of the CSV vendors of a tenth of a day).
#[derive(Debug, Default)]
pub struct Texts(Vec<String>);

impl Texts {
    /// At most this many strings are kept.
    const KEEP: usize = 256;

    /// An empty string, with the capacity it had.
    pub fn take(&mut self) -> String {
        let mut s = self.0.pop().unwrap_or_default();
        s.clear();
        s
    }

    /// Takes back the text of the values of a record (emptying `values`).
    pub fn reclaim<'a>(&mut self, values: &mut Vec<Option<Cow<'a, str>>>) {
        for v in values.drain(..) {
            if let Some(Cow::Owned(s)) = v
                && self.0.len() < Self::KEEP
            {
                self.0.push(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c]{0,6}",
            "[a-cé]{0,40}",
            proptest::collection::vec(any::<char>(), 0..50).prop_map(|c| c.into_iter().collect()),
        ]
    }

    proptest! {
        /// The same answers as the standard library's.
        #[test]
        fn as_the_standard_library(a in text(), b in text(), byte in prop_oneof![Just(b'@'), Just(b'a'), any::<u8>().prop_map(|b| b & 0x7f)]) {
            prop_assert_eq!(eq(&a, &b), a == b);
            prop_assert_eq!(eq(&a, &a), true);
            prop_assert_eq!(cmp(&a, &b), a.cmp(&b));
            prop_assert_eq!(cmp(&a, &a), std::cmp::Ordering::Equal);
            prop_assert_eq!(rfind(&a, byte), a.rfind(byte as char));
            prop_assert_eq!(contains(&a, &b), a.contains(b.as_str()));
            // Past `SEARCHED` bytes too.
            let long = a.repeat(100);
            prop_assert_eq!(contains(&long, &b), long.contains(b.as_str()));
            let inner = a.get(a.len() / 3..a.len() / 2).unwrap_or("");
            prop_assert_eq!(contains(&a, inner), true);
        }

        /// Two texts of at most 8 bytes have the same word exactly when they are the same;
        /// a longer one has none, and a list's entry for it equals no value's word.
        #[test]
        fn short_words_tell_texts_apart(a in "[a-c]{0,9}", b in "[a-c]{0,9}", c in text()) {
            for t in [&a, &b, &c] {
                prop_assert_eq!(Short::of(t).is_some(), t.len() <= 8);
                prop_assert_eq!(Short::entry(t) == Short::NONE, t.len() > 8);
            }
            for (x, y) in [(&a, &b), (&a, &c), (&c, &b)] {
                if let (Some(p), Some(q)) = (Short::of(x), Short::of(y)) {
                    prop_assert_eq!(p == q, x == y);
                }
            }
        }
    }
}
