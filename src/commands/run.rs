//! `batchwin run`: one batch window end to end, as one cron line. The orchestration (steps as
//! child processes, the run folder, its lock and resume, the executors, `--dry-run`) is
//! [`crate::window`]'s; this file holds the flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::exit::{ExitStatus, Failure};
use crate::printer::{self, GlobalArgs};
use crate::window::{Executor, RunSettings};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The vendor configuration file, with the `[windows.NAME]` tables.
    #[arg(long, env = crate::env::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
    /// The window to run, e.g. `morning`.
    #[arg(long)]
    pub window: String,
    /// The business date (YYYY-MM-DD); default: the day of the window that opened last.
    #[arg(long, env = crate::env::ENV_DATE, value_parser = printer::check_date)]
    pub date: Option<String>,
    /// Where the slices run.
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    /// Slices run at once by the local executor (default: the window's `workers`, then one per
    /// two cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub workers: Option<u64>,
    /// Folder of run folders (default: `runs` in the config, then `runs` beside the config).
    #[arg(long)]
    pub runs: Option<PathBuf>,
    /// A run location URL (`s3://BUCKET/runs`, `az://`, `gs://`, `sftp://`) for the days' data:
    /// each day's staging, plan, outputs, ledgers and status documents go to
    /// `URL/DATE-WINDOW/`, and the slices run over it with local scratch. The lock, `state.json`
    /// and the report's pages stay in the local run folder (`--runs`). With `--executor slurm`
    /// the tasks read the plan there too, with node-local scratch.
    #[arg(long, value_name = "URL")]
    pub run_location: Option<String>,
    /// Slurm: most slices the plan may use (`plan --max-slices`). A day that needs more is
    /// planned as far as it fits, HIGH first, and the rest is deferred to the next run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_slices: Option<u64>,
    /// Slurm: share of the window the plan may fill (`plan --utilization`, default 0.8).
    #[arg(long)]
    pub utilization: Option<f64>,
    /// Do not defer anything at the window's end: finish the day's work whatever the time.
    #[arg(long)]
    pub catch_up: bool,
    /// Print what would be fetched, the plan's calculation and the commands; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// After SIGTERM or SIGINT, how long the steps and slices may take to stop before `run`
    /// kills them (SIGKILL) and exits. Its workers get a little less, so that they normally
    /// stop by themselves and clean up. Slurm jobs are cancelled with `scancel`.
    #[arg(long, env = crate::env::ENV_GRACE_PERIOD, default_value = crate::cancel::DEFAULT_GRACE_PERIOD, value_parser = humantime::parse_duration)]
    pub grace_period: Duration,
    /// A file holding the job token (a compact JWT; default: the `BATCHWIN_TOKEN` variable),
    /// given to the `plan` step, which verifies it against `[auth]` and records the masking
    /// profile its roles choose for every slice.
    #[arg(long, value_name = "FILE")]
    pub token: Option<PathBuf>,
    /// The W3C trace context the run's spans join (a scheduler's or CI's trace).
    #[arg(long, env = crate::env::ENV_TRACEPARENT, hide = true)]
    pub traceparent: Option<String>,
}

impl RunArgs {
    /// The settings the window runs with.
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            config: std::path::absolute(&self.config).unwrap_or(self.config.clone()),
            window: self.window.clone(),
            date: self.date.clone(),
            executor: self.executor,
            workers: self.workers,
            runs: self.runs.clone(),
            run_location: self.run_location.clone(),
            max_slices: self.max_slices,
            utilization: self.utilization,
            catch_up: self.catch_up,
            dry_run: self.dry_run,
            grace_period: self.grace_period,
            token: self
                .token
                .as_ref()
                .map(|t| std::path::absolute(t).unwrap_or(t.clone())),
            otlp: crate::env::otlp(),
            traceparent: self.traceparent.clone(),
            secrets: crate::env::secret,
        }
    }
}

pub fn run(g: &GlobalArgs, a: RunArgs) -> Result<ExitStatus, Failure> {
    crate::window::run(g, &a.settings())
}
