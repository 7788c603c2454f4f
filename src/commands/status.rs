//! `batchwin status [RUN]`: one screen for a whole run, while it runs and after, read from the
//! run folder (plan, the slices' status documents, the ended slices' ledgers). Glue: the flags,
//! resolved into [`StatusSettings`], then [`crate::status::read`] (or
//! [`crate::status::watch`]) and [`crate::status::render`].

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};

use crate::exit::{ExitStatus, Failure};
use crate::printer::GlobalArgs;
use crate::status::{StatusSettings, render};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run folder (`RUNS/DATE-WINDOW`, holding `plan.json` and `out/`).
    #[arg(default_value = ".")]
    pub run: PathBuf,
    /// How to print it: a screen for a terminal, or JSON for dashboards.
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub format: StatusFormat,
    /// Redraw every `--interval` seconds, in place on a terminal, until every slice has ended.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between redraws with `--watch`.
    #[arg(long, default_value_t = 2.0, value_parser = positive_seconds)]
    pub interval: f64,
    /// A running slice whose status document has not changed for this many seconds is flagged.
    #[arg(long, default_value_t = 30.0, value_parser = positive_seconds)]
    pub stale: f64,
    /// When the window opened (RFC 3339); SLAs count from here. Default: the run folder's
    /// `window.json` (written by `run`), then the first slice's start.
    #[arg(long)]
    pub window_start: Option<String>,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

pub fn run(g: &GlobalArgs, a: StatusArgs) -> Result<ExitStatus, Failure> {
    let window_start = match &a.window_start {
        Some(w) => Some(
            chrono::DateTime::parse_from_rfc3339(w)
                .map_err(|_| {
                    Failure::usage(anyhow!(
                        "--window-start {w:?} is not an RFC 3339 time like 2026-11-29T06:00:00Z"
                    ))
                })?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    let settings = StatusSettings {
        run: a.run.clone(),
        stale_seconds: a.stale,
        window_start,
        now: chrono::Utc::now(),
    };
    let draw = |s: &crate::status::RunStatus| match a.format {
        StatusFormat::Table => render::table(s),
        StatusFormat::Json => render::json(s),
    };
    let last = if a.watch {
        let in_place = std::io::IsTerminal::is_terminal(&std::io::stdout()) && !g.quiet;
        crate::status::watch(&settings, a.interval, |s| {
            if in_place {
                // Home and clear: the screen is redrawn in place.
                print!("\x1b[H\x1b[2J{}", draw(s));
            } else if !g.quiet {
                print!("{}", draw(s));
            }
        })
    } else {
        crate::status::read(&settings).inspect(|s| {
            if !g.quiet {
                print!("{}", draw(s));
            }
        })
    }
    .map_err(Failure::usage)?;
    Ok(if crate::status::needs_attention(&last) {
        ExitStatus::DataFailure
    } else {
        ExitStatus::Success
    })
}
