//! Deterministic synthetic days: vendor files in all four formats, the `batchwin.toml` that
//! describes their vendors, a masking key, and `expected.json` with the exact number of records
//! and of invalid records per file and reason.
//!
//! The same options (seed included) always give the same bytes: every file draws from its own
//! ChaCha stream seeded by (seed, file index), so files can be written in parallel. Invalid
//! records are exactly `round(records * invalid_rate)` per file, each with exactly one known
//! defect, so the expected counts are exact rather than statistical.
//!
//! Inputs are written with the project's own encoders, except for the defects that make a
//! record unreadable (a ragged CSV row, a broken JSON line, an undefined XML entity, a
//! fixed-width line of the wrong length), which are made by hand on the encoded bytes.

mod values;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::codecs::Align;
use crate::codecs::Encoder;
use crate::codecs::csv::{CsvEncoder, CsvWriteOptions};
use crate::codecs::fixed::{FixedEncoder, FixedField};
use crate::codecs::jsonl::JsonlEncoder;
use crate::codecs::xml::{XmlEncoder, XmlWriteOptions};
use crate::config::{Format, Priority};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub out: PathBuf,
    pub date: String,
    pub files: usize,
    pub records: u64,
    pub seed: u64,
    /// Number of vendors; default: one per 20 files, between 4 and 120.
    pub vendors: Option<usize>,
    /// Share of invalid records per file (0.0..=1.0).
    pub invalid_rate: f64,
}

/// What was generated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerateSummary {
    pub files: usize,
    pub vendors: usize,
    pub records: u64,
    pub invalid: u64,
    pub bytes: u64,
    pub config: PathBuf,
    pub expected: PathBuf,
    pub inbound: PathBuf,
}

/// One synthetic vendor.
#[derive(Debug, Clone)]
pub struct VendorSpec {
    pub id: String,
    pub format: Format,
    pub priority: Priority,
    /// CSV variants: delimiter, BOM and CRLF.
    pub delimiter: u8,
    pub bom: bool,
    pub crlf: bool,
    pub after: Option<String>,
}

/// The input fields every synthetic vendor has, in order.
pub const FIELDS: [&str; 11] = [
    "id",
    "account",
    "name",
    "email",
    "amount",
    "currency",
    "status",
    "start_date",
    "end_date",
    "closed_at",
    "notes",
];

/// A defect that makes one record invalid, and the reject key it must be counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    AmountType,
    AccountPattern,
    StartDateType,
    NameRequired,
    CurrencyValues,
    EndBeforeStart,
    ClosedWithoutClosedAt,
    AmountMax,
    /// Unreadable record: ragged CSV row, broken JSON, undefined XML entity, wrong fixed length.
    Unreadable,
}

impl Defect {
    const ALL: [Defect; 9] = [
        Defect::AmountType,
        Defect::AccountPattern,
        Defect::StartDateType,
        Defect::NameRequired,
        Defect::CurrencyValues,
        Defect::EndBeforeStart,
        Defect::ClosedWithoutClosedAt,
        Defect::AmountMax,
        Defect::Unreadable,
    ];

    /// The reject key `process` counts this defect under (see `pipeline::Problem::key`).
    pub fn key(self, format: Format) -> &'static str {
        match self {
            Defect::AmountType => "amount.type",
            Defect::AccountPattern => "account.pattern",
            Defect::StartDateType => "start_date.type",
            Defect::NameRequired => "name.required",
            Defect::CurrencyValues => "currency.values",
            Defect::EndBeforeStart => "end_after_start",
            Defect::ClosedWithoutClosedAt => "closed_needs_closed_at",
            Defect::AmountMax => "amount.max",
            Defect::Unreadable => match format {
                Format::Csv => "columns",
                Format::Jsonl => "json",
                Format::Xml => "xml",
                Format::Fixed => "length",
                // Never an input format (generated vendors are csv, jsonl, xml or fixed).
                Format::Pdf => "pdf",
            },
        }
    }
}

/// Expected results for one generated file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExpectedFile {
    pub vendor: String,
    /// Path relative to the generated folder.
    pub path: String,
    pub format: String,
    pub priority: String,
    pub bytes: u64,
    pub records: u64,
    pub invalid: u64,
    pub reasons: BTreeMap<String, u64>,
}

/// The whole `expected.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Expected {
    pub date: String,
    pub seed: u64,
    pub files: u64,
    pub records: u64,
    pub invalid: u64,
    pub bytes: u64,
    pub reasons: BTreeMap<String, u64>,
    pub per_file: Vec<ExpectedFile>,
}

/// The synthetic vendors for a day.
pub fn vendor_specs(n: usize) -> Vec<VendorSpec> {
    (0..n)
        .map(|i| {
            let format = [Format::Csv, Format::Jsonl, Format::Xml, Format::Fixed][i % 4];
            let priority = match i % 5 {
                0 => Priority::High,
                1 | 2 => Priority::Medium,
                _ => Priority::Low,
            };
            let csv_variant = (i / 4) % 3;
            VendorSpec {
                id: format!("V{:03}", i + 1),
                format,
                priority,
                delimiter: [b',', b';', b'|'][csv_variant],
                bom: format == Format::Csv && csv_variant == 1,
                crlf: format == Format::Csv && csv_variant == 1,
                // Every tenth vendor depends on the one before it.
                after: (i % 10 == 9).then(|| format!("V{:03}", i)),
            }
        })
        .collect()
}

/// Writes a synthetic day.
pub fn generate(opts: &GenerateOptions) -> anyhow::Result<GenerateSummary> {
    anyhow::ensure!(opts.files > 0, "--files must be at least 1");
    anyhow::ensure!(
        opts.records >= opts.files as u64,
        "--records ({}) must be at least --files ({})",
        opts.records,
        opts.files
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&opts.invalid_rate),
        "the invalid rate must be between 0 and 1"
    );
    let n_vendors = opts
        .vendors
        .unwrap_or((opts.files / 20).clamp(4, 120))
        .max(1);
    let vendors = vendor_specs(n_vendors);
    let inbound = opts.out.join("inbound").join(&opts.date);
    std::fs::create_dir_all(&inbound)
        .with_context(|| format!("cannot create `{}`", inbound.display()))?;

    let counts = record_counts(opts.files, opts.records, opts.seed);
    let jobs: Vec<(usize, &VendorSpec, u64)> = counts
        .iter()
        .enumerate()
        .map(|(j, &n)| (j, &vendors[j % vendors.len()], n))
        .collect();
    let per_file: Vec<ExpectedFile> = jobs
        .par_iter()
        .map(|&(j, v, n)| write_file(opts, &inbound, j, v, n))
        .collect::<anyhow::Result<_>>()?;

    let key_path = opts.out.join("mask.key");
    let mut key_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x6d61_736b);
    let key: [u8; 32] = key_rng.r#gen();
    crate::files::write_secret(&key_path, format!("{}\n", hex::encode(key)))
        .with_context(|| format!("cannot write `{}`", key_path.display()))?;
    let config = opts.out.join("batchwin.toml");
    crate::files::write(&config, config_text(&vendors))
        .with_context(|| format!("cannot write `{}`", config.display()))?;

    let mut reasons = BTreeMap::new();
    for f in &per_file {
        for (k, n) in &f.reasons {
            *reasons.entry(k.clone()).or_insert(0) += n;
        }
    }
    let expected = Expected {
        date: opts.date.clone(),
        seed: opts.seed,
        files: per_file.len() as u64,
        records: per_file.iter().map(|f| f.records).sum(),
        invalid: per_file.iter().map(|f| f.invalid).sum(),
        bytes: per_file.iter().map(|f| f.bytes).sum(),
        reasons,
        per_file,
    };
    let expected_path = opts.out.join("expected.json");
    let text = serde_json::to_string_pretty(&expected)?;
    crate::files::write(&expected_path, text + "\n")
        .with_context(|| format!("cannot write `{}`", expected_path.display()))?;
    Ok(GenerateSummary {
        files: expected.files as usize,
        vendors: n_vendors,
        records: expected.records,
        invalid: expected.invalid,
        bytes: expected.bytes,
        config,
        expected: expected_path,
        inbound,
    })
}

/// Records per file: weights from 1 to 100 skewed towards small files (`100^(u^3)`, mean about
/// 9.2), so that a day of 2,500 files and 25M records spreads from about 1K to 100K records
/// per file around a mean of 10K, as real days do; scaled to add up to `total` exactly, at
/// least one record each.
fn record_counts(files: usize, total: u64, seed: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let weights: Vec<f64> = (0..files)
        .map(|_| 100f64.powf(rng.r#gen::<f64>().powi(3)))
        .collect();
    let sum: f64 = weights.iter().sum();
    let spare = total - files as u64;
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|w| 1 + (spare as f64 * w / sum) as u64)
        .collect();
    let assigned: u64 = counts.iter().sum();
    // Hand out what rounding left over, one record at a time, to the largest files.
    let mut order: Vec<usize> = (0..files).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
    for k in 0..(total - assigned) as usize {
        counts[order[k % files]] += 1;
    }
    counts
}

fn ext(f: Format) -> &'static str {
    match f {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
        Format::Xml => "xml",
        Format::Fixed => "txt",
        Format::Pdf => "pdf",
    }
}

/// Input field layout of fixed-width vendors: (name, width, align).
pub const FIXED_INPUT: [(&str, usize, Align); 11] = [
    ("id", 10, Align::Right),
    ("account", 10, Align::Left),
    ("name", 40, Align::Left),
    ("email", 50, Align::Left),
    ("amount", 14, Align::Right),
    ("currency", 3, Align::Left),
    ("status", 8, Align::Left),
    ("start_date", 10, Align::Left),
    ("end_date", 10, Align::Left),
    ("closed_at", 20, Align::Left),
    ("notes", 60, Align::Left),
];

fn fixed_fields(layout: &[(&str, usize, Align)]) -> Vec<(String, FixedField)> {
    let mut start = 0;
    layout
        .iter()
        .map(|&(name, width, align)| {
            let f = FixedField {
                start,
                width,
                align,
                pad: ' ',
            };
            start += width;
            (name.to_string(), f)
        })
        .collect()
}

/// Column names and paths as the vendor's files spell them.
fn input_names(format: Format) -> Vec<String> {
    let names: [&str; 11] = match format {
        Format::Csv => [
            "id",
            "account",
            "name",
            "email",
            "Amount",
            "currency",
            "status",
            "start_date",
            "end_date",
            "closed_at",
            "notes",
        ],
        Format::Jsonl => [
            "id",
            "account",
            "customer.name",
            "customer.email",
            "amount",
            "currency",
            "status",
            "dates.start",
            "dates.end",
            "closed_at",
            "notes",
        ],
        _ => FIELDS,
    };
    names.iter().map(|s| s.to_string()).collect()
}

fn input_encoder(v: &VendorSpec) -> anyhow::Result<Box<dyn Encoder>> {
    let e: Box<dyn Encoder> = match v.format {
        Format::Csv => Box::new(
            CsvEncoder::new(
                CsvWriteOptions {
                    delimiter: v.delimiter,
                    quote: b'"',
                    header: true,
                    bom: v.bom,
                    crlf: v.crlf,
                    formula_guard: false,
                },
                input_names(Format::Csv),
            )
            .map_err(anyhow::Error::msg)?,
        ),
        Format::Jsonl => Box::new(
            JsonlEncoder::new(input_names(Format::Jsonl), Default::default())
                .map_err(anyhow::Error::msg)?,
        ),
        Format::Xml => Box::new(
            XmlEncoder::new(
                XmlWriteOptions {
                    root: "records".into(),
                    record: "record".into(),
                },
                FIELDS.iter().map(|f| (f.to_string(), *f == "id")).collect(),
            )
            .map_err(anyhow::Error::msg)?,
        ),
        Format::Fixed => Box::new(
            FixedEncoder::new(fixed_fields(&FIXED_INPUT), false).map_err(anyhow::Error::msg)?,
        ),
        Format::Pdf => anyhow::bail!("pdf is an output format only: no input file is pdf"),
    };
    Ok(e)
}

fn write_file(
    opts: &GenerateOptions,
    inbound: &Path,
    j: usize,
    v: &VendorSpec,
    n: u64,
) -> anyhow::Result<ExpectedFile> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (j as u64 + 1));
    let dir = inbound.join(&v.id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let name = format!("{}_{}_{:04}.{}", v.id, opts.date, j + 1, ext(v.format));
    let path = dir.join(&name);

    let invalid = ((n as f64) * opts.invalid_rate).round() as u64;
    let mut bad: Vec<usize> =
        rand::seq::index::sample(&mut rng, n as usize, invalid as usize).into_vec();
    bad.sort_unstable();
    let mut bad = bad.into_iter().peekable();

    let encoder = input_encoder(v)?;
    let file = crate::files::create(&path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(1 << 16);
    encoder.header(&mut buf);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    // Ids fit the 10-digit fixed-width field up to 9,998 files; they are unique across files
    // of fewer than a million records.
    let id_base = (j as u64 + 1) * 1_000_000;
    for i in 0..n as usize {
        let mut rec = values::record(&mut rng, id_base + i as u64, v.format == Format::Fixed);
        let defect = if bad.peek() == Some(&i) {
            bad.next();
            let d = Defect::ALL[rng.gen_range(0..Defect::ALL.len())];
            values::apply_defect(&mut rec, d);
            *reasons.entry(d.key(v.format).to_string()).or_insert(0) += 1;
            Some(d)
        } else {
            None
        };
        let refs: Vec<Option<&str>> = rec.iter().map(|s| s.as_deref()).collect();
        let start = buf.len();
        encoder.record(&refs, &mut buf).map_err(|e| {
            anyhow::anyhow!(
                "generated record {} of `{name}` cannot be written: {e}",
                i + 1
            )
        })?;
        if defect == Some(Defect::Unreadable) {
            break_record(v, &mut buf, start);
        }
        if buf.len() >= 1 << 16 {
            w.write_all(&buf)?;
            bytes += buf.len() as u64;
            buf.clear();
        }
    }
    encoder.footer(&mut buf);
    w.write_all(&buf)?;
    bytes += buf.len() as u64;
    w.flush()
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(ExpectedFile {
        vendor: v.id.clone(),
        path: format!("inbound/{}/{}/{}", opts.date, v.id, name),
        format: v.format.to_string(),
        priority: v.priority.to_string(),
        bytes,
        records: n,
        invalid,
        reasons,
    })
}

/// Makes the record that was just encoded at `buf[start..]` unreadable.
fn break_record(v: &VendorSpec, buf: &mut Vec<u8>, start: usize) {
    let eol: &[u8] = if v.crlf { b"\r\n" } else { b"\n" };
    match v.format {
        // One column too many.
        Format::Csv => {
            let at = buf.len() - eol.len();
            buf.splice(at..at, [v.delimiter, b'x']);
        }
        // Not a JSON object any more: the closing brace is gone.
        Format::Jsonl => {
            let at = buf.len() - eol.len() - 1;
            buf.remove(at);
        }
        // An entity no DTD defines.
        Format::Xml => {
            let rec = &buf[start..];
            if let Some(p) = memchr::memmem::find(rec, b"<account>") {
                let at = start + p + b"<account>".len();
                buf.splice(at..at, b"&bogus;".iter().copied());
            }
        }
        // Three characters too long.
        Format::Fixed => {
            let at = buf.len() - eol.len();
            buf.splice(at..at, *b"XYZ");
        }
        // Never an input format.
        Format::Pdf => {}
    }
}

/// The `batchwin.toml` of the synthetic vendors: the full profile (validate, map, mask).
pub fn config_text(vendors: &[VendorSpec]) -> String {
    let mut s = String::from(
        "# Synthetic vendors written by `batchwin generate`. Reference: docs/config.md.\n\n[masking]\nkey_file = \"mask.key\"\n",
    );
    for v in vendors {
        let _ = write!(
            s,
            "\n[[vendor]]\nid = \"{}\"\nname = \"Synthetic vendor {} ({})\"\npriority = \"{}\"\nsla = \"{}\"\nskip_limit = \"5%\"\n",
            v.id,
            &v.id[1..],
            v.format,
            v.priority,
            match v.priority {
                Priority::High => "1h",
                Priority::Medium => "2h",
                Priority::Low => "4h",
            }
        );
        if let Some(a) = &v.after {
            let _ = writeln!(s, "after = [\"{a}\"]");
        }
        let _ = write!(s, "\n[vendor.input]\nformat = \"{}\"\n", v.format);
        if v.format == Format::Csv {
            let _ = writeln!(s, "delimiter = \"{}\"", v.delimiter as char);
            if v.bom {
                s.push_str("encoding = \"utf-8-bom\"\n");
            }
        }
        let names = input_names(v.format);
        let fixed = fixed_fields(&FIXED_INPUT);
        for (i, field) in FIELDS.iter().enumerate() {
            let _ = write!(s, "\n[[vendor.fields]]\nname = \"{field}\"\n");
            s.push_str(match *field {
                "id" => "type = \"integer\"\nrequired = true\nmin = 1\n",
                "account" => "required = true\npattern = \"[A-Z]{2}[0-9]{8}\"\n",
                "name" => "required = true\nmax_length = 40\n",
                "email" => "pattern = \"[^@ ]+@[^@ ]+\\\\.[a-z]+\"\nmax_length = 50\n",
                "amount" => "type = \"decimal\"\nrequired = true\nmin = -1000000\nmax = 1000000\n",
                "currency" => {
                    "required = true\nvalues = [\"USD\", \"EUR\", \"GBP\", \"JPY\", \"CHF\"]\n"
                }
                "status" => "required = true\nvalues = [\"open\", \"closed\", \"pending\"]\n",
                "start_date" => "type = \"date\"\nrequired = true\n",
                "end_date" => "type = \"date\"\n",
                "closed_at" => "type = \"timestamp\"\n",
                _ => "max_length = 60\n",
            });
            if names[i] != *field {
                let _ = writeln!(
                    s,
                    "source = \"{}\"",
                    names[i].replace('.', if v.format == Format::Xml { "/" } else { "." })
                );
            }
            if v.format == Format::Xml && *field == "id" {
                s.push_str("source = \"@id\"\n");
            }
            if v.format == Format::Fixed {
                let f = &fixed[i].1;
                let _ = writeln!(
                    s,
                    "start = {}\nwidth = {}\nalign = \"{}\"",
                    f.start,
                    f.width,
                    if f.align == Align::Right {
                        "right"
                    } else {
                        "left"
                    }
                );
            }
        }
        s.push_str(
            "\n[[vendor.rules]]\nname = \"end_after_start\"\ncheck = \"end_date >= start_date\"\n\n[[vendor.rules]]\nname = \"closed_needs_closed_at\"\nwhen = \"status == 'closed'\"\nrequire = [\"closed_at\"]\n",
        );
        s.push_str(
            "\n[vendor.lookups.currencies]\nUSD = \"US dollar\"\nEUR = \"Euro\"\nGBP = \"Pound sterling\"\nJPY = \"Yen\"\nCHF = \"Swiss franc\"\n",
        );
        let _ = write!(
            s,
            "\n[vendor.output]\nformat = \"{}\"\nfile_name = \"{{stem}}.out.{}\"\n",
            v.format,
            ext(v.format)
        );
        if v.format == Format::Csv {
            let _ = writeln!(s, "delimiter = \"{}\"", v.delimiter as char);
            if v.crlf {
                s.push_str("line_ending = \"crlf\"\n");
            }
        }
        for (name, body, width) in OUTPUT_FIELDS {
            let _ = write!(s, "\n[[vendor.output.fields]]\nname = \"{name}\"\n{body}");
            if v.format == Format::Fixed {
                let _ = writeln!(s, "width = {width}");
                if name == "amount" || name == "record_id" {
                    s.push_str("align = \"right\"\n");
                }
            }
            if v.format == Format::Xml && name == "record_id" {
                s.push_str("attribute = true\n");
            }
        }
    }
    s
}

/// The synthetic output profile: (name, keys, fixed width).
const OUTPUT_FIELDS: [(&str, &str, usize); 13] = [
    ("record_id", "from = \"id\"\n", 10),
    (
        "account_token",
        "from = \"account\"\nmask = \"hash\"\nhash_length = 16\n",
        16,
    ),
    ("customer", "from = \"name\"\ntransform = [\"trim\"]\n", 40),
    ("email", "mask = \"email_domain\"\n", 50),
    ("amount", "decimals = 2\n", 14),
    ("currency", "", 3),
    (
        "currency_name",
        "from = \"currency\"\nlookup = \"currencies\"\n",
        14,
    ),
    ("status", "transform = [\"upper\"]\n", 8),
    ("start_date", "date_format = \"%Y%m%d\"\n", 8),
    ("end_date", "", 10),
    ("closed_at", "", 20),
    ("notes", "", 60),
    ("source", "value = \"batchwin\"\n", 8),
];
