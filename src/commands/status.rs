//! `batchwin status [RUN]`: one screen for a whole run, while it runs and after, read from the
//! run folder or the run location URL (plan, the slices' status documents, the ended slices'
//! ledgers). Glue: the flags, resolved into [`StatusSettings`] and a [`RunReader`], then
//! [`RunReader::read`] (or [`crate::status::watch`]) and [`crate::status::render`].

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};

use crate::exit::{ExitStatus, Failure};
use crate::printer::GlobalArgs;
use crate::status::location::{Mirror, PlanAt};
use crate::status::{RunReader, StatusSettings, render};
use crate::transfer::location::is_url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run folder (`RUNS/DATE-WINDOW`, holding `plan.json` and `out/`), or a run location
    /// URL (`s3://BUCKET/RUN`, holding `plan.json`, `status/` and `ledgers/`). A run folder of
    /// `run --run-location` is read at its run location.
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
    /// The run's plan (a path or a URL) when it is not `RUN/plan.json`, as `process --plan`
    /// was given it.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// The vendor configuration, for its `[transfer.options]` when RUN is a URL (credentials
    /// otherwise come from the environment, as for `report --ledgers URL`).
    #[arg(long, env = crate::env::ENV_CONFIG)]
    pub config: Option<PathBuf>,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

pub fn run(g: &GlobalArgs, a: StatusArgs) -> Result<ExitStatus, Failure> {
    // A signal (Ctrl-C ending `--watch`) stops it at once, with its local copies of a run
    // location removed.
    let _signals =
        crate::cancel::Cancel::exit_on_signal("nothing was changed").map_err(Failure::data)?;
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
    // A run folder whose day lives at a run location (`run --run-location`) is read there.
    let run_text = if is_url(&a.run.display().to_string()) {
        a.run.display().to_string()
    } else {
        crate::status::location_of(&a.run).unwrap_or_else(|| a.run.display().to_string())
    };
    let mirror = if is_url(&run_text) {
        let config = a
            .config
            .as_deref()
            .map(crate::config::Config::load)
            .transpose()?;
        let store = crate::transfer::store_options_of(config.as_ref())?;
        let plan = match a.plan.as_ref().map(|p| p.display().to_string()) {
            None => PlanAt::InRun,
            Some(p) if is_url(&p) => PlanAt::Url(p),
            Some(_) => PlanAt::Local,
        };
        Some(Mirror::open(&run_text, plan, &store).map_err(crate::status::read_failure)?)
    } else if a
        .plan
        .as_ref()
        .is_some_and(|p| is_url(&p.display().to_string()))
    {
        return Err(Failure::usage(anyhow!(
            "--plan is a URL and the run a local folder; give the plan as a file, or the run location's URL"
        )));
    } else {
        None
    };
    // A plan given as a file is read as it is; one at a URL is copied with the run location.
    let plan = a.plan.clone().filter(|p| !is_url(&p.display().to_string()));
    let settings = StatusSettings {
        plan,
        run: a.run.clone(),
        stale_seconds: a.stale,
        window_start,
        now: chrono::Utc::now(),
    };
    let draw = |s: &crate::status::RunStatus| match a.format {
        StatusFormat::Table => render::table(s),
        StatusFormat::Json => render::json(s),
    };
    let mut reader = RunReader::new(settings, mirror);
    let last = if a.watch {
        let in_place = std::io::IsTerminal::is_terminal(&std::io::stdout()) && !g.quiet;
        crate::status::watch(&mut reader, a.interval, |s| {
            if in_place {
                // Home and clear: the screen is redrawn in place.
                print!("\x1b[H\x1b[2J{}", draw(s));
            } else if !g.quiet {
                print!("{}", draw(s));
            }
        })
    } else {
        reader.read(chrono::Utc::now()).inspect(|s| {
            if !g.quiet {
                print!("{}", draw(s));
            }
        })
    }
    .map_err(crate::status::read_failure)?;
    Ok(if crate::status::needs_attention(&last) {
        ExitStatus::DataFailure
    } else {
        ExitStatus::Success
    })
}
