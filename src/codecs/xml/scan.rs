//! The plain scan of XML: finding markup (`<` to `>` past quoted attribute values, comments,
//! CDATA, processing instructions) and the record element's tags (by its name, see
//! [`Scanner`]); the working memory in which both record readers (the plain one and
//! quick-xml's, in the parent module) gather a record's values ([`Scratch`]); and the text
//! helpers they share (line ends, attribute value normalisation, unescaping, joining text
//! pieces, the characters and names XML 1.0 allows).

use std::borrow::Cow;
use std::ops::Range;

use memchr::{memchr, memchr2, memchr3, memmem};

pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `s` without the XML white space (space, tab, LF, CR) at either end.
pub(super) fn trim_spaces(s: &str) -> &str {
    trim_end_spaces(trim_start_spaces(s))
}

/// `s` without the XML white space (space, tab, LF, CR) it starts with.
pub(super) fn trim_start_spaces(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| is_space(b)).count();
    // Only ASCII bytes were skipped: `n` is a character boundary.
    &s[n..]
}

/// `s` without the XML white space it ends with.
pub(super) fn trim_end_spaces(s: &str) -> &str {
    let n = s.bytes().rev().take_while(|&b| is_space(b)).count();
    &s[..s.len() - n]
}

/// The name after the namespace prefix, as quick-xml takes it (after the first `:`).
pub(super) fn local(name: &[u8]) -> &[u8] {
    match crate::codecs::find_byte(b':', name) {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// What a `<` starts.
#[derive(Debug)]
pub(super) enum Markup<'d> {
    Start {
        name: &'d [u8],
        empty: bool,
    },
    End,
    /// A comment, CDATA section or processing instruction.
    Other,
    /// `<!DOCTYPE` or another markup declaration.
    Declaration,
}

/// First offset in `from..end` holding a byte for which `stop` is true, skipping quoted
/// strings (attribute values, DOCTYPE literals).
pub(super) fn find_unquoted(
    data: &[u8],
    from: usize,
    end: usize,
    stop: impl Fn(u8) -> bool,
) -> Option<usize> {
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
pub(super) fn tag_end(data: &[u8], from: usize, end: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let k = i + memchr3(b'>', b'"', b'\'', &data[i..end])?;
        if data[k] == b'>' {
            return Some(k);
        }
        i = k + 1 + memchr(data[k], &data[k + 1..end])? + 1;
    }
}

pub(super) fn find(data: &[u8], from: usize, end: usize, needle: &[u8]) -> Option<usize> {
    memmem::find(&data[from..end], needle).map(|i| from + i)
}

/// Reads the markup at `p` (where `data[p] == b'<'`): what it is and the offset after it,
/// or `None` when it is not closed before `end`.
pub(super) fn markup(data: &[u8], p: usize, end: usize) -> Option<(Markup<'_>, usize)> {
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
        return Some((Markup::End, gt + 1));
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
pub(super) struct Scanner<'d> {
    pub(super) data: &'d [u8],
    pub(super) pos: usize,
    pub(super) end: usize,
    pub(super) record: &'d [u8],
    /// Where the records inside a record left open end, found when it was scanned again (see
    /// [`Scanner::record_end`]): the records after it are then framed from these, not each
    /// scanned to the end of the body in turn.
    pub(super) ends: std::collections::HashMap<usize, usize>,
    /// Inside a record, the scan looks only at the record element's name and at `<!` and `<?`
    /// (see [`Scanner::next_record_tag`]): the search for the name and its first hit from the
    /// offset beside it (`None`: none up to `end`; `usize::MAX`: no search yet), and the first
    /// `<!` or `<?` between two offsets (`None`: none there).
    name: memmem::Finder<'d>,
    name_hit: (usize, Option<usize>),
    bang_hit: (usize, usize, Option<usize>),
}

impl<'d> Scanner<'d> {
    /// A scan of `data[range]` for the elements whose local name is `record` (not empty).
    pub(super) fn new(data: &'d [u8], range: Range<usize>, record: &'d [u8]) -> Scanner<'d> {
        Scanner {
            data,
            pos: range.start,
            end: range.end,
            record,
            ends: Default::default(),
            name: memmem::Finder::new(record),
            name_hit: (usize::MAX, None),
            bang_hit: (usize::MAX, 0, None),
        }
    }

    /// The byte range of the next record element, `None` at the end; fails with the offset
    /// and reason of markup that cannot be skipped outside records.
    pub(super) fn next_record(&mut self) -> Result<Option<Range<usize>>, (usize, &'static str)> {
        while let Some(i) = memchr(b'<', &self.data[self.pos..self.end]) {
            let p = self.pos + i;
            let (m, next) = markup(self.data, p, self.end)
                .ok_or((p, "markup is not closed before the root end tag"))?;
            self.pos = next;
            match m {
                Markup::Start { name, empty } if local(name) == self.record => {
                    let end = if empty { next } else { self.record_end(p) };
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

    /// Offset after the end tag of the record at `start`, whose start tag was just read. A
    /// record not closed before the end of the body (a misspelt end tag, a truncated file) ends
    /// where the first record start tag inside it begins, or at the end of the body when there
    /// is none: the record parser then says what is wrong with it, and the records after it
    /// are read as records instead of being swallowed into its reject. (Records nested in a
    /// record that is closed stay part of it.) The scan that finds a record left open finds
    /// by the same rules where each record inside it ends, and keeps those ends for the calls
    /// that follow: however many records are left open, the body is scanned at most twice.
    pub(super) fn record_end(&mut self, start: usize) -> usize {
        if !self.ends.is_empty()
            && let Some(end) = self.ends.remove(&start)
        {
            self.pos = end;
            return end;
        }
        // The usual record: its end tag found by counting the record's own tags.
        let after_start = self.pos;
        let mut depth = 1usize;
        while let Some(tag) = self.next_record_tag() {
            match tag {
                RecordTag::Start { empty: false, .. } => depth += 1,
                RecordTag::Start { .. } => {}
                RecordTag::End { next } => {
                    depth -= 1;
                    if depth == 0 {
                        return next;
                    }
                }
            }
        }
        // Left open: scanned again from its start tag, keeping where each record inside it
        // ends, by the same rules. The records open around the scan, outermost first: where
        // each starts, and where the first record start tag inside it is.
        self.pos = after_start;
        let mut open: Vec<(usize, Option<usize>)> = vec![(start, None)];
        let mut closed: Vec<(usize, usize)> = Vec::new();
        while let Some(tag) = self.next_record_tag() {
            match tag {
                RecordTag::Start { at, empty } => {
                    if let Some((_, first)) = open.last_mut() {
                        first.get_or_insert(at);
                    }
                    if !empty {
                        open.push((at, None));
                    }
                }
                RecordTag::End { next } => {
                    if let Some((s, _)) = open.pop() {
                        closed.push((s, next));
                    }
                }
            }
        }
        // Each record still open ends at the first record inside it; those closed inside, where
        // their end tags are.
        let end = open.first().and_then(|o| o.1).unwrap_or(self.end);
        self.ends.extend(closed);
        self.ends.extend(
            open.iter()
                .skip(1)
                .map(|&(s, first)| (s, first.unwrap_or(self.end))),
        );
        self.pos = end;
        end
    }

    /// The next start or end tag of a record element from `self.pos`, which it moves past;
    /// `None` at the end of the body or at markup that is not closed (then at the end).
    ///
    /// Most tags in a record are its fields' start and end tags, and none of them matters
    /// here: the scan goes from one place where the record element's name is written to the
    /// next, and from one `<!` or `<?` (a comment, CDATA section or processing instruction,
    /// which may hold the name, skipped whole) to the next, taking whichever markup starts
    /// first. A name preceded by `<`, `</` or a prefix after either, and followed by white
    /// space, `/` or `>`, is the record element's tag (a start tag read to its `>` past quoted
    /// attribute values, an end tag holding only white space after the name); any other is
    /// text or part of another name. A `<` cannot appear in an attribute value, so markup
    /// begins at each `<` either way.
    fn next_record_tag(&mut self) -> Option<RecordTag> {
        let mut from = self.pos;
        loop {
            let Some(hit) = self.name_from(from) else {
                self.pos = self.end;
                return None;
            };
            let tag = self.tag_before(hit);
            let first = tag.map_or(hit, |(lt, _)| lt);
            // At the same `<` as a name's tag (`<!--x:record`), the markup is the comment.
            if let Some(lt) = self.bang_upto(self.pos, first) {
                // Comments, CDATA and processing instructions are skipped whole; a markup
                // declaration inside a record, to its `>` (the record parser refuses it).
                let Some((_, next)) = markup(self.data, lt, self.end) else {
                    self.pos = self.end;
                    return None;
                };
                self.pos = next;
                from = next;
                continue;
            }
            let Some((lt, is_end)) = tag else {
                from = hit + 1;
                continue;
            };
            let after = hit + self.record.len();
            if is_end {
                let Some(gt) = memchr(b'>', &self.data[after..self.end]).map(|i| after + i) else {
                    self.pos = self.end;
                    return None;
                };
                self.pos = gt + 1;
                if self.data[after..gt].iter().all(|&b| is_space(b)) {
                    return Some(RecordTag::End { next: gt + 1 });
                }
                // Another end tag (`</record x>`), passed over whole.
                from = gt + 1;
                continue;
            }
            let Some(gt) = tag_end(self.data, lt + 1, self.end) else {
                self.pos = self.end;
                return None;
            };
            self.pos = gt + 1;
            let empty = self.data[gt - 1] == b'/';
            return Some(RecordTag::Start { at: lt, empty });
        }
    }

    /// The first offset from `from` where the record element's name is written.
    fn name_from(&mut self, from: usize) -> Option<usize> {
        let (at, hit) = self.name_hit;
        if at <= from && hit.is_none_or(|h| h >= from) {
            return hit;
        }
        let hit = self.name.find(&self.data[from..self.end]).map(|i| from + i);
        self.name_hit = (from, hit);
        hit
    }

    /// The first `<` from `from` to `limit` that starts `<!` or `<?`. Only that far: a search
    /// to the end of the body would read every page of an input mapped into memory as soon as
    /// its first record is framed (the resident memory of `process --inbound` of the tenth of a
    /// day rose from 203-210 MB to 213-224 MB that way, and was 203-204 MB in two runs searching
    /// only this far). A search that found none goes on from where it stopped, so the record element's
    /// name written many times over in one record does not make it be searched again each time.
    fn bang_upto(&mut self, from: usize, limit: usize) -> Option<usize> {
        let (at, to, hit) = self.bang_hit;
        let (mut base, mut start) = (from, from);
        if at <= from {
            match hit {
                Some(h) if h >= from => return (h <= limit).then_some(h),
                None if limit <= to => return None,
                // What was searched reaches `from`: the search goes on past it.
                None if to + 1 >= from => (base, start) = (at, to + 1),
                _ => {}
            }
        }
        // A `<` at `limit` at the latest: its `!` or `?` comes one byte later.
        let stop = limit.saturating_add(2).min(self.end);
        let mut i = start;
        let found = loop {
            let Some(k) = self
                .data
                .get(i + 1..stop)
                .and_then(|h| memchr2(b'!', b'?', h))
            else {
                break None;
            };
            let q = i + 1 + k;
            if self.data[q - 1] == b'<' {
                break Some(q - 1);
            }
            i = q;
        };
        self.bang_hit = (base, limit, found);
        found
    }

    /// For the record element's name written at `hit`: the `<` of the tag whose name it ends
    /// (after `self.pos`), and whether that is an end tag; `None` when it is not a tag name.
    fn tag_before(&self, hit: usize) -> Option<(usize, bool)> {
        let d = self.data;
        let after = hit + self.record.len();
        if after >= self.end || !(is_space(d[after]) || matches!(d[after], b'/' | b'>')) {
            return None;
        }
        // The name's first byte: right at `hit`, or that of its prefix.
        let mut first = hit;
        if hit > self.pos && d[hit - 1] == b':' {
            first = hit - 1;
            while first > self.pos
                && !matches!(d[first - 1], b'<' | b'/' | b'>' | b':')
                && !is_space(d[first - 1])
            {
                first -= 1;
            }
        }
        match first.checked_sub(self.pos) {
            Some(1..) if d[first - 1] == b'<' => Some((first - 1, false)),
            Some(2..) if d[first - 1] == b'/' && d[first - 2] == b'<' => Some((first - 2, true)),
            _ => None,
        }
    }
}

/// A tag of the record element, as [`Scanner::record_end`] meets it.
enum RecordTag {
    /// A start tag at `at`; `empty` for `<record/>`.
    Start { at: usize, empty: bool },
    /// An end tag, ending before `next`.
    End { next: usize },
}

/// One element of the configured paths (node 0 is the record element itself): the child
/// elements that lead to fields, and the fields read here.
#[derive(Debug, Clone, Default)]
pub(super) struct PathNode {
    /// `(local name, node)` of the children on some field's path.
    pub(super) children: Vec<(Vec<u8>, usize)>,
    /// Whether a child's local name holds a colon (a path element written `a:b:c`).
    pub(super) colon: bool,
    /// Fields that take this element's text.
    pub(super) text: Vec<usize>,
    /// `(attribute local name, field)` of the fields that take one of its attributes.
    pub(super) attributes: Vec<(Vec<u8>, usize)>,
}

/// A piece of an element's text, borrowed from the record.
#[derive(Debug, Clone, Copy)]
pub(super) enum Piece<'d> {
    /// Character data as written (entities not yet unescaped).
    Text(&'d str),
    /// Character data that holds no `&` and no `>` (the plain reader sees that while it looks
    /// for the next tag): nothing in it to check or unescape, its value is itself.
    Plain(&'d str),
    /// The content of a CDATA section.
    CData(&'d str),
}

/// Per-record working memory, kept across the records of a chunk.
#[derive(Debug, Default)]
pub(super) struct Scratch<'d> {
    pub(super) values: Vec<Option<Cow<'d, str>>>,
    /// For each field being read from an element's text: the depth of that element.
    pub(super) capture: Vec<Option<usize>>,
    /// The fields being read, so that text and end tags touch only those (usually one).
    pub(super) active: Vec<usize>,
    /// Each field's text so far, kept from the start of its capture.
    pub(super) pieces: Vec<Vec<Piece<'d>>>,
    /// The path node (`None`: off every path) and name of each open element, record first.
    pub(super) stack: Vec<(Option<usize>, &'d str)>,
    /// The attribute names of the start tag being read (duplicates are refused).
    pub(super) keys: Vec<&'d [u8]>,
    /// Whether the record holds a CR, so that line ends need normalising (most records hold
    /// none, and their text is then borrowed as written).
    pub(super) cr: bool,
    /// Whether an element or attribute on a field's path came again after the field took its
    /// value (see `RecordRef::repeated`).
    pub(super) repeated: bool,
    /// The place among its parent's children of the element last found on a path, kept from
    /// record to record (see `XmlDecoder::child_named`).
    pub(super) last_child: usize,
}

impl<'d> Scratch<'d> {
    /// Makes ready for reading `record`, a record of `fields` fields.
    #[cfg(test)]
    pub(super) fn reset(&mut self, fields: usize, record: &str) {
        self.reset_with(fields, memchr(b'\r', record.as_bytes()).is_some());
    }

    /// Makes ready for reading a record of `fields` fields, which holds a CR when `cr` is true.
    pub(super) fn reset_with(&mut self, fields: usize, cr: bool) {
        self.cr = cr;
        self.values.clear();
        self.values.resize(fields, None);
        self.capture.clear();
        self.capture.resize(fields, None);
        self.active.clear();
        if self.pieces.len() < fields {
            self.pieces.resize_with(fields, Vec::new);
        }
        self.stack.clear();
        self.repeated = false;
    }

    /// Starts reading field `f` from the text of the element open at `depth`.
    pub(super) fn start(&mut self, f: usize, depth: usize) {
        self.capture[f] = Some(depth);
        self.pieces[f].clear();
        self.active.push(f);
    }

    /// Adds text to every field being read.
    pub(super) fn push(&mut self, piece: Piece<'d>) {
        for &f in &self.active {
            self.pieces[f].push(piece);
        }
    }

    /// Sets the fields read from the element closing at `depth`.
    pub(super) fn close(&mut self, depth: usize) -> Result<(), String> {
        let mut k = 0;
        while k < self.active.len() {
            let f = self.active[k];
            if self.capture[f] == Some(depth) {
                self.values[f] = Some(join(&self.pieces[f], self.cr)?);
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
pub(super) fn within<'d>(whole: &'d str, part: &[u8]) -> Option<&'d str> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    whole.get(start..start.checked_add(part.len())?)
}

/// Unescapes predefined entities and character references; anything else is an error, as
/// is a reference to a character XML cannot hold.
pub(super) fn unescape(s: &str) -> Result<Cow<'_, str>, String> {
    unescape_at(s).map_err(|(m, _)| m)
}

/// [`unescape`], with the byte offset in `s` of the reference that is wrong.
pub(super) fn unescape_at(s: &str) -> Result<Cow<'_, str>, (String, usize)> {
    use quick_xml::escape::EscapeError as E;
    if crate::codecs::find_byte(b'&', s.as_bytes()).is_none() {
        return Ok(Cow::Borrowed(s));
    }
    // quick-xml's messages give ranges within `s`; the reject names the record's line and
    // column instead, so they are worded here without them.
    let v = quick_xml::escape::unescape(s).map_err(|e| match e {
        E::UnrecognizedEntity(at, name) => {
            // The name is shown when it is a short XML name (`&nbsp;`); between a stray `&`
            // and the next `;` lies vendor text (`&bob@example.com;`), which a reason never
            // quotes.
            let shown = if name.len() <= 16 && is_name(&name) {
                format!(" `&{name};`")
            } else {
                String::new()
            };
            (
                format!("unrecognized entity{shown} (only &amp; &lt; &gt; &quot; &apos; and character references are defined)"),
                at.start.saturating_sub(1),
            )
        }
        E::UnterminatedEntity(at) => (
            "`&` without `;` after it: write `&amp;` for `&`".into(),
            at.start,
        ),
        other => (other.to_string(), s.find('&').unwrap_or(0)),
    })?;
    if let Some(c) = forbidden_char(&v) {
        return Err((
            format!(
                "character reference to U+{:04X}, which XML does not allow",
                c as u32
            ),
            s.find("&#").unwrap_or(0),
        ));
    }
    Ok(v)
}

/// The first character of `text` that XML 1.0 does not allow, if any.
pub(super) fn forbidden_char(text: &str) -> Option<char> {
    // Only C0 controls and U+FFFE/U+FFFF (encoded EF BF BE/BF) are excluded: scan bytes first.
    if crate::codecs::may_hold_non_xml_char(text.as_bytes()) {
        text.chars().find(|&c| !is_xml_char(c))
    } else {
        None
    }
}

/// Whether `t` holds a CR. Only asked of records that hold one (see [`Scratch::cr`]).
fn has_cr(t: &str, cr: bool) -> bool {
    cr && crate::codecs::find_byte(b'\r', t.as_bytes()).is_some()
}

/// `t` with its line ends read as XML 1.0 section 2.11 says, before anything else: CR LF and
/// a lone CR become LF.
fn normalize_line_ends(t: &str) -> String {
    t.replace("\r\n", "\n").replace('\r', "\n")
}

/// A field's value when its element's text is one piece of plain text (no reference to
/// unescape): trimmed, line ends normalised (`cr`: the record holds a CR).
#[inline]
pub(super) fn plain_value(t: &str, cr: bool) -> Cow<'_, str> {
    cdata_value(trim_spaces(t), cr)
}

/// The content of a CDATA section, line ends normalised (`cr`: the record holds a CR).
pub(super) fn cdata_value(c: &str, cr: bool) -> Cow<'_, str> {
    if has_cr(c, cr) {
        Cow::Owned(normalize_line_ends(c))
    } else {
        Cow::Borrowed(c)
    }
}

/// A piece of character data as written: line ends normalised (`cr`: the record holds a
/// CR), then entities and character references unescaped (so `&#13;` stays a CR).
pub(super) fn text_value(t: &str, cr: bool) -> Result<Cow<'_, str>, String> {
    if has_cr(t, cr) {
        return unescape(&normalize_line_ends(t)).map(|v| Cow::Owned(v.into_owned()));
    }
    unescape(t)
}

/// Checks a piece of character data as written: `]]>` may not appear in it (XML 1.0 section
/// 2.4) and every reference must be one XML defines.
/// The error comes with the byte offset in `t` where the problem starts.
pub(super) fn check_text(t: &str) -> Result<(), (String, usize)> {
    let b = t.as_bytes();
    let mut from = 0;
    // `>` is rare in text: look for it a word at a time, then at the two bytes before.
    while let Some(i) = crate::codecs::find_byte(b'>', &b[from..]) {
        let gt = from + i;
        if b[..gt].ends_with(b"]]") {
            return Err((
                "`]]>` in text, where XML does not allow it: write `]]&gt;`".into(),
                gt - 2,
            ));
        }
        from = gt + 1;
    }
    // Most references are of the usual kinds, checked where they are written; the text is
    // unescaped (which also words what is wrong) only when one is not.
    if references_are_plain(b) {
        return Ok(());
    }
    unescape_at(t).map(|_| ())
}

/// Whether every reference in `b` is one that [`unescape_at`] takes: a predefined entity, or
/// a character reference written `&#` digits `;` or `&#x` hex digits `;` to a character XML
/// allows. `false` also when unsure (anything else): the caller then unescapes to tell.
pub(super) fn references_are_plain(b: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = crate::codecs::find_byte(b'&', &b[from..]) {
        let amp = from + i;
        let Some(len) = b[amp + 1..].iter().take(12).position(|&c| c == b';') else {
            return false;
        };
        let name = &b[amp + 1..amp + 1 + len];
        let ok = match name {
            b"lt" | b"gt" | b"amp" | b"apos" | b"quot" => true,
            [b'#', b'x', hex @ ..] => char_reference(hex, 16),
            [b'#', dec @ ..] => char_reference(dec, 10),
            _ => false,
        };
        if !ok {
            return false;
        }
        from = amp + 2 + len;
    }
    true
}

/// Whether `digits` (at least one, nothing else) in `radix` name a character XML allows.
fn char_reference(digits: &[u8], radix: u32) -> bool {
    !digits.is_empty()
        && digits
            .iter()
            .try_fold(0u32, |n, &c| {
                n.checked_mul(radix)?
                    .checked_add((c as char).to_digit(radix)?)
            })
            .and_then(char::from_u32)
            .is_some_and(is_xml_char)
}

/// An attribute value as written between its quotes, read as XML 1.0 reads a CDATA attribute
/// (section 3.3.3): each literal tab, LF and CR becomes a space, a CR LF one space (it is one
/// line end after section 2.11), then entities and character references are unescaped (so
/// `&#9;` and `&#10;` stay a tab and a LF). A `<` is an error.
/// The error comes with the byte offset in `raw` where the problem starts.
pub(super) fn attribute_value(raw: &str) -> Result<Cow<'_, str>, (String, usize)> {
    // Most values hold none of these: checked a word at a time, and borrowed as written.
    if !crate::codecs::contains_any(raw.as_bytes(), [b'\t', b'\n', b'\r', b'<']) {
        return unescape_at(raw);
    }
    if let Some(lt) = raw.find('<') {
        return Err((
            "`<` in the value, where XML does not allow it: write `&lt;`".into(),
            lt,
        ));
    }
    let spaced = raw.replace("\r\n", " ").replace(['\t', '\n', '\r'], " ");
    // A CR LF read as one space shifts what follows it by a byte: then the value's start.
    let shifted = spaced.len() != raw.len();
    unescape_at(&spaced)
        .map(|v| Cow::Owned(v.into_owned()))
        .map_err(|(m, at)| (m, if shifted { 0 } else { at }))
}

/// Whether attribute `key` (as written) declares a namespace (`xmlns`, `xmlns:p`): such a
/// declaration is never an attribute a field reads.
pub(super) fn is_namespace_declaration(key: &[u8]) -> bool {
    key.starts_with(b"xmlns") && (key.len() == 5 || key[5] == b':')
}

/// XML 1.0 `NameStartChar`, without `:`.
pub(super) fn is_name_start_char(c: char) -> bool {
    matches!(c, 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 `NameChar`, without `:`.
pub(super) fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Whether `name` is an XML 1.0 `Name` (colons allowed, as prefixes write them).
pub(super) fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == ':' || is_name_start_char(c))
        && chars.all(|c| c == ':' || is_name_char(c))
}

/// The XML 1.0 `Char` production (Rust strings already exclude surrogates).
pub(super) fn is_xml_char(c: char) -> bool {
    !matches!(c, '\0'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// The trimmed, unescaped text of an element from its pieces, line ends normalised when the
/// record holds a CR (`cr`). Trimming looks at the text as written, so white space written as
/// a character reference (`&#32;`, `&#13;`) is kept.
pub(super) fn join<'d>(pieces: &[Piece<'d>], cr: bool) -> Result<Cow<'d, str>, String> {
    // Most fields are one piece of text: trimmed once, not once to find it kept and again to
    // take it (what the general way below comes to for one piece).
    if let [piece] = pieces {
        return match *piece {
            Piece::Plain(t) => Ok(plain_value(t, cr)),
            Piece::Text(t) => text_value(trim_spaces(t), cr),
            Piece::CData(c) => Ok(cdata_value(c, cr)),
        };
    }
    let keeps = |p: &Piece| match p {
        Piece::Text(t) | Piece::Plain(t) => !trim_spaces(t).is_empty(),
        // An empty CDATA section holds nothing to keep: `<n> 42 <![CDATA[]]></n>` is `42`.
        Piece::CData(c) => !c.is_empty(),
    };
    let (Some(first), Some(last)) = (
        pieces.iter().position(keeps),
        pieces.iter().rposition(keeps),
    ) else {
        return Ok(Cow::Borrowed(""));
    };
    // Text is trimmed at the start of the first piece kept and at the end of the last.
    let trimmed = |i: usize, mut t: &'d str| {
        if i == first {
            t = trim_start_spaces(t);
        }
        if i == last {
            t = trim_end_spaces(t);
        }
        t
    };
    let part = |i: usize| -> Result<Cow<'d, str>, String> {
        match pieces[i] {
            Piece::CData(c) => Ok(cdata_value(c, cr)),
            Piece::Text(t) => text_value(trimmed(i, t), cr),
            // Without `&`, unescaping leaves the text as it is: only line ends to normalise,
            // as in a CDATA section.
            Piece::Plain(t) => Ok(cdata_value(trimmed(i, t), cr)),
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
