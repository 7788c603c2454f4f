//! JSON Lines: one JSON object per line. Framing, field extraction and writing.
//!
//! Owns turning a line into the values found at the configured key paths, and records into
//! compact JSON objects. It does not judge the values (see `pipeline`).
//!
//! Reading rules:
//! - Records are lines ending with LF or CR LF (the last may lack it). A line holding only
//!   spaces, tabs or CR is blank: skipped, not a record, but counted as a line. A UTF-8 byte
//!   order mark at the start is skipped.
//! - Each record must be one JSON object, nothing after it (serde_json's grammar and its
//!   nesting limit of 128 for the parts it builds; values that are skipped or copied whole
//!   are checked without recursion, so no input can exhaust the stack). Otherwise the record
//!   is rejected with rule `json` and serde_json's message (line 1, column within the line).
//!   Invalid UTF-8 is rule `utf8`.
//! - A value is the JSON at the key path: strings unescaped (borrowed when they hold no
//!   escape), numbers, `true` and `false` as their exact source text (`12.50` stays `12.50`),
//!   objects and arrays as compact JSON text. `null`, a missing key, or a path through
//!   something that is not an object give `None`. When a key appears twice in an object the
//!   last one wins, as in JavaScript.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    BadRecord, Chunk, Decoded, Decoder, EncodeError, Encoder, FileError, Locator, Preamble,
    RecordRef, check_arity, for_each_line, frame_lines, invalid_utf8, line_preamble,
};

/// A line of JSON whitespace only.
fn blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// One key of the configured paths, with the fields that end there and the keys below it.
#[derive(Debug, Clone, Default)]
struct KeyNode {
    key: String,
    /// Fields whose path ends at this key.
    ends: Vec<usize>,
    /// Every field at or below this key (reset when the key appears again).
    all: Vec<usize>,
    children: Vec<KeyNode>,
}

fn insert(nodes: &mut Vec<KeyNode>, path: &[String], field: usize) {
    let Some((key, rest)) = path.split_first() else {
        return;
    };
    let i = match nodes.iter().position(|n| n.key == *key) {
        Some(i) => i,
        None => {
            nodes.push(KeyNode {
                key: key.clone(),
                ..KeyNode::default()
            });
            nodes.len() - 1
        }
    };
    let node = &mut nodes[i];
    node.all.push(field);
    if rest.is_empty() {
        node.ends.push(field);
    } else {
        insert(&mut node.children, rest, field);
    }
}

/// Reads JSON Lines records.
#[derive(Debug, Clone)]
pub struct JsonlDecoder {
    width: usize,
    keys: Vec<KeyNode>,
}

impl JsonlDecoder {
    /// Every locator must be a non-empty `Locator::JsonPath`.
    pub fn new(fields: Vec<(String, Locator)>) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, (name, loc)) in fields.iter().enumerate() {
            match loc {
                Locator::JsonPath(path) if !path.is_empty() => insert(&mut keys, path, i),
                other => return Err(format!("field `{name}`: {other:?} is not a JSON key path")),
            }
        }
        Ok(JsonlDecoder {
            width: fields.len(),
            keys,
        })
    }

    fn parse<'d>(
        &self,
        text: &'d str,
        values: &mut [Option<Cow<'d, str>>],
    ) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        ObjectSeed {
            keys: &self.keys,
            values,
        }
        .deserialize(&mut de)?;
        de.end()
    }
}

impl Decoder for JsonlDecoder {
    fn preamble(&mut self, data: &[u8]) -> Result<Preamble, FileError> {
        Ok(line_preamble(data))
    }

    fn frame<'d>(
        &'d self,
        data: &'d [u8],
        pre: &Preamble,
        target_bytes: usize,
    ) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + 'd> {
        frame_lines(data, pre, target_bytes, blank)
    }

    fn decode(&self, data: &[u8], chunk: &Chunk, each: &mut dyn FnMut(Decoded<'_>)) {
        let mut values: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(self.width);
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
            let text = match super::utf8(raw) {
                Ok(text) => text,
                Err(e) => {
                    return each(bad("utf8", invalid_utf8(&e, "line")));
                }
            };
            values.clear();
            values.resize(self.width, None);
            match self.parse(text, &mut values) {
                Ok(()) => each(Decoded::Record(RecordRef {
                    number,
                    line,
                    raw,
                    values: &values,
                })),
                Err(e) => each(bad("json", e.to_string())),
            }
        });
    }
}

/// Walks one JSON object, filling the values of the fields found under `keys`.
struct ObjectSeed<'k, 'v, 'd> {
    keys: &'k [KeyNode],
    values: &'v mut [Option<Cow<'d, str>>],
}

impl<'de: 'd, 'd> DeserializeSeed<'de> for ObjectSeed<'_, '_, 'd> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de: 'd, 'd> Visitor<'de> for ObjectSeed<'_, '_, 'd> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(found) = map.next_key_seed(KeySeed(self.keys))? {
            let Some(node) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            for &f in &node.all {
                self.values[f] = None;
            }
            if node.ends.is_empty() {
                // Only fields inside the value: walked where it is, not copied and read again.
                map.next_value_seed(Inside(ObjectSeed {
                    keys: &node.children,
                    values: &mut *self.values,
                }))?;
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            for &f in &node.ends {
                self.values[f] = scalar(raw.get()).map_err(A::Error::custom)?;
            }
            if !node.children.is_empty() && raw.get().starts_with('{') {
                let mut inner = serde_json::Deserializer::from_str(raw.get());
                ObjectSeed {
                    keys: &node.children,
                    values: &mut *self.values,
                }
                .deserialize(&mut inner)
                .map_err(A::Error::custom)?;
            }
        }
        Ok(())
    }
}

/// The value of a key whose fields all lie inside it: walked in place when it is an object;
/// any other value is skipped (its fields are then absent, as when the key is missing).
struct Inside<'k, 'v, 'd>(ObjectSeed<'k, 'v, 'd>);

impl<'de: 'd, 'd> DeserializeSeed<'de> for Inside<'_, '_, 'd> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de: 'd, 'd> Visitor<'de> for Inside<'_, '_, 'd> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.visit_map(map)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Matches an object key against the configured keys without allocating.
struct KeySeed<'k>(&'k [KeyNode]);

impl<'de, 'k> DeserializeSeed<'de> for KeySeed<'k> {
    type Value = Option<&'k KeyNode>;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de, 'k> Visitor<'de> for KeySeed<'k> {
    type Value = Option<&'k KeyNode>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|n| n.key == key))
    }
}

/// The field value for the JSON text of one value (`None` for `null`).
fn scalar(raw: &str) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
    Ok(match raw.as_bytes().first() {
        Some(b'"') => match raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(inner) if !inner.contains('\\') => Some(Cow::Borrowed(inner)),
            _ => Some(Cow::Owned(serde_json::from_str::<String>(raw)?)),
        },
        Some(b'n') => None,
        Some(b'{' | b'[') => Some(compact(raw)),
        _ => Some(Cow::Borrowed(raw)),
    })
}

/// Valid JSON text without the whitespace outside its strings.
fn compact(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    let (mut in_string, mut escaped) = (false, false);
    let mut out: Option<String> = None;
    let mut kept = 0; // start of the run not yet copied to `out`
    for (i, &c) in b.iter().enumerate() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
        } else if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            // Whitespace is ASCII, so `kept..i` lies on character boundaries.
            let s = out.get_or_insert_with(|| String::with_capacity(raw.len()));
            s.push_str(raw.get(kept..i).unwrap_or_default());
            kept = i + 1;
        }
    }
    match out {
        None => Cow::Borrowed(raw),
        Some(mut s) => {
            s.push_str(raw.get(kept..).unwrap_or_default());
            Cow::Owned(s)
        }
    }
}

/// A key of the output objects: a field, or a group of keys from dotted names.
#[derive(Debug, Clone)]
enum Member {
    Field(usize),
    Object(Vec<(String, Member)>),
}

/// Writes one compact JSON object per record. Dotted names (`customer.name`) become nested
/// objects; siblings share one parent object, in first-seen order.
#[derive(Debug, Clone)]
pub struct JsonlEncoder {
    width: usize,
    /// Members of the top-level object, keys already written as JSON strings.
    members: Vec<(String, Member)>,
}

impl JsonlEncoder {
    /// Fails when names clash (the same name twice, or `a` next to `a.b`) or have an empty
    /// part (`a..b`), since either would make an ambiguous object.
    pub fn new(names: Vec<String>) -> Result<Self, String> {
        let mut members = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let parts: Vec<&str> = name.split('.').collect();
            if parts.iter().any(|p| p.is_empty()) {
                return Err(format!("output field `{name}` has an empty key"));
            }
            place(&mut members, &parts, i)
                .map_err(|()| format!("output field `{name}` clashes with another field's key"))?;
        }
        Ok(JsonlEncoder {
            width: names.len(),
            members,
        })
    }
}

fn place(members: &mut Vec<(String, Member)>, parts: &[&str], field: usize) -> Result<(), ()> {
    let Some((key, rest)) = parts.split_first() else {
        return Err(());
    };
    // Keys are kept as JSON text, ready to copy; serializing a `&str` cannot fail.
    let json_key = serde_json::to_string(key).map_err(|_| ())?;
    let existing = members.iter_mut().find(|(k, _)| *k == json_key);
    match (existing, rest.is_empty()) {
        (None, true) => members.push((json_key, Member::Field(field))),
        (None, false) => {
            let mut inner = Vec::new();
            place(&mut inner, rest, field)?;
            members.push((json_key, Member::Object(inner)));
        }
        (Some((_, Member::Object(inner))), false) => place(inner, rest, field)?,
        (Some(_), _) => return Err(()),
    }
    Ok(())
}

/// A JSON string, as `serde_json` writes it; most values need no escape and are copied.
fn write_string(v: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    if super::needs_json_escape(v.as_bytes()) {
        return serde_json::to_writer(&mut *out, v);
    }
    out.reserve(v.len() + 2);
    out.push(b'"');
    out.extend_from_slice(v.as_bytes());
    out.push(b'"');
    Ok(())
}

fn write_object(
    members: &[(String, Member)],
    values: &[Option<&str>],
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    out.push(b'{');
    for (i, (key, member)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        out.push(b':');
        match member {
            Member::Object(inner) => write_object(inner, values, out)?,
            Member::Field(f) => match values.get(*f).copied().flatten() {
                None => out.extend_from_slice(b"null"),
                Some(v) => write_string(v, out)?,
            },
        }
    }
    out.push(b'}');
    Ok(())
}

impl Encoder for JsonlEncoder {
    fn header(&self, _out: &mut Vec<u8>) {}

    fn record(&self, values: &[Option<&str>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_arity(values, self.width)?;
        let mark = out.len();
        if let Err(e) = write_object(&self.members, values, out) {
            out.truncate(mark);
            return Err(EncodeError {
                field: String::new(),
                reason: e.to_string(),
            });
        }
        out.push(b'\n');
        Ok(())
    }

    fn footer(&self, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::testkit::{
        Out, assert_framing_invariant, decode_all, encode_all, value_strategy, values,
    };
    use proptest::prelude::*;

    fn decoder(paths: &[&str]) -> JsonlDecoder {
        let fields = paths
            .iter()
            .map(|p| {
                (
                    p.to_string(),
                    Locator::JsonPath(p.split('.').map(String::from).collect()),
                )
            })
            .collect();
        JsonlDecoder::new(fields).expect("valid paths")
    }

    fn opt(vals: &[Option<&str>]) -> Vec<Option<String>> {
        vals.iter().map(|v| v.map(String::from)).collect()
    }

    #[test]
    fn values_at_paths() {
        let data = br#"{"id": 12.50, "ok": true, "n": null, "c": {"name": "A\"b\u00e9", "tags": [1, {"x": " y "}]}, "s": "plain"}"#;
        let out = decode_all(
            &mut decoder(&[
                "id", "ok", "n", "c.name", "c.tags", "c.none", "s", "s.deeper", "missing",
            ]),
            data,
        )
        .expect("decodes");
        assert_eq!(
            values(&out),
            vec![opt(&[
                Some("12.50"),
                Some("true"),
                None,
                Some("A\"bé"),
                Some(r#"[1,{"x":" y "}]"#),
                None,
                Some("plain"),
                None,
                None
            ])]
        );
    }

    #[test]
    fn unescaped_strings_are_borrowed() {
        let dec = decoder(&["a", "b"]);
        let data = br#"{"a":"plain","b":"esc\n"}"#;
        let chunk = Chunk {
            bytes: 0..data.len(),
            first_record: 1,
            first_line: 1,
            records: Vec::new(),
        };
        let mut seen = Vec::new();
        dec.decode(data, &chunk, &mut |d| {
            if let Decoded::Record(r) = d {
                seen = r
                    .values
                    .iter()
                    .map(|v| matches!(v, Some(Cow::Borrowed(_))))
                    .collect();
            }
        });
        assert_eq!(seen, vec![true, false]);
    }

    #[test]
    fn fields_inside_a_value_that_is_not_an_object_are_absent() {
        let data = br#"{"c":{"x":"1","d":{"y":2,"z":[{"y":9}]}},"k":0}
{"c":"text","k":1}
{"c":"esc\"aped","k":2}
{"c":12.5e3,"k":3}
{"c":-7,"k":4}
{"c":null,"k":5}
{"c":[{"x":1},[2],"3"],"k":6}
{"c":true,"k":7}
{"c":{"x":1,},"k":8}
{"c":{"x":{"deep":[1,{"x":2}]}},"k":9}"#;
        let out = decode_all(&mut decoder(&["c.x", "c.d.y", "k"]), data).expect("decodes");
        let got: Vec<_> = out
            .iter()
            .map(|r| match r {
                Out::Rec { values, .. } => format!("{values:?}"),
                Out::Bad { rule, .. } => format!("rejected by {rule}"),
            })
            .collect();
        let absent = |k: &str| format!("{:?}", opt(&[None, None, Some(k)]));
        assert_eq!(
            got,
            vec![
                format!("{:?}", opt(&[Some("1"), Some("2"), Some("0")])),
                absent("1"),
                absent("2"),
                absent("3"),
                absent("4"),
                absent("5"),
                absent("6"),
                absent("7"),
                "rejected by json".to_string(),
                format!(
                    "{:?}",
                    opt(&[Some(r#"{"deep":[1,{"x":2}]}"#), None, Some("9")])
                ),
            ]
        );
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let data = br#"{"a":1,"c":{"x":1,"y":2},"a":2,"c":{"y":3}}"#;
        let out = decode_all(&mut decoder(&["a", "c.x", "c.y"]), data).expect("decodes");
        assert_eq!(values(&out), vec![opt(&[Some("2"), None, Some("3")])]);
    }

    #[test]
    fn blank_lines_crlf_and_bom() {
        let data = b"\xEF\xBB\xBF\r\n{\"a\":1}\r\n  \t\r\n\n{\"a\":2}";
        let mut dec = decoder(&["a"]);
        assert!(dec.preamble(data).expect("preamble").had_bom);
        let out = assert_framing_invariant(&mut dec, data);
        assert_eq!(values(&out), vec![opt(&[Some("1")]), opt(&[Some("2")])]);
        assert_eq!(
            out.iter().map(Out::number_line).collect::<Vec<_>>(),
            vec![(1, 2), (2, 5)]
        );
        assert_eq!(decode_all(&mut dec, b"").expect("empty"), vec![]);
    }

    #[test]
    fn bad_lines_are_rejected() {
        let data =
            b"[1]\n3\n{\"a\":1} x\n{\"a\":\n{\"a\":\"\xFF\"}\n\"s\"\n{\"a\":\"x\0y\"}\n{\"a\":5}\n";
        let out = assert_framing_invariant(&mut decoder(&["a"]), data);
        let bad: Vec<_> = out.iter().take(7).map(Out::bad).collect();
        assert_eq!(
            bad,
            vec![
                (
                    "json",
                    "invalid type: sequence, expected a JSON object at line 1 column 0"
                ),
                (
                    "json",
                    "invalid type: integer `3`, expected a JSON object at line 1 column 1"
                ),
                ("json", "trailing characters at line 1 column 9"),
                ("json", "EOF while parsing a value at line 1 column 5"),
                ("utf8", "invalid UTF-8 at byte 7 of the line"),
                (
                    "json",
                    "invalid type: string \"s\", expected a JSON object at line 1 column 3"
                ),
                (
                    "json",
                    "control character (\\u0000-\\u001F) found while parsing a string at line 1 column 7"
                ),
            ]
        );
        assert_eq!(values(&out[7..]), vec![opt(&[Some("5")])]);
        assert_eq!(out[7].number_line(), (8, 8));
    }

    /// Deep nesting must be a reject or a value, never a stack overflow.
    #[test]
    fn deep_nesting_never_overflows() {
        let deep = 100_000;
        let mut data = "[".repeat(deep).into_bytes();
        data.push(b'\n');
        data.extend_from_slice(
            format!("{{\"a\":{}{}}}\n", "[".repeat(deep), "]".repeat(deep)).as_bytes(),
        );
        data.extend_from_slice(
            format!(
                "{{\"b\":{}1{}}}\n",
                "{\"b\":".repeat(deep),
                "}".repeat(deep)
            )
            .as_bytes(),
        );
        data.extend_from_slice(format!("{{\"a\":{}\n", "{\"a\":".repeat(deep)).as_bytes());
        let out = decode_all(&mut decoder(&["a", "b.b.b"]), &data).expect("decodes");
        assert_eq!(out[0].bad().0, "json");
        assert_eq!(out[1].values()[0].as_deref().map(str::len), Some(2 * deep));
        assert_eq!(
            out[2].values()[1]
                .as_deref()
                .map(|v| v.starts_with("{\"b\":{\"b\":")),
            Some(true)
        );
        assert_eq!(out[3].bad().0, "json");
    }

    #[test]
    fn encoder_nests_dotted_names() {
        let enc = JsonlEncoder::new(vec![
            "c.name".into(),
            "id".into(),
            "c.addr.city".into(),
            "q\"k".into(),
        ])
        .expect("valid");
        let out = encode_all(
            &enc,
            &[vec![
                Some("A\n\"é\"".into()),
                Some("7".into()),
                None,
                Some(String::new()),
            ]],
        );
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "{\"c\":{\"name\":\"A\\n\\\"é\\\"\",\"addr\":{\"city\":null}},\"id\":\"7\",\"q\\\"k\":\"\"}\n"
        );
        for clash in [
            vec!["a", "a"],
            vec!["a", "a.b"],
            vec!["a.b", "a"],
            vec!["a..b"],
            vec![""],
        ] {
            let names = clash.iter().map(|s| s.to_string()).collect();
            assert!(JsonlEncoder::new(names).is_err(), "{clash:?}");
        }
        assert!(JsonlDecoder::new(vec![("a".into(), Locator::JsonPath(vec![]))]).is_err());
        assert!(JsonlDecoder::new(vec![("a".into(), Locator::Index(0))]).is_err());
    }

    proptest! {
        /// Write then read gives the values back exactly (`None` is `null`), whole or in chunks.
        #[test]
        fn roundtrip(rows in prop::collection::vec(prop::collection::vec(prop::option::of(value_strategy()), 4), 0..6)) {
            let names = ["id", "customer.name", "note", "customer.address.city"];
            let enc = JsonlEncoder::new(names.iter().map(|s| s.to_string()).collect()).expect("valid");
            let data = encode_all(&enc, &rows);
            let out = assert_framing_invariant(&mut decoder(&names), &data);
            prop_assert_eq!(values(&out), rows);
        }

        /// Strings are written exactly as `serde_json` writes them.
        #[test]
        fn strings_as_serde_json_writes_them(v in "(?s).{0,40}") {
            let mut ours = Vec::new();
            write_string(&v, &mut ours).unwrap();
            prop_assert_eq!(ours, serde_json::to_vec(&v).unwrap());
        }

        /// Any bytes: never a panic, and chunking never changes what is read.
        #[test]
        fn any_bytes(data in prop::collection::vec(prop::sample::select(b"{}[]\":a1 \r\n\xC3".to_vec()), 0..40)) {
            assert_framing_invariant(&mut decoder(&["a"]), &data);
        }
    }
}
