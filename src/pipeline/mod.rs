//! validate -> map -> mask: what happens to one record, as pure functions with no I/O.
//!
//! [`VendorProfile::build`] turns a vendor's configuration into the runtime object the hot loop
//! uses: regexes compiled, field references resolved to indexes, rules compiled, lookup tables
//! shared, the masking key attached, codecs described. Every cross-reference error is reported
//! here with the file, line and key. [`VendorProfile::apply`] then takes one decoded record to
//! its output values or to the list of problems that reject it.

pub mod map;
pub mod mask;
pub mod rules;
pub mod text;
pub mod validate;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::codecs::{self, Decoder, Encoder, Locator};
use crate::config::{
    AlignConfig, Config, ConfigError, Encoding, FieldConfig, Format, KeyPath, OutputFieldConfig,
    Priority, SkipLimitConfig,
};
use map::{Lookup, NumberFormat, OutputField, Source, Transform};
use mask::{Mask, MaskKey};
use rules::Condition;
use validate::{FieldCheck, Typed};

/// Why a record is rejected: the field (when one is concerned), the rule, a readable reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub rule: String,
    pub reason: String,
}

impl Problem {
    /// The key under which rejects are counted: `field.rule`, or the rule alone.
    pub fn key(&self) -> String {
        match &self.field {
            Some(f) => format!("{f}.{}", self.rule),
            None => self.rule.clone(),
        }
    }
}

/// How many rejects a file may have before it fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SkipLimit {
    Unlimited,
    Count(u64),
    /// Percentage of the file's records (0..=100).
    Percent(f64),
}

impl SkipLimit {
    /// Vendor `index`'s limit from the config.
    pub fn of(cfg: &Config, index: usize) -> Result<SkipLimit, ConfigError> {
        Ok(match &cfg.vendors[index].skip_limit {
            None => SkipLimit::Unlimited,
            Some(SkipLimitConfig::Count(n)) => SkipLimit::Count(*n),
            Some(SkipLimitConfig::Text(t)) => {
                let p = t
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| {
                        cfg.at(
                            &KeyPath::vendor(index).key("skip_limit"),
                            format!("{t:?} is neither a count nor a percentage like \"2%\""),
                        )
                    })?;
                SkipLimit::Percent(p)
            }
        })
    }

    /// Whether `rejected` out of `total` records exceeds the limit.
    pub fn exceeded(&self, rejected: u64, total: u64) -> bool {
        match *self {
            SkipLimit::Unlimited => false,
            SkipLimit::Count(n) => rejected > n,
            SkipLimit::Percent(p) => total > 0 && (rejected as f64) * 100.0 > p * total as f64,
        }
    }
}

impl std::fmt::Display for SkipLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipLimit::Unlimited => f.write_str("unlimited"),
            SkipLimit::Count(n) => write!(f, "{n} records"),
            SkipLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[derive(Debug, Clone)]
enum BusinessRule {
    Check {
        name: String,
        cond: Condition,
    },
    Require {
        name: String,
        when: Condition,
        fields: Vec<usize>,
    },
}

/// How to read one vendor's input.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub format: Format,
    delimiter: u8,
    quote: u8,
    header: bool,
    record: String,
    locators: Vec<(String, Locator)>,
    fixed: Vec<(String, codecs::fixed::FixedField)>,
}

/// How to write one vendor's output.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    pub format: Format,
    delimiter: u8,
    quote: u8,
    header: bool,
    bom: bool,
    crlf: bool,
    root: String,
    record: String,
    attributes: Vec<bool>,
    fixed: Vec<(String, codecs::fixed::FixedField)>,
    /// Output file name pattern.
    pub file_name: String,
    /// Reject file name pattern.
    pub reject_file_name: String,
}

/// A vendor, compiled for processing.
#[derive(Debug, Clone)]
pub struct VendorProfile {
    pub id: String,
    pub name: String,
    pub priority: Priority,
    pub sla: Option<Duration>,
    pub after: Vec<String>,
    pub skip_limit: SkipLimit,
    pub input: InputSpec,
    pub checks: Vec<FieldCheck>,
    rules: Vec<BusinessRule>,
    pub outputs: Vec<OutputField>,
    pub output: OutputSpec,
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

/// Reads `2h`, `90m`, `1h30m` or `45s` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like \"2h\" or \"90m\": {e}"))
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

impl VendorProfile {
    /// Compiles vendor `index` of `cfg`. `key` is the masking key, needed only when a field
    /// uses `mask = "hash"`.
    pub fn build(
        cfg: &Config,
        index: usize,
        key: Option<&MaskKey>,
    ) -> Result<VendorProfile, ConfigError> {
        let v = &cfg.vendors[index];
        let at = KeyPath::vendor(index);

        let sla = match &v.sla {
            Some(s) => Some(parse_duration(s).map_err(|m| cfg.at(&at.key("sla"), m))?),
            None => None,
        };
        for (i, dep) in v.after.iter().enumerate() {
            if cfg.vendor(dep).is_none() {
                return Err(cfg.at(&at.key("after").index(i), format!("unknown vendor `{dep}`")));
            }
            if dep == &v.id {
                return Err(cfg.at(
                    &at.key("after").index(i),
                    "a vendor cannot run after itself",
                ));
            }
        }
        let skip_limit = SkipLimit::of(cfg, index)?;

        // Fields.
        if v.fields.is_empty() {
            return Err(cfg.at(&at.key("fields"), "a vendor needs at least one field"));
        }
        let mut checks = Vec::with_capacity(v.fields.len());
        for (i, f) in v.fields.iter().enumerate() {
            let fat = at.key("fields").index(i);
            if v.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(cfg.at(
                    &fat.key("name"),
                    format!("field `{}` is defined twice", f.name),
                ));
            }
            checks.push(FieldCheck::build(f).map_err(|(k, m)| cfg.at(&fat.key(k), m))?);
        }
        let find = |name: &str| v.fields.iter().position(|f| f.name == name);

        let input = Self::input_spec(cfg, index)?;

        // Rules.
        let mut rules = Vec::new();
        for (i, r) in v.rules.iter().enumerate() {
            let rat = at.key("rules").index(i);
            let rule = match (&r.check, &r.when) {
                (Some(c), None) if r.require.is_empty() => BusinessRule::Check {
                    name: r.name.clone(),
                    cond: Condition::compile(c, &checks)
                        .map_err(|m| cfg.at(&rat.key("check"), m))?,
                },
                (None, Some(w)) if !r.require.is_empty() => {
                    let when =
                        Condition::compile(w, &checks).map_err(|m| cfg.at(&rat.key("when"), m))?;
                    let mut fields = Vec::new();
                    for (j, name) in r.require.iter().enumerate() {
                        fields.push(find(name).ok_or_else(|| {
                            cfg.at(
                                &rat.key("require").index(j),
                                format!("unknown field `{name}`"),
                            )
                        })?);
                    }
                    BusinessRule::Require {
                        name: r.name.clone(),
                        when,
                        fields,
                    }
                }
                _ => {
                    return Err(cfg.at(
                        &rat,
                        format!(
                            "rule `{}` needs either `check`, or `when` with `require`",
                            r.name
                        ),
                    ));
                }
            };
            rules.push(rule);
        }

        // Lookups, shared between fields.
        let lookups: BTreeMap<&str, Arc<map::LookupTable>> = v
            .lookups
            .iter()
            .map(|(k, t)| (k.as_str(), Arc::new(map::LookupTable::new(t))))
            .collect();

        // Output fields: explicit, or every input field unchanged.
        let implicit: Vec<OutputFieldConfig>;
        let out_cfgs: &[OutputFieldConfig] = if v.output.fields.is_empty() {
            implicit = v.fields.iter().map(|f| implicit_output(f)).collect();
            &implicit
        } else {
            &v.output.fields
        };
        let mut outputs = Vec::with_capacity(out_cfgs.len());
        for (i, o) in out_cfgs.iter().enumerate() {
            let oat = at.key("output").key("fields").index(i);
            outputs.push(Self::output_field(cfg, o, &oat, &checks, &lookups, key)?);
        }
        let output = Self::output_spec(cfg, index, out_cfgs)?;

        Ok(VendorProfile {
            id: v.id.clone(),
            name: v.name.clone().unwrap_or_else(|| v.id.clone()),
            priority: v.priority,
            sla,
            after: v.after.clone(),
            skip_limit,
            input,
            checks,
            rules,
            outputs,
            output,
        })
    }

    fn input_spec(cfg: &Config, index: usize) -> Result<InputSpec, ConfigError> {
        let v = &cfg.vendors[index];
        let at = KeyPath::vendor(index).key("input");
        let inp = &v.input;
        let only =
            |present: bool, key: &str, formats: &str| only_for(cfg, &at, present, key, formats);
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

    fn output_field(
        cfg: &Config,
        o: &OutputFieldConfig,
        oat: &KeyPath,
        checks: &[FieldCheck],
        lookups: &BTreeMap<&str, Arc<map::LookupTable>>,
        key: Option<&MaskKey>,
    ) -> Result<OutputField, ConfigError> {
        let find = |name: &str| checks.iter().position(|c| c.name == name);
        let sources = [o.from.is_some(), o.value.is_some(), o.template.is_some()];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(cfg.at(oat, "give at most one of `from`, `value` and `template`"));
        }
        let source = if let Some(c) = &o.value {
            Source::Const(c.clone())
        } else if let Some(t) = &o.template {
            Source::Template(
                map::parse_template(t, find).map_err(|m| cfg.at(&oat.key("template"), m))?,
            )
        } else {
            let name = o.from.as_deref().unwrap_or(&o.name);
            let k = if o.from.is_some() {
                oat.key("from")
            } else {
                oat.key("name")
            };
            Source::Field(find(name).ok_or_else(|| {
                cfg.at(
                    &k,
                    format!("unknown input field `{name}`; give `from`, `value` or `template`"),
                )
            })?)
        };
        let field_kind = match source {
            Source::Field(i) => Some(checks[i].kind),
            _ => None,
        };
        let mut transforms = Vec::new();
        for (j, t) in o.transform.iter().enumerate() {
            transforms.push(Transform::parse(t).ok_or_else(|| {
                cfg.at(
                    &oat.key("transform").index(j),
                    format!("unknown transform {t:?}; use trim, upper or lower"),
                )
            })?);
        }
        use crate::config::FieldType as T;
        if let Some(fmt) = &o.date_format {
            if !matches!(field_kind, Some(T::Date | T::Timestamp)) {
                return Err(cfg.at(
                    &oat.key("date_format"),
                    "applies to an output taken `from` a date or timestamp field",
                ));
            }
            validate::check_chrono_format(fmt).map_err(|m| cfg.at(&oat.key("date_format"), m))?;
        }
        let number = if o.decimals.is_some()
            || o.decimal_separator.is_some()
            || o.thousands_separator.is_some()
        {
            if !matches!(field_kind, Some(T::Integer | T::Decimal)) {
                return Err(cfg.at(oat, "number formatting applies to an output taken `from` an integer or decimal field"));
            }
            Some(NumberFormat {
                decimals: o.decimals,
                decimal_separator: o.decimal_separator.clone().unwrap_or_else(|| ".".into()),
                thousands_separator: o.thousands_separator.clone().unwrap_or_default(),
            })
        } else {
            None
        };
        let lookup = match &o.lookup {
            Some(name) => Some(Lookup {
                table_name: name.clone(),
                table: lookups.get(name.as_str()).cloned().ok_or_else(|| {
                    cfg.at(&oat.key("lookup"), format!("unknown lookup table `{name}`"))
                })?,
                default: o.lookup_default.clone(),
            }),
            None => None,
        };
        let mask = match o.mask.as_deref() {
            None => None,
            Some("hash") => Some(Mask::Hash {
                key: key.cloned().ok_or_else(|| {
                    cfg.at(
                        &oat.key("mask"),
                        "`hash` masking needs a key: set the variable named by `[masking] key_env` \
                         (default `BATCHWIN_MASK_KEY`) or `[masking] key_file`",
                    )
                })?,
                length: match o.hash_length {
                    Some(n) if (8..=64).contains(&n) => n,
                    Some(n) => {
                        return Err(cfg.at(
                            &oat.key("hash_length"),
                            format!("{n} is not between 8 and 64"),
                        ));
                    }
                    None => 64,
                },
            }),
            Some("redact") => Some(Mask::Redact(
                o.redact_text.clone().unwrap_or_else(|| "***".into()),
            )),
            Some("keep_last") => Some(Mask::KeepLast(o.keep.unwrap_or(4))),
            Some("email_domain") => Some(Mask::EmailDomain),
            Some("null") => Some(Mask::Null),
            Some(other) => {
                return Err(cfg.at(
                    &oat.key("mask"),
                    format!(
                        "unknown mask {other:?}; use hash, redact, keep_last, email_domain or null"
                    ),
                ));
            }
        };
        Ok(OutputField {
            name: o.name.clone(),
            source,
            transforms,
            date_format: o.date_format.as_deref().map(map::DateFormat::new),
            number,
            lookup,
            mask,
        })
    }

    fn output_spec(
        cfg: &Config,
        index: usize,
        fields: &[OutputFieldConfig],
    ) -> Result<OutputSpec, ConfigError> {
        let v = &cfg.vendors[index];
        let at = KeyPath::vendor(index).key("output");
        let o = &v.output;
        let crlf = match o.line_ending.as_deref() {
            None | Some("lf") => false,
            Some("crlf") => true,
            Some(other) => {
                return Err(cfg.at(
                    &at.key("line_ending"),
                    format!("{other:?}: use \"lf\" or \"crlf\""),
                ));
            }
        };
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
        })
    }

    /// A fresh decoder for one file of this vendor.
    pub fn decoder(&self) -> Result<Box<dyn Decoder>, String> {
        self.input.decoder()
    }

    /// A decoder for vendor `index` without building the rest of the profile (no masking key
    /// needed): what the planner uses to cut large files at record boundaries.
    pub fn input_decoder(cfg: &Config, index: usize) -> Result<Box<dyn Decoder>, ConfigError> {
        let spec = Self::input_spec(cfg, index)?;
        spec.decoder()
            .map_err(|m| cfg.at(&KeyPath::vendor(index).key("input"), m))
    }

    /// The encoder for this vendor's output.
    pub fn encoder(&self) -> Result<Box<dyn Encoder>, String> {
        let o = &self.output;
        let names: Vec<String> = self.outputs.iter().map(|f| f.name.clone()).collect();
        Ok(match o.format {
            Format::Csv => Box::new(codecs::csv::CsvEncoder::new(
                codecs::csv::CsvWriteOptions {
                    delimiter: o.delimiter,
                    quote: o.quote,
                    header: o.header,
                    bom: o.bom,
                    crlf: o.crlf,
                },
                names,
            )?),
            Format::Jsonl => Box::new(codecs::jsonl::JsonlEncoder::new(names)?),
            Format::Xml => Box::new(codecs::xml::XmlEncoder::new(
                codecs::xml::XmlWriteOptions {
                    root: o.root.clone(),
                    record: o.record.clone(),
                },
                names
                    .into_iter()
                    .zip(o.attributes.iter().copied())
                    .collect(),
            )?),
            Format::Fixed => Box::new(codecs::fixed::FixedEncoder::new(o.fixed.clone(), o.crlf)?),
        })
    }

    /// Validates, maps and masks one record. Returns the output values in output order, or
    /// every problem found (all field problems, then rules when the fields were valid).
    pub fn apply<'a>(
        &'a self,
        values: &'a [Option<Cow<'a, str>>],
    ) -> Result<Vec<Option<Cow<'a, str>>>, Vec<Problem>> {
        let mut out = Vec::with_capacity(self.outputs.len());
        self.apply_into(values, &mut self.workspace(), &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    /// Working memory for [`apply_into`](Self::apply_into), for one thread.
    pub fn workspace(&self) -> Workspace {
        Workspace {
            caches: self.checks.iter().map(|_| None).collect(),
            texts: map::Texts::default(),
        }
    }

    /// [`apply`](Self::apply) with working memory the caller keeps between records: `ws` (see
    /// [`workspace`](Self::workspace)), `typed` and `out` (see [`recycle`]), which receives the
    /// output values.
    pub fn apply_into<'a>(
        &'a self,
        values: &'a [Option<Cow<'a, str>>],
        ws: &mut Workspace,
        typed: &mut Vec<Typed<'a>>,
        out: &mut Vec<Option<Cow<'a, str>>>,
    ) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        typed.clear();
        out.clear();
        for ((check, value), cache) in self.checks.iter().zip(values).zip(&mut ws.caches) {
            match check.check_with(value.as_deref(), cache) {
                Ok(t) => typed.push(t),
                Err(v) => {
                    problems.push(Problem {
                        field: Some(check.name.clone()),
                        rule: v.rule.to_string(),
                        reason: format!("field `{}`: {}", check.name, v.reason),
                    });
                    typed.push(Typed::Null);
                }
            }
        }
        if problems.is_empty() {
            for rule in &self.rules {
                match rule {
                    BusinessRule::Check { name, cond } => {
                        if cond.eval(typed) == Some(false) {
                            problems.push(Problem {
                                field: None,
                                rule: name.clone(),
                                reason: format!("rule `{name}` failed: {}", cond.text()),
                            });
                        }
                    }
                    BusinessRule::Require { name, when, fields } => {
                        if when.eval(typed) == Some(true) {
                            for &f in fields {
                                if matches!(typed[f], Typed::Null) {
                                    problems.push(Problem {
                                        field: None,
                                        rule: name.clone(),
                                        reason: format!(
                                            "rule `{name}`: field `{}` is required when {}",
                                            self.checks[f].name,
                                            when.text()
                                        ),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for f in &self.outputs {
            match f.value(values, typed, &mut ws.texts) {
                Ok(v) => out.push(v),
                Err(e) => problems.push(Problem {
                    field: Some(f.name.clone()),
                    rule: e.rule.to_string(),
                    reason: format!("output field `{}`: {}", f.name, e.reason),
                }),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Working memory of [`VendorProfile::apply_into`] that is not per record: for each field
/// pattern that the regex engine checks (one too large for a small DFA), its search cache,
/// made at its first match, which a regex shared by threads would otherwise take from (and
/// give back to) a shared pool on every match; and the strings new output text is written
/// into, given back by [`Workspace::reclaim`] once a record's outputs are written.
#[derive(Debug)]
pub struct Workspace {
    caches: Vec<Option<regex_automata::meta::Cache>>,
    texts: map::Texts,
}

impl Workspace {
    /// Takes back the text of a record's output values (emptying `values`).
    pub fn reclaim<'a>(&mut self, values: &mut Vec<Option<Cow<'a, str>>>) {
        self.texts.reclaim(values);
    }
}

/// An empty vector for values of another lifetime that keeps `v`'s allocation, so that the
/// per-record vectors of a chunk are allocated once, not once per record.
pub fn recycle<A, B>(mut v: Vec<A>) -> Vec<B> {
    v.clear();
    // Collecting an empty iterator in place reuses the buffer when `A` and `B` have the same
    // size and alignment (they differ only in lifetimes here); otherwise it is a new vector.
    v.into_iter().map(|_| unreachable!()).collect()
}

fn implicit_output(f: &FieldConfig) -> OutputFieldConfig {
    OutputFieldConfig {
        name: f.name.clone(),
        from: None,
        value: None,
        template: None,
        transform: Vec::new(),
        date_format: None,
        decimals: None,
        decimal_separator: None,
        thousands_separator: None,
        lookup: None,
        lookup_default: None,
        mask: None,
        keep: None,
        hash_length: None,
        redact_text: None,
        attribute: false,
        start: f.start,
        width: f.width,
        align: f.align,
        pad: f.pad.clone(),
    }
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

/// A name pattern may use `{vendor}`, `{stem}`, `{name}`, `{ext}` and `{date}`, and must stay a
/// plain file name.
fn check_name_pattern(p: &str) -> Result<(), String> {
    if p.contains('/') || p.contains('\\') || p.contains("..") {
        return Err(format!("{p:?} must be a file name, not a path"));
    }
    let mut rest = p;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else {
            return Err(format!("{p:?} has an unclosed `{{`"));
        };
        let name = &rest[i + 1..i + j];
        if !matches!(name, "vendor" | "stem" | "name" | "ext" | "date") {
            return Err(format!(
                "unknown placeholder `{{{name}}}`; use vendor, stem, name, ext or date"
            ));
        }
        rest = &rest[i + j + 1..];
    }
    Ok(())
}

/// Expands a name pattern for one input file.
pub fn expand_name(pattern: &str, vendor: &str, input_name: &str, date: &str) -> String {
    let (stem, ext) = match input_name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, e),
        _ => (input_name, ""),
    };
    pattern
        .replace("{vendor}", vendor)
        .replace("{stem}", stem)
        .replace("{name}", input_name)
        .replace("{ext}", ext)
        .replace("{date}", date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_vectors_keep_their_allocation() {
        let text = String::from("value");
        let mut v: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(16);
        v.push(Some(Cow::Borrowed(text.as_str())));
        let ptr = v.as_ptr() as usize;
        let w: Vec<Option<Cow<'static, str>>> = recycle(v);
        assert!(w.is_empty());
        assert_eq!(w.capacity(), 16);
        assert_eq!(w.as_ptr() as usize, ptr);
    }
}
