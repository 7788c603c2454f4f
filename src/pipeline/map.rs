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
use crate::pipeline::text::ShortList;
pub use crate::pipeline::text::Texts;
use crate::pipeline::validate::Typed;

#[derive(Debug, Clone)]
pub enum ValueSource {
    Field(usize),
    Const(String),
    Template(Vec<Piece>),
}

#[derive(Debug, Clone)]
pub enum Piece {
    Text(String),
    Field(usize),
}

/// A change of an output value's text (the configuration's own enum: nothing to compile).
pub use crate::config::Transform;

/// A chrono output format, parsed once.
#[derive(Debug, Clone)]
pub struct DateFormat {
    pub text: String,
    items: Vec<chrono::format::Item<'static>>,
    /// The same format written digit by digit, when it has only literals and zero-padded
    /// year, month, day, hour, minute and second (`%Y%m%d`, `%d/%m/%Y %H:%M:%S` ...).
    plain: Option<Vec<Plain>>,
    /// Whether the format asks for the time of day (a date alone cannot be written with it).
    needs_time: bool,
}

/// One piece of a plain date format.
#[derive(Debug, Clone)]
enum Plain {
    Text(Box<str>),
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl DateFormat {
    pub fn new(text: &str) -> DateFormat {
        use chrono::format::{Item, Numeric, Pad};
        let items = chrono::format::StrftimeItems::new(text)
            .parse_to_owned()
            .unwrap_or_default();
        let plain = items
            .iter()
            .map(|item| {
                Some(match item {
                    Item::Literal(t) | Item::Space(t) => Plain::Text((*t).into()),
                    Item::OwnedLiteral(t) | Item::OwnedSpace(t) => Plain::Text(t.clone()),
                    Item::Numeric(n, Pad::Zero) => match n {
                        Numeric::Year => Plain::Year,
                        Numeric::Month => Plain::Month,
                        Numeric::Day => Plain::Day,
                        Numeric::Hour => Plain::Hour,
                        Numeric::Minute => Plain::Minute,
                        Numeric::Second => Plain::Second,
                        _ => return None,
                    },
                    _ => return None,
                })
            })
            .collect::<Option<Vec<Plain>>>();
        let needs_time = plain
            .iter()
            .flatten()
            .any(|p| matches!(p, Plain::Hour | Plain::Minute | Plain::Second));
        DateFormat {
            text: text.to_string(),
            items,
            plain,
            needs_time,
        }
    }

    /// The bytes a value in this format usually takes (exact for plain formats), to size
    /// the text once.
    pub fn capacity(&self) -> usize {
        match &self.plain {
            Some(plain) => plain
                .iter()
                .map(|p| match p {
                    Plain::Text(t) => t.len(),
                    Plain::Year => 4,
                    _ => 2,
                })
                .sum(),
            None => 32,
        }
    }

    /// Appends a date, or a timestamp's date and time, in this format. Fails, as chrono does,
    /// when the format asks for what the value does not have (the hour of a date).
    pub fn write(
        &self,
        date: chrono::NaiveDate,
        time: Option<chrono::NaiveTime>,
        out: &mut String,
    ) -> std::fmt::Result {
        use chrono::{Datelike, Timelike};
        use std::fmt::Write as _;
        if let Some(plain) = &self.plain {
            let year = date.year();
            if (0..=9999).contains(&year) && (time.is_some() || !self.needs_time) {
                // ASCII digits, two at a time.
                let two = |out: &mut String, v: u32| {
                    out.push(char::from(b'0' + (v / 10 % 10) as u8));
                    out.push(char::from(b'0' + (v % 10) as u8));
                };
                let (h, m, sec) = time.map_or((0, 0, 0), |t| {
                    // A leap second reads 60, as chrono writes it.
                    (
                        t.hour(),
                        t.minute(),
                        t.second() + t.nanosecond() / 1_000_000_000,
                    )
                });
                for p in plain {
                    match p {
                        Plain::Text(t) => out.push_str(t),
                        Plain::Year => {
                            two(out, year as u32 / 100);
                            two(out, year as u32 % 100);
                        }
                        Plain::Month => two(out, date.month()),
                        Plain::Day => two(out, date.day()),
                        Plain::Hour => two(out, h),
                        Plain::Minute => two(out, m),
                        Plain::Second => two(out, sec),
                    }
                }
                return Ok(());
            }
        }
        match time {
            None => write!(out, "{}", date.format_with_items(self.items.iter())),
            Some(t) => write!(
                out,
                "{}",
                date.and_time(t).format_with_items(self.items.iter())
            ),
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
    pub table: Arc<LookupTable>,
    pub default: Option<String>,
}

impl Lookup {
    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.table.get(key)
    }
}

/// A lookup table of the configuration, its entries in key order. A small table (the usual
/// currencies, countries, status codes) is searched entry by entry, by its keys' words
/// (`text::ShortList`), which costs less than ordered comparisons; a larger one by bisection.
#[derive(Debug, Clone)]
pub struct LookupTable {
    entries: Vec<(String, String)>,
    /// The keys' words, for a small table (empty for a larger one).
    words: ShortList,
}

impl LookupTable {
    /// Tables up to this size are searched entry by entry.
    const FEW: usize = 16;

    pub fn new(table: &BTreeMap<String, String>) -> LookupTable {
        let entries: Vec<(String, String)> =
            table.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let words = match entries.len() <= Self::FEW {
            true => ShortList::new(entries.iter().map(|(k, _)| k.as_str())),
            false => ShortList::default(),
        };
        LookupTable { entries, words }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let entries = &self.entries;
        let found = if entries.len() <= Self::FEW {
            self.words
                .position(key, |i| entries[i].0.as_str())
                .map(|i| &entries[i])
        } else {
            entries
                .binary_search_by(|(k, _)| k.as_str().cmp(key))
                .ok()
                .map(|i| &entries[i])
        };
        found.map(|(_, v)| v.as_str())
    }
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
    pub source: ValueSource,
    pub transforms: Vec<Transform>,
    pub date_format: Option<DateFormat>,
    pub number: Option<NumberFormat>,
    pub lookup: Option<Lookup>,
    pub mask: Option<Mask>,
}

impl OutputField {
    /// Computes this field's output value from a record's raw and typed values.
    #[inline]
    pub fn value<'a>(
        &'a self,
        raw: &'a [Option<Cow<'a, str>>],
        typed: &[Typed<'_>],
        texts: &mut Texts,
    ) -> Result<Option<Cow<'a, str>>, MapError> {
        let mut v: Option<Cow<'a, str>> = match &self.source {
            // An empty value is an absent one, as in validation: nothing to look up or mask.
            ValueSource::Field(i) => match raw.get(*i) {
                Some(Some(c)) if !c.is_empty() => Some(Cow::Borrowed(c.as_ref())),
                _ => None,
            },
            ValueSource::Const(c) => Some(Cow::Borrowed(c.as_str())),
            ValueSource::Template(pieces) => {
                let mut s = texts.take();
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
        if let (Some(fmt), ValueSource::Field(i)) = (&self.date_format, &self.source) {
            let mut s = texts.take();
            s.reserve(fmt.capacity());
            // A format can ask for what the value does not have (a time zone of a plain
            // timestamp, the hour of a date): chrono then fails to format, and so does the record.
            let written = match typed.get(*i) {
                Some(Typed::Date(d)) => Some(fmt.write(*d, None, &mut s)),
                Some(Typed::Ts(t)) => Some(fmt.write(t.date(), Some(t.time()), &mut s)),
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
        if let (Some(nf), ValueSource::Field(i)) = (&self.number, &self.source) {
            let n = match typed.get(*i) {
                Some(Typed::Int(x)) => Some(Decimal::from(*x)),
                Some(Typed::Dec(x)) => Some(*x),
                _ => None,
            };
            if let Some(n) = n {
                v = Some(Cow::Owned(format_number(n, nf, texts.take())));
            }
        }
        for t in &self.transforms {
            v = v.map(|s| apply_transform(*t, s, texts));
        }
        if let Some(lk) = &self.lookup
            && let Some(key) = v.take()
        {
            v = match lk.get(&key) {
                Some(found) => Some(Cow::Borrowed(found)),
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
        if let Some(m) = &self.mask {
            v = m.apply(v, texts);
        }
        Ok(v)
    }
}

fn apply_transform<'a>(t: Transform, s: Cow<'a, str>, texts: &mut Texts) -> Cow<'a, str> {
    // A value already owned is changed in place; a borrowed one is copied into a kept string.
    let ascii_case = |s: Cow<'a, str>, texts: &mut Texts, upper: bool| {
        let mut o = match s {
            Cow::Owned(o) => o,
            Cow::Borrowed(b) => {
                let mut o = texts.take();
                o.push_str(b);
                o
            }
        };
        if upper {
            o.make_ascii_uppercase();
        } else {
            o.make_ascii_lowercase();
        }
        Cow::Owned(o)
    };
    match t {
        Transform::Trim => match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(mut o) => {
                let end = o.trim_end().len();
                o.truncate(end);
                let start = o.len() - o.trim_start().len();
                o.drain(..start);
                Cow::Owned(o)
            }
        },
        // ASCII text (most values) changes case byte by byte, without Unicode's tables.
        Transform::Upper if s.is_ascii() => {
            if s.bytes().any(|b| b.is_ascii_lowercase()) {
                ascii_case(s, texts, true)
            } else {
                s
            }
        }
        // Char by char as `str::to_uppercase` does (it has no rule that looks at the chars
        // around), into a kept string, and ASCII chars without Unicode's tables.
        Transform::Upper => {
            let mut o = texts.take();
            o.reserve(s.len());
            for c in s.chars() {
                if c.is_ascii() {
                    o.push(c.to_ascii_uppercase());
                } else {
                    o.extend(c.to_uppercase());
                }
            }
            if o == *s { s } else { Cow::Owned(o) }
        }
        Transform::Lower if s.is_ascii() => {
            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                ascii_case(s, texts, false)
            } else {
                s
            }
        }
        Transform::Lower => changed(s, str::to_lowercase),
    }
}

/// `s` through `f`, kept as it is (borrowed) when `f` changes nothing.
fn changed<'a>(s: Cow<'a, str>, f: fn(&str) -> String) -> Cow<'a, str> {
    let t = f(&s);
    if t == *s { s } else { Cow::Owned(t) }
}

/// Formats a number with optional rounding and custom separators.
///
/// The digits are written straight from the decimal's integer mantissa and scale: the same
/// text as its `Display` (trailing zeros kept, `-` for a negative value; a value rounded to
/// zero has no sign) without going through `fmt` and a second pass to split it.
#[inline]
///
/// `out` is the (empty) string to write into, returned with the number in it.
pub fn format_number(n: Decimal, nf: &NumberFormat, mut out: String) -> String {
    let n = match nf.decimals {
        // Already at that scale (the usual case: amounts with two decimals written with two):
        // nothing to round.
        Some(d) if n.scale() == d => n,
        Some(d) => {
            let mut r = n.round_dp_with_strategy(d, RoundingStrategy::MidpointAwayFromZero);
            r.rescale(d);
            r
        }
        None => n,
    };
    // At most 29 digits (a 96-bit mantissa), plus the leading zeros a scale of 28 asks for.
    let mut buf = [b'0'; 64];
    let mut at = buf.len();
    let mut m = n.mantissa().unsigned_abs();
    while m > u64::MAX as u128 {
        at -= 1;
        buf[at] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    let mut m = m as u64;
    loop {
        at -= 1;
        buf[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    let scale = n.scale() as usize;
    // A value below one still shows its `0` before the separator: `0.05`.
    at = at.min(buf.len() - scale - 1);
    let (int, frac) = buf[at..].split_at(buf.len() - at - scale);
    out.reserve(
        1 + int.len() * (1 + nf.thousands_separator.len()) + nf.decimal_separator.len() + scale,
    );
    if n.is_sign_negative() {
        out.push('-');
    }
    // The digits are ASCII: each byte is its own character.
    let digits = |out: &mut String, d: &[u8]| d.iter().for_each(|&b| out.push(char::from(b)));
    if nf.thousands_separator.is_empty() {
        digits(&mut out, int);
    } else {
        for (i, &b) in int.iter().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                out.push_str(&nf.thousands_separator);
            }
            out.push(char::from(b));
        }
    }
    // A value too large for its mantissa to hold the scale asked for (29 digits and 2
    // decimals) keeps the scale it has: the decimals still missing are zeros, written here.
    let zeros = nf.decimals.map_or(0, |d| d as usize).saturating_sub(scale);
    if scale + zeros > 0 {
        out.push_str(&nf.decimal_separator);
        digits(&mut out, frac);
        (0..zeros).for_each(|_| out.push('0'));
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

    /// The formatting `format_number` replaced: through `Display`, then split.
    fn format_number_by_display(n: Decimal, nf: &NumberFormat) -> String {
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
        let mut out = String::new();
        out.push_str(sign);
        for (i, ch) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                out.push_str(&nf.thousands_separator);
            }
            out.push(ch);
        }
        // Decimals the value could not be rescaled to are zeros.
        let want = nf.decimals.unwrap_or(0) as usize;
        let f = frac.unwrap_or("");
        if !f.is_empty() || want > 0 {
            out.push_str(&nf.decimal_separator);
            out.push_str(f);
            out.push_str(&"0".repeat(want.saturating_sub(f.len())));
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn numbers_read_as_display_writes_them(
            lo in proptest::prelude::any::<u64>(),
            hi in proptest::prelude::any::<u32>(),
            negative in proptest::prelude::any::<bool>(),
            scale in 0u32..=28,
            small in proptest::prelude::any::<bool>(),
            decimals in proptest::option::of(0u32..=8),
            thousands in proptest::prelude::any::<bool>(),
        ) {
            let (lo, hi) = if small { (lo % 100_000, 0) } else { (lo, hi) };
            let n = Decimal::from_parts(lo as u32, (lo >> 32) as u32, hi, negative, scale);
            let f = nf(decimals, ",", if thousands { "." } else { "" });
            proptest::prop_assert_eq!(format_number(n, &f, String::new()), format_number_by_display(n, &f));
        }
    }

    #[test]
    fn numbers() {
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(
            format_number(d("1234567.891"), &nf(Some(2), ",", "."), String::new()),
            "1.234.567,89"
        );
        assert_eq!(
            format_number(d("-2.5"), &nf(Some(0), ".", ""), String::new()),
            "-3"
        );
        assert_eq!(
            format_number(d("12"), &nf(Some(2), ".", ""), String::new()),
            "12.00"
        );
        // The largest decimal cannot be rescaled to two decimals: they are written as zeros.
        assert_eq!(
            format_number(
                d("79228162514264337593543950335"),
                &nf(Some(2), ".", ""),
                String::new()
            ),
            "79228162514264337593543950335.00"
        );
        assert_eq!(
            format_number(
                d("-7922816251426433759354395033.5"),
                &nf(Some(3), ",", ""),
                String::new()
            ),
            "-7922816251426433759354395033,500"
        );
        assert_eq!(
            format_number(d("999.995"), &nf(Some(2), ".", ","), String::new()),
            "1,000.00"
        );
        assert_eq!(
            format_number(d("100"), &nf(None, ".", " "), String::new()),
            "100"
        );
        assert_eq!(
            format_number(d("0.05"), &nf(None, ".", ""), String::new()),
            "0.05"
        );
        assert_eq!(
            format_number(d("-0.001"), &nf(Some(2), ".", ""), String::new()),
            "0.00"
        );
        assert_eq!(
            format_number(d("1.50"), &nf(None, ".", ""), String::new()),
            "1.50"
        );
    }

    proptest::proptest! {
        #[test]
        fn dates_read_as_chrono_writes_them(
            days in -800_000i32..4_000_000,
            secs in 0u32..86_400,
            nanos in 0u32..2_000_000_000,
            with_time in proptest::prelude::any::<bool>(),
            pattern in proptest::sample::select(vec![
                "%Y%m%d", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%H%M",
                "%e %b %Y", "%Y-%m-%d %H:%M:%S%.3f", "%s", "[%Y]", "%y%m%d",
            ]),
        ) {
            let Some(date) = chrono::NaiveDate::from_num_days_from_ce_opt(days) else {
                return Ok(());
            };
            let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos);
            let time = if with_time { time } else { None };
            let f = DateFormat::new(pattern);
            let mut ours = String::new();
            let ours = f.write(date, time, &mut ours).map(|()| ours);
            let theirs = {
                use std::fmt::Write as _;
                let mut s = String::new();
                match time {
                    None => write!(s, "{}", date.format_with_items(f.items.iter())),
                    Some(t) => write!(s, "{}", date.and_time(t).format_with_items(f.items.iter())),
                }
                .map(|()| s)
            };
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn plain_date_formats_are_written_digit_by_digit() {
        assert!(DateFormat::new("%Y%m%d").plain.is_some());
        assert!(DateFormat::new("%d.%m.%Y %H:%M:%S").plain.is_some());
        assert!(DateFormat::new("%e %b %Y").plain.is_none());
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
    fn case_transforms_agree_with_unicode_and_borrow_when_unchanged() {
        for text in [
            "open",
            "Closed",
            "PENDING",
            "straße",
            "Ünïcödé",
            "ǅ x",
            "",
            "a1-b",
        ] {
            for (t, expected) in [
                (Transform::Upper, text.to_uppercase()),
                (Transform::Lower, text.to_lowercase()),
            ] {
                let got = apply_transform(t, Cow::Borrowed(text), &mut Texts::default());
                assert_eq!(got, expected, "{t:?} {text:?}");
                if expected == text {
                    assert!(matches!(got, Cow::Borrowed(_)), "{t:?} {text:?}");
                }
            }
        }
    }

    proptest::proptest! {
        /// Upper and lower case as the standard library changes them, on any text.
        #[test]
        fn case_transforms_agree_with_the_standard_library(text in "\\PC{0,40}") {
            for (t, expected) in [
                (Transform::Upper, text.to_uppercase()),
                (Transform::Lower, text.to_lowercase()),
            ] {
                let got = apply_transform(t, Cow::Borrowed(&text), &mut Texts::default());
                proptest::prop_assert_eq!(&*got, expected.as_str());
            }
        }
    }

    /// Small and large tables find what the map they were made from finds.
    #[test]
    fn lookup_tables_find_as_maps() {
        // Keys shorter and longer than a word (`text::Short`), and at its length.
        for (n, stem) in [0, 1, 5, 16, 17, 100]
            .into_iter()
            .flat_map(|n| ["k", "key-k", "a-long-key-k"].map(|stem| (n, stem)))
        {
            let map: BTreeMap<String, String> = (0..n)
                .map(|i| (format!("{stem}{i}"), format!("v{i}")))
                .collect();
            let table = LookupTable::new(&map);
            for i in 0..n + 3 {
                for key in [format!("{stem}{i}"), format!("{stem}{i}x"), String::new()] {
                    assert_eq!(
                        table.get(&key),
                        map.get(&key).map(String::as_str),
                        "{n} {key}"
                    );
                }
            }
        }
    }

    #[test]
    fn field_steps_in_order() {
        let mut table = BTreeMap::new();
        table.insert("US".to_string(), "United States".to_string());
        let f = OutputField {
            name: "country".into(),
            source: ValueSource::Field(0),
            transforms: vec![Transform::Trim, Transform::Upper],
            date_format: None,
            number: None,
            lookup: Some(Lookup {
                table_name: "countries".into(),
                table: Arc::new(LookupTable::new(&table)),
                default: None,
            }),
            mask: None,
        };
        let raw = vec![Some(Cow::Borrowed(" us "))];
        let typed = vec![Typed::Str(" us ")];
        assert_eq!(
            f.value(&raw, &typed, &mut Texts::default())
                .unwrap()
                .unwrap(),
            "United States"
        );
        let raw = vec![Some(Cow::Borrowed("fr"))];
        assert_eq!(
            f.value(&raw, &typed, &mut Texts::default())
                .unwrap_err()
                .rule,
            "lookup"
        );
    }
}
