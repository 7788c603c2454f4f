//! `batchwin plan`: shard the day's manifest into slices sized to the batch window, and write
//! what each engine needs to run them.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;

use crate::exit::{ExitStatus, Failure};
use crate::plan::emit::{EmitOptions, Engine, emit};
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
}

pub fn run(g: &GlobalArgs, a: PlanArgs) -> Result<ExitStatus, Failure> {
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
    let costs = match &a.history {
        Some(dir) => history_costs(dir).map_err(Failure::usage)?,
        None => CostModel::new(),
    };
    let opts = PlanOptions {
        slices,
        split_bytes: a.split_bytes,
        date: date.clone(),
    };
    let splitter =
        |row: &ManifestRow, limit: u64| crate::plan::split::split_file(&config, row, limit);
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
    p.masking = masking;
    let out_url = a.out.display().to_string();
    if location::is_url(&out_url) {
        p.config = Some(location::config_name(&a.config));
        let text = serde_json::to_string_pretty(&p).map_err(|e| Failure::data(anyhow!(e)))?;
        rt.block_on(location::store_plan(&out_url, &text, &a.config, &store))?;
    } else {
        let text = serde_json::to_string_pretty(&p).map_err(|e| Failure::data(anyhow!(e)))?;
        write_atomic(&a.out, &text).map_err(Failure::data)?;
    }
    if !g.quiet {
        print!("{}", render(&p, &a.out));
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
        };
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

/// The calculation, for people.
pub fn render(p: &crate::plan::Plan, out: &Path) -> String {
    let e = &p.estimate;
    let mut s = format!(
        "plan       `{}`: {} slices in {} stage(s)\nwork       {:.1} MB, {:.1} s estimated\n",
        out.display(),
        p.slices.len(),
        p.stages.len(),
        e.total_bytes as f64 / 1e6,
        e.total_work_seconds
    );
    if let Some(w) = e.window_seconds {
        s.push_str(&format!(
            "window     {:.0} s at utilization {} = {:.0} s budget\n",
            w,
            e.utilization,
            w * e.utilization
        ));
    }
    s.push_str(&format!(
        "finish     {:.1} s estimated\n",
        e.makespan_seconds
    ));
    if !p.masking.is_default() {
        s.push_str(&format!(
            "masking    profile {} for {} (issuer {}, key {})\n",
            p.masking.profile.as_deref().unwrap_or("(configured masks)"),
            p.masking.subject.as_deref().unwrap_or("-"),
            p.masking.issuer.as_deref().unwrap_or("-"),
            p.masking.key_id.as_deref().unwrap_or("-"),
        ));
    }
    for st in &p.stages {
        let spans: Vec<f64> = p.slices[st.first_slice..st.first_slice + st.slices]
            .iter()
            .map(|s| s.estimated_seconds)
            .collect();
        let lo = spans.iter().cloned().fold(f64::MAX, f64::min);
        s.push_str(&format!(
            "stage {}    slices {}..{}, makespan {:.1} s (shortest slice {:.1} s), vendors {}\n",
            st.index,
            st.first_slice,
            st.first_slice + st.slices - 1,
            st.estimated_seconds,
            lo,
            st.vendors.len()
        ));
    }
    for pr in &e.priorities {
        s.push_str(&format!(
            "{:<10} {} units, done at {:.1} s{}\n",
            pr.priority.to_string().to_uppercase(),
            pr.units,
            pr.estimated_finish_seconds,
            match pr.sla_seconds {
                Some(sla) => format!(
                    ", SLA {:.0} s: {}",
                    sla,
                    if pr.meets_sla { "met" } else { "MISSED" }
                ),
                None => String::new(),
            }
        ));
    }
    if let Some(d) = &p.deferred {
        let bytes: u64 = d.files.iter().map(|f| f.bytes).sum();
        s.push_str(&format!(
            "deferred   {} files ({:.1} MB) of MEDIUM and LOW vendors, left for the next run: {}\n",
            d.files.len(),
            bytes as f64 / 1e6,
            d.reason
        ));
    }
    s
}

/// Each vendor's measured seconds per byte from earlier ledgers (`*.duckdb` below `dir`).
fn history_costs(dir: &Path) -> anyhow::Result<CostModel> {
    let mut costs = CostModel::new();
    for (v, c) in crate::ledger::query::cost_history(dir)? {
        if c.bytes > 0.0 && c.seconds > 0.0 {
            costs.seconds_per_byte.insert(v, c.seconds / c.bytes);
        }
    }
    Ok(costs)
}
