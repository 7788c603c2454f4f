//! The reject file's lines: one JSON object for every record left out of an output, saying
//! where the record was in the input (its `record` and `line` numbers, and for the rejects of
//! the JSON Lines and XML readers the line in the reason, see [`PLACED_RULES`]) and why.
//! [`RejectLine`] is what the engine writes; [`shifted`] is how `publish` renumbers a line
//! when it puts the reject files of a split file's parts together.
//!
//! A part of a file at a URL is cut without reading what comes before it, so its worker
//! numbers its records and lines from the part's own start (see `plan::split`). Its reject
//! lines are the whole file's once the records and lines of the parts before it are added to
//! their numbers ([`Shift`]); every other byte of a line stays as it was written. A line that
//! is not one batchwin writes is refused rather than delivered with wrong numbers.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::codecs::{PLACED_RULES, place_of, placed};
use crate::pipeline::Problem;
use crate::pipeline::mask::RawOmitted;

/// One line of the reject file: `raw` or, when the vendor's `reject_raw` keeps no text of
/// the record, `raw_omitted` saying why. Written by [`RejectLine::write`]; its `serde` form,
/// what `write` must equal byte for byte, is derived for the tests only.
#[cfg_attr(test, derive(Serialize))]
pub struct RejectLine<'a> {
    pub file: &'a str,
    pub record: u64,
    pub line: u64,
    pub errors: &'a [Problem],
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    pub raw: Option<Cow<'a, str>>,
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    pub raw_omitted: Option<RawOmitted>,
}

impl RejectLine<'_> {
    /// Appends the line, with its newline, to `out`: the bytes `serde_json` writes for it
    /// (its members in order, no spaces; the property test below holds the two to that),
    /// written here with the JSON Lines writer's strings. On a CSV file with half its records
    /// rejected (`scripts/bench --rejects`), `serde_json`'s `format_escaped_str` was 6.3 % of
    /// the samples, about as much as the CSV writer of the records kept.
    pub fn write(&self, out: &mut Vec<u8>) {
        let string = crate::codecs::jsonl::write_string;
        let number = |out: &mut Vec<u8>, n: u64| {
            let mut buf = itoa::Buffer::new();
            out.extend_from_slice(buf.format(n).as_bytes());
        };
        out.extend_from_slice(b"{\"file\":");
        string(self.file, out);
        out.extend_from_slice(b",\"record\":");
        number(out, self.record);
        out.extend_from_slice(b",\"line\":");
        number(out, self.line);
        out.extend_from_slice(b",\"errors\":[");
        for (i, p) in self.errors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            if let Some(field) = &p.field {
                out.extend_from_slice(b"\"field\":");
                string(field, out);
                out.push(b',');
            }
            out.extend_from_slice(b"\"rule\":");
            string(&p.rule, out);
            out.extend_from_slice(b",\"reason\":");
            string(&p.reason, out);
            out.push(b'}');
        }
        out.push(b']');
        if let Some(raw) = &self.raw {
            out.extend_from_slice(b",\"raw\":");
            string(raw, out);
        }
        if let Some(why) = self.raw_omitted {
            out.extend_from_slice(b",\"raw_omitted\":");
            string(why.as_str(), out);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// What comes before a part numbered from its own start: the records and the lines (line
/// feeds) of the file before it, added to its rejects' numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shift {
    pub records: u64,
    pub lines: u64,
}

/// A reject line as read back: the numbers, and every other member as its JSON text.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadLine<'a> {
    #[serde(borrow)]
    file: &'a RawValue,
    record: u64,
    line: u64,
    #[serde(borrow)]
    errors: Vec<ReadProblem<'a>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    raw: Option<&'a RawValue>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    raw_omitted: Option<&'a RawValue>,
}

/// A [`Problem`] as read back.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadProblem<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    field: Option<&'a RawValue>,
    #[serde(borrow)]
    rule: Cow<'a, str>,
    #[serde(borrow)]
    reason: Cow<'a, str>,
}

/// Appends to `out` the reject line `line` (with its newline) with its record and line
/// numbers, and the line a reason names, moved on by `shift`: what the line would have been
/// had the file been read from its start. `Err` says why `line` is not a reject line as
/// batchwin writes it (nothing is appended then).
pub fn shifted(line: &[u8], shift: Shift, out: &mut Vec<u8>) -> Result<(), String> {
    let text = line
        .strip_suffix(b"\n")
        .ok_or("it ends without a newline (the file was cut short)")?;
    let text = std::str::from_utf8(text).map_err(|e| format!("it is not UTF-8: {e}"))?;
    let mut read: ReadLine<'_> =
        serde_json::from_str(text).map_err(|e| format!("it is not a reject line: {e}"))?;
    // Only the numbers may change: the line must be exactly what writing it back gives.
    let again = serde_json::to_string(&read).map_err(|e| e.to_string())?;
    if again != text {
        return Err("it is not written as batchwin writes a reject line".into());
    }
    let add = |n: u64, by: u64| {
        n.checked_add(by)
            .ok_or_else(|| format!("{n} + {by} is past the largest number"))
    };
    read.record = add(read.record, shift.records)?;
    read.line = add(read.line, shift.lines)?;
    for p in &mut read.errors {
        if !PLACED_RULES.contains(&p.rule.as_ref()) {
            continue;
        }
        if let Some((message, l, column)) = place_of(&p.reason) {
            p.reason = Cow::Owned(placed(message, add(l, shift.lines)?, column));
        }
    }
    serde_json::to_writer(&mut *out, &read).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shift(records: u64, lines: u64) -> Shift {
        Shift { records, lines }
    }

    fn one(line: &str, by: Shift) -> Result<String, String> {
        let mut out = Vec::new();
        shifted(line.as_bytes(), by, &mut out)?;
        Ok(String::from_utf8(out).expect("UTF-8"))
    }

    /// The reject lines of every reader, as the engine writes them: the numbers move, and the
    /// line a reason names moves with them only for the rules whose reasons say where reading
    /// stopped; every other byte stays.
    #[test]
    fn each_readers_rejects_are_renumbered() {
        let by = shift(1000, 2345);
        let cases = [
            // CSV: a row with too few columns, and a value with invalid UTF-8, which names its
            // column, not a line; a quoted field over two lines.
            (
                r#"{"file":"a.csv","record":3,"line":5,"errors":[{"rule":"columns","reason":"expected 3 columns, found 2"}],"raw":"1,\"x\ny\""}"#,
                r#"{"file":"a.csv","record":1003,"line":2350,"errors":[{"rule":"columns","reason":"expected 3 columns, found 2"}],"raw":"1,\"x\ny\""}"#,
            ),
            (
                r#"{"file":"a.csv","record":1,"line":2,"errors":[{"field":"city","rule":"utf8","reason":"column 2 (city) is not valid UTF-8"}],"raw":"1,Z�rich"}"#,
                r#"{"file":"a.csv","record":1001,"line":2347,"errors":[{"field":"city","rule":"utf8","reason":"column 2 (city) is not valid UTF-8"}],"raw":"1,Z�rich"}"#,
            ),
            // JSON Lines: the reason's line is the record's.
            (
                r#"{"file":"b.jsonl","record":7,"line":9,"errors":[{"rule":"json","reason":"trailing characters at line 9 column 12"}],"raw":"{\"a\":1} x"}"#,
                r#"{"file":"b.jsonl","record":1007,"line":2354,"errors":[{"rule":"json","reason":"trailing characters at line 2354 column 12"}],"raw":"{\"a\":1} x"}"#,
            ),
            // XML: the line a reason names may be after the record's first.
            (
                r#"{"file":"c.xml","record":2,"line":4,"errors":[{"rule":"xml","reason":"expected `</a>`, found `</b>` at line 6 column 3"}],"raw_omitted":"unparsed"}"#,
                r#"{"file":"c.xml","record":1002,"line":2349,"errors":[{"rule":"xml","reason":"expected `</a>`, found `</b>` at line 2351 column 3"}],"raw_omitted":"unparsed"}"#,
            ),
            (
                r#"{"file":"c.xml","record":5,"line":8,"errors":[{"rule":"utf8","reason":"invalid UTF-8 at line 8 column 14"}],"raw":"<r>�</r>"}"#,
                r#"{"file":"c.xml","record":1005,"line":2353,"errors":[{"rule":"utf8","reason":"invalid UTF-8 at line 2353 column 14"}],"raw":"<r>�</r>"}"#,
            ),
            // Fixed-width, and values the pipeline refused: a reason that reads like a place
            // but is not a reader's is left as it is.
            (
                r#"{"file":"d.txt","record":4,"line":4,"errors":[{"rule":"length","reason":"line is 12 characters, expected 20"}],"raw":"ABC"}"#,
                r#"{"file":"d.txt","record":1004,"line":2349,"errors":[{"rule":"length","reason":"line is 12 characters, expected 20"}],"raw":"ABC"}"#,
            ),
            (
                r#"{"file":"d.txt","record":6,"line":6,"errors":[{"field":"note","rule":"pattern","reason":"`at line 3 column 4` does not match"},{"field":"id","rule":"required","reason":"missing"}],"raw":"x\u0001y"}"#,
                r#"{"file":"d.txt","record":1006,"line":2351,"errors":[{"field":"note","rule":"pattern","reason":"`at line 3 column 4` does not match"},{"field":"id","rule":"required","reason":"missing"}],"raw":"x\u0001y"}"#,
            ),
        ];
        for (from, want) in cases {
            assert_eq!(
                one(&format!("{from}\n"), by),
                Ok(format!("{want}\n")),
                "{from}"
            );
            // No shift: the same bytes.
            assert_eq!(
                one(&format!("{from}\n"), Shift::default()),
                Ok(format!("{from}\n"))
            );
        }
    }

    /// What the engine writes is read back as it was written.
    #[test]
    fn the_engines_lines_read_back() {
        let problems = [
            Problem {
                field: None,
                rule: "json".into(),
                reason: "EOF while parsing a value at line 3 column 5".into(),
            },
            Problem {
                field: Some("é \"q\"".into()),
                rule: "type".into(),
                reason: "not an integer: \u{7f}\t".into(),
            },
        ];
        for (raw, raw_omitted) in [
            (Some(Cow::Borrowed("{\"a\": \"\u{2028}\\\"")), None),
            (None, Some(RawOmitted::Repeated)),
        ] {
            let mut line = Vec::new();
            RejectLine {
                file: "f \"1\".jsonl",
                record: 2,
                line: 3,
                errors: &problems,
                raw: raw.clone(),
                raw_omitted,
            }
            .write(&mut line);
            let mut want = Vec::new();
            RejectLine {
                file: "f \"1\".jsonl",
                record: 12,
                line: 23,
                errors: &[
                    Problem {
                        reason: "EOF while parsing a value at line 23 column 5".into(),
                        ..problems[0].clone()
                    },
                    problems[1].clone(),
                ],
                raw,
                raw_omitted,
            }
            .write(&mut want);
            let mut got = Vec::new();
            shifted(&line, shift(10, 20), &mut got).expect("renumbered");
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }

    use proptest::prelude::*;

    proptest! {
        /// A reject line is written as `serde_json` writes it.
        #[test]
        fn lines_are_written_as_serde_json_writes_them(
            file in "(?s).{0,12}",
            record in any::<u64>(),
            line in any::<u64>(),
            errors in prop::collection::vec(
                (prop::option::of("[a-z_]{1,8}"), "[a-z._]{1,10}", "(?s).{0,40}"),
                0..3,
            ),
            raw in prop::option::of("(?s).{0,60}"),
            omitted in prop::option::of(prop::sample::select(vec![
                RawOmitted::Configured,
                RawOmitted::Unparsed,
                RawOmitted::Unlocated,
                RawOmitted::Repeated,
            ])),
        ) {
            let errors: Vec<Problem> = errors
                .into_iter()
                .map(|(field, rule, reason)| Problem { field, rule, reason })
                .collect();
            let reject = RejectLine {
                file: &file,
                record,
                line,
                errors: &errors,
                raw: raw.map(Cow::Owned),
                raw_omitted: omitted,
            };
            let mut ours = Vec::new();
            reject.write(&mut ours);
            let mut want = serde_json::to_vec(&reject).unwrap();
            want.push(b'\n');
            prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(want).unwrap());
        }
    }

    /// A line batchwin would not have written is refused, never guessed at.
    #[test]
    fn other_lines_are_refused() {
        let good = r#"{"file":"a","record":1,"line":1,"errors":[]}"#;
        assert!(one(&format!("{good}\n"), shift(1, 1)).is_ok());
        for bad in [
            good.to_string(),
            "\n".to_string(),
            "not json\n".to_string(),
            "[1,2]\n".to_string(),
            r#"{"file":"a","record":-1,"line":1,"errors":[]}"#.to_string() + "\n",
            r#"{"file":"a","record":1.5,"line":1,"errors":[]}"#.to_string() + "\n",
            r#"{"file":"a","line":1,"errors":[]}"#.to_string() + "\n",
            r#"{"file":"a","record":1,"line":1,"errors":[],"extra":1}"#.to_string() + "\n",
            r#"{"file":"a","record":1,"line":1,"errors":[{"rule":"x","reason":"y","z":1}]}"#
                .to_string()
                + "\n",
            r#"{"file":"a","record":1,"line":1,"errors":[],"raw":null}"#.to_string() + "\n",
            r#"{"file":"a", "record":1,"line":1,"errors":[]}"#.to_string() + "\n",
            r#"{"line":1,"file":"a","record":1,"errors":[]}"#.to_string() + "\n",
            r#"{"file":"a","record":1,"line":1,"errors":[]}{}"#.to_string() + "\n",
            r#"{"file":"a","record":18446744073709551615,"line":1,"errors":[]}"#.to_string() + "\n",
        ] {
            assert!(one(&bad, shift(1, 1)).is_err(), "{bad:?}");
        }
        let mut out = Vec::new();
        assert!(shifted(b"{\"file\":\"\xff\"}\n", shift(1, 1), &mut out).is_err());
        assert!(out.is_empty());
    }
}
