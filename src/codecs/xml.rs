//! XML: finding the record elements, reading field values out of each, and writing records.
//!
//! Owns the XML syntax. It does not know what the values mean (see `pipeline`).
//!
//! Reading rules:
//! - The input must be UTF-8 (a byte order mark is skipped; an XML declaration naming another
//!   encoding is a [`FileError`]).
//! - The **body** is everything between the root element's start tag and its end tag. The
//!   preamble finds the root start tag after the prolog (XML declaration, comments,
//!   processing instructions, a DOCTYPE) and the root end tag by reading backwards from the
//!   end of the input past trailing whitespace, comments and processing instructions. An
//!   input that does not start with markup (JSON, binary), has no element, or whose last tag
//!   is not the root's end tag (a truncated file) is a [`FileError`].
//! - A DOCTYPE with an internal subset (`[...]`, where entities are declared) is refused
//!   with a [`FileError`]; an external DTD is never fetched. Entities are therefore never
//!   expanded: only the five predefined ones and character references are, and any other
//!   `&name;` rejects the record (rule `xml`). No billion laughs, no external entities.
//! - **Records** are the elements whose local name (prefix ignored) is the record element,
//!   at any depth below the root and not inside another record. Framing is a quick scan from
//!   `<` to `<` that skips comments, CDATA sections (which may hold `</record>`) and
//!   processing instructions, and finds the `>` of a tag past quoted attribute values (which
//!   may hold `>`). Elements around records (groups, wrappers) are otherwise ignored.
//! - Each record is then parsed in full: mismatched tags, malformed attributes, undefined
//!   entities, forbidden characters (NUL and other C0 controls), a DOCTYPE or a record not
//!   closed before the root end tag reject it (rule `xml`, with the reason); invalid UTF-8 is
//!   rule `utf8`. A record's line is the line of its start tag. A record of the usual shape
//!   (elements, quoted attributes and text, nothing else) is read by a plain scan; any other,
//!   and any record the scan finds wrong, by quick-xml, which reads the same values from the
//!   records the scan accepts (a property test holds the two to that) and words the errors.
//! - **Values**: a child element path (local names) gives the text of the first element on
//!   that path, in document order: all text inside it, entities unescaped, CDATA taken
//!   literally, surrounding whitespace trimmed (whitespace written as a character reference,
//!   like `&#32;`, is kept). An empty element gives `Some("")`. An attribute (`@id` on the
//!   record, `address/@kind` on a child) gives its unescaped value, untrimmed, from the first
//!   element on the path that has it. Anything absent is `None`.
//!
//! Writing: the prolog, the root element, one record per line, values escaped so that they
//! read back exactly (including leading and trailing whitespace and CR). Names must be XML
//! names without a colon; characters that XML 1.0 cannot hold are an [`EncodeError`].

use std::borrow::Cow;
use std::ops::Range;

use memchr::{memchr, memchr2, memchr3, memmem, memrchr};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::{
    BadRecord, Chunk, Decoded, Decoder, EncodeError, Encoder, FileError, Locator, Preamble,
    RecordRef, RecordStart, bom_len, check_arity, chunks, clamp, count_lf, invalid_utf8, line_at,
};

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `s` without the XML white space (space, tab, LF, CR) at either end.
fn trim_spaces(s: &str) -> &str {
    trim_end_spaces(trim_start_spaces(s))
}

/// `s` without the XML white space (space, tab, LF, CR) it starts with.
fn trim_start_spaces(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| is_space(b)).count();
    // Only ASCII bytes were skipped: `n` is a character boundary.
    &s[n..]
}

/// `s` without the XML white space it ends with.
fn trim_end_spaces(s: &str) -> &str {
    let n = s.bytes().rev().take_while(|&b| is_space(b)).count();
    &s[..s.len() - n]
}

/// The name after the namespace prefix, as quick-xml takes it (after the first `:`).
fn local(name: &[u8]) -> &[u8] {
    match super::find_byte(b':', name) {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// What a `<` starts.
#[derive(Debug)]
enum Markup<'d> {
    Start {
        name: &'d [u8],
        empty: bool,
    },
    End {
        name: &'d [u8],
    },
    /// A comment, CDATA section or processing instruction.
    Other,
    /// `<!DOCTYPE` or another markup declaration.
    Declaration,
}

/// First offset in `from..end` holding a byte for which `stop` is true, skipping quoted
/// strings (attribute values, DOCTYPE literals).
fn find_unquoted(data: &[u8], from: usize, end: usize, stop: impl Fn(u8) -> bool) -> Option<usize> {
    let mut i = from;
    while i < end {
        let b = data[i];
        if b == b'"' || b == b'\'' {
            i += 1 + memchr(b, &data[i + 1..end])? + 1;
        } else if stop(b) {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// Offset of the `>` that closes the tag whose name starts at `from`.
fn tag_end(data: &[u8], from: usize, end: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let k = i + memchr3(b'>', b'"', b'\'', &data[i..end])?;
        if data[k] == b'>' {
            return Some(k);
        }
        i = k + 1 + memchr(data[k], &data[k + 1..end])? + 1;
    }
}

fn find(data: &[u8], from: usize, end: usize, needle: &[u8]) -> Option<usize> {
    memmem::find(&data[from..end], needle).map(|i| from + i)
}

/// Reads the markup at `p` (where `data[p] == b'<'`): what it is and the offset after it,
/// or `None` when it is not closed before `end`.
fn markup(data: &[u8], p: usize, end: usize) -> Option<(Markup<'_>, usize)> {
    let rest = &data[p..end];
    if rest.starts_with(b"<!--") {
        return find(data, p + 4, end, b"-->").map(|i| (Markup::Other, i + 3));
    }
    if rest.starts_with(b"<![CDATA[") {
        return find(data, p + 9, end, b"]]>").map(|i| (Markup::Other, i + 3));
    }
    if rest.starts_with(b"<?") {
        return find(data, p + 2, end, b"?>").map(|i| (Markup::Other, i + 2));
    }
    if rest.starts_with(b"<!") {
        return find_unquoted(data, p + 2, end, |b| b == b'>')
            .map(|gt| (Markup::Declaration, gt + 1));
    }
    if rest.starts_with(b"</") {
        let gt = p + 2 + memchr(b'>', &data[p + 2..end])?;
        let name = data[p + 2..gt].trim_ascii();
        return Some((Markup::End { name }, gt + 1));
    }
    let gt = tag_end(data, p + 1, end)?;
    let name_end = data[p + 1..gt]
        .iter()
        .position(|&b| is_space(b) || b == b'/')
        .map_or(gt, |i| p + 1 + i);
    let empty = gt > p + 1 && data[gt - 1] == b'/';
    Some((
        Markup::Start {
            name: &data[p + 1..name_end],
            empty,
        },
        gt + 1,
    ))
}

/// Finds record elements in a part of the body that starts outside any record.
struct Scanner<'d> {
    data: &'d [u8],
    pos: usize,
    end: usize,
    record: &'d [u8],
}

impl Scanner<'_> {
    /// The byte range of the next record element, `None` at the end; fails with the offset
    /// and reason of markup that cannot be skipped outside records.
    fn next_record(&mut self) -> Result<Option<Range<usize>>, (usize, &'static str)> {
        while let Some(i) = memchr(b'<', &self.data[self.pos..self.end]) {
            let p = self.pos + i;
            let (m, next) = markup(self.data, p, self.end)
                .ok_or((p, "markup is not closed before the root end tag"))?;
            self.pos = next;
            match m {
                Markup::Start { name, empty } if local(name) == self.record => {
                    let end = if empty { next } else { self.record_end() };
                    return Ok(Some(p..end));
                }
                Markup::Declaration => {
                    return Err((p, "markup declaration (DOCTYPE?) inside the root element"));
                }
                _ => {}
            }
        }
        self.pos = self.end;
        Ok(None)
    }

    /// For a start or end tag at `p` whose element name is not the record's: the offset just
    /// after its name. `None` for the record's own tags, other markup, and anything unusual.
    fn other_element(&self, p: usize) -> Option<usize> {
        let from = match self.data.get(p + 1)? {
            b'/' => p + 2,
            b'!' | b'?' => return None,
            _ => p + 1,
        };
        let rest = &self.data[from..self.end];
        let len = rest
            .iter()
            .position(|&b| is_space(b) || b == b'/' || b == b'>')?;
        let name = &rest[..len];
        (len > 0 && local(name) != self.record).then_some(from + len)
    }

    /// Offset after the end tag of the record whose start tag was just read; the end of the
    /// body when it is not closed (the record parser then says what is wrong).
    fn record_end(&mut self) -> usize {
        let mut depth = 1usize;
        while let Some(i) = memchr(b'<', &self.data[self.pos..self.end]) {
            // Most tags in a record are its fields' start and end tags: one whose name is not
            // the record's is passed over by its name (a `<` cannot appear in an attribute
            // value, so the next `<` starts the next markup either way).
            if let Some(next) = self.other_element(self.pos + i) {
                self.pos = next;
                continue;
            }
            let Some((m, next)) = markup(self.data, self.pos + i, self.end) else {
                break;
            };
            self.pos = next;
            match m {
                Markup::Start { name, empty: false } if local(name) == self.record => depth += 1,
                Markup::End { name } if local(name) == self.record => {
                    depth -= 1;
                    if depth == 0 {
                        return next;
                    }
                }
                _ => {}
            }
        }
        self.pos = self.end;
        self.end
    }
}

/// One element of the configured paths (node 0 is the record element itself): the child
/// elements that lead to fields, and the fields read here.
#[derive(Debug, Clone, Default)]
struct PathNode {
    /// `(local name, node)` of the children on some field's path.
    children: Vec<(Vec<u8>, usize)>,
    /// Fields that take this element's text.
    text: Vec<usize>,
    /// `(attribute local name, field)` of the fields that take one of its attributes.
    attributes: Vec<(Vec<u8>, usize)>,
}

/// A piece of an element's text, borrowed from the record.
#[derive(Debug, Clone, Copy)]
enum Piece<'d> {
    /// Character data as written (entities not yet unescaped).
    Text(&'d str),
    /// The content of a CDATA section.
    CData(&'d str),
}

/// Per-record working memory, kept across the records of a chunk.
#[derive(Debug, Default)]
struct Scratch<'d> {
    values: Vec<Option<Cow<'d, str>>>,
    /// For each field being read from an element's text: the depth of that element.
    capture: Vec<Option<usize>>,
    /// The fields being read, so that text and end tags touch only those (usually one).
    active: Vec<usize>,
    /// Each field's text so far, kept from the start of its capture.
    pieces: Vec<Vec<Piece<'d>>>,
    /// The path node (`None`: off every path) and name of each open element, record first.
    stack: Vec<(Option<usize>, &'d str)>,
    /// The attribute names of the start tag being read (duplicates are refused).
    keys: Vec<&'d [u8]>,
}

impl<'d> Scratch<'d> {
    fn reset(&mut self, fields: usize) {
        self.values.clear();
        self.values.resize(fields, None);
        self.capture.clear();
        self.capture.resize(fields, None);
        self.active.clear();
        if self.pieces.len() < fields {
            self.pieces.resize_with(fields, Vec::new);
        }
        self.stack.clear();
    }

    /// Starts reading field `f` from the text of the element open at `depth`.
    fn start(&mut self, f: usize, depth: usize) {
        self.capture[f] = Some(depth);
        self.pieces[f].clear();
        self.active.push(f);
    }

    /// Adds text to every field being read.
    fn push(&mut self, piece: Piece<'d>) {
        for &f in &self.active {
            self.pieces[f].push(piece);
        }
    }

    /// Sets the fields read from the element closing at `depth`.
    fn close(&mut self, depth: usize) -> Result<(), String> {
        let mut k = 0;
        while k < self.active.len() {
            let f = self.active[k];
            if self.capture[f] == Some(depth) {
                self.values[f] = Some(join(&self.pieces[f])?);
                self.capture[f] = None;
                self.active.swap_remove(k);
            } else {
                k += 1;
            }
        }
        Ok(())
    }
}

/// `part`, a slice of `whole` handed out by quick-xml, with `whole`'s lifetime.
fn within<'d>(whole: &'d str, part: &[u8]) -> Option<&'d str> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    whole.get(start..start.checked_add(part.len())?)
}

/// Unescapes predefined entities and character references; anything else is an error, as
/// is a reference to a character XML cannot hold.
fn unescape(s: &str) -> Result<Cow<'_, str>, String> {
    if !s.contains('&') {
        return Ok(Cow::Borrowed(s));
    }
    let v = quick_xml::escape::unescape(s).map_err(|e| e.to_string())?;
    if let Some(c) = forbidden_char(&v) {
        return Err(format!(
            "character reference to U+{:04X}, which XML does not allow",
            c as u32
        ));
    }
    Ok(v)
}

/// The first character of `text` that XML 1.0 does not allow, if any.
fn forbidden_char(text: &str) -> Option<char> {
    // Only C0 controls and U+FFFE/U+FFFF (encoded EF BF BE/BF) are excluded: scan bytes first.
    if super::may_hold_non_xml_char(text.as_bytes()) {
        text.chars().find(|&c| !is_xml_char(c))
    } else {
        None
    }
}

/// The XML 1.0 `Char` production (Rust strings already exclude surrogates).
fn is_xml_char(c: char) -> bool {
    !matches!(c, '\0'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// The trimmed, unescaped text of an element from its pieces.
fn join<'d>(pieces: &[Piece<'d>]) -> Result<Cow<'d, str>, String> {
    let keeps = |p: &Piece| match p {
        Piece::Text(t) => !trim_spaces(t).is_empty(),
        Piece::CData(_) => true,
    };
    let (Some(first), Some(last)) = (
        pieces.iter().position(keeps),
        pieces.iter().rposition(keeps),
    ) else {
        return Ok(Cow::Borrowed(""));
    };
    let part = |i: usize| -> Result<Cow<'d, str>, String> {
        match pieces[i] {
            Piece::CData(c) => Ok(Cow::Borrowed(c)),
            Piece::Text(mut t) => {
                if i == first {
                    t = trim_start_spaces(t);
                }
                if i == last {
                    t = trim_end_spaces(t);
                }
                unescape(t)
            }
        }
    };
    if first == last {
        return part(first);
    }
    let mut s = String::new();
    for i in first..=last {
        s.push_str(&part(i)?);
    }
    Ok(Cow::Owned(s))
}

/// Reads XML records.
#[derive(Debug, Clone)]
pub struct XmlDecoder {
    /// Local name of the record element.
    record: Vec<u8>,
    /// The configured paths; node 0 is the record element.
    nodes: Vec<PathNode>,
    fields: usize,
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
        })
    }

    /// Parses one record element; the reason (rule, text) when it cannot be read.
    fn parse<'d>(&self, raw: &'d [u8], s: &mut Scratch<'d>) -> Result<(), (&'static str, String)> {
        let text = super::utf8(raw).map_err(|e| ("utf8", invalid_utf8(&e, "record")))?;
        if let Some(c) = forbidden_char(text) {
            return Err((
                "xml",
                format!("character U+{:04X} is not allowed in XML", c as u32),
            ));
        }
        s.reset(self.fields);
        if self.parse_plain(text, s) {
            return Ok(());
        }
        s.reset(self.fields);
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
                let name_end = p + 2 + open.len();
                if b.get(p + 2..name_end) != Some(open.as_bytes()) || b.get(name_end) != Some(&b'>')
                {
                    return false;
                }
                if s.close(s.stack.len()).is_err() {
                    return false;
                }
                s.stack.pop();
                p = name_end + 1;
                if s.stack.is_empty() {
                    return p == n;
                }
            } else {
                let Some(name_end) = plain_name(b, p + 1) else {
                    return false;
                };
                let name = &text[p + 1..name_end];
                let node = self.child_named(s.stack.last().map(|&(node, _)| node), name.as_bytes());
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
                            let Ok(value) = unescape(&text[start..start + len]) else {
                                return false;
                            };
                            take_attribute(attributes, key, value, s);
                            i = start + len + 1;
                        }
                        _ => return false,
                    }
                };
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
            // Text up to the next tag.
            let Some(k) = memchr(b'<', &b[p..]) else {
                return false;
            };
            if k > 0 {
                let t = &text[p..p + k];
                if unescape(t).is_err() {
                    return false;
                }
                s.push(Piece::Text(t));
            }
            p += k;
        }
    }

    /// Reads a record with quick-xml: any well-formed element, and the reason when it is not.
    fn parse_full<'d>(
        &self,
        text: &'d str,
        s: &mut Scratch<'d>,
    ) -> Result<(), (&'static str, String)> {
        let xml = |reason: String| ("xml", reason);
        let mut reader = Reader::from_str(text);
        // End tags are matched below against `s.stack`, without quick-xml's name buffer.
        let config = reader.config_mut();
        config.check_comments = true;
        config.check_end_names = false;
        let mut done = false;
        loop {
            let event = reader.read_event().map_err(|e| {
                xml(format!(
                    "{e} (at byte {} of the record)",
                    reader.error_position() + 1
                ))
            })?;
            if done && !matches!(event, Event::Eof) {
                return Err(xml("content after the record element".into()));
            }
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let empty = matches!(event, Event::Empty(_));
                    let name = within(text, e.name().as_ref())
                        .ok_or_else(|| xml("unreadable element name".into()))?;
                    let node =
                        self.child_named(s.stack.last().map(|&(node, _)| node), e.name().as_ref());
                    self.attributes(text, e, node, s).map_err(xml)?;
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
                        return Err(xml(format!(
                            "end tag `</{found}>` does not match start tag `<{open}>`"
                        )));
                    }
                    s.close(s.stack.len()).map_err(xml)?;
                    s.stack.pop();
                    done = s.stack.is_empty();
                }
                Event::Text(t) => {
                    let t = within(text, &t).ok_or_else(|| xml("unreadable text".into()))?;
                    unescape(t).map_err(xml)?;
                    s.push(Piece::Text(t));
                }
                Event::CData(c) => {
                    let c =
                        within(text, &c).ok_or_else(|| xml("unreadable CDATA section".into()))?;
                    s.push(Piece::CData(c));
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Decl(_) => return Err(xml("XML declaration inside a record".into())),
                Event::DocType(_) => return Err(xml("DOCTYPE inside a record".into())),
                Event::Eof if done => return Ok(()),
                Event::Eof => {
                    return Err(xml(
                        "the record element is not closed before the root end tag".into(),
                    ));
                }
            }
        }
    }

    /// The path node of an element named `name` (prefix included) whose parent has node
    /// `parent` (`None` before the record element, which is node 0).
    fn child_named(&self, parent: Option<Option<usize>>, name: &[u8]) -> Option<usize> {
        match parent {
            None => Some(0),
            Some(None) => None,
            Some(Some(p)) => {
                let name = local(name);
                self.nodes[p]
                    .children
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|&(_, c)| c)
            }
        }
    }

    /// Checks the attributes of an element start and takes the values asked for.
    fn attributes<'d>(
        &self,
        text: &'d str,
        e: &BytesStart<'_>,
        node: Option<usize>,
        s: &mut Scratch<'d>,
    ) -> Result<(), String> {
        let attributes = node
            .and_then(|n| self.nodes.get(n))
            .map(|n| &n.attributes[..]);
        for attr in e.attributes() {
            let attr = attr.map_err(|e| e.to_string())?;
            let raw = within(text, &attr.value).ok_or("unreadable attribute value")?;
            take_attribute(attributes, attr.key.as_ref(), unescape(raw)?, s);
        }
        Ok(())
    }

    /// Handles an element start (`empty` for `<e/>`) at depth `s.stack.len()`: starts reading
    /// the fields that take its text.
    fn start_text(&self, node: Option<usize>, s: &mut Scratch<'_>, empty: bool) {
        let node = node.and_then(|n| self.nodes.get(n));
        for &f in node.iter().flat_map(|n| &n.text) {
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

/// Sets the fields that take attribute `key` (prefix included) of an element whose path
/// node has `attributes`, unless an earlier element already gave them a value.
fn take_attribute<'d>(
    attributes: Option<&[(Vec<u8>, usize)]>,
    key: &[u8],
    value: Cow<'d, str>,
    s: &mut Scratch<'d>,
) {
    let key = local(key);
    for (name, f) in attributes.into_iter().flatten() {
        if name == key && s.values[*f].is_none() {
            s.values[*f] = Some(value.clone());
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

/// Offset of the root end tag `</root>`: the last tag of the input once trailing whitespace,
/// comments and processing instructions are set aside.
fn root_end(data: &[u8], from: usize, root: &[u8]) -> Option<usize> {
    let mut end = data.len();
    loop {
        while end > from && is_space(data[end - 1]) {
            end -= 1;
        }
        let tail = &data[from..end];
        let open = if tail.ends_with(b"-->") {
            memmem::rfind(tail, b"<!--")
        } else if tail.ends_with(b"?>") {
            memmem::rfind(tail, b"<?")
        } else {
            break;
        };
        end = from + open?;
    }
    let tail = &data[from..end];
    let tag = &tail[memrchr(b'<', tail)?..];
    let name = tag.strip_prefix(b"</")?.strip_suffix(b">")?.trim_ascii();
    (name == root).then_some(end - tag.len())
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
                Markup::End { .. } => {
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
    ) -> Box<dyn Iterator<Item = Result<Chunk, FileError>> + 'd> {
        let body = clamp(&(pre.body_start..pre.body_end), data.len());
        let mut scan = Scanner {
            data,
            pos: body.start,
            end: body.end,
            record: &self.record,
        };
        let (mut line, mut last) = (pre.body_first_line, body.start);
        let starts = std::iter::from_fn(move || match scan.next_record() {
            Ok(Some(r)) => {
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
        let mut scan = Scanner {
            data,
            pos: range.start,
            end: range.end,
            record: &self.record,
        };
        let mut scratch = Scratch::default();
        let (mut number, mut line, mut last) = (chunk.first_record, chunk.first_line, None);
        // The records framing found, or (for a chunk made elsewhere) a scan for them. Framing
        // has already reported markup that cannot be skipped: the scan stops there too.
        let mut known = chunk
            .records
            .iter()
            .map(|r| clamp(r, range.end))
            .filter(|r| r.start >= range.start);
        let use_known = !chunk.records.is_empty();
        let mut next = move || {
            if use_known {
                known.next()
            } else {
                scan.next_record().ok().flatten()
            }
        };
        while let Some(r) = next() {
            if let Some(l) = last {
                line += count_lf(&data[l..r.start]);
            }
            last = Some(r.start);
            let raw = &data[r];
            match self.parse(raw, &mut scratch) {
                Ok(()) => each(Decoded::Record(RecordRef {
                    number,
                    line,
                    raw,
                    values: &scratch.values,
                })),
                Err((rule, reason)) => each(Decoded::Bad(BadRecord {
                    number,
                    line,
                    raw,
                    field: None,
                    rule,
                    reason,
                })),
            }
            number += 1;
        }
    }
}

/// What the XML output is called.
#[derive(Debug, Clone)]
pub struct XmlWriteOptions {
    /// Name of the root element.
    pub root: String,
    /// Name of each record element.
    pub record: String,
}

/// Writes an XML document, one record element per line.
#[derive(Debug, Clone)]
pub struct XmlEncoder {
    opts: XmlWriteOptions,
    /// Field names, and whether each is written as an attribute of the record element.
    fields: Vec<(String, bool)>,
}

impl XmlEncoder {
    /// Fails unless every name is an XML name without a colon, and field names are distinct
    /// (attributes must be; `xmlns` is not a field).
    pub fn new(opts: XmlWriteOptions, fields: Vec<(String, bool)>) -> Result<Self, String> {
        let names = [
            ("root element", &opts.root),
            ("record element", &opts.record),
        ];
        for (what, name) in names
            .into_iter()
            .chain(fields.iter().map(|(n, _)| ("field", n)))
        {
            if !is_xml_name(name) {
                return Err(format!(
                    "{what} name `{name}` is not an XML name (a letter or `_`, then letters, digits, `_`, `-`, `.`; no colon)"
                ));
            }
        }
        for (i, (name, attribute)) in fields.iter().enumerate() {
            if fields[..i].iter().any(|(n, _)| n == name) {
                return Err(format!("field `{name}` is written twice"));
            }
            if *attribute && name == "xmlns" {
                return Err("`xmlns` declares a namespace and cannot be a field".into());
            }
        }
        Ok(XmlEncoder { opts, fields })
    }

    fn write(&self, values: &[Option<&str>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let record = self.opts.record.as_bytes();
        let fail = |name: &str, reason| EncodeError {
            field: name.to_string(),
            reason,
        };
        out.push(b'<');
        out.extend_from_slice(record);
        for ((name, _), v) in self.fields.iter().zip(values).filter(|((_, a), _)| *a) {
            if let Some(v) = v {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"=\"");
                escape(out, v, true).map_err(|r| fail(name, r))?;
                out.push(b'"');
            }
        }
        out.push(b'>');
        for ((name, _), v) in self.fields.iter().zip(values).filter(|((_, a), _)| !*a) {
            if let Some(v) = v {
                out.push(b'<');
                out.extend_from_slice(name.as_bytes());
                out.push(b'>');
                escape(out, v, false).map_err(|r| fail(name, r))?;
                out.extend_from_slice(b"</");
                out.extend_from_slice(name.as_bytes());
                out.push(b'>');
            }
        }
        out.extend_from_slice(b"</");
        out.extend_from_slice(record);
        out.extend_from_slice(b">\n");
        Ok(())
    }
}

impl Encoder for XmlEncoder {
    fn header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        out.extend_from_slice(self.opts.root.as_bytes());
        out.extend_from_slice(b">\n");
    }

    fn record(&self, values: &[Option<&str>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_arity(values, self.fields.len())?;
        let mark = out.len();
        self.write(values, out).inspect_err(|_| out.truncate(mark))
    }

    fn footer(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"</");
        out.extend_from_slice(self.opts.root.as_bytes());
        out.extend_from_slice(b">\n");
    }
}

/// Writes `v` as attribute value or element text, escaped to read back exactly: markup
/// characters as entities, CR (and in attributes tab and LF, which readers normalise) as
/// character references, and in text the leading and trailing whitespace that readers trim.
fn escape(out: &mut Vec<u8>, v: &str, attribute: bool) -> Result<(), String> {
    // Most values need nothing done: no markup characters, no control characters, no byte
    // that may start U+FFFE/U+FFFF, and no spaces at the ends of element text.
    let plain = !super::needs_xml_escape(v.as_bytes());
    if plain && (attribute || !v.starts_with(' ') && !v.ends_with(' ')) {
        out.extend_from_slice(v.as_bytes());
        return Ok(());
    }
    if let Some(c) = forbidden_char(v) {
        return Err(format!(
            "character U+{:04X} cannot be written in XML",
            c as u32
        ));
    }
    let (lead, core, trail) = if attribute {
        ("", v, "")
    } else {
        let start = v.len() - trim_start_spaces(v).len();
        let core = trim_spaces(v);
        // `start` and `start + core.len()` come from trimming ASCII: character boundaries.
        (&v[..start], core, &v[start + core.len()..])
    };
    let char_ref = |out: &mut Vec<u8>, s: &str| {
        s.chars()
            .for_each(|c| out.extend_from_slice(format!("&#{};", c as u32).as_bytes()))
    };
    char_ref(out, lead);
    let b = core.as_bytes();
    let mut copied = 0;
    for (i, &c) in b.iter().enumerate() {
        let with: &[u8] = match c {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&apos;",
            b'\r' => b"&#13;",
            b'\n' if attribute => b"&#10;",
            b'\t' if attribute => b"&#9;",
            _ => continue,
        };
        out.extend_from_slice(&b[copied..i]);
        out.extend_from_slice(with);
        copied = i + 1;
    }
    out.extend_from_slice(&b[copied..]);
    char_ref(out, trail);
    Ok(())
}

/// The XML `Name` production, without colons (so names are also namespace-well-formed).
fn is_xml_name(s: &str) -> bool {
    let start = |c: char| {
        matches!(c, 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
            | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
            | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
            | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
            | '\u{10000}'..='\u{EFFFF}')
    };
    let mut chars = s.chars();
    chars.next().is_some_and(start)
        && chars.all(|c| {
            start(c) || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::testkit::{
        Out, assert_framing_invariant, decode_all, encode_all, value_strategy, values,
    };
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
        assert_eq!(
            out[0].bad().1,
            "end tag `</rec>` does not match start tag `<a>`"
        );
        assert!(out[1].bad().1.contains("bogus"), "{:?}", out[1]);
        assert!(out[2].bad().1.contains("duplicated"), "{:?}", out[2]);
        assert_eq!(out[3].bad().1, "character U+0000 is not allowed in XML");
        assert_eq!(
            out[4].bad().1,
            "character reference to U+0001, which XML does not allow"
        );
        assert_eq!(
            out[7].bad().1,
            "the record element is not closed before the root end tag"
        );
        assert_eq!(out[7].number_line(), (8, 9));
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

    /// Writes a value as CDATA, splitting `]]>` across two sections.
    fn cdata(v: &str) -> String {
        format!("<![CDATA[{}]]>", v.replace("]]>", "]]]]><![CDATA[>"))
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
    /// prefixes, line breaks between everything.
    fn styled_document(records: &[(Vec<Option<String>>, u8)]) -> Vec<u8> {
        let mut doc = String::from(
            "<?xml version=\"1.0\"?>\n<!-- </record> -->\n<x:root xmlns:x=\"urn:x\">\n",
        );
        for (vals, style) in records {
            let wrap = style & 1 == 1;
            if wrap {
                doc.push_str("<group note=\"a>b\">\n");
            }
            doc.push_str(if style & 2 == 2 {
                "<x:record"
            } else {
                "<record"
            });
            if let Some(id) = &vals[0] {
                doc.push_str(&format!(" id=\"{}\"", attr(id)));
            }
            doc.push_str(" gt='>'>\n<!-- </record> -->");
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
                            "  \n{}<!--c-->{}<?pi </record>?>\n ",
                            text(&name[..half]),
                            cdata(&name[half..])
                        )
                    }
                };
                doc.push_str(&format!("<name>{body}</name>"));
            }
            doc.push_str("<?pi </record> ?>\n<address");
            if let Some(kind) = &vals[3] {
                doc.push_str(&format!(" kind='{}'", attr(kind)));
            }
            doc.push('>');
            if let Some(city) = &vals[2] {
                doc.push_str(&format!("\n <city>{}</city>", cdata(city)));
            }
            doc.push_str("</address>\n");
            doc.push_str(if style & 2 == 2 {
                "</x:record>\n"
            } else {
                "</record>\n"
            });
            if wrap {
                doc.push_str("</group>\n");
            }
        }
        doc.push_str("</x:root>\n<!-- end -->\n");
        doc.into_bytes()
    }

    /// Reads `text` with the plain reader and, when it accepts, checks that quick-xml reads
    /// the same values; returns whether the plain reader accepted.
    fn plain_agrees(dec: &XmlDecoder, text: &str) -> bool {
        let mut plain = Scratch::default();
        plain.reset(dec.fields);
        if !dec.parse_plain(text, &mut plain) {
            return false;
        }
        let mut full = Scratch::default();
        full.reset(dec.fields);
        assert_eq!(dec.parse_full(text, &mut full), Ok(()), "{text}");
        assert_eq!(plain.values, full.values, "{text}");
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

    /// A record element written with the usual shapes and some unusual ones.
    fn record_text() -> impl Strategy<Value = String> {
        let name = || prop::sample::select(vec!["a", "b", "c", "x:a", "name"]);
        let attrs = prop::collection::vec(
            (
                prop::sample::select(vec!["id", "b", "x", "x:id"]),
                xml_value(),
                any::<bool>(),
            ),
            0..3,
        )
        .prop_map(|list| {
            list.into_iter()
                .map(|(k, v, single)| {
                    let v = attr(&v);
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
            "\"", "=", "\u{e9}",
        ]), 0..24)) {
            let rec = format!("<record{}", parts.concat());
            plain_agrees(&decoder("record", &PLAIN_PATHS), &rec);
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
        fn styled_documents(records in prop::collection::vec((prop::collection::vec(prop::option::of(xml_value()), 4), 0u8..16), 0..5)) {
            let data = styled_document(&records);
            well_formed(&data);
            let out = assert_framing_invariant(&mut decoder("record", &["@id", "name", "address/city", "address/@kind"]), &data);
            let expected: Vec<Vec<Option<String>>> = records.iter().map(|(v, _)| v.clone()).collect();
            prop_assert_eq!(values(&out), expected);
        }

        /// Markup soup: never a panic, and chunking never changes what is read.
        #[test]
        fn any_markup(parts in prop::collection::vec(prop::sample::select(vec![
            "<r>", "</r>", "<rec>", "</rec>", "<rec/>", "<a>", "</a>", "<!--", "-->", "<![CDATA[", "]]>",
            "<?", "?>", "'", "\"", ">", "<", "&amp;", "&x;", "\n", "x", "\u{FF}", "<!DOCTYPE r>",
        ]), 0..30)) {
            let data = format!("<r>{}</r>", parts.concat()).into_bytes();
            let mut dec = decoder("rec", &["a"]);
            if decode_all(&mut dec, &data).is_ok() {
                assert_framing_invariant(&mut dec, &data);
            }
        }
    }
}
