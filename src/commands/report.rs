//! `batchwin report`: merge every slice's ledger into one and show the run: totals, vendors,
//! slices (stragglers and idle time), failures, and ledgers that could not be read.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};

use crate::exit::{ExitStatus, Failure};
use crate::ledger::report::{Context, Summary, find_ledgers, merge, summarize};
use crate::printer::GlobalArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Markdown,
    Csv,
    Html,
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
    /// The run's plan: units and slices with no result are reported missing.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// The vendor configuration, for each priority's SLA.
    #[arg(long, env = crate::env::ENV_CONFIG)]
    pub config: Option<PathBuf>,
    /// When the window opened (RFC 3339); SLAs count from here. Default: the first start.
    #[arg(long)]
    pub window_start: Option<String>,
    /// Also write the totals and per-priority SLA figures for node_exporter's textfile collector.
    #[arg(long)]
    pub prometheus: Option<PathBuf>,
    /// What makes the exit status 1 (comma-separated): failed, missing, unreadable,
    /// sla-high, sla-medium, sla-low. Default: all of them.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "failed,missing,unreadable,sla-high,sla-medium,sla-low"
    )]
    pub fail_on: Vec<FailOn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Failed,
    Missing,
    Unreadable,
    SlaHigh,
    SlaMedium,
    SlaLow,
}

pub fn run(g: &GlobalArgs, a: ReportArgs) -> Result<ExitStatus, Failure> {
    let merged = a.out.clone().unwrap_or_else(|| {
        a.ledgers
            .parent()
            .map(|p| p.join("report.duckdb"))
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
    let plan = match &a.plan {
        Some(p) => Some(crate::plan::Plan::read(p).map_err(Failure::usage)?),
        None => None,
    };
    let mut ctx = Context {
        plan: plan.as_ref(),
        ..Context::default()
    };
    if let Some(c) = &a.config {
        let config = crate::config::Config::load(c)?;
        for v in &config.vendors {
            if let Some(sla) = v.sla.map(|s| s.0) {
                let e = ctx.slas.entry(v.priority.to_string()).or_insert(f64::MAX);
                *e = e.min(sla.as_secs_f64());
            }
        }
    }
    if let Some(w) = &a.window_start {
        let t = chrono::DateTime::parse_from_rfc3339(w).map_err(|_| {
            Failure::usage(anyhow!(
                "--window-start {w:?} is not an RFC 3339 time like 2026-11-29T06:00:00Z"
            ))
        })?;
        ctx.window_start = Some(t.with_timezone(&chrono::Utc));
    }
    let (conn, sources) = merge(&merged, &ledgers).map_err(Failure::data)?;
    let summary = summarize(&conn, &sources, &ctx)
        .map_err(|e| Failure::data(anyhow!("`{}`: {e}", merged.display())))?;
    if let Some(path) = &a.prometheus {
        let tmp = path.with_extension("prom.tmp");
        std::fs::write(&tmp, prometheus(&summary))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Failure::data(anyhow!("cannot write `{}`: {e}", path.display())))?;
    }
    if !g.quiet {
        let text = match a.format {
            ReportFormat::Table => table(&summary, false),
            ReportFormat::Markdown => table(&summary, true),
            ReportFormat::Json => serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n",
            ReportFormat::Csv => csv(&summary),
            ReportFormat::Html => crate::ledger::report::html(&summary)
                .map_err(|e| Failure::data(anyhow!("cannot render the HTML report: {e}")))?,
        };
        print!("{text}");
    }
    let sla_missed = |p: &str| {
        summary
            .priorities
            .iter()
            .any(|r| r.priority == p && r.late_by_seconds.is_some_and(|l| l > 0.0))
    };
    let bad = a.fail_on.iter().any(|f| match f {
        FailOn::Failed => summary.totals.failed > 0,
        FailOn::Missing => !summary.missing.is_empty() || !summary.slices_never_started.is_empty(),
        FailOn::Unreadable => !summary.unreadable.is_empty(),
        FailOn::SlaHigh => sla_missed("high"),
        FailOn::SlaMedium => sla_missed("medium"),
        FailOn::SlaLow => sla_missed("low"),
    });
    Ok(if bad {
        ExitStatus::DataFailure
    } else {
        ExitStatus::Success
    })
}

fn table(s: &Summary, markdown: bool) -> String {
    use crate::printer::thousands;
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
    if !s.priorities.is_empty() {
        h(&mut o, "Priorities");
        let w = [8, 6, 7, 8, 16, 10, 0];
        row(
            &mut o,
            &[
                "priority",
                "done",
                "failed",
                "missing",
                "finished after",
                "SLA",
                "SLA met",
            ]
            .map(String::from),
            &w,
        );
        sep(&mut o, 7);
        for p in &s.priorities {
            let secs =
                |v: Option<f64>| v.map(|x| format!("{x:.1} s")).unwrap_or_else(|| "-".into());
            let met = match p.late_by_seconds {
                _ if p.units_failed + p.units_missing > 0 => {
                    format!("no: {} failed, {} missing", p.units_failed, p.units_missing)
                }
                Some(l) if l > 0.0 => format!("MISSED by {l:.1} s"),
                Some(l) => format!("met, {:.1} s to spare", -l),
                None if p.sla_met => "yes (no SLA)".into(),
                None => "no".into(),
            };
            let cells = [
                p.priority.clone(),
                p.units_done.to_string(),
                p.units_failed.to_string(),
                p.units_missing.to_string(),
                secs(p.finished_after_seconds),
                secs(p.sla_seconds),
                met,
            ];
            row(&mut o, &cells, &w);
        }
    }
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
    if !s.missing.is_empty() || !s.slices_never_started.is_empty() {
        h(&mut o, "Missing");
        let dash = if markdown { "- " } else { "" };
        for k in &s.slices_never_started {
            let _ = writeln!(o, "{dash}slice {k} never started (no ledger)");
        }
        for m in &s.missing {
            let part = m
                .part
                .map(|p| format!(" part {}", p + 1))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "{dash}{} `{}`{part} (slice {}): no result",
                m.vendor, m.location, m.slice
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

/// Totals and per-priority SLA figures in the node_exporter textfile format.
fn prometheus(s: &Summary) -> String {
    let t = &s.totals;
    let mut o = String::new();
    let mut metric = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(
            o,
            "# HELP batchwin_{name} {help}\n# TYPE batchwin_{name} gauge"
        );
        for (labels, v) in samples {
            let _ = writeln!(o, "batchwin_{name}{labels} {v}");
        }
    };
    let one = |v: f64| [(String::new(), v)];
    metric("files", "Files in the run.", &one(t.files as f64));
    metric(
        "units_failed",
        "Units (files or parts) that failed.",
        &one(t.failed as f64),
    );
    metric("records_in", "Records read.", &one(t.records_in as f64));
    metric(
        "records_out",
        "Records delivered.",
        &one(t.records_out as f64),
    );
    metric(
        "records_rejected",
        "Records rejected.",
        &one(t.records_rejected as f64),
    );
    metric(
        "wall_seconds",
        "Seconds from the first start to the last end.",
        &one(t.wall_seconds),
    );
    metric(
        "missing_units",
        "Planned units with no result.",
        &one(s.missing.len() as f64),
    );
    type Row = crate::ledger::report::PriorityRow;
    let by = |f: &dyn Fn(&Row) -> Option<f64>| -> Vec<(String, f64)> {
        s.priorities
            .iter()
            .filter_map(|p| f(p).map(|v| (format!("{{priority=\"{}\"}}", p.priority), v)))
            .collect()
    };
    metric(
        "priority_finished_seconds",
        "Seconds from the window start to the priority's last finish.",
        &by(&|p| p.finished_after_seconds),
    );
    metric(
        "priority_sla_seconds",
        "The priority's tightest SLA in seconds.",
        &by(&|p| p.sla_seconds),
    );
    metric(
        "priority_sla_met",
        "1 when the priority met its SLA with nothing failed or missing.",
        &by(&|p| Some(f64::from(u8::from(p.sla_met)))),
    );
    o
}
