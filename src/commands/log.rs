//! `batchwin log [RUNS]`: past runs, one line each; `batchwin log RUN --why FILE`: why a file
//! was processed, skipped, re-run or left in that run. Glue: the flags, then
//! [`crate::status::history`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::exit::{ExitStatus, Failure};
use crate::printer::GlobalArgs;
use crate::status::history;
use crate::transfer::location::is_url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogOutput {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The runs folder (`runs` in the config; default `runs`), or with `--why` one run folder
    /// (`RUNS/DATE-WINDOW`) or the URL of a day at a run location (`URL/DATE-WINDOW`, as
    /// `run --run-location URL` keeps it).
    #[arg(default_value = "runs")]
    pub folder: PathBuf,
    /// Say why this file (its path, or its name) was processed, skipped, re-run or left in the
    /// run folder given.
    #[arg(long, value_name = "FILE")]
    pub why: Option<String>,
    /// The vendor configuration, for its `[transfer.options]` when the run is at a run
    /// location (credentials otherwise come from the environment, as for `status RUN_URL`).
    #[arg(long, env = crate::env::ENV_CONFIG)]
    pub config: Option<PathBuf>,
    /// How to print it.
    #[arg(long, value_enum, default_value_t = LogOutput::Table)]
    pub format: LogOutput,
}

pub fn run(g: &GlobalArgs, a: LogArgs) -> Result<ExitStatus, Failure> {
    // A signal stops it at once, with its local copies of a run location removed.
    let _signals =
        crate::cancel::Cancel::exit_on_signal("nothing was changed").map_err(Failure::data)?;
    let text = match &a.why {
        Some(file) => {
            let w = why(&a, file)?;
            match a.format {
                LogOutput::Table => history::why_text(&w),
                LogOutput::Json => serde_json::to_string_pretty(&w).unwrap_or_default() + "\n",
            }
        }
        None => {
            let lines = history::runs(&a.folder).map_err(Failure::usage)?;
            match a.format {
                LogOutput::Table => history::table(&lines),
                LogOutput::Json => serde_json::to_string_pretty(&lines).unwrap_or_default() + "\n",
            }
        }
    };
    if !g.quiet {
        print!("{text}");
    }
    Ok(ExitStatus::Success)
}

/// `--why FILE` of a run folder, or of a day at a run location (given as its URL, or as the
/// local run folder of a day whose data `run --run-location` put there).
fn why(a: &LogArgs, file: &str) -> Result<history::Why, Failure> {
    let folder = a.folder.display().to_string();
    let (url, local) = if is_url(&folder) {
        (folder, None)
    } else {
        match crate::status::location_of(&a.folder) {
            Some(url) => (url, Some(a.folder.as_path())),
            None => return history::why(&a.folder, file).map_err(Failure::usage),
        }
    };
    let config = a
        .config
        .as_deref()
        .map(crate::config::Config::load)
        .transpose()?;
    let store = crate::transfer::store_options_of(config.as_ref())?;
    crate::status::location::why_at(&url, local, file, &store).map_err(crate::status::read_failure)
}
