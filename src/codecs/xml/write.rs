//! Writing XML: the prolog, the root element, one record element per line, values escaped so
//! that they read back exactly; names checked to be XML names without a colon.

use crate::codecs::{EncodeError, Encoder, check_arity, put};

use super::scan::{
    forbidden_char, is_name_char, is_name_start_char, trim_spaces, trim_start_spaces,
};

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
    /// What each field's value is written between: ` name="` and `"` for an attribute,
    /// `<name>` and `</name>` for an element (made once, copied whole for each value).
    marks: Vec<(Vec<u8>, Vec<u8>)>,
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
        let marks = fields
            .iter()
            .map(|(name, attribute)| match attribute {
                true => (format!(" {name}=\"").into_bytes(), b"\"".to_vec()),
                false => (
                    format!("<{name}>").into_bytes(),
                    format!("</{name}>").into_bytes(),
                ),
            })
            .collect();
        Ok(XmlEncoder {
            opts,
            fields,
            marks,
        })
    }

    fn write(&self, values: &[Option<&str>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let record = self.opts.record.as_bytes();
        let fail = |name: &str, reason| EncodeError {
            field: name.to_string(),
            reason,
        };
        out.push(b'<');
        put(out, record);
        let fields = || self.fields.iter().zip(&self.marks).zip(values);
        for (((name, _), (open, close)), v) in fields().filter(|(((_, a), _), _)| *a) {
            if let Some(v) = v {
                put(out, open);
                escape(out, v, true).map_err(|r| fail(name, r))?;
                put(out, close);
            }
        }
        out.push(b'>');
        for (((name, _), (open, close)), v) in fields().filter(|(((_, a), _), _)| !*a) {
            if let Some(v) = v {
                put(out, open);
                escape(out, v, false).map_err(|r| fail(name, r))?;
                put(out, close);
            }
        }
        put(out, b"</");
        put(out, record);
        put(out, b">\n");
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
#[inline(always)]
pub(super) fn escape(out: &mut Vec<u8>, v: &str, attribute: bool) -> Result<(), String> {
    // Most values need nothing done: no markup characters, no control characters, no byte
    // that may start U+FFFE/U+FFFF, and no spaces at the ends of element text. They are
    // copied here, in the writer's loop; a call for each value, which saved the registers the
    // escaping needs, took 191 of the 20,967 instructions a record of V007's file 0115 took
    // (callgrind), where one value in twenty needs escaping.
    let plain = !crate::codecs::needs_xml_escape(v.as_bytes());
    if plain && (attribute || !v.starts_with(' ') && !v.ends_with(' ')) {
        put(out, v.as_bytes());
        return Ok(());
    }
    escape_marked(out, v, attribute)
}

/// [`escape`] of a value that needs more than a copy.
#[inline(never)]
fn escape_marked(out: &mut Vec<u8>, v: &str, attribute: bool) -> Result<(), String> {
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
pub(super) fn is_xml_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}
