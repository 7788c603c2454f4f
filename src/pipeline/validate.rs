//! Field validation: type, required, pattern, allowed values, length and bounds.
//!
//! A [`FieldCheck`] is built once per vendor from its `[[vendor.fields]]` entry (regexes
//! compiled, bounds parsed into the field's type) and then applied to every record. It owns no
//! I/O and knows nothing of formats: it sees a field's text (or its absence) and answers with
//! the typed value or a [`Violation`] naming the rule that failed.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::meta::{Cache, Regex};
use regex_automata::{Anchored, Input, MatchKind};
use rust_decimal::Decimal;

use crate::config::{Bound, FieldConfig, FieldType};
use crate::pipeline::text::ShortList;

/// A typed field value, as rules and reformatting need it.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Typed<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    Dec(Decimal),
    Date(NaiveDate),
    /// Timestamps are compared in UTC when they carry an offset.
    Ts(NaiveDateTime),
    Bool(bool),
}

impl Typed<'_> {
    /// Orders two values of compatible types; `None` when they cannot be compared.
    pub fn compare(&self, other: &Typed<'_>) -> Option<std::cmp::Ordering> {
        use Typed::*;
        match (self, other) {
            (Str(a), Str(b)) => Some(super::text::cmp(a, b)),
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (Dec(a), Dec(b)) => Some(a.cmp(b)),
            (Int(a), Dec(b)) => Some(Decimal::from(*a).cmp(b)),
            (Dec(a), Int(b)) => Some(a.cmp(&Decimal::from(*b))),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (Ts(a), Ts(b)) => Some(a.cmp(b)),
            (Date(a), Ts(b)) => Some(a.and_hms_opt(0, 0, 0)?.cmp(b)),
            (Ts(a), Date(b)) => Some(a.cmp(&b.and_hms_opt(0, 0, 0)?)),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Why a value was refused: the rule (`required`, `type`, `pattern`, `values`, `max_length`,
/// `min`, `max`) and a readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub reason: String,
}

/// How the text of a date or timestamp field is read.
#[derive(Debug, Clone)]
pub enum TimeFormat {
    /// chrono format string.
    Pattern(String),
    /// RFC 3339 (the timestamp default).
    Rfc3339,
}

/// The compiled checks of one input field.
#[derive(Debug, Clone)]
pub struct FieldCheck {
    pub name: String,
    pub kind: FieldType,
    pub required: bool,
    pub time_format: TimeFormat,
    pattern: Option<std::sync::Arc<Pattern>>,
    values: Option<Allowed>,
    max_length: Option<usize>,
    min: Option<Typed<'static>>,
    max: Option<Typed<'static>>,
}

/// A field pattern as configured, compiled anchored at both ends (the whole value must match).
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    /// The pattern as one ASCII character class per position, when it is only that (account
    /// numbers, codes, postcodes: `[A-Z]{2}[0-9]{8}`): a value then matches when it has that
    /// many bytes and each is in its position's class, checks that do not wait on each other
    /// as a DFA's steps do (measured: the DFA was 4.5 % of the CPU time of the CSV vendors of
    /// a tenth of a day, on two patterns).
    fixed: Option<Vec<u128>>,
    /// A full DFA, when the pattern makes a small one: a value is then checked a byte at a
    /// time, with no search to set up. Built at the first value, so that a configuration of
    /// many vendors costs nothing for the vendors a run does not process.
    dfa: OnceLock<Option<dense::DFA<Vec<u32>>>>,
    /// The regex engine, for the patterns a small DFA cannot hold (Unicode word boundaries,
    /// large classes repeated many times). Built when first needed, as the DFA is: compiling
    /// it takes 30-130 µs a pattern (measured on the generated day's two patterns), which
    /// every vendor of a configuration would otherwise pay at every start of `process`, also
    /// for vendors it does not run and patterns a DFA checks.
    regex: OnceLock<Option<Regex>>,
}

impl Pattern {
    /// The most memory a pattern's DFA may take.
    const DFA_BYTES: usize = 1 << 20;

    /// The pattern `text`, one for the whole process: the vendors of a configuration share
    /// patterns (an email address, an account number), and parsing them again for each was
    /// 30 % of the time to build 120 generated vendors, which have two patterns between them
    /// (`perf record`); shared, each pattern's DFA or regex is also built once, not once a
    /// vendor.
    fn new(text: &str) -> Result<std::sync::Arc<Pattern>, String> {
        type Made = Result<std::sync::Arc<Pattern>, String>;
        static MADE: std::sync::Mutex<BTreeMap<String, Made>> =
            std::sync::Mutex::new(BTreeMap::new());
        if let Some(made) = MADE.lock().ok().and_then(|m| m.get(text).cloned()) {
            return made;
        }
        let made = Self::parse(text).map(|fixed| {
            std::sync::Arc::new(Pattern {
                text: text.to_string(),
                fixed,
                dfa: OnceLock::new(),
                regex: OnceLock::new(),
            })
        });
        if let Ok(mut m) = MADE.lock() {
            // Vendors are built side by side: of two threads that made the same pattern at
            // once, the first to hand it in gives it to both.
            return m.entry(text.to_string()).or_insert(made).clone();
        }
        made
    }

    /// The regex engine for this pattern, built at its first use. The pattern parsed when the
    /// configuration was read, so what can still stop the build is a size limit: the build is
    /// then made again without it (a pattern that large is slow, not wrong). `None` (said in
    /// an error log; no value then matches) only if even that fails.
    fn regex(&self) -> Option<&Regex> {
        self.regex
            .get_or_init(|| {
                let anchored = Self::anchored(&self.text);
                if let Ok(r) = Regex::new(&anchored) {
                    return Some(r);
                }
                let unlimited = Regex::config()
                    .nfa_size_limit(None)
                    .onepass_size_limit(None)
                    .hybrid_cache_capacity(1 << 24);
                match Regex::builder().configure(unlimited).build(&anchored) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::error!(pattern = %self.text, "the pattern cannot be compiled: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Checks that `text` parses, and finds its [`Pattern::fixed`] classes.
    fn parse(text: &str) -> Result<Option<Vec<u128>>, String> {
        // The pattern must stand on its own before it is put in a group: `a)|(b` is refused,
        // not read as `^(?:a)|(b)$`, which would anchor neither side. Errors are worded as
        // the regex crate words them, about the pattern as written.
        let hir = regex_automata::util::syntax::parse(text).map_err(|e| e.to_string())?;
        // As it is checked: anchored (a pattern such as `(?x)[A-Z]+ # code` parses alone, but
        // its comment swallows the anchors).
        regex_automata::util::syntax::parse(&Self::anchored(text)).map_err(|e| e.to_string())?;
        let mut positions = Vec::new();
        Ok(match fixed_positions(&hir, &mut positions) {
            Some(_) if !positions.is_empty() => Some(positions),
            _ => None,
        })
    }

    fn anchored(text: &str) -> String {
        format!("^(?:{text})$")
    }

    fn build_dfa(&self) -> Option<dense::DFA<Vec<u32>>> {
        dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Anchored)
                    .match_kind(MatchKind::All)
                    .dfa_size_limit(Some(Self::DFA_BYTES))
                    .determinize_size_limit(Some(Self::DFA_BYTES)),
            )
            .build(&Self::anchored(&self.text))
            .ok()
    }

    /// Whether the whole of `value` matches; `cache` is the regex engine's, made when first
    /// needed.
    fn matches(&self, value: &str, cache: &mut Option<Cache>) -> bool {
        if let Some(classes) = &self.fixed {
            let b = value.as_bytes();
            return b.len() == classes.len()
                && b.iter()
                    .zip(classes)
                    .all(|(&c, &class)| c < 128 && class >> c & 1 == 1);
        }
        if let Some(dfa) = self.dfa.get_or_init(|| self.build_dfa())
            && let Ok(mut state) =
                dfa.start_state_forward(&Input::new(value).anchored(Anchored::Yes))
        {
            for &b in value.as_bytes() {
                state = dfa.next_state(state, b);
                if dfa.is_dead_state(state) {
                    return false;
                }
            }
            // A DFA sees a match one step late: at the end of the input, here.
            return dfa.is_match_state(dfa.next_eoi_state(state));
        }
        let Some(regex) = self.regex() else {
            return false;
        };
        let cache = cache.get_or_insert_with(|| regex.create_cache());
        regex.is_match_with(cache, &Input::new(value))
    }
}

/// The most positions a pattern read as one class per position may have.
const FIXED_POSITIONS: usize = 64;

/// Appends to `out` the ASCII characters each position of `hir` allows (bit `c` of a mask for
/// character `c`), when `hir` is a sequence of literals and classes of ASCII characters, each
/// repeated a fixed number of times; `None` for anything else (alternatives, open repetition,
/// anchors and word boundaries, characters beyond ASCII).
fn fixed_positions(hir: &regex_syntax::hir::Hir, out: &mut Vec<u128>) -> Option<()> {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Empty => Some(()),
        HirKind::Literal(lit) => {
            for &b in lit.0.iter() {
                if b >= 128 || out.len() >= FIXED_POSITIONS {
                    return None;
                }
                out.push(1u128 << b);
            }
            Some(())
        }
        HirKind::Class(class) => {
            let mut mask = 0u128;
            let mut add = |lo: u32, hi: u32| {
                if hi >= 128 {
                    return None;
                }
                for c in lo..=hi {
                    mask |= 1u128 << c;
                }
                Some(())
            };
            match class {
                Class::Unicode(u) => {
                    for r in u.ranges() {
                        add(r.start() as u32, r.end() as u32)?;
                    }
                }
                Class::Bytes(b) => {
                    for r in b.ranges() {
                        add(u32::from(r.start()), u32::from(r.end()))?;
                    }
                }
            }
            if out.len() >= FIXED_POSITIONS || mask == 0 {
                return None;
            }
            out.push(mask);
            Some(())
        }
        HirKind::Repetition(rep) if Some(rep.min) == rep.max => {
            let mut one = Vec::new();
            fixed_positions(&rep.sub, &mut one)?;
            if out.len() + one.len() * rep.min as usize > FIXED_POSITIONS {
                return None;
            }
            for _ in 0..rep.min {
                out.extend_from_slice(&one);
            }
            Some(())
        }
        HirKind::Capture(cap) => fixed_positions(&cap.sub, out),
        HirKind::Concat(items) => items.iter().try_for_each(|h| fixed_positions(h, out)),
        _ => None,
    }
}

/// A field's allowed values. Lists are usually short (currencies, statuses): comparing with
/// each is faster than hashing the value, so only long lists are hashed. A short list is
/// searched by its values' words (`text::ShortList`).
#[derive(Debug, Clone)]
enum Allowed {
    Few(Vec<String>, ShortList),
    Many(HashSet<String>),
}

impl Allowed {
    const FEW: usize = 16;

    fn new(values: &[String]) -> Allowed {
        if values.len() <= Self::FEW {
            Allowed::Few(
                values.to_vec(),
                ShortList::new(values.iter().map(String::as_str)),
            )
        } else {
            Allowed::Many(values.iter().cloned().collect())
        }
    }

    fn contains(&self, v: &str) -> bool {
        match self {
            Allowed::Few(list, words) => words.position(v, |i| &list[i]).is_some(),
            Allowed::Many(set) => set.contains(v),
        }
    }
}

impl FieldCheck {
    /// Compiles a field's checks; the error names the key (`pattern`, `min`, ...) and why.
    pub fn build(f: &FieldConfig) -> Result<FieldCheck, (&'static str, String)> {
        let time_format = match (&f.format, f.kind) {
            (Some(p), FieldType::Date | FieldType::Timestamp) => {
                check_chrono_format(p).map_err(|m| ("format", m))?;
                TimeFormat::Pattern(p.clone())
            }
            (Some(_), _) => {
                return Err((
                    "format",
                    format!(
                        "`format` applies to date and timestamp fields, not {}",
                        f.kind
                    ),
                ));
            }
            (None, FieldType::Date) => TimeFormat::Pattern("%Y-%m-%d".into()),
            (None, _) => TimeFormat::Rfc3339,
        };
        let pattern = match &f.pattern {
            Some(p) => Some(Pattern::new(p).map_err(|m| ("pattern", m))?),
            None => None,
        };
        let mut check = FieldCheck {
            name: f.name.clone(),
            kind: f.kind,
            required: f.required,
            time_format,
            pattern,
            values: f.values.as_deref().map(Allowed::new),
            max_length: f.max_length,
            min: None,
            max: None,
        };
        for (key, bound) in [("min", &f.min), ("max", &f.max)] {
            let Some(b) = bound else { continue };
            let typed = check.bound(b).map_err(|m| (key, m))?;
            if key == "min" {
                check.min = Some(typed);
            } else {
                check.max = Some(typed);
            }
        }
        Ok(check)
    }

    fn bound(&self, b: &Bound) -> Result<Typed<'static>, String> {
        let text = b.to_string();
        match (self.kind, b) {
            (FieldType::Integer, Bound::Integer(v)) => Ok(Typed::Int(*v)),
            (FieldType::Decimal | FieldType::Integer, _) => Decimal::from_str(&text)
                .map(Typed::Dec)
                .map_err(|_| format!("{text:?} is not a number")),
            (FieldType::Date | FieldType::Timestamp, Bound::Text(t)) => parse_bound_time(t)
                .ok_or_else(|| format!("{t:?} is not a date (YYYY-MM-DD) or timestamp (RFC 3339)")),
            (kind, _) => Err(format!(
                "min and max apply to integer, decimal, date and timestamp fields; {:?} is {kind}",
                self.name
            )),
        }
    }

    /// Checks one value. `Ok(Typed::Null)` for an absent or empty optional value.
    pub fn check<'a>(&self, value: Option<&'a str>) -> Result<Typed<'a>, Violation> {
        self.check_with(value, &mut None)
    }

    /// [`check`](Self::check) with the regex engine's search cache for a pattern without a
    /// DFA (made at its first match) kept by the caller across values, by one thread at a
    /// time: a regex used from several threads otherwise hands out its caches from a shared
    /// pool on every match.
    #[inline(always)]
    pub fn check_with<'a>(
        &self,
        value: Option<&'a str>,
        cache: &mut Option<Cache>,
    ) -> Result<Typed<'a>, Violation> {
        let text = match value {
            Some(t) if !t.is_empty() => t,
            _ if self.required => {
                return Err(Violation {
                    rule: "required",
                    reason: "is required but missing".into(),
                });
            }
            _ => return Ok(Typed::Null),
        };
        let typed = self.parse(text)?;
        if let Some(p) = &self.pattern
            && !p.matches(text, cache)
        {
            return Err(Violation {
                rule: "pattern",
                reason: [quote(text).as_str(), " does not match pattern ", &p.text].concat(),
            });
        }
        if let Some(values) = &self.values
            && !values.contains(text)
        {
            return Err(Violation {
                rule: "values",
                reason: quote(text) + " is not one of the allowed values",
            });
        }
        // A text of at most `max` bytes has at most `max` characters: count only longer ones.
        if let Some(max) = self.max_length.filter(|&max| text.len() > max) {
            let n = text.chars().count();
            if n > max {
                return Err(Violation {
                    rule: "max_length",
                    reason: format!("has {n} characters, more than {max}"),
                });
            }
        }
        if let Some(min) = &self.min
            && typed.compare(min) == Some(std::cmp::Ordering::Less)
        {
            return Err(Violation {
                rule: "min",
                reason: [quote(text).as_str(), " is below the minimum ", &show(min)].concat(),
            });
        }
        if let Some(max) = &self.max
            && typed.compare(max) == Some(std::cmp::Ordering::Greater)
        {
            return Err(Violation {
                rule: "max",
                reason: [quote(text).as_str(), " is above the maximum ", &show(max)].concat(),
            });
        }
        Ok(typed)
    }

    /// Parses text into the field's type. A decimal is held exactly (at most 28 digits after
    /// the point, 28 or 29 in all); one that needs more is refused (rule `type`), never
    /// rounded.
    #[inline(always)]
    pub fn parse<'a>(&self, text: &'a str) -> Result<Typed<'a>, Violation> {
        let bad = || Violation {
            rule: "type",
            reason: [quote(text).as_str(), " is not ", &self.kind_text()].concat(),
        };
        Ok(match self.kind {
            FieldType::String => Typed::Str(text),
            FieldType::Integer => Typed::Int(text.parse::<i64>().map_err(|_| bad())?),
            FieldType::Decimal => {
                // Decimal::from_str accepts "1_000"; vendors' decimals never use underscores.
                // A byte loop: `str::contains` calls a vector search, set up for every value.
                if text.bytes().any(|b| b == b'_') {
                    return Err(bad());
                }
                let d = Decimal::from_str(text).map_err(|_| bad())?;
                // More digits than the 96-bit mantissa holds are rounded by `from_str`, not
                // refused: a value is kept exactly or not read at all. Only a text of more than
                // 28 characters can hold that many.
                if text.len() > 28 && lost_digits(text, &d) {
                    return Err(Violation {
                        rule: "type",
                        reason: format!(
                            "{} has more digits than a decimal holds (28 after the point, 28 or 29 in all)",
                            quote(text)
                        ),
                    });
                }
                Typed::Dec(d)
            }
            FieldType::Boolean => match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "1" => Typed::Bool(true),
                "false" | "no" | "n" | "0" => Typed::Bool(false),
                _ => return Err(bad()),
            },
            FieldType::Date => match &self.time_format {
                TimeFormat::Pattern(p) if p == "%Y-%m-%d" => {
                    Typed::Date(iso_date(text).ok_or_else(bad)?)
                }
                TimeFormat::Pattern(p) => {
                    Typed::Date(NaiveDate::parse_from_str(text, p).map_err(|_| bad())?)
                }
                TimeFormat::Rfc3339 => Typed::Date(
                    DateTime::parse_from_rfc3339(text)
                        .map_err(|_| bad())?
                        .date_naive(),
                ),
            },
            FieldType::Timestamp => {
                Typed::Ts(parse_timestamp(text, &self.time_format).ok_or_else(bad)?)
            }
        })
    }

    fn kind_text(&self) -> String {
        match (&self.kind, &self.time_format) {
            (FieldType::Date | FieldType::Timestamp, TimeFormat::Pattern(p)) => {
                format!("a {} in format {p}", self.kind)
            }
            (FieldType::Timestamp, TimeFormat::Rfc3339) => "an RFC 3339 timestamp".into(),
            (FieldType::Integer, _) => "an integer".into(),
            (kind, _) => ["a ", kind.as_str()].concat(),
        }
    }
}

/// `YYYY-MM-DD` without chrono's format interpreter: the common case, on every record.
fn iso_date(t: &str) -> Option<NaiveDate> {
    let b = t.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + (c - b'0') as u32)
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// Parses a timestamp; with an offset it is converted to UTC.
pub fn parse_timestamp(text: &str, format: &TimeFormat) -> Option<NaiveDateTime> {
    match format {
        TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|d| d.naive_utc()),
        TimeFormat::Pattern(p) => match DateTime::parse_from_str(text, p) {
            Ok(d) => Some(d.naive_utc()),
            Err(_) => NaiveDateTime::parse_from_str(text, p).ok(),
        },
    }
}

fn parse_bound_time(t: &str) -> Option<Typed<'static>> {
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(Typed::Date(d));
    }
    parse_timestamp(t, &TimeFormat::Rfc3339).map(Typed::Ts)
}

/// Rejects a chrono format with an invalid specifier at configuration time rather than on
/// every record.
pub fn check_chrono_format(p: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(p).any(|i| matches!(i, Item::Error)) {
        return Err(format!("{p:?} is not a valid date format"));
    }
    Ok(())
}

fn show(t: &Typed<'_>) -> String {
    match t {
        Typed::Null => "null".into(),
        Typed::Str(s) => s.to_string(),
        Typed::Int(v) => v.to_string(),
        Typed::Dec(v) => v.to_string(),
        Typed::Date(v) => v.to_string(),
        Typed::Ts(v) => v.to_string(),
        Typed::Bool(v) => v.to_string(),
    }
}

/// Quotes a value for a message, shortened so a 100 MB field does not become a 100 MB reason.
pub fn quote(text: &str) -> String {
    const MAX: usize = 60;
    // Printable ASCII but `"` and `\` is written by `Debug` as it is: that text is quoted
    // without `format!`'s formatter and without counting its characters. On a CSV file with
    // half its records rejected (`scripts/bench --rejects`), quoting through `Debug` was about
    // 3 % of the samples in all, part of it `is_printable` on a value outside ASCII (`—`),
    // which still goes through `Debug`: other text whose every character `char::escape_debug`
    // leaves as it is, tried the same way, saved nothing, since that table lookup (about
    // 1,600 instructions for a `—`) is the cost either way. The property test below holds
    // the two to the same text.
    if text.len() <= MAX
        && text
            .bytes()
            .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
    {
        let mut q = String::with_capacity(text.len() + 2);
        q.push('"');
        q.push_str(text);
        q.push('"');
        return q;
    }
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// Whether reading `text` as `d` dropped digits: its fraction (trailing zeros aside) has more
/// digits than `d` kept.
fn lost_digits(text: &str, d: &Decimal) -> bool {
    let frac = text.split_once('.').map_or("", |(_, f)| f);
    frac.trim_end_matches('0').len() > d.scale() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(toml_text: &str) -> FieldCheck {
        let f: FieldConfig = toml::from_str(toml_text).unwrap();
        FieldCheck::build(&f).unwrap()
    }

    /// Threads that make the same pattern at once (vendors built side by side) all get the
    /// one `Pattern`, whose DFA or regex is then built once.
    #[test]
    fn a_pattern_made_by_threads_at_once_is_one_pattern() {
        for round in 0..20 {
            let text = format!("[A-Z]{{2}}-{round}[0-9]+ shared by threads");
            let barrier = std::sync::Barrier::new(4);
            let made: Vec<std::sync::Arc<Pattern>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            Pattern::new(&text).expect("a valid pattern")
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("thread"))
                    .collect()
            });
            assert!(made.iter().all(|p| std::sync::Arc::ptr_eq(p, &made[0])));
        }
    }

    #[test]
    fn required_and_empty() {
        let f = field("name = 'a'\nrequired = true");
        assert_eq!(f.check(None).unwrap_err().rule, "required");
        assert_eq!(f.check(Some("")).unwrap_err().rule, "required");
        let g = field("name = 'a'\ntype = 'integer'");
        assert_eq!(g.check(Some("")).unwrap(), Typed::Null);
    }

    #[test]
    fn types() {
        let i = field("name = 'a'\ntype = 'integer'");
        assert_eq!(i.check(Some("-12")).unwrap(), Typed::Int(-12));
        assert_eq!(i.check(Some("1.5")).unwrap_err().rule, "type");
        let d = field("name = 'a'\ntype = 'decimal'");
        assert!(d.check(Some("12.50")).is_ok());
        assert_eq!(d.check(Some("12,5")).unwrap_err().rule, "type");
        assert_eq!(d.check(Some("1_0")).unwrap_err().rule, "type");
        // Held exactly or refused, never rounded: 28 or 29 significant digits.
        for exact in [
            "79228162514264337593543950335",
            "-7.9228162514264337593543950335",
            "0.1234567890123456789012345678",
            "1.0000000000000000000000000000000",
        ] {
            let t = d.check(Some(exact)).unwrap();
            assert_eq!(t, Typed::Dec(Decimal::from_str(exact).unwrap()), "{exact}");
        }
        for inexact in [
            "1.00000000000000000000000000001",
            "0.1234567890123456789012345678901",
            "79228162514264337593543950336",
        ] {
            let e = d.check(Some(inexact)).unwrap_err();
            assert_eq!(e.rule, "type", "{inexact}");
        }
        assert!(
            d.check(Some("1.00000000000000000000000000001"))
                .unwrap_err()
                .reason
                .contains("more digits than a decimal holds")
        );
        let dt = field("name = 'a'\ntype = 'date'\nformat = '%d/%m/%Y'");
        assert!(dt.check(Some("31/12/2026")).is_ok());
        let e = dt.check(Some("2026-12-31")).unwrap_err();
        assert_eq!(e.reason, "\"2026-12-31\" is not a date in format %d/%m/%Y");
        let ts = field("name = 'a'\ntype = 'timestamp'");
        assert!(ts.check(Some("2026-11-29T06:00:00Z")).is_ok());
        assert!(ts.check(Some("2026-11-29 06:00")).is_err());
        let b = field("name = 'a'\ntype = 'boolean'");
        assert_eq!(b.check(Some("Yes")).unwrap(), Typed::Bool(true));
        assert!(b.check(Some("maybe")).is_err());
    }

    #[test]
    fn pattern_values_length_bounds() {
        let p = field("name = 'a'\npattern = '[A-Z]{2}[0-9]+'");
        assert!(p.check(Some("AB12")).is_ok());
        assert_eq!(p.check(Some("xAB12")).unwrap_err().rule, "pattern");
        let v = field("name = 'a'\nvalues = ['open', 'closed']");
        assert_eq!(v.check(Some("gone")).unwrap_err().rule, "values");
        let l = field("name = 'a'\nmax_length = 3");
        assert!(l.check(Some("äöü")).is_ok());
        assert_eq!(l.check(Some("abcd")).unwrap_err().rule, "max_length");
        let n = field("name = 'a'\ntype = 'decimal'\nmin = 0\nmax = 1000.5");
        assert_eq!(n.check(Some("-0.01")).unwrap_err().rule, "min");
        assert_eq!(n.check(Some("1000.51")).unwrap_err().rule, "max");
        assert!(n.check(Some("1000.50")).is_ok());
        let d = field("name = 'a'\ntype = 'date'\nmin = '2020-01-01'");
        assert_eq!(d.check(Some("2019-12-31")).unwrap_err().rule, "min");
    }

    #[test]
    fn bad_config() {
        let f: FieldConfig = toml::from_str("name = 'a'\nmin = 3").unwrap();
        assert_eq!(FieldCheck::build(&f).unwrap_err().0, "min");
        let f: FieldConfig = toml::from_str("name = 'a'\npattern = '(('").unwrap();
        assert_eq!(FieldCheck::build(&f).unwrap_err().0, "pattern");
        // A pattern that only parses inside the anchoring group is refused too.
        let f: FieldConfig = toml::from_str("name = 'a'\npattern = 'a)|(b'").unwrap();
        let (key, reason) = FieldCheck::build(&f).unwrap_err();
        assert_eq!(key, "pattern");
        assert!(reason.contains("unopened group"), "{reason}");
        let f: FieldConfig = toml::from_str("name = 'a'\ntype = 'date'\nformat = '%Q'").unwrap();
        assert_eq!(FieldCheck::build(&f).unwrap_err().0, "format");
    }

    #[test]
    fn allowed_values_short_and_long_lists() {
        // Values shorter and longer than a word (`text::Short`), and at its length.
        for stem in ["v", "value-v", "value-number-v"] {
            for n in [1, Allowed::FEW, Allowed::FEW + 1, 200] {
                let values: Vec<String> = (0..n).map(|i| format!("{stem}{i}")).collect();
                let allowed = Allowed::new(&values);
                assert_eq!(matches!(allowed, Allowed::Few(..)), n <= Allowed::FEW);
                assert!(values.iter().all(|v| allowed.contains(v)), "{n}");
                let next = format!("{stem}{n}");
                let others = [
                    "",
                    "v",
                    "V0",
                    "v0 ",
                    "value-v00",
                    "value-v1 ",
                    next.as_str(),
                ];
                for other in others {
                    assert!(!allowed.contains(other), "{n}: {other:?}");
                }
            }
        }
    }

    #[test]
    fn long_values_are_shortened_in_reasons() {
        let big = "x".repeat(1000);
        assert!(quote(&big).len() < 80);
    }

    use proptest::prelude::*;

    proptest! {
        /// A value is quoted in a reason as `Debug` quotes it (shortened past 60 characters).
        #[test]
        fn values_are_quoted_as_debug_quotes_them(text in prop_oneof![
            "[ -~]{0,70}",
            "[a-z\"\\\\ ]{0,70}",
            "(?s).{0,70}",
            // Combining marks, joiners, a soft hyphen, controls, quotes.
            "[a\u{300}\u{301}\u{200d}\u{ad}\u{7f}\u{85}\u{2028}é—'\"]{0,20}",
        ]) {
            let want = if text.chars().count() <= 60 {
                format!("{text:?}")
            } else {
                format!("{:?}…", text.chars().take(60).collect::<String>())
            };
            prop_assert_eq!(quote(&text), want);
        }

        /// A pattern, checked by its DFA or by the regex engine with one cache kept across
        /// values (as a chunk does), accepts exactly what the regex crate's anchored
        /// `is_match` accepts.
        #[test]
        fn patterns_match_like_the_regex_crate(
            p in prop::sample::select(vec![
                "[A-Z]{2}[0-9]{8}", "[^@ ]+@[^@ ]+\\.[a-z]+", "a|ab", "(?i)zoë", "\\w+", ".*x.*",
                "\\bab\\b|x", "(a|b)*c?$", "[[:alpha:]]{3,}",
            ]),
            values in prop::collection::vec("[A-Za-z0-9@. ëxZ]{0,14}", 1..40),
        ) {
            let f = field(&format!("name = 'a'\npattern = '{p}'"));
            let re = regex::Regex::new(&format!("^(?:{p})$")).unwrap();
            let mut cache = None;
            for v in values.iter().filter(|v| !v.is_empty()) {
                let ok = f.check_with(Some(v), &mut cache).is_ok();
                prop_assert_eq!(ok, re.is_match(v), "{} {:?}", p, v);
            }
        }

        /// A pattern that is one ASCII class per position is read as such, and accepts
        /// exactly what the regex crate accepts; one that is not falls back to the DFA.
        #[test]
        fn one_class_per_position_patterns_match_like_the_regex_crate(
            items in prop::collection::vec((
                prop::sample::select(vec![
                    "[A-Z]", "[0-9]", "\\d", "[a-f0-9]", "x", "-", "(?i:k)", "[^a]", "(ab)", "\\.", "ë", "[[:upper:]]",
                ]),
                prop::sample::select(vec!["", "{2}", "{1,2}", "{3}", "?", "{0}"]),
            ), 1..5),
            values in prop::collection::vec("[A-Za-z0-9.ëxk-]{0,9}", 1..40),
        ) {
            let p: String = items.iter().map(|(a, r)| format!("{a}{r}")).collect();
            let pattern = Pattern::new(&p).unwrap();
            // Unicode's `\d` and case folding reach beyond ASCII, `[^a]` too; an item
            // repeated zero times is no position at all.
            let ascii = |a: &str| !matches!(a, "[^a]" | "ë" | "\\d" | "(?i:k)");
            let present: Vec<_> = items.iter().filter(|(_, r)| *r != "{0}").collect();
            let simple = present.iter().all(|(a, r)| ascii(a) && !matches!(*r, "{1,2}" | "?"));
            prop_assert_eq!(pattern.fixed.is_some(), simple && !present.is_empty(), "{}", p);
            let re = regex::Regex::new(&format!("^(?:{p})$")).unwrap();
            let mut cache = None;
            for v in &values {
                prop_assert_eq!(pattern.matches(v, &mut cache), re.is_match(v), "{} {:?}", p, v);
            }
        }
    }
}
