//! A batch window end to end, as one cron line (`batchwin run`): fetch the day's files, plan
//! them for the window, run every slice (here, or on Slurm), publish, and report. Each step is
//! a `batchwin` child process ([`steps`]) whose files stay in the run folder
//! `RUNS/DATE-WINDOW/`, and whose command line is printed, so any step can be run again by
//! hand with the same files.
//!
//! Runs of the same window and day never overlap ([`lock`]). When the window ends before the
//! work is done, MEDIUM and LOW units that have not started are deferred; the next run of the
//! same window first finishes what earlier days left undone ([`resume`]). When a window opens
//! and closes on a given day is [`day`]'s. With `--run-location URL` the day's data lives at
//! `URL/DATE-WINDOW/` and the slices run over it, while the window's bookkeeping stays in the
//! local run folder ([`location`]); a lease lock at the run location keeps runs of the same
//! day on different machines apart ([`lease`]).

pub mod day;
mod execute;
mod lease;
mod location;
mod lock;
mod preview;
pub mod quarantine;
mod resume;
mod sla;
pub mod steps;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::config::NotifyEventKind;
use crate::exit::{ExitStatus, Failure};
use crate::notify::Notifier;
use crate::printer::GlobalArgs;
use crate::telemetry::{TraceSpan, Traces, attr};

pub use day::{WindowDay, check_all, resolve};
pub use execute::Executor;
use execute::{SliceSites, execute_local, execute_slurm};
use location::DayLocation;
use lock::lock;
use preview::{preview_fetch, preview_plan};
use resume::{remaining, remember_split_files};
use steps::{SlurmEmit, Step, Steps, ended, status_of, worse};

/// The file in the run folder that tells the `publish` running beside the slices that they
/// have ended (`publish --follow`).
const SLICES_ENDED: &str = "slices.ended";

/// What `run` was asked to do, resolved from its flags.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The configuration file, as an absolute path (steps run with it from any folder).
    pub config: PathBuf,
    /// The window's name in `[windows.NAME]`.
    pub window: String,
    /// The business date; `None`: the day of the window that opened last, after the earlier
    /// days that left work undone.
    pub date: Option<String>,
    pub executor: Executor,
    /// Slices run at once by the local executor (`None`: the window's `workers`, then one per
    /// two cores).
    pub workers: Option<u64>,
    /// Folder of run folders (`None`: `runs` in the config, then `runs` beside the config).
    pub runs: Option<PathBuf>,
    /// A URL below which each day's data lives (`URL/DATE-WINDOW/`), processed by slices over
    /// it with local scratch; `None`: in the run folder.
    pub run_location: Option<String>,
    /// `plan --max-slices` and `--utilization` for `--slices auto` (`None`: plan's defaults).
    pub max_slices: Option<u64>,
    pub utilization: Option<f64>,
    /// Finish the day's work whatever the time: nothing is deferred at the window's end.
    pub catch_up: bool,
    /// Print what would be done; change nothing.
    pub dry_run: bool,
    /// How long steps and slices may take to stop after SIGTERM or SIGINT.
    pub grace_period: Duration,
    /// The job token's file, given to `plan` (a token in `BATCHWIN_TOKEN` reaches it through
    /// the environment).
    pub token: Option<PathBuf>,
    /// Where traces are exported (`OTEL_EXPORTER_OTLP_*`); `None`: no traces.
    pub otlp: Option<crate::env::OtlpSettings>,
    /// The W3C trace context the run joins (`TRACEPARENT`).
    pub traceparent: Option<String>,
    /// Looks up the variables `[notify]` names for webhook URLs ([`crate::env::secret`]).
    pub secrets: fn(&str) -> Option<String>,
}

/// Runs window `a.window` (and first the earlier days of it that left work undone): fetch,
/// plan, execute, publish, report, each as a child process; the worst exit status.
pub fn run(g: &GlobalArgs, a: &RunSettings) -> Result<ExitStatus, Failure> {
    let config_path = a.config.clone();
    let config = crate::config::Config::load(&config_path)?;
    check_all(&config)?;
    if let Some(url) = &a.run_location {
        if !crate::transfer::location::is_url(url) {
            return Err(Failure::usage(anyhow!(
                "--run-location `{url}` is not a URL (s3://, az://, gs://, sftp://, file://); a local folder is --runs"
            )));
        }
        // Slurm's tasks read the configuration from the run location, where no key file is.
        if a.executor == Executor::Slurm && config.hashes() && config.masking.key_file.is_some() {
            return Err(Failure::usage(anyhow!(
                "`[masking] key_file` in `{}`: on Slurm with --run-location the tasks read the configuration from the run location, which holds no key file; give the key in the environment instead (`[masking] key_env`, default BATCHWIN_MASK_KEY: sbatch passes it on to the tasks)",
                config_path.display()
            )));
        }
    }
    let today = resolve(&config, &a.window, a.date.as_deref(), chrono::Utc::now())
        .map_err(|m| Failure::usage(anyhow!(m)))?;
    let runs = a
        .runs
        .clone()
        .map(|r| std::path::absolute(&r).unwrap_or(r))
        .unwrap_or_else(|| config.relative(config.runs.as_deref().unwrap_or(Path::new("runs"))));
    let steps = Steps {
        exe: std::env::current_exe()
            .map_err(|e| Failure::data(anyhow!("cannot find the batchwin executable: {e}")))?,
        config: config_path.clone(),
        g,
        cancel: crate::cancel::Cancel::install()
            .map_err(|e| Failure::data(anyhow!("cannot install signal handlers: {e}")))?,
        grace: a.grace_period,
        dry_run: a.dry_run,
        traceparent: Default::default(),
        notify_log: Default::default(),
        beside: Default::default(),
        beside_codes: Default::default(),
    };
    // A dry run changes nothing and tells no one.
    let traces = if a.dry_run {
        Traces::off()
    } else {
        Traces::start(a.otlp.as_ref(), a.traceparent.as_deref())
    };
    let run_span = traces.span(
        "run",
        vec![
            attr("batchwin.window", a.window.clone()),
            attr(
                "batchwin.executor",
                format!("{:?}", a.executor).to_lowercase(),
            ),
        ],
    );

    // Earlier days of this window that left work undone come first.
    let mut days = Vec::new();
    if a.date.is_none() {
        days.extend(
            unfinished_days(&runs, &today)
                .into_iter()
                .filter_map(|d| resolve(&config, &a.window, Some(&d), chrono::Utc::now()).ok()),
        );
    }
    days.push(today.clone());
    let mut status = ExitStatus::Success;
    for day in &days {
        if day.date != today.date {
            println!(
                "carry-over {}: the run of {} left work undone; finishing it first",
                day.name, day.date
            );
        }
        // Every day's leftovers run within today's window.
        let deadline = if a.catch_up { None } else { Some(today.end) };
        let s = run_day(&steps, a, &config, &runs, day, deadline, &run_span);
        if let Err(f) = &s {
            run_span.error(&crate::exit::error_text(&f.error));
        }
        status = worse(status, s?);
        if steps.cancel.is_cancelled() {
            break;
        }
    }
    run_span.set(vec![attr("batchwin.exit_code", i64::from(status.code()))]);
    Ok(status)
}

/// What a day's run tells: its span, and the webhooks.
struct Watch<'a> {
    span: &'a TraceSpan,
    notifier: Notifier,
}

impl Watch<'_> {
    /// A step's span, whose context the step's child processes are given.
    fn step(&self, steps: &Steps<'_>, name: &'static str) -> TraceSpan {
        let span = self
            .span
            .child(name, vec![attr("batchwin.step", name.to_string())]);
        if let Some(tp) = span.traceparent() {
            *steps.traceparent.borrow_mut() = Some(tp);
        }
        span
    }
}

/// One day of the window: its span around the steps, and the notification that it finished.
fn run_day(
    steps: &Steps<'_>,
    a: &RunSettings,
    config: &crate::config::Config,
    runs: &Path,
    w: &WindowDay,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
    run_span: &TraceSpan,
) -> Result<ExitStatus, Failure> {
    let dir = runs.join(format!("{}-{}", w.date, w.name));
    let span = run_span.child(
        "window",
        vec![
            attr("batchwin.window", w.name.clone()),
            attr("batchwin.date", w.date.clone()),
            attr("batchwin.window_start", w.start.to_rfc3339()),
            attr("batchwin.window_end", w.end.to_rfc3339()),
        ],
    );
    let log = dir.join("notifications.jsonl");
    let watch = Watch {
        span: &span,
        notifier: Notifier::new(&config.notify, &a.secrets, &log),
    };
    let report_json = dir.join("report.json");
    if !steps.dry_run {
        *steps.notify_log.borrow_mut() = Some(log);
        // Only this run's report may give the totals.
        let _ = std::fs::remove_file(&report_json);
    }
    let result = run_steps(steps, a, config, &dir, w, deadline, &watch);
    let code = match &result {
        Ok(s) => i32::from(s.code()),
        Err(f) => {
            span.error(&crate::exit::error_text(&f.error));
            i32::from(f.status.code())
        }
    };
    span.set(vec![attr("batchwin.exit_code", i64::from(code))]);
    if !steps.dry_run && watch.notifier.wants(NotifyEventKind::WindowFinished) {
        let report: Option<serde_json::Value> = std::fs::read(&report_json)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        watch
            .notifier
            .send(&sla::finished(report.as_ref(), w, code));
    }
    *steps.traceparent.borrow_mut() = None;
    result
}

/// Stops the steps running beside, if any, when dropped ([`Steps::stop_beside`]).
struct StopBeside<'a, 's>(&'a Steps<'s>);

impl Drop for StopBeside<'_, '_> {
    fn drop(&mut self) {
        self.0.stop_beside();
    }
}

/// `RUN/state.json`: whether the run left work undone, so the next run picks it up.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    window: String,
    date: String,
    complete: bool,
    exit_code: i32,
    ended_at: String,
}

/// Dates of earlier runs of this window (within a week) whose state says work is left.
fn unfinished_days(runs: &Path, today: &WindowDay) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(runs) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(date) = name.strip_suffix(&format!("-{}", today.name)) else {
            continue;
        };
        if date >= today.date.as_str() || date.len() != 10 {
            continue;
        }
        let recent = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .ok()
            .zip(chrono::NaiveDate::parse_from_str(&today.date, "%Y-%m-%d").ok())
            .is_some_and(|(d, t)| (t - d).num_days() <= 7);
        let state: Option<State> = std::fs::read(e.path().join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if recent && state.is_some_and(|s| !s.complete) {
            out.push(date.to_string());
        }
    }
    out.sort();
    out
}

fn run_steps(
    steps: &Steps<'_>,
    a: &RunSettings,
    config: &crate::config::Config,
    dir: &Path,
    w: &WindowDay,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
    watch: &Watch<'_>,
) -> Result<ExitStatus, Failure> {
    let dir = dir.to_path_buf();
    println!(
        "window     {} {}: {} to {} (UTC), run folder `{}`",
        w.name,
        w.date,
        w.start.format("%Y-%m-%d %H:%M"),
        w.end.format("%Y-%m-%d %H:%M"),
        dir.display()
    );
    let _lock = if steps.dry_run {
        None
    } else {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))
            .map_err(Failure::data)?;
        Some(lock(&dir, w)?)
    };
    // The day's data at a run location, when there is one.
    let location = match &a.run_location {
        Some(base) => {
            let name = dir.file_name().map_or_else(
                || format!("{}-{}", w.date, w.name),
                |n| n.to_string_lossy().into_owned(),
            );
            let l = DayLocation::open(base, &name, config)?;
            println!("location   `{}`", l.url.display());
            Some(l)
        }
        None => None,
    };
    // Runs of the day on other machines are kept apart by the run location's own lock.
    let _lease = match &location {
        Some(l) if !steps.dry_run => Some(l.lock(w)?),
        _ => None,
    };
    // A fetch still running beside when the steps end on an error is stopped while the locks
    // are held (dropped before them).
    let _beside = StopBeside(steps);
    if !steps.dry_run {
        // When the window opened, for `status` to count the SLAs from (and where the day's
        // data is, for `status` of this folder to follow).
        let record = crate::status::WindowRecord {
            window: w.name.clone(),
            date: w.date.clone(),
            start: w.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            end: w.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            location: location.as_ref().map(|l| l.url.display().to_string()),
            slas: crate::status::WindowRecord::slas_of(&config.vendors),
        };
        let local = dir.join(crate::status::WINDOW_FILE);
        let _ = crate::files::write(
            &local,
            serde_json::to_vec_pretty(&record).unwrap_or_default(),
        );
        if let Some(l) = &location
            && let Err(f) = l.put(crate::status::WINDOW_FILE, &local)
        {
            tracing::warn!(
                "cannot store `{}` at the run location (status counts SLAs from the first slice's start): {}",
                crate::status::WINDOW_FILE,
                crate::exit::error_text(&f.error)
            );
        }
    }
    // Where each step reads and writes: the run folder, or the day's run location.
    let at = |name: &str, local: PathBuf| location.as_ref().map_or(local, |l| l.at(name));
    let cfg = steps.config.as_path();
    let manifest = dir.join("manifest.jsonl");
    let todo = dir.join("todo.jsonl");
    let plan_path = dir.join("plan.json");
    let plan_out = at("plan.json", plan_path.clone());
    let split = dir.join("split.json");
    let out = location
        .as_ref()
        .map_or_else(|| dir.join("out"), |l| l.url.clone());
    let ledgers = at("ledgers", out.join("ledgers"));
    let mut status = ExitStatus::Success;
    // The deliveries' ledger: beside the ledgers at a run location (`ledgers/publish.duckdb`),
    // else here.
    let publish_ledger = dir.join("publish.duckdb");
    let follow = dir.join(SLICES_ENDED);
    let publish_step = |target, follow| Step::Publish {
        config: cfg,
        ledgers: &ledgers,
        target,
        date: &w.date,
        ledger: location.is_none().then_some(publish_ledger.as_path()),
        follow,
    };
    // Whether `publish` ran beside the slices (then not after them).
    let mut published = false;

    // 1. fetch. On the day's first run (nothing fetched or recorded yet, the day's data in the
    // run folder, slices on this machine) it runs beside the plan and the slices: it lists the
    // files it will stage before it copies them, HIGH vendors' first, the plan is made from
    // that listing, and each unit starts once its file is staged ([`crate::plan::arrivals`]).
    // Later runs of the day fetch first, then plan what is left.
    let staging = at("staging", dir.join("staging"));
    let listing_path = dir.join("listing.jsonl");
    let beside = location.is_none()
        && a.executor == Executor::Local
        && !manifest.exists()
        && !ledgers.exists();
    let fetch = Step::Fetch {
        config: cfg,
        source: &w.config.source,
        date: &w.date,
        staging: &staging,
        manifest: &manifest,
        listing: beside.then_some(listing_path.as_path()),
    };
    if steps.dry_run {
        let found = preview_fetch(config, w)?;
        preview_plan(steps, config, w, &found, a, &dir)?;
    }
    let span = watch.step(steps, "fetch");
    if beside && steps.dry_run {
        println!("fetch      would run beside the plan and the slices (the day's first run)");
    }
    let listing = if beside && !steps.dry_run {
        let _ = std::fs::remove_file(&listing_path);
        steps.start_beside(
            "fetch",
            fetch.args(),
            Some(crate::plan::arrivals::ended_marker(&manifest)),
            // Its span ends when it does.
            span,
        )?;
        steps.wait_beside_until("fetch", || listing_path.exists());
        let rows = crate::plan::manifest::read(&listing_path)
            .ok()
            .filter(|r| !r.is_empty() && !steps.cancel.is_cancelled());
        match &rows {
            Some(r) => {
                println!(
                    "fetch      runs beside the plan and the slices: {} files to stage, each unit starts once its file is staged",
                    r.len()
                );
            }
            // Nothing to stage, or the fetch ended without a listing: as a fetch run first.
            None => {
                let code = steps.wait_beside("fetch").unwrap_or(1);
                status = worse(status, status_of(code));
            }
        }
        rows
    } else {
        let code = steps.run("fetch", fetch.args())?;
        ended(span, code);
        status = worse(status, status_of(code));
        None
    };
    if matches!(status, ExitStatus::Usage | ExitStatus::Interrupted(_)) {
        return finish(&dir, w, status, steps.dry_run);
    }
    if !steps.dry_run && listing.is_none() && !manifest.exists() {
        // The fetch failed before its first copy (a source that cannot be listed, a day that
        // does not fit on the disk): there is nothing to plan, and its exit code is the run's.
        println!("plan       nothing was fetched: nothing to plan");
        return finish(&dir, w, status, steps.dry_run);
    }
    // Whether the plan and the slices wait for the files of a fetch beside (a dry run shows
    // the command lines a real first run would run).
    let fetching = listing.is_some() || (beside && steps.dry_run);
    // The end of a fetch running beside: its exit code joins the run's.
    let fetch_ended = |status: &mut ExitStatus| {
        if let Some(code) = steps.wait_beside("fetch") {
            *status = worse(*status, status_of(code));
        }
    };

    // 2. plan what is left: files whose every unit already succeeded in an earlier attempt
    // (same input checksum, output still there) are not planned again. On the day's first
    // run, every file listed.
    let (left, done) = if let Some(rows) = &listing {
        crate::plan::manifest::write(&todo, rows).map_err(Failure::data)?;
        (Some(rows.len()), 0)
    } else if steps.dry_run || !manifest.exists() {
        (None, 0)
    } else {
        // A run killed before it recorded what it put in quarantine does it now.
        quarantine_due(steps, location.as_ref(), &ledgers, w, watch)?;
        // Done under the same configuration only, as each slice judges its own units.
        let config_sha = crate::plan::manifest::file_sha256(&steps.config).ok();
        let r = match &location {
            Some(l) => l.remaining(&manifest, &split, config_sha.as_deref())?,
            None => remaining(&manifest, &ledgers, &split, config_sha.as_deref())
                .map_err(Failure::data)?,
        };
        crate::plan::manifest::write(&todo, &r.left).map_err(Failure::data)?;
        // Copies of the manifest and of what is left of it at the run location, where
        // `log URL/DATE-WINDOW --why FILE` reads them from any machine.
        if let Some(l) = &location {
            for (name, local) in [("manifest.jsonl", &manifest), ("todo.jsonl", &todo)] {
                if let Err(f) = l.put(name, local) {
                    tracing::warn!(
                        "cannot store `{name}` at the run location (`log --why` reads it there): {}",
                        crate::exit::error_text(&f.error)
                    );
                }
            }
        }
        if !r.quarantined.is_empty() {
            println!(
                "quarantine {} files not planned after failing {} runs or more: {} (`batchwin release --run {} FILE` plans one again)",
                r.quarantined.len(),
                w.config.max_attempts(),
                r.quarantined
                    .iter()
                    .map(|q| q.input_path.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                dir.display()
            );
        }
        (Some(r.left.len()), r.done)
    };
    if done > 0 {
        println!("resume     {done} files already done in an earlier attempt: not planned again");
    }
    if left == Some(0) {
        println!("plan       nothing left to do");
    }
    let workers = a
        .workers
        .map(|n| n as usize)
        .or(w.config.workers)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .div_ceil(2)
        });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if left != Some(0) {
        let (slices, slurm) = match a.executor {
            Executor::Local => (workers.to_string(), None),
            Executor::Slurm => (
                "auto".to_string(),
                // At a run location, the tasks read the plan (and the configuration beside it)
                // there, with node-local scratch, as `plan --emit slurm` writes them for URLs.
                Some(SlurmEmit {
                    emit_dir: dir.join("emit"),
                    worker_out: &out,
                    worker_batchwin: &steps.exe,
                    worker_plan: &plan_out,
                    worker_config: cfg,
                }),
            ),
        };
        let plan = Step::Plan {
            config: cfg,
            manifest: match (steps.dry_run, fetching) {
                (true, true) => &listing_path,
                (true, false) => &manifest,
                (false, _) => &todo,
            },
            fetching: fetching.then_some(manifest.as_path()),
            window: &w.span,
            date: &w.date,
            out: &plan_out,
            slices,
            split_bytes: None,
            slurm,
            max_slices: a.max_slices,
            utilization: a.utilization,
            token: a.token.as_deref(),
        };
        let span = watch.step(steps, "plan");
        let code = steps.run("plan", plan.args())?;
        ended(span, code);
        status = worse(status, status_of(code));
        if code != 0 {
            fetch_ended(&mut status);
            return finish(&dir, w, status, steps.dry_run);
        }
        if !steps.dry_run {
            // A copy of the run location's plan here: the stages, the SLAs, the split files.
            if let Some(l) = &location {
                l.get("plan.json", &plan_path)?;
            }
            remember_split_files(&plan_path, &split).map_err(Failure::data)?;
        }

        // 3. execute, watching the SLAs as `status` estimates them: from the slices' status
        // documents, when they start, every few seconds and each time one ends.
        let documents = out.join(crate::engine::live::STATUS_DIR);
        let fetched = dir.join("scratch").join("sla");
        let document = |k: usize| {
            let name = crate::engine::live::Live::slice_name(k);
            let local = match &location {
                Some(l) => {
                    let local = fetched.join(&name);
                    let _ = std::fs::create_dir_all(&fetched);
                    l.get(
                        &format!("{}/{name}", crate::engine::live::STATUS_DIR),
                        &local,
                    )
                    .ok()?;
                    local
                }
                None => documents.join(&name),
            };
            crate::status::read_document(&local).ok().flatten()
        };
        let mut watch_sla = (!steps.dry_run && watch.notifier.wants(NotifyEventKind::SlaAtRisk))
            .then(|| crate::plan::Plan::read(&plan_path).ok())
            .flatten()
            .map(|p| sla::SlaWatch::new(p, chrono::Utc::now(), document));
        let mut look = |now_anyway: bool| {
            if let Some(sw) = watch_sla.as_mut() {
                for e in sw.look(w, now_anyway) {
                    watch.notifier.send(&e);
                }
            }
        };
        look(true);
        // 4, beside the slices: with the slices on this machine and the day in the run folder,
        // `publish` delivers each output once its slice has recorded it (in its ledger's
        // journal, `process --journal`), then, once `slices.ended` is written, what is left
        // from the slices' ledgers, as it does after them.
        let beside_target = w
            .config
            .target
            .as_ref()
            .filter(|_| location.is_none() && a.executor == Executor::Local);
        if let Some(target) = beside_target {
            let publish = publish_step(target, Some(&follow));
            let span = watch.step(steps, "publish");
            if steps.dry_run {
                steps.show("publish", &publish.args(), None);
                println!("publish    would run beside the slices");
            } else {
                let _ = std::fs::remove_file(&follow);
                steps.start_beside("publish", publish.args(), None, span)?;
                println!(
                    "publish    runs beside the slices: each output is delivered once its unit is recorded"
                );
            }
        }
        let span = watch.step(steps, "execute");
        let scratch = dir.join("scratch");
        let s = match a.executor {
            Executor::Local => execute_local(
                steps,
                &SliceSites {
                    plan: &plan_path,
                    worker_plan: &plan_out,
                    out: &out,
                    scratch: location.as_ref().map(|_| scratch.as_path()),
                    fetching: fetching.then_some(manifest.as_path()),
                    journal: beside_target.is_some(),
                },
                workers,
                cores,
                deadline,
                &mut look,
            )?,
            Executor::Slurm => execute_slurm(steps, &dir, &mut look)?,
        };
        ended(span, i32::from(s.code()));
        status = worse(status, s);
        fetch_ended(&mut status);
        if matches!(status, ExitStatus::Interrupted(_)) {
            return finish(&dir, w, status, steps.dry_run);
        }
        if !steps.dry_run {
            quarantine_due(steps, location.as_ref(), &ledgers, w, watch)?;
        }
        published = beside_target.is_some();
        if published && !steps.dry_run {
            match steps.ended_beside("publish") {
                // It ended before the slices did (a target it could not open, say): publish
                // after them, as without it.
                Some(code) => {
                    println!(
                        "publish    the publish beside the slices ended early, with exit code {code}: publishing after them"
                    );
                    published = false;
                }
                None => {
                    // After the quarantine: the publish's last pass reads the ledgers, which one
                    // process at a time may open.
                    crate::plan::arrivals::mark_ended_at(&follow)
                        .with_context(|| format!("cannot write `{}`", follow.display()))
                        .map_err(Failure::data)?;
                    let code = steps.wait_beside("publish").unwrap_or(1);
                    status = worse(status, status_of(code));
                }
            }
        }
    }

    fetch_ended(&mut status);

    // 4. publish what the slices recorded (a day with no files has nothing to publish).
    let has_ledgers = match &location {
        Some(l) if !steps.dry_run => l.has_ledgers()?,
        _ => ledgers.exists(),
    };
    if w.config.target.is_some() && !has_ledgers && !steps.dry_run && !published {
        println!("publish    nothing to publish: no slice recorded anything");
    }
    if let Some(target) = w
        .config
        .target
        .as_ref()
        .filter(|_| (has_ledgers || steps.dry_run) && !published)
    {
        let publish = publish_step(target, None);
        let span = watch.step(steps, "publish");
        let code = steps.run("publish", publish.args())?;
        ended(span, code);
        status = worse(status, status_of(code));
    }

    // 5. report: the table here, the HTML page beside it (and for the notifications, JSON),
    // all from one merge of the ledgers; its exit status is the run's.
    let start = w.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let merged = dir.join("report.duckdb");
    if has_ledgers || steps.dry_run {
        // The figures the notifications give: only when a webhook wants them.
        let n = &watch.notifier;
        let json = (n.wants(NotifyEventKind::SlaMissed)
            || n.wants(NotifyEventKind::WindowFinished))
        .then(|| dir.join("report.json"));
        let report = Step::Report {
            ledgers: &ledgers,
            config: cfg,
            plan: (plan_path.exists() || steps.dry_run).then_some(plan_out.as_path()),
            window_start: start,
            html: Some(&dir.join("report.html")),
            json: json.as_deref(),
            // A run location's merged ledger is made here, not in the working folder.
            out: location.as_ref().map(|_| merged.as_path()),
        };
        let span = watch.step(steps, "report");
        let code = steps.run("report", report.args())?;
        ended(span, code);
        status = worse(status, status_of(code));
        if let Some(json) = json.filter(|_| !steps.dry_run && n.wants(NotifyEventKind::SlaMissed)) {
            let parsed: Option<serde_json::Value> = std::fs::read(&json)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(r) = parsed {
                for e in sla::missed(&r, w) {
                    n.send(&e);
                }
            }
        }
    }
    finish(&dir, w, status, steps.dry_run)
}

/// Puts in quarantine the files due for it ([`quarantine::update`]), says so, and tells the
/// webhooks that want to know: in the run folder's ledgers, or at the day's run location.
fn quarantine_due(
    steps: &Steps<'_>,
    location: Option<&DayLocation>,
    ledgers: &Path,
    w: &WindowDay,
    watch: &Watch<'_>,
) -> Result<(), Failure> {
    if steps.dry_run {
        return Ok(());
    }
    let due = match location {
        Some(l) => l.quarantine_due(w.config.max_attempts())?,
        None => quarantine::update(ledgers, w.config.max_attempts()).map_err(Failure::data)?,
    };
    for q in &due {
        println!(
            "quarantine {} `{}` after {} failed attempts: {}",
            q.vendor,
            q.input_path,
            q.attempts,
            q.error.as_deref().unwrap_or("failed")
        );
        watch.notifier.send(&crate::notify::Event::FileQuarantined {
            date: w.date.clone(),
            vendor: q.vendor.clone(),
            file: q.input_path.clone(),
            attempts: q.attempts.max(0) as u32,
            error: q.error.clone().unwrap_or_default(),
        });
    }
    Ok(())
}

fn finish(
    dir: &Path,
    w: &WindowDay,
    status: ExitStatus,
    dry_run: bool,
) -> Result<ExitStatus, Failure> {
    if dry_run {
        return Ok(status);
    }
    let state = State {
        window: w.name.clone(),
        date: w.date.clone(),
        complete: status == ExitStatus::Success,
        exit_code: status.code() as i32,
        ended_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let _ = crate::files::write(
        &dir.join("state.json"),
        serde_json::to_vec_pretty(&state).unwrap_or_default(),
    );
    println!(
        "run        {} {}: exit code {}",
        w.name,
        w.date,
        status.code()
    );
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_days_that_left_work_undone_come_first() {
        let runs = tempfile::tempdir().expect("temp dir");
        let state = |folder: &str, complete: bool| {
            let dir = runs.path().join(folder);
            std::fs::create_dir_all(&dir).expect("mkdir");
            let s = State {
                window: "morning".into(),
                date: folder[..10].into(),
                complete,
                exit_code: if complete { 0 } else { 1 },
                ended_at: "2026-12-01T10:00:00Z".into(),
            };
            std::fs::write(
                dir.join("state.json"),
                serde_json::to_vec(&s).expect("json"),
            )
            .expect("write state");
        };
        state("2026-12-01-morning", false); // left work: first
        state("2026-11-30-morning", false); // left work: first of all
        state("2026-12-02-morning", true); // complete
        state("2026-11-20-morning", false); // more than a week ago
        state("2026-12-01-evening", false); // another window
        state("2026-12-03-morning", false); // today itself
        std::fs::create_dir_all(runs.path().join("2026-11-29-morning")).expect("no state");
        let today = day::test_day();
        assert_eq!(
            unfinished_days(runs.path(), &today),
            ["2026-11-30", "2026-12-01"]
        );
    }
}
