//! The record starts of a CSV body for framing ([`Starts`]), found 64 bytes at a time.
//!
//! [`Dialect::record_end`] goes from quote to quote and line feed to line feed, a vector search
//! started anew for each (several per record of quoted text). Here a block's quotes, line feeds
//! and delimiters are found at once, as bit masks; a running parity of the quotes tells which
//! line feeds lie outside quoted fields, and those end rows. Only quotes that `record_end`
//! reads the same way are taken so: inside a quoted field every quote closes it or is half of a
//! doubled quote, and outside one a quote must open a field (at a row's start, after a
//! delimiter, or right after the quote that closed the field: a doubled quote). At any other
//! quote (one inside an unquoted field, or in the text after a field's closing quote: both
//! literal) the rows from the one it is in are read by `record_end`, one at a time, as they are
//! for the body's last bytes. The property tests below hold the two to the same record starts,
//! lines and unclosed quotes, and check that rows without such quotes are read by blocks.

use std::collections::VecDeque;

use super::blocks::{BLOCK, masks, prefix_xor};
use super::{Dialect, strip_cr};
use crate::codecs::framing::RecordStart;

/// Records read by `record_end` (with any blank rows before each) after a block with a literal
/// quote, before blocks are tried again: a file with such quotes in many rows is then read at
/// `record_end`'s pace, not block by block and row by row both. At least 1: the row with the
/// literal quote must be read past.
const SLOW_ROWS: u32 = 64;

/// What the byte before a block was, as far as a quote after it is concerned.
#[derive(Debug, Clone, Copy, Default)]
struct Before {
    delimiter: bool,
    /// A line feed, or nothing (the block starts the body or a row read by `record_end`).
    /// A line feed inside a quoted field counts too: a quote after it closes the field, and
    /// only a quote that opens one is checked against what precedes it.
    row_start: bool,
    quote: bool,
}

/// The record starts of `data[start..end]`, each with the line it is on and, for a record
/// whose quoted field is still open at `end`, that field's opening quote: what calling
/// [`Dialect::record_end`] row after row gives, blank rows left out.
pub(super) struct Starts<'d> {
    data: &'d [u8],
    dialect: Dialect,
    end: usize,
    /// The row being read: its start and line.
    row: usize,
    line: u64,
    /// The next block: its start (at or after `row`), its line, whether a quoted field is
    /// open there, and the byte before it.
    scan: usize,
    scan_line: u64,
    quoted: bool,
    before: Before,
    /// Records still to read with `record_end` (see [`SLOW_ROWS`]).
    slow_rows: u32,
    /// Records found by `record_end`: counted for the tests.
    #[cfg(test)]
    slow_records: usize,
    found: VecDeque<RecordStart>,
}

impl<'d> Starts<'d> {
    pub(super) fn new(
        data: &'d [u8],
        dialect: Dialect,
        start: usize,
        end: usize,
        line: u64,
    ) -> Starts<'d> {
        let end = end.min(data.len());
        Starts {
            data,
            dialect,
            end,
            row: start,
            line,
            scan: start,
            scan_line: line,
            quoted: false,
            before: Before {
                row_start: true,
                ..Before::default()
            },
            slow_rows: 0,
            #[cfg(test)]
            slow_records: 0,
            found: VecDeque::with_capacity(BLOCK),
        }
    }

    /// Reads rows with `record_end` from `row` up to the next record: its start, and where
    /// its quoted field that `end` leaves open begins, if one does.
    fn slow_record(&mut self) -> Option<(RecordStart, Option<usize>)> {
        let mut found = None;
        while self.row < self.end {
            let r = self.dialect.record_end(self.data, self.row, self.end);
            let start = RecordStart {
                pos: self.row,
                line: self.line,
                end: None,
            };
            self.line += r.newlines;
            self.row = r.next;
            if r.content_end > start.pos || r.unterminated.is_some() {
                found = Some((start, r.unterminated));
                #[cfg(test)]
                {
                    self.slow_records += 1;
                }
                break;
            }
        }
        // Blocks go on from the next row.
        (self.scan, self.scan_line, self.quoted) = (self.row, self.line, false);
        self.before = Before {
            row_start: true,
            ..Before::default()
        };
        found
    }

    /// Reads the block at `scan`: the records whose rows end in it are found; at a quote that
    /// `record_end` would read as a literal, the rows from the one it is in are left to it.
    fn block(&mut self) {
        let data = self.data;
        let Some(block) = data.get(self.scan..).and_then(|b| b.first_chunk::<BLOCK>()) else {
            return;
        };
        let m = masks(block, self.dialect.quote, self.dialect.delimiter);
        let bit = |b: bool| u64::from(b);
        let after_delimiter = m.delimiter << 1 | bit(self.before.delimiter);
        let after_line_feed = m.line_feed << 1 | bit(self.before.row_start);
        let after_quote = m.quote << 1 | bit(self.before.quote);
        // Bit k set: a quoted field is open after byte k.
        let mut inside = prefix_xor(m.quote);
        if self.quoted {
            inside = !inside;
        }
        let opening = m.quote & inside;
        let literal = opening & !(after_delimiter | after_line_feed | after_quote);
        // The bits before the first literal quote, where the parity is `record_end`'s.
        let trusted = match literal {
            0 => u64::MAX,
            l => (l & l.wrapping_neg()) - 1,
        };
        let mut ends = m.line_feed & !inside & trusted;
        while ends != 0 {
            let at = ends.trailing_zeros();
            let k = self.scan + at as usize;
            let through = u64::MAX >> (63 - at);
            if strip_cr(data, self.row, k) > self.row {
                self.found.push_back(RecordStart {
                    pos: self.row,
                    line: self.line,
                    end: None,
                });
            }
            self.row = k + 1;
            self.line = self.scan_line + u64::from((m.line_feed & through).count_ones());
            ends &= ends - 1;
        }
        if literal != 0 {
            self.slow_rows = SLOW_ROWS;
            return;
        }
        self.scan += BLOCK;
        self.scan_line += u64::from(m.line_feed.count_ones());
        self.quoted = inside >> 63 == 1;
        let last = block[BLOCK - 1];
        self.before = Before {
            delimiter: last == self.dialect.delimiter,
            row_start: last == b'\n',
            quote: last == self.dialect.quote,
        };
    }
}

impl Iterator for Starts<'_> {
    type Item = (RecordStart, Option<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(start) = self.found.pop_front() {
                return Some((start, None));
            }
            if self.row >= self.end {
                return None;
            }
            if self.slow_rows > 0 || self.scan + BLOCK > self.end {
                self.slow_rows = self.slow_rows.saturating_sub(1);
                return self.slow_record();
            }
            self.block();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What framing found before: `record_end` row after row, up to `end`.
    fn row_by_row(
        data: &[u8],
        d: Dialect,
        (start, end): (usize, usize),
        line: u64,
    ) -> Vec<(usize, u64, Option<usize>)> {
        let end = end.min(data.len());
        let (mut pos, mut line, mut out) = (start, line, Vec::new());
        while pos < end {
            let r = d.record_end(data, pos, end);
            if r.content_end > pos || r.unterminated.is_some() {
                out.push((pos, line, r.unterminated));
            }
            line += r.newlines;
            pos = r.next;
        }
        out
    }

    /// [`Starts`]'s answers, and how many of its records `record_end` found.
    fn by_blocks(
        data: &[u8],
        d: Dialect,
        (start, end): (usize, usize),
        line: u64,
    ) -> (Vec<(usize, u64, Option<usize>)>, usize) {
        let mut starts = Starts::new(data, d, start, end, line);
        let found = starts
            .by_ref()
            .map(|(s, open)| (s.pos, s.line, open))
            .collect();
        (found, starts.slow_records)
    }

    #[test]
    fn quoted_line_feeds_blank_rows_and_literal_quotes() {
        let d = Dialect::new(b',', b'"').unwrap();
        let mut text = Vec::new();
        for i in 0..40 {
            text.extend_from_slice(
                format!("{i},\"a, \"\"quoted\"\"\nnote\",x\r\n\n{i},37.8\"N,\"\"\n").as_bytes(),
            );
        }
        text.extend_from_slice(b"last,\"open\nnever closed\n");
        for (from, line) in [(0, 1), (5, 3)] {
            let whole = (from, text.len());
            assert_eq!(
                by_blocks(&text, d, whole, line).0,
                row_by_row(&text, d, whole, line)
            );
        }
    }

    /// Rows whose quotes all open or close fields, or are doubled inside them, are read by
    /// blocks: only the records in the body's last block are left to `record_end`.
    #[test]
    fn regular_rows_are_read_by_blocks() {
        for (delimiter, quote) in [(b',', b'"'), (b'\t', b'\''), (b';', b'"')] {
            let d = Dialect::new(delimiter, quote).unwrap();
            let (dl, q) = (delimiter as char, quote as char);
            let mut text = String::new();
            for i in 0..200 {
                text.push_str(&format!(
                    "{i}{dl}{q}text, {q}{q}doubled{q}{q}\nand a line{q}{dl}{q}{q}{dl}plain\r\n\n"
                ));
            }
            let data = text.as_bytes();
            let (found, slow) = by_blocks(data, d, (0, data.len()), 1);
            assert_eq!(found, row_by_row(data, d, (0, data.len()), 1));
            assert_eq!(found.len(), 200);
            assert!(slow <= 2, "{slow} records read by record_end");
        }
    }

    proptest! {
        /// Any bytes of CSV's alphabet, from any start to any end: the same record starts,
        /// lines and unclosed quotes as `record_end` row after row.
        #[test]
        fn blocks_find_what_rows_find(
            text in proptest::collection::vec(
                prop_oneof![
                    Just(b'a'), Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b';'),
                    Just(b' '), Just(0xC3), Just(b'\t'), Just(b'\''),
                ],
                0..700,
            ),
            quoted_text in proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b','), Just(b'\n'), Just(b'"'), Just(b'\'')],
                0..300,
            ),
            start in 0.0f64..1.0,
            end in 0.0f64..1.2,
            dialect in prop::sample::select(vec![(b',', b'"'), (b';', b'"'), (b'\t', b'\'')]),
        ) {
            let (delimiter, quote) = dialect;
            let d = Dialect::new(delimiter, quote).unwrap();
            // A regular row with a long quoted field, then any bytes.
            let mut data = vec![b'i', b'd', delimiter, quote];
            for &b in &quoted_text {
                let b = if b == b'"' || b == b'\'' { quote } else if b == b',' { delimiter } else { b };
                data.push(b);
                if b == quote {
                    data.push(quote);
                }
            }
            data.extend_from_slice(&[quote, delimiter, b'e', b'\n']);
            data.extend_from_slice(&text);
            let n = data.len() as f64;
            let range = ((start * n) as usize, (end * n) as usize);
            prop_assert_eq!(by_blocks(&data, d, range, 7).0, row_by_row(&data, d, range, 7));
        }
    }
}
