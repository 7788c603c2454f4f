//! `batchwin run`: one batch window end to end, as one cron line: fetch the day's files, plan
//! them for the window, run every slice (here, or on Slurm), publish, and report. Each step is
//! a `batchwin` child process whose files stay in the run folder `RUNS/DATE-WINDOW/`, and
//! whose command line is printed, so any step can be run again by hand with the same files.
//!
//! Runs of the same window and day never overlap (a lock in the run folder). When the window
//! ends before the work is done, MEDIUM and LOW units that have not started are deferred; the
//! next run of the same window first finishes what earlier days left undone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::{Args, ValueEnum};

use crate::cli::{GlobalArgs, LogFormat};
use crate::exit::{ExitStatus, Failure};
use crate::settings;
use crate::window::{WindowDay, resolve};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    /// Slices run on this machine, as `batchwin process` child processes.
    Local,
    /// Slices are submitted as Slurm job arrays and waited for.
    Slurm,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The vendor configuration file, with the `[windows.NAME]` tables.
    #[arg(long, env = settings::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
    /// The window to run, e.g. `morning`.
    #[arg(long)]
    pub window: String,
    /// The business date (YYYY-MM-DD); default: the day of the window that opened last.
    #[arg(long, env = settings::ENV_DATE, value_parser = settings::check_date)]
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
    /// Do not defer anything at the window's end: finish the day's work whatever the time.
    #[arg(long)]
    pub catch_up: bool,
    /// Print what would be fetched, the plan's calculation and the commands; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// After SIGTERM or SIGINT, how long the steps and slices may take to stop before `run`
    /// kills them (SIGKILL) and exits. Its workers get a little less, so that they normally
    /// stop by themselves and clean up. Slurm jobs are cancelled with `scancel`.
    #[arg(long, env = crate::cancel::ENV_GRACE_PERIOD, default_value = crate::cancel::DEFAULT_GRACE_PERIOD, value_parser = humantime::parse_duration)]
    pub grace_period: Duration,
}

/// How the steps are started.
struct Steps<'a> {
    exe: PathBuf,
    config: PathBuf,
    g: &'a GlobalArgs,
    cancel: crate::cancel::Cancel,
    /// How long steps may take to stop after a signal.
    grace: Duration,
    dry_run: bool,
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Steps<'_> {
    fn command(&self, args: &[OsString]) -> Command {
        self.command_with(args, self.g.quiet)
    }

    fn command_with(&self, args: &[OsString], quiet: bool) -> Command {
        let mut c = Command::new(&self.exe);
        if self.g.log_format == LogFormat::Json {
            c.args(["--log-format", "json"]);
        }
        if quiet {
            c.arg("-q");
        }
        for _ in 0..self.g.verbose {
            c.arg("-v");
        }
        c.args(args);
        let child_grace = crate::cancel::Cancel::child_grace(self.grace);
        c.env(
            crate::cancel::ENV_GRACE_PERIOD,
            humantime::format_duration(child_grace).to_string(),
        );
        // If `run` itself is killed outright (SIGKILL, OOM), its workers get SIGTERM and stop
        // cleanly instead of running on unwatched beside the next run.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches only this child's own settings.
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        c
    }

    /// Prints a step's command line (and where its output goes, if not here).
    fn show(&self, step: &str, args: &[OsString], to: Option<&Path>) {
        let words: Vec<String> = args
            .iter()
            .map(|a| shell_word(&a.to_string_lossy()))
            .collect();
        let to = to.map_or(String::new(), |p| {
            format!(" > {}", shell_word(&p.display().to_string()))
        });
        println!("step       {step}: batchwin {}{to}", words.join(" "));
    }

    /// Runs one step to its end (passing SIGTERM and SIGINT on); its exit code. With
    /// `--dry-run` it is only shown.
    fn run(&self, step: &str, args: Vec<OsString>) -> Result<i32, Failure> {
        self.show(step, &args, None);
        if self.dry_run {
            return Ok(0);
        }
        let started = Instant::now();
        let code = self.exec(self.command(&args))?;
        println!(
            "took       {step} {:.1} s, exit code {code}",
            started.elapsed().as_secs_f64()
        );
        Ok(code)
    }

    /// Runs one step with its standard output going to a file.
    fn run_to_file(&self, step: &str, args: Vec<OsString>, out: &Path) -> Result<i32, Failure> {
        self.show(step, &args, Some(out));
        if self.dry_run {
            return Ok(0);
        }
        let file = std::fs::File::create(out)
            .with_context(|| format!("cannot write `{}`", out.display()))
            .map_err(Failure::data)?;
        // Never quiet: what it prints is the file.
        let mut c = self.command_with(&args, false);
        c.stdout(file);
        self.exec(c)
    }

    /// Runs a command to its end whatever `--dry-run` says, passing a SIGTERM or SIGINT that
    /// `run` receives on to it once; its exit code.
    fn exec(&self, mut c: Command) -> Result<i32, Failure> {
        let mut child = c
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.exe.display()))
            .map_err(Failure::data)?;
        let mut forwarded = false;
        loop {
            if let Some(st) = child
                .try_wait()
                .map_err(|e| Failure::data(anyhow!("waiting for a step: {e}")))?
            {
                return Ok(exit_code(st));
            }
            if let (Some(sig), false) = (self.cancel.signal(), forwarded) {
                forwarded = true;
                forward(child.id(), sig);
            }
            if self.cancel.overdue(self.grace) {
                let _ = child.kill();
                let _ = child.wait();
                println!("stopped    the step did not stop within the grace period: killed");
                return Ok(128 + self.cancel.signal().unwrap_or(libc::SIGTERM));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code()
        .or_else(|| st.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

fn forward(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a child's pid and a plain signal number has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The exit status that a child's exit code stands for.
fn status_of(code: i32) -> ExitStatus {
    match code {
        0 => ExitStatus::Success,
        2 => ExitStatus::Usage,
        3 => ExitStatus::Retryable,
        c if c > 128 => ExitStatus::Interrupted(c - 128),
        _ => ExitStatus::DataFailure,
    }
}

/// The worse of two outcomes: interrupted, then usage, then retryable, then data failures.
fn worse(a: ExitStatus, b: ExitStatus) -> ExitStatus {
    let rank = |s: ExitStatus| match s {
        ExitStatus::Success => 0,
        ExitStatus::DataFailure => 1,
        ExitStatus::Retryable => 2,
        ExitStatus::Usage => 3,
        ExitStatus::Interrupted(_) => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The lock that keeps two runs of the same window and day apart; held until dropped.
struct RunLock(#[allow(dead_code)] std::fs::File);

fn lock(run_dir: &Path, w: &WindowDay) -> Result<RunLock, Failure> {
    use std::io::{Read, Seek, Write};
    let path = run_dir.join(".lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open `{}`", path.display()))
        .map_err(Failure::data)?;
    match f.try_lock() {
        Ok(()) => {
            let _ = f.set_len(0);
            let _ = f.rewind();
            let _ = write!(
                f,
                "pid {} since {}",
                std::process::id(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            Ok(RunLock(f))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            Err(Failure::data(anyhow!(
                "another run of window `{}` for {} is in progress ({}); not starting. Its folder: `{}`",
                w.name,
                w.date,
                if holder.is_empty() {
                    "unknown process".to_string()
                } else {
                    holder
                },
                run_dir.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Failure::data(anyhow!(
            "cannot lock `{}`: {e}",
            path.display()
        ))),
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

fn os(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

fn p(path: &Path) -> OsString {
    path.as_os_str().to_os_string()
}

pub fn run(g: &GlobalArgs, a: RunArgs) -> Result<ExitStatus, Failure> {
    let config_path = std::path::absolute(&a.config).unwrap_or(a.config.clone());
    let config = settings::load_config(&config_path)?;
    crate::window::check_all(&config)?;
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
    };

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
        let s = run_day(&steps, &a, &config, &runs, day, deadline)?;
        status = worse(status, s);
        if steps.cancel.is_cancelled() {
            break;
        }
    }
    Ok(status)
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

fn run_day(
    steps: &Steps<'_>,
    a: &RunArgs,
    config: &crate::config::Config,
    runs: &Path,
    w: &WindowDay,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<ExitStatus, Failure> {
    let dir = runs.join(format!("{}-{}", w.date, w.name));
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
    let cfg = p(&steps.config);
    let manifest = dir.join("manifest.jsonl");
    let todo = dir.join("todo.jsonl");
    let plan_path = dir.join("plan.json");
    let split = dir.join("split.json");
    let out = dir.join("out");
    let ledgers = out.join("ledgers");
    let mut status = ExitStatus::Success;

    // 1. fetch
    let mut fetch = vec![
        OsString::from("fetch"),
        "--config".into(),
        cfg.clone(),
        "--source".into(),
        w.config.source.clone().into(),
    ];
    fetch.extend(os(&["--date", &w.date, "--staging"]));
    fetch.extend([p(&dir.join("staging")), "--manifest".into(), p(&manifest)]);
    if steps.dry_run {
        let found = preview_fetch(config, w)?;
        preview_plan(steps, config, w, &found, a, &dir)?;
    }
    let code = steps.run("fetch", fetch)?;
    status = worse(status, status_of(code));
    if matches!(status, ExitStatus::Usage | ExitStatus::Interrupted(_)) {
        return finish(&dir, w, status, steps.dry_run);
    }

    // 2. plan what is left: files whose every unit already succeeded in an earlier attempt
    // (same input checksum, output still there) are not planned again.
    let (left, done) = if steps.dry_run || !manifest.exists() {
        (None, 0)
    } else {
        let (rows, done) = remaining(&manifest, &ledgers, &split).map_err(Failure::data)?;
        crate::plan::manifest::write(&todo, &rows).map_err(Failure::data)?;
        (Some(rows.len()), done)
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
        let mut plan = vec![
            OsString::from("plan"),
            "--config".into(),
            cfg.clone(),
            "--manifest".into(),
        ];
        plan.push(if steps.dry_run {
            p(&manifest)
        } else {
            p(&todo)
        });
        plan.extend(os(&["--window", &w.span, "--date", &w.date, "--out"]));
        plan.push(p(&plan_path));
        match a.executor {
            Executor::Local => plan.extend(os(&["--slices", &workers.to_string()])),
            Executor::Slurm => {
                plan.extend(os(&["--slices", "auto", "--emit", "slurm", "--emit-dir"]));
                plan.extend([
                    p(&dir.join("emit")),
                    "--worker-out".into(),
                    p(&out),
                    "--worker-batchwin".into(),
                    p(&steps.exe),
                ]);
                plan.extend([
                    "--worker-plan".into(),
                    p(&plan_path),
                    "--worker-config".into(),
                    cfg.clone(),
                ]);
            }
        }
        let code = steps.run("plan", plan)?;
        status = worse(status, status_of(code));
        if code != 0 {
            return finish(&dir, w, status, steps.dry_run);
        }
        if !steps.dry_run {
            remember_split_files(&plan_path, &split).map_err(Failure::data)?;
        }

        // 3. execute
        let s = match a.executor {
            Executor::Local => execute_local(steps, &plan_path, &out, workers, cores, deadline)?,
            Executor::Slurm => execute_slurm(steps, &dir)?,
        };
        status = worse(status, s);
        if matches!(status, ExitStatus::Interrupted(_)) {
            return finish(&dir, w, status, steps.dry_run);
        }
    }

    // 4. publish
    if let Some(target) = &w.config.target {
        let mut publish = vec![
            OsString::from("publish"),
            "--config".into(),
            cfg.clone(),
            "--ledgers".into(),
            p(&ledgers),
        ];
        publish.extend(os(&["--target", target, "--date", &w.date, "--ledger"]));
        publish.push(p(&dir.join("publish.duckdb")));
        let code = steps.run("publish", publish)?;
        status = worse(status, status_of(code));
    }

    // 5. report: the table here, the HTML page beside it; its exit status is the run's.
    let start = w.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut report = vec![
        OsString::from("report"),
        "--ledgers".into(),
        p(&ledgers),
        "--config".into(),
        cfg.clone(),
    ];
    if plan_path.exists() || steps.dry_run {
        report.extend(["--plan".into(), p(&plan_path)]);
    }
    report.extend(os(&["--window-start", &start]));
    let mut html = report.clone();
    html.extend(os(&["--format", "html"]));
    if ledgers.exists() || steps.dry_run {
        let _ = steps.run_to_file("report", html, &dir.join("report.html"))?;
        let code = steps.run("report", report)?;
        status = worse(status, status_of(code));
    }
    finish(&dir, w, status, steps.dry_run)
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
    let _ = std::fs::write(
        dir.join("state.json"),
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

/// Files this run folder's plans split into parts, with the checksum each had when it was cut:
/// `split.json`, `{ location: sha256 }`, kept across the attempts of the day (each plan covers
/// only what was left, so `plan.json` alone forgets what earlier attempts split).
fn split_files(split: &Path) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    match std::fs::read_to_string(split) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not a list of split files", split.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", split.display())),
    }
}

/// Adds the files `plan_path` splits to `split` (see [`split_files`]).
fn remember_split_files(plan_path: &Path, split: &Path) -> anyhow::Result<()> {
    let plan = crate::plan::Plan::read(plan_path)?;
    let mut known = split_files(split)?;
    let before = known.clone();
    for u in plan.slices.iter().flat_map(|s| &s.units) {
        if u.part.is_some() {
            known.insert(u.location.clone(), u.sha256.clone());
        }
    }
    if known != before {
        let tmp = split.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&known)?)
            .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        std::fs::rename(&tmp, split)
            .with_context(|| format!("cannot write `{}`", split.display()))?;
    }
    Ok(())
}

/// The manifest's files not done yet, and how many are. A file is done as
/// [`crate::ledger::query::LatestUnits::is_done`] says: the latest attempt of each of its units
/// succeeded and every output is still there with its recorded size, and it is the same file:
/// its checksum is the one recorded (a whole file), or the one it had when an earlier plan of
/// the day cut it into the parts that succeeded (a split file; see [`split_files`]).
fn remaining(
    manifest: &Path,
    ledgers: &Path,
    split: &Path,
) -> anyhow::Result<(Vec<crate::plan::manifest::ManifestRow>, usize)> {
    use crate::ledger::query::{LatestUnits, Unit};
    let rows = crate::plan::manifest::read(manifest)?;
    let split = split_files(split)?;
    let found = if ledgers.is_dir() {
        crate::ledger::merge::find_ledgers(ledgers, None)?
    } else {
        Vec::new()
    };
    if found.is_empty() {
        return Ok((rows, 0));
    }
    let latest = crate::ledger::merge::with_latest(&found, |conn| Ok(LatestUnits::read(conn)?))?;
    let (finished, left): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| {
        latest
            .is_done(Unit::File(&r.location), None, |a| {
                // The parts of a split file carry their own checksums, not the file's.
                if a.parts.unwrap_or(1) > 1 {
                    split.get(&r.location) == Some(&r.sha256)
                } else {
                    a.input_sha256 == r.sha256
                }
            })
            .is_ok()
    });
    Ok((left, finished.len()))
}

fn execute_local(
    steps: &Steps<'_>,
    plan_path: &Path,
    out: &Path,
    workers: usize,
    cores: usize,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<ExitStatus, Failure> {
    // The stage of each slice: a stage starts when every slice of the stages before it ended.
    let stages: Vec<usize> = if steps.dry_run {
        vec![0; workers]
    } else {
        crate::plan::Plan::read(plan_path)
            .map_err(Failure::data)?
            .slices
            .iter()
            .map(|s| s.stage)
            .collect()
    };
    let slices = stages.len();
    let threads = (cores / workers).max(1).to_string();
    let args_of = |k: usize| {
        let mut v = vec![
            OsString::from("process"),
            "--config".into(),
            p(&steps.config),
            "--plan".into(),
            p(plan_path),
        ];
        v.extend(os(&["--slice", &k.to_string(), "--out"]));
        v.push(p(out));
        if let Some(d) = deadline {
            v.extend(os(&[
                "--deadline",
                &d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ]));
        }
        v
    };
    println!("execute    {slices} slices on {workers} local workers, {threads} threads each");
    if steps.dry_run {
        for k in 0..slices {
            steps.show(&format!("slice {k}"), &args_of(k), None);
        }
        return Ok(ExitStatus::Success);
    }
    let started = Instant::now();
    let mut next = 0;
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut status = ExitStatus::Success;
    let mut forwarded = false;
    while next < slices || !running.is_empty() {
        // Slices are in stage order; the next may start once no slice of an earlier stage runs.
        while running.len() < workers
            && next < slices
            && !running.iter().any(|(r, _)| stages[*r] < stages[next])
            && !steps.cancel.is_cancelled()
        {
            let args = args_of(next);
            steps.show(&format!("slice {next}"), &args, None);
            let mut c = steps.command(&args);
            c.env("RAYON_NUM_THREADS", &threads);
            let child = c
                .spawn()
                .with_context(|| format!("cannot start slice {next}"))
                .map_err(Failure::data)?;
            running.push((next, child));
            next += 1;
        }
        if steps.cancel.is_cancelled() {
            next = slices;
            if !forwarded {
                forwarded = true;
                let sig = steps.cancel.signal().unwrap_or(libc::SIGTERM);
                for (_, c) in &running {
                    forward(c.id(), sig);
                }
            }
            if steps.cancel.overdue(steps.grace) {
                for (k, c) in &mut running {
                    let _ = c.kill();
                    let _ = c.wait();
                    println!("stopped    slice {k} did not stop within the grace period: killed");
                }
                let sig = steps.cancel.signal().unwrap_or(libc::SIGTERM);
                return Ok(ExitStatus::Interrupted(sig));
            }
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].1.try_wait() {
                Ok(Some(st)) => {
                    let (k, _) = running.swap_remove(i);
                    let code = exit_code(st);
                    println!(
                        "slice      {k} ended with exit code {code} after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    if running.is_empty() && next >= slices {
                        println!(
                            "took       execute {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    status = worse(status, status_of(code));
                }
                Ok(None) => i += 1,
                Err(e) => {
                    return Err(Failure::data(anyhow!(
                        "waiting for slice {}: {e}",
                        running[i].0
                    )));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(sig) = steps.cancel.signal() {
        status = worse(status, ExitStatus::Interrupted(sig));
    }
    Ok(status)
}

fn execute_slurm(steps: &Steps<'_>, dir: &Path) -> Result<ExitStatus, Failure> {
    let submit = dir.join("emit/slurm/submit.sh");
    println!("step       submit: bash {}", submit.display());
    if steps.dry_run {
        return Ok(ExitStatus::Success);
    }
    let out = Command::new("bash")
        .arg(&submit)
        .output()
        .with_context(|| format!("cannot run `{}`", submit.display()))
        .map_err(Failure::data)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(Failure::retryable(anyhow!(
            "`{}` failed: {}{}",
            submit.display(),
            text,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let ids: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect();
    println!("submitted  {} Slurm jobs: {}", ids.len(), ids.join(","));
    let started = Instant::now();
    let mut last = String::new();
    let mut cancelled = false;
    loop {
        if let (Some(_), false) = (steps.cancel.signal(), cancelled) {
            cancelled = true;
            println!("cancel     scancel {}", ids.join(" "));
            let _ = Command::new("scancel").args(&ids).status();
        }
        if steps.cancel.overdue(steps.grace) {
            println!("stopped    the grace period is over; Slurm finishes cancelling the jobs");
            let sig = steps.cancel.signal().unwrap_or(libc::SIGTERM);
            return Ok(ExitStatus::Interrupted(sig));
        }
        let q = Command::new("squeue")
            .args(["-h", "-t", "all", "-o", "%i %T", "-j", &ids.join(",")])
            .output()
            .map_err(|e| Failure::retryable(anyhow!("cannot run squeue: {e}")))?;
        let states = String::from_utf8_lossy(&q.stdout).into_owned();
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for l in states.lines() {
            if let Some(s) = l.split_whitespace().nth(1) {
                *counts.entry(s.to_string()).or_default() += 1;
            }
        }
        let active = [
            "PENDING",
            "RUNNING",
            "CONFIGURING",
            "COMPLETING",
            "REQUEUED",
            "SUSPENDED",
        ];
        let summary: Vec<String> = counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.to_lowercase()))
            .collect();
        let summary = summary.join(", ");
        if summary != last {
            println!(
                "slurm      {:.0} s: {summary}",
                started.elapsed().as_secs_f64()
            );
            last = summary;
        }
        if !states.is_empty() && !counts.keys().any(|s| active.contains(&s.as_str())) {
            let ok = counts.keys().all(|s| s == "COMPLETED");
            if let Some(sig) = steps.cancel.signal() {
                return Ok(ExitStatus::Interrupted(sig));
            }
            return Ok(if ok {
                ExitStatus::Success
            } else {
                ExitStatus::DataFailure
            });
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// For `--dry-run`: the plan's calculation for what the source holds now, made in a temporary
/// folder from the listing (files are not split: they are not here to look into).
fn preview_plan(
    steps: &Steps<'_>,
    config: &crate::config::Config,
    w: &WindowDay,
    found: &[(String, String, u64)],
    a: &RunArgs,
    dir: &Path,
) -> Result<(), Failure> {
    let rows: Vec<_> = found
        .iter()
        .filter_map(|(v, f, size)| {
            let (_, vc) = config.vendor(v)?;
            Some(crate::plan::manifest::ManifestRow {
                vendor: v.clone(),
                location: crate::transfer::fetch::staged_path(&dir.join("staging"), &w.date, v, f)
                    .display()
                    .to_string(),
                bytes: *size,
                sha256: String::new(),
                format: vc.input.format,
                priority: vc.priority,
                discovered_at: String::new(),
                source: None,
                source_modified: None,
                replaced_sha256: None,
                modified: None,
            })
        })
        .collect();
    if rows.is_empty() {
        println!("plan       nothing to plan");
        return Ok(());
    }
    let tmp = std::env::temp_dir().join(format!(
        "batchwin-dry-run-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&tmp)
        .map_err(|e| Failure::data(anyhow!("cannot create `{}`: {e}", tmp.display())))?;
    let m = tmp.join("manifest.jsonl");
    let result = crate::plan::manifest::write(&m, &rows)
        .map_err(Failure::data)
        .and_then(|()| {
            let slices = match a.executor {
                Executor::Local => a
                    .workers
                    .map(|n| n as usize)
                    .or(w.config.workers)
                    .unwrap_or(1)
                    .to_string(),
                Executor::Slurm => "auto".to_string(),
            };
            let mut plan = vec![
                OsString::from("plan"),
                "--config".into(),
                p(&steps.config),
                "--manifest".into(),
                p(&m),
            ];
            plan.extend(os(&[
                "--window", &w.span, "--date", &w.date, "--slices", &slices,
            ]));
            plan.extend(os(&["--split-bytes", &u64::MAX.to_string(), "--out"]));
            plan.push(p(&tmp.join("plan.json")));
            println!("plan       the calculation for these files:");
            steps.exec(steps.command(&plan))
        });
    let _ = std::fs::remove_dir_all(&tmp);
    result.map(|_| ())
}

/// For `--dry-run`: what fetch would find at the source now.
fn preview_fetch(
    config: &crate::config::Config,
    w: &WindowDay,
) -> Result<Vec<(String, String, u64)>, Failure> {
    let ts = crate::transfer::TransferSettings::resolve(config, &Default::default())?;
    let rt = super::transfer::runtime()?;
    let found = rt.block_on(async {
        let store = crate::storage::Store::open(&w.config.source, &ts.store).await?;
        let day =
            ts.inbound
                .for_date(&w.date)
                .map_err(|m| crate::storage::StorageError::BadUrl {
                    url: w.config.source.clone(),
                    reason: m,
                })?;
        let list = store.list(&day.prefix).await?;
        Ok::<_, crate::storage::StorageError>(
            list.into_iter()
                .filter_map(|e| {
                    day.split(&e.name)
                        .map(|(v, f)| (v.to_string(), f.to_string(), e.size))
                })
                .filter(|(_, f, _)| !crate::transfer::is_partial_name(f))
                .collect::<Vec<_>>(),
        )
    });
    let found = found.map_err(|e| {
        if e.is_transient() {
            Failure::retryable(e)
        } else {
            Failure::data(e)
        }
    })?;
    let mut per: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for (v, _, size) in &found {
        let e = per.entry(v.clone()).or_default();
        e.0 += 1;
        e.1 += size;
    }
    println!(
        "would fetch {} files, {:.1} MB, from `{}`",
        found.len(),
        found.iter().map(|x| x.2).sum::<u64>() as f64 / 1e6,
        crate::storage::redact_url(&w.config.source)
    );
    for (v, (n, b)) in per {
        let known = if config.vendor(&v).is_some() {
            ""
        } else {
            " (not a configured vendor: left alone)"
        };
        println!("           {v}: {n} files, {:.1} MB{known}", b as f64 / 1e6);
    }
    Ok(found)
}
