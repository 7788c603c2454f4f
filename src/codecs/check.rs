//! Reading a whole input the way the engine does (preamble, framing, parsing every chunk),
//! with the checks the engine relies on: the chunks tile the body exactly and in order, and
//! their record numbers follow on. The codec tests and the fuzz targets (see `crate::fuzz`)
//! both read through here, into owned records that can be compared.

use super::{Decoded, Decoder, FileError};

/// An owned copy of what a decoder reported for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Rec {
        number: u64,
        line: u64,
        raw: Vec<u8>,
        values: Vec<Option<String>>,
        repeated: bool,
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

    /// The record as written in the input, read or rejected.
    pub fn raw(&self) -> &[u8] {
        match self {
            Out::Rec { raw, .. } | Out::Bad { raw, .. } => raw,
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
    match decode_until(dec, data, target_bytes) {
        (out, None) => Ok(out),
        (_, Some(e)) => Err(e),
    }
}

/// [`decode_with`] that keeps what was read before the input failed, as the engine does (the
/// records of the chunks before a framing error are processed, their rejects kept): the records,
/// and the error, if any. The chunks before an error must tile the body from its start.
pub fn decode_until(
    dec: &mut dyn Decoder,
    data: &[u8],
    target_bytes: usize,
) -> (Vec<Out>, Option<FileError>) {
    let pre = match dec.preamble(data) {
        Ok(pre) => pre,
        Err(e) => return (Vec::new(), Some(e)),
    };
    assert!(
        pre.body_start <= pre.body_end && pre.body_end <= data.len(),
        "{pre:?}"
    );
    let mut out = Vec::new();
    let mut next_byte = pre.body_start;
    for chunk in dec.frame(data, &pre, target_bytes) {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return (out, Some(e)),
        };
        assert_eq!(chunk.bytes.start, next_byte, "chunks must be contiguous");
        assert!(chunk.bytes.end > chunk.bytes.start, "empty chunk {chunk:?}");
        assert_eq!(chunk.first_record, out.len() as u64 + 1, "chunk numbering");
        next_byte = chunk.bytes.end;
        dec.decode(data, &chunk, &mut |d| out.push(own(d)));
    }
    assert_eq!(next_byte, pre.body_end, "chunks must cover the body");
    (out, None)
}

/// Decodes `data` as a single chunk.
pub fn decode_all(dec: &mut dyn Decoder, data: &[u8]) -> Result<Vec<Out>, FileError> {
    decode_with(dec, data, usize::MAX)
}

pub fn own(d: Decoded<'_>) -> Out {
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
            repeated: r.repeated,
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
