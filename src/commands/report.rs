//! `batchwin report`: merge every slice's ledger into one and show the run: totals, vendors,
//! slices (stragglers and idle time), failures, and ledgers that could not be read.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};

use crate::cli::GlobalArgs;
use crate::exit::{ExitStatus, Failure};
use crate::ledger::report::{Summary, find_ledgers, merge, summarize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Markdown,
    Csv,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A folder of ledgers (`*.duckdb`, searched recursively), or one ledger file.
    #[arg(long)]
    pub ledgers: PathBuf,
    /// The merged ledger to write (default: `report.duckdb` beside the ledgers folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
}

pub fn run(g: &GlobalArgs, a: ReportArgs) -> Result<ExitStatus, Failure> {
    let merged = a.out.clone().unwrap_or_else(|| {
        let base = if a.ledgers.is_file() {
            a.ledgers.parent()
        } else {
            a.ledgers.parent()
        };
        base.map(|p| p.join("report.duckdb"))
            .unwrap_or_else(|| PathBuf::from("report.duckdb"))
    });
    let ledgers = find_ledgers(&a.ledgers, Some(&merged))
        .map_err(|e| Failure::usage(anyhow!("cannot read `{}`: {e}", a.ledgers.display())))?;
    if ledgers.is_empty() {
        return Err(Failure::data(anyhow!(
            "no ledgers (`*.duckdb`) under `{}`",
            a.ledgers.display()
        )));
    }
    let (conn, sources) = merge(&merged, &ledgers).map_err(Failure::data)?;
    let summary = summarize(&conn, &sources)
        .map_err(|e| Failure::data(anyhow!("`{}`: {e}", merged.display())))?;
    if !g.quiet {
        let text = match a.format {
            ReportFormat::Table => table(&summary, false),
            ReportFormat::Markdown => table(&summary, true),
            ReportFormat::Json => serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n",
            ReportFormat::Csv => csv(&summary),
        };
        print!("{text}");
    }
    let bad = summary.totals.failed > 0 || !summary.unreadable.is_empty();
    Ok(if bad {
        ExitStatus::DataFailure
    } else {
        ExitStatus::Success
    })
}

fn table(s: &Summary, markdown: bool) -> String {
    use super::process::thousands;
    let t = &s.totals;
    let mut o = String::new();
    let h = |o: &mut String, title: &str| {
        if markdown {
            let _ = writeln!(o, "\n## {title}\n");
        } else {
            let _ = writeln!(o, "\n{title}");
        }
    };
    if markdown {
        o.push_str("# batchwin report\n\n");
    }
    let _ = writeln!(
        o,
        "{}files      {} ({} units: {} succeeded, {} failed)",
        if markdown { "    " } else { "" },
        t.files,
        t.units,
        t.succeeded,
        t.failed
    );
    let lines = [
        format!(
            "records    {} in, {} out, {} rejected",
            thousands(t.records_in as u64),
            thousands(t.records_out as u64),
            thousands(t.records_rejected as u64)
        ),
        format!("bytes      {:.1} MB", t.bytes as f64 / 1e6),
        format!(
            "wall time  {:.1} s, {} records/s",
            t.wall_seconds,
            thousands(t.records_per_second as u64)
        ),
    ];
    for l in lines {
        let _ = writeln!(o, "{}{l}", if markdown { "    " } else { "" });
    }
    let row = |o: &mut String, cells: &[String], widths: &[usize]| {
        if markdown {
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        } else {
            let padded: Vec<String> = cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = writeln!(o, "{}", padded.join("  ").trim_end());
        }
    };
    let sep = |o: &mut String, n: usize| {
        if markdown {
            let _ = writeln!(o, "|{}", " --- |".repeat(n));
        }
    };
    h(&mut o, "Vendors");
    let w = [8, 8, 6, 7, 12, 10, 9, 12, 0];
    row(
        &mut o,
        &[
            "vendor",
            "priority",
            "units",
            "failed",
            "records",
            "rejected",
            "seconds",
            "records/s",
            "top reasons",
        ]
        .map(String::from),
        &w,
    );
    sep(&mut o, 9);
    for v in &s.vendors {
        let reasons: Vec<String> = v
            .top_reasons
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        row(
            &mut o,
            &[
                v.vendor.clone(),
                v.priority.clone(),
                v.units.to_string(),
                v.failed.to_string(),
                thousands(v.records_in as u64),
                thousands(v.records_rejected as u64),
                format!("{:.2}", v.seconds),
                thousands(v.records_per_second as u64),
                reasons.join(", "),
            ],
            &w,
        );
    }
    h(&mut o, "Slices");
    let w = [12, 19, 19, 9, 6, 12, 7, 0];
    row(
        &mut o,
        &[
            "slice",
            "start (UTC)",
            "end (UTC)",
            "seconds",
            "units",
            "records",
            "idle s",
            "straggler",
        ]
        .map(String::from),
        &w,
    );
    sep(&mut o, 8);
    for sl in &s.slices {
        row(
            &mut o,
            &[
                sl.slice.clone(),
                sl.start.clone(),
                sl.end.clone(),
                format!("{:.2}", sl.seconds),
                sl.units.to_string(),
                thousands(sl.records as u64),
                format!("{:.1}", sl.idle_seconds),
                if sl.straggler {
                    "yes".into()
                } else {
                    String::new()
                },
            ],
            &w,
        );
    }
    if !s.failures.is_empty() {
        h(&mut o, "Failed");
        for f in &s.failures {
            let part = f
                .part
                .map(|p| format!(" part {}", p + 1))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "{}{} `{}`{part}: {}",
                if markdown { "- " } else { "" },
                f.vendor,
                f.input_path,
                f.error
            );
        }
    }
    if !s.unreadable.is_empty() {
        h(&mut o, "Ledgers that could not be read");
        for u in &s.unreadable {
            let _ = writeln!(
                o,
                "{}{} `{}`: {}",
                if markdown { "- " } else { "" },
                u.slice,
                u.path,
                u.error.as_deref().unwrap_or("")
            );
        }
    }
    o
}

/// One row per vendor, for spreadsheets.
fn csv(s: &Summary) -> String {
    let mut o = String::from(
        "vendor,priority,units,failed,records_in,records_rejected,seconds,records_per_second\n",
    );
    for v in &s.vendors {
        let _ = writeln!(
            o,
            "{},{},{},{},{},{},{:.3},{:.0}",
            v.vendor,
            v.priority,
            v.units,
            v.failed,
            v.records_in,
            v.records_rejected,
            v.seconds,
            v.records_per_second
        );
    }
    o
}
