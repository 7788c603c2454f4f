//! Compiling a vendor's output fields from `[[vendor.output.fields]]`: where each value comes
//! from (a field, a constant, a template), its transforms, date and number formats, lookup and
//! mask, every cross-reference checked with the file, line and key.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, ConfigError, FieldConfig, KeyPath, MaskKind, OutputFieldConfig};
use crate::pipeline::map::{self, Lookup, NumberFormat, OutputField, ValueSource};
use crate::pipeline::mask::{Mask, MaskKey};
use crate::pipeline::validate::{self, FieldCheck};

/// Compiles output field `o` (at `oat`) against the input fields' `checks`.
pub(super) fn output_field(
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
        ValueSource::Const(c.clone())
    } else if let Some(t) = &o.template {
        ValueSource::Template(
            map::parse_template(t, find).map_err(|m| cfg.at(&oat.key("template"), m))?,
        )
    } else {
        let name = o.from.as_deref().unwrap_or(&o.name);
        let k = if o.from.is_some() {
            oat.key("from")
        } else {
            oat.key("name")
        };
        ValueSource::Field(find(name).ok_or_else(|| {
            cfg.at(
                &k,
                format!("unknown input field `{name}`; give `from`, `value` or `template`"),
            )
        })?)
    };
    let field_kind = match source {
        ValueSource::Field(i) => Some(checks[i].kind),
        _ => None,
    };
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
    let number =
        if o.decimals.is_some() || o.decimal_separator.is_some() || o.thousands_separator.is_some()
        {
            if !matches!(field_kind, Some(T::Integer | T::Decimal)) {
                return Err(cfg.at(
                oat,
                "number formatting applies to an output taken `from` an integer or decimal field",
            ));
            }
            if o.decimals.is_some_and(|d| d > 28) {
                return Err(cfg.at(
                    &oat.key("decimals"),
                    "at most 28: a decimal holds no more digits after the point",
                ));
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
    let mask = match o.mask {
        None => None,
        Some(MaskKind::Hash) => Some(Mask::Hash {
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
        Some(MaskKind::Redact) => Some(Mask::Redact(
            o.redact_text.clone().unwrap_or_else(|| "***".into()),
        )),
        Some(MaskKind::KeepLast) => Some(Mask::KeepLast(o.keep.unwrap_or(4))),
        Some(MaskKind::EmailDomain) => Some(Mask::EmailDomain),
        Some(MaskKind::Null) => Some(Mask::Null),
    };
    Ok(OutputField {
        name: o.name.clone(),
        source,
        transforms: o.transform.clone(),
        date_format: o.date_format.as_deref().map(map::DateFormat::new),
        number,
        lookup,
        mask,
    })
}

/// The output field an input field becomes when `[vendor.output]` lists no fields: the
/// field unchanged, at the same place in a fixed-width output.
pub(super) fn implicit_output(f: &FieldConfig) -> OutputFieldConfig {
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
