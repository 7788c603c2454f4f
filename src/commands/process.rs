//! `batchwin process`: run vendor files through validate -> map -> mask and write outputs,
//! reject files and a DuckDB ledger. The units come from `--input`, `--inbound` or a plan's
//! slice; the engine's batch scheduler ([`crate::engine::batch`]) does the work.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;

use crate::config::Config;
use crate::engine::live::{Live, STATUS_DIR, STATUS_FILE};
use crate::engine::remote::RunLocation;
use crate::engine::{EngineOptions, Journaling, batch};
use crate::exit::{ExitStatus, Failure};
use crate::notify::watch::Watch;
use crate::printer::{self, GlobalArgs};
use crate::telemetry::attr;
use crate::transfer::location::is_url;
use crate::vendor::Vendor;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// The vendor configuration file (default `batchwin.toml`; with `--plan URL`, the copy
    /// stored beside the plan).
    #[arg(long, env = crate::env::ENV_CONFIG)]
    pub config: Option<PathBuf>,
    /// The vendor of the `--input` files.
    #[arg(long, requires = "input")]
    pub vendor: Option<String>,
    /// Input files of `--vendor` (repeat the flag for several).
    #[arg(long, requires = "vendor", conflicts_with = "inbound")]
    pub input: Vec<PathBuf>,
    /// A day's inbound folder laid out as `DIR/VENDOR/FILE`: every file of every vendor.
    #[arg(long, required_unless_present_any = ["input", "plan"], conflicts_with = "plan")]
    pub inbound: Option<PathBuf>,
    /// A plan from `batchwin plan`: run one of its slices (`--slice`, or the engine's index).
    /// A path, or a URL (s3://, az://, gs://, sftp://, file://): the slice then downloads its
    /// inputs to `--scratch` and needs no filesystem shared with the planner.
    #[arg(long, conflicts_with = "input")]
    pub plan: Option<PathBuf>,
    /// The slice of `--plan` to run. Without it, the slice is the engine's array index
    /// (`AWS_BATCH_JOB_ARRAY_INDEX`, `SLURM_ARRAY_TASK_ID` or `JOB_COMPLETION_INDEX`) plus
    /// `BATCHWIN_SLICE_OFFSET`.
    #[arg(long, env = crate::env::ENV_SLICE, requires = "plan")]
    pub slice: Option<usize>,
    #[arg(long, env = crate::env::ENV_SLICE_OFFSET, default_value_t = 0, hide = true)]
    pub slice_offset: usize,
    #[arg(long, env = crate::env::ENV_AWS_BATCH_INDEX, hide = true)]
    pub aws_batch_index: Option<usize>,
    #[arg(long, env = crate::env::ENV_SLURM_INDEX, hide = true)]
    pub slurm_index: Option<usize>,
    #[arg(long, env = crate::env::ENV_K8S_INDEX, hide = true)]
    pub k8s_index: Option<usize>,
    /// Output folder (outputs of `--inbound` and `--plan` go to `OUT/VENDOR/`). With
    /// `--plan`, also a run location URL: outputs, reject files and the slice's ledger are
    /// uploaded there, each whole or not at all. The run's live status document, replaced
    /// about once a second, is `OUT/status.json`, with `--plan` `OUT/status/slice-K.json` (read
    /// by `batchwin status`).
    #[arg(long)]
    pub out: PathBuf,
    /// With `--plan`: the local folder a slice downloads its inputs to and writes its outputs
    /// in before uploading them (default: the system's temporary folder). A few files at a
    /// time, removed as they are uploaded. Giving it runs the slice that way even when the
    /// plan and `--out` are local.
    #[arg(long, requires = "plan")]
    pub scratch: Option<PathBuf>,
    /// With `--plan` made from `fetch --listing` while that fetch still appends to MANIFEST:
    /// each unit starts once its file's row is there, and one whose file the fetch ended
    /// without (`MANIFEST.ended`) is not processed (exit code 3; the next run fetches it).
    /// `run` does this on a day's first run.
    #[arg(
        long,
        requires = "plan",
        conflicts_with = "scratch",
        value_name = "MANIFEST"
    )]
    pub fetching: Option<PathBuf>,
    /// The ledger file (default `OUT/ledger.duckdb`, with `--plan` `OUT/ledgers/slice-K.duckdb`).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// With a local `--plan`: record each unit in the ledger's journal (`LEDGER.journal`, folded
    /// into the ledger by the next command that reads it), where `publish --follow` delivers
    /// its outputs at once. `run` does this when it publishes.
    #[arg(long, requires = "plan", conflicts_with = "scratch")]
    pub journal: bool,
    /// Business date for `{date}` in output names (default today).
    #[arg(long, env = crate::env::ENV_DATE, value_parser = printer::check_date)]
    pub date: Option<String>,
    /// After this time (RFC 3339) no unit of a MEDIUM or LOW vendor starts: it is recorded as
    /// `deferred` and left for the next run. HIGH units always start. `run` sets it to the
    /// window's end.
    #[arg(long, value_parser = printer::parse_deadline)]
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
    /// After SIGTERM or SIGINT, how long the units in flight may take to wind down before the
    /// process removes its temporary files and exits anyway, with the same code. Keep it under
    /// the engine's own limit: AWS Batch and Kubernetes send SIGKILL 30 s after SIGTERM by
    /// default, Slurm after its KillWait.
    #[arg(long, env = crate::env::ENV_GRACE_PERIOD, default_value = crate::cancel::DEFAULT_GRACE_PERIOD, value_parser = humantime::parse_duration)]
    pub grace_period: std::time::Duration,
    /// A file holding the job token (a compact JWT; default: the `BATCHWIN_TOKEN` variable),
    /// verified against `[auth]`: its roles choose the masking profile. Without one, every
    /// field is masked as configured. With `--plan`, the plan's profile applies and no token is
    /// read.
    #[arg(long, value_name = "FILE")]
    pub token: Option<PathBuf>,
    /// The exit code of a slice whose units all ended, recorded, some failed, blocked or
    /// deferred: 1, or 0 where one failed job stops every later one (AWS Batch files use 0;
    /// their report job's exit status says whether the day failed).
    #[arg(long, requires = "plan", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub failures_exit: u8,
    #[command(flatten)]
    pub attempts: crate::exit::Attempts,
    /// Largest input bytes per parallel chunk (a smaller file is cut into one chunk per thread).
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub chunk_bytes: u64,
    /// The W3C trace context this slice's spans join (`run` and the emitted job files set it).
    #[arg(long, env = crate::env::ENV_TRACEPARENT, hide = true)]
    pub traceparent: Option<String>,
    /// Where the notifications sent are recorded (default `OUT/notifications.jsonl`; `run`
    /// sets the run folder's).
    #[arg(long, env = crate::env::ENV_NOTIFY_LOG, hide = true)]
    pub notify_log: Option<PathBuf>,
    #[command(flatten)]
    pub transfer: super::transfer::TransferArgs,
}

pub fn run(g: &GlobalArgs, mut a: ProcessArgs) -> Result<ExitStatus, Failure> {
    a.attempts.arm(a.failures_exit);
    let (attempts, failures_exit) = (a.attempts.clone(), a.failures_exit);
    attempts.status(process(g, a), failures_exit)
}

fn process(g: &GlobalArgs, a: ProcessArgs) -> Result<ExitStatus, Failure> {
    if let Some(plan) = &a.plan
        && (is_url(&plan.to_string_lossy())
            || is_url(&a.out.to_string_lossy())
            || a.scratch.is_some())
    {
        if a.fetching.is_some() || a.journal {
            return Err(Failure::usage(anyhow!(
                "--fetching and --journal are for a slice in a local folder; a slice over a run location downloads its inputs and uploads its ledger"
            )));
        }
        return run_remote_slice(g, &a, plan);
    }
    let config_path = a.config.clone().unwrap_or_else(|| "batchwin.toml".into());
    let config = crate::config::Config::load(&config_path)?;
    if let Some(plan_path) = &a.plan {
        return run_slice(g, &a, &config_path, plan_path, &config);
    }
    let token = crate::auth::Token::resolve(a.token.as_deref(), crate::env::token())
        .map_err(Failure::usage)?;
    let masking = crate::auth::choose(&config, token.as_ref())?;
    let profiles = crate::vendor::build_all(&config, &masking, crate::env::load_mask_key(&config))?;
    let (items, skipped) = match (&a.inbound, &a.vendor) {
        (Some(dir), _) => batch::scan_inbound(&config, dir, &a.out).map_err(Failure::usage)?,
        (None, Some(v)) => (
            batch::input_units(&config, &config_path, v, &a.input, &a.out)?,
            Vec::new(),
        ),
        (None, None) => {
            return Err(Failure::usage(anyhow!(
                "give `--inbound DIR`, or `--vendor ID --input FILE`"
            )));
        }
    };
    let opts = EngineOptions {
        chunk_bytes: a.chunk_bytes as usize,
        date: a.date.clone().unwrap_or_else(printer::today),
        deadline: a.deadline,
        grace: a.grace_period,
        masking,
        live: Some(Live::in_folder(&a.out, STATUS_FILE, None, 0)),
        journal: Journaling::Small,
        ..EngineOptions::default()
    };
    let ledger_path = a
        .ledger
        .clone()
        .unwrap_or_else(|| a.out.join("ledger.duckdb"));
    let watch = Watch::new(
        a.traceparent.as_deref(),
        notify_log(&a),
        &config.notify,
        "process",
        vec![attr("batchwin.date", opts.date.clone())],
    );
    let result = batch::run(
        &profiles,
        items,
        &ledger_path,
        &opts,
        printer::progress_enabled(g),
        skipped,
    );
    let summary = watch.record(&opts.date, result)?;
    if !g.quiet {
        print!("{}", summary.render());
    }
    Ok(summary.status())
}

/// Runs one slice of a plan.
fn run_slice(
    g: &GlobalArgs,
    a: &ProcessArgs,
    config_path: &Path,
    plan_path: &Path,
    config: &Config,
) -> Result<ExitStatus, Failure> {
    let plan = crate::plan::Plan::read(plan_path).map_err(Failure::usage)?;
    plan.warn_token_unused(a.token.is_some());
    let profiles: Vec<Vendor> =
        crate::vendor::build_all(config, &plan.masking, crate::env::load_mask_key(config))?;
    let k = slice_of(a, plan.slices.len())?;
    let config_sha = plan.config_sha_of(config_path);
    let ledger = a
        .ledger
        .clone()
        .unwrap_or_else(|| a.out.join("ledgers").join(format!("slice-{k:05}.duckdb")));
    let todo = batch::slice_units(
        config,
        config_path,
        &plan,
        k,
        &batch::LocalSite { plan_path },
        &a.out,
        &ledger,
        config_sha.as_deref(),
    )?;
    let live = Live::in_folder(
        &a.out.join(STATUS_DIR),
        &Live::slice_name(k),
        Some(k),
        todo.resumed,
    );
    let mut opts = slice_options(a, &plan, config_sha, Some(live));
    opts.inputs_past_cache = true;
    let watch = slice_watch(a, config, k, &plan.date);
    let hooks = batch::Arriving::hooks(a.fetching.as_deref(), &opts.cancel);
    let result = batch::run_with(
        &profiles,
        todo.units,
        &ledger,
        &opts,
        printer::progress_enabled(g),
        Vec::new(),
        &*hooks,
    );
    let summary = watch.record(&plan.date, result)?;
    if !g.quiet {
        print!(
            "{}",
            summary.render_slice(k, plan.slices.len(), todo.resumed)
        );
    }
    Ok(summary.status().failures_as(a.failures_exit))
}

/// Runs one slice of a plan against a run location: inputs downloaded to scratch, outputs and
/// the ledger uploaded (see [`crate::engine::remote`]).
fn run_remote_slice(g: &GlobalArgs, a: &ProcessArgs, plan: &Path) -> Result<ExitStatus, Failure> {
    let given = a.config.as_deref().map(Config::load).transpose()?;
    let store = match &given {
        Some(c) => a.transfer.resolve(c, None)?.store,
        None => a.transfer.store_options_without_config(),
    };
    let loc = RunLocation::open(
        plan,
        &a.out,
        a.config.as_deref(),
        a.scratch.as_deref(),
        &store,
    )?;
    let config = match given {
        Some(c) => c,
        None => Config::load(&loc.config_path)?,
    };
    loc.plan.warn_token_unused(a.token.is_some());
    let profiles: Vec<Vendor> = crate::vendor::build_all(
        &config,
        &loc.plan.masking,
        crate::env::load_mask_key(&config),
    )?;
    let k = slice_of(a, loc.plan.slices.len())?;
    // The slice's live status document goes to the run location (`RUN/status/`).
    let opts = slice_options(a, &loc.plan, loc.plan.config_sha_of(&loc.config_path), None);
    let watch = slice_watch(a, &config, k, &loc.plan.date);
    let mut r = loc.run_slice(&config, &profiles, k, &opts, printer::progress_enabled(g))?;
    r.summary = watch.record(&loc.plan.date, Ok(r.summary))?;
    if !g.quiet {
        print!(
            "{}",
            r.summary.render_slice(k, loc.plan.slices.len(), r.resumed)
        );
        println!(
            "scratch    {:.1} MB at most (inputs and outputs at once)",
            r.scratch_peak as f64 / 1e6
        );
    }
    Ok(r.summary.status().failures_as(a.failures_exit))
}

/// A slice's span (under `TRACEPARENT`) and webhooks.
fn slice_watch(a: &ProcessArgs, config: &Config, k: usize, date: &str) -> Watch {
    let attrs = vec![
        attr("batchwin.slice", k as i64),
        attr("batchwin.date", date.to_string()),
    ];
    Watch::new(
        a.traceparent.as_deref(),
        notify_log(a),
        &config.notify,
        "slice",
        attrs,
    )
}

/// Where the notifications sent are recorded: `--notify-log`, else `OUT/notifications.jsonl`.
fn notify_log(a: &ProcessArgs) -> PathBuf {
    a.notify_log
        .clone()
        .unwrap_or_else(|| a.out.join("notifications.jsonl"))
}

/// Which slice this task runs: `--slice`, else the engine's array index plus the offset.
fn slice_of(a: &ProcessArgs, slices: usize) -> Result<usize, Failure> {
    let index = a.aws_batch_index.or(a.slurm_index).or(a.k8s_index);
    crate::plan::slice_index(a.slice, index, a.slice_offset, slices).map_err(Failure::usage)
}

fn slice_options(
    a: &ProcessArgs,
    plan: &crate::plan::Plan,
    config_sha: Option<String>,
    live: Option<Live>,
) -> EngineOptions {
    EngineOptions {
        chunk_bytes: a.chunk_bytes as usize,
        date: plan.date.clone(),
        deadline: a.deadline,
        grace: a.grace_period,
        config_sha256: config_sha,
        masking: plan.masking.clone(),
        live,
        journal: Journaling::when(a.journal),
        cancel: a.attempts.cancel.clone(),
        ..EngineOptions::default()
    }
}
