//! Reading and writing the four vendor formats: CSV, JSON Lines, XML and fixed-width.
//!
//! This module owns bytes <-> field values. It does not know about validation, mapping or
//! masking (see `pipeline`), nor about files, threads or ledgers (see `engine`).
//!
//! Each format is split in two pieces, as the engine needs them:
//! - **framing** ([`Decoder::frame`]): a sequential scan that finds record boundaries and cuts
//!   the input into [`Chunk`]s that never split a record (a quoted CSV newline, an XML record
//!   element). Chunks carry the number and line of their first record so that rejects can say
//!   where they came from whatever chunk they were in.
//! - **parsing** ([`Decoder::decode`]): turns one chunk into records, calling back once per
//!   record with its values or with the reason it cannot be read. Chunks are independent, so the
//!   engine parses them in parallel.
//!
//! Writing goes through [`Encoder`]: a header, one record at a time into a byte buffer, a footer.
//! Encoding a record either appends all of it or nothing.
//!
//! Each format module states its reading rules (blank lines, quoting, what is rejected and
//! why) in its header. The pieces they share live here: [`Align`], the chunker that turns
//! record starts into chunks, line framing for JSON Lines and fixed-width, BOM handling.
//! Every constructor checks its configuration and returns `Err(reason)` when it is unusable.

pub mod check;
pub mod csv;
pub mod fixed;
pub mod jsonl;
pub mod xml;

use std::borrow::Cow;
use std::ops::Range;

/// A run of whole records inside the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Byte range of the chunk inside the buffer given to [`Decoder::frame`].
    pub bytes: Range<usize>,
    /// 1-based number of the first record in the chunk (header not counted).
    pub first_record: u64,
    /// 1-based physical line number on which the first record starts.
    pub first_line: u64,
    /// The byte range of each record, when framing had to find where records end (XML), so
    /// that parsing need not find them again; empty when the decoder finds them itself.
    pub records: Vec<Range<usize>>,
}

/// What the decoder found at the start of a file (header row, XML prolog, BOM).
#[derive(Debug, Clone, Default)]
pub struct Preamble {
    /// Byte offset where records begin (after BOM, header line, XML prolog and root start tag).
    pub body_start: usize,
    /// Byte offset where records end (before the XML root end tag; `len` for line formats).
    pub body_end: usize,
    /// Line number of the first byte at `body_start` (1-based).
    pub body_first_line: u64,
    /// Whether the input began with a UTF-8 byte order mark.
    pub had_bom: bool,
}

/// One record handed to the callback of [`Decoder::decode`].
#[derive(Debug)]
pub struct RecordRef<'a> {
    /// 1-based record number in the file.
    pub number: u64,
    /// 1-based line on which the record starts.
    pub line: u64,
    /// The record's original bytes (without its terminating newline).
    pub raw: &'a [u8],
    /// One value per configured field, in field order; `None` when the field is absent
    /// (missing column, JSON key or null, XML element/attribute). An empty string is `Some("")`.
    pub values: &'a [Option<Cow<'a, str>>],
}

/// A record that could not be read at all (not valid UTF-8, not a JSON object, wrong number of
/// columns, wrong fixed-width length, malformed XML ...). Its values are not available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord<'a> {
    pub number: u64,
    pub line: u64,
    pub raw: &'a [u8],
    /// The field concerned, when there is one (for example the column with invalid UTF-8).
    pub field: Option<String>,
    /// Short machine-friendly rule name, e.g. `utf8`, `json`, `columns`, `length`, `xml`.
    pub rule: &'static str,
    /// Readable reason, e.g. `expected 8 columns, found 7`.
    pub reason: String,
}

/// What a record callback receives.
#[derive(Debug)]
pub enum Decoded<'a> {
    Record(RecordRef<'a>),
    Bad(BadRecord<'a>),
}

/// An error that fails the whole file, not one record (for example: a CSV header lacking a
/// configured column, an XML file with no root element, a file that is not the format at all).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct FileError {
    pub line: u64,
    pub reason: String,
}

/// Where a configured field's value comes from, per format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// CSV column by header name (needs a header).
    Column(String),
    /// CSV column by 0-based index.
    Index(usize),
    /// JSON path: object keys joined with dots (`customer.address.city`).
    JsonPath(Vec<String>),
    /// XML: child element path below the record element (`address/city`), local names, or an
    /// attribute of the record element (`@id`) or of a child (`address/@kind`).
    Xml {
        elements: Vec<String>,
        attribute: Option<String>,
    },
    /// Fixed-width: 0-based start and width, in characters (Unicode scalar values).
    Fixed { start: usize, width: usize },
}

/// A format reader for one vendor's input, built once per file by the engine from the
/// vendor's configuration and the field locators.
pub trait Decoder: Send + Sync {
    /// Reads the start (and for XML the end) of the file: BOM, header, prolog. Resolves column
    /// names to positions. Called once per file before `frame`.
    fn preamble(&mut self, data: &[u8]) -> Result<Preamble, FileError>;

    /// Cuts `data[pre.body_start..pre.body_end]` into chunks of about `target_bytes` bytes
    /// (a chunk may be larger when one record is), each ending at a record boundary.
    /// Sequential and cheap: it only finds boundaries. The chunks cover the body exactly, in order.
    fn frame<'d>(
        &'d self,
        data: &'d [u8],
        pre: &Preamble,
        target_bytes: usize,
    ) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + 'd>;

    /// Parses one chunk (as produced by `frame`) and calls `each` for every record in order.
    fn decode(&self, data: &[u8], chunk: &Chunk, each: &mut dyn FnMut(Decoded<'_>));
}

/// A value too long or otherwise impossible to write in the output format.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("field {field:?}: {reason}")]
pub struct EncodeError {
    pub field: String,
    pub reason: String,
}

/// A format writer for one vendor's output.
pub trait Encoder: Send + Sync {
    /// Bytes written once at the start of the file (BOM, CSV header, XML prolog and root tag).
    fn header(&self, out: &mut Vec<u8>);
    /// Appends one record (values in output field order). On error nothing is appended.
    fn record(&self, values: &[Option<&str>], out: &mut Vec<u8>) -> Result<(), EncodeError>;
    /// Bytes written once at the end (XML root end tag).
    fn footer(&self, out: &mut Vec<u8>);
}

/// How a fixed-width value sits in its field; the pad character fills the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Value first, pad characters after it (trailing pads are stripped when reading).
    Left,
    /// Pad characters first, value after them (leading pads are stripped when reading).
    Right,
}

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Byte offset just past a leading UTF-8 byte order mark (0 without one).
pub(crate) fn bom_len(data: &[u8]) -> usize {
    if data.starts_with(BOM) { BOM.len() } else { 0 }
}

/// Writes the UTF-8 byte order mark.
pub(crate) fn write_bom(out: &mut Vec<u8>) {
    out.extend_from_slice(BOM);
}

// Searches within one short value (a field of a record, a value to write): eight bytes at a
// time in a machine word. For the few dozen bytes of a field this beats setting up a vector
// search (memchr), which wins on long inputs such as whole records and chunks.

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

/// Whether any byte of `hay` is one that `word_hits` flags in a word (a non-zero result) or,
/// for inputs shorter than a word, `byte_hits` flags. The two must agree.
#[inline(always)]
fn any_byte(hay: &[u8], word_hits: impl Fn(u64) -> u64, byte_hits: impl Fn(u8) -> bool) -> bool {
    let n = hay.len();
    if n < 8 {
        return hay.iter().any(|&c| byte_hits(c));
    }
    let mut i = 0;
    while i + 8 <= n {
        if word_hits(word_at(hay, i)) != 0 {
            return true;
        }
        i += 8;
    }
    // The last word overlaps the one before: every byte is looked at.
    i < n && word_hits(word_at(hay, n - 8)) != 0
}

/// Whether `text` has a byte below 0x20 other than tab, LF and CR, or 0xEF (which starts
/// U+FFFE and U+FFFF): the only bytes that can start a character XML 1.0 does not allow.
pub(crate) fn may_hold_non_xml_char(text: &[u8]) -> bool {
    let control = |b: u8| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r');
    any_byte(
        text,
        |w| {
            let below = bytes_below(w, 0x20);
            // Tabs and line breaks are the usual control bytes: look closer only then.
            let exact = if below != 0 && w.to_le_bytes().iter().any(|&b| control(b)) {
                HI
            } else {
                0
            };
            exact | bytes_equal(w, 0xEF)
        },
        |b| control(b) || b == 0xEF,
    )
}

/// Whether `text` needs XML escaping: a byte below 0x20, 0xEF, or one of `& < > " '`.
pub(crate) fn needs_xml_escape(text: &[u8]) -> bool {
    any_byte(
        text,
        |w| {
            bytes_below(w, 0x20)
                | bytes_equal(w, 0xEF)
                | bytes_equal(w, b'&')
                | bytes_equal(w, b'<')
                | bytes_equal(w, b'>')
                | bytes_equal(w, b'"')
                | bytes_equal(w, b'\'')
        },
        |b| b < 0x20 || matches!(b, 0xEF | b'&' | b'<' | b'>' | b'"' | b'\''),
    )
}

/// Whether a JSON string needs escapes: a byte below 0x20, `"` or `\`.
pub(crate) fn needs_json_escape(text: &[u8]) -> bool {
    any_byte(
        text,
        |w| bytes_below(w, 0x20) | bytes_equal(w, b'"') | bytes_equal(w, b'\\'),
        |b| b < 0x20 || b == b'"' || b == b'\\',
    )
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
    any_byte(
        hay,
        |w| {
            bytes_equal(w, set[0])
                | bytes_equal(w, set[1])
                | bytes_equal(w, set[2])
                | bytes_equal(w, set[3])
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

/// `range` clipped to `0..len`, so that a chunk or preamble from another file can never make
/// a decoder index out of bounds.
pub(crate) fn clamp(range: &Range<usize>, len: usize) -> Range<usize> {
    let end = range.end.min(len);
    range.start.min(end)..end
}

/// The preamble of a line format (JSON Lines, fixed-width): an optional BOM, then records up
/// to the end of the input.
pub(crate) fn line_preamble(data: &[u8]) -> Preamble {
    let body_start = bom_len(data);
    Preamble {
        body_start,
        body_end: data.len(),
        body_first_line: 1,
        had_bom: body_start > 0,
    }
}

/// Where one record starts, as found by a format's framing scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordStart {
    /// Byte offset of the record's first byte.
    pub pos: usize,
    /// 1-based line of that byte.
    pub line: u64,
    /// Offset after the record's last byte, when the scan found it (see [`Chunk::records`]).
    pub end: Option<usize>,
}

/// Groups the record starts found by a format's framing scan into [`Chunk`]s.
///
/// Every chunk but the first begins exactly at a record start, so a decoder always starts a
/// chunk outside any record; bytes between records (blank lines, whitespace, XML wrappers and
/// comments) go with the record before them, and the last chunk runs to the end of the body.
/// A chunk is cut before the first record that starts `target_bytes` or more after the chunk
/// start, so it holds at least one record. An empty body gives no chunks.
pub(crate) fn chunks<'d, I>(
    body: Range<usize>,
    body_first_line: u64,
    target_bytes: usize,
    starts: I,
) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + 'd>
where
    I: Iterator<Item = Result<RecordStart, FileError>> + 'd,
{
    Box::new(Chunker {
        starts,
        end: body.end,
        target_bytes: target_bytes.max(1),
        start: body.start,
        first_record: 1,
        first_line: body_first_line,
        records: 0,
        ranges: Vec::new(),
        done: false,
    })
}

struct Chunker<I> {
    starts: I,
    end: usize,
    target_bytes: usize,
    /// Start of the chunk being built.
    start: usize,
    first_record: u64,
    first_line: u64,
    /// Records found so far in the chunk being built, and their ranges when known.
    records: u64,
    ranges: Vec<Range<usize>>,
    done: bool,
}

impl<I: Iterator<Item = Result<RecordStart, FileError>>> Iterator for Chunker<I> {
    type Item = Result<Chunk, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            match self.starts.next() {
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Some(Ok(rs)) => {
                    let range = rs.end.map(|e| rs.pos..e);
                    if self.records > 0 && rs.pos.saturating_sub(self.start) >= self.target_bytes {
                        let chunk = Chunk {
                            bytes: self.start..rs.pos,
                            first_record: self.first_record,
                            first_line: self.first_line,
                            records: std::mem::take(&mut self.ranges),
                        };
                        self.start = rs.pos;
                        self.first_record += self.records;
                        self.first_line = rs.line;
                        self.records = 1;
                        self.ranges.extend(range);
                        return Some(Ok(chunk));
                    }
                    if self.records == 0 {
                        self.first_line = rs.line;
                    }
                    self.records += 1;
                    self.ranges.extend(range);
                }
                None => {
                    self.done = true;
                    if self.start >= self.end {
                        return None;
                    }
                    return Some(Ok(Chunk {
                        bytes: self.start..self.end,
                        first_record: self.first_record,
                        first_line: self.first_line,
                        records: std::mem::take(&mut self.ranges),
                    }));
                }
            }
        }
    }
}

/// One physical line of a line format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'d> {
    /// Byte offset of the line's first byte.
    pub start: usize,
    /// The line without its LF or CR LF.
    pub text: &'d [u8],
}

/// The physical lines of `data[range]`; a last line without a final newline counts too.
pub(crate) fn lines(data: &[u8], range: Range<usize>) -> impl Iterator<Item = Line<'_>> {
    let range = clamp(&range, data.len());
    let end = range.end;
    let mut pos = range.start;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let rest = &data[pos..end];
        let start = pos;
        let mut text = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                pos += i + 1;
                &rest[..i]
            }
            None => {
                pos = end;
                rest
            }
        };
        if let [head @ .., b'\r'] = text {
            text = head;
        }
        Some(Line { start, text })
    })
}

/// [`Decoder::frame`] for a line format: one record per line that is not `blank`.
pub(crate) fn frame_lines<'d>(
    data: &'d [u8],
    pre: &Preamble,
    target_bytes: usize,
    blank: fn(&[u8]) -> bool,
) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + 'd> {
    let body = clamp(&(pre.body_start..pre.body_end), data.len());
    let starts = lines(data, body.clone())
        .zip(pre.body_first_line..)
        .filter(move |(l, _)| !blank(l.text))
        .map(|(l, line)| {
            Ok(RecordStart {
                pos: l.start,
                line,
                end: None,
            })
        });
    chunks(body, pre.body_first_line, target_bytes, starts)
}

/// Calls `each(number, line, text)` for every record (line that is not `blank`) of a chunk of
/// a line format, numbering records and lines from the chunk's first record.
pub(crate) fn for_each_line<'d>(
    data: &'d [u8],
    chunk: &Chunk,
    blank: fn(&[u8]) -> bool,
    mut each: impl FnMut(u64, u64, &'d [u8]),
) {
    let mut number = chunk.first_record;
    // Line of the current physical line, known from the chunk's first record on (blank lines
    // before it are not counted: `first_line` is already the line of that record).
    let mut line: Option<u64> = None;
    for l in lines(data, chunk.bytes.clone()) {
        if !blank(l.text) {
            let at = *line.get_or_insert(chunk.first_line);
            each(number, at, l.text);
            number += 1;
        }
        if let Some(at) = line.as_mut() {
            *at += 1;
        }
    }
}

/// The reason given for a record that is not valid UTF-8 (`what`: `line`, `record` ...).
pub(crate) fn invalid_utf8(e: &std::str::Utf8Error, what: &str) -> String {
    format!(
        "invalid UTF-8 at byte {} of the {what}",
        e.valid_up_to() + 1
    )
}

/// Fails with the standard message when an encoder receives the wrong number of values.
pub(crate) fn check_arity(values: &[Option<&str>], expected: usize) -> Result<(), EncodeError> {
    if values.len() == expected {
        Ok(())
    } else {
        Err(EncodeError {
            field: String::new(),
            reason: format!("expected {expected} values, got {}", values.len()),
        })
    }
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod word_search_tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn word_searches_agree_with_byte_loops(
            hay in proptest::collection::vec(prop::sample::select(b"a,\"\r\n\t\x00\x1F\xFF\x80\xEF\xBF\xC3\xA9;&<>'\\".to_vec()), 0..40),
            b in prop::sample::select(b",\"\r\n\x00\xFF;".to_vec()),
        ) {
            prop_assert_eq!(super::find_byte(b, &hay), hay.iter().position(|&c| c == b));
            let set = [b, b'"', b'\r', b'\n'];
            prop_assert_eq!(super::contains_any(&hay, set), hay.iter().any(|c| set.contains(c)));
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
        }
    }
}
