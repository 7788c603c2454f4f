//! `batchwin report`: merge every slice's ledger into one and show the run: totals, vendors,
//! slices (stragglers and idle time), failures, and ledgers that could not be read. Glue: the
//! flags, resolved into a [`Context`], then [`crate::report::build`] and
//! [`crate::report::render`], and the exit status `--fail-on` asks for.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};

use crate::exit::{ExitStatus, Failure};
use crate::ledger::find_ledgers;
use crate::printer::GlobalArgs;
use crate::report::{Context, render};
use crate::transfer::location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Markdown,
    Csv,
    Html,
    // A PDF for paper, written to standard output as bytes like the others print text.
    Pdf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A folder of ledgers (`*.duckdb`, searched recursively), or one ledger file, or the URL
    /// of a run location's ledgers (s3://BUCKET/RUN/ledgers, ...).
    #[arg(long)]
    pub ledgers: PathBuf,
    /// The merged ledger to write (default: `report.duckdb` beside the ledgers folder; in the
    /// working folder for a URL).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How to print the report (pdf: its bytes on standard output, `> report.pdf`).
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// The run's plan (a path or a URL): units and slices with no result are reported
    /// missing.
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
    /// Also write the report as an HTML page to this file (whatever `--format` prints).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Also write the report as JSON to this file (whatever `--format` prints).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// What makes the exit status 1 (comma-separated): failed, deferred, cancelled, blocked,
    /// quarantined, missing, unreadable, sla-high, sla-medium, sla-low. Default: all of them.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "failed,deferred,cancelled,blocked,quarantined,missing,unreadable,sla-high,sla-medium,sla-low"
    )]
    pub fail_on: Vec<FailOn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Failed,
    /// Units the window's end left for the next run.
    Deferred,
    /// Units a signal stopped.
    Cancelled,
    /// Units held back because a vendor they come `after` did not finish.
    Blocked,
    /// Files set aside after failing the window's `max_attempts` runs.
    Quarantined,
    Missing,
    Unreadable,
    SlaHigh,
    SlaMedium,
    SlaLow,
}

pub fn run(g: &GlobalArgs, a: ReportArgs) -> Result<ExitStatus, Failure> {
    // A signal stops it at once, with its local copies of a run location removed.
    let _signals = crate::cancel::Cancel::exit_on_signal("no report was written; run it again")
        .map_err(Failure::data)?;
    let config = a
        .config
        .as_deref()
        .map(crate::config::Config::load)
        .transpose()?;
    // A run location's ledgers (and plan) are read from local copies.
    let copies = location::LocalCopies::new("report")?;
    let remote = location::is_url(&a.ledgers.display().to_string());
    let (ledgers_dir, plan_path) = if remote || a.plan.as_deref().is_some_and(is_url) {
        let store = crate::transfer::store_options_of(config.as_ref())?;
        let rt = crate::transfer::runtime()?;
        let dir = match remote {
            true => rt.block_on(location::download_ledgers(
                &a.ledgers.display().to_string(),
                copies.path(),
                &store,
            ))?,
            false => a.ledgers.clone(),
        };
        let plan = match &a.plan {
            Some(p) => Some(rt.block_on(location::local_copy(p, &copies, &store))?),
            None => None,
        };
        (dir, plan)
    } else {
        (a.ledgers.clone(), a.plan.clone())
    };
    let merged = a.out.clone().unwrap_or_else(|| match remote {
        true => PathBuf::from("report.duckdb"),
        false => a
            .ledgers
            .parent()
            .map(|p| p.join("report.duckdb"))
            .unwrap_or_else(|| PathBuf::from("report.duckdb")),
    });
    let ledgers = find_ledgers(&ledgers_dir, Some(&merged))
        .map_err(|e| Failure::usage(anyhow!("cannot read `{}`: {e}", a.ledgers.display())))?;
    if ledgers.is_empty() {
        return Err(Failure::data(anyhow!(
            "no ledgers (`*.duckdb`) under `{}`",
            a.ledgers.display()
        )));
    }
    let plan = match &plan_path {
        Some(p) => Some(crate::plan::Plan::read(p).map_err(Failure::usage)?),
        None => None,
    };
    let mut ctx = Context {
        plan: plan.as_ref(),
        ..Context::default()
    };
    if let Some(config) = &config {
        ctx.pricing = Some(crate::plan::cost::Pricing::from_config(&config.pricing));
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
    let report = crate::report::build(&merged, &ledgers, &ctx).map_err(Failure::data)?;
    if !g.quiet {
        let text = match a.format {
            ReportFormat::Pdf => {
                let bytes = crate::report::pdf::pdf(&report)
                    .map_err(|e| Failure::data(anyhow!("cannot render the PDF report: {e}")))?;
                std::io::Write::write_all(&mut std::io::stdout().lock(), &bytes)
                    .map_err(|e| Failure::data(anyhow!("cannot write the PDF report: {e}")))?;
                String::new()
            }
            ReportFormat::Table => render::table(&report),
            ReportFormat::Markdown => render::markdown(&report),
            ReportFormat::Json => render::json(&report),
            ReportFormat::Csv => render::csv(&report),
            ReportFormat::Html => render::html(&report)
                .map_err(|e| Failure::data(anyhow!("cannot render the HTML report: {e}")))?,
        };
        print!("{text}");
    }
    // The files asked for besides what is printed, each written whole under a temporary name
    // and renamed into place (a reader never sees part of one).
    let also = |path: &std::path::Path, text: String| {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        crate::files::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Failure::data(anyhow!("cannot write `{}`: {e}", path.display())))
    };
    // Each is tried whatever became of the others; the first failure is the error.
    let mut written = Vec::new();
    if let Some(path) = &a.prometheus {
        written.push(also(path, render::prometheus(&report)));
    }
    if let Some(path) = &a.html {
        written.push(
            render::html(&report)
                .map_err(|e| Failure::data(anyhow!("cannot render the HTML report: {e}")))
                .and_then(|page| also(path, page)),
        );
    }
    if let Some(path) = &a.json {
        written.push(also(path, render::json(&report)));
    }
    let mut failures = written.into_iter().filter_map(Result::err);
    if let Some(first) = failures.next() {
        for other in failures {
            eprintln!("error: {}", crate::exit::error_text(&other.error));
        }
        return Err(first);
    }
    let bad = a.fail_on.iter().any(|f| match f {
        FailOn::Failed => report.totals.failed > 0,
        FailOn::Deferred => report.totals.deferred > 0,
        FailOn::Cancelled => report.totals.cancelled > 0,
        FailOn::Blocked => report.totals.blocked > 0,
        FailOn::Quarantined => report.totals.quarantined > 0,
        FailOn::Missing => !report.missing.is_empty() || !report.slices_never_started.is_empty(),
        FailOn::Unreadable => !report.unreadable.is_empty(),
        FailOn::SlaHigh => report.sla_missed("high"),
        FailOn::SlaMedium => report.sla_missed("medium"),
        FailOn::SlaLow => report.sla_missed("low"),
    });
    Ok(if bad {
        ExitStatus::DataFailure
    } else {
        ExitStatus::Success
    })
}

fn is_url(p: &std::path::Path) -> bool {
    location::is_url(&p.display().to_string())
}
