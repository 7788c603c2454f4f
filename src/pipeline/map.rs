//! Mapping input fields to output fields: rename, reorder, drop, constants, concatenation,
//! trim/upper/lower, date and number reformatting, lookups, then masking.
//!
//! An [`OutputField`] is compiled once per vendor; [`OutputField::value`] is a pure function of
//! one record's validated values. The order of steps for one field is fixed and documented in
//! `docs/config.md`: source (field, constant or template) -> date/number format -> transforms ->
//! lookup -> mask. An empty input value counts as absent, as it does in validation.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::pipeline::mask::Mask;
use crate::pipeline::validate::Typed;

#[derive(Debug, Clone)]
pub enum Source {
    Field(usize),
    Const(String),
    Template(Vec<Piece>),
}

#[derive(Debug, Clone)]
pub enum Piece {
    Text(String),
    Field(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Trim,
    Upper,
    Lower,
}

impl Transform {
    pub fn parse(s: &str) -> Option<Transform> {
        match s {
            "trim" => Some(Transform::Trim),
            "upper" => Some(Transform::Upper),
            "lower" => Some(Transform::Lower),
            _ => None,
        }
    }
}

/// A chrono output format, parsed once.
#[derive(Debug, Clone)]
pub struct DateFormat {
    pub text: String,
    items: Vec<chrono::format::Item<'static>>,
}

impl DateFormat {
    pub fn new(text: &str) -> DateFormat {
        let items = chrono::format::StrftimeItems::new(text)
            .parse_to_owned()
            .unwrap_or_default();
        DateFormat {
            text: text.to_string(),
            items,
        }
    }
}

/// Number output format: rounding (half away from zero) and separators.
#[derive(Debug, Clone)]
pub struct NumberFormat {
    pub decimals: Option<u32>,
    pub decimal_separator: String,
    pub thousands_separator: String,
}

#[derive(Debug, Clone)]
pub struct Lookup {
    pub table_name: String,
    pub table: Arc<BTreeMap<String, String>>,
    pub default: Option<String>,
}

/// A mapping failure that rejects the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    pub rule: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct OutputField {
    pub name: String,
    pub source: Source,
    pub transforms: Vec<Transform>,
    pub date_format: Option<DateFormat>,
    pub number: Option<NumberFormat>,
    pub lookup: Option<Lookup>,
    pub mask: Option<Mask>,
}

impl OutputField {
    /// Computes this field's output value from a record's raw and typed values.
    pub fn value<'a>(
        &'a self,
        raw: &'a [Option<Cow<'a, str>>],
        typed: &[Typed<'_>],
    ) -> Result<Option<Cow<'a, str>>, MapError> {
        let mut v: Option<Cow<'a, str>> = match &self.source {
            // An empty value is an absent one, as in validation: nothing to look up or mask.
            Source::Field(i) => match raw.get(*i) {
                Some(Some(c)) if !c.is_empty() => Some(Cow::Borrowed(c.as_ref())),
                _ => None,
            },
            Source::Const(c) => Some(Cow::Borrowed(c.as_str())),
            Source::Template(pieces) => {
                let mut s = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => s.push_str(t),
                        Piece::Field(i) => {
                            if let Some(Some(c)) = raw.get(*i) {
                                s.push_str(c)
                            }
                        }
                    }
                }
                Some(Cow::Owned(s))
            }
        };
        if let (Some(fmt), Source::Field(i)) = (&self.date_format, &self.source) {
            use std::fmt::Write as _;
            let mut s = String::new();
            // A format can ask for what the value does not have (a time zone of a plain
            // timestamp, the hour of a date): chrono then fails to format, and so does the record.
            let written = match typed.get(*i) {
                Some(Typed::Date(d)) => {
                    Some(write!(s, "{}", d.format_with_items(fmt.items.iter())))
                }
                Some(Typed::Ts(t)) => Some(write!(s, "{}", t.format_with_items(fmt.items.iter()))),
                _ => None,
            };
            match written {
                Some(Ok(())) => v = Some(Cow::Owned(s)),
                Some(Err(_)) => {
                    return Err(MapError {
                        rule: "date_format",
                        reason: format!(
                            "the value cannot be written with date format {:?}",
                            fmt.text
                        ),
                    });
                }
                None => {}
            }
        }
        if let (Some(nf), Source::Field(i)) = (&self.number, &self.source) {
            let n = match typed.get(*i) {
                Some(Typed::Int(x)) => Some(Decimal::from(*x)),
                Some(Typed::Dec(x)) => Some(*x),
                _ => None,
            };
            if let Some(n) = n {
                v = Some(Cow::Owned(format_number(n, nf)));
            }
        }
        for t in &self.transforms {
            v = v.map(|s| apply_transform(*t, s));
        }
        if let Some(lk) = &self.lookup {
            if let Some(key) = v.take() {
                v = match lk.table.get(key.as_ref()) {
                    Some(found) => Some(Cow::Borrowed(found.as_str())),
                    None => match &lk.default {
                        Some(d) => Some(Cow::Borrowed(d.as_str())),
                        None => {
                            return Err(MapError {
                                rule: "lookup",
                                reason: format!(
                                    "{} is not in lookup table `{}`",
                                    crate::pipeline::validate::quote(&key),
                                    lk.table_name
                                ),
                            });
                        }
                    },
                };
            }
        }
        if let Some(m) = &self.mask {
            v = m.apply(v);
        }
        Ok(v)
    }
}

fn apply_transform(t: Transform, s: Cow<'_, str>) -> Cow<'_, str> {
    match t {
        Transform::Trim => match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
        },
        Transform::Upper => {
            if s.chars().any(|c| c.is_lowercase()) {
                Cow::Owned(s.to_uppercase())
            } else {
                s
            }
        }
        Transform::Lower => {
            if s.chars().any(|c| c.is_uppercase()) {
                Cow::Owned(s.to_lowercase())
            } else {
                s
            }
        }
    }
}

/// Formats a number with optional rounding and custom separators.
pub fn format_number(n: Decimal, nf: &NumberFormat) -> String {
    let n = match nf.decimals {
        Some(d) => {
            let mut r = n.round_dp_with_strategy(d, RoundingStrategy::MidpointAwayFromZero);
            r.rescale(d);
            r
        }
        None => n,
    };
    let text = n.to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(sign);
    if nf.thousands_separator.is_empty() {
        out.push_str(int);
    } else {
        for (i, ch) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                out.push_str(&nf.thousands_separator);
            }
            out.push(ch);
        }
    }
    if let Some(f) = frac {
        out.push_str(&nf.decimal_separator);
        out.push_str(f);
    }
    out
}

/// Splits a template such as `{first} {last}` into pieces; `{{`/`}}` are literal braces.
/// Returns the field names referenced, resolved by `resolve`.
pub fn parse_template(
    t: &str,
    mut resolve: impl FnMut(&str) -> Option<usize>,
) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => return Err(format!("unclosed `{{{name}` in template")),
                    }
                }
                let name = name.trim();
                let idx = resolve(name).ok_or_else(|| format!("unknown field `{name}`"))?;
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Field(idx));
            }
            '}' => return Err("a lone `}` in template; write `}}` for a brace".into()),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn nf(decimals: Option<u32>, dec: &str, th: &str) -> NumberFormat {
        NumberFormat {
            decimals,
            decimal_separator: dec.into(),
            thousands_separator: th.into(),
        }
    }

    #[test]
    fn numbers() {
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(
            format_number(d("1234567.891"), &nf(Some(2), ",", ".")),
            "1.234.567,89"
        );
        assert_eq!(format_number(d("-2.5"), &nf(Some(0), ".", "")), "-3");
        assert_eq!(format_number(d("12"), &nf(Some(2), ".", "")), "12.00");
        assert_eq!(
            format_number(d("999.995"), &nf(Some(2), ".", ",")),
            "1,000.00"
        );
        assert_eq!(format_number(d("100"), &nf(None, ".", " ")), "100");
    }

    #[test]
    fn templates() {
        let names = ["first", "last"];
        let p = parse_template("{first} {{x}} {last}!", |n| {
            names.iter().position(|x| *x == n)
        })
        .unwrap();
        assert_eq!(p.len(), 4);
        assert!(
            parse_template("{nope}", |_| None)
                .unwrap_err()
                .contains("nope")
        );
        assert!(
            parse_template("{first", |_| Some(0))
                .unwrap_err()
                .contains("unclosed")
        );
    }

    #[test]
    fn field_steps_in_order() {
        let mut table = BTreeMap::new();
        table.insert("US".to_string(), "United States".to_string());
        let f = OutputField {
            name: "country".into(),
            source: Source::Field(0),
            transforms: vec![Transform::Trim, Transform::Upper],
            date_format: None,
            number: None,
            lookup: Some(Lookup {
                table_name: "countries".into(),
                table: Arc::new(table),
                default: None,
            }),
            mask: None,
        };
        let raw = vec![Some(Cow::Borrowed(" us "))];
        let typed = vec![Typed::Str(" us ")];
        assert_eq!(f.value(&raw, &typed).unwrap().unwrap(), "United States");
        let raw = vec![Some(Cow::Borrowed("fr"))];
        assert_eq!(f.value(&raw, &typed).unwrap_err().rule, "lookup");
    }
}
