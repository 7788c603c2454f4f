//! How a vendor's files are read and written: the input and output specs built from
//! `[vendor.input]`, `[vendor.output]` and the fields' locations, and the codecs they make
//! (a fresh decoder per file, one encoder per vendor).

use crate::codecs::{self, Decoder, Locator};
use crate::config::{
    AlignConfig, Config, ConfigError, Encoding, FieldConfig, Format, KeyPath, LineEnding,
    OutputFieldConfig, RejectRaw,
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
    pub(super) fixed: Vec<(String, codecs::fixed::FixedField)>,
    /// Output file name pattern.
    pub file_name: String,
    /// Reject file name pattern.
    pub reject_file_name: String,
    /// What a reject line keeps of the record's text.
    pub reject_raw: RejectRaw,
    /// CSV: neutralise values that start like a spreadsheet formula.
    pub(super) formula_guard: bool,
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
        })
    }
}

/// Vendor `index`'s input spec.
pub(super) fn input_spec(cfg: &Config, index: usize) -> Result<InputSpec, ConfigError> {
    let v = &cfg.vendors[index];
    let at = KeyPath::vendor(index).key("input");
    let inp = &v.input;
    let only = |present: bool, key: &str, formats: &str| only_for(cfg, &at, present, key, formats);
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
        fixed,
        file_name,
        reject_file_name,
        reject_raw: o.reject_raw,
        formula_guard: o.formula_guard,
    })
}

/// Refuses a key given for an input format it does not apply to.
fn only_for(
    cfg: &Config,
    at: &KeyPath,
    present: bool,
    key: &str,
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
    let only = |present: bool, key: &str, formats: &str| only_for(cfg, fat, present, key, formats);
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
            let keys: Vec<String> = source.split('.').map(str::to_string).collect();
            if keys.iter().any(|k| k.is_empty()) {
                return Err(cfg.at(
                    &fat.key("source"),
                    format!("{source:?} is not a JSON path like `a.b.c`"),
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
    })
}
