//! The record starts of a CSV body for framing ([`Starts`]), found 64 bytes at a time.
//!
//! [`Dialect::record_end`] goes from quote to quote and line feed to line feed, a vector search
//! started anew for each (several per record of quoted text). Here a block's quotes, line feeds
//! and delimiters are found at once, as bit masks; a running parity of the quotes tells which
//! line feeds lie outside quoted fields, and those end rows. Only quotes that `record_end`
//! reads the same way are taken so: inside a quoted field every quote closes it or is half of a
//! doubled quote, and outside one a quote must open a field (at a row's start, after a
//! delimiter, or right after the quote that closed the field: a doubled quote). At any other
//! quote (a quote inside an unquoted field, which is literal) the rows from the one it is in are
//! read by `record_end`, one at a time, as they are for the body's last bytes. The property test
//! below holds the two to the same record starts, lines and unclosed quotes.

use std::collections::VecDeque;

use super::blocks::{BLOCK, masks, prefix_xor};
use super::{Dialect, strip_cr};
use crate::codecs::framing::RecordStart;

/// Rows read by `record_end` after a block with a literal quote, before blocks are tried
/// again: a file with such quotes in many rows is then read at `record_end`'s pace, not
/// block by block and row by row both.
const SLOW_ROWS: u32 = 64;

/// What the byte before a block was, as far as a quote after it is concerned.
#[derive(Debug, Clone, Copy, Default)]
struct Before {
    delimiter: bool,
    /// A line feed, or nothing: the block starts a row.
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
    /// Rows still to read with `record_end` (see [`SLOW_ROWS`]).
    slow_rows: u32,
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
        let Some(block) = data
            .get(self.scan..self.scan + BLOCK)
            .and_then(|b| <&[u8; BLOCK]>::try_from(b).ok())
        else {
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

    /// What framing found before: `record_end` row after row.
    fn row_by_row(
        data: &[u8],
        d: Dialect,
        start: usize,
        line: u64,
    ) -> Vec<(usize, u64, Option<usize>)> {
        let (mut pos, mut line, mut out) = (start, line, Vec::new());
        while pos < data.len() {
            let r = d.record_end(data, pos, data.len());
            if r.content_end > pos || r.unterminated.is_some() {
                out.push((pos, line, r.unterminated));
            }
            line += r.newlines;
            pos = r.next;
        }
        out
    }

    fn by_blocks(
        data: &[u8],
        d: Dialect,
        start: usize,
        line: u64,
    ) -> Vec<(usize, u64, Option<usize>)> {
        Starts::new(data, d, start, data.len(), line)
            .map(|(s, open)| (s.pos, s.line, open))
            .collect()
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
        assert_eq!(by_blocks(&text, d, 0, 1), row_by_row(&text, d, 0, 1));
        assert_eq!(by_blocks(&text, d, 5, 3), row_by_row(&text, d, 5, 3));
    }

    proptest! {
        /// Any bytes of CSV's alphabet, from any start: the same record starts, lines and
        /// unclosed quotes as `record_end` row after row.
        #[test]
        fn blocks_find_what_rows_find(
            text in proptest::collection::vec(
                prop_oneof![
                    Just(b'a'), Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b';'),
                    Just(b' '), Just(0xC3),
                ],
                0..700,
            ),
            quoted_text in proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b','), Just(b'\n'), Just(b'"')], 0..300,
            ),
            start in 0usize..80,
            semicolon in any::<bool>(),
        ) {
            let d = match semicolon {
                true => Dialect::new(b';', b'"').unwrap(),
                false => Dialect::new(b',', b'"').unwrap(),
            };
            // Mostly regular rows with a long quoted field, then anything.
            let mut data = b"id,\"".to_vec();
            for b in &quoted_text {
                data.push(*b);
                if *b == b'"' {
                    data.push(b'"');
                }
            }
            data.extend_from_slice(b"\",end\n");
            data.extend_from_slice(&text);
            let start = start.min(data.len());
            prop_assert_eq!(by_blocks(&data, d, start, 7), row_by_row(&data, d, start, 7));
        }
    }
}
