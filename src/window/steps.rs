//! The steps of a window as child processes: each is a `batchwin` subcommand whose command
//! line is printed (so any step can be run again by hand), started with the global options
//! passed on, a shorter grace period, and SIGTERM when `run` itself dies; a SIGTERM or SIGINT
//! that `run` receives is passed on to it. Child exit codes are read back as exit statuses and
//! the worst one is the run's. Steps may run beside the others ([`Beside`]: the fetch of a
//! day's first run, the publish that follows the slices), looked after in every wait.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use crate::exit::{ExitStatus, Failure};
use crate::printer::{GlobalArgs, LogFormat};

/// How the steps are started.
pub(crate) struct Steps<'a> {
    pub exe: PathBuf,
    pub config: PathBuf,
    pub g: &'a GlobalArgs,
    pub cancel: crate::cancel::Cancel,
    /// How long steps may take to stop after a signal.
    pub grace: Duration,
    pub dry_run: bool,
    /// The W3C trace context given to the steps started next (`TRACEPARENT`): the context of
    /// the step's span, when traces are exported.
    pub traceparent: std::cell::RefCell<Option<String>>,
    /// Where slices record the notifications they send: the run folder's
    /// `notifications.jsonl`.
    pub notify_log: std::cell::RefCell<Option<PathBuf>>,
    /// The steps running beside the others ([`Steps::start_beside`]).
    pub beside: std::cell::RefCell<Vec<Beside>>,
    /// The exit codes of the steps that ran beside, once they ended, until taken
    /// ([`Steps::wait_beside`]).
    pub beside_codes: std::cell::RefCell<Vec<(&'static str, i32)>>,
}

/// A step running beside the others: `fetch` while the day's first files are planned and
/// processed, `publish` while the slices record their units. Every wait of `run` tends it
/// ([`Steps::tend`]): passes a signal on, kills it after the grace period. Once it has ended
/// its marker, if it has one, is written (when it is dropped), so that the slices waiting for
/// the fetch's files learn that it ended even when it was killed; one still running when `run`
/// gives up on an error is stopped first, as a signal stops it.
pub(crate) struct Beside {
    step: &'static str,
    child: std::process::Child,
    started: Instant,
    forwarded: bool,
    grace: Duration,
    /// Written once it has ended, whatever way (the fetch's `MANIFEST.ended`).
    marker: Option<PathBuf>,
    /// Its span, ended with its exit code when it ends.
    span: Option<crate::telemetry::TraceSpan>,
}

impl Beside {
    /// Stops it as a signal would, if it still runs (SIGTERM, then SIGKILL after the grace
    /// period); its exit code.
    fn stop(&mut self) -> i32 {
        if let Ok(None) = self.child.try_wait() {
            forward(self.child.id(), libc::SIGTERM);
            let until = Instant::now() + self.grace;
            while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        self.child.wait().map_or(1, exit_code)
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        self.stop();
        if let Some(marker) = &self.marker
            && let Err(e) = crate::plan::arrivals::mark_ended_at(marker)
        {
            tracing::error!("cannot write `{}`: {e}", marker.display());
        }
    }
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
    pub fn command(&self, args: &[OsString]) -> Command {
        let mut c = Command::new(&self.exe);
        if self.g.log_format == LogFormat::Json {
            c.args(["--log-format", "json"]);
        }
        if self.g.quiet {
            c.arg("-q");
        }
        for _ in 0..self.g.verbose {
            c.arg("-v");
        }
        c.args(args);
        // Only `plan` reads the job token: a slice applies the plan's profile, and a token in
        // its environment would only be warned about.
        if args.first().is_some_and(|a| a != "plan") {
            c.env_remove(crate::env::ENV_TOKEN);
        }
        c.envs(self.trace_env());
        if let Some(log) = self.notify_log.borrow().as_ref() {
            c.env(crate::env::ENV_NOTIFY_LOG, log);
        }
        let child_grace = crate::cancel::Cancel::child_grace(self.grace);
        c.env(
            crate::env::ENV_GRACE_PERIOD,
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

    /// `TRACEPARENT` for a child started now, when a step's span has set one.
    pub fn trace_env(&self) -> Vec<(&'static str, String)> {
        self.traceparent
            .borrow()
            .iter()
            .map(|t| (crate::env::ENV_TRACEPARENT, t.clone()))
            .collect()
    }

    /// Prints a step's command line (and where its output goes, if not here).
    pub fn show(&self, step: &str, args: &[OsString], to: Option<&Path>) {
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
    pub fn run(&self, step: &str, args: Vec<OsString>) -> Result<i32, Failure> {
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

    /// Starts a step that runs beside the next ones; its end writes `marker` (if any) and ends
    /// `span` (see [`Beside`]).
    pub fn start_beside(
        &self,
        step: &'static str,
        args: Vec<OsString>,
        marker: Option<PathBuf>,
        span: crate::telemetry::TraceSpan,
    ) -> Result<(), Failure> {
        self.show(step, &args, None);
        let child = self
            .command(&args)
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.exe.display()))
            .map_err(Failure::data)?;
        self.beside.borrow_mut().push(Beside {
            step,
            child,
            started: Instant::now(),
            forwarded: false,
            grace: self.grace,
            marker,
            span: Some(span),
        });
        Ok(())
    }

    /// Looks after the steps running beside: when one has ended, says so, writes its marker
    /// (dropping it) and keeps its exit code for [`Steps::wait_beside`].
    pub fn tend(&self) {
        let mut besides = self.beside.borrow_mut();
        let mut i = 0;
        while i < besides.len() {
            match self.exit_of(&mut besides[i]) {
                Some(code) => {
                    let mut b = besides.remove(i);
                    println!(
                        "took       {} {:.1} s, exit code {code}",
                        b.step,
                        b.started.elapsed().as_secs_f64()
                    );
                    if let Some(span) = b.span.take() {
                        ended(span, code);
                    }
                    self.beside_codes.borrow_mut().push((b.step, code));
                }
                None => i += 1,
            }
        }
    }

    /// The exit code of a step running beside once it has ended (killed when it outlived the
    /// grace period after a signal, which it is passed on); `None` while it runs.
    fn exit_of(&self, b: &mut Beside) -> Option<i32> {
        match b.child.try_wait() {
            Ok(Some(st)) => Some(exit_code(st)),
            Ok(None) => {
                if let (Some(sig), false) = (self.cancel.signal(), b.forwarded) {
                    b.forwarded = true;
                    forward(b.child.id(), sig);
                }
                if !self.cancel.overdue(self.grace) {
                    return None;
                }
                let _ = b.child.kill();
                let _ = b.child.wait();
                println!(
                    "stopped    {} did not stop within the grace period: killed",
                    b.step
                );
                Some(128 + self.cancel.signal().unwrap_or(libc::SIGTERM))
            }
            Err(e) => {
                println!("stopped    cannot wait for {}: {e}", b.step);
                let _ = b.child.kill();
                let _ = b.child.wait();
                Some(1)
            }
        }
    }

    /// Waits for the step `step` running beside to end (tending every step beside); its exit
    /// code, or `None` when none was started or its code was taken already.
    pub fn wait_beside(&self, step: &str) -> Option<i32> {
        self.wait_beside_until(step, || false);
        self.ended_beside(step)
    }

    /// The exit code of the step `step` running beside if it has ended (taken), after tending
    /// every step beside; `None` while it runs.
    pub fn ended_beside(&self, step: &str) -> Option<i32> {
        self.tend();
        let mut codes = self.beside_codes.borrow_mut();
        let i = codes.iter().position(|(s, _)| *s == step)?;
        Some(codes.remove(i).1)
    }

    /// Stops the steps running beside, if any (see [`Beside`]), and ends their spans: for steps
    /// that end on an error while they run.
    pub fn stop_beside(&self) {
        let besides = std::mem::take(&mut *self.beside.borrow_mut());
        for mut b in besides {
            let code = b.stop();
            if let Some(span) = b.span.take() {
                ended(span, code);
            }
        }
    }

    /// Waits until `ready` says so or the step `step` running beside has ended.
    pub fn wait_beside_until(&self, step: &str, ready: impl Fn() -> bool) {
        while self.beside.borrow().iter().any(|b| b.step == step) && !ready() {
            self.tend();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a command to its end whatever `--dry-run` says, passing a SIGTERM or SIGINT that
    /// `run` receives on to it once; its exit code.
    pub fn exec(&self, mut c: Command) -> Result<i32, Failure> {
        let mut child = c
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.exe.display()))
            .map_err(Failure::data)?;
        let mut forwarded = false;
        loop {
            self.tend();
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
            // A step's end is noticed within this: the steps of a small day take a few
            // hundred milliseconds each.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Ends a step's span with its exit code.
pub(crate) fn ended(span: crate::telemetry::TraceSpan, code: i32) {
    span.set(vec![crate::telemetry::attr(
        "batchwin.exit_code",
        i64::from(code),
    )]);
    if code != 0 {
        span.error(&format!("exit code {code}"));
    }
}

pub(crate) fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code()
        .or_else(|| st.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

pub(crate) fn forward(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a child's pid and a plain signal number has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The exit status that a child's exit code stands for.
pub(crate) fn status_of(code: i32) -> ExitStatus {
    match code {
        0 => ExitStatus::Success,
        2 => ExitStatus::Usage,
        3 => ExitStatus::Retryable,
        c if c > 128 => ExitStatus::Interrupted(c - 128),
        _ => ExitStatus::DataFailure,
    }
}

/// The worse of two outcomes: interrupted, then usage, then retryable, then data failures.
pub(crate) fn worse(a: ExitStatus, b: ExitStatus) -> ExitStatus {
    let rank = |s: ExitStatus| match s {
        ExitStatus::Success => 0,
        ExitStatus::DataFailure => 1,
        ExitStatus::Retryable => 2,
        ExitStatus::Usage => 3,
        ExitStatus::Interrupted(_) => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

pub(crate) fn p(path: &Path) -> OsString {
    path.as_os_str().to_os_string()
}

/// Every subcommand a window runs, with what it is given: the one place that spells their
/// flags for `run`. `tests/cli/run.rs` parses each command line `run --dry-run` prints with the
/// subcommand's own parser, so a flag renamed there fails the tests, not a night's run.
#[derive(Debug, Clone)]
pub enum Step<'a> {
    /// `fetch`: the day's files from the window's source to staging, with the manifest.
    Fetch {
        config: &'a Path,
        source: &'a str,
        date: &'a str,
        staging: &'a Path,
        manifest: &'a Path,
        /// Where to write the rows to be staged before copying (`--listing`).
        listing: Option<&'a Path>,
    },
    /// `plan`: the manifest's files into slices for the window.
    Plan {
        config: &'a Path,
        manifest: &'a Path,
        /// `HH:MM-HH:MM`.
        window: &'a str,
        date: &'a str,
        out: &'a Path,
        /// A number of slices, or `auto`.
        slices: String,
        /// Files are never split above this many bytes (`--dry-run` cannot look inside them).
        split_bytes: Option<u64>,
        /// Slurm job files for the slices, and what their workers are given.
        slurm: Option<SlurmEmit<'a>>,
        /// `--max-slices` and `--utilization` of `plan`, when `run` was given them.
        max_slices: Option<u64>,
        utilization: Option<f64>,
        /// The job token's file (`run --token`): `plan` verifies it and records the profile.
        token: Option<&'a Path>,
        /// The manifest a fetch still appends to, when `manifest` is its listing.
        fetching: Option<&'a Path>,
    },
    /// `process`: one slice of the plan.
    Process {
        config: &'a Path,
        plan: &'a Path,
        slice: usize,
        out: &'a Path,
        deadline: Option<chrono::DateTime<chrono::Utc>>,
        /// Local scratch for a slice over a run location URL (`--scratch`).
        scratch: Option<&'a Path>,
        /// The manifest a fetch still appends to, when the plan was made from its listing.
        fetching: Option<&'a Path>,
        /// Rows to the ledger's journal, for a publish that follows them (`--journal`).
        journal: bool,
    },
    /// `publish`: the outputs the slices' ledgers record, to the window's target.
    Publish {
        config: &'a Path,
        ledgers: &'a Path,
        target: &'a str,
        date: &'a str,
        /// The deliveries' ledger; none: beside the ledgers (a run location's `ledgers/`).
        ledger: Option<&'a Path>,
        /// Deliver each output once a slice's journal records it, until this file exists
        /// (`--follow`).
        follow: Option<&'a Path>,
    },
    /// `report`: the run summed up from the slices' ledgers.
    Report {
        ledgers: &'a Path,
        config: &'a Path,
        plan: Option<&'a Path>,
        window_start: String,
        /// Where the report also writes its HTML page (`--html`) and, for the notifications,
        /// its JSON (`--json`), beside the table it prints.
        html: Option<&'a Path>,
        json: Option<&'a Path>,
        /// The merged ledger (`--out`); none: beside the ledgers folder.
        out: Option<&'a Path>,
    },
}

/// What `plan --emit slurm` writes its job files with.
#[derive(Debug, Clone)]
pub struct SlurmEmit<'a> {
    pub emit_dir: PathBuf,
    pub worker_out: &'a Path,
    pub worker_batchwin: &'a Path,
    pub worker_plan: &'a Path,
    pub worker_config: &'a Path,
}

impl Step<'_> {
    /// The step's command line, after `batchwin`.
    pub fn args(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = Vec::new();
        let mut flag = |name: &str, value: OsString| {
            v.push(OsString::from(name));
            v.push(value);
        };
        match self {
            Step::Fetch {
                config,
                source,
                date,
                staging,
                manifest,
                listing,
            } => {
                flag("--config", p(config));
                flag("--source", OsString::from(*source));
                flag("--date", OsString::from(*date));
                flag("--staging", p(staging));
                flag("--manifest", p(manifest));
                if let Some(l) = listing {
                    flag("--listing", p(l));
                }
                v.insert(0, "fetch".into());
            }
            Step::Plan {
                config,
                manifest,
                window,
                date,
                out,
                slices,
                split_bytes,
                slurm,
                max_slices,
                utilization,
                token,
                fetching,
            } => {
                flag("--config", p(config));
                flag("--manifest", p(manifest));
                if let Some(m) = fetching {
                    flag("--fetching", p(m));
                }
                flag("--window", OsString::from(*window));
                flag("--date", OsString::from(*date));
                flag("--slices", OsString::from(slices));
                if let Some(b) = split_bytes {
                    flag("--split-bytes", OsString::from(b.to_string()));
                }
                if let Some(n) = max_slices {
                    flag("--max-slices", OsString::from(n.to_string()));
                }
                if let Some(u) = utilization {
                    flag("--utilization", OsString::from(u.to_string()));
                }
                flag("--out", p(out));
                if let Some(t) = token {
                    flag("--token", p(t));
                }
                if let Some(s) = slurm {
                    flag("--emit", "slurm".into());
                    flag("--emit-dir", p(&s.emit_dir));
                    flag("--worker-out", p(s.worker_out));
                    flag("--worker-batchwin", p(s.worker_batchwin));
                    flag("--worker-plan", p(s.worker_plan));
                    flag("--worker-config", p(s.worker_config));
                }
                v.insert(0, "plan".into());
            }
            Step::Process {
                config,
                plan,
                slice,
                out,
                deadline,
                scratch,
                fetching,
                journal,
            } => {
                flag("--config", p(config));
                flag("--plan", p(plan));
                flag("--slice", OsString::from(slice.to_string()));
                flag("--out", p(out));
                if let Some(m) = fetching {
                    flag("--fetching", p(m));
                }
                if let Some(s) = scratch {
                    flag("--scratch", p(s));
                }
                if let Some(d) = deadline {
                    flag(
                        "--deadline",
                        d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into(),
                    );
                }
                if *journal {
                    v.push("--journal".into());
                }
                v.insert(0, "process".into());
            }
            Step::Publish {
                config,
                ledgers,
                target,
                date,
                ledger,
                follow,
            } => {
                flag("--config", p(config));
                flag("--ledgers", p(ledgers));
                flag("--target", OsString::from(*target));
                flag("--date", OsString::from(*date));
                if let Some(l) = ledger {
                    flag("--ledger", p(l));
                }
                if let Some(f) = follow {
                    flag("--follow", p(f));
                }
                v.insert(0, "publish".into());
            }
            Step::Report {
                ledgers,
                config,
                plan,
                window_start,
                html,
                json,
                out,
            } => {
                flag("--ledgers", p(ledgers));
                if let Some(o) = out {
                    flag("--out", p(o));
                }
                flag("--config", p(config));
                if let Some(plan) = plan {
                    flag("--plan", p(plan));
                }
                flag("--window-start", OsString::from(window_start));
                if let Some(h) = html {
                    flag("--html", p(h));
                }
                if let Some(j) = json {
                    flag("--json", p(j));
                }
                v.insert(0, "report".into());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(step: &Step<'_>) -> Command {
        let mut words = vec![OsString::from("batchwin")];
        words.extend(step.args());
        match Cli::try_parse_from(&words) {
            Ok(cli) => cli.command,
            Err(e) => panic!("{words:?} does not parse: {e}"),
        }
    }

    #[test]
    fn every_step_parses_with_its_commands_parser() {
        let (config, staging, manifest) = (
            Path::new("/c/batchwin.toml"),
            Path::new("/r/staging"),
            Path::new("/r/manifest.jsonl"),
        );
        let fetch = Step::Fetch {
            config,
            source: "sftp://vendor@host/drop",
            date: "2026-12-03",
            staging,
            manifest,
            listing: Some(Path::new("/r/listing.jsonl")),
        };
        let Command::Fetch(a) = parse(&fetch) else {
            panic!("not fetch")
        };
        assert_eq!(a.listing.as_deref(), Some(Path::new("/r/listing.jsonl")));
        assert_eq!(a.config, config);
        assert_eq!(a.source, "sftp://vendor@host/drop");
        assert_eq!(a.date.as_deref(), Some("2026-12-03"));
        assert_eq!(
            (a.staging.as_path(), a.manifest.as_path()),
            (staging, manifest)
        );

        let (out, exe, plan_path) = (
            Path::new("/r/out"),
            Path::new("/bin/batchwin"),
            Path::new("/r/plan.json"),
        );
        for slurm in [false, true] {
            let plan = Step::Plan {
                config,
                manifest,
                window: "06:00-10:00",
                date: "2026-12-03",
                out: plan_path,
                slices: if slurm { "auto".into() } else { "3".into() },
                split_bytes: (!slurm).then_some(u64::MAX),
                slurm: slurm.then(|| SlurmEmit {
                    emit_dir: PathBuf::from("/r/emit"),
                    worker_out: out,
                    worker_batchwin: exe,
                    worker_plan: plan_path,
                    worker_config: config,
                }),
                max_slices: None,
                utilization: None,
                token: slurm.then_some(Path::new("/r/token.jwt")),
                fetching: (!slurm).then_some(manifest),
            };
            let Command::Plan(a) = parse(&plan) else {
                panic!("not plan")
            };
            assert_eq!(a.window, "06:00-10:00");
            assert_eq!(a.out, plan_path);
            assert_eq!(a.manifest.as_deref(), Some(manifest));
            assert_eq!(a.slices, if slurm { "auto" } else { "3" });
            assert_eq!(a.split_bytes, (!slurm).then_some(u64::MAX));
            assert_eq!(a.fetching.as_deref(), (!slurm).then_some(manifest));
            assert_eq!(a.emit.len(), usize::from(slurm));
            assert_eq!(
                a.token.as_deref(),
                slurm.then_some(Path::new("/r/token.jwt"))
            );
            if slurm {
                assert_eq!(a.emit_dir, Path::new("/r/emit"));
                assert_eq!(a.worker_out, "/r/out");
                assert_eq!(a.worker_batchwin, "/bin/batchwin");
                assert_eq!(a.worker_plan.as_deref(), Some("/r/plan.json"));
                assert_eq!(a.worker_config.as_deref(), Some("/c/batchwin.toml"));
            }
        }

        let deadline = chrono::DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok();
        let process = Step::Process {
            config,
            plan: plan_path,
            slice: 4,
            out,
            deadline,
            scratch: Some(Path::new("/r/scratch")),
            fetching: None,
            journal: false,
        };
        let Command::Process(a) = parse(&process) else {
            panic!("not process")
        };
        let fetching = Step::Process {
            config,
            plan: plan_path,
            slice: 0,
            out,
            deadline: None,
            scratch: None,
            fetching: Some(manifest),
            journal: true,
        };
        let Command::Process(f) = parse(&fetching) else {
            panic!("not process")
        };
        assert_eq!(f.fetching.as_deref(), Some(manifest));
        assert!(f.journal && !a.journal);
        assert_eq!(a.slice, Some(4));
        assert_eq!(a.plan.as_deref(), Some(plan_path));
        assert_eq!(a.out, out);
        assert_eq!(a.deadline, deadline);
        assert_eq!(a.scratch.as_deref(), Some(Path::new("/r/scratch")));

        let (ledgers, ledger) = (Path::new("/r/out/ledgers"), Path::new("/r/publish.duckdb"));
        let ended = Path::new("/r/slices.ended");
        let publish = Step::Publish {
            config,
            ledgers,
            target: "s3://outbound",
            date: "2026-12-03",
            ledger: Some(ledger),
            follow: Some(ended),
        };
        let Command::Publish(a) = parse(&publish) else {
            panic!("not publish")
        };
        assert_eq!(a.ledgers, ledgers);
        assert_eq!(a.target.as_deref(), Some("s3://outbound"));
        assert_eq!(a.ledger.as_deref(), Some(ledger));
        assert_eq!(a.follow.as_deref(), Some(ended));

        for (html, json) in [
            (None, None),
            (Some(Path::new("/r/report.html")), None),
            (
                Some(Path::new("/r/report.html")),
                Some(Path::new("/r/report.json")),
            ),
        ] {
            let report = Step::Report {
                ledgers,
                config,
                plan: Some(plan_path),
                window_start: "2026-12-03T06:00:00Z".into(),
                html,
                json,
                out: Some(Path::new("/r/report.duckdb")),
            };
            let Command::Report(a) = parse(&report) else {
                panic!("not report")
            };
            assert_eq!(a.ledgers, ledgers);
            assert_eq!(a.config.as_deref(), Some(config));
            assert_eq!(a.plan.as_deref(), Some(plan_path));
            assert_eq!(a.out.as_deref(), Some(Path::new("/r/report.duckdb")));
            assert_eq!(a.window_start.as_deref(), Some("2026-12-03T06:00:00Z"));
            assert_eq!(a.html.as_deref(), html);
            assert_eq!(a.json.as_deref(), json);
            assert_eq!(a.format, crate::commands::report::ReportFormat::Table);
        }
    }

    #[test]
    fn exit_codes_are_read_back_and_the_worst_wins() {
        assert_eq!(status_of(0), ExitStatus::Success);
        assert_eq!(status_of(1), ExitStatus::DataFailure);
        assert_eq!(status_of(2), ExitStatus::Usage);
        assert_eq!(status_of(3), ExitStatus::Retryable);
        assert_eq!(status_of(143), ExitStatus::Interrupted(15));
        let order = [
            ExitStatus::Success,
            ExitStatus::DataFailure,
            ExitStatus::Retryable,
            ExitStatus::Usage,
            ExitStatus::Interrupted(15),
        ];
        for (i, a) in order.iter().enumerate() {
            for (j, b) in order.iter().enumerate() {
                assert_eq!(worse(*a, *b), order[i.max(j)], "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn printed_words_are_quoted_for_a_shell() {
        assert_eq!(
            shell_word("/runs/2026-12-03-day/plan.json"),
            "/runs/2026-12-03-day/plan.json"
        );
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
