//! Searching, checking and copying short runs of bytes (a field, a value to write, a record):
//! a word at a time for a few dozen bytes, the vectorized searches of `memchr` and `simdutf8`
//! beyond; whether a text holds any of a few bytes, and where a JSON string's plain run ends,
//! 16 bytes at a time ([`Bytes16`]: SSE2, part of x86-64); and [`put`], the writers' copy of a
//! short piece without a call to `memcpy`. Shared by every format's reader and writer.

// Searches within one short value (a field of a record, a value to write): eight bytes at a
// time in a machine word. For the few dozen bytes of a field this beats setting up a vector
// search (memchr), which wins on long inputs such as whole records and chunks. A yes-or-no
// check takes 16 bytes in one vector, with no set-up to weigh (`any_of16`).

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that equals `b` (and possibly of bytes after it, never
/// before: the first set bit is exact).
#[inline(always)]
fn bytes_equal(word: u64, b: u8) -> u64 {
    let x = word ^ (LO * b as u64);
    x.wrapping_sub(LO) & !x & HI
}

#[inline(always)]
fn word_at(hay: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&hay[i..i + 8]);
    u64::from_le_bytes(w)
}

/// The high bit of each byte of `word` below `n` (`n` at most 128; exact as to whether any is).
#[inline(always)]
fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(LO * n as u64) & !word & HI
}

/// Sixteen bytes looked at together: each test marks the bytes it holds for (all bits set).
/// SSE2 on x86-64 (part of it, so every CPU this runs on has it), a byte array elsewhere.
#[derive(Clone, Copy)]
struct Bytes16(
    #[cfg(target_arch = "x86_64")] std::arch::x86_64::__m128i,
    #[cfg(not(target_arch = "x86_64"))] [u8; 16],
);

#[cfg(target_arch = "x86_64")]
impl Bytes16 {
    /// The 16 bytes at `hay[i..]`.
    #[inline(always)]
    fn at(hay: &[u8], i: usize) -> Bytes16 {
        let piece: &[u8; 16] = hay[i..i + 16].try_into().expect("16 bytes");
        // SAFETY: SSE2; the unaligned load reads the 16 bytes of `piece`.
        Bytes16(unsafe { std::arch::x86_64::_mm_loadu_si128(piece.as_ptr().cast()) })
    }

    /// Two words' bytes, `low`'s first.
    #[inline(always)]
    fn words(low: u64, high: u64) -> Bytes16 {
        // SAFETY: SSE2.
        Bytes16(unsafe { std::arch::x86_64::_mm_set_epi64x(high as i64, low as i64) })
    }

    #[inline(always)]
    fn equal(self, b: u8) -> Bytes16 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2.
        Bytes16(unsafe { _mm_cmpeq_epi8(self.0, _mm_set1_epi8(b as i8)) })
    }

    /// The bytes below `n` (at least 1): those whose unsigned minimum with `n - 1` is
    /// themselves.
    #[inline(always)]
    fn below(self, n: u8) -> Bytes16 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2.
        Bytes16(unsafe {
            _mm_cmpeq_epi8(_mm_min_epu8(self.0, _mm_set1_epi8((n - 1) as i8)), self.0)
        })
    }

    #[inline(always)]
    fn or(self, other: Bytes16) -> Bytes16 {
        // SAFETY: SSE2.
        Bytes16(unsafe { std::arch::x86_64::_mm_or_si128(self.0, other.0) })
    }

    /// The bytes marked in `self` and not in `other`.
    #[inline(always)]
    fn and_not(self, other: Bytes16) -> Bytes16 {
        // SAFETY: SSE2.
        Bytes16(unsafe { std::arch::x86_64::_mm_andnot_si128(other.0, self.0) })
    }

    #[inline(always)]
    fn any(self) -> bool {
        // SAFETY: SSE2.
        unsafe { std::arch::x86_64::_mm_movemask_epi8(self.0) != 0 }
    }

    /// The offset of the first byte marked.
    #[inline(always)]
    fn first(self) -> Option<usize> {
        // SAFETY: SSE2.
        let m = unsafe { std::arch::x86_64::_mm_movemask_epi8(self.0) };
        (m != 0).then(|| m.trailing_zeros() as usize)
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl Bytes16 {
    #[inline(always)]
    fn at(hay: &[u8], i: usize) -> Bytes16 {
        Bytes16(hay[i..i + 16].try_into().expect("16 bytes"))
    }

    #[inline(always)]
    fn words(low: u64, high: u64) -> Bytes16 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&low.to_le_bytes());
        b[8..].copy_from_slice(&high.to_le_bytes());
        Bytes16(b)
    }

    #[inline(always)]
    fn each(self, f: impl Fn(u8) -> bool) -> Bytes16 {
        Bytes16(self.0.map(|c| if f(c) { 0xFF } else { 0 }))
    }

    #[inline(always)]
    fn equal(self, b: u8) -> Bytes16 {
        self.each(|c| c == b)
    }

    #[inline(always)]
    fn below(self, n: u8) -> Bytes16 {
        self.each(|c| c < n)
    }

    #[inline(always)]
    fn or(self, other: Bytes16) -> Bytes16 {
        let mut b = self.0;
        b.iter_mut().zip(other.0).for_each(|(x, y)| *x |= y);
        Bytes16(b)
    }

    #[inline(always)]
    fn and_not(self, other: Bytes16) -> Bytes16 {
        let mut b = self.0;
        b.iter_mut().zip(other.0).for_each(|(x, y)| *x &= !y);
        Bytes16(b)
    }

    #[inline(always)]
    fn any(self) -> bool {
        self.0.iter().any(|&b| b != 0)
    }

    #[inline(always)]
    fn first(self) -> Option<usize> {
        self.0.iter().position(|&b| b != 0)
    }
}

/// Whether any byte of `hay` is one that `hits` marks in 16 bytes or, for inputs shorter than
/// a word, `byte_hits` flags (the two must agree). Sixteen bytes at a time, the last 16
/// overlapping the ones before; from 8 to 15 bytes, the first and last word together. For
/// whole XML records as well as short values: where a word at a time had to look byte by byte
/// at each word holding a line break or tab (an XML record's indentation puts one in most),
/// and took up to seven tests of three operations each a word.
#[inline(always)]
fn any_of16(hay: &[u8], hits: impl Fn(Bytes16) -> Bytes16, byte_hits: impl Fn(u8) -> bool) -> bool {
    let n = hay.len();
    if n < 8 {
        return hay.iter().any(|&c| byte_hits(c));
    }
    if n < 16 {
        return hits(Bytes16::words(word_at(hay, 0), word_at(hay, n - 8))).any();
    }
    let mut i = 0;
    while i + 16 <= n {
        if hits(Bytes16::at(hay, i)).any() {
            return true;
        }
        i += 16;
    }
    i < n && hits(Bytes16::at(hay, n - 16)).any()
}

/// Whether `text` has a byte below 0x20 other than tab, LF and CR, or 0xEF (which starts
/// U+FFFE and U+FFFF): the only bytes that can start a character XML 1.0 does not allow.
pub(crate) fn may_hold_non_xml_char(text: &[u8]) -> bool {
    any_of16(
        text,
        |v| {
            let usual = v.equal(b'\t').or(v.equal(b'\n')).or(v.equal(b'\r'));
            v.below(0x20).and_not(usual).or(v.equal(0xEF))
        },
        |b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') || b == 0xEF,
    )
}

/// The number of characters of UTF-8 `text` (its bytes other than continuation bytes), or
/// `None` when it holds a line feed or carriage return: what a fixed-width field is checked
/// for, in one pass.
pub(crate) fn chars_without_line_breaks(text: &[u8]) -> Option<usize> {
    let n = text.len();
    let mut continuation = 0usize;
    let mut i = 0;
    while i + 8 <= n {
        let w = word_at(text, i);
        if bytes_equal(w, b'\n') | bytes_equal(w, b'\r') != 0 {
            return None;
        }
        // The marks, one a byte, are summed into the top byte by one multiply: `count_ones` is
        // a dozen instructions on x86-64 CPUs without `popcnt`, which the build does not
        // assume (the fixed-width writer took 37.2M instructions instead of 40.0M with it, on
        // the 18,634 lines of V008's file 0044 of the bench's day: about 150 a record).
        continuation += (((continuation_marks(w) >> 7).wrapping_mul(LO)) >> 56) as usize;
        i += 8;
    }
    for &b in &text[i..] {
        if b == b'\n' || b == b'\r' {
            return None;
        }
        continuation += usize::from(b & 0xC0 == 0x80);
    }
    Some(n - continuation)
}

/// The high bit of each byte of `word` that is a continuation byte of UTF-8 (`0b10xxxxxx`:
/// its top bit set and the next one clear).
#[inline(always)]
fn continuation_marks(word: u64) -> u64 {
    word & !(word << 1) & HI
}

/// The offsets of the continuation bytes (`0b10xxxxxx`) of `text`, in order, into `at`:
/// `text.len()` less their number is the number of characters of UTF-8 text, and with them
/// the byte at which a character starts is found without counting the characters before it
/// (see `fixed::FixedDecoder::char_offsets`). A word at a time: most words of most text have
/// none.
pub(crate) fn continuation_bytes(text: &[u8], at: &mut Vec<usize>) {
    at.clear();
    let (whole, rest) = text.as_chunks::<8>();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    let tail = (!rest.is_empty()).then_some(&last);
    for (i, w) in whole.iter().chain(tail).enumerate() {
        let mut marks = continuation_marks(u64::from_le_bytes(*w));
        while marks != 0 {
            at.push(i * 8 + marks.trailing_zeros() as usize / 8);
            marks &= marks - 1;
        }
    }
}

/// Whether two short byte strings (keys, names) are equal, compared in line rather than
/// through a call to `memcmp`: a word at a time from 8 bytes on (the last word overlapping
/// the one before), two overlapping halves of a word from 4, byte by byte below. Byte by byte
/// throughout, XML's reader's `child_named` (which compares element names) took 742
/// instructions a record of V007's file 0115 of the bench's day, a word at a time 519
/// (callgrind).
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word_at(a, i) != word_at(b, i) {
                return false;
            }
            i += 8;
        }
        return word_at(a, n - 8) == word_at(b, n - 8);
    }
    if n >= 4 {
        let half = |t: &[u8], i: usize| u32::from_le_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// How many bytes `text` starts with that are `byte`: eight at a time while they fill a
/// whole word, then one at a time (a fixed-width field is often padded by more than half its
/// width).
pub(crate) fn leading(text: &[u8], byte: u8) -> usize {
    let run = LO * byte as u64;
    let mut n = 0;
    while n + 8 <= text.len() && word_at(text, n) == run {
        n += 8;
    }
    n + text[n..].iter().take_while(|&&b| b == byte).count()
}

/// How many bytes `text` ends with that are `byte`, counted as [`leading`] counts them.
pub(crate) fn trailing(text: &[u8], byte: u8) -> usize {
    let run = LO * byte as u64;
    let mut n = 0;
    while n + 8 <= text.len() && word_at(text, text.len() - n - 8) == run {
        n += 8;
    }
    n + text[..text.len() - n]
        .iter()
        .rev()
        .take_while(|&&b| b == byte)
        .count()
}

/// Whether `text` needs XML escaping: a byte below 0x20, 0xEF, or one of `& < > " '`.
pub(crate) fn needs_xml_escape(text: &[u8]) -> bool {
    any_of16(
        text,
        |v| {
            let marks = v.equal(b'&').or(v.equal(b'<')).or(v.equal(b'>'));
            let quotes = v.equal(b'"').or(v.equal(b'\''));
            v.below(0x20).or(v.equal(0xEF)).or(marks).or(quotes)
        },
        |b| b < 0x20 || matches!(b, 0xEF | b'&' | b'<' | b'>' | b'"' | b'\''),
    )
}

/// Whether a JSON string needs escapes: a byte below 0x20, `"` or `\`. Sixteen bytes at a
/// time to the end (the last 16 overlapping the ones before), where [`find_json_escape`] looks
/// at the last bytes one by one.
#[inline]
pub(crate) fn needs_json_escape(text: &[u8]) -> bool {
    any_of16(
        text,
        |v| v.below(0x20).or(v.equal(b'"')).or(v.equal(b'\\')),
        |b| b < 0x20 || b == b'"' || b == b'\\',
    )
}

/// Offset of the first byte of `text` that a JSON string must escape (a byte below 0x20, `"`
/// or `\`): where a run of plain string content ends. Sixteen bytes at a time while there
/// are as many (the JSON Lines reader gives it the rest of the line, so a usual string's end
/// is in the first 16), then a word, then byte by byte. A word at a time from the start, a
/// record of V006's file 0042 of the bench's day took 307 instructions more (callgrind).
#[inline]
pub(crate) fn find_json_escape(text: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 16 <= text.len() {
        let v = Bytes16::at(text, i);
        if let Some(k) = v.below(0x20).or(v.equal(b'"')).or(v.equal(b'\\')).first() {
            return Some(i + k);
        }
        i += 16;
    }
    while i + 8 <= text.len() {
        let w = word_at(text, i);
        // The first set bit of each mask is exact, and so is the first of all three.
        let m = bytes_below(w, 0x20) | bytes_equal(w, b'"') | bytes_equal(w, b'\\');
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    text[i..]
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|k| i + k)
}

/// `bytes` as text, checked with a vectorized validator; the standard library's error (which
/// says where) when it is not UTF-8.
#[inline]
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(_) => std::str::from_utf8(bytes),
    }
}

/// A chunk of records as text, when it is UTF-8 as a whole: checked once for the chunk (a vector
/// scan over a megabyte), not record by record (a few hundred bytes each, where setting the
/// scan up and finishing it weigh). See [`utf8_within`].
pub(crate) fn chunk_text(chunk: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(chunk).ok()
}

/// `record` as text. When it lies in `chunk` (from [`chunk_text`]) and starts and ends on
/// character boundaries of it, as every record a decoder cuts does (next to ASCII bytes: a
/// line feed, an XML element's `<` or `>`), it is taken from the chunk with a look at its two
/// ends only; any other record is checked as [`utf8`] checks it.
#[inline]
pub(crate) fn utf8_within<'d>(
    record: &'d [u8],
    chunk: Option<&'d str>,
) -> Result<&'d str, std::str::Utf8Error> {
    if let Some(text) = chunk {
        let at = (record.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
        // The same bytes: `record` starts `at` bytes into the chunk's text.
        if let Some(t) = at
            .checked_add(record.len())
            .and_then(|end| text.get(at..end))
        {
            return Ok(t);
        }
    }
    utf8(record)
}

/// Appends `s` to `out`. The few bytes of a tag, a separator or a usual value are copied in
/// line, as two overlapping loads and stores, rather than through a call to `memcpy`, which
/// each writer makes dozens of times a record; longer runs go to `memcpy`.
#[inline(always)]
pub(crate) fn put(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n > 16 {
        out.extend_from_slice(s);
        return;
    }
    out.reserve(n);
    let len = out.len();
    // SAFETY: `reserve` made room for `n` more bytes, and every store below lands in
    // `len..len + n`; every load reads within `s`. Then those `n` bytes are initialized.
    unsafe {
        let src = s.as_ptr();
        let dst = out.as_mut_ptr().add(len);
        if n >= 8 {
            let (a, b) = (
                src.cast::<u64>().read_unaligned(),
                src.add(n - 8).cast::<u64>().read_unaligned(),
            );
            dst.cast::<u64>().write_unaligned(a);
            dst.add(n - 8).cast::<u64>().write_unaligned(b);
        } else if n >= 4 {
            let (a, b) = (
                src.cast::<u32>().read_unaligned(),
                src.add(n - 4).cast::<u32>().read_unaligned(),
            );
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(b);
        } else if n > 0 {
            // One to three bytes: the first, the middle and the last.
            *dst = *src;
            *dst.add(n / 2) = *src.add(n / 2);
            *dst.add(n - 1) = *src.add(n - 1);
        }
        out.set_len(len + n);
    }
}

/// Offset of the first `b` in `hay`.
#[inline]
pub(crate) fn find_byte(b: u8, hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= hay.len() {
        let m = bytes_equal(word_at(hay, i), b);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&c| c == b).map(|k| i + k)
}

/// XML text up to the next markup: the offset of the first `<` in `hay`, and whether a `&` or
/// `>` comes before it (a reference to unescape, a `]]>` to refuse). One pass over the few
/// bytes of a usual value, where a `memchr` for the `<` and another search of the text for
/// the others set up two; past `SHORT` bytes without any of them, `memchr` goes on.
#[inline]
pub(crate) fn xml_text_end(hay: &[u8]) -> Option<(usize, bool)> {
    const SHORT: usize = 32;
    let rest_after = |k: usize| memchr::memchr(b'<', &hay[k + 1..]).map(|j| (k + 1 + j, true));
    let mut i = 0;
    while i + 8 <= hay.len() && i < SHORT {
        let w = word_at(hay, i);
        // The first set bit of the three masks is exact.
        let m = bytes_equal(w, b'<') | bytes_equal(w, b'&') | bytes_equal(w, b'>');
        if m != 0 {
            let k = i + (m.trailing_zeros() / 8) as usize;
            return if hay[k] == b'<' {
                Some((k, false))
            } else {
                rest_after(k)
            };
        }
        i += 8;
    }
    if i < SHORT {
        // Fewer than eight bytes left.
        return match hay[i..]
            .iter()
            .position(|&c| matches!(c, b'<' | b'&' | b'>'))
        {
            Some(j) if hay[i + j] == b'<' => Some((i + j, false)),
            Some(j) => rest_after(i + j),
            None => None,
        };
    }
    let lt = i + memchr::memchr(b'<', &hay[i..])?;
    Some((lt, find_byte2(b'&', b'>', &hay[i..lt]).is_some()))
}

/// Offset of the first `a` or `b` in `hay`.
#[inline]
pub(crate) fn find_byte2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= hay.len() {
        let w = word_at(hay, i);
        // The first set bit of either mask is exact, and so is the first of both.
        let m = bytes_equal(w, a) | bytes_equal(w, b);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..]
        .iter()
        .position(|&c| c == a || c == b)
        .map(|k| i + k)
}

/// Whether `hay` holds any of the four bytes `set`.
#[inline]
pub(crate) fn contains_any(hay: &[u8], set: [u8; 4]) -> bool {
    any_of16(
        hay,
        |v| {
            let (a, b) = (
                v.equal(set[0]).or(v.equal(set[1])),
                v.equal(set[2]).or(v.equal(set[3])),
            );
            a.or(b)
        },
        |c| set.contains(&c),
    )
}

/// Number of line feeds in `bytes` (physical line breaks, whatever precedes them). A short
/// run (a quoted CSV field) is counted in line; the vectorized count's set-up costs more there.
pub(crate) fn count_lf(bytes: &[u8]) -> u64 {
    if bytes.len() <= 64 {
        return bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// 1-based line number of byte offset `pos` in `data`.
pub(crate) fn line_at(data: &[u8], pos: usize) -> u64 {
    1 + count_lf(&data[..pos.min(data.len())])
}

#[cfg(test)]
mod word_search_tests {
    use proptest::prelude::*;

    /// Text longer than the word loop takes is searched on by `memchr`, with the same answers.
    #[test]
    fn long_xml_text_ends_where_its_markup_starts() {
        let long = "x".repeat(100);
        for (text, want) in [
            (format!("{long}<b>"), Some((100, false))),
            (format!("{long}&amp;<b>"), Some((105, true))),
            (format!("{long}>{long}<"), Some((201, true))),
            (format!("{}&<", "y".repeat(35)), Some((36, true))),
            (long.clone(), None),
            (format!("{long}&"), None),
        ] {
            assert_eq!(super::xml_text_end(text.as_bytes()), want, "{text}");
        }
    }

    /// A record is taken from its chunk's text only where it lies in it, on its character
    /// boundaries; anything else is checked on its own, with the same answer.
    #[test]
    fn records_are_taken_from_their_chunk_on_character_boundaries() {
        let data = "<r>é</r><r>x</r>".as_bytes();
        let text = super::chunk_text(data);
        assert!(text.is_some());
        for (range, ok) in [(0..9, true), (9..17, true), (0..4, false), (4..9, false)] {
            let got = super::utf8_within(&data[range.clone()], text);
            assert_eq!(got.is_ok(), ok, "{range:?}");
            assert_eq!(got.ok(), std::str::from_utf8(&data[range]).ok());
        }
        let elsewhere = b"<r>\xff</r>".to_vec();
        assert!(super::utf8_within(&elsewhere, text).is_err());
        assert_eq!(super::utf8_within(b"<x/>", text), Ok("<x/>"));
        assert!(super::chunk_text(b"<r>\xff</r>").is_none());
    }

    proptest! {
        /// Every continuation byte is found, in order.
        #[test]
        fn continuation_bytes_are_found(text in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut at = Vec::new();
            super::continuation_bytes(&text, &mut at);
            let want: Vec<usize> = (0..text.len()).filter(|&i| text[i] & 0xC0 == 0x80).collect();
            prop_assert_eq!(at, want);
        }

        /// Past the word loop's 32 bytes, the search goes on with `memchr` and agrees.
        #[test]
        fn xml_text_ends_past_the_word_loop(
            plain in "[a-z é]{0,48}",
            tail in proptest::collection::vec(prop::sample::select(b"ab<&>".to_vec()), 0..12),
        ) {
            let mut hay = plain.into_bytes();
            hay.extend(tail);
            let lt = hay.iter().position(|&c| c == b'<');
            prop_assert_eq!(
                super::xml_text_end(&hay),
                lt.map(|lt| (lt, hay[..lt].iter().any(|&c| c == b'&' || c == b'>')))
            );
        }

        #[test]
        fn word_searches_agree_with_byte_loops(
            hay in proptest::collection::vec(prop::sample::select(b"a,\"\r\n\t\x00\x1F\xFF\x80\xEF\xBF\xC3\xA9;&<>'\\".to_vec()), 0..80),
            b in prop::sample::select(b",\"\r\n\x00\xFF;".to_vec()),
        ) {
            prop_assert_eq!(super::find_byte(b, &hay), hay.iter().position(|&c| c == b));
            let mut out = b"ab".to_vec();
            super::put(&mut out, &hay);
            prop_assert_eq!(&out[2..], &hay[..]);
            let set = [b, b'"', b'\r', b'\n'];
            prop_assert_eq!(super::contains_any(&hay, set), hay.iter().any(|c| set.contains(c)));
            // The same bytes, and the same with one byte changed.
            let mut other = hay.clone();
            prop_assert!(super::same(&hay, &other));
            if let Some(c) = other.get_mut(usize::from(b) % hay.len().max(1)) {
                *c ^= 1;
                prop_assert!(!super::same(&hay, &other));
            }
            // Each start of the text against its end of the same length.
            for k in 0..=hay.len() {
                let (start, end) = (&hay[..k], &hay[hay.len() - k..]);
                prop_assert_eq!(super::same(start, end), start == end);
            }
            let control = |c: u8| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r');
            prop_assert_eq!(
                super::may_hold_non_xml_char(&hay),
                hay.iter().any(|&c| control(c) || c == 0xEF)
            );
            prop_assert_eq!(
                super::needs_xml_escape(&hay),
                hay.iter().any(|&c| c < 0x20 || b"\xEF&<>\"'".contains(&c))
            );
            prop_assert_eq!(super::utf8(&hay), std::str::from_utf8(&hay));
            prop_assert_eq!(
                super::needs_json_escape(&hay),
                hay.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\')
            );
            prop_assert_eq!(
                super::find_json_escape(&hay),
                hay.iter().position(|&c| c < 0x20 || c == b'"' || c == b'\\')
            );
            let lt = hay.iter().position(|&c| c == b'<');
            prop_assert_eq!(
                super::xml_text_end(&hay),
                lt.map(|lt| (lt, hay[..lt].iter().any(|&c| c == b'&' || c == b'>')))
            );
        }

        /// The characters of a text are counted as `chars` counts them, and a text with a line
        /// break has none.
        #[test]
        fn chars_are_counted_as_chars_does(text in "[a\r\né€😀 ]{0,40}") {
            let want = (!text.contains(['\n', '\r'])).then(|| text.chars().count());
            prop_assert_eq!(super::chars_without_line_breaks(text.as_bytes()), want);
        }
    }
}
