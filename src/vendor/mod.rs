//! A runnable vendor built from its configuration: [`Vendor::build`] checks every
//! cross-reference of `[[vendor]]` (a mapping naming a field that does not exist, a rule
//! comparing unknown fields, a lookup table that is missing) and reports it with the file,
//! line and key; compiles the record steps ([`crate::pipeline::Pipeline`]); resolves the
//! skip limit, SLA and masking key; and describes the codecs ([`spec`]) and output names
//! ([`names`]) of the vendor's files.

mod fields;
pub mod names;
pub mod profile;
pub mod spec;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;

use crate::codecs::{self, Decoder, Encoder};
use crate::config::{
    Config, ConfigError, Format, JsonEmpty, JsonValues, KeyPath, MaskKind, OutputFieldConfig,
    Priority, SkipLimitConfig,
};
use crate::exit::Failure;
use crate::pipeline::mask::MaskKey;
use crate::pipeline::rules::Condition;
use crate::pipeline::validate::FieldCheck;
use crate::pipeline::{BusinessRule, Pipeline, map};

pub use names::expand_name;
pub use spec::{InputSpec, OutputSpec};

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

/// A vendor, compiled for processing.
#[derive(Debug, Clone)]
pub struct Vendor {
    pub id: String,
    pub name: String,
    pub priority: Priority,
    pub sla: Option<Duration>,
    pub after: Vec<String>,
    pub skip_limit: SkipLimit,
    pub input: InputSpec,
    /// Its record steps: validate, rules, map, mask.
    pub pipeline: Pipeline,
    pub output: OutputSpec,
}

impl Vendor {
    /// Compiles vendor `index` of `cfg`. `key` is the masking key, needed only when a field
    /// uses `mask = "hash"`.
    pub fn build(cfg: &Config, index: usize, key: Option<&MaskKey>) -> Result<Vendor, ConfigError> {
        let v = &cfg.vendors[index];
        let at = KeyPath::vendor(index);

        let sla = v.sla.as_ref().map(|s| s.0);
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

        let input = spec::input_spec(cfg, index)?;

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
            implicit = v.fields.iter().map(fields::implicit_output).collect();
            &implicit
        } else {
            &v.output.fields
        };
        let mut outputs = Vec::with_capacity(out_cfgs.len());
        for (i, o) in out_cfgs.iter().enumerate() {
            let oat = at.key("output").key("fields").index(i);
            outputs.push(fields::output_field(cfg, o, &oat, &checks, &lookups, key)?);
        }
        let output = spec::output_spec(cfg, index, out_cfgs)?;

        Ok(Vendor {
            id: v.id.clone(),
            name: v.name.clone().unwrap_or_else(|| v.id.clone()),
            priority: v.priority,
            sla,
            after: v.after.clone(),
            skip_limit,
            input,
            pipeline: Pipeline::new(checks, rules, outputs),
            output,
        })
    }

    /// A fresh decoder for one file of this vendor.
    pub fn decoder(&self) -> Result<Box<dyn Decoder>, String> {
        self.input.decoder()
    }

    /// A decoder for vendor `index` without building the rest of the profile (no masking key
    /// needed): what the planner uses to cut large files at record boundaries.
    pub fn input_decoder(cfg: &Config, index: usize) -> Result<Box<dyn Decoder>, ConfigError> {
        let spec = spec::input_spec(cfg, index)?;
        spec.decoder()
            .map_err(|m| cfg.at(&KeyPath::vendor(index).key("input"), m))
    }

    /// How a JSON Lines output writes this vendor's values. An output field is a JSON number
    /// when it is taken `from` an integer or decimal field and nothing turns it into other
    /// text (no lookup, no mask, no thousands separator or decimal comma); `true`/`false` when
    /// taken `from` a boolean field with no lookup or mask; a string otherwise (constants,
    /// templates, every other type).
    fn json_options(&self) -> codecs::jsonl::JsonWriteOptions {
        use crate::config::FieldType as T;
        use codecs::jsonl::JsonType;
        let checks = &self.pipeline.checks;
        let types = match self.output.json_values {
            JsonValues::Strings => Vec::new(),
            JsonValues::Typed => self
                .pipeline
                .outputs
                .iter()
                .map(|o| {
                    let map::ValueSource::Field(i) = o.source else {
                        return JsonType::String;
                    };
                    if o.lookup.is_some() || o.mask.is_some() {
                        return JsonType::String;
                    }
                    let plain_number = o.number.as_ref().is_none_or(|n| {
                        n.decimal_separator == "." && n.thousands_separator.is_empty()
                    });
                    match checks.get(i).map(|c| c.kind) {
                        Some(T::Integer | T::Decimal) if plain_number => JsonType::Number,
                        Some(T::Boolean) => JsonType::Boolean,
                        _ => JsonType::String,
                    }
                })
                .collect(),
        };
        codecs::jsonl::JsonWriteOptions {
            types,
            omit_empty: self.output.json_empty == JsonEmpty::Omit,
        }
    }

    /// The encoder for this vendor's output.
    pub fn encoder(&self) -> Result<Box<dyn Encoder>, String> {
        let o = &self.output;
        let names: Vec<String> = self
            .pipeline
            .outputs
            .iter()
            .map(|f| f.name.clone())
            .collect();
        Ok(match o.format {
            Format::Csv => Box::new(codecs::csv::CsvEncoder::new(
                codecs::csv::CsvWriteOptions {
                    delimiter: o.delimiter,
                    quote: o.quote,
                    header: o.header,
                    bom: o.bom,
                    crlf: o.crlf,
                    formula_guard: o.formula_guard,
                },
                names,
            )?),
            Format::Jsonl => Box::new(codecs::jsonl::JsonlEncoder::new(
                names,
                self.json_options(),
            )?),
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
            Format::Pdf => Box::new(codecs::pdf::PdfEncoder::new(names.len())?),
        })
    }

    /// How this vendor's PDF table is laid out (whatever its output format; the engine asks
    /// only when it is `pdf`): the output fields as columns, numbers right-aligned.
    pub fn pdf_layout(&self) -> codecs::pdf::TableLayout {
        use crate::config::FieldType as T;
        let p = &self.output.pdf;
        let checks = &self.pipeline.checks;
        codecs::pdf::TableLayout {
            title: p.title.clone().unwrap_or_else(|| self.name.clone()),
            columns: self
                .pipeline
                .outputs
                .iter()
                .map(|f| f.name.clone())
                .collect(),
            numeric: self
                .pipeline
                .outputs
                .iter()
                .map(|o| match o.source {
                    map::ValueSource::Field(i) if o.lookup.is_none() && o.mask.is_none() => {
                        matches!(checks.get(i).map(|c| c.kind), Some(T::Integer | T::Decimal))
                    }
                    _ => false,
                })
                .collect(),
            paper: p.paper,
            orientation: p.orientation,
            font_size: p.font_size,
            max_pages: p.max_pages,
        }
    }
}

/// Builds every vendor of the config, so that any configuration error stops the run up front.
/// `key` is the masking key as the command loaded it: an error loading it stops only a config
/// with a vendor that hashes.
///
/// `choice` names the masking profile to apply (see [`profile`]); every profile is checked
/// against the vendors first, whichever is applied.
pub fn build_all(
    config: &Config,
    choice: &profile::MaskingChoice,
    key: anyhow::Result<Option<MaskKey>>,
) -> Result<Vec<Vendor>, Failure> {
    profile::check(config)?;
    let applied = profile::apply(config, choice.profile.as_deref())?;
    let config = &applied;
    let hashes = config.vendors.iter().any(|v| {
        v.output
            .fields
            .iter()
            .any(|f| f.mask == Some(MaskKind::Hash))
    });
    let key = match key {
        Ok(k) => k,
        Err(e) if hashes => return Err(Failure::usage(e)),
        Err(_) => None,
    };
    // Built on the pool's threads (the batch's; they start here instead of at its first
    // chunk), the first error in the configuration's order reported. `process --input` of one
    // small file, rounds of 100 runs alternating with the vendors built one after the other:
    // with a configuration of 120 vendors, faster in 12 of 14 rounds (27.9 against 31.5 ms a
    // run, the means of the last 8); with the bench's 12, in 10 of 14 (17.9 against 19.4 ms).
    let built: Vec<Result<Vendor, Failure>> = (0..config.vendors.len())
        .into_par_iter()
        .map(|i| {
            let p = Vendor::build(config, i, key.as_ref())?;
            let at = KeyPath::vendor(i);
            p.decoder()
                .map_err(|m| Failure::usage(config.at(&at.key("input"), m)))?;
            p.encoder()
                .map_err(|m| Failure::usage(config.at(&at.key("output"), m)))?;
            Ok(p)
        })
        .collect();
    built.into_iter().collect()
}
