//! Realistic field values for synthetic records, and the defects that make one invalid.
//!
//! Values include what real vendor files hold and naive tools get wrong: names with commas,
//! apostrophes and non-ASCII letters, free text with quotes, `<&>` and (where the format can
//! carry it) newlines.

use chrono::{Duration, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Defect;

const FIRST: [&str; 16] = [
    "Anna",
    "José",
    "Zoë",
    "Łukasz",
    "François",
    "Søren",
    "Mei",
    "Olusegun",
    "Ana María",
    "Björk",
    "Siobhán",
    "Dmitri",
    "Priya",
    "Ngọc",
    "Kwame",
    "Ingrid",
];
const LAST: [&str; 16] = [
    "Smith",
    "Müller",
    "O'Brien",
    "Nguyễn",
    "García",
    "Kowalski",
    "Dubois",
    "Jensen",
    "Tanaka",
    "Smith, Jr.",
    "Okafor",
    "Ivanova",
    "Patel",
    "Ó Súilleabháin",
    "Rossi",
    "Andersson",
];
const ASCII: [&str; 16] = [
    "anna",
    "jose",
    "zoe",
    "lukasz",
    "francois",
    "soren",
    "mei",
    "olusegun",
    "ana.maria",
    "bjork",
    "siobhan",
    "dmitri",
    "priya",
    "ngoc",
    "kwame",
    "ingrid",
];
const DOMAINS: [&str; 6] = [
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "example.co.uk",
    "example.de",
    "example.fr",
];
const CURRENCIES: [&str; 5] = ["USD", "EUR", "GBP", "JPY", "CHF"];
const NOTES: [&str; 14] = [
    "",
    "",
    "Paid in full",
    "Customer said \"thanks\", will renew",
    "Café, crème brûlée & more",
    "Fee: € 100; waived",
    "<b>urgent</b> review > 3 days",
    "See ticket #4471, 'priority'",
    "Multi-line note\nsecond line, with comma",
    "Line one\r\nLine two",
    "Straße 12, 80331 München",
    "東京都 渋谷区",
    "Tab\tseparated\tbits",
    "Refund requested \"partial\"",
];

/// One valid record, values in `FIELDS` order. `single_line`: no newlines in free text (for
/// fixed-width files, whose records are lines).
pub fn record(rng: &mut ChaCha8Rng, id: u64, single_line: bool) -> Vec<Option<String>> {
    let f = rng.gen_range(0..FIRST.len());
    let l = rng.gen_range(0..LAST.len());
    let name = format!("{} {}", FIRST[f], LAST[l]);
    let email = format!(
        "{}.{}{}@{}",
        ASCII[f],
        LAST[l]
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_lowercase(),
        rng.gen_range(1..100),
        DOMAINS[rng.gen_range(0..DOMAINS.len())]
    );
    let account = format!(
        "{}{}{:08}",
        (b'A' + rng.gen_range(0..26)) as char,
        (b'A' + rng.gen_range(0..26)) as char,
        rng.gen_range(0..100_000_000u32)
    );
    let cents: i64 = if rng.gen_ratio(1, 20) {
        -rng.gen_range(1..500_000)
    } else {
        rng.gen_range(0..10_000_000)
    };
    let amount = format!(
        "{}{}.{:02}",
        if cents < 0 { "-" } else { "" },
        cents.abs() / 100,
        cents.abs() % 100
    );
    let base = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
    let start = base + Duration::days(rng.gen_range(0..690));
    let end = rng
        .gen_bool(0.7)
        .then(|| start + Duration::days(rng.gen_range(0..400)));
    let status = ["open", "closed", "pending"][rng.gen_range(0..3)];
    let closed_at = (status == "closed").then(|| {
        format!(
            "{}T{:02}:{:02}:{:02}Z",
            start + Duration::days(rng.gen_range(0..30)),
            rng.gen_range(0..24),
            rng.gen_range(0..60),
            rng.gen_range(0..60)
        )
    });
    let mut note = NOTES[rng.gen_range(0..NOTES.len())];
    if single_line && (note.contains('\n') || note.contains('\t')) {
        note = "Paid in full";
    }
    vec![
        Some(id.to_string()),
        Some(account),
        Some(name),
        Some(email),
        Some(amount),
        Some(CURRENCIES[rng.gen_range(0..CURRENCIES.len())].to_string()),
        Some(status.to_string()),
        Some(start.to_string()),
        end.map(|d| d.to_string()),
        closed_at,
        Some(note.to_string()),
    ]
}

/// Changes a valid record so that exactly `defect` rejects it. `Unreadable` is applied to the
/// encoded bytes instead (see `break_record`).
pub fn apply_defect(rec: &mut [Option<String>], defect: Defect) {
    match defect {
        Defect::AmountType => rec[4] = Some("12,50".into()),
        Defect::AccountPattern => rec[1] = Some("X1234".into()),
        Defect::StartDateType => {
            rec[7] = Some("2026-02-30".into());
            rec[8] = None; // so that no rule can fire on a date that did not parse
        }
        Defect::NameRequired => rec[2] = None,
        Defect::CurrencyValues => rec[5] = Some("XXX".into()),
        Defect::EndBeforeStart => {
            let start = rec[7]
                .as_deref()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
            if let Some(s) = start {
                rec[8] = Some((s - Duration::days(3)).to_string());
            }
        }
        Defect::ClosedWithoutClosedAt => {
            rec[6] = Some("closed".into());
            rec[9] = None;
        }
        Defect::AmountMax => rec[4] = Some("2000000.00".into()),
        Defect::Unreadable => {}
    }
}
