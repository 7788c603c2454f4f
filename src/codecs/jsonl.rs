//! JSON Lines: one JSON object per line. Framing, field extraction and writing.
//!
//! Owns turning a line into the values found at the configured key paths, and records into
//! compact JSON objects. It does not judge the values (see `pipeline`).
//!
//! Reading rules (the user's version is `docs/config.md`, "How a JSON Lines value is read"):
//! - Records are lines ending with LF or CR LF (the last may lack it). A line holding only
//!   spaces, tabs or CR is blank: skipped, not a record, but counted as a line. A UTF-8 byte
//!   order mark at the start is skipped.
//! - Each record must be one JSON object, nothing after it (serde_json's grammar). Otherwise
//!   the record is rejected with rule `json`, serde_json's message and the record's own line
//!   and column (characters from 1). Invalid UTF-8 is rule `utf8`. A `\u` escape that is half
//!   of a surrogate pair without its other half rejects the record wherever it is.
//! - A value is the JSON at the key path: strings unescaped (borrowed when they hold no
//!   escape), numbers, `true` and `false` as their exact source text (`12.50` stays `12.50`),
//!   objects and arrays as compact JSON text. `null`, a missing key, or a path through
//!   something that is not an object give `None`. When a key appears twice in an object the
//!   last one wins, as in JavaScript.
//! - Nesting: values that are skipped or copied whole are checked without recursion, so no
//!   input can exhaust the stack; a path may have [`MAX_PATH_KEYS`] keys, walked past
//!   serde_json's nesting limit of 128 one nested value at a time.
//!
//! Writing: one compact object per record, dotted output names as nested objects, each value
//! as its [`JsonType`] (numbers with their own digits, never through a float).

mod plain;

use std::borrow::Cow;
use std::cell::Cell;
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

/// The most keys a field's path may have. Past serde_json's nesting limit (128) a path is
/// walked one nested value at a time, a stack frame each; 512 stays far below the stack of a
/// worker thread (1,000 keys read fine on a 2 MiB test thread in a debug build).
pub const MAX_PATH_KEYS: usize = 512;

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
                Locator::JsonPath(path) if path.len() > MAX_PATH_KEYS => {
                    return Err(format!(
                        "field `{name}`: its JSON key path has {} keys, more than the {MAX_PATH_KEYS} a path may have",
                        path.len()
                    ));
                }
                Locator::JsonPath(path) if !path.is_empty() => insert(&mut keys, path, i),
                other => return Err(format!("field `{name}`: {other:?} is not a JSON key path")),
            }
        }
        Ok(JsonlDecoder {
            width: fields.len(),
            keys,
        })
    }

    /// Reads one line into `values`. A line of the usual shape is read by the plain reader
    /// ([`plain`]); any other is walked once in place, and only when that fails is it walked
    /// again carefully (see [`ObjectSeed::careful`]), so valid lines pay nothing for the care
    /// and every reject comes from the careful walk.
    /// `Ok(true)` when a key on a configured path occurs twice in one object.
    fn parse<'d>(
        &self,
        text: &'d str,
        values: &mut [Option<Cow<'d, str>>],
    ) -> Result<bool, JsonError> {
        // The plain reader declines every line with a lone surrogate.
        if let Some(repeated) = plain::read(&self.keys, text, values) {
            return Ok(repeated);
        }
        values.fill(None);
        if let Some((at, unit)) = lone_surrogate(text) {
            return Err(JsonError {
                message: format!(
                    "lone surrogate \\u{unit:04x} (half of a UTF-16 pair, not a character)"
                ),
                byte: at,
            });
        }
        if let Ok(repeated) = self.walk(text, values, false) {
            return Ok(repeated);
        }
        values.fill(None);
        self.walk(text, values, true)
    }

    /// Checks the plain reader against the serde_json walk on one line, for the fuzz target
    /// and the property tests: panics when the plain reader reads a line that the walk (quick,
    /// then careful) rejects or that holds a lone surrogate, or reads other values or another
    /// `repeated` than the walk. A line the plain reader declines passes.
    pub fn check_plain_reader(&self, text: &str) {
        let mut plain = vec![None; self.width];
        let Some(repeated) = plain::read(&self.keys, text, &mut plain) else {
            return;
        };
        assert_eq!(
            lone_surrogate(text),
            None,
            "the plain reader read a line with a lone surrogate: {text:?}"
        );
        let mut walked = vec![None; self.width];
        let r = self.walk(text, &mut walked, false).or_else(|_| {
            walked.fill(None);
            self.walk(text, &mut walked, true)
        });
        assert_eq!(
            r.ok(),
            Some(repeated),
            "the plain reader read a line the walk reads otherwise or rejects: {text:?}"
        );
        assert_eq!(plain, walked, "values differ: {text:?}");
    }

    fn walk<'d>(
        &self,
        text: &'d str,
        values: &mut [Option<Cow<'d, str>>],
        careful: bool,
    ) -> Result<bool, JsonError> {
        let repeated = Cell::new(false);
        let mut de = serde_json::Deserializer::from_str(text);
        ObjectSeed {
            keys: &self.keys,
            values,
            careful,
            repeated: &repeated,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map(|()| repeated.get())
        .map_err(|e| JsonError {
            message: message(&e),
            byte: e.column().saturating_sub(1),
        })
    }
}

/// Why a line is not a JSON object: serde_json's message without its position, and the byte
/// offset in the line where the reader stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JsonError {
    message: String,
    byte: usize,
}

impl JsonError {
    /// The reject reason: the message and where in the file, as an editor counts columns
    /// (characters from 1).
    fn reason(&self, text: &str, line: u64) -> String {
        let byte = self.byte.min(text.len());
        let column = text
            .get(..byte)
            .map_or(byte, |before| before.chars().count())
            + 1;
        super::placed(&self.message, line, column as u64)
    }
}

/// serde_json's message without the ` at line L column C` it appends (its position is within
/// the text it was given, which for a nested walk is a value, not the line).
///
/// A line that is not an object is named by its type only: serde_json quotes the value
/// (`invalid type: string "4111...", expected ...`), and a reject reason never holds what a
/// record's values were (they may be what the output masks).
fn message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = match e.line() {
        0 => text,
        line => {
            let suffix = format!(" at line {line} column {}", e.column());
            text.strip_suffix(&suffix)
                .map_or(text.clone(), str::to_string)
        }
    };
    match text.strip_prefix("invalid type: ") {
        Some(rest) => {
            let kind = rest
                .split(['`', '"', ','])
                .next()
                .unwrap_or_default()
                .trim();
            format!("invalid type: {kind}, expected a JSON object")
        }
        None => text,
    }
}

/// The code unit of the `\u` escape at `at` (a `\`), `None` when there is none there.
fn escape_unit(b: &[u8], at: usize) -> Option<u16> {
    let hex = b.get(at..at + 6)?;
    if hex[0] != b'\\' || hex[1] != b'u' {
        return None;
    }
    hex[2..].iter().try_fold(0u16, |n, &c| {
        Some(n << 4 | (c as char).to_digit(16)? as u16)
    })
}

/// The byte offset and code unit of the first `\u` escape that is half of a UTF-16 surrogate
/// pair without its other half (`"\ud800"`). JSON's grammar allows it, but it is no character,
/// so a field could not hold it: the record is rejected wherever the escape is, read or not,
/// one rule for every line (serde_json rejects some and lets others through unread).
fn lone_surrogate(text: &str) -> Option<(usize, u16)> {
    let b = text.as_bytes();
    let unit = |at: usize| escape_unit(b, at);
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\\', b.get(from..)?).map(|i| i + from) {
        // Every escape is a backslash and one character (`\\` included), so the search goes on
        // after it; a `\u` escape takes four more.
        from = i + 2;
        let Some(u) = unit(i) else { continue };
        from = i + 6;
        match u {
            0xD800..=0xDBFF => match unit(i + 6) {
                Some(0xDC00..=0xDFFF) => from = i + 12,
                _ => return Some((i, u)),
            },
            0xDC00..=0xDFFF => return Some((i, u)),
            _ => {}
        }
    }
    None
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
    ) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + Send + 'd> {
        frame_lines(data, pre, target_bytes, blank)
    }

    fn line_records(&self) -> Option<fn(&[u8]) -> bool> {
        Some(blank)
    }

    fn decode(&self, data: &[u8], chunk: &Chunk, each: &mut dyn FnMut(Decoded<'_>)) {
        let mut values: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(self.width);
        let chunk_text = super::chunk_text(&data[super::clamp(&chunk.bytes, data.len())]);
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
            let text = match super::utf8_within(raw, chunk_text) {
                Ok(text) => text,
                Err(e) => {
                    return each(bad("utf8", invalid_utf8(&e, "line")));
                }
            };
            values.clear();
            values.resize(self.width, None);
            match self.parse(text, &mut values) {
                Ok(repeated) => each(Decoded::Record(RecordRef {
                    number,
                    line,
                    raw,
                    values: &values,
                    repeated,
                })),
                Err(e) => each(bad("json", e.reason(text, line))),
            }
        });
    }
}

/// Walks one JSON object, filling the values of the fields found under `keys`.
struct ObjectSeed<'k, 'v, 'd, 'e> {
    keys: &'k [KeyNode],
    values: &'v mut [Option<Cow<'d, str>>],
    /// Whether a key whose fields all lie inside its value takes that value whole first and
    /// walks it only when it is an object. The quick walk dispatches on the value where it is,
    /// which makes serde_json read a number as a float: `1e400` there fails the record though
    /// no field reads it.
    careful: bool,
    /// Set when a configured key occurs twice in one object.
    repeated: &'e Cell<bool>,
}

impl<'d> ObjectSeed<'_, '_, 'd, '_> {
    /// Walks the object `raw` (a part of the line, already checked as JSON by the line's own
    /// deserializer) for the fields of `keys`. An error in it is passed up as a message, and
    /// the line's deserializer places it in the line, past the value.
    fn walk_inside<E: serde::de::Error>(
        &mut self,
        raw: &'d str,
        keys: &[KeyNode],
    ) -> Result<(), E> {
        let mut inner = serde_json::Deserializer::from_str(raw);
        ObjectSeed {
            keys,
            values: &mut *self.values,
            careful: self.careful,
            repeated: self.repeated,
        }
        .deserialize(&mut inner)
        .map_err(|e| E::custom(message(&e)))
    }
}

impl<'de: 'd, 'd> DeserializeSeed<'de> for ObjectSeed<'_, '_, 'd, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de: 'd, 'd> Visitor<'de> for ObjectSeed<'_, '_, 'd, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        // The configured keys of this object seen so far, one bit each (by position among
        // `keys`; past 64 keys at one level every key counts as seen twice, to be safe).
        let mut seen = 0u64;
        while let Some(found) = map.next_key_seed(KeySeed(self.keys))? {
            let Some(node) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let index = (node as *const KeyNode as usize).wrapping_sub(self.keys.as_ptr() as usize)
                / std::mem::size_of::<KeyNode>();
            let bit = 1u64
                .checked_shl(index as u32)
                .filter(|_| index < 64)
                .unwrap_or(0);
            if bit == 0 || seen & bit != 0 {
                self.repeated.set(true);
            }
            seen |= bit;
            for &f in &node.all {
                self.values[f] = None;
            }
            if node.ends.is_empty() && !self.careful {
                // Only fields inside the value: walked where it is, not copied and read again.
                map.next_value_seed(Inside(ObjectSeed {
                    keys: &node.children,
                    values: &mut *self.values,
                    careful: false,
                    repeated: self.repeated,
                }))?;
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            for &f in &node.ends {
                self.values[f] = match scalar(raw.get()) {
                    Ok(v) => v,
                    Err(e) => return Err(A::Error::custom(message(&e))),
                };
            }
            if !node.children.is_empty() && raw.get().starts_with('{') {
                self.walk_inside(raw.get(), &node.children)?;
            }
        }
        Ok(())
    }
}

/// The value of a key whose fields all lie inside it: walked in place when it is an object;
/// any other value is skipped (its fields are then absent, as when the key is missing).
struct Inside<'k, 'v, 'd, 'e>(ObjectSeed<'k, 'v, 'd, 'e>);

impl<'de: 'd, 'd> DeserializeSeed<'de> for Inside<'_, '_, 'd, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de: 'd, 'd> Visitor<'de> for Inside<'_, '_, 'd, '_> {
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
            _ => Some(Cow::Owned(match unescape(raw) {
                Some(text) => text,
                None => serde_json::from_str::<String>(raw)?,
            })),
        },
        Some(b'n') => None,
        Some(b'{' | b'[') => Some(compact(raw)),
        _ => Some(Cow::Borrowed(raw)),
    })
}

/// The text of the JSON string `raw` (its quotes included), escapes read as serde_json reads
/// them; `None` for a string serde_json refuses (an unknown escape, half of a surrogate pair
/// alone, an unescaped `"` or control character), which serde_json then reads to say why.
///
/// serde_json's own reading went through its deserializer and visitor: 7.2M instructions in
/// callgrind of one of the bench's JSON Lines files, whose 17,053 lines hold 6,124 notes with
/// an escape (about 1,170 each). A property test holds this to serde_json's values.
fn unescape(raw: &str) -> Option<String> {
    let inner = raw.get(1..raw.len().checked_sub(1)?)?;
    let b = inner.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    loop {
        let k = super::find_json_escape(&b[i..]).map_or(b.len(), |k| i + k);
        // `i` and `k` are at ASCII bytes (a `\`, the escape after it, or the ends).
        out.push_str(inner.get(i..k)?);
        let Some(&c) = b.get(k) else {
            return Some(out);
        };
        if c != b'\\' {
            return None;
        }
        i = k + 2;
        out.push(match *b.get(k + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = escape_unit(b, k)?;
                i = k + 6;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        let low =
                            escape_unit(b, k + 6).filter(|l| (0xDC00..=0xDFFF).contains(l))?;
                        i = k + 12;
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => u32::from(unit),
                };
                char::from_u32(code)?
            }
            _ => return None,
        });
    }
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

/// The JSON type an output field is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    String,
    /// A JSON number, with the digits of the value's text (see [`json_number`]).
    Number,
    /// `true` or `false` from the spellings a boolean field accepts.
    Boolean,
}

/// How values become JSON, per output.
#[derive(Debug, Clone, Default)]
pub struct JsonWriteOptions {
    /// Each field's type (in output order); empty: every value a string.
    pub types: Vec<JsonType>,
    /// An empty value leaves its key out instead of writing `null`; a nested object left with
    /// no key is left out too.
    pub omit_empty: bool,
}

/// Writes one compact JSON object per record. Dotted names (`customer.name`) become nested
/// objects; siblings share one parent object, in first-seen order.
#[derive(Debug, Clone)]
pub struct JsonlEncoder {
    width: usize,
    /// Members of the top-level object, each key already written as a member after another
    /// is (`,"key":`: without its first byte for the first member), copied whole.
    members: Vec<(String, Member)>,
    types: Vec<JsonType>,
    omit_empty: bool,
}

impl JsonlEncoder {
    /// Fails when names clash (the same name twice, or `a` next to `a.b`) or have an empty
    /// part (`a..b`), since either would make an ambiguous object.
    pub fn new(names: Vec<String>, options: JsonWriteOptions) -> Result<Self, String> {
        let mut members = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let parts: Vec<&str> = name.split('.').collect();
            if parts.iter().any(|p| p.is_empty()) {
                return Err(format!("output field `{name}` has an empty key"));
            }
            place(&mut members, &parts, i)
                .map_err(|()| format!("output field `{name}` clashes with another field's key"))?;
        }
        let mut types = options.types;
        if types.len() != names.len() {
            types = vec![JsonType::String; names.len()];
        }
        Ok(JsonlEncoder {
            width: names.len(),
            members,
            types,
            omit_empty: options.omit_empty,
        })
    }

    fn write_object(
        &self,
        members: &[(String, Member)],
        values: &[Option<&str>],
        out: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        out.push(b'{');
        let mut first = true;
        for (key, member) in members {
            let mark = out.len();
            let key = key.as_bytes();
            super::put(out, if first { &key[1..] } else { key });
            let written = match member {
                Member::Object(inner) => {
                    let open = out.len();
                    self.write_object(inner, values, out)?;
                    !(self.omit_empty && out.len() == open + 2)
                }
                Member::Field(f) => {
                    let ty = self.types.get(*f).copied().unwrap_or(JsonType::String);
                    self.write_value(ty, values.get(*f).copied().flatten(), out)?
                }
            };
            if written {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// Writes one value; `false` when it is empty and left out.
    fn write_value(
        &self,
        ty: JsonType,
        value: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<bool, serde_json::Error> {
        let value = match value {
            Some("") if ty != JsonType::String => None,
            v => v,
        };
        let Some(v) = value else {
            if self.omit_empty {
                return Ok(false);
            }
            super::put(out, b"null");
            return Ok(true);
        };
        match ty {
            JsonType::Number => match json_number(v) {
                Some(n) => super::put(out, n.as_bytes()),
                None => write_string(v, out),
            },
            JsonType::Boolean => match json_boolean(v) {
                Some(b) => super::put(out, if b { b"true" } else { b"false" }),
                None => write_string(v, out),
            },
            JsonType::String => write_string(v, out),
        }
        Ok(true)
    }
}

/// A number's text as a JSON number with the same digits: a leading `+` and leading zeros
/// dropped, a `0` put before a bare `.` and a trailing `.` dropped (`+007.50` is `7.50`, `.5`
/// is `0.5`); never through a float, so `12.50` stays `12.50`. `None` when the text is not a
/// plain decimal number (a thousands separator, a comma for the decimal point ...).
pub fn json_number(text: &str) -> Option<Cow<'_, str>> {
    // Most numbers are written as JSON writes them already: one pass tells, where the general
    // way below splits the text five times over (410 instructions a number in callgrind).
    if is_json_number(text.as_bytes()) {
        return Some(Cow::Borrowed(text));
    }
    json_number_rewritten(text)
}

/// Whether `b` is a number as JSON writes it: `-`? (`0` | a digit 1-9 and digits) (`.`
/// digits)? ([eE] [+-]? digits)?, which [`json_number`] gives back as it is.
fn is_json_number(b: &[u8]) -> bool {
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > from
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// [`json_number`] of a text that is not written as JSON writes a number.
fn json_number_rewritten(text: &str) -> Option<Cow<'_, str>> {
    let b = text.as_bytes();
    let (sign, rest) = match b.first()? {
        b'-' => ("-", &text[1..]),
        b'+' => ("", &text[1..]),
        _ => ("", text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if !digits(int)
        || !frac.is_none_or(digits)
        || (int.is_empty() && frac.is_none_or(str::is_empty))
    {
        return None;
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !digits(e) {
            return None;
        }
    }
    let int_trimmed = match int.trim_start_matches('0') {
        "" => "0",
        t => t,
    };
    let frac = frac.filter(|f| !f.is_empty());
    let canonical = b.first() != Some(&b'+') && int_trimmed.len() == int.len() && {
        // The fraction is kept only when it has digits: `5.` is not a JSON number.
        frac.is_some() == mantissa.bytes().any(|b| b == b'.')
    };
    if canonical {
        return Some(Cow::Borrowed(text));
    }
    let mut n = String::with_capacity(text.len() + 1);
    n.push_str(sign);
    n.push_str(int_trimmed);
    if let Some(f) = frac {
        n.push('.');
        n.push_str(f);
    }
    if let Some(i) = rest.find(['e', 'E']) {
        n.push_str(&rest[i..]);
    }
    Some(Cow::Owned(n))
}

/// A boolean field's text as `true` or `false`, with the spellings validation accepts.
pub fn json_boolean(text: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "yes", "y", "1"];
    const FALSE: [&str; 4] = ["false", "no", "n", "0"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

fn place(members: &mut Vec<(String, Member)>, parts: &[&str], field: usize) -> Result<(), ()> {
    let Some((key, rest)) = parts.split_first() else {
        return Err(());
    };
    // Keys are kept as JSON text with the comma before and the colon after, ready to copy;
    // serializing a `&str` cannot fail.
    let json_key = format!(",{}:", serde_json::to_string(key).map_err(|_| ())?);
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

/// A JSON string, as `serde_json` writes it; most values need no escape and are copied. The
/// others are escaped here as serde_json escapes them (`\"`, `\\`, `\b` `\f` `\n` `\r` `\t`, other
/// control characters as `\u00xx`): serde_json's `format_escaped_str` alone took about 760
/// instructions a string in callgrind of one of the bench's JSON Lines files. A property test
/// holds the two to the same bytes. Also what the reject lines' strings are written with
/// (`rejects::RejectLine::write`).
pub(crate) fn write_string(v: &str, out: &mut Vec<u8>) {
    let b = v.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    if !super::needs_json_escape(b) {
        super::put(out, b);
        out.push(b'"');
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = 0;
    while let Some(k) = super::find_json_escape(&b[i..]).map(|k| i + k) {
        out.extend_from_slice(&b[i..k]);
        let c = b[k];
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xF)],
            ]),
        }
        i = k + 1;
    }
    out.extend_from_slice(&b[i..]);
    out.push(b'"');
}

impl Encoder for JsonlEncoder {
    fn header(&self, _out: &mut Vec<u8>) {}

    fn record(&self, values: &[Option<&str>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_arity(values, self.width)?;
        let mark = out.len();
        if let Err(e) = self.write_object(&self.members, values, out) {
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

    /// A configured key given twice in one object marks the record `repeated` (its text holds
    /// a value no field took); duplicates no field reads do not.
    #[test]
    fn repeated_configured_keys_are_reported() {
        let data = br#"{"card":"4111","card":"x"}
{"c":{"x":1,"x":2}}
{"c":{"x":1},"c":5}
{"card":"4111","z":1,"z":2,"c":{"x":1,"y":1,"y":2}}
{"card":"4111","card":null}"#;
        let out = decode_all(&mut decoder(&["card", "c.x"]), data).expect("decodes");
        let repeated: Vec<bool> = out
            .iter()
            .map(|o| matches!(o, Out::Rec { repeated: true, .. }))
            .collect();
        assert_eq!(repeated, vec![true, true, true, false, true]);
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
                    "invalid type: sequence, expected a JSON object at line 1 column 1"
                ),
                (
                    "json",
                    "invalid type: integer, expected a JSON object at line 2 column 1"
                ),
                ("json", "trailing characters at line 3 column 9"),
                ("json", "EOF while parsing a value at line 4 column 5"),
                ("utf8", "invalid UTF-8 at byte 7 of the line"),
                (
                    "json",
                    "invalid type: string, expected a JSON object at line 6 column 3"
                ),
                (
                    "json",
                    "control character (\\u0000-\\u001F) found while parsing a string at line 7 column 7"
                ),
            ]
        );
        assert_eq!(values(&out[7..]), vec![opt(&[Some("5")])]);
        assert_eq!(out[7].number_line(), (8, 8));
    }

    /// A number no float can hold, where a configured path would go deeper, is only a value
    /// that is not an object: the fields below it are absent and the record is read.
    #[test]
    fn huge_numbers_where_a_path_goes_deeper() {
        let big = "9".repeat(401);
        let mut data = String::new();
        for v in ["1e400", "-1e400", "1e309", big.as_str(), "-1E+999"] {
            data.push_str(&format!("{{\"id\":\"1\",\"m\":{v}}}\n"));
            data.push_str(&format!(
                "{{\"id\":\"2\",\"k\":{{\"x\":{v},\"y\":\"b\"}}}}\n"
            ));
        }
        let out = decode_all(
            &mut decoder(&["id", "m.x", "k", "k.x.z", "k.y"]),
            data.as_bytes(),
        )
        .expect("decodes");
        for (i, r) in out.iter().enumerate() {
            let Out::Rec { values, .. } = r else {
                panic!("record {i} rejected: {r:?}");
            };
            assert_eq!(values[1], None);
            assert_eq!(values[3], None);
            if i % 2 == 1 {
                assert_eq!(values[4].as_deref(), Some("b"));
            }
        }
        // The values themselves are read as their text, whatever their size.
        let out = decode_all(&mut decoder(&["m"]), format!("{{\"m\":{big}}}").as_bytes())
            .expect("decodes");
        assert_eq!(out[0].values()[0].as_deref(), Some(big.as_str()));
    }

    /// A line that is a JSON value but not an object is named by its type, never quoted.
    #[test]
    fn reasons_do_not_quote_values() {
        let data = b"\"4111111111111111\"\n4111111111111111\n1.5e3\n";
        let out = decode_all(&mut decoder(&["a"]), data).expect("decodes");
        for o in &out {
            assert!(
                !o.bad().1.contains("4111") && !o.bad().1.contains("1.5e3"),
                "{}",
                o.bad().1
            );
        }
        assert_eq!(
            out[2].bad().1,
            "invalid type: floating point, expected a JSON object at line 3 column 5"
        );
    }

    /// Reject reasons give the record's line and the column in it (characters from 1), also
    /// for an error found inside a value walked on its own.
    #[test]
    fn reject_positions_are_the_records() {
        let data = "{\"a\":1}\n\n{\"é\":\"ü\",  \"c\":{\"x\":\"\\ud800\"}}\n{\"c\":{\"x\":1,\"x\":\"\\uZZ\"}}\n{\"c\":{\"x\":1}} }\n";
        let out = decode_all(&mut decoder(&["c", "c.x"]), data.as_bytes()).expect("decodes");
        let bad: Vec<_> = out.iter().skip(1).map(Out::bad).collect();
        assert_eq!(
            bad,
            vec![
                (
                    "json",
                    "lone surrogate \\ud800 (half of a UTF-16 pair, not a character) at line 3 column 22"
                ),
                ("json", "invalid escape at line 4 column 23"),
                ("json", "trailing characters at line 5 column 15"),
            ]
        );
    }

    /// One rule for halves of surrogate pairs: rejected wherever they are, read or not, as a
    /// key or a value; a whole pair is its character, and an escaped backslash is no escape.
    #[test]
    fn lone_surrogates_are_rejected_everywhere() {
        let lines = [
            (r#"{"a":"\ud800"}"#, Some(1)),
            (r#"{"a":"x","b":"\udc00"}"#, Some(1)),
            (r#"{"\ud800":1}"#, Some(1)),
            (r#"{"a":["\uDBFF\u0041"]}"#, Some(1)),
            (r#"{"a":"\ud800\ud800\udc00"}"#, Some(1)),
            (r#"{"a":"\ud83d\ude00"}"#, None),
            (r#"{"a":"\\ud800"}"#, None),
            (r#"{"a":"\\\ud83d\udE00"}"#, None),
        ];
        for (line, lone) in lines {
            let out = decode_all(&mut decoder(&["a"]), line.as_bytes()).expect("decodes");
            match lone {
                Some(_) => assert!(
                    out[0].bad().1.starts_with("lone surrogate"),
                    "{line}: {:?}",
                    out[0]
                ),
                None => assert!(matches!(out[0], Out::Rec { .. }), "{line}: {:?}", out[0]),
            }
        }
        let out =
            decode_all(&mut decoder(&["a"]), br#"{"a":"\ud83d\ude00 \\ud800"}"#).expect("decodes");
        assert_eq!(out[0].values()[0].as_deref(), Some("\u{1F600} \\ud800"));
    }

    /// A field as deep as a key path may go is read, past serde_json's nesting limit of 128.
    #[test]
    fn deepest_paths_are_read() {
        let keys: Vec<String> = (0..MAX_PATH_KEYS).map(|i| format!("k{i}")).collect();
        let mut line = String::new();
        for key in &keys {
            line.push_str(&format!("{{\"{key}\":"));
        }
        line.push_str("\"deep\"");
        line.push_str(&"}".repeat(keys.len()));
        let mut dec = JsonlDecoder::new(vec![
            ("f".into(), Locator::JsonPath(keys.clone())),
            ("g".into(), Locator::JsonPath(keys[..2].to_vec())),
        ])
        .expect("valid paths");
        let out = decode_all(&mut dec, line.as_bytes()).expect("decodes");
        assert_eq!(out[0].values()[0].as_deref(), Some("deep"));
        assert!(
            out[0].values()[1]
                .as_deref()
                .is_some_and(|v| v.starts_with("{\"k2\":"))
        );
        let too_deep = (0..=MAX_PATH_KEYS).map(|i| i.to_string()).collect();
        assert!(JsonlDecoder::new(vec![("f".into(), Locator::JsonPath(too_deep))]).is_err());
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
        let enc = JsonlEncoder::new(
            vec![
                "c.name".into(),
                "id".into(),
                "c.addr.city".into(),
                "q\"k".into(),
            ],
            JsonWriteOptions::default(),
        )
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
            assert!(
                JsonlEncoder::new(names, JsonWriteOptions::default()).is_err(),
                "{clash:?}"
            );
        }
        assert!(JsonlDecoder::new(vec![("a".into(), Locator::JsonPath(vec![]))]).is_err());
        assert!(JsonlDecoder::new(vec![("a".into(), Locator::Index(0))]).is_err());
    }

    #[test]
    fn typed_values_and_left_out_empties() {
        use JsonType::*;
        let names = ["id", "amount", "ok", "note", "c.a", "c.b", "n"];
        let types = vec![Number, Number, Boolean, String, Number, String, Number];
        let row =
            |v: [Option<&str>; 7]| v.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>();
        let rows = [
            row([
                Some("7"),
                Some("12.50"),
                Some("Y"),
                Some("1"),
                None,
                None,
                Some(""),
            ]),
            row([
                Some("+007"),
                Some("-.5"),
                Some("false"),
                None,
                Some("1e5"),
                Some("x"),
                Some("1,5"),
            ]),
        ];
        let write = |omit_empty| {
            let enc = JsonlEncoder::new(
                names.iter().map(|s| s.to_string()).collect(),
                JsonWriteOptions {
                    types: types.clone(),
                    omit_empty,
                },
            )
            .expect("valid");
            std::string::String::from_utf8(encode_all(&enc, &rows)).expect("UTF-8")
        };
        assert_eq!(
            write(false),
            "{\"id\":7,\"amount\":12.50,\"ok\":true,\"note\":\"1\",\"c\":{\"a\":null,\"b\":null},\"n\":null}\n\
             {\"id\":7,\"amount\":-0.5,\"ok\":false,\"note\":null,\"c\":{\"a\":1e5,\"b\":\"x\"},\"n\":\"1,5\"}\n"
        );
        assert_eq!(
            write(true),
            "{\"id\":7,\"amount\":12.50,\"ok\":true,\"note\":\"1\"}\n\
             {\"id\":7,\"amount\":-0.5,\"ok\":false,\"c\":{\"a\":1e5,\"b\":\"x\"},\"n\":\"1,5\"}\n"
        );
    }

    #[test]
    fn numbers_keep_their_digits() {
        for (text, json) in [
            ("0", Some("0")),
            ("-0", Some("-0")),
            ("12.50", Some("12.50")),
            ("+12.50", Some("12.50")),
            ("0012", Some("12")),
            ("000", Some("0")),
            ("5.", Some("5")),
            (".25", Some("0.25")),
            ("-.25", Some("-0.25")),
            ("1E+5", Some("1E+5")),
            (
                "123456789012345678901234567890.000000000001",
                Some("123456789012345678901234567890.000000000001"),
            ),
            ("", None),
            ("-", None),
            (".", None),
            ("1.2.3", None),
            ("1,000", None),
            ("1e", None),
            ("0x10", None),
            (" 1", None),
            ("NaN", None),
        ] {
            assert_eq!(json_number(text).as_deref(), json, "{text:?}");
            if let Some(j) = json {
                let parsed: serde_json::Value = serde_json::from_str(j).expect(j);
                assert!(parsed.is_number(), "{j}");
            }
        }
    }

    /// What the serde_json walk alone reads from `text` (as `parse` did before the plain
    /// reader): whether a configured key repeats, and the values.
    fn walked(dec: &JsonlDecoder, text: &str) -> Option<(bool, Vec<Option<String>>)> {
        if lone_surrogate(text).is_some() {
            return None;
        }
        let mut v = vec![None; dec.width];
        let r = dec.walk(text, &mut v, false).ok().or_else(|| {
            v.fill(None);
            dec.walk(text, &mut v, true).ok()
        })?;
        Some((r, v.into_iter().map(|x| x.map(Cow::into_owned)).collect()))
    }

    /// The plain reader's result on `text`, when it reads it.
    fn plainly(dec: &JsonlDecoder, text: &str) -> Option<(bool, Vec<Option<String>>)> {
        let mut v = vec![None; dec.width];
        let r = plain::read(&dec.keys, text, &mut v)?;
        Some((r, v.into_iter().map(|x| x.map(Cow::into_owned)).collect()))
    }

    const PLAIN_PATHS: [&str; 6] = ["a", "b", "b.c", "c.a.b", "d", "c.d"];

    /// Checks that the plain reader, where it reads a line, reads what the walk reads.
    fn plain_agrees(text: &str) -> bool {
        decoder(&PLAIN_PATHS).check_plain_reader(text);
        true
    }

    /// A JSON value with keys from the configured paths and others, white space between
    /// tokens, escapes, numbers of every spelling and nesting.
    fn json_value() -> impl Strategy<Value = String> {
        let ws = prop::sample::select(vec!["", "", " ", "\t", " \r "]);
        let leaf = prop_oneof![
            prop::sample::select(vec![
                "null",
                "true",
                "false",
                "0",
                "-0",
                "12.50",
                "1e400",
                "-1E+9",
                "3.0e-2",
                "99999999999999999999999",
            ])
            .prop_map(String::from),
            "(?s).{0,12}".prop_map(|s| serde_json::to_string(&s).expect("string")),
            prop::sample::select(vec![r#""a\u00e9\n""#, r#""\ud83d\ude00""#, r#""\/\"""#])
                .prop_map(String::from),
        ];
        let key = prop::sample::select(vec!["a", "b", "c", "d", "x", ""]);
        leaf.prop_recursive(4, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec((key.clone(), inner.clone(), ws.clone()), 0..4).prop_map(
                    |members| {
                        let body: Vec<String> = members
                            .iter()
                            .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                            .collect();
                        format!("{{{}}}", body.join(","))
                    }
                ),
                prop::collection::vec(inner, 0..3)
                    .prop_map(|items| format!("[{}]", items.join(", "))),
            ]
        })
    }

    /// The lines of the bench's generated JSON Lines vendors, and others of the usual shape,
    /// are read by the plain reader; what it declines is read by the walk.
    #[test]
    fn usual_lines_take_the_plain_reader() {
        let dec = decoder(&[
            "id",
            "account",
            "customer.name",
            "customer.email",
            "amount",
            "dates.start",
            "dates.end",
            "closed_at",
            "notes",
        ]);
        for line in [
            r#"{"id":"2000000","account":"XZ54328001","customer":{"name":"Ana María Smith","email":"ana.maria.smith88@example.fr"},"amount":"14688.78","currency":"EUR","status":"pending","dates":{"start":"2025-10-01","end":null},"closed_at":null,"notes":"Multi-line note\nsecond line, with comma"}"#,
            r#" { "id" : 7 , "customer" : { } , "tags" : [ 1 , [ ] , { "a" : -0.5e3 } ] , "ok" : true } "#,
            r#"{"notes":"caf\u00e9 \ud83d\ude00 \"quoted\" \\ \/ \b\f\r\t"}"#,
        ] {
            assert!(plainly(&dec, line).is_some(), "{line}");
            assert_eq!(plainly(&dec, line), walked(&dec, line), "{line}");
        }
        let dec = decoder(&PLAIN_PATHS);
        for declined in [
            r#"{"a":01}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"\u0061":1}"#,
            "{\"a\":\"x\u{1}\"}",
            r#"{"a":"\q"}"#,
            r#"{"a":1} x"#,
            r#"[1]"#,
            r#"{"a":.5}"#,
            r#"{"a":1.}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":1e}"#,
            r#"{"a":1E+}"#,
            r#"{"a":-}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1}}"#,
            r#"{"a":{"b":1]}"#,
            "{\"a\":\u{c}1}",
            r#"{"x":"\uZZZZ"}"#,
            r#"{"x":"\u12"}"#,
            r#"{"x":"\udc00"}"#,
            r#"{"x":["\ud800\u0041"]}"#,
            r#"{"x":"\ud800"}"#,
        ] {
            assert!(plainly(&dec, declined).is_none(), "{declined}");
        }
        // DEL and non-ASCII text are plain string content.
        for read in ["{\"a\":\"x\u{7f}y\"}", r#"{"a":"Zoë"}"#] {
            assert!(plainly(&dec, read).is_some(), "{read}");
            assert_eq!(plainly(&dec, read), walked(&dec, read), "{read}");
        }
        // Nesting up to the plain reader's limit is read by it; one level more goes to the walk.
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
        let at_limit = format!(r#"{{"a":{}}}"#, nested(plain::MAX_DEPTH));
        let past_limit = format!(r#"{{"a":{}}}"#, nested(plain::MAX_DEPTH + 1));
        assert_eq!(plainly(&dec, &at_limit), walked(&dec, &at_limit));
        assert!(plainly(&dec, &at_limit).is_some());
        assert!(plainly(&dec, &past_limit).is_none());
        assert!(walked(&dec, &past_limit).is_some());
        // Keys with escapes and deep nesting are declined, and read by the walk.
        for walk_only in [
            r#"{"\u0061":1}"#.to_string(),
            format!(r#"{{"a":{}1{}}}"#, "[".repeat(40), "]".repeat(40)),
        ] {
            assert!(plainly(&dec, &walk_only).is_none(), "{walk_only}");
            assert!(walked(&dec, &walk_only).is_some(), "{walk_only}");
        }
    }

    proptest! {
        /// Where the plain reader reads a line, it reads the values the serde_json walk reads,
        /// and it reads every object the walk reads whose keys hold no escape.
        #[test]
        fn plain_reader_agrees_with_serde_json(v in json_value(), ws in prop::sample::select(vec!["", " ", "\r"])) {
            let line = format!("{ws}{v}{ws}");
            prop_assert!(plain_agrees(&line));
            let dec = decoder(&PLAIN_PATHS);
            if line.trim_start().starts_with('{') && walked(&dec, &line).is_some() {
                prop_assert!(plainly(&dec, &line).is_some(), "{:?}", line);
            }
        }

        /// A number that the one-pass check takes as written is one the general way gives back
        /// unchanged, and the other way round.
        #[test]
        fn numbers_written_as_json_are_taken_as_they_are(text in "[-+]?[0-9]{0,3}[.]?[0-9]{0,3}([eE][-+]?[0-9]{0,2})?") {
            let general = json_number_rewritten(&text);
            prop_assert_eq!(
                is_json_number(text.as_bytes()),
                general.as_deref() == Some(text.as_str()),
                "{:?} {:?}", text, general
            );
        }

        /// On JSON soup, the plain reader never reads a line the walk rejects, nor reads it
        /// otherwise.
        #[test]
        fn plain_reader_agrees_on_soup(parts in prop::collection::vec(prop::sample::select(vec![
            "{", "}", "[", "]", ":", ",", " ", "\"a\"", "\"b\"", "\"c\"", "\"d\"", "\"x\"",
            "1", "-", "0", "01", ".5", "e3", "-0.5e3", "1e400", "null", "true", "fals",
            r#""x\ny""#, r#""\u00e9""#, r#""\ud800""#, r#""\ud83d\ude00""#, r#""\ud83d\u0041""#, r#""\udc00""#, r#""\q""#, "\"\t\"", "\"", "\\",
        ]), 0..24)) {
            prop_assert!(plain_agrees(&parts.concat()));
        }


        /// Write then read gives the values back exactly (`None` is `null`), whole or in chunks.
        #[test]
        fn roundtrip(rows in prop::collection::vec(prop::collection::vec(prop::option::of(value_strategy()), 4), 0..6)) {
            let names = ["id", "customer.name", "note", "customer.address.city"];
            let enc = JsonlEncoder::new(names.iter().map(|s| s.to_string()).collect(), JsonWriteOptions::default()).expect("valid");
            let data = encode_all(&enc, &rows);
            let out = assert_framing_invariant(&mut decoder(&names), &data);
            prop_assert_eq!(values(&out), rows);
        }

        /// Strings are read exactly as `serde_json` reads them, and refused where it refuses
        /// them (it then says why).
        #[test]
        fn strings_as_serde_json_reads_them(raw in prop_oneof![
            "(?s).{0,30}".prop_map(|s| serde_json::to_string(&s).expect("string")),
            prop::collection::vec(prop::sample::select(vec![
                "a", "é", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u00e9",
                "\\u00E9", "\\u0000", "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\ud800", "\\udc00",
                "\\ud800\\u0041", "\\ud800x", "\\x", "\"", "\u{1}", "\\u12", "\\", "\u{7f}",
            ]), 0..8).prop_map(|p| format!("\"{}\"", p.concat())),
        ]) {
            prop_assert_eq!(unescape(&raw), serde_json::from_str::<String>(&raw).ok());
        }

        /// Strings are written exactly as `serde_json` writes them.
        #[test]
        fn strings_as_serde_json_writes_them(v in prop_oneof![
            "(?s).{0,40}",
            "[a\\x00-\\x1f\"\\\\/\u{7f}é]{0,20}",
        ]) {
            let mut ours = Vec::new();
            write_string(&v, &mut ours);
            prop_assert_eq!(ours, serde_json::to_vec(&v).unwrap());
        }

        /// Any bytes: never a panic, and chunking never changes what is read.
        #[test]
        fn any_bytes(data in prop::collection::vec(prop::sample::select(b"{}[]\":a1 \r\n\xC3".to_vec()), 0..40)) {
            assert_framing_invariant(&mut decoder(&["a"]), &data);
        }
    }

    proptest! {
        // Each case is a few microseconds: enough of them to put every token after every kind
        // of value.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// On valid lines with one change (a byte taken out, or a token put in), where a reader
        /// that accepts too much would go wrong: the plain reader reads only what the walk
        /// reads, and reads it the same.
        #[test]
        fn plain_reader_agrees_on_damaged_lines(
            v in json_value(),
            at in any::<prop::sample::Index>(),
            insert in prop::option::of(prop::sample::select(vec![
                ",", "]", "}", "[", "{", ":", "-", "e", "E+", ".", "0", "\\", "\"", "\u{c}",
                "\t", "\u{1}", "nul", "\\u12", "\\udc00", "\\ud800", " ", "\u{7f}",
            ])),
        ) {
            let line = format!(r#"{{"b":{{"c":{v}}},"a":{v},"x":[0,-1.5e3,"s",{{"d":null}}],"d":-0.25E+2}}"#);
            let cuts: Vec<usize> = (0..=line.len()).filter(|&i| line.is_char_boundary(i)).collect();
            let i = cuts[at.index(cuts.len())];
            let damaged = match insert {
                Some(t) => format!("{}{t}{}", &line[..i], &line[i..]),
                None => {
                    let next = cuts.iter().copied().find(|&j| j > i).unwrap_or(i);
                    format!("{}{}", &line[..i], &line[next..])
                }
            };
            prop_assert!(plain_agrees(&line));
            prop_assert!(plain_agrees(&damaged));
        }
    }
}
