//! How a vendor's files are read and written: the input and output specs built from
//! `[vendor.input]`, `[vendor.output]` and the fields' locations, and the codecs they make
//! (a fresh decoder per file, one encoder per vendor).

use crate::codecs::{self, Decoder, Locator};
use crate::config::{
    AlignConfig, Config, ConfigError, Encoding, FieldConfig, Format, JsonEmpty, JsonValues,
    KeyPath, LineEnding, OutputFieldConfig, PdfOrientation, PdfPageSize, RejectRaw,
};

use super::names::check_name_pattern;

/// How to read one vendor's input.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub format: Format,
    pub(super) delimiter: u8,
    pub(super) quote: u8,
    pub(super) header: bool,
    pub(super) record: String,
    pub(super) locators: Vec<(String, Locator)>,
    pub(super) fixed: Vec<(String, codecs::fixed::FixedField)>,
}

/// How to write one vendor's output.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    pub format: Format,
    pub(super) delimiter: u8,
    pub(super) quote: u8,
    pub(super) header: bool,
    pub(super) bom: bool,
    pub(super) crlf: bool,
    pub(super) root: String,
    pub(super) record: String,
    pub(super) attributes: Vec<bool>,
    /// JSON Lines: typed values or strings, and how an empty value is written.
    pub(super) json_values: JsonValues,
    pub(super) json_empty: JsonEmpty,
    pub(super) fixed: Vec<(String, codecs::fixed::FixedField)>,
    /// Output file name pattern.
    pub file_name: String,
    /// Reject file name pattern.
    pub reject_file_name: String,
    /// What a reject line keeps of the record's text.
    pub reject_raw: RejectRaw,
    /// CSV: neutralise values that start like a spreadsheet formula.
    pub(super) formula_guard: bool,
    /// PDF: the table's title, paper, orientation, text size and page limit.
    pub(super) pdf: PdfSpec,
}

/// How a PDF output is laid out (`pdf_*` keys of `[vendor.output]`).
#[derive(Debug, Clone)]
pub(super) struct PdfSpec {
    pub(super) title: Option<String>,
    pub(super) paper: codecs::pdf::Paper,
    pub(super) orientation: codecs::pdf::Orientation,
    pub(super) font_size: f32,
    pub(super) max_pages: u32,
}

/// The page limit of a PDF output when `pdf_max_pages` is not given: at 8 points about 52
/// one-line rows a page, some 260,000 records. The document is held in memory until it is
/// written (measured: 100,000 records of 8 columns made 1,924 pages, 4.8 KB a page), so 5,000
/// pages keep it near 25 MB.
pub const DEFAULT_PDF_MAX_PAGES: u32 = 5000;

/// Vendor `index`'s PDF settings, checked whatever the output format (as `delimiter` is: see
/// docs/config.md, output keys of another format are accepted and have no effect).
fn pdf_spec(cfg: &Config, index: usize) -> Result<PdfSpec, ConfigError> {
    let o = &cfg.vendors[index].output;
    let at = KeyPath::vendor(index).key("output");
    let font_size = o.pdf_font_size.unwrap_or(8.0);
    if !(5.0..=16.0).contains(&font_size) {
        return Err(cfg.at(
            &at.key("pdf_font_size"),
            format!("{font_size} is not a text size between 5 and 16 points"),
        ));
    }
    let max_pages = o.pdf_max_pages.unwrap_or(DEFAULT_PDF_MAX_PAGES);
    if max_pages == 0 {
        return Err(cfg.at(&at.key("pdf_max_pages"), "must be at least 1"));
    }
    Ok(PdfSpec {
        title: o.pdf_title.clone(),
        paper: match o.pdf_page_size {
            PdfPageSize::A4 => codecs::pdf::Paper::A4,
            PdfPageSize::Letter => codecs::pdf::Paper::LETTER,
        },
        orientation: match o.pdf_orientation {
            PdfOrientation::Auto => codecs::pdf::Orientation::Auto,
            PdfOrientation::Portrait => codecs::pdf::Orientation::Portrait,
            PdfOrientation::Landscape => codecs::pdf::Orientation::Landscape,
        },
        font_size,
        max_pages,
    })
}

fn one_byte(
    value: &Option<String>,
    default: u8,
    cfg: &Config,
    at: KeyPath,
) -> Result<u8, ConfigError> {
    match value {
        None => Ok(default),
        Some(s) if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        Some(s) if s == "\\t" => Ok(b'\t'),
        Some(s) => Err(cfg.at(&at, format!("must be one ASCII character, not {s:?}"))),
    }
}

fn one_char(value: &Option<String>, cfg: &Config, at: KeyPath) -> Result<char, ConfigError> {
    match value.as_deref() {
        None => Ok(' '),
        Some(s) if s.chars().count() == 1 => Ok(s.chars().next().unwrap_or(' ')),
        Some(s) => Err(cfg.at(&at, format!("must be one character, not {s:?}"))),
    }
}

fn align(a: Option<AlignConfig>) -> codecs::Align {
    match a.unwrap_or_default() {
        AlignConfig::Left => codecs::Align::Left,
        AlignConfig::Right => codecs::Align::Right,
    }
}

impl InputSpec {
    /// Each field's name and where the reader finds it in a record.
    pub fn locators(&self) -> &[(String, Locator)] {
        &self.locators
    }

    /// A fresh decoder for one file.
    pub fn decoder(&self) -> Result<Box<dyn Decoder>, String> {
        let i = self;
        Ok(match i.format {
            Format::Csv => Box::new(codecs::csv::CsvDecoder::new(
                codecs::csv::CsvReadOptions {
                    delimiter: i.delimiter,
                    quote: i.quote,
                    header: i.header,
                },
                i.locators.clone(),
            )?),
            Format::Jsonl => Box::new(codecs::jsonl::JsonlDecoder::new(i.locators.clone())?),
            Format::Xml => Box::new(codecs::xml::XmlDecoder::new(
                i.record.clone(),
                i.locators.clone(),
            )?),
            Format::Fixed => Box::new(codecs::fixed::FixedDecoder::new(i.fixed.clone())?),
            Format::Pdf => return Err("pdf is an output format only".into()),
        })
    }
}

/// Vendor `index`'s input spec.
pub(super) fn input_spec(cfg: &Config, index: usize) -> Result<InputSpec, ConfigError> {
    let v = &cfg.vendors[index];
    let at = KeyPath::vendor(index).key("input");
    let inp = &v.input;
    let only =
        |present: bool, key: &'static str, formats: &str| only_for(cfg, &at, present, key, formats);
    if inp.format == Format::Pdf {
        return Err(cfg.at(
            &at.key("format"),
            "pdf is an output format only: a vendor's input is csv, jsonl, xml or fixed",
        ));
    }
    if inp.format != Format::Csv {
        only(inp.delimiter.is_some(), "delimiter", "csv")?;
        only(inp.quote.is_some(), "quote", "csv")?;
        only(inp.header.is_some(), "header", "csv")?;
    }
    if inp.format != Format::Xml {
        only(inp.record.is_some(), "record", "xml")?;
    }
    let header = inp.header.unwrap_or(true);
    let mut locators = Vec::new();
    let mut fixed = Vec::new();
    for (i, f) in v.fields.iter().enumerate() {
        let fat = KeyPath::vendor(index).key("fields").index(i);
        let loc = field_locator(cfg, inp.format, header, f, &fat)?;
        if let Locator::Fixed { start, width } = loc {
            fixed.push((
                f.name.clone(),
                codecs::fixed::FixedField {
                    start,
                    width,
                    align: align(f.align),
                    pad: one_char(&f.pad, cfg, fat.key("pad"))?,
                },
            ));
        }
        locators.push((f.name.clone(), loc));
    }
    Ok(InputSpec {
        format: inp.format,
        delimiter: one_byte(&inp.delimiter, b',', cfg, at.key("delimiter"))?,
        quote: one_byte(&inp.quote, b'"', cfg, at.key("quote"))?,
        header,
        record: inp.record.clone().unwrap_or_else(|| "record".into()),
        locators,
        fixed,
    })
}

/// Vendor `index`'s output spec, for the output `fields` (explicit or implicit).
pub(super) fn output_spec(
    cfg: &Config,
    index: usize,
    fields: &[OutputFieldConfig],
) -> Result<OutputSpec, ConfigError> {
    let v = &cfg.vendors[index];
    let at = KeyPath::vendor(index).key("output");
    let o = &v.output;
    let crlf = o.line_ending == LineEnding::Crlf;
    let mut fixed = Vec::new();
    if o.format == Format::Fixed {
        let mut next = 0usize;
        for (i, f) in fields.iter().enumerate() {
            let fat = at.key("fields").index(i);
            let width = f.width.ok_or_else(|| {
                cfg.at(
                    &fat,
                    format!("fixed-width output field `{}` needs `width`", f.name),
                )
            })?;
            let start = f.start.unwrap_or(next);
            next = start + width;
            fixed.push((
                f.name.clone(),
                codecs::fixed::FixedField {
                    start,
                    width,
                    align: align(f.align),
                    pad: one_char(&f.pad, cfg, fat.key("pad"))?,
                },
            ));
        }
    }
    let ext = match o.format {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
        Format::Xml => "xml",
        Format::Fixed => "txt",
        Format::Pdf => "pdf",
    };
    let file_name = o
        .file_name
        .clone()
        .unwrap_or_else(|| format!("{{stem}}.out.{ext}"));
    let reject_file_name = o
        .reject_file_name
        .clone()
        .unwrap_or_else(|| "{stem}.rejects.jsonl".into());
    for (key, pattern) in [
        ("file_name", &file_name),
        ("reject_file_name", &reject_file_name),
    ] {
        check_name_pattern(pattern).map_err(|m| cfg.at(&at.key(key), m))?;
    }
    if file_name == reject_file_name {
        return Err(cfg.at(&at.key("reject_file_name"), "must differ from `file_name`"));
    }
    Ok(OutputSpec {
        format: o.format,
        delimiter: one_byte(&o.delimiter, b',', cfg, at.key("delimiter"))?,
        quote: one_byte(&o.quote, b'"', cfg, at.key("quote"))?,
        header: o.header.unwrap_or(true),
        bom: o.encoding == Encoding::Utf8Bom,
        crlf,
        root: o.root.clone().unwrap_or_else(|| "records".into()),
        record: o.record.clone().unwrap_or_else(|| "record".into()),
        attributes: fields.iter().map(|f| f.attribute).collect(),
        json_values: o.json_values,
        json_empty: o.json_empty,
        fixed,
        file_name,
        reject_file_name,
        reject_raw: o.reject_raw,
        formula_guard: o.formula_guard,
        pdf: pdf_spec(cfg, index)?,
    })
}

/// Refuses a key given for an input format it does not apply to.
fn only_for(
    cfg: &Config,
    at: &KeyPath,
    present: bool,
    key: &'static str,
    formats: &str,
) -> Result<(), ConfigError> {
    if present {
        return Err(cfg.at(
            &at.key(key),
            format!("`{key}` applies to {formats} input only"),
        ));
    }
    Ok(())
}

/// Where an input field comes from, checked against the input format.
fn field_locator(
    cfg: &Config,
    format: Format,
    header: bool,
    f: &FieldConfig,
    fat: &KeyPath,
) -> Result<Locator, ConfigError> {
    let only =
        |present: bool, key: &'static str, formats: &str| only_for(cfg, fat, present, key, formats);
    if format != Format::Csv {
        only(f.column.is_some(), "column", "csv")?;
    }
    if format != Format::Fixed {
        only(f.start.is_some(), "start", "fixed")?;
        only(f.width.is_some(), "width", "fixed")?;
        only(f.align.is_some(), "align", "fixed")?;
        only(f.pad.is_some(), "pad", "fixed")?;
    }
    let source = f.source.clone().unwrap_or_else(|| f.name.clone());
    Ok(match format {
        Format::Csv => match f.column {
            Some(i) => {
                if f.source.is_some() {
                    return Err(cfg.at(
                        &fat.key("column"),
                        "give either `source` (a column name) or `column` (an index)",
                    ));
                }
                Locator::Index(i)
            }
            None if header => Locator::Column(source),
            None => {
                return Err(cfg.at(
                    fat,
                    format!(
                        "field `{}`: a CSV file without a header needs `column`",
                        f.name
                    ),
                ));
            }
        },
        Format::Jsonl => {
            let keys = json_keys(&source).map_err(|m| cfg.at(&fat.key("source"), m))?;
            if keys.len() > codecs::jsonl::MAX_PATH_KEYS {
                return Err(cfg.at(
                    &fat.key("source"),
                    format!(
                        "has {} keys; a JSON key path may have at most {}",
                        keys.len(),
                        codecs::jsonl::MAX_PATH_KEYS
                    ),
                ));
            }
            Locator::JsonPath(keys)
        }
        Format::Xml => {
            let mut parts: Vec<String> = source.split('/').map(str::to_string).collect();
            let attribute = match parts.last() {
                Some(last) if last.starts_with('@') => {
                    let a = last[1..].to_string();
                    parts.pop();
                    Some(a)
                }
                _ => None,
            };
            if let Some(a) = attribute
                .as_deref()
                .filter(|a| *a == "xmlns" || a.starts_with("xmlns:"))
            {
                return Err(cfg.at(
                    &fat.key("source"),
                    format!(
                        "`@{a}` is a namespace declaration, never an attribute a field can read"
                    ),
                ));
            }
            if parts.iter().any(|p| p.is_empty()) || attribute.as_deref() == Some("") {
                return Err(cfg.at(
                    &fat.key("source"),
                    format!("{source:?} is not an XML path like `a/b` or `a/@id`"),
                ));
            }
            Locator::Xml {
                elements: parts,
                attribute,
            }
        }
        Format::Fixed => {
            let (Some(start), Some(width)) = (f.start, f.width) else {
                return Err(cfg.at(
                    fat,
                    format!("fixed-width field `{}` needs `start` and `width`", f.name),
                ));
            };
            if width == 0 {
                return Err(cfg.at(&fat.key("width"), "must be at least 1"));
            }
            Locator::Fixed { start, width }
        }
        // Refused for input before any field is read (see `input_spec`).
        Format::Pdf => return Err(cfg.at(fat, "pdf is an output format only")),
    })
}

/// The keys of a JSON Lines `source`: dotted (`customer.address.city`), or a JSON Pointer
/// (RFC 6901) when it starts with `/`, for keys that hold a dot or are empty: `/m.x` is the
/// one key `m.x`, `~1` stands for `/` and `~0` for `~`.
fn json_keys(source: &str) -> Result<Vec<String>, String> {
    if let Some(pointer) = source.strip_prefix('/') {
        return pointer
            .split('/')
            .map(|token| {
                let mut key = String::with_capacity(token.len());
                let mut chars = token.chars();
                while let Some(c) = chars.next() {
                    if c != '~' {
                        key.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('0') => key.push('~'),
                        Some('1') => key.push('/'),
                        _ => {
                            return Err(format!(
                                "{source:?}: in a JSON Pointer `~` is written `~0` and `/` is written `~1`"
                            ));
                        }
                    }
                }
                Ok(key)
            })
            .collect();
    }
    let keys: Vec<String> = source.split('.').map(str::to_string).collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(format!(
            "{source:?} is not a JSON path like `a.b.c` (a key that holds a dot is written as a \
             JSON Pointer: `/a.b/c`)"
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::json_keys;

    #[test]
    fn json_key_paths_dotted_and_pointer() {
        let keys = |s: &str| json_keys(s).map(|k| k.join("|"));
        assert_eq!(keys("a.b.c"), Ok("a|b|c".into()));
        assert_eq!(keys("/m.x"), Ok("m.x".into()));
        assert_eq!(keys("/a~1b/c~0d/~01"), Ok("a/b|c~d|~1".into()));
        assert_eq!(keys("/"), Ok(String::new()));
        assert_eq!(
            json_keys("/a//b"),
            Ok(vec!["a".into(), String::new(), "b".into()])
        );
        for bad in ["a..b", ".a", "a.", "/a~2", "/a~"] {
            assert!(json_keys(bad).is_err(), "{bad}");
        }
    }
}
