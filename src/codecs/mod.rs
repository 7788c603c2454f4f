//! Reading and writing the vendor formats: CSV, JSON Lines, XML and fixed-width in and out, and
//! PDF out (a paginated table, see `pdf`).
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
//! why) in its header. The pieces they share: [`Align`], BOM handling, the record types and the
//! place in the file a reject reason ends with ([`PLACED_RULES`]) here;
//! the chunker that turns record starts into chunks and the line framing of JSON Lines and
//! fixed-width in `framing`; searches and checks of short byte runs in `bytes`.
//! Every constructor checks its configuration and returns `Err(reason)` when it is unusable.

mod bytes;
pub mod check;
pub mod csv;
pub mod fixed;
mod framing;
pub mod jsonl;
pub mod pdf;
pub mod xml;

pub(crate) use bytes::*;
pub(crate) use framing::*;

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
    /// The byte range of each record and the line it starts on, when framing had to find
    /// where records end (XML), so that parsing need not find them, or count their lines,
    /// again; empty when the decoder finds them itself.
    pub records: Vec<(Range<usize>, u64)>,
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
    /// Whether a key or element on a configured field's path occurs more than once in the
    /// record (a JSON key given twice, a second XML element or attribute on the path), so that
    /// the record's text holds values that no field took: a masked reject line cannot show it.
    pub repeated: bool,
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
    ) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + Send + 'd>;

    /// For a format whose records are lines (JSON Lines, fixed-width): the test of a line that
    /// holds no record (a blank line), with which a record boundary can be found from any
    /// place in the file by reading a few lines there. `None` for formats where a boundary
    /// depends on everything before it (a quoted CSV field may hold newlines; XML nests).
    fn line_records(&self) -> Option<fn(&[u8]) -> bool> {
        None
    }

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

/// The rules of the rejects whose reason ends with the place in the file where reading stopped
/// (` at line L column C`, see [`placed`]): JSON Lines' `json`, XML's `xml` and `utf8`. Other
/// rules' reasons name no line, whatever their text holds.
pub const PLACED_RULES: [&str; 3] = ["json", "xml", "utf8"];

/// A reject reason that says where in the file reading stopped: `MESSAGE at line L column C`
/// (line of the file from 1, column in characters from 1, as an editor counts them).
pub(crate) fn placed(message: &str, line: u64, column: u64) -> String {
    format!("{message} at line {line} column {column}")
}

/// A reason written by [`placed`] taken apart: its message, line and column (`None` for a
/// reason that does not end with a place).
pub fn place_of(reason: &str) -> Option<(&str, u64, u64)> {
    let (message, place) = reason.rsplit_once(" at line ")?;
    let (line, column) = place.split_once(" column ")?;
    let number = |t: &str| -> Option<u64> {
        // Digits only, as `placed` writes them (`parse` would take a sign).
        match t.bytes().all(|b| b.is_ascii_digit()) {
            true => t.parse().ok(),
            false => None,
        }
    };
    Some((message, number(line)?, number(column)?))
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
