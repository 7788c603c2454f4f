//! Framing: finding where records start and cutting the input into [`Chunk`]s that never split
//! a record, for the engine to parse in parallel. The chunker is shared by every format's scan;
//! the line framing here is the whole framing of the line formats (JSON Lines, fixed-width).

use std::ops::Range;

use super::{Chunk, FileError, Preamble, bom_len};

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
/// When `starts` fails, the records found before the failure make a last chunk, and the error
/// comes after it: the chunk ends at the last record's end if the records' ranges are known,
/// and at the end of the body if they are not (a scan without ranges, CSV's, fails only at a
/// record that runs to the end of the body).
/// A chunk is cut before the first record that starts `target_bytes` or more after the chunk
/// start, so it holds at least one record. An empty body gives no chunks.
pub(crate) fn chunks<'d, I>(
    body: Range<usize>,
    body_first_line: u64,
    target_bytes: usize,
    starts: I,
) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + Send + 'd>
where
    I: Iterator<Item = Result<RecordStart, FileError>> + Send + 'd,
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
        failed: None,
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
    /// Records found so far in the chunk being built, and their ranges (with their lines)
    /// when known.
    records: u64,
    ranges: Vec<(Range<usize>, u64)>,
    /// Why the body cannot be read on, given after the chunk of the records before it.
    failed: Option<FileError>,
    done: bool,
}

impl<I: Iterator<Item = Result<RecordStart, FileError>>> Iterator for Chunker<I> {
    type Item = Result<Chunk, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return self.failed.take().map(Err);
        }
        loop {
            match self.starts.next() {
                Some(Err(e)) => {
                    self.done = true;
                    // The records found before it make a last chunk (the error comes next):
                    // their rejects are not lost. It ends at the last record's end when every
                    // record's range is known, at the end of the body when none is.
                    let last_end = match self.ranges.last() {
                        _ if self.records == 0 => None,
                        None => Some(self.end),
                        Some((r, _)) => (self.ranges.len() as u64 == self.records).then_some(r.end),
                    };
                    if let Some(end) = last_end {
                        self.failed = Some(e);
                        return Some(Ok(Chunk {
                            bytes: self.start..end,
                            first_record: self.first_record,
                            first_line: self.first_line,
                            records: std::mem::take(&mut self.ranges),
                        }));
                    }
                    return Some(Err(e));
                }
                Some(Ok(rs)) => {
                    let range = rs.end.map(|e| (rs.pos..e, rs.line));
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
) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + Send + 'd> {
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
