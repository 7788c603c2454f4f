//! `batchwin process`: run vendor files through validate -> map -> mask and write outputs,
//! reject files and a DuckDB ledger.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use anyhow::{Context, anyhow};
use clap::Args;

use crate::cli::GlobalArgs;
use crate::config::Config;
use crate::engine::{
    EngineOptions, FileOutcome, FileStatus, KnownInput, Pending, process_file_deferred,
};
use crate::exit::{ExitStatus, Failure};
use crate::ledger::{Batch, Ledger, RunInfo};
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
    #[arg(long, required_unless_present_any = ["input", "plan"], conflicts_with = "plan")]
    pub inbound: Option<PathBuf>,
    /// A plan from `batchwin plan`: run one of its slices (`--slice`, or the engine's index).
    #[arg(long, conflicts_with = "input")]
    pub plan: Option<PathBuf>,
    /// The slice of `--plan` to run. Without it, the slice is the engine's array index
    /// (`AWS_BATCH_JOB_ARRAY_INDEX`, `SLURM_ARRAY_TASK_ID` or `JOB_COMPLETION_INDEX`) plus
    /// `BATCHWIN_SLICE_OFFSET`.
    #[arg(long, env = settings::ENV_SLICE, requires = "plan")]
    pub slice: Option<usize>,
    #[arg(long, env = settings::ENV_SLICE_OFFSET, default_value_t = 0, hide = true)]
    pub slice_offset: usize,
    #[arg(long, env = settings::ENV_AWS_BATCH_INDEX, hide = true)]
    pub aws_batch_index: Option<usize>,
    #[arg(long, env = settings::ENV_SLURM_INDEX, hide = true)]
    pub slurm_index: Option<usize>,
    #[arg(long, env = settings::ENV_K8S_INDEX, hide = true)]
    pub k8s_index: Option<usize>,
    /// Output folder (outputs of `--inbound` and `--plan` go to `OUT/VENDOR/`).
    #[arg(long)]
    pub out: PathBuf,
    /// The ledger file (default `OUT/ledger.duckdb`, with `--plan` `OUT/ledgers/slice-K.duckdb`).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Business date for `{date}` in output names (default today).
    #[arg(long, env = settings::ENV_DATE, value_parser = settings::check_date)]
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
    #[arg(long, env = crate::cancel::ENV_GRACE_PERIOD, default_value = crate::cancel::DEFAULT_GRACE_PERIOD, value_parser = humantime::parse_duration)]
    pub grace_period: std::time::Duration,
    /// Target input bytes per parallel chunk.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub chunk_bytes: u64,
}

/// One file to process and where its output goes.
struct WorkItem {
    vendor: usize,
    input: PathBuf,
    out_dir: PathBuf,
    /// A byte range of the file, for units of split files.
    part: Option<crate::plan::Part>,
    /// The file's checksum as the manifest recorded it.
    known: Option<KnownInput>,
}

/// The result of processing a set of files, for the summary and the exit status.
pub struct Summary {
    pub outcomes: Vec<FileOutcome>,
    pub seconds: f64,
    pub ledger: PathBuf,
    pub skipped: Vec<PathBuf>,
    /// The signal that stopped the run, if one did.
    pub interrupted: Option<i32>,
}

fn parse_deadline(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{s:?} is not a time like 2026-11-29T10:00:00Z: {e}"))
}

impl Summary {
    pub fn status(&self) -> ExitStatus {
        if let Some(sig) = self.interrupted {
            ExitStatus::Interrupted(sig)
        } else if self
            .outcomes
            .iter()
            .any(|o| matches!(o.status, FileStatus::Failed | FileStatus::Deferred))
        {
            ExitStatus::DataFailure
        } else {
            ExitStatus::Success
        }
    }

    /// The short summary printed at the end.
    pub fn render(&self) -> String {
        let n = self.outcomes.len();
        let failed: Vec<&FileOutcome> = self
            .outcomes
            .iter()
            .filter(|o| o.status == FileStatus::Failed)
            .collect();
        let (rin, rout, rrej, bytes) =
            self.outcomes.iter().fold((0u64, 0u64, 0u64, 0u64), |a, o| {
                (
                    a.0 + o.records_in,
                    a.1 + o.records_out,
                    a.2 + o.records_rejected,
                    a.3 + o.input_bytes,
                )
            });
        let secs = self.seconds.max(1e-9);
        let mut s = format!(
            "files      {n} ({} succeeded, {} failed)\nrecords    {} in, {} out, {} rejected ({:.2}%)\ntime       {:.2} s\nrate       {} records/s, {:.1} MB/s\nledger     {}\n",
            self.outcomes
                .iter()
                .filter(|o| o.status == FileStatus::Succeeded)
                .count(),
            failed.len(),
            thousands(rin),
            thousands(rout),
            thousands(rrej),
            if rin > 0 {
                rrej as f64 * 100.0 / rin as f64
            } else {
                0.0
            },
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
        if let Some(sig) = self.interrupted {
            let cancelled = self
                .outcomes
                .iter()
                .filter(|o| o.status == FileStatus::Cancelled)
                .count();
            s.push_str(&format!(
                "stopped    by signal {sig}: {cancelled} units cancelled and cleaned up, the rest not started; run again to finish\n"
            ));
        }
        let deferred = self
            .outcomes
            .iter()
            .filter(|o| o.status == FileStatus::Deferred)
            .count();
        if deferred > 0 {
            s.push_str(&format!(
                "deferred   {deferred} units of MEDIUM and LOW vendors: the window ended before they started\n"
            ));
        }
        for p in &self.skipped {
            s.push_str(&format!(
                "skipped    `{}`: no vendor with that id in the config\n",
                p.display()
            ));
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
    if let Some(plan_path) = &a.plan {
        return run_slice(g, &a, plan_path, &config, &profiles);
    }
    let items = match (&a.inbound, &a.vendor) {
        (Some(dir), _) => {
            scan_inbound(&config, dir, &a.out, &mut skipped).map_err(Failure::usage)?
        }
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
            a.input
                .iter()
                .map(|p| WorkItem {
                    vendor: idx,
                    input: p.clone(),
                    out_dir: a.out.clone(),
                    part: None,
                    known: None,
                })
                .collect()
        }
        (None, None) => {
            return Err(Failure::usage(anyhow!(
                "give `--inbound DIR`, or `--vendor ID --input FILE`"
            )));
        }
    };
    let opts = EngineOptions {
        chunk_bytes: a.chunk_bytes as usize,
        date: a.date.clone().unwrap_or_else(settings::today),
        deadline: a.deadline,
        grace: a.grace_period,
        ..EngineOptions::default()
    };
    let ledger_path = a
        .ledger
        .clone()
        .unwrap_or_else(|| a.out.join("ledger.duckdb"));
    let summary = process_items(g, &profiles, items, &ledger_path, &opts, skipped)?;
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
    profiles: &[VendorProfile],
) -> Result<ExitStatus, Failure> {
    let plan = crate::plan::Plan::read(plan_path).map_err(Failure::usage)?;
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
    // Units this slice's ledger records as done under the same configuration: skipped when
    // their input still has the recorded checksum and their output is still there.
    let completed = match (&config_sha, ledger.exists()) {
        (Some(sha), true) => Ledger::open(&ledger)
            .and_then(|l| l.completed(sha))
            .map_err(Failure::data)?,
        _ => Default::default(),
    };
    let mut skipped_done = 0usize;
    let mut items = Vec::new();
    for u in &plan.slices[k].units {
        let (idx, _) = config.vendor(&u.vendor).ok_or_else(|| {
            Failure::usage(anyhow!(
                "the plan names vendor `{}`, which is not in `{}`",
                u.vendor,
                a.config.display()
            ))
        })?;
        let mut input = PathBuf::from(&u.location);
        if input.is_relative() {
            if let Some(dir) = plan_path.parent() {
                input = dir.join(input);
            }
        }
        let key = (
            input.display().to_string(),
            u.part.as_ref().map_or(-1, |p| p.index as i64),
        );
        if let Some((sha, output, bytes)) = completed.get(&key) {
            // The input is the one done when the manifest's checksum, which the file still
            // has (same size and time), is the one done; otherwise it is read to tell.
            let unchanged = u.part.is_none()
                && u.sha256 == *sha
                && std::fs::metadata(&input).is_ok_and(|m| {
                    crate::plan::manifest::unchanged(&m, u.file_bytes, u.modified.as_deref())
                });
            if std::fs::metadata(output).is_ok_and(|m| m.len() == *bytes)
                && (unchanged || unit_sha256(&input, u.part.as_ref()).is_ok_and(|s| s == *sha))
            {
                skipped_done += 1;
                continue;
            }
            tracing::info!(
                "`{}`: its input or output changed since it was done: doing it again",
                input.display()
            );
        }
        items.push(WorkItem {
            vendor: idx,
            input,
            out_dir: a.out.join(&u.vendor),
            part: u.part.clone(),
            known: u.modified.clone().map(|modified| KnownInput {
                bytes: u.file_bytes,
                modified,
                sha256: u.sha256.clone(),
            }),
        });
    }
    let opts = EngineOptions {
        chunk_bytes: a.chunk_bytes as usize,
        date: plan.date.clone(),
        deadline: a.deadline,
        grace: a.grace_period,
        config_sha256: config_sha,
        ..EngineOptions::default()
    };
    let summary = process_items(g, profiles, items, &ledger, &opts, Vec::new())?;
    if !g.quiet {
        println!("slice      {k} of {}", plan.slices.len());
        if skipped_done > 0 {
            println!(
                "resumed    {skipped_done} units done by an earlier run of this slice (same input, same config, output present): not done again"
            );
        }
        print!("{}", summary.render());
    }
    Ok(summary.status())
}

/// Removes the temporary files (`.NAME.tmp-PID`) that a process killed outright (SIGKILL, a
/// machine that went down) left in `dir`; those of processes still running are theirs.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp-"))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!(
                    "removed `{}`, left by an earlier run that was killed",
                    e.path().display()
                ),
                Err(err) => tracing::warn!("cannot remove `{}`: {err}", e.path().display()),
            }
        }
    }
}

/// sha256 of a unit's bytes: the whole file, or a part's byte range (as the ledger records it).
fn unit_sha256(input: &Path, part: Option<&crate::plan::Part>) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek};
    let Some(p) = part else {
        return crate::plan::manifest::file_sha256(input);
    };
    let mut f = std::fs::File::open(input)?;
    f.seek(std::io::SeekFrom::Start(p.start))?;
    let mut sha = Sha256::new();
    std::io::copy(&mut f.take(p.end.saturating_sub(p.start)), &mut sha)?;
    Ok(hex::encode(sha.finalize()))
}

/// Builds every vendor of the config (so any configuration error stops the run up front).
pub fn build_profiles(config: &Config) -> Result<Vec<VendorProfile>, Failure> {
    // The key matters only to vendors that hash: a bad key stops only a config that uses it.
    let hashes = config.vendors.iter().any(|v| {
        v.output
            .fields
            .iter()
            .any(|f| f.mask.as_deref() == Some("hash"))
    });
    let key = match settings::load_mask_key(config) {
        Ok(k) => k,
        Err(e) if hashes => return Err(Failure::usage(e)),
        Err(_) => None,
    };
    (0..config.vendors.len())
        .map(|i| {
            let p = VendorProfile::build(config, i, key.as_ref())?;
            let at = crate::config::KeyPath::vendor(i);
            p.decoder()
                .map_err(|m| Failure::usage(config.at(&at.key("input"), m)))?;
            p.encoder()
                .map_err(|m| Failure::usage(config.at(&at.key("output"), m)))?;
            Ok(p)
        })
        .collect()
}

/// Lists `DIR/VENDOR/FILE`, highest priority first, larger files first within a priority.
fn scan_inbound(
    config: &Config,
    dir: &Path,
    out: &Path,
    skipped: &mut Vec<PathBuf>,
) -> anyhow::Result<Vec<WorkItem>> {
    let (files, unknown) = crate::plan::manifest::list(config, dir)?;
    skipped.extend(unknown);
    let mut items: Vec<WorkItem> = files
        .into_iter()
        .map(|(idx, input)| WorkItem {
            vendor: idx,
            input,
            out_dir: out.join(&config.vendors[idx].id),
            part: None,
            known: None,
        })
        .collect();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    items.sort_by_cached_key(|w| {
        (
            config.vendors[w.vendor].priority,
            std::cmp::Reverse(size(&w.input)),
            w.input.clone(),
        )
    });
    Ok(items)
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
    opts.cancel
        .listen()
        .map_err(|e| Failure::data(anyhow!("cannot install signal handlers: {e}")))?;
    opts.cancel.enforce_grace(opts.grace);
    // Two inputs must never write the same output (for example `a.csv` and `a.txt` with the
    // default `{stem}.out.csv`): one would silently replace the other.
    let mut targets = std::collections::HashMap::new();
    for w in &items {
        let p = &profiles[w.vendor];
        let name = w
            .input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for pattern in [&p.output.file_name, &p.output.reject_file_name] {
            let mut target_name = crate::pipeline::expand_name(pattern, &p.id, &name, &opts.date);
            if let Some(part) = &w.part {
                target_name = crate::engine::part_name(&target_name, part);
            }
            let target = w.out_dir.join(target_name);
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
    let mut dirs: Vec<&Path> = items.iter().map(|w| w.out_dir.as_path()).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder `{}`", dir.display()))
            .map_err(Failure::data)?;
        remove_stale_temporaries(dir);
    }
    if let Some(parent) = ledger_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))
            .map_err(Failure::data)?;
    }
    let mut run = RunInfo::new("process");
    run.config_sha256 = opts.config_sha256.clone();
    // The ledger opens (DuckDB starts, the schema is checked) on a thread of its own while the
    // first units are processed; their outputs wait for it before they are renamed into place
    // (see `Ready`), so a ledger that cannot be opened still leaves nothing delivered.
    let ready = crate::engine::Ready::pending();
    let opts = &EngineOptions {
        ready: ready.clone(),
        ..opts.clone()
    };
    let ledger: OnceLock<Mutex<(Ledger, Batch<_>)>> = OnceLock::new();
    let open_failure: Mutex<Option<Failure>> = Mutex::new(None);
    let open_ledger = || {
        // Whatever happens here, units waiting for the ledger are told.
        let _unblock = SetOnDrop(&ready);
        match Ledger::open(ledger_path).and_then(|l| l.begin_run(&run).map(|()| l)) {
            Ok(l) => {
                let _ = ledger.set(Mutex::new((l, Batch::every(RECORD_EVERY))));
                ready.set(Ok(()));
            }
            Err(e) => {
                ready.set(Err(e.to_string()));
                *open_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(Failure::data(e));
            }
        }
    };

    let total_bytes: u64 = items
        .iter()
        .map(|w| std::fs::metadata(&w.input).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = settings::progress_bar(
        settings::progress_enabled(g),
        total_bytes,
        settings::PROGRESS_BYTES,
    );

    let started = Instant::now();
    // Files start in list order (priority first) on twice as many file workers as there are
    // threads; each file's chunks are spread over all threads. A file worker also has work of
    // its own that leaves the threads idle (framing the next window, writing its outputs): with
    // two per thread, another file's chunks fill that time (measured: a tenth of a day's slice
    // 7% sooner, same CPU time; see docs/benchmarks.md).
    //
    // A processed unit's delivery (waiting for the ledger, syncing its outputs, renaming them
    // into place, recording it) is handed to a delivery thread, and its file worker starts the
    // next unit. A sync waits on the disk for a millisecond to tens of them, and file workers
    // that all waited at once left both cores idle (measured: 133 syncs of a tenth of a day's
    // CSV vendors took 0.45 s of the file workers' 3.6 s).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<FileOutcome, Failure>>>> =
        items.iter().map(|_| Mutex::new(None)).collect();
    let start = |w: &WorkItem| -> Result<(FileOutcome, Option<Pending>), Failure> {
        let p = &profiles[w.vendor];
        let late = opts.deadline.is_some_and(|d| {
            p.priority != crate::config::Priority::High && chrono::Utc::now() >= d
        });
        if late {
            return Ok((
                FileOutcome::deferred(&p.id, &w.input, w.part.as_ref()),
                None,
            ));
        }
        let (outcome, pending) = process_file_deferred(
            p,
            encoders[w.vendor].as_ref(),
            &w.input,
            &w.out_dir,
            opts,
            w.part.as_ref(),
            w.known.as_ref(),
        )
        .with_context(|| format!("cannot read `{}`", w.input.display()))
        // The file was there when the run started: a read that fails now is an I/O fault (a
        // network filesystem, a disk) worth retrying.
        .map_err(Failure::retryable)?;
        Ok((outcome, Some(pending)))
    };
    let finish = |w: &WorkItem,
                  mut outcome: FileOutcome,
                  pending: Option<Pending>|
     -> Result<FileOutcome, Failure> {
        let p = &profiles[w.vendor];
        if let Some(pending) = pending {
            pending.deliver(&mut outcome);
        }
        if outcome.status == FileStatus::Failed {
            tracing::warn!(vendor = %p.id, file = %w.input.display(), error = outcome.error.as_deref().unwrap_or(""), "file failed");
        }
        // Recorded once the ledger is open; when it cannot be, the run fails as a whole.
        let (Ok(()), Some(l)) = (ready.wait(), ledger.get()) else {
            return Ok(outcome);
        };
        // A poisoned lock only means another thread panicked while recording; the ledger
        // connection itself is still usable.
        let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
        let (ledger, batch) = &mut *l;
        if batch.push((p.priority.to_string(), outcome.clone())) {
            ledger
                .record_files(&run, &batch.take())
                .map_err(Failure::data)?;
        }
        drop(l);
        bar.inc(outcome.input_bytes);
        Ok(outcome)
    };
    let workers = FILE_WORKERS_PER_THREAD * rayon::current_num_threads().max(1);
    let (to_deliver, deliveries) =
        std::sync::mpsc::channel::<(usize, FileOutcome, Option<Pending>)>();
    let deliveries = Mutex::new(deliveries);
    {
        let (next, items, slots, start, finish, ready, deliveries) =
            (&next, &items, &slots, &start, &finish, &ready, &deliveries);
        // File workers and delivery threads are plain threads, not rayon workers: waiting on its
        // chunks, a file worker then never picks up another file's whole loop from the pool's
        // queue, and a sync never holds up a thread of the pool.
        std::thread::scope(|scope| {
            scope.spawn(open_ledger);
            for _ in 0..workers {
                let to_deliver = to_deliver.clone();
                scope.spawn(move || {
                    loop {
                        // After SIGTERM or SIGINT no new unit starts, nor after the ledger failed.
                        if opts.cancel.is_cancelled() || ready.failed() {
                            break;
                        }
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(w) = items.get(i) else { break };
                        match start(w) {
                            Ok((outcome, pending)) => {
                                // The receiver outlives the workers, so sending cannot fail; if it
                                // did, the unit would be delivered here.
                                if let Err(std::sync::mpsc::SendError((_, outcome, pending))) =
                                    to_deliver.send((i, outcome, pending))
                                {
                                    let r = finish(w, outcome, pending);
                                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                                }
                            }
                            Err(e) => {
                                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(Err(e))
                            }
                        }
                    }
                });
            }
            drop(to_deliver);
            for _ in 0..workers {
                scope.spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next unit.
                        let next = deliveries.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((i, outcome, pending)) = next else {
                            break;
                        };
                        let r = finish(&items[i], outcome, pending);
                        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    }
                });
            }
        });
    }
    let results: Vec<Result<FileOutcome, Failure>> = slots
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(failure) = open_failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(failure);
    }
    let Some(ledger) = ledger.into_inner() else {
        return Err(Failure::data(anyhow!(
            "ledger `{}` could not be opened",
            ledger_path.display()
        )));
    };
    let (mut ledger, mut batch) = ledger.into_inner().unwrap_or_else(|e| e.into_inner());
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
    let summary = Summary {
        outcomes,
        seconds,
        ledger: ledger_path.to_path_buf(),
        skipped,
        interrupted: opts.cancel.signal(),
    };
    let status = first_error.as_ref().map_or(summary.status(), |e| e.status);
    ledger
        .end_run_with_files(&run, &batch.take(), status.code() as i32)
        .map_err(Failure::data)?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Gives a [`Ready`](crate::engine::Ready) signal as a failure when dropped before it was
/// given otherwise (a panic while opening the ledger), so that no unit waits for ever.
struct SetOnDrop<'a>(&'a crate::engine::Ready);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(Err("the ledger could not be opened".into()));
    }
}

/// File workers per processing thread (see `process_items`).
const FILE_WORKERS_PER_THREAD: usize = 2;

/// How long finished units wait to be recorded in the ledger together. Recording is done by
/// the delivery threads, off the file workers' path, so it can be often: what is left for the
/// end of the run (one transaction and the ledger's checkpoint, both waiting on the disk) is
/// then the last few units only (measured: the end of a run of the 63 files of a tenth of a
/// day's CSV vendors took 7-21 ms recording them all, before the checkpoint's 8-11 ms).
const RECORD_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

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
    let opts = EngineOptions {
        date: date.to_string(),
        ..EngineOptions::default()
    };
    process_items(
        g,
        &profiles,
        items,
        &out.join("ledger.duckdb"),
        &opts,
        skipped,
    )
}
