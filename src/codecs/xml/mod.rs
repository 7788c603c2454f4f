//! XML: finding the record elements, reading field values out of each, and writing records.
//!
//! Owns the XML syntax. It does not know what the values mean (see `pipeline`).
//!
//! Reading rules:
//! - The input must be UTF-8 (a byte order mark is skipped; an XML declaration naming another
//!   encoding is a [`FileError`]).
//! - The **body** is everything between the root element's start tag and its end tag. The
//!   preamble finds the root start tag after the prolog (XML declaration, comments,
//!   processing instructions, a DOCTYPE) and the root end tag as the last `</root>` that only
//!   whitespace, comments and processing instructions follow (whatever those hold: `<?`,
//!   `</root>`). An input that does not start with markup (JSON, binary), has no element, or
//!   whose root end tag is not followed by only those (a truncated file) is a [`FileError`].
//! - A DOCTYPE with an internal subset (`[...]`, where entities are declared) is refused
//!   with a [`FileError`]; an external DTD is never fetched. Entities are therefore never
//!   expanded: only the five predefined ones and character references are, and any other
//!   `&name;` rejects the record (rule `xml`). No billion laughs, no external entities.
//! - **Records** are the elements whose local name (prefix ignored) is the record element,
//!   at any depth below the root and not inside another record. Framing is a quick scan: from
//!   `<` to `<` between records; inside one, from each place the record element's name is
//!   written and each `<!` or `<?` to the next. It skips comments, CDATA sections (which may
//!   hold `</record>`) and processing instructions, and finds the `>` of a record's tag past
//!   quoted attribute values (which may hold `>`). Elements around records (groups,
//!   wrappers) are otherwise ignored.
//! - Each record is then parsed in full: mismatched tags, malformed attributes, element and
//!   attribute names that are not XML names (`<1a/>`), `<` in an attribute value, `]]>` in
//!   text, undefined entities, forbidden characters (NUL and other C0 controls), a DOCTYPE or
//!   a record not closed before the root end tag reject it (rule `xml`, with the reason and
//!   the line and column in the file where the problem is); invalid UTF-8 is rule `utf8`. A
//!   record not closed before the root end tag (a misspelt end tag) ends where the first
//!   record start tag inside it begins, so the records after it are read as records, not
//!   swallowed into its reject. A record's line is the line of its start tag. A record of
//!   the usual shape (elements, quoted attributes and text, nothing else) is read by a plain
//!   scan; any other, and any record the scan finds wrong, by quick-xml, which reads the same
//!   values from the records the scan accepts (a property test holds the two to that) and
//!   words the errors.
//! - **Line ends** are read as XML 1.0 section 2.11 says, before anything else: CR LF and a
//!   lone CR become LF, in text, CDATA and attribute values. A CR written as `&#13;` stays.
//! - **Values**: a child element path (local names) gives the text of the first element on
//!   that path, in document order: all text inside it (of child elements too, comments and
//!   processing instructions left out), entities unescaped, CDATA taken literally,
//!   surrounding whitespace (space, tab, LF, CR) trimmed (whitespace written as a character
//!   reference, like `&#32;`, is kept). An empty element gives `Some("")`. An attribute (`@id`
//!   on the record, `address/@kind` on a child) gives its value from the first element on the
//!   path that has it, read as XML 1.0 section 3.3.3 reads a CDATA attribute: each tab, LF and
//!   CR written literally becomes a space (CR LF one space), then entities are unescaped
//!   (`&#9;`, `&#10;` stay a tab and a LF); it is not trimmed. A namespace declaration
//!   (`xmlns`, `xmlns:p`) is not an attribute: `xmlns:id="urn:x"` never gives `@id`.
//!   Anything absent is `None`.
//!
//! Writing: the prolog, the root element, one record per line, values escaped so that they
//! read back exactly (including leading and trailing whitespace and CR). Names must be XML
//! names without a colon; characters that XML 1.0 cannot hold are an `EncodeError`.
//!
//! The pieces: this module holds the decoder (preamble, framing, the plain reader of records
//! of the usual shape, and parsing any other record with quick-xml); `scan` the plain scan of
//! markup, the per-record working memory both readers fill (`Scratch`) and the text helpers
//! they share; `write` the encoder.

use std::borrow::Cow;

use memchr::{memchr, memchr2, memmem};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

mod scan;
mod write;

use scan::*;
pub use write::{XmlEncoder, XmlWriteOptions};

use super::{
    BadRecord, Chunk, Decoded, Decoder, FileError, Locator, Preamble, RecordRef, RecordStart,
    bom_len, chunks, clamp, count_lf, line_at, same,
};

/// Reads XML records.
#[derive(Debug, Clone)]
pub struct XmlDecoder {
    /// Local name of the record element.
    record: Vec<u8>,
    /// The configured paths; node 0 is the record element.
    nodes: Vec<PathNode>,
    fields: usize,
    /// Local name of the root element of the input, once its preamble is read.
    root: Vec<u8>,
}

impl XmlDecoder {
    /// Every locator must be a `Locator::Xml`; names are compared without their prefixes.
    pub fn new(record_element: String, fields: Vec<(String, Locator)>) -> Result<Self, String> {
        let record = local(record_element.as_bytes()).to_vec();
        if record.is_empty() {
            return Err("the XML record element has no name".into());
        }
        let mut nodes = vec![PathNode::default()];
        for (field, (name, loc)) in fields.iter().enumerate() {
            let Locator::Xml {
                elements,
                attribute,
            } = loc
            else {
                return Err(format!("field `{name}`: {loc:?} is not an XML path"));
            };
            let empty = || format!("field `{name}`: the XML path has an empty name");
            let mut node = 0;
            for element in elements {
                let element = local(element.as_bytes());
                if element.is_empty() {
                    return Err(empty());
                }
                node = match nodes[node].children.iter().find(|(n, _)| n == element) {
                    Some(&(_, child)) => child,
                    None => {
                        nodes.push(PathNode::default());
                        let child = nodes.len() - 1;
                        nodes[node].children.push((element.to_vec(), child));
                        nodes[node].colon |= element.contains(&b':');
                        child
                    }
                };
            }
            match attribute.as_deref().map(|a| local(a.as_bytes())) {
                Some([]) => return Err(empty()),
                Some(a) => nodes[node].attributes.push((a.to_vec(), field)),
                None => nodes[node].text.push(field),
            }
        }
        Ok(XmlDecoder {
            record,
            nodes,
            fields: fields.len(),
            root: Vec::new(),
        })
    }

    /// Parses one record element; why it cannot be read when it cannot.
    fn parse<'d>(
        &self,
        raw: &'d [u8],
        chunk: &ChunkFacts<'d>,
        s: &mut Scratch<'d>,
    ) -> Result<(), Refusal> {
        let text = super::utf8_within(raw, chunk.text).map_err(|e| Refusal {
            rule: "utf8",
            message: "invalid UTF-8".into(),
            at: e.valid_up_to(),
        })?;
        if let Some(c) = forbidden_char(text) {
            return Err(Refusal {
                rule: "xml",
                message: format!("character U+{:04X} is not allowed in XML", c as u32),
                at: text.find(c).unwrap_or(0),
            });
        }
        let cr = chunk.cr && memchr(b'\r', raw).is_some();
        s.reset_with(self.fields, cr);
        if self.parse_plain(text, s) {
            return Ok(());
        }
        s.reset_with(self.fields, cr);
        self.parse_full(text, s)
    }

    /// Reads a record of the usual shape without quick-xml: elements, attributes written
    /// `name="value"` or `name='value'`, and text; ASCII names; end tags written `</name>`.
    /// Anything else (comments, CDATA sections, processing instructions, other spellings)
    /// and every error return `false`, with `s` partly filled: [`parse_full`](Self::parse_full)
    /// then reads the record again and says what is wrong. When this returns `true`, the
    /// values are exactly the ones `parse_full` reads (a property test compares the two).
    fn parse_plain<'d>(&self, text: &'d str, s: &mut Scratch<'d>) -> bool {
        let b = text.as_bytes();
        let n = b.len();
        if b.first() != Some(&b'<') {
            return false;
        }
        let mut p = 0;
        loop {
            // Here `b[p]` is `<`.
            if b.get(p + 1) == Some(&b'/') {
                let Some(&(_, open)) = s.stack.last() else {
                    return false;
                };
                let Some(after) = past_end_tag(b, p, open) else {
                    return false;
                };
                if s.close(s.stack.len()).is_err() {
                    return false;
                }
                s.stack.pop();
                p = after;
                if s.stack.is_empty() {
                    return p == n;
                }
            } else {
                let Some(name_end) = plain_name(b, p + 1) else {
                    return false;
                };
                let name = &text[p + 1..name_end];
                let parent = s.stack.last().map(|&(node, _)| node);
                let node = self.child_named(parent, name.as_bytes(), &mut s.last_child);
                let attributes = node
                    .and_then(|n| self.nodes.get(n))
                    .map(|n| &n.attributes[..]);
                s.keys.clear();
                let mut i = name_end;
                let empty = loop {
                    let at = i + b[i..].iter().take_while(|&&c| is_space(c)).count();
                    match b.get(at) {
                        Some(b'>') => {
                            i = at + 1;
                            break false;
                        }
                        Some(b'/') if b.get(at + 1) == Some(&b'>') => {
                            i = at + 2;
                            break true;
                        }
                        Some(_) if at > i => {
                            let Some(key_end) = plain_name(b, at) else {
                                return false;
                            };
                            let quote = match b.get(key_end..key_end + 2) {
                                Some([b'=', q @ (b'"' | b'\'')]) => *q,
                                _ => return false,
                            };
                            let start = key_end + 2;
                            let Some(len) = memchr2(quote, b'<', &b[start..]) else {
                                return false;
                            };
                            if b[start + len] != quote {
                                return false;
                            }
                            let key = &b[at..key_end];
                            if s.keys.contains(&key) {
                                return false;
                            }
                            s.keys.push(key);
                            let Ok(value) = attribute_value(&text[start..start + len]) else {
                                return false;
                            };
                            take_attribute(attributes, key, value, s);
                            i = start + len + 1;
                        }
                        _ => return false,
                    }
                };
                if let Some(end) = self.text_element(text, i, name, node, empty, s) {
                    p = end;
                } else {
                    s.stack.push((node, name));
                    self.start_text(node, s, empty);
                    if empty {
                        s.stack.pop();
                        if s.stack.is_empty() {
                            return i == n;
                        }
                    }
                    p = i;
                }
            }
            // Text up to the next tag; none between most tags.
            if b.get(p) == Some(&b'<') {
                continue;
            }
            let Some((k, special)) = crate::codecs::xml_text_end(&b[p..]) else {
                return false;
            };
            if k > 0 {
                let t = &text[p..p + k];
                // Most text holds neither: no `]]>` to refuse, no reference to check.
                if !special {
                    s.push(Piece::Plain(t));
                } else {
                    if check_text(t).is_err() {
                        return false;
                    }
                    s.push(Piece::Text(t));
                }
            }
            p += k;
        }
    }

    /// An element inside the record that holds only plain text (no `&`, no `>`, no markup)
    /// and is closed right after it, `<name>text</name>`, read whole when no field is being
    /// read from an element around it: its fields take the text as [`join`] gives it for
    /// one piece ([`plain_value`]), without the element going on the stack and its text
    /// through the pieces of the fields being read. Most of a record's elements are such: in
    /// callgrind of an XML file of the bench (72,552 records), reading them here took 1,566
    /// instructions a record fewer than through the stack. `start` is where the element's text
    /// begins (past its start tag); the offset past its end tag, or `None` (nothing done) for
    /// any other element.
    fn text_element<'d>(
        &self,
        text: &'d str,
        start: usize,
        name: &str,
        node: Option<usize>,
        empty: bool,
        s: &mut Scratch<'d>,
    ) -> Option<usize> {
        if empty || s.stack.is_empty() || !s.active.is_empty() {
            return None;
        }
        let b = text.as_bytes();
        let (k, special) = crate::codecs::xml_text_end(&b[start..])?;
        if special {
            return None;
        }
        let close = start + k;
        let after = past_end_tag(b, close, name)?;
        let fields = node.and_then(|n| self.nodes.get(n)).map(|n| &n.text[..]);
        for &f in fields.unwrap_or_default() {
            // A second element on the path: its text is in the record but in no field.
            if s.values[f].is_some() {
                s.repeated = true;
            } else {
                s.values[f] = Some(plain_value(&text[start..close], s.cr));
            }
        }
        Some(after)
    }

    /// Reads a record with quick-xml: any well-formed element, and the reason when it is not.
    fn parse_full<'d>(&self, text: &'d str, s: &mut Scratch<'d>) -> Result<(), Refusal> {
        let xml = |message: String, at: usize| Refusal {
            rule: "xml",
            message,
            at,
        };
        // Where a piece quick-xml handed out starts in the record.
        let offset = |part: &[u8]| (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        let mut reader = Reader::from_str(text);
        // End tags are matched below against `s.stack`, without quick-xml's name buffer.
        let config = reader.config_mut();
        config.check_comments = true;
        config.check_end_names = false;
        let mut done = false;
        loop {
            let before = reader.buffer_position() as usize;
            let event = reader
                .read_event()
                .map_err(|e| xml(e.to_string(), reader.error_position() as usize))?;
            if done && !matches!(event, Event::Eof) {
                return Err(xml("content after the record element".into(), before));
            }
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let empty = matches!(event, Event::Empty(_));
                    let name = within(text, e.name().as_ref())
                        .ok_or_else(|| xml("unreadable element name".into(), before))?;
                    if !is_name(name) {
                        return Err(xml(
                            format!("element name `{name}` {NOT_A_NAME}"),
                            offset(name.as_bytes()),
                        ));
                    }
                    let node = self.child_named(
                        s.stack.last().map(|&(node, _)| node),
                        e.name().as_ref(),
                        &mut s.last_child,
                    );
                    self.attributes(text, e, node, s)
                        .map_err(|(m, at)| xml(m, at))?;
                    s.stack.push((node, name));
                    self.start_text(node, s, empty);
                    if empty {
                        s.stack.pop();
                        done = s.stack.is_empty();
                    }
                }
                Event::End(e) => {
                    let open = s.stack.last().map_or("", |&(_, name)| name);
                    if e.name().as_ref() != open.as_bytes() {
                        let found = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                        return Err(xml(
                            format!("end tag `</{found}>` does not match start tag `<{open}>`"),
                            before,
                        ));
                    }
                    s.close(s.stack.len()).map_err(|m| xml(m, before))?;
                    s.stack.pop();
                    done = s.stack.is_empty();
                }
                Event::Text(t) => {
                    let t =
                        within(text, &t).ok_or_else(|| xml("unreadable text".into(), before))?;
                    check_text(t).map_err(|(m, at)| xml(m, offset(t.as_bytes()) + at))?;
                    s.push(Piece::Text(t));
                }
                Event::CData(c) => {
                    let c = within(text, &c)
                        .ok_or_else(|| xml("unreadable CDATA section".into(), before))?;
                    s.push(Piece::CData(c));
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Decl(_) => {
                    return Err(xml("XML declaration inside a record".into(), before));
                }
                Event::DocType(_) => return Err(xml("DOCTYPE inside a record".into(), before)),
                Event::Eof if done => return Ok(()),
                Event::Eof => {
                    return Err(xml(
                        "the record element is not closed before the next record or the root end tag"
                            .into(),
                        text.len(),
                    ));
                }
            }
        }
    }

    /// Why a body (`data[body]`) in which framing found no record fails its file: its root is
    /// the record element itself; or an element in it has the record's name in another letter
    /// case (`<Record>` for `record`); or elements of one name repeat right below the root,
    /// records under another name (another vendor's file, a misspelt `[vendor.input]
    /// record`). A body without elements, or with only elements that do not repeat (a header
    /// and a trailer around no records), is an input without records: `None`.
    fn no_records(&self, data: &[u8], body: &std::ops::Range<usize>) -> Option<FileError> {
        let record = String::from_utf8_lossy(&self.record);
        let root = String::from_utf8_lossy(&self.root);
        let at = |pos: usize, reason: String| {
            Some(FileError {
                line: line_at(data, pos),
                reason,
            })
        };
        if self.root == self.record {
            return at(
                body.start,
                format!(
                    "the root element is the record element `<{record}>`: records are read from the elements inside the root, so a file of one record needs a root element around it"
                ),
            );
        }
        // The names of the elements right below the root, and where each first is.
        let mut below: Vec<(&[u8], usize)> = Vec::new();
        let (mut p, mut depth) = (body.start, 0usize);
        while let Some(i) = memchr(b'<', &data[p..body.end]) {
            let (m, next) = scan::markup(data, p + i, body.end)?;
            match m {
                scan::Markup::Start { name, empty } => {
                    let name = local(name);
                    if name.eq_ignore_ascii_case(&self.record) {
                        return at(
                            p + i,
                            format!(
                                "no `<{record}>` record element in the root element `<{root}>`, which holds `<{}>` (the name differs in letter case: is `[vendor.input] record` right?)",
                                String::from_utf8_lossy(name)
                            ),
                        );
                    }
                    if depth == 0 {
                        if let Some(&(_, first)) = below.iter().find(|(n, _)| *n == name) {
                            return at(
                                first,
                                format!(
                                    "no `<{record}>` record element in the root element `<{root}>`, whose elements are `<{}>` (is `[vendor.input] record` right?)",
                                    String::from_utf8_lossy(name)
                                ),
                            );
                        }
                        below.push((name, p + i));
                    }
                    if !empty {
                        depth += 1;
                    }
                }
                scan::Markup::End => depth = depth.saturating_sub(1),
                _ => {}
            }
            p = next;
        }
        None
    }

    /// The path node of an element named `name` (prefix included) whose parent has node
    /// `parent` (`None` before the record element, which is node 0).
    ///
    /// `last` is the place among its parent's children of the child found before (kept by
    /// the caller from one element to the next): a record's elements come in the same order
    /// record after record, so the child after it is looked at first. Looking through the
    /// children from the first, names compared byte by byte, this took 845 instructions a
    /// record of V007's XML file 0115; with the child after the last looked at first and names
    /// compared a word at a time (`codecs::same`), 519 (callgrind).
    fn child_named(
        &self,
        parent: Option<Option<usize>>,
        name: &[u8],
        last: &mut usize,
    ) -> Option<usize> {
        match parent {
            None => Some(0),
            Some(None) => None,
            Some(Some(p)) => {
                let node = &self.nodes[p];
                let find = |name: &[u8], last: &mut usize| {
                    let next = last.wrapping_add(1);
                    let k = match node.children.get(next) {
                        Some((n, _)) if same(n, name) => next,
                        _ => node.children.iter().position(|(n, _)| same(n, name))?,
                    };
                    *last = k;
                    Some(&node.children[k])
                };
                if node.colon {
                    return find(local(name), last).map(|&(_, c)| c);
                }
                // The children's names are local names without a colon here: a name with a
                // prefix matches none as written, and most names have none, so the prefix is
                // looked for only when no child matched (taking the local name first was a
                // third of this function's instructions, callgrind of the bench's XML vendor
                // V007).
                let prefixed = || Some(local(name)).filter(|l| l.len() < name.len());
                find(name, last)
                    .or_else(|| prefixed().and_then(|l| find(l, last)))
                    .map(|&(_, c)| c)
            }
        }
    }

    /// Checks the attributes of an element start and takes the values asked for; the error
    /// comes with its byte offset in the record.
    fn attributes<'d>(
        &self,
        text: &'d str,
        e: &BytesStart<'_>,
        node: Option<usize>,
        s: &mut Scratch<'d>,
    ) -> Result<(), (String, usize)> {
        use quick_xml::events::attributes::AttrError as A;
        let offset = |part: &[u8]| (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        // quick-xml counts attribute error positions from the start of the tag's name.
        let tag = offset(e);
        let attributes = node
            .and_then(|n| self.nodes.get(n))
            .map(|n| &n.attributes[..]);
        for attr in e.attributes() {
            let attr = attr.map_err(|e| match e {
                A::ExpectedEq(at) => (
                    "an attribute name must be followed by `=`".to_string(),
                    tag + at,
                ),
                A::ExpectedValue(at) => ("`=` must be followed by a value".into(), tag + at),
                A::UnquotedValue(at) => (
                    "an attribute value must be enclosed in `\"` or `'`".into(),
                    tag + at,
                ),
                A::ExpectedQuote(at, q) => (
                    format!(
                        "missing closing quote `{}` in an attribute value",
                        q as char
                    ),
                    tag + at,
                ),
                A::Duplicated(at, _) => ("duplicated attribute".into(), tag + at),
            })?;
            let key = String::from_utf8_lossy(attr.key.as_ref());
            if !is_name(&key) {
                return Err((
                    format!("attribute name `{key}` {NOT_A_NAME}"),
                    offset(attr.key.as_ref()),
                ));
            }
            let raw = within(text, &attr.value)
                .ok_or_else(|| ("unreadable attribute value".to_string(), tag))?;
            let value = attribute_value(raw).map_err(|(m, at)| {
                (
                    format!("attribute `{key}`: {m}"),
                    offset(raw.as_bytes()) + at,
                )
            })?;
            take_attribute(attributes, attr.key.as_ref(), value, s);
        }
        Ok(())
    }

    /// Handles an element start (`empty` for `<e/>`) at depth `s.stack.len()`: starts reading
    /// the fields that take its text.
    fn start_text(&self, node: Option<usize>, s: &mut Scratch<'_>, empty: bool) {
        let node = node.and_then(|n| self.nodes.get(n));
        for &f in node.iter().flat_map(|n| &n.text) {
            // A second element on the path: its text is in the record but in no field.
            if s.values[f].is_some() {
                s.repeated = true;
            }
            if s.values[f].is_none() && s.capture[f].is_none() {
                if empty {
                    s.values[f] = Some(Cow::Borrowed(""));
                } else {
                    s.start(f, s.stack.len());
                }
            }
        }
    }
}

/// What one look at a whole chunk tells of every record in it: a search over a megabyte, where
/// searching each record's few hundred bytes sets the search up and finishes it every time.
struct ChunkFacts<'d> {
    /// The chunk's text, when it is UTF-8 as a whole (see `codecs::utf8_within`).
    text: Option<&'d str>,
    /// Whether a CR is in it: a record of a chunk without one need not be searched for one.
    cr: bool,
}

/// Why a record cannot be read, and where: `at` is the byte offset in the record.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    rule: &'static str,
    message: String,
    at: usize,
}

impl Refusal {
    /// The reject reason: the message and the place in the file, as an editor counts it
    /// (line of the file, column in characters from 1), for the record `raw` starting on
    /// `line` after `lead` (what comes before it on that line).
    fn reason(&self, raw: &[u8], line: u64, lead: &[u8]) -> String {
        let before = &raw[..self.at.min(raw.len())];
        let in_line = match memchr::memrchr(b'\n', before) {
            Some(i) => &before[i + 1..],
            // On the record's first line, columns count from the start of the file's line.
            None => before,
        };
        // Characters, not bytes: UTF-8 continuation bytes are not counted.
        let chars = |b: &[u8]| b.iter().filter(|&&c| c & 0xC0 != 0x80).count();
        let first_line = !before.contains(&b'\n');
        let column = chars(in_line) + if first_line { chars(lead) } else { 0 } + 1;
        super::placed(&self.message, line + count_lf(before), column as u64)
    }
}

/// Why a name is refused, after the name.
const NOT_A_NAME: &str = "is not an XML name (it must start with a letter, `_` or `:`, and hold only letters, digits, `_`, `-`, `.` and `:`)";

/// The offset past the end tag `</name>` that the `<` at `lt` in `b` starts, when it is
/// written exactly so (the plain reader leaves other spellings, `</name >`, to quick-xml).
fn past_end_tag(b: &[u8], lt: usize, name: &str) -> Option<usize> {
    let name_end = lt + 2 + name.len();
    let exact = b.get(lt + 1) == Some(&b'/')
        && b.get(lt + 2..name_end)
            .is_some_and(|n| same(n, name.as_bytes()))
        && b.get(name_end) == Some(&b'>');
    exact.then_some(name_end + 1)
}

/// Sets the fields that take attribute `key` (prefix included) of an element whose path
/// node has `attributes`, unless an earlier element already gave them a value. A namespace
/// declaration is not an attribute: `xmlns:id` never gives `@id`.
fn take_attribute<'d>(
    attributes: Option<&[(Vec<u8>, usize)]>,
    key: &[u8],
    value: Cow<'d, str>,
    s: &mut Scratch<'d>,
) {
    if attributes.is_none() || is_namespace_declaration(key) {
        return;
    }
    let key = local(key);
    for (name, f) in attributes.into_iter().flatten() {
        if !same(name, key) {
            continue;
        }
        if s.values[*f].is_none() {
            s.values[*f] = Some(value.clone());
        } else {
            s.repeated = true;
        }
    }
}

/// The end of the ASCII name (letters, digits, `_`, `-`, `.`, `:`; not starting with a digit,
/// `-` or `.`) that starts at `from`, when followed by white space, `=`, `/` or `>`.
fn plain_name(b: &[u8], from: usize) -> Option<usize> {
    let first = *b.get(from)?;
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b':') {
        return None;
    }
    let len = b[from..]
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':')))?;
    matches!(
        b[from + len],
        b' ' | b'\t' | b'\n' | b'\r' | b'=' | b'/' | b'>'
    )
    .then_some(from + len)
}

/// Whether `pi` (a whole `<?...?>`) is the XML declaration.
fn is_declaration(pi: &[u8]) -> bool {
    pi.starts_with(b"<?xml") && pi.get(5).is_some_and(|&b| is_space(b) || b == b'?')
}

/// Refuses an XML declaration that names an encoding other than UTF-8 (or its subset ASCII).
fn check_encoding(decl: &[u8]) -> Result<(), String> {
    let Some(i) = memmem::find(decl, b"encoding") else {
        return Ok(());
    };
    let rest = decl[i + 8..].trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"=").map(<[u8]>::trim_ascii_start) else {
        return Ok(());
    };
    let Some((&q, rest)) = rest
        .split_first()
        .filter(|(q, _)| matches!(q, b'"' | b'\''))
    else {
        return Ok(());
    };
    let Some(end) = memchr(q, rest) else {
        return Ok(());
    };
    let name = &rest[..end];
    let supported: [&[u8]; 4] = [b"utf-8", b"utf8", b"us-ascii", b"ascii"];
    if supported.iter().any(|ok| name.eq_ignore_ascii_case(ok)) {
        return Ok(());
    }
    Err(format!(
        "encoding `{}` is not supported: convert the file to UTF-8",
        String::from_utf8_lossy(name)
    ))
}

/// Offset of the root end tag `</root>`: the last one in `data[from..]` that only white space,
/// comments and processing instructions follow. Read from the end, because finding it from the
/// start means scanning the whole body; and tag by tag from each candidate forwards, because
/// a comment or processing instruction after the root may hold anything but its own end (a
/// processing instruction `<?a<?b?>`, a comment `<!-- </root> -->`), which no backward
/// search for the start of one can tell apart. Without reading the body, one case stays a
/// guess: a comment or instruction after the root that holds `</root>` followed by a whole
/// instruction (`<?a </root><?b?>`) is taken for the end, and the file then fails as
/// holding unclosed markup.
fn root_end(data: &[u8], from: usize, root: &[u8]) -> Option<usize> {
    let mut needle = b"</".to_vec();
    needle.extend_from_slice(root);
    let mut unclosed = [data.len(); 2];
    let mut end = data.len();
    while let Some(i) = memmem::rfind(&data[from..end], &needle) {
        let tag = from + i;
        let mut p = tag + needle.len();
        while p < data.len() && is_space(data[p]) {
            p += 1;
        }
        if data.get(p) == Some(&b'>') && only_misc(data, p + 1, &mut unclosed) {
            return Some(tag);
        }
        // `<` starts the needle and nowhere else in it: no earlier match overlaps this one.
        end = tag;
    }
    None
}

/// Whether `data[p..]` holds only white space, comments and processing instructions (what
/// may follow the root element). `unclosed` keeps, for `-->` and `?>`, an offset from which
/// there is none, so that trying many candidates does not search the same tail again.
fn only_misc(data: &[u8], mut p: usize, unclosed: &mut [usize; 2]) -> bool {
    loop {
        while p < data.len() && is_space(data[p]) {
            p += 1;
        }
        let rest = &data[p..];
        let (k, open, close): (usize, usize, &[u8]) = if rest.is_empty() {
            return true;
        } else if rest.starts_with(b"<!--") {
            (0, 4, b"-->")
        } else if rest.starts_with(b"<?") {
            (1, 2, b"?>")
        } else {
            return false;
        };
        // No match starts at or after `unclosed[k]`: search only up to there.
        let limit = (unclosed[k] + close.len() - 1).min(data.len());
        let from = p + open;
        match memmem::find(data.get(from..limit).unwrap_or_default(), close) {
            Some(i) => p = from + i + close.len(),
            None => {
                unclosed[k] = unclosed[k].min(from);
                return false;
            }
        }
    }
}

/// A few characters at `pos`, for messages.
fn excerpt(data: &[u8], pos: usize) -> String {
    let end = (pos + 16).min(data.len());
    String::from_utf8_lossy(&data[pos.min(end)..end]).into_owned()
}

impl Decoder for XmlDecoder {
    fn preamble(&mut self, data: &[u8]) -> Result<Preamble, FileError> {
        let err = |pos: usize, reason: String| FileError {
            line: line_at(data, pos),
            reason,
        };
        if data.starts_with(b"\xFF\xFE") || data.starts_with(b"\xFE\xFF") {
            return Err(err(
                0,
                "the input is UTF-16: convert the file to UTF-8".into(),
            ));
        }
        let start = bom_len(data);
        let len = data.len();
        let mut pos = start;
        let (root, open_end, empty) = loop {
            while pos < len && is_space(data[pos]) {
                pos += 1;
            }
            match data.get(pos) {
                None => {
                    return Err(err(
                        pos,
                        "no root element: the input holds no XML element".into(),
                    ));
                }
                Some(b'<') => {}
                Some(_) => {
                    return Err(err(
                        pos,
                        format!("not XML: expected `<`, found `{}`", excerpt(data, pos)),
                    ));
                }
            }
            let Some((m, next)) = markup(data, pos, len) else {
                return Err(err(
                    pos,
                    format!("not XML: markup `{}` is not closed", excerpt(data, pos)),
                ));
            };
            match m {
                Markup::Start { name, empty } if !name.is_empty() => break (name, next, empty),
                Markup::Start { .. } => {
                    return Err(err(pos, "not XML: `<` without an element name".into()));
                }
                Markup::End => {
                    return Err(err(pos, "not XML: an end tag before any element".into()));
                }
                Markup::Declaration if !data[pos..].starts_with(b"<!DOCTYPE") => {
                    return Err(err(
                        pos,
                        format!("not XML: unexpected `{}`", excerpt(data, pos)),
                    ));
                }
                Markup::Declaration => {
                    if find_unquoted(data, pos, next, |b| b == b'[').is_some() {
                        return Err(err(
                            pos,
                            "the DOCTYPE declares an internal subset (entities), which is refused: entities are never expanded".into(),
                        ));
                    }
                }
                Markup::Other if data[pos..].starts_with(b"<![CDATA[") => {
                    return Err(err(
                        pos,
                        "not XML: a CDATA section before the root element".into(),
                    ));
                }
                Markup::Other if is_declaration(&data[pos..next]) => {
                    check_encoding(&data[pos..next]).map_err(|r| err(pos, r))?;
                }
                Markup::Other => {}
            }
            pos = next;
        };
        self.root = local(root).to_vec();
        let body_end = if empty {
            open_end
        } else {
            root_end(data, open_end, root).ok_or_else(|| {
                err(
                    len,
                    format!(
                        "the root element `<{}>` is not closed: truncated file?",
                        String::from_utf8_lossy(root)
                    ),
                )
            })?
        };
        Ok(Preamble {
            body_start: open_end,
            body_end,
            body_first_line: line_at(data, open_end),
            had_bom: start > 0,
        })
    }

    fn frame<'d>(
        &'d self,
        data: &'d [u8],
        pre: &Preamble,
        target_bytes: usize,
    ) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + Send + 'd> {
        let body = clamp(&(pre.body_start..pre.body_end), data.len());
        let mut scan = Scanner::new(data, body.clone(), &self.record);
        let (mut line, mut last) = (pre.body_first_line, body.start);
        let mut found = false;
        let whole = body.clone();
        let starts = std::iter::from_fn(move || match scan.next_record() {
            Ok(None) if !found => {
                found = true;
                self.no_records(data, &whole).map(Err)
            }
            Ok(Some(r)) => {
                found = true;
                line += count_lf(&data[last..r.start]);
                last = r.start;
                Some(Ok(RecordStart {
                    pos: r.start,
                    line,
                    end: Some(r.end),
                }))
            }
            Ok(None) => None,
            Err((p, reason)) => Some(Err(FileError {
                line: line_at(data, p),
                reason: reason.into(),
            })),
        });
        chunks(body, pre.body_first_line, target_bytes, starts)
    }

    fn decode(&self, data: &[u8], chunk: &Chunk, each: &mut dyn FnMut(Decoded<'_>)) {
        let range = clamp(&chunk.bytes, data.len());
        let mut scan = Scanner::new(data, range.clone(), &self.record);
        let mut scratch = Scratch::default();
        let facts = ChunkFacts {
            text: super::chunk_text(&data[range.clone()]),
            cr: memchr(b'\r', &data[range.clone()]).is_some(),
        };
        let (mut number, mut line, mut last) = (chunk.first_record, chunk.first_line, None);
        // The records framing found, or (for a chunk made elsewhere) a scan for them. Framing
        // has already reported markup that cannot be skipped: the scan stops there too.
        // Framing counted the records' lines too; a scan counts them here.
        let mut known = chunk
            .records
            .iter()
            .map(|(r, line)| (clamp(r, range.end), Some(*line)))
            .filter(|(r, _)| r.start >= range.start);
        let use_known = !chunk.records.is_empty();
        let mut next = move || {
            if use_known {
                known.next()
            } else {
                scan.next_record().ok().flatten().map(|r| (r, None))
            }
        };
        while let Some((r, counted)) = next() {
            match (counted, last) {
                (Some(l), _) => line = l,
                (None, Some(l)) => line += count_lf(&data[l..r.start]),
                (None, None) => {}
            }
            last = Some(r.start);
            let start = r.start;
            let raw = &data[r];
            match self.parse(raw, &facts, &mut scratch) {
                Ok(()) => each(Decoded::Record(RecordRef {
                    number,
                    line,
                    raw,
                    values: &scratch.values,
                    repeated: scratch.repeated,
                })),
                Err(refusal) => each(Decoded::Bad(BadRecord {
                    number,
                    line,
                    raw,
                    field: None,
                    rule: refusal.rule,
                    reason: {
                        let line_start =
                            memchr::memrchr(b'\n', &data[..start]).map_or(0, |i| i + 1);
                        refusal.reason(raw, line, &data[line_start..start])
                    },
                })),
            }
            number += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write::escape;
    use super::*;
    use crate::codecs::testkit::{
        Out, assert_framing_invariant, decode_all, encode_all, value_strategy, values,
    };
    use crate::codecs::{EncodeError, Encoder};
    use proptest::prelude::*;

    fn loc(path: &str) -> Locator {
        let mut elements: Vec<String> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        let attribute = match elements.last() {
            Some(last) if last.starts_with('@') => elements.pop().map(|a| a[1..].to_string()),
            _ => None,
        };
        Locator::Xml {
            elements,
            attribute,
        }
    }

    fn decoder(record: &str, paths: &[&str]) -> XmlDecoder {
        XmlDecoder::new(
            record.into(),
            paths.iter().map(|p| (p.to_string(), loc(p))).collect(),
        )
        .expect("valid")
    }

    fn opt(vals: &[Option<&str>]) -> Vec<Option<String>> {
        vals.iter().map(|v| v.map(String::from)).collect()
    }

    #[test]
    fn a_chunk_without_record_ranges_is_scanned() {
        let data = b"<feed><record id=\"1\"><name>A</name></record>\n<!-- <record> -->\n<record id=\"2\"/></feed>";
        let mut dec = decoder("record", &["@id", "name"]);
        let framed = decode_all(&mut dec, data).unwrap();
        let pre = dec.preamble(data).unwrap();
        let mut chunks: Vec<Chunk> = dec
            .frame(data, &pre, usize::MAX)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].records.len(),
            2,
            "framing keeps the record ranges"
        );
        chunks[0].records.clear();
        let mut scanned = Vec::new();
        dec.decode(data, &chunks[0], &mut |d| {
            scanned.push(crate::codecs::check::own(d))
        });
        assert_eq!(scanned, framed);
    }

    #[test]
    fn values_from_elements_and_attributes() {
        let data = br#"<?xml version="1.0" encoding="utf-8"?>
<!-- a comment with <record> -->
<!DOCTYPE feed SYSTEM "feed.dtd">
<feed xmlns:v="urn:v">
  <v:record id="7" note='a > b'>
    <name>
      Ann &amp; &#66;ob <![CDATA[<i>&amp;</i>]]> &#32;
    </name>
    <address kind="home"><city>Bern</city></address>
    <address kind="work"><city>Basel</city><zip/></address>
    <empty/>
  </v:record>
  <group><record><address><zip>3000</zip></address><name> </name></record></group>
</feed>
<!-- trailer --> <?done?>
"#;
        let mut dec = decoder(
            "record",
            &[
                "@id",
                "@note",
                "name",
                "address/city",
                "address/@kind",
                "address/zip",
                "empty",
                "nothing",
                "@nothing",
            ],
        );
        let out = assert_framing_invariant(&mut dec, data);
        assert_eq!(
            values(&out),
            vec![
                opt(&[
                    Some("7"),
                    Some("a > b"),
                    Some("Ann & Bob <i>&amp;</i>  "),
                    Some("Bern"),
                    Some("home"),
                    Some(""),
                    Some(""),
                    None,
                    None
                ]),
                opt(&[
                    None,
                    None,
                    Some(""),
                    None,
                    None,
                    Some("3000"),
                    None,
                    None,
                    None
                ]),
            ]
        );
        assert_eq!(
            out.iter().map(Out::number_line).collect::<Vec<_>>(),
            vec![(1, 5), (2, 13)]
        );
    }

    #[test]
    fn values_are_borrowed_without_escapes() {
        let dec = decoder("r", &["a", "@b"]);
        let data = b"<root><r b='x'><a> plain </a></r></root>";
        let mut seen = Vec::new();
        let pre = dec.clone().preamble(data).expect("preamble");
        for chunk in dec.frame(data, &pre, 1) {
            dec.decode(data, &chunk.expect("chunk"), &mut |d| {
                if let Decoded::Record(r) = d {
                    seen = r
                        .values
                        .iter()
                        .map(|v| matches!(v, Some(Cow::Borrowed(_))))
                        .collect();
                }
            });
        }
        assert_eq!(seen, vec![true, true]);
    }

    /// A record inside a record is part of the outer one; CDATA and comments can hold
    /// anything, including the record end tag.
    #[test]
    fn framing_skips_cdata_comments_and_nested_records() {
        let data = b"<r>\n<rec><a><![CDATA[</rec><rec>]]></a><!-- </rec> --><rec><a>in</a></rec></rec>\n<x a=\"</rec>\"/><rec a='>'/><?p </rec>?>\n</r>";
        let out = assert_framing_invariant(&mut decoder("rec", &["a", "@a"]), data);
        assert_eq!(
            values(&out),
            vec![opt(&[Some("</rec><rec>"), None]), opt(&[None, Some(">")])]
        );
        assert_eq!(out[1].number_line(), (2, 3));
    }

    #[test]
    fn framing_finds_the_record_tags_among_their_name_written_elsewhere() {
        // The record element's name in other names, in text, in values, after prefixes, in
        // comments, CDATA and processing instructions, and `!` and `?` in text.
        let data = b"<r>\n<rec><recx>rec</recx><xrec/><a>rec: rec?! <rec</a></rec>\n\
            <p:rec id='rec'><a>two</a><!-- <rec> --><?pi </rec>?><b><![CDATA[</rec>]]></b></p:rec>\n\
            <rec k=\"</rec>\"><a>three<x:rec/></a></rec >\n\
            <rec><a:b:rec/><a>four</a></rec>\n\
            <rec><a>5</a><!--x:rec isn't --><![CDATA[ns:rec>]]><?x:rec ?></rec>\n\
            <rec><a>6</a></rec>\n\
            <g><!--x:rec --><rec>rec<a>7</a></rec></g>\n</r>";
        let out = assert_framing_invariant(&mut decoder("rec", &["a"]), data);
        let raw: Vec<&[u8]> = out.iter().map(Out::raw).collect();
        assert_eq!(
            raw,
            [
                &b"<rec><recx>rec</recx><xrec/><a>rec: rec?! <rec</a></rec>"[..],
                b"<p:rec id='rec'><a>two</a><!-- <rec> --><?pi </rec>?><b><![CDATA[</rec>]]></b></p:rec>",
                b"<rec k=\"</rec>\"><a>three<x:rec/></a></rec >",
                b"<rec><a:b:rec/><a>four</a></rec>",
                b"<rec><a>5</a><!--x:rec isn't --><![CDATA[ns:rec>]]><?x:rec ?></rec>",
                b"<rec><a>6</a></rec>",
                b"<rec>rec<a>7</a></rec>",
            ]
        );
        assert_eq!(out[0].bad().0, "xml", "`<rec` in text");
        assert_eq!(out[1].values(), &opt(&[Some("two")])[..]);
        assert_eq!(out[2].bad().0, "xml", "`<` in a value");
        assert_eq!(out[3].values(), &opt(&[Some("four")])[..]);
        assert_eq!(out[4].values(), &opt(&[Some("5")])[..]);
        assert_eq!(out[5].values(), &opt(&[Some("6")])[..]);
        assert_eq!(out[6].values(), &opt(&[Some("7")])[..]);
    }

    #[test]
    fn malformed_records_are_rejected_alone() {
        let data = b"<r>\n<rec><a></rec>\n<rec><a>&bogus;</a></rec>\n<rec b='1' b='2'/>\n<rec><a>x\0</a></rec>\n<rec><a>&#1;</a></rec>\n<rec><a>\xFF</a></rec>\n<rec><a>ok</a></rec>\n<rec><a>open</a>\n</r>\n";
        let out = assert_framing_invariant(&mut decoder("rec", &["a"]), data);
        let bad: Vec<_> = out
            .iter()
            .map(|o| match o {
                Out::Bad { rule, .. } => *rule,
                Out::Rec { .. } => "ok",
            })
            .collect();
        assert_eq!(
            bad,
            vec!["xml", "xml", "xml", "xml", "xml", "utf8", "ok", "xml"]
        );
        // Each reason names the record's line in the file and the column in that line.
        let reasons: Vec<_> = out
            .iter()
            .filter(|o| matches!(o, Out::Bad { .. }))
            .map(|o| o.bad().1)
            .collect();
        assert_eq!(
            reasons,
            vec![
                "end tag `</rec>` does not match start tag `<a>` at line 2 column 9",
                "unrecognized entity `&bogus;` (only &amp; &lt; &gt; &quot; &apos; and character references are defined) at line 3 column 9",
                "duplicated attribute at line 4 column 12",
                "character U+0000 is not allowed in XML at line 5 column 10",
                "character reference to U+0001, which XML does not allow at line 6 column 9",
                "invalid UTF-8 at line 7 column 9",
                "the record element is not closed before the next record or the root end tag at line 10 column 1",
            ]
        );
        assert_eq!(out[7].number_line(), (8, 9));
    }

    /// A misspelt end tag rejects its record alone: the records after it are read, not
    /// swallowed into its reject; a record nested in one that is closed stays part of it.
    #[test]
    fn a_record_left_open_ends_at_the_next_record() {
        let data = b"<r>\n<rec a='1'></rec>\n<rec a='2'></recc>\n<rec a='3'></rec>\n<rec a='4'/>\n<rec a='5'>\n<rec a='6'><x><rec a='7'/></x></rec>\n<w><rec a='8'><rec a='9'></rec></rec></w>\n<rec a='10'>\n</r>\n";
        let out = assert_framing_invariant(&mut decoder("rec", &["@a"]), data);
        let got: Vec<_> = out
            .iter()
            .map(|o| match o {
                Out::Bad { reason, .. } => format!("bad: {reason}"),
                Out::Rec { values, .. } => values[0].clone().unwrap_or_default(),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "1",
                "bad: end tag `</recc>` does not match start tag `<rec>` at line 3 column 12",
                "3",
                "4",
                "bad: the record element is not closed before the next record or the root end tag at line 7 column 1",
                "6",
                "8",
                "bad: the record element is not closed before the next record or the root end tag at line 10 column 1",
            ]
        );
        assert_eq!(out[2].number_line(), (3, 4));
    }

    /// Records left open one after the other are each rejected alone, the body scanned at most
    /// twice for all of them (not once to its end for each of the 20,000).
    #[test]
    fn many_records_left_open_are_framed_in_one_pass() {
        let n = 20_000;
        let mut data = b"<r>\n".to_vec();
        for i in 0..n {
            data.extend_from_slice(
                format!("<rec a='{i}'><x><rec a='in'/></x></recc>\n").as_bytes(),
            );
        }
        data.extend_from_slice(b"<rec a='last'></rec>\n</r>\n");
        let out = decode_all(&mut decoder("rec", &["@a"]), &data).unwrap();
        // Each open record ends at the record inside it, which is read as one of its own.
        assert_eq!(out.len(), 2 * n + 1);
        assert!(
            out.iter()
                .step_by(2)
                .take(n)
                .all(|o| matches!(o, Out::Bad { .. }))
        );
        assert!(
            out.iter()
                .skip(1)
                .step_by(2)
                .all(|o| o.values()[0].as_deref() == Some("in"))
        );
        assert_eq!(out[2 * n].values()[0].as_deref(), Some("last"));
    }

    /// A file without a single record element fails, unless its root is empty: another
    /// vendor's file, a misspelt record name or a file that is one record are not days
    /// without records.
    #[test]
    fn a_file_of_elements_but_no_record_fails() {
        let fail = |data: &[u8]| decode_all(&mut decoder("rec", &["@a"]), data).unwrap_err();
        let e = fail(b"<r>\n<Rec a='1'/>\n<recs a='2'/>\n</r>\n");
        assert_eq!(e.line, 2);
        assert_eq!(
            e.reason,
            "no `<rec>` record element in the root element `<r>`, which holds `<Rec>` (the name differs in letter case: is `[vendor.input] record` right?)"
        );
        let e = fail(b"<r>\n<h/>\n<order><a/><a/></order>\n<order><a/></order>\n</r>\n");
        assert_eq!(e.line, 3);
        assert_eq!(
            e.reason,
            "no `<rec>` record element in the root element `<r>`, whose elements are `<order>` (is `[vendor.input] record` right?)"
        );
        let e = fail(b"<?xml version='1.0'?>\n<p:rec a='1'><b/></p:rec>\n");
        assert!(
            e.reason
                .starts_with("the root element is the record element `<rec>`"),
            "{}",
            e.reason
        );
        for empty in [
            &b"<r/>"[..],
            b"<r>\n  <!-- none today -->\n</r>\n",
            b"<r></r>",
            b"<r><header date='2026-11-29'><n/><n/></header><trailer count='0'/></r>",
        ] {
            assert_eq!(
                decode_all(&mut decoder("rec", &["@a"]), empty).unwrap(),
                vec![]
            );
        }
        // Records nested in other elements, and a root named as the records it holds, read.
        let out = decode_all(
            &mut decoder("rec", &["@a"]),
            b"<rec><g><rec a='1'/></g></rec>",
        )
        .unwrap();
        assert_eq!(out.len(), 1);
    }

    /// Issue 23: a processing instruction after the root whose data held `<?` failed the file
    /// as truncated ("not closed: truncated file?"): the root end was found by searching
    /// backwards for `<?`, which landed inside the instruction.
    #[test]
    fn pi_holding_pi_start_after_the_root_is_not_a_truncated_file() {
        let mut dec = decoder("txn", &["@id", "name"]);
        let body = "<r><txn id=\"1\"><name>a</name></txn></r>";
        for tail in [
            "\n<?pi a<?b?>\n",
            "<?pi a<?b?><!-- <? -->",
            "<!-- </r> -->\n<?p </r> ?>",
            " <?p <!-- ?> <!-- <?x --> ",
            "",
        ] {
            let data = format!("{body}{tail}");
            let out = assert_framing_invariant(&mut dec, data.as_bytes());
            assert_eq!(values(&out), vec![opt(&[Some("1"), Some("a")])], "{tail:?}");
        }
        // Still a truncated file when no root end tag is followed by only those.
        for data in [
            "<r><txn id=\"1\"/>\n<?pi a<?b?>",
            "<r><txn/></r>x",
            "<r><txn/><!-- </r> -->",
            "<r><txn/></r><?pi",
            "<r><txn/></r><!-- x",
            "<r><txn/></rx>",
        ] {
            let e = decode_all(&mut dec, data.as_bytes()).expect_err("truncated");
            assert!(e.reason.contains("not closed: truncated"), "{data}: {e}");
        }
    }

    /// Issue 23: line ends were read as written (`a\r\nb` gave "a\r\nb"), where XML 1.0
    /// section 2.11 reads CR LF and a lone CR as LF before anything else, in text and CDATA
    /// alike. A CR written as `&#13;` stays a CR.
    #[test]
    fn crlf_and_lone_cr_read_as_lf() {
        let mut dec = decoder("txn", &["name", "note"]);
        let data = b"<r>\r\n<txn><name>a\r\nb\rc</name></txn>\r\n<txn><name>\r\n  <![CDATA[d\r\ne\r]]>\r\n f&#13;&#10;g\r</name><note>x\r\r\ny<!-- by quick-xml --></note></txn>\r\n<txn><name>\r\n</name><note>&#13;\r\n</note></txn>\r\n</r>\r\n";
        let out = assert_framing_invariant(&mut dec, data);
        assert_eq!(
            values(&out),
            vec![
                opt(&[Some("a\nb\nc"), None]),
                opt(&[Some("d\ne\n\n f\r\ng"), Some("x\n\ny")]),
                opt(&[Some(""), Some("\r")]),
            ]
        );
        assert_eq!(
            out.iter().map(Out::number_line).collect::<Vec<_>>(),
            vec![(1, 2), (2, 4), (3, 9)]
        );
    }

    /// A stray `&` up to the next `;` is vendor text, not an entity name: the reason does not
    /// quote it (it may be what the output masks); a short name is shown.
    #[test]
    fn reasons_do_not_quote_vendor_text_as_an_entity() {
        let data = b"<r>\n<txn><e>a&bob@example.com;</e></txn>\n<txn><e>&nbsp;</e></txn>\n</r>";
        let out = assert_framing_invariant(&mut decoder("txn", &["e"]), data);
        assert!(!out[0].bad().1.contains("bob"), "{}", out[0].bad().1);
        assert!(out[1].bad().1.contains("`&nbsp;`"), "{}", out[1].bad().1);
    }

    /// A second element or attribute on a field's path marks the record `repeated`, through
    /// both readers; an element nested in the one being read does not.
    #[test]
    fn repeated_path_elements_are_reported() {
        let data = b"<r>\n<txn><card>1</card><card>2</card></txn>\n<txn><!-- q --><card>1</card><card/></txn>\n<txn><a t='1'/><a t='2'/></txn>\n<txn><card><card>1</card></card><a t='1'/><b t='2'/></txn>\n</r>";
        let out = assert_framing_invariant(&mut decoder("txn", &["card", "a/@t"]), data);
        let repeated: Vec<bool> = out
            .iter()
            .map(|o| matches!(o, Out::Rec { repeated: true, .. }))
            .collect();
        assert_eq!(repeated, vec![true, true, true, false]);
    }

    /// Columns count from the start of the file's line, also for a record that does not start
    /// it (indented, or several records on one line).
    #[test]
    fn reject_columns_count_from_the_line_start() {
        let data =
            b"<r>\n  <txn a=\"1\" a=\"2\"/><txn>&#1;</txn>\n   <txn>\n  <b>&bad;</b></txn>\n</r>";
        let out = assert_framing_invariant(&mut decoder("txn", &["b"]), data);
        let reasons: Vec<_> = out
            .iter()
            .map(|o| {
                o.bad()
                    .1
                    .rsplit(" at ")
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(
            reasons,
            vec!["line 2 column 14", "line 2 column 26", "line 4 column 6"]
        );
    }

    /// An empty CDATA section holds no text: the white space before or after it is still at
    /// the edge of the value and trimmed (expat, which the differential test compares with,
    /// reports nothing for it). The same through both readers.
    #[test]
    fn empty_cdata_does_not_stop_trimming() {
        let mut dec = decoder("txn", &["name"]);
        let data = b"<r>\n<txn><name><![CDATA[]]> 42 <![CDATA[]]></name></txn>\n<txn><!-- by quick-xml --><name><![CDATA[]]> 42 <![CDATA[]]></name></txn>\n<txn><name> <![CDATA[ x ]]> </name></txn>\n</r>";
        let out = assert_framing_invariant(&mut dec, data);
        assert_eq!(
            values(&out),
            vec![opt(&[Some("42")]), opt(&[Some("42")]), opt(&[Some(" x ")])]
        );
    }

    /// Issue 23: a literal tab or line end in an attribute value was kept (`kind="a\tb"` gave
    /// "a\tb"), where XML 1.0 section 3.3.3 reads each as a space (CR LF as one); one written
    /// as a character reference stays as it is. The same through both readers.
    #[test]
    fn attribute_tabs_and_line_ends_read_as_spaces() {
        let mut dec = decoder("txn", &["@id", "@kind", "address/@kind"]);
        let data = "<r>\n<txn id=' 1\t' kind=\"a\tb\nc\r\nd\re  f\"><address kind='&#9;x&#10;y&#13;&#13;&#10;z'/></txn>\n<txn id=' 1\t' kind=\"a\tb\nc\r\nd\re  f\"><!-- by quick-xml --><address kind='&#9;x&#10;y&#13;&#13;&#10;z'/></txn>\n</r>";
        let out = assert_framing_invariant(&mut dec, data.as_bytes());
        let expected = opt(&[Some(" 1 "), Some("a b c d e  f"), Some("\tx\ny\r\r\nz")]);
        assert_eq!(values(&out), vec![expected.clone(), expected]);
    }

    /// Issue 23: a namespace declaration was read as an attribute: `xmlns:id="urn:x"` gave
    /// `@id` = "urn:x" (the part after the colon was taken for the attribute's name).
    #[test]
    fn namespace_declarations_are_not_attributes() {
        let mut dec = decoder("txn", &["@id", "@xmlns", "address/@kind"]);
        let data = b"<r xmlns:id='urn:r'>\n<txn xmlns:id=\"urn:x\" id=\"1\" xmlns=\"urn:d\"><address xmlns:kind='urn:k'/></txn>\n<txn xmlns:id=\"urn:x\"><!-- by quick-xml --><address xmlns:kind='urn:k' kind='home'/></txn>\n<txn xmlns:x='urn:x' x:id='3'/>\n</r>";
        let out = assert_framing_invariant(&mut dec, data);
        assert_eq!(
            values(&out),
            vec![
                opt(&[Some("1"), None, None]),
                opt(&[None, None, Some("home")]),
                opt(&[Some("3"), None, None]),
            ]
        );
    }

    /// Element names are compared by their local names (after the first colon): a path
    /// element written `a:b:c` is `b:c`, which an element written `x:b:c` matches and one
    /// written `b:c` (local name `c`) does not, whether or not its name is compared as
    /// written first.
    #[test]
    fn path_elements_with_colons_match_by_local_name() {
        let mut dec = decoder("txn", &["a:b:c", "n:amount"]);
        let data = b"<r>\n<txn><x:b:c>1</x:b:c><amount>2</amount></txn>\n<txn><b:c>3</b:c><p:amount>4</p:amount></txn>\n<txn><c>5</c><!-- by quick-xml --></txn>\n</r>";
        let out = assert_framing_invariant(&mut dec, data);
        assert_eq!(
            values(&out),
            vec![
                opt(&[Some("1"), Some("2")]),
                opt(&[None, Some("4")]),
                opt(&[None, None]),
            ]
        );
    }

    /// Issue 23: records that are not well formed were accepted: `<` in an attribute value,
    /// `]]>` in text, an element name starting with a digit. Each is rejected alone now.
    #[test]
    fn malformed_markup_in_records_is_rejected() {
        let mut dec = decoder("txn", &["@kind", "name"]);
        let data = b"<r>\n<txn kind=\"a<b\"/>\n<txn><name>a]]>b</name></txn>\n<txn><1a/></txn>\n<txn><name>x</name><a$/></txn>\n<txn 1a='x'/>\n<txn kind='a&lt;b'><name>a]]&gt;b ]] > ]><![CDATA[]]]]><![CDATA[>]]></name></txn>\n</r>";
        let out = assert_framing_invariant(&mut dec, data);
        let rules: Vec<_> = out
            .iter()
            .map(|o| match o {
                Out::Bad { rule, .. } => *rule,
                Out::Rec { .. } => "ok",
            })
            .collect();
        assert_eq!(rules, vec!["xml", "xml", "xml", "xml", "xml", "ok"]);
        assert!(out[0].bad().1.contains("`<` in the value"), "{:?}", out[0]);
        assert!(out[1].bad().1.contains("`]]>` in text"), "{:?}", out[1]);
        assert!(
            out[2].bad().1.contains("`1a` is not an XML name"),
            "{:?}",
            out[2]
        );
        assert_eq!(
            values(&out[5..]),
            vec![opt(&[Some("a<b"), Some("a]]>b ]] > ]>]]>")])]
        );
        assert_eq!(out[4].number_line(), (5, 6));
    }

    const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<lolz><record><a>&lol9;</a></record></lolz>
"#;

    #[test]
    fn entities_are_never_expanded() {
        let e = decode_all(&mut decoder("record", &["a"]), BILLION_LAUGHS.as_bytes())
            .expect_err("refused");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("internal subset"), "{e}");
        let xxe = b"<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r><record><a>&x;</a></record></r>";
        let e = decode_all(&mut decoder("record", &["a"]), xxe).expect_err("refused");
        assert!(e.reason.contains("internal subset"), "{e}");
        // An external DTD is never fetched, so its entities are undefined.
        let ext = b"<!DOCTYPE r SYSTEM \"http://example.invalid/[x].dtd\"><r><record><a>&x;</a></record><record a='&y;'/></r>";
        let out = decode_all(&mut decoder("record", &["a"]), ext).expect("decodes");
        assert_eq!(
            out.iter().map(|o| o.bad().0).collect::<Vec<_>>(),
            vec!["xml", "xml"]
        );
    }

    #[test]
    fn inputs_that_are_not_xml_fail_the_file() {
        let cases: [(&[u8], &str); 10] = [
            (b"", "no root element"),
            (b"  \n ", "no root element"),
            (b"<?xml version='1.0'?><!-- only -->", "no root element"),
            (b"{\"record\": {\"a\": 1}}", "not XML: expected `<`"),
            (b"\x00\x9f\x92\x96<r/>", "not XML: expected `<`"),
            (b"\xFF\xFE<\0r\0/\0>\0", "UTF-16"),
            (
                b"<?xml version='1.0' encoding='ISO-8859-1'?><r/>",
                "encoding `ISO-8859-1`",
            ),
            (b"<r><record/>", "not closed: truncated"),
            (b"<r><record/></s>", "not closed: truncated"),
            (b"<r>\n<!DOCTYPE x><record/></r>", "markup declaration"),
        ];
        for (data, reason) in cases {
            let e = decode_all(&mut decoder("record", &["a"]), data).expect_err("not XML");
            assert!(
                e.reason.contains(reason),
                "{:?}: {e}",
                String::from_utf8_lossy(data)
            );
        }
        // An empty root is a file without records.
        assert_eq!(
            decode_all(&mut decoder("record", &["a"]), b"\xEF\xBB\xBF<r/>\n").expect("empty"),
            vec![]
        );
        assert_eq!(
            decode_all(&mut decoder("record", &["a"]), b"<r>\n</r>").expect("empty"),
            vec![]
        );
    }

    #[test]
    fn encoder_writes_well_formed_xml() {
        let opts = XmlWriteOptions {
            root: "feed".into(),
            record: "item".into(),
        };
        let enc = XmlEncoder::new(
            opts.clone(),
            vec![
                ("id".into(), true),
                ("name".into(), false),
                ("note".into(), false),
            ],
        )
        .expect("valid");
        let out = encode_all(
            &enc,
            &[vec![Some("a\"<'\n".into()), Some(" x&y ".into()), None]],
        );
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed>\n<item id=\"a&quot;&lt;&apos;&#10;\"><name>&#32;x&amp;y&#32;</name></item>\n</feed>\n"
        );
        let mut out = b"keep".to_vec();
        let e = enc
            .record(&[Some("1"), Some("bell\u{7}"), None], &mut out)
            .expect_err("not XML text");
        assert_eq!(
            e,
            EncodeError {
                field: "name".into(),
                reason: "character U+0007 cannot be written in XML".into()
            }
        );
        assert_eq!(out, b"keep");
        for bad in ["1a", "a b", "ns:a", "", "a>"] {
            assert!(
                XmlEncoder::new(opts.clone(), vec![(bad.into(), false)]).is_err(),
                "{bad}"
            );
        }
        assert!(
            XmlEncoder::new(
                XmlWriteOptions {
                    root: "x y".into(),
                    record: "r".into()
                },
                vec![]
            )
            .is_err()
        );
        assert!(
            XmlEncoder::new(opts.clone(), vec![("a".into(), true), ("a".into(), false)]).is_err()
        );
        assert!(XmlEncoder::new(opts, vec![("é-x.1_".into(), true)]).is_ok());
    }

    /// A well-formed piece of content where the name `rec` turns up in every place it may.
    fn xml_node() -> impl Strategy<Value = String> {
        let text = prop::sample::select(vec![
            "rec", "p:rec", "x:rec>", "?! rec", "&amp;rec", " ", "\n", "&lt;/a",
        ]);
        let markup = prop::sample::select(vec![
            "<!--x:rec isn't -->",
            "<!-- <rec> </rec> -->",
            "<![CDATA[ns:rec>]]>",
            "<![CDATA[</rec><rec>]]>",
            "<?x:rec ?>",
            "<?pi </rec> p:rec?>",
        ]);
        let leaf = prop_oneof![text.prop_map(String::from), markup.prop_map(String::from)];
        let name = prop::sample::select(vec!["rec", "p:rec", "a", "p:a", "recx", "xrec"]);
        let attrs = prop::sample::select(vec![
            "",
            " k=\"rec\"",
            " k='>'",
            " k=\"p:rec x\" j='a\"b'",
            " p:rec=\"1\"",
        ]);
        leaf.prop_recursive(4, 24, 4, move |inner| {
            (
                name.clone(),
                attrs.clone(),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(n, a, kids)| match kids.is_empty() {
                    true => format!("<{n}{a}/>"),
                    false => format!("<{n}{a}>{}</{n}>", kids.concat()),
                })
        })
    }

    fn xml_value() -> impl Strategy<Value = String> {
        value_strategy().prop_map(|v| v.chars().filter(|&c| is_xml_char(c)).collect())
    }

    /// Every event of a whole document, to check that output is well formed.
    fn well_formed(data: &[u8]) {
        let mut reader = Reader::from_reader(data);
        let mut depth = 0;
        loop {
            match reader.read_event() {
                Ok(Event::Eof) => break,
                Ok(Event::Start(_)) => depth += 1,
                Ok(Event::End(_)) => depth -= 1,
                Ok(_) => {}
                Err(e) => panic!("not well formed: {e}: {}", String::from_utf8_lossy(data)),
            }
        }
        assert_eq!(depth, 0);
    }

    /// Writes a value as CDATA, splitting `]]>` across two sections, and a CR as a character
    /// reference between two (a CR inside CDATA reads as a line end, LF).
    fn cdata(v: &str) -> String {
        format!(
            "<![CDATA[{}]]>",
            v.replace("]]>", "]]]]><![CDATA[>")
                .replace('\r', "]]>&#13;<![CDATA[")
        )
    }

    fn text(v: &str) -> String {
        let mut out = Vec::new();
        escape(&mut out, v, false).expect("XML characters");
        String::from_utf8(out).expect("UTF-8")
    }

    fn attr(v: &str) -> String {
        let mut out = Vec::new();
        escape(&mut out, v, true).expect("XML characters");
        String::from_utf8(out).expect("UTF-8")
    }

    /// A document written by hand in varied styles: CDATA holding `</record>`, comments and
    /// processing instructions holding `</record>`, attributes holding `>`, wrappers,
    /// prefixes, namespace declarations named like fields, CR LF or LF line breaks between
    /// everything, a processing instruction after the root holding `<?` and `</root>`.
    fn styled_document(records: &[(Vec<Option<String>>, u8)]) -> Vec<u8> {
        let mut doc = String::from(
            "<?xml version=\"1.0\"?>\n<!-- </record> -->\n<x:root xmlns:x=\"urn:x\">\n",
        );
        for (vals, style) in records {
            let nl = if style & 16 == 16 { "\r\n" } else { "\n" };
            let wrap = style & 1 == 1;
            if wrap {
                doc.push_str(&format!("<group note=\"a>b\">{nl}"));
            }
            doc.push_str(if style & 2 == 2 {
                "<x:record xmlns:id='urn:id'"
            } else {
                "<record"
            });
            if let Some(id) = &vals[0] {
                doc.push_str(&format!(" id=\"{}\"", attr(id)));
            }
            doc.push_str(&format!(" gt='>'>{nl}<!-- </record> -->"));
            if let Some(name) = &vals[1] {
                let body = match (style >> 2) & 3 {
                    0 => text(name),
                    1 => cdata(name),
                    _ => {
                        let half = name
                            .char_indices()
                            .nth(name.chars().count() / 2)
                            .map_or(name.len(), |(i, _)| i);
                        format!(
                            "  {nl}{}<!--c-->{}<?pi </record>?>{nl} ",
                            text(&name[..half]),
                            cdata(&name[half..])
                        )
                    }
                };
                doc.push_str(&format!("<name>{body}</name>"));
            }
            doc.push_str(&format!("<?pi </record> ?>{nl}<address xmlns:kind='urn:k'"));
            if let Some(kind) = &vals[3] {
                doc.push_str(&format!(" kind='{}'", attr(kind)));
            }
            doc.push('>');
            if let Some(city) = &vals[2] {
                doc.push_str(&format!("{nl} <city>{}</city>", cdata(city)));
            }
            doc.push_str(&format!("</address>{nl}"));
            doc.push_str(if style & 2 == 2 {
                "</x:record>"
            } else {
                "</record>"
            });
            doc.push_str(nl);
            if wrap {
                doc.push_str(&format!("</group>{nl}"));
            }
        }
        doc.push_str("</x:root>\r\n<!-- end -->\n<?pi a<?b </x:root> ?>\n");
        doc.into_bytes()
    }

    /// Reads `text` with the plain reader and, when it accepts, checks that quick-xml reads
    /// the same values; returns whether the plain reader accepted.
    fn plain_agrees(dec: &XmlDecoder, text: &str) -> bool {
        let mut plain = Scratch::default();
        plain.reset(dec.fields, text);
        if !dec.parse_plain(text, &mut plain) {
            return false;
        }
        let mut full = Scratch::default();
        full.reset(dec.fields, text);
        assert_eq!(dec.parse_full(text, &mut full), Ok(()), "{text}");
        assert_eq!(plain.values, full.values, "{text}");
        assert_eq!(plain.repeated, full.repeated, "{text}");
        true
    }

    const PLAIN_PATHS: [&str; 6] = ["@id", "@b", "name", "a/b", "a/@x", "a"];

    #[test]
    fn usual_records_take_the_plain_reader() {
        let dec = decoder("record", &PLAIN_PATHS);
        for rec in [
            "<record id=\"30000001\"><account>PD69071620</account><name>\u{141}ukasz Okafor</name><notes>Refund &quot;partial&quot;</notes></record>",
            "<record id='7' b=\"2\">\n  <name> Ann &amp; Bob </name>\n  <a x='&lt;'><b>deep</b><c/></a>\n</record>",
            "<x:record xmlns:x=\"urn:x\" id=\"1\"><x:name>n</x:name><a><b/></a></x:record>",
            "<record/>",
            // Elements of text alone, read whole (`text_element`): one on a path twice, one on
            // no path, an empty one, one with line ends to normalise, one inside an element
            // whose own text is being read.
            "<record><name>first</name><other>o</other><name>second</name></record>",
            "<record><name></name><a><b> x\r\n y\r</b></a></record>",
            "<record><a>a<b>b</b>c</a><name>\r</name></record>",
        ] {
            assert!(plain_agrees(&dec, rec), "{rec}");
        }
        // Left to quick-xml, which reads them or says what is wrong.
        for rec in [
            "<record><name><![CDATA[x]]></name></record>",
            "<record><!-- c --><name>x</name></record>",
            "<record id = \"1\"/>",
            "<record id=\"1\" id=\"2\"/>",
            "<record><name>x</name ></record>",
            "<record><name>&bogus;</name></record>",
            "<record><name>x</a></record>",
            "<record><name>x</name>",
            "<record/>tail",
        ] {
            assert!(!plain_agrees(&dec, rec), "{rec}");
        }
    }

    /// Character data written with literal tabs and line ends (CR LF, lone CR), references to
    /// them, and the `]]` and `>` that make `]]>`.
    fn spaced_value() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", " ", "\t", "\n", "\r", "\r\n", "&#9;", "&#10;", "&#13;", "&amp;", "]]", ">",
            ]),
            0..6,
        )
        .prop_map(|parts| parts.concat())
    }

    /// A record element written with the usual shapes and some unusual ones.
    fn record_text() -> impl Strategy<Value = String> {
        let name = || prop::sample::select(vec!["a", "b", "c", "x:a", "name"]);
        let attrs = prop::collection::vec(
            (
                prop::sample::select(vec!["id", "b", "x", "x:id", "xmlns:id", "xmlns", "xmlns:x"]),
                prop_oneof![xml_value().prop_map(|v| attr(&v)), spaced_value()],
                any::<bool>(),
            ),
            0..3,
        )
        .prop_map(|list| {
            list.into_iter()
                .map(|(k, v, single)| {
                    if single {
                        format!(" {k}='{}'", v.replace('\'', "&apos;"))
                    } else {
                        format!(" {k}=\"{v}\"")
                    }
                })
                .collect::<String>()
        })
        .boxed();
        let content = prop_oneof![
            xml_value().prop_map(|v| text(&v)),
            (xml_value(), xml_value()).prop_map(|(v, w)| format!(" \n{}{}", text(&v), cdata(&w))),
            spaced_value(),
            (spaced_value(), spaced_value()).prop_map(|(v, w)| format!("{v}<![CDATA[{w}]]>")),
            Just(String::new()),
        ];
        let child =
            (name(), attrs.clone(), content, any::<u8>()).prop_map(move |(n, a, c, style)| {
                match style % 4 {
                    0 => format!("<{n}{a}/>"),
                    1 => format!("<{n}{a}><b{a}>{c}</b></{n}>"),
                    _ => format!("<{n}{a}>{c}</{n}>"),
                }
            });
        (
            attrs,
            prop::collection::vec((child, prop::sample::select(vec!["", "\n  ", " "])), 0..5),
        )
            .prop_map(|(a, children)| {
                let body: String = children
                    .into_iter()
                    .map(|(c, sep)| format!("{sep}{c}"))
                    .collect();
                format!("<record{a}>{body}</record>")
            })
    }

    proptest! {
        /// Whatever the plain reader accepts, quick-xml reads to the same values.
        #[test]
        fn plain_reader_agrees_with_quick_xml(rec in record_text()) {
            plain_agrees(&decoder("record", &PLAIN_PATHS), &rec);
        }

        /// The same for markup soup inside a record.
        #[test]
        fn plain_reader_agrees_on_soup(parts in prop::collection::vec(prop::sample::select(vec![
            "<a>", "</a>", "<b x='1'>", "<b x=\"&amp;\" x='2'>", "</b>", "<a/>", "<x:a>", "</x:a>",
            ">", "/>", " id=\"1\"", " b='&lt;'", " id = '1'", "text", " ", "\n", "&amp;", "&#32;",
            "&bogus;", "<![CDATA[c]]>", "<!--c-->", "<?p?>", "</record>", "<record>", "<", "'",
            "\"", "=", "\u{e9}", "\r", "\r\n", "\t", " xmlns:id='u'", " xmlns=\"u\"", "]]>", "]]",
            "<1a>", "</1a>", " b='a<b'", " b='a\tb\r\nc'", "&#13;", "&#9;",
        ]), 0..24)) {
            let rec = format!("<record{}", parts.concat());
            plain_agrees(&decoder("record", &PLAIN_PATHS), &rec);
        }
    }

    #[test]
    fn usual_references_are_checked_where_they_are_written() {
        for t in [
            "a &amp; b",
            "&lt;&gt;&apos;&quot;",
            "caf&#233; &#xE9;&#x1F980;",
            "no refs",
        ] {
            assert!(references_are_plain(t.as_bytes()), "{t}");
            assert!(check_text(t).is_ok(), "{t}");
        }
        for t in [
            "&#0;", "&#1;", "&nbsp;", "&#X41;", "&#+65;", "&#x;", "&amp", "&#xFFFE;",
        ] {
            assert!(!references_are_plain(t.as_bytes()), "{t}");
        }
    }

    proptest! {
        /// A text whose references are taken as written is one that unescaping takes too.
        #[test]
        fn plain_references_unescape(t in "[&#x;0-9a-fA-FXltgmpquos+ ]{0,24}") {
            if references_are_plain(t.as_bytes()) {
                prop_assert!(unescape_at(&t).is_ok(), "{}", t);
            }
        }
    }

    proptest! {
        /// Write then read gives the values back exactly, whole or in chunks.
        #[test]
        fn roundtrip(rows in prop::collection::vec(prop::collection::vec(prop::option::of(xml_value()), 4), 0..6)) {
            let opts = XmlWriteOptions { root: "feed".into(), record: "item".into() };
            let fields = vec![("id".into(), true), ("name".into(), false), ("note".into(), false), ("kind".into(), true)];
            let enc = XmlEncoder::new(opts, fields).expect("valid");
            let data = encode_all(&enc, &rows);
            well_formed(&data);
            let out = assert_framing_invariant(&mut decoder("item", &["@id", "name", "note", "@kind"]), &data);
            prop_assert_eq!(values(&out), rows);
        }

        /// Hand-written documents in every style read the same, whole or in chunks.
        #[test]
        fn styled_documents(records in prop::collection::vec((prop::collection::vec(prop::option::of(xml_value()), 4), 0u8..32), 0..5)) {
            let data = styled_document(&records);
            well_formed(&data);
            let out = assert_framing_invariant(&mut decoder("record", &["@id", "name", "address/city", "address/@kind"]), &data);
            let expected: Vec<Vec<Option<String>>> = records.iter().map(|(v, _)| v.clone()).collect();
            prop_assert_eq!(values(&out), expected);
        }

        /// In well-formed documents where the record element's name is written everywhere it
        /// may be (other names, text, attribute values, comments, CDATA sections, processing
        /// instructions, with and without a prefix), framing finds the records quick-xml finds:
        /// the outermost elements whose local name is the record's.
        #[test]
        fn framing_finds_what_quick_xml_finds(nodes in prop::collection::vec(xml_node(), 0..6)) {
            let data = format!("<root>{}</root>", nodes.concat()).into_bytes();
            well_formed(&data);
            let mut want = Vec::new();
            let mut reader = Reader::from_reader(&data[..]);
            let (mut depth, mut open) = (0usize, None);
            loop {
                let before = reader.buffer_position() as usize;
                let event = reader.read_event().expect("well formed");
                let after = reader.buffer_position() as usize;
                match event {
                    Event::Start(e) => {
                        depth += 1;
                        if open.is_none() && e.local_name().as_ref() == b"rec" {
                            open = Some((before, depth));
                        }
                    }
                    Event::Empty(e) if open.is_none() && e.local_name().as_ref() == b"rec" => {
                        want.push(data[before..after].to_vec());
                    }
                    Event::End(_) => {
                        if let Some((start, _)) = open.filter(|&(_, d)| d == depth) {
                            want.push(data[start..after].to_vec());
                            open = None;
                        }
                        depth -= 1;
                    }
                    Event::Eof => break,
                    _ => {}
                }
            }
            // A document without a record is refused whole (a wrong record element).
            let Ok(out) = decode_all(&mut decoder("rec", &["a"]), &data) else {
                prop_assert!(want.is_empty());
                return Ok(());
            };
            let got: Vec<&[u8]> = out.iter().map(Out::raw).collect();
            prop_assert_eq!(got, want.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }

        /// Markup soup: never a panic, and chunking never changes what is read.
        #[test]
        fn any_markup(parts in prop::collection::vec(prop::sample::select(vec![
            "<r>", "</r>", "<rec>", "</rec>", "<rec/>", "<a>", "</a>", "<!--", "-->", "<![CDATA[", "]]>",
            "<?", "?>", "'", "\"", ">", "<", "&amp;", "&x;", "\n", "x", "\u{FF}", "<!DOCTYPE r>",
            "rec", "p:", "/", " ", "</",
        ]), 0..30)) {
            let data = format!("<r>{}</r>", parts.concat()).into_bytes();
            let mut dec = decoder("rec", &["a"]);
            crate::codecs::testkit::assert_same_until_it_fails(&mut dec, &data);
        }
    }
}
