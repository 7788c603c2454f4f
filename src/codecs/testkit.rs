//! Shared checks for the codec tests: run a decoder over a whole input the way the engine does
//! (preamble, framing, decoding every chunk), check that the chunks tile the body, and check
//! that any chunk size gives the same records as a single chunk. Each format's tests call
//! these instead of writing the harness again.

use super::{Decoded, Decoder, Encoder, FileError};

/// An owned copy of what a decoder reported for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Rec {
        number: u64,
        line: u64,
        raw: Vec<u8>,
        values: Vec<Option<String>>,
    },
    Bad {
        number: u64,
        line: u64,
        raw: Vec<u8>,
        field: Option<String>,
        rule: &'static str,
        reason: String,
    },
}

impl Out {
    /// The values of a good record; panics (failing the test) on a rejected one.
    pub fn values(&self) -> &[Option<String>] {
        match self {
            Out::Rec { values, .. } => values,
            Out::Bad { rule, reason, .. } => {
                panic!("expected a record, got bad ({rule}): {reason}")
            }
        }
    }

    /// `(rule, reason)` of a rejected record; panics (failing the test) on a good one.
    pub fn bad(&self) -> (&'static str, &str) {
        match self {
            Out::Bad { rule, reason, .. } => (rule, reason),
            Out::Rec { values, .. } => panic!("expected a reject, got record {values:?}"),
        }
    }

    pub fn number_line(&self) -> (u64, u64) {
        match self {
            Out::Rec { number, line, .. } | Out::Bad { number, line, .. } => (*number, *line),
        }
    }
}

/// Decodes `data` with chunks of about `target_bytes`, checking that the chunks cover the body
/// exactly and in order and that chunk record numbers follow on.
pub fn decode_with(
    dec: &mut dyn Decoder,
    data: &[u8],
    target_bytes: usize,
) -> Result<Vec<Out>, FileError> {
    let pre = dec.preamble(data)?;
    assert!(
        pre.body_start <= pre.body_end && pre.body_end <= data.len(),
        "{pre:?}"
    );
    let mut out = Vec::new();
    let mut next_byte = pre.body_start;
    for chunk in dec.frame(data, &pre, target_bytes) {
        let chunk = chunk?;
        assert_eq!(chunk.bytes.start, next_byte, "chunks must be contiguous");
        assert!(chunk.bytes.end > chunk.bytes.start, "empty chunk {chunk:?}");
        assert_eq!(chunk.first_record, out.len() as u64 + 1, "chunk numbering");
        next_byte = chunk.bytes.end;
        dec.decode(data, &chunk, &mut |d| out.push(own(d)));
    }
    assert_eq!(next_byte, pre.body_end, "chunks must cover the body");
    Ok(out)
}

/// Decodes `data` as a single chunk.
pub fn decode_all(dec: &mut dyn Decoder, data: &[u8]) -> Result<Vec<Out>, FileError> {
    decode_with(dec, data, usize::MAX)
}

/// Checks that every chunk size from 1 byte to the whole input gives the same records,
/// numbers and lines as one chunk; returns those records.
pub fn assert_framing_invariant(dec: &mut dyn Decoder, data: &[u8]) -> Vec<Out> {
    let whole = decode_all(dec, data).expect("whole input decodes");
    for target in 1..=data.len() {
        let cut = decode_with(dec, data, target).expect("chunked input decodes");
        assert_eq!(cut, whole, "target_bytes = {target}");
    }
    whole
}

/// Writes a whole file: header, the records, footer.
pub fn encode_all(enc: &dyn Encoder, records: &[Vec<Option<String>>]) -> Vec<u8> {
    let mut out = Vec::new();
    enc.header(&mut out);
    for rec in records {
        let values: Vec<Option<&str>> = rec.iter().map(|v| v.as_deref()).collect();
        enc.record(&values, &mut out).expect("record encodes");
    }
    enc.footer(&mut out);
    out
}

/// The values of every decoded record, failing the test on any reject.
pub fn values(out: &[Out]) -> Vec<Vec<Option<String>>> {
    out.iter().map(|o| o.values().to_vec()).collect()
}

fn own(d: Decoded<'_>) -> Out {
    match d {
        Decoded::Record(r) => Out::Rec {
            number: r.number,
            line: r.line,
            raw: r.raw.to_vec(),
            values: r
                .values
                .iter()
                .map(|v| v.as_ref().map(|s| s.to_string()))
                .collect(),
        },
        Decoded::Bad(b) => Out::Bad {
            number: b.number,
            line: b.line,
            raw: b.raw.to_vec(),
            field: b.field,
            rule: b.rule,
            reason: b.reason,
        },
    }
}

/// A proptest strategy for field values: mostly hostile characters for every format
/// (delimiters, quotes, CR, LF, markup, non-ASCII), including the empty string.
pub fn value_strategy() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let ch = prop_oneof![
        3 => proptest::char::range('a', 'z'),
        1 => Just(','),
        1 => Just(';'),
        1 => Just('"'),
        1 => Just('\''),
        1 => Just('\r'),
        1 => Just('\n'),
        1 => Just(' '),
        1 => Just('\t'),
        1 => Just('<'),
        1 => Just('>'),
        1 => Just('&'),
        1 => Just('\\'),
        1 => Just('é'),
        1 => Just('日'),
        1 => Just('🦀'),
        // U+FEFF is left out: at the very start of a file it reads as a byte order mark, which
        // every decoder skips (see `Preamble::had_bom`), so it cannot round-trip there.
        1 => any::<char>().prop_filter("U+FEFF reads as a byte order mark at the start of a file", |c| *c != '\u{feff}'),
    ];
    proptest::collection::vec(ch, 0..12).prop_map(|cs| cs.into_iter().collect())
}
