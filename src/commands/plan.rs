//! `batchwin plan`: shard the day's manifest into slices sized to the batch window, and write
//! what each engine needs to run them.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;

use crate::config::KeyPath;
use crate::exit::{ExitStatus, Failure};
use crate::plan::cost::{Pricing, day_cost, render_day};
use crate::plan::emit::{EmitOptions, Engine, Mode, emit, fargate_size};
use crate::plan::manifest::{self, ManifestRow};
use crate::plan::{CostModel, PlanError, PlanOptions, SliceCount, plan_what_fits, window_seconds};
use crate::printer::{self, GlobalArgs};
use crate::transfer::location;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The vendor configuration file.
    #[arg(long, env = crate::env::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
    /// The day's manifest (JSON Lines, see docs/manifest.md): a path or a URL.
    #[arg(long, required_unless_present = "scan", conflicts_with = "scan")]
    pub manifest: Option<PathBuf>,
    /// Build the manifest from a local inbound folder (`DIR/VENDOR/FILE`) instead.
    #[arg(long)]
    pub scan: Option<PathBuf>,
    /// Where to write the plan: a path, or a URL in the run location (s3://BUCKET/RUN/plan.json,
    /// az://, gs://, sftp://, file://), where the configuration is stored beside it.
    #[arg(long, default_value = "plan.json")]
    pub out: PathBuf,
    /// Number of slices, or `auto` to size them to `--window`.
    #[arg(long, default_value = "auto")]
    pub slices: String,
    /// The batch window, e.g. `06:00-10:00` (crossing midnight is fine), for `--slices auto`.
    #[arg(long, default_value = "06:00-10:00")]
    pub window: String,
    /// Share of the window the plan may fill, for `--slices auto`.
    #[arg(long, default_value_t = 0.8)]
    pub utilization: f64,
    /// Most slices `--slices auto` may use.
    #[arg(long, default_value_t = 1000)]
    pub max_slices: usize,
    /// Split files larger than this many bytes (default: automatic).
    #[arg(long)]
    pub split_bytes: Option<u64>,
    /// `--manifest` is a listing from `fetch --listing` whose fetch still appends to this
    /// manifest: a file to split is waited for until its row is there (a file the fetch ends
    /// without is planned whole, and its unit is not processed).
    #[arg(long, requires = "manifest", value_name = "MANIFEST")]
    pub fetching: Option<PathBuf>,
    /// Ledgers of earlier runs, for each vendor's measured cost per byte.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Business date (default: today).
    #[arg(long, env = crate::env::ENV_DATE, value_parser = printer::check_date)]
    pub date: Option<String>,
    /// Engines to write files for.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub emit: Vec<Engine>,
    /// Folder for the engines' files.
    #[arg(long, default_value = "emit")]
    pub emit_dir: PathBuf,
    /// The plan's path as workers see it (default: the absolute `--out`).
    #[arg(long)]
    pub worker_plan: Option<String>,
    /// The vendor configuration as workers see it (default: the absolute `--config`).
    #[arg(long)]
    pub worker_config: Option<String>,
    /// The run folder as workers see it: outputs in `VENDOR/`, ledgers in `ledgers/`.
    #[arg(long, default_value = "run")]
    pub worker_out: String,
    /// The batchwin command on workers.
    #[arg(long, default_value = "batchwin")]
    pub worker_batchwin: String,
    /// Most tasks of one array running at once.
    #[arg(long, default_value_t = 100)]
    pub max_concurrent: usize,
    /// Slurm's MaxArraySize (array indexes go up to one less).
    #[arg(long, default_value_t = 1001)]
    pub slurm_max_array_size: usize,
    /// Container image for AWS Batch and Kubernetes.
    #[arg(long, default_value = "batchwin:latest")]
    pub image: String,
    /// Attempts for retryable failures (exit code 3).
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Time limit per task, seconds.
    #[arg(long, default_value_t = 4 * 3600)]
    pub task_timeout: u64,
    /// A file holding the job token (a compact JWT; default: the `BATCHWIN_TOKEN` variable),
    /// verified once here against `[auth]`: the plan records the masking profile its roles
    /// choose, and every slice applies that profile without the token.
    #[arg(long, value_name = "FILE")]
    pub token: Option<PathBuf>,
    /// The W3C trace context the plan runs in: recorded in the plan, and given to every task of
    /// the emitted job files.
    #[arg(long, env = crate::env::ENV_TRACEPARENT, hide = true)]
    pub traceparent: Option<String>,
}

pub fn run(g: &GlobalArgs, a: PlanArgs) -> Result<ExitStatus, Failure> {
    // A signal stops it at once, with its local copies of a run location removed.
    let _signals = crate::cancel::Cancel::exit_on_signal("no plan was written; run it again")
        .map_err(Failure::data)?;
    let config = crate::config::Config::load(&a.config)?;
    let token = crate::auth::Token::resolve(a.token.as_deref(), crate::env::token())
        .map_err(Failure::usage)?;
    let masking = crate::auth::choose(&config, token.as_ref())?;
    // The profile is checked against the vendors here, so that no slice meets a wrong one.
    crate::vendor::profile::check(&config)?;
    let date = a.date.clone().unwrap_or_else(printer::today);
    let store = crate::transfer::TransferSettings::resolve(&config, &Default::default())?.store;
    let rt = crate::transfer::runtime()?;
    let copies = location::LocalCopies::new("plan")?;
    let (rows, manifest_sha) = match (&a.manifest, &a.scan) {
        (Some(m), _) => {
            let m = rt.block_on(location::local_copy(m, &copies, &store))?;
            (
                manifest::read(&m).map_err(Failure::usage)?,
                manifest::file_sha256(&m).map_err(Failure::usage)?,
            )
        }
        (None, Some(dir)) => {
            let (rows, report) = manifest::scan(&config, dir).map_err(Failure::usage)?;
            for u in &report.unknown {
                tracing::warn!(
                    "`{}`: no vendor with that id in the config; not planned",
                    u.display()
                );
            }
            let text: String = rows
                .iter()
                .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
                .collect();
            (
                rows,
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())),
            )
        }
        (None, None) => {
            return Err(Failure::usage(anyhow!(
                "give `--manifest FILE` or `--scan DIR`"
            )));
        }
    };
    let config_sha = manifest::file_sha256(&a.config).map_err(Failure::usage)?;
    let slices = match a.slices.as_str() {
        "auto" => {
            if !(a.utilization > 0.0 && a.utilization <= 1.0) {
                return Err(Failure::usage(anyhow!(
                    "--utilization must be in (0, 1], not {}",
                    a.utilization
                )));
            }
            SliceCount::Auto {
                window_seconds: window_seconds(&a.window)
                    .map_err(|m| Failure::usage(anyhow!("--window: {m}")))?,
                utilization: a.utilization,
                max: a.max_slices.max(1),
            }
        }
        n => SliceCount::Fixed(n.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            Failure::usage(anyhow!(
                "--slices takes a number of at least 1 or `auto`, not {n:?}"
            ))
        })?),
    };
    let (costs, held) = match &a.history {
        Some(dir) => history(dir).map_err(Failure::usage)?,
        None => (CostModel::new(), None),
    };
    let opts = PlanOptions {
        slices,
        split_bytes: a.split_bytes,
        date: date.clone(),
    };
    let reads = crate::plan::split::RangeReads::new(&rt, &store);
    let arrivals = a
        .fetching
        .as_deref()
        .map(crate::plan::arrivals::Arrivals::new);
    let splitter = |row: &ManifestRow, limit: u64| {
        // A file still being fetched is cut once it is staged; one never staged is not cut.
        if let Some(arrivals) = &arrivals
            && crate::plan::split::may_cut(&config, row)
            && !arrivals.staged(&row.location)?
        {
            return Ok(Vec::new());
        }
        crate::plan::split::split_file(&config, row, limit, Some(&reads))
    };
    let mut p = match plan_what_fits(
        &config,
        &rows,
        &costs,
        &opts,
        &splitter,
        (manifest_sha, config_sha),
    ) {
        Ok(p) => p,
        Err(PlanError::Config(e)) => return Err(e.into()),
        Err(e @ PlanError::DoesNotFit { .. }) => return Err(Failure::data(e)),
        Err(e) => return Err(Failure::usage(e)),
    };
    if let Some(arrivals) = &arrivals {
        arrivals.fill_parts(&mut p);
    }
    p.masking = masking;
    // Recorded for the emitted job files; `process --plan` reads its own TRACEPARENT.
    p.traceparent = a
        .traceparent
        .as_deref()
        .and_then(crate::telemetry::valid_traceparent);
    let out_url = a.out.display().to_string();
    if location::is_url(&out_url) {
        p.config = Some(location::config_name(&a.config));
        let text = serde_json::to_string_pretty(&p).map_err(|e| Failure::data(anyhow!(e)))?;
        rt.block_on(location::store_plan(&out_url, &text, &a.config, &store))?;
    } else {
        let text = serde_json::to_string_pretty(&p).map_err(|e| Failure::data(anyhow!(e)))?;
        write_atomic(&a.out, &text).map_err(Failure::data)?;
    }
    let pricing = Pricing::from_config(&config.pricing);
    if !g.quiet {
        print!("{}", crate::plan::render::render(&p, &a.out));
        // Priced against the window even with a fixed number of slices: what would be needed.
        let window = window_seconds(&a.window).unwrap_or(0.0);
        let work = p.estimate.total_work_seconds;
        let day = day_cost(work, held, window, a.utilization, &pricing);
        print!("{}", render_day(&day, &pricing));
    }
    if !a.emit.is_empty() {
        let worker_plan = match &a.worker_plan {
            Some(w) => w.clone(),
            None if location::is_url(&out_url) => out_url.clone(),
            None => std::path::absolute(&a.out)
                .unwrap_or(a.out.clone())
                .display()
                .to_string(),
        };
        let worker_config = match &a.worker_config {
            Some(w) => w.clone(),
            None => std::path::absolute(&a.config)
                .unwrap_or(a.config.clone())
                .display()
                .to_string(),
        };
        let eo = EmitOptions {
            plan: worker_plan,
            config: worker_config,
            out: a.worker_out.clone(),
            batchwin: a.worker_batchwin.clone(),
            max_concurrent: a.max_concurrent,
            slurm_max_array_size: a.slurm_max_array_size,
            image: a.image.clone(),
            retries: a.retries,
            timeout_seconds: a.task_timeout,
            mask_key_env: config.hashes().then(|| {
                config
                    .masking
                    .key_env
                    .clone()
                    .unwrap_or_else(|| crate::env::ENV_MASK_KEY.into())
            }),
            worker: pricing.worker(),
        };
        // Fargate runs only its own sizes: say so with the key, before any file is written.
        if a.emit.contains(&Engine::AwsBatch) && eo.mode() == Mode::RunLocation {
            fargate_size(eo.worker).map_err(|m| {
                let key = if m.starts_with("Fargate runs") {
                    "worker_vcpus"
                } else {
                    "worker_memory_gib"
                };
                config.at(&KeyPath::top("pricing").key(key), m)
            })?;
        }
        for engine in &a.emit {
            let files = emit(&p, *engine, &a.emit_dir, &eo).map_err(Failure::data)?;
            if !g.quiet {
                println!(
                    "emitted    {:?}: {} files in `{}`",
                    engine,
                    files.len(),
                    files
                        .first()
                        .and_then(|f| f.parent())
                        .unwrap_or(&a.emit_dir)
                        .display()
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    crate::files::write(&tmp, text).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))
}

/// What earlier ledgers below `dir` measured: each vendor's seconds of file time per byte (the
/// planner's cost model), and the vCPU-seconds workers held per second of file time (`None`
/// when they hold no finished `process` run), for the day's cost.
fn history(dir: &Path) -> anyhow::Result<(CostModel, Option<f64>)> {
    let mut costs = CostModel::new();
    for (v, c) in crate::ledger::query::cost_history(dir)? {
        if c.bytes > 0.0 && c.seconds > 0.0 {
            costs.seconds_per_byte.insert(v, c.seconds / c.bytes);
        }
    }
    let (held, file_seconds) = crate::ledger::query::held_vcpu_history(dir)?;
    Ok((
        costs,
        (held > 0.0 && file_seconds > 0.0).then(|| held / file_seconds),
    ))
}
