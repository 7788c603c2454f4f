//! Fixed-width records: every field at a fixed position of a line. Framing, slicing and
//! writing.
//!
//! Positions and widths count **characters** (Unicode scalar values), not bytes: a field of
//! width 10 holds `Zürich` plus 4 pads. ASCII lines are sliced by bytes directly; other lines
//! are indexed by character first. Grapheme clusters are not considered.
//!
//! Reading rules:
//! - Records are lines ending with LF or CR LF (the last may lack it). An empty line is
//!   skipped, not a record, but counted as a line; a line of spaces is a record. A UTF-8 byte
//!   order mark at the start is skipped.
//! - Every record must have exactly as many characters as the furthest field end
//!   (`start + width`); otherwise it is rejected with rule `length`. Characters outside every
//!   field are ignored. Invalid UTF-8 is rule `utf8`; NUL and other control characters are
//!   data.
//! - A value has its pad character stripped on the side away from its alignment (trailing
//!   pads when left-aligned, leading pads when right-aligned); an all-pad field is `Some("")`.
//!   So a value that ends (left) or starts (right) with its own pad character does not read
//!   back whole.
//!
//! Writing lays the fields out in start order, fills gaps between them with spaces, pads
//! each value, and refuses (never truncates) a value wider than its field.

use std::borrow::Cow;

use super::{
    Align, BadRecord, Chunk, Decoded, Decoder, EncodeError, Encoder, FileError, Preamble,
    RecordRef, check_arity, continuation_bytes, for_each_line, frame_lines, invalid_utf8,
    line_preamble,
};

/// Where one field sits in a fixed-width line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedField {
    /// 0-based position of the field's first character.
    pub start: usize,
    /// Width in characters.
    pub width: usize,
    /// Which side the value sits on.
    pub align: Align,
    /// Character that fills the rest of the field.
    pub pad: char,
}

impl FixedField {
    fn end(&self) -> Option<usize> {
        self.start.checked_add(self.width)
    }

    fn strip<'a>(&self, s: &'a str) -> &'a str {
        // An ASCII pad (the usual space or zero) is trimmed as bytes, a word at a time where
        // it can be (`codecs::trailing`): such a byte is never part of another character, and
        // the text need not be decoded character by character from its end (measured: that
        // decoding was a third of reading a line of a name with accents padded to 40
        // characters).
        if self.pad.is_ascii() {
            let pad = self.pad as u8;
            let b = s.as_bytes();
            let (from, to) = match self.align {
                Align::Left => (0, b.len() - crate::codecs::trailing(b, pad)),
                Align::Right => (crate::codecs::leading(b, pad), b.len()),
            };
            // Both ends sit next to an ASCII byte or at an end of `s`: character boundaries.
            return s.get(from..to).unwrap_or(s);
        }
        match self.align {
            Align::Left => s.trim_end_matches(self.pad),
            Align::Right => s.trim_start_matches(self.pad),
        }
    }
}

/// An empty line; a line of spaces is a record.
fn blank(line: &[u8]) -> bool {
    line.is_empty()
}

/// The longest fixed-width line, in characters, that a layout may describe: far past any
/// record format in use, and short of a line whose padding alone would take gigabytes (a typo
/// in a width would otherwise stop the run on memory when the first record is written).
pub const MAX_LINE_CHARS: usize = 1 << 20;

/// Checks the fields shared by reader and writer; returns the line length in characters.
fn line_chars(fields: &[(String, FixedField)]) -> Result<usize, String> {
    let mut len = 0;
    for (name, f) in fields {
        if f.width == 0 {
            return Err(format!("fixed-width field `{name}` has width 0"));
        }
        if f.pad == '\n' || f.pad == '\r' {
            return Err(format!(
                "fixed-width field `{name}` cannot be padded with a line break"
            ));
        }
        let end = f
            .end()
            .filter(|&e| e <= MAX_LINE_CHARS)
            .ok_or_else(|| {
                format!(
                    "fixed-width field `{name}` ends past character {MAX_LINE_CHARS}, the longest line batchwin reads or writes"
                )
            })?;
        len = len.max(end);
    }
    if len == 0 {
        return Err("a fixed-width layout needs at least one field".into());
    }
    Ok(len)
}

/// Reads fixed-width records.
#[derive(Debug, Clone)]
pub struct FixedDecoder {
    fields: Vec<(String, FixedField)>,
    /// Characters in every record.
    line_chars: usize,
    /// Every character position a field starts or ends at, in order, once each.
    bounds: Vec<usize>,
    /// Each field's start and end as indices into `bounds`.
    field_bounds: Vec<(usize, usize)>,
}

impl FixedDecoder {
    /// Fields may overlap or leave gaps; each needs a width of at least 1.
    pub fn new(fields: Vec<(String, FixedField)>) -> Result<Self, String> {
        let line_chars = line_chars(&fields)?;
        // end <= line_chars: checked by `line_chars`.
        let mut bounds: Vec<usize> = fields
            .iter()
            .flat_map(|(_, f)| [f.start, f.start + f.width])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let at = |c: usize| bounds.binary_search(&c).unwrap_or_default();
        let field_bounds = fields
            .iter()
            .map(|(_, f)| (at(f.start), at(f.start + f.width)))
            .collect();
        Ok(FixedDecoder {
            fields,
            line_chars,
            bounds,
            field_bounds,
        })
    }

    /// The characters of the non-ASCII line `text`, and in `at` the byte offset of each of
    /// `bounds` (`usize::MAX` for a bound past the line's end). `conts` receives the offsets of
    /// the line's continuation bytes: character `c` starts at the first byte that is not one
    /// and has `c` characters before it, that is `c` plus the continuation bytes before it, so
    /// the bounds are found by walking the bounds and those few offsets together, instead of
    /// counting the characters from one bound to the next (on V008's file 0044 of the bench's
    /// day, where 76 % of the lines hold a character outside ASCII, that count took 1,880
    /// instructions a line, this 1,070).
    fn char_offsets(&self, text: &str, conts: &mut Vec<usize>, at: &mut Vec<usize>) -> usize {
        let b = text.as_bytes();
        continuation_bytes(b, conts);
        let chars = b.len() - conts.len();
        at.clear();
        // The continuation bytes before the bound's offset.
        let mut k = 0;
        for &c in &self.bounds {
            if c > chars {
                at.push(usize::MAX);
                continue;
            }
            // The least offset with `c` characters before it...
            while k < conts.len() && conts[k] < c + k {
                k += 1;
            }
            // ... may be within character `c - 1`: past the rest of it.
            let mut o = c + k;
            while k < conts.len() && conts[k] == o {
                o += 1;
                k += 1;
            }
            at.push(o);
        }
        chars
    }
}

impl Decoder for FixedDecoder {
    fn preamble(&mut self, data: &[u8]) -> Result<Preamble, FileError> {
        Ok(line_preamble(data))
    }

    fn frame<'d>(
        &'d self,
        data: &'d [u8],
        pre: &Preamble,
        target_bytes: usize,
    ) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + Send + 'd> {
        frame_lines(data, pre, target_bytes, blank)
    }

    fn line_records(&self) -> Option<fn(&[u8]) -> bool> {
        Some(blank)
    }

    fn decode(&self, data: &[u8], chunk: &Chunk, each: &mut dyn FnMut(Decoded<'_>)) {
        let mut values: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(self.fields.len());
        // Byte offset of each field bound of a non-ASCII line, and of each of its continuation
        // bytes.
        let mut offsets: Vec<usize> = Vec::new();
        let mut conts = Vec::new();
        for_each_line(data, chunk, blank, |number, line, raw| {
            let bad = |rule, reason| {
                Decoded::Bad(BadRecord {
                    number,
                    line,
                    raw,
                    field: None,
                    rule,
                    reason,
                })
            };
            // Most lines are ASCII, which needs no further check to be text.
            let ascii = raw.is_ascii();
            let text = match ascii {
                // SAFETY: ASCII bytes are valid UTF-8.
                true => unsafe { std::str::from_utf8_unchecked(raw) },
                false => match super::utf8(raw) {
                    Ok(text) => text,
                    Err(e) => {
                        return each(bad("utf8", invalid_utf8(&e, "line")));
                    }
                },
            };
            let chars = if ascii {
                text.len()
            } else {
                self.char_offsets(text, &mut conts, &mut offsets)
            };
            if chars != self.line_chars {
                return each(bad(
                    "length",
                    format!("expected {} characters, found {chars}", self.line_chars),
                ));
            }
            values.clear();
            for ((_, f), &(b0, b1)) in self.fields.iter().zip(&self.field_bounds) {
                let (start, end) = (f.start, f.start + f.width); // end <= line_chars: checked in `new`
                let slice = if ascii {
                    text.get(start..end)
                } else {
                    offsets
                        .get(b0)
                        .zip(offsets.get(b1))
                        .and_then(|(&s, &e)| text.get(s..e))
                };
                values.push(slice.map(|s| Cow::Borrowed(f.strip(s))));
            }
            each(Decoded::Record(RecordRef {
                number,
                line,
                raw,
                values: &values,
                repeated: false,
            }));
        });
    }
}

/// Writes fixed-width records.
#[derive(Debug, Clone)]
pub struct FixedEncoder {
    /// `(value index, name, field)` in start order.
    layout: Vec<(usize, String, FixedField)>,
    crlf: bool,
    /// A record of empty fields with its line ending, when every pad character is ASCII
    /// (then a field's padding is as many bytes as characters; see
    /// [`FixedEncoder::record_padded`]).
    blank: Option<Vec<u8>>,
}

impl FixedEncoder {
    /// Fails when fields overlap (the output would be ambiguous) or a field has width 0.
    pub fn new(fields: Vec<(String, FixedField)>, crlf: bool) -> Result<Self, String> {
        line_chars(&fields)?;
        let mut layout: Vec<(usize, String, FixedField)> = fields
            .into_iter()
            .enumerate()
            .map(|(i, (name, f))| (i, name, f))
            .collect();
        layout.sort_by_key(|(_, _, f)| f.start);
        for pair in layout.windows(2) {
            let [(_, a, fa), (_, b, fb)] = pair else {
                continue;
            };
            if fa.start + fa.width > fb.start {
                return Err(format!("fixed-width fields `{a}` and `{b}` overlap"));
            }
        }
        let blank = layout.iter().all(|(_, _, f)| f.pad.is_ascii()).then(|| {
            let mut b = Vec::new();
            for (_, _, f) in &layout {
                b.resize(f.start, b' ');
                b.resize(f.start + f.width, f.pad as u8);
            }
            b.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            b
        });
        Ok(FixedEncoder {
            layout,
            crlf,
            blank,
        })
    }

    /// Writes a record when every pad is ASCII (`blank` is then the record of empty fields)
    /// and every value fits without a line break; `false` (nothing written) for any other
    /// record, which [`FixedEncoder::record_each`] writes or refuses. Each value is looked at
    /// once (its characters counted and line breaks sought in one pass), and the gaps and the
    /// padding are copied from the blank record: one copy before each value and one after the
    /// last, since a value's padding and the gap next to it lie side by side in the blank
    /// record (a left-aligned value's padding is taken from the end of its field there).
    fn record_padded(&self, blank: &[u8], values: &[Option<&str>], out: &mut Vec<u8>) -> bool {
        let base = out.len();
        out.reserve(blank.len());
        let mut at = 0; // where the blank record is to be copied from
        for (i, _, f) in &self.layout {
            let v = values.get(*i).copied().flatten().unwrap_or("").as_bytes();
            let Some(n) = crate::codecs::bytes::chars_without_line_breaks(v) else {
                out.truncate(base);
                return false;
            };
            if n > f.width {
                out.truncate(base);
                return false;
            }
            match f.align {
                Align::Left => {
                    out.extend_from_slice(&blank[at..f.start]);
                    out.extend_from_slice(v);
                    at = f.start + n;
                }
                Align::Right => {
                    out.extend_from_slice(&blank[at..f.start + f.width - n]);
                    out.extend_from_slice(v);
                    at = f.start + f.width;
                }
            }
        }
        out.extend_from_slice(&blank[at..]);
        true
    }
}

fn push_n(out: &mut Vec<u8>, c: char, n: usize) {
    let mut buf = [0; 4];
    let s = c.encode_utf8(&mut buf).as_bytes();
    if s.len() == 1 {
        out.resize(out.len() + n, s[0]);
    } else {
        for _ in 0..n {
            out.extend_from_slice(s);
        }
    }
}

impl Encoder for FixedEncoder {
    fn header(&self, _out: &mut Vec<u8>) {}

    fn record(&self, values: &[Option<&str>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_arity(values, self.layout.len())?;
        if let Some(blank) = &self.blank
            && self.record_padded(blank, values, out)
        {
            return Ok(());
        }
        self.record_each(values, out)
    }

    fn footer(&self, _out: &mut Vec<u8>) {}
}

impl FixedEncoder {
    /// Writes a record value by value (any values), or says why it cannot be written.
    fn record_each(&self, values: &[Option<&str>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mark = out.len();
        let mut at = 0; // characters written so far
        for (i, name, f) in &self.layout {
            let v = values.get(*i).copied().flatten().unwrap_or("");
            let fail = |out: &mut Vec<u8>, reason: String| {
                out.truncate(mark);
                Err(EncodeError {
                    field: name.clone(),
                    reason,
                })
            };
            // A value is a few dozen bytes: searched a word at a time, not by a vector search
            // set up for each value.
            if crate::codecs::find_byte2(b'\n', b'\r', v.as_bytes()).is_some() {
                return fail(
                    out,
                    "a line break cannot be written in a fixed-width record".into(),
                );
            }
            let n = if v.is_ascii() {
                v.len()
            } else {
                v.chars().count()
            };
            if n > f.width {
                return fail(
                    out,
                    format!("{n} characters do not fit in width {}", f.width),
                );
            }
            push_n(out, ' ', f.start - at);
            match f.align {
                Align::Left => {
                    out.extend_from_slice(v.as_bytes());
                    push_n(out, f.pad, f.width - n);
                }
                Align::Right => {
                    push_n(out, f.pad, f.width - n);
                    out.extend_from_slice(v.as_bytes());
                }
            }
            at = f.start + f.width;
        }
        out.extend_from_slice(if self.crlf { b"\r\n" } else { b"\n" });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::testkit::{
        assert_framing_invariant, decode_all, encode_all, value_strategy, values,
    };
    use proptest::prelude::*;

    fn field(
        name: &str,
        start: usize,
        width: usize,
        align: Align,
        pad: char,
    ) -> (String, FixedField) {
        (
            name.to_string(),
            FixedField {
                start,
                width,
                align,
                pad,
            },
        )
    }

    /// `id` 0..5 right-aligned with zeros, a 2-character gap, `name` 7..15 left-aligned with
    /// spaces, `code` 15..19 left-aligned with a non-ASCII pad.
    fn layout() -> Vec<(String, FixedField)> {
        vec![
            field("name", 7, 8, Align::Left, ' '),
            field("id", 0, 5, Align::Right, '0'),
            field("code", 15, 4, Align::Left, '·'),
        ]
    }

    fn some(vals: &[&str]) -> Vec<Option<String>> {
        vals.iter().map(|v| Some(v.to_string())).collect()
    }

    #[test]
    fn slices_and_strips_pads() {
        let data = "Zürich\r\n00420   Ann    AB··\n\n00000  Zoë Ådam····\r\n00007xx        ····"
            .as_bytes();
        let mut dec = FixedDecoder::new(layout()).expect("valid");
        let out = assert_framing_invariant(&mut dec, data);
        assert_eq!(out[0].bad(), ("length", "expected 19 characters, found 6"));
        assert_eq!(
            values(&out[1..]),
            vec![
                some(&[" Ann", "420", "AB"]),
                some(&["Zoë Ådam", "", ""]),
                some(&["", "7", ""])
            ]
        );
        assert_eq!(
            out.iter().map(|o| o.number_line()).collect::<Vec<_>>(),
            vec![(1, 1), (2, 2), (3, 4), (4, 5)]
        );
    }

    #[test]
    fn bad_lines_are_rejected() {
        let mut dec = FixedDecoder::new(vec![field("a", 0, 3, Align::Left, ' ')]).expect("valid");
        let out = decode_all(&mut dec, b"abcd\nab\na\xFFc\na\0c\n").expect("decodes");
        assert_eq!(out[0].bad(), ("length", "expected 3 characters, found 4"));
        assert_eq!(out[1].bad(), ("length", "expected 3 characters, found 2"));
        assert_eq!(
            out[2].bad(),
            ("utf8", "invalid UTF-8 at byte 2 of the line")
        );
        assert_eq!(values(&out[3..]), vec![some(&["a\0c"])]);
        assert_eq!(decode_all(&mut dec, b"").expect("empty"), vec![]);
        assert_eq!(
            decode_all(&mut dec, b"\xEF\xBB\xBF").expect("BOM only"),
            vec![]
        );
    }

    #[test]
    fn a_layout_past_the_longest_line_is_refused() {
        let at = |start, width| vec![field("f", start, width, Align::Left, ' ')];
        assert!(FixedEncoder::new(at(0, MAX_LINE_CHARS), false).is_ok());
        for (start, width) in [
            (0, MAX_LINE_CHARS + 1),
            (MAX_LINE_CHARS, 1),
            (0, u32::MAX as usize),
            (usize::MAX, 2),
        ] {
            let e = FixedEncoder::new(at(start, width), false).unwrap_err();
            assert!(e.contains("the longest line"), "{e}");
            let e = FixedDecoder::new(at(start, width)).unwrap_err();
            assert!(e.contains("the longest line"), "{e}");
        }
    }

    #[test]
    fn encoder_pads_and_refuses() {
        let enc = FixedEncoder::new(layout(), true).expect("valid");
        let out = encode_all(&enc, &[vec![Some("Zoë".into()), Some("42".into()), None]]);
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "00042  Zoë     ····\r\n"
        );
        let mut out = b"keep".to_vec();
        let e = enc
            .record(&[Some("twelve chars"), Some("1"), None], &mut out)
            .expect_err("too wide");
        assert_eq!(
            e,
            EncodeError {
                field: "name".into(),
                reason: "12 characters do not fit in width 8".into()
            }
        );
        let e = enc
            .record(&[Some("a\nb"), Some("1"), None], &mut out)
            .expect_err("line break");
        assert_eq!(e.field, "name");
        assert_eq!(out, b"keep");
        assert!(
            FixedEncoder::new(
                vec![
                    field("a", 0, 3, Align::Left, ' '),
                    field("b", 2, 2, Align::Left, ' ')
                ],
                false
            )
            .is_err()
        );
        assert!(FixedDecoder::new(vec![field("a", 0, 0, Align::Left, ' ')]).is_err());
        assert!(FixedDecoder::new(vec![field("a", 0, 1, Align::Left, '\n')]).is_err());
        assert!(FixedDecoder::new(vec![field("a", usize::MAX, 2, Align::Left, ' ')]).is_err());
        assert!(FixedDecoder::new(vec![]).is_err());
    }

    /// A value the layout can hold and read back: no line breaks, at most `width`
    /// characters, not ending (left) or starting (right) with its pad.
    fn fit(v: String, f: &FixedField) -> String {
        let v: String = v
            .chars()
            .filter(|c| *c != '\r' && *c != '\n')
            .take(f.width)
            .collect();
        f.strip(&v).to_string()
    }

    proptest! {
        /// An ASCII pad stripped a word at a time where it can be is the same as the pad
        /// trimmed character by character: pads shorter and longer than a word, text that
        /// holds the pad character too.
        #[test]
        fn ascii_pads_strip_as_trimming_does(
            text in "[a0 é]{0,20}",
            pads in 0usize..30,
            pad in prop::sample::select(vec![' ', '0']),
        ) {
            let padding = pad.to_string().repeat(pads);
            let left = field("f", 0, 60, Align::Left, pad).1;
            let padded = format!("{text}{padding}");
            prop_assert_eq!(left.strip(&padded), padded.trim_end_matches(pad));
            let right = field("f", 0, 60, Align::Right, pad).1;
            let padded = format!("{padding}{text}");
            prop_assert_eq!(right.strip(&padded), padded.trim_start_matches(pad));
        }

        /// Write then read gives the values back (`None` reads as empty), whole or in chunks.
        #[test]
        fn roundtrip(rows in prop::collection::vec(prop::collection::vec(prop::option::of(value_strategy()), 3), 0..6), crlf in any::<bool>()) {
            let fields = layout();
            let rows: Vec<Vec<Option<String>>> = rows
                .into_iter()
                .map(|r| r.into_iter().zip(&fields).map(|(v, (_, f))| v.map(|v| fit(v, f))).collect())
                .collect();
            let enc = FixedEncoder::new(fields.clone(), crlf).expect("valid");
            let data = encode_all(&enc, &rows);
            let out = assert_framing_invariant(&mut FixedDecoder::new(fields).expect("valid"), &data);
            let expected: Vec<Vec<Option<String>>> =
                rows.iter().map(|r| r.iter().map(|v| Some(v.clone().unwrap_or_default())).collect()).collect();
            prop_assert_eq!(values(&out), expected);
        }

        /// A record written with the blank record's gaps and padding is the one written value
        /// by value, for fields with gaps between them, either alignment, ASCII and other pads,
        /// ASCII and other values; so is a record that cannot be written (a value too long, a
        /// line break): nothing is written.
        #[test]
        fn a_record_padded_from_the_blank_equals_one_written_value_by_value(
            fields in prop::collection::vec((0usize..4, 1usize..8, any::<bool>(), prop::sample::select(vec![' ', '0', '_', '·'])), 1..5),
            vals in prop::collection::vec(prop::option::of("[a-c0 \r\né]{0,9}"), 5),
            crlf in any::<bool>(),
        ) {
            let mut start = 0;
            let layout: Vec<_> = fields
                .iter()
                .enumerate()
                .map(|(i, &(gap, width, left, pad))| {
                    start += gap;
                    let f = field(&format!("f{i}"), start, width, if left { Align::Left } else { Align::Right }, pad);
                    start += width;
                    f
                })
                .collect();
            let enc = FixedEncoder::new(layout, crlf).expect("valid");
            let values: Vec<Option<&str>> = vals[..fields.len()].iter().map(|v| v.as_deref()).collect();
            let (mut fast, mut each) = (b"before".to_vec(), b"before".to_vec());
            let got = enc.record(&values, &mut fast);
            let want = enc.record_each(&values, &mut each);
            prop_assert_eq!(got.is_ok(), want.is_ok());
            prop_assert_eq!(fast, each);
        }

        /// Any bytes: never a panic, and chunking never changes what is read.
        #[test]
        fn any_bytes(data in prop::collection::vec(prop::sample::select(b"ab \r\n\xC3\xA9\xFF".to_vec()), 0..40)) {
            assert_framing_invariant(&mut FixedDecoder::new(vec![field("a", 1, 2, Align::Right, 'b')]).expect("valid"), &data);
        }

        /// The bounds' byte offsets and the character count are those of `char_indices`.
        #[test]
        fn char_offsets_are_those_of_char_indices(
            text in "[aé€😀 ]{0,40}",
            fields in prop::collection::vec((0usize..30, 1usize..12), 1..5),
        ) {
            let layout: Vec<_> = fields
                .iter()
                .enumerate()
                .map(|(i, &(start, width))| field(&format!("f{i}"), start, width, Align::Left, ' '))
                .collect();
            let d = FixedDecoder::new(layout).expect("valid");
            let mut at = Vec::new();
            let chars = d.char_offsets(&text, &mut Vec::new(), &mut at);
            let mut want: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            want.push(text.len());
            prop_assert_eq!(chars, want.len() - 1);
            for (&c, &got) in d.bounds.iter().zip(&at) {
                prop_assert_eq!(got, want.get(c).copied().unwrap_or(usize::MAX), "bound {}", c);
            }
        }
    }
}
