//! `batchwin process`: run vendor files through validate -> map -> mask and write outputs,
//! reject files and a DuckDB ledger.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, anyhow};
use clap::Args;
use rayon::prelude::*;

use crate::cli::GlobalArgs;
use crate::config::Config;
use crate::engine::{EngineOptions, FileOutcome, FileStatus, process_file};
use crate::exit::{ExitStatus, Failure};
use crate::ledger::{Ledger, RunInfo};
use crate::pipeline::VendorProfile;
use crate::settings;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// The vendor configuration file.
    #[arg(long, env = settings::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
    /// The vendor of the `--input` files.
    #[arg(long, requires = "input")]
    pub vendor: Option<String>,
    /// Input files of `--vendor` (repeat the flag for several).
    #[arg(long, requires = "vendor", conflicts_with = "inbound")]
    pub input: Vec<PathBuf>,
    /// A day's inbound folder laid out as `DIR/VENDOR/FILE`: every file of every vendor.
    #[arg(long, required_unless_present = "input")]
    pub inbound: Option<PathBuf>,
    /// Output folder (outputs of `--inbound` go to `OUT/VENDOR/`).
    #[arg(long)]
    pub out: PathBuf,
    /// The ledger file (default `OUT/ledger.duckdb`).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Business date for `{date}` in output names (default today).
    #[arg(long, env = settings::ENV_DATE, value_parser = settings::check_date)]
    pub date: Option<String>,
    /// Target input bytes per parallel chunk.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub chunk_bytes: u64,
}

/// One file to process and where its output goes.
struct WorkItem {
    vendor: usize,
    input: PathBuf,
    out_dir: PathBuf,
}

/// The result of processing a set of files, for the summary and the exit status.
pub struct Summary {
    pub outcomes: Vec<FileOutcome>,
    pub seconds: f64,
    pub ledger: PathBuf,
    pub skipped: Vec<PathBuf>,
}

impl Summary {
    pub fn status(&self) -> ExitStatus {
        if self.outcomes.iter().any(|o| o.status == FileStatus::Failed) {
            ExitStatus::DataFailure
        } else {
            ExitStatus::Success
        }
    }

    /// The short summary printed at the end.
    pub fn render(&self) -> String {
        let n = self.outcomes.len();
        let failed: Vec<&FileOutcome> = self.outcomes.iter().filter(|o| o.status == FileStatus::Failed).collect();
        let (rin, rout, rrej, bytes) = self.outcomes.iter().fold((0u64, 0u64, 0u64, 0u64), |a, o| {
            (a.0 + o.records_in, a.1 + o.records_out, a.2 + o.records_rejected, a.3 + o.input_bytes)
        });
        let secs = self.seconds.max(1e-9);
        let mut s = format!(
            "files      {n} ({} succeeded, {} failed)\nrecords    {} in, {} out, {} rejected ({:.2}%)\ntime       {:.2} s\nrate       {} records/s, {:.1} MB/s\nledger     {}\n",
            n - failed.len(),
            failed.len(),
            thousands(rin),
            thousands(rout),
            thousands(rrej),
            if rin > 0 { rrej as f64 * 100.0 / rin as f64 } else { 0.0 },
            self.seconds,
            thousands((rin as f64 / secs) as u64),
            bytes as f64 / secs / 1e6,
            self.ledger.display(),
        );
        if n == 1 {
            let o = &self.outcomes[0];
            if let Some(p) = &o.output_path {
                s.push_str(&format!("output     {}\n", p.display()));
            }
            if let Some(p) = &o.reject_path {
                s.push_str(&format!("rejects    {}\n", p.display()));
            }
        }
        for o in failed {
            s.push_str(&format!(
                "failed     {} `{}`: {}\n",
                o.vendor,
                o.input_path.display(),
                o.error.as_deref().unwrap_or("unknown error")
            ));
        }
        for p in &self.skipped {
            s.push_str(&format!("skipped    `{}`: no vendor with that id in the config\n", p.display()));
        }
        s
    }
}

/// Formats 1234567 as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn run(g: &GlobalArgs, a: ProcessArgs) -> Result<ExitStatus, Failure> {
    let config = settings::load_config(&a.config)?;
    let profiles = build_profiles(&config)?;
    let mut skipped = Vec::new();
    let items = match (&a.inbound, &a.vendor) {
        (Some(dir), _) => scan_inbound(&config, dir, &a.out, &mut skipped).map_err(Failure::usage)?,
        (None, Some(v)) => {
            let (idx, _) = config.vendor(v).ok_or_else(|| {
                let known: Vec<&str> = config.vendors.iter().map(|v| v.id.as_str()).collect();
                Failure::usage(anyhow!("unknown vendor `{v}` in `{}`; known: {}", a.config.display(), known.join(", ")))
            })?;
            for p in &a.input {
                if !p.is_file() {
                    return Err(Failure::usage(anyhow!("input `{}` is not a readable file", p.display())));
                }
            }
            a.input.iter().map(|p| WorkItem { vendor: idx, input: p.clone(), out_dir: a.out.clone() }).collect()
        }
        (None, None) => return Err(Failure::usage(anyhow!("give `--inbound DIR`, or `--vendor ID --input FILE`"))),
    };
    let opts = EngineOptions {
        chunk_bytes: a.chunk_bytes as usize,
        date: a.date.clone().unwrap_or_else(settings::today),
        ..EngineOptions::default()
    };
    let ledger_path = a.ledger.clone().unwrap_or_else(|| a.out.join("ledger.duckdb"));
    let summary = process_items(g, &profiles, items, &ledger_path, &opts, skipped)?;
    if !g.quiet {
        print!("{}", summary.render());
    }
    Ok(summary.status())
}

/// Builds every vendor of the config (so any configuration error stops the run up front).
pub fn build_profiles(config: &Config) -> Result<Vec<VendorProfile>, Failure> {
    // The key matters only to vendors that hash: a bad key stops only a config that uses it.
    let hashes = config
        .vendors
        .iter()
        .any(|v| v.output.fields.iter().any(|f| f.mask.as_deref() == Some("hash")));
    let key = match settings::load_mask_key(config) {
        Ok(k) => k,
        Err(e) if hashes => return Err(Failure::usage(e)),
        Err(_) => None,
    };
    (0..config.vendors.len())
        .map(|i| {
            let p = VendorProfile::build(config, i, key.as_ref())?;
            p.encoder().map_err(|m| {
                Failure::usage(config.at(&crate::config::KeyPath::vendor(i).key("output"), m))
            })?;
            Ok(p)
        })
        .collect()
}

/// Lists `DIR/VENDOR/FILE`, highest priority first, larger files first within a priority.
fn scan_inbound(config: &Config, dir: &Path, out: &Path, skipped: &mut Vec<PathBuf>) -> anyhow::Result<Vec<WorkItem>> {
    let mut items = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read inbound folder `{}`", dir.display()))?;
    let mut vendor_dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    vendor_dirs.sort();
    for vdir in vendor_dirs {
        let name = vdir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&vdir)
            .with_context(|| format!("cannot read `{}`", vdir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && !is_hidden_or_partial(p))
            .collect();
        files.sort();
        match config.vendor(&name) {
            Some((idx, _)) => {
                for f in files {
                    items.push(WorkItem { vendor: idx, input: f, out_dir: out.join(&name) });
                }
            }
            None => skipped.extend(files),
        }
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    items.sort_by_cached_key(|w| (config.vendors[w.vendor].priority, std::cmp::Reverse(size(&w.input)), w.input.clone()));
    Ok(items)
}

/// Files still being uploaded or hidden: `.name`, `*.part`, `*.tmp`.
fn is_hidden_or_partial(p: &Path) -> bool {
    let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    n.starts_with('.') || n.ends_with(".part") || n.ends_with(".tmp")
}

fn process_items(
    g: &GlobalArgs,
    profiles: &[VendorProfile],
    items: Vec<WorkItem>,
    ledger_path: &Path,
    opts: &EngineOptions,
    skipped: Vec<PathBuf>,
) -> Result<Summary, Failure> {
    let encoders: Vec<_> = profiles
        .iter()
        .map(|p| p.encoder().map_err(|m| Failure::usage(anyhow!(m))))
        .collect::<Result<_, _>>()?;
    // Two inputs must never write the same output (for example `a.csv` and `a.txt` with the
    // default `{stem}.out.csv`): one would silently replace the other.
    let mut targets = std::collections::HashMap::new();
    for w in &items {
        let p = &profiles[w.vendor];
        let name = w.input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for pattern in [&p.output.file_name, &p.output.reject_file_name] {
            let target = w.out_dir.join(crate::pipeline::expand_name(pattern, &p.id, &name, &opts.date));
            if let Some(other) = targets.insert(target.clone(), w.input.clone()) {
                return Err(Failure::usage(anyhow!(
                    "`{}` and `{}` would both write `{}`; change `file_name` or `reject_file_name` of vendor `{}`",
                    other.display(),
                    w.input.display(),
                    target.display(),
                    p.id
                )));
            }
        }
    }
    for w in &items {
        std::fs::create_dir_all(&w.out_dir)
            .with_context(|| format!("cannot create output folder `{}`", w.out_dir.display()))
            .map_err(Failure::data)?;
    }
    if let Some(parent) = ledger_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))
            .map_err(Failure::data)?;
    }
    let run = RunInfo::new("process");
    let ledger = Ledger::open(ledger_path).map_err(Failure::data)?;
    ledger.begin_run(&run).map_err(Failure::data)?;
    let ledger = Mutex::new(ledger);

    let total_bytes: u64 = items.iter().map(|w| std::fs::metadata(&w.input).map(|m| m.len()).unwrap_or(0)).sum();
    let bar = if settings::progress_enabled(g) {
        let b = indicatif::ProgressBar::new(total_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };

    let started = Instant::now();
    let results: Vec<Result<FileOutcome, Failure>> = items
        .par_iter()
        .map(|w| {
            let p = &profiles[w.vendor];
            let outcome = process_file(p, encoders[w.vendor].as_ref(), &w.input, &w.out_dir, opts)
                .with_context(|| format!("cannot read `{}`", w.input.display()))
                .map_err(Failure::data)?;
            if outcome.status == FileStatus::Failed {
                tracing::warn!(vendor = %p.id, file = %w.input.display(), error = outcome.error.as_deref().unwrap_or(""), "file failed");
            }
            // A poisoned lock only means another thread panicked while recording; the ledger
            // connection itself is still usable.
            let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.record_file(&run, &p.priority.to_string(), &outcome).map_err(Failure::data)?;
            bar.inc(outcome.input_bytes);
            Ok(outcome)
        })
        .collect();
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let ledger = ledger.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut outcomes = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results {
        match r {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                tracing::error!("{:#}", e.error);
                first_error.get_or_insert(e);
            }
        }
    }
    let summary = Summary { outcomes, seconds, ledger: ledger_path.to_path_buf(), skipped };
    let status = first_error.as_ref().map_or(summary.status(), |e| e.status);
    ledger.end_run(&run, status.code() as i32).map_err(Failure::data)?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Processes a whole inbound folder; used by `demo`.
pub fn process_inbound(
    g: &GlobalArgs,
    config: &Config,
    inbound: &Path,
    out: &Path,
    date: &str,
) -> Result<Summary, Failure> {
    let profiles = build_profiles(config)?;
    let mut skipped = Vec::new();
    let items = scan_inbound(config, inbound, out, &mut skipped).map_err(Failure::usage)?;
    let opts = EngineOptions { date: date.to_string(), ..EngineOptions::default() };
    process_items(g, &profiles, items, &out.join("ledger.duckdb"), &opts, skipped)
}
