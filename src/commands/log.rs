//! `batchwin log [RUNS]`: past runs, one line each; `batchwin log RUN --why FILE`: why a file
//! was processed, skipped, re-run or left in that run. Glue: the flags, then
//! [`crate::status::history`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::exit::{ExitStatus, Failure};
use crate::printer::GlobalArgs;
use crate::status::history;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogOutput {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The runs folder (`runs` in the config; default `runs`), or with `--why` one run folder
    /// (`RUNS/DATE-WINDOW`).
    #[arg(default_value = "runs")]
    pub folder: PathBuf,
    /// Say why this file (its path, or its name) was processed, skipped, re-run or left in the
    /// run folder given.
    #[arg(long, value_name = "FILE")]
    pub why: Option<String>,
    /// How to print it.
    #[arg(long, value_enum, default_value_t = LogOutput::Table)]
    pub format: LogOutput,
}

pub fn run(g: &GlobalArgs, a: LogArgs) -> Result<ExitStatus, Failure> {
    let text = match &a.why {
        Some(file) => {
            let w = history::why(&a.folder, file).map_err(Failure::usage)?;
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
