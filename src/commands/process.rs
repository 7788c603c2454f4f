//! `batchwin process`: run vendor files through validate -> map -> mask and write outputs,
//! reject files and a DuckDB ledger. The units come from `--input`, `--inbound` or a plan's
//! slice; the engine's batch scheduler ([`crate::engine::batch`]) does the work.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;

use crate::config::Config;
use crate::engine::live::{Live, STATUS_DIR, STATUS_FILE};
use crate::engine::{EngineOptions, batch};
use crate::exit::{ExitStatus, Failure};
use crate::printer::{self, GlobalArgs};
use crate::vendor::Vendor;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// The vendor configuration file.
    #[arg(long, env = crate::env::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
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
    /// Output folder (outputs of `--inbound` and `--plan` go to `OUT/VENDOR/`). The run's live
    /// status document, replaced about once a second, is `OUT/status.json`, with `--plan`
    /// `OUT/status/slice-K.json` (read by `batchwin status`).
    #[arg(long)]
    pub out: PathBuf,
    /// The ledger file (default `OUT/ledger.duckdb`, with `--plan` `OUT/ledgers/slice-K.duckdb`).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Business date for `{date}` in output names (default today).
    #[arg(long, env = crate::env::ENV_DATE, value_parser = printer::check_date)]
    pub date: Option<String>,
    /// After this time (RFC 3339) no unit of a MEDIUM or LOW vendor starts: it is recorded as
    /// `deferred` and left for the next run. HIGH units always start. `run` sets it to the
    /// window's end.
    #[arg(long, value_parser = parse_deadline)]
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
    /// Target input bytes per parallel chunk.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub chunk_bytes: u64,
}

fn parse_deadline(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{s:?} is not a time like 2026-11-29T10:00:00Z: {e}"))
}

pub fn run(g: &GlobalArgs, a: ProcessArgs) -> Result<ExitStatus, Failure> {
    let config = crate::config::Config::load(&a.config)?;
    if let Some(plan_path) = &a.plan {
        return run_slice(g, &a, plan_path, &config);
    }
    let token = crate::auth::Token::resolve(a.token.as_deref(), crate::env::token())
        .map_err(Failure::usage)?;
    let masking = crate::auth::choose(&config, token.as_ref())?;
    let profiles = crate::vendor::build_all(&config, &masking, crate::env::load_mask_key(&config))?;
    let (items, skipped) = match (&a.inbound, &a.vendor) {
        (Some(dir), _) => batch::scan_inbound(&config, dir, &a.out).map_err(Failure::usage)?,
        (None, Some(v)) => {
            let (idx, _) = config.vendor(v).ok_or_else(|| {
                let known: Vec<&str> = config.vendors.iter().map(|v| v.id.as_str()).collect();
                Failure::usage(anyhow!(
                    "unknown vendor `{v}` in `{}`; known: {}",
                    a.config.display(),
                    known.join(", ")
                ))
            })?;
            for p in &a.input {
                if !p.is_file() {
                    return Err(Failure::usage(anyhow!(
                        "input `{}` is not a readable file",
                        p.display()
                    )));
                }
            }
            let units = a
                .input
                .iter()
                .map(|p| batch::Work {
                    vendor: idx,
                    input: p.clone(),
                    out_dir: a.out.clone(),
                    part: None,
                    known: None,
                    blocked: None,
                })
                .collect();
            (units, Vec::new())
        }
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
        ..EngineOptions::default()
    };
    let ledger_path = a
        .ledger
        .clone()
        .unwrap_or_else(|| a.out.join("ledger.duckdb"));
    let summary = batch::run(
        &profiles,
        items,
        &ledger_path,
        &opts,
        printer::progress_enabled(g),
        skipped,
    )?;
    if !g.quiet {
        print!("{}", summary.render());
    }
    Ok(summary.status())
}

/// Which slice this task runs: `--slice`, else the engine's array index plus the offset.
fn resolve_slice(a: &ProcessArgs, slices: usize) -> Result<usize, Failure> {
    let k = match (a.slice, a.aws_batch_index.or(a.slurm_index).or(a.k8s_index)) {
        (Some(k), _) => k,
        (None, Some(i)) => i + a.slice_offset,
        // A single-slice AWS Batch stage is a plain job: no array index, the offset alone.
        (None, None) if a.slice_offset > 0 => a.slice_offset,
        (None, None) => {
            return Err(Failure::usage(anyhow!(
                "which slice? give `--slice K`, or run as an array task (AWS_BATCH_JOB_ARRAY_INDEX, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)"
            )));
        }
    };
    if k >= slices {
        return Err(Failure::usage(anyhow!(
            "slice {k} is outside the plan, which has slices 0 to {}",
            slices.saturating_sub(1)
        )));
    }
    Ok(k)
}

/// Runs one slice of a plan.
fn run_slice(
    g: &GlobalArgs,
    a: &ProcessArgs,
    plan_path: &Path,
    config: &Config,
) -> Result<ExitStatus, Failure> {
    let plan = crate::plan::Plan::read(plan_path).map_err(Failure::usage)?;
    // The plan verified the token and chose the profile once for every slice: a slice takes
    // that choice and cannot be given another.
    if a.token.is_some() || crate::env::token().is_some() {
        tracing::warn!(
            "the token is not used with --plan: the slice applies the plan's masking profile ({})",
            plan.masking
                .profile
                .as_deref()
                .unwrap_or("configured masks")
        );
    }
    let profiles: Vec<Vendor> =
        crate::vendor::build_all(config, &plan.masking, crate::env::load_mask_key(config))?;
    let k = resolve_slice(a, plan.slices.len())?;
    let config_sha = crate::plan::manifest::file_sha256(&a.config).ok();
    if config_sha
        .as_ref()
        .is_some_and(|sha| *sha != plan.config_sha256)
    {
        tracing::warn!("`{}` changed since the plan was made", a.config.display());
    }
    let ledger = a
        .ledger
        .clone()
        .unwrap_or_else(|| a.out.join("ledgers").join(format!("slice-{k:05}.duckdb")));
    let todo = batch::slice_units(
        config,
        &a.config,
        &plan,
        k,
        plan_path,
        &a.out,
        &ledger,
        config_sha.as_deref(),
    )?;
    let opts = EngineOptions {
        chunk_bytes: a.chunk_bytes as usize,
        date: plan.date.clone(),
        deadline: a.deadline,
        grace: a.grace_period,
        config_sha256: config_sha,
        masking: plan.masking.clone(),
        live: Some(Live::in_folder(
            &a.out.join(STATUS_DIR),
            &Live::slice_name(k),
            Some(k),
            todo.resumed,
        )),
        ..EngineOptions::default()
    };
    let summary = batch::run(
        &profiles,
        todo.units,
        &ledger,
        &opts,
        printer::progress_enabled(g),
        Vec::new(),
    )?;
    if !g.quiet {
        println!("slice      {k} of {}", plan.slices.len());
        if todo.resumed > 0 {
            println!(
                "resumed    {} units done by an earlier run of this slice (same input, same config, output present): not done again",
                todo.resumed
            );
        }
        print!("{}", summary.render());
    }
    Ok(summary.status())
}
