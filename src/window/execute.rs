//! Running a plan's slices: on this machine as `batchwin process` child processes, a number at
//! once and stage by stage, each with its share of the cores; or on Slurm, submitting the job
//! arrays `plan --emit slurm` wrote and watching them with `squeue` until they end. Both call
//! `watch` as they wait (with `true` when a slice just ended): `run`'s SLA watch.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::ValueEnum;

use crate::exit::{ExitStatus, Failure};

use super::steps::{Step, Steps, exit_code, forward, status_of, worse};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    /// Slices run on this machine, as `batchwin process` child processes.
    Local,
    /// Slices are submitted as Slurm job arrays and waited for.
    Slurm,
}

/// Where the local executor's slices read and write: the plan (`plan`: a local copy, read here
/// for the stages; `worker_plan`: what each slice is given, the same file or its run location
/// URL), the run folder or run location `out`, and local `scratch` for slices over a URL.
pub(crate) struct SliceSites<'a> {
    pub plan: &'a Path,
    pub worker_plan: &'a Path,
    pub out: &'a Path,
    pub scratch: Option<&'a Path>,
    /// The manifest a fetch running beside still appends to, when the plan was made from its
    /// listing (`process --fetching`).
    pub fetching: Option<&'a Path>,
    /// Whether the slices record their units in their ledgers' journals, for the publish
    /// running beside them (`process --journal`).
    pub journal: bool,
}

pub(crate) fn execute_local(
    steps: &Steps<'_>,
    sites: &SliceSites<'_>,
    workers: usize,
    cores: usize,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
    watch: &mut dyn FnMut(bool),
) -> Result<ExitStatus, Failure> {
    // The stage of each slice: a stage starts when every slice of the stages before it ended.
    let stages: Vec<usize> = if steps.dry_run {
        vec![0; workers]
    } else {
        crate::plan::Plan::read(sites.plan)
            .map_err(Failure::data)?
            .slices
            .iter()
            .map(|s| s.stage)
            .collect()
    };
    let slices = stages.len();
    let threads = (cores / workers).max(1).to_string();
    let args_of = |k: usize| {
        Step::Process {
            config: &steps.config,
            plan: sites.worker_plan,
            slice: k,
            out: sites.out,
            deadline,
            scratch: sites.scratch,
            fetching: sites.fetching,
            journal: sites.journal,
        }
        .args()
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
            // A stage's slices read the ledgers of the stages before it (vendors that run
            // after others): journals are folded into them once, here, not by each slice.
            if sites.journal && next > 0 && stages[next] > stages[next - 1] {
                crate::ledger::find_ledgers(&sites.out.join("ledgers"), None)
                    .with_context(|| {
                        format!("cannot read the ledgers of stage {}", stages[next - 1])
                    })
                    .map_err(Failure::data)?;
            }
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
        let mut one_ended = false;
        while i < running.len() {
            match running[i].1.try_wait() {
                Ok(Some(st)) => {
                    let (k, _) = running.swap_remove(i);
                    let code = exit_code(st);
                    one_ended = true;
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
        watch(one_ended);
        steps.tend();
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(sig) = steps.cancel.signal() {
        status = worse(status, ExitStatus::Interrupted(sig));
    }
    Ok(status)
}

pub(crate) fn execute_slurm(
    steps: &Steps<'_>,
    dir: &Path,
    watch: &mut dyn FnMut(bool),
) -> Result<ExitStatus, Failure> {
    let submit = dir.join("emit/slurm/submit.sh");
    println!("step       submit: bash {}", submit.display());
    if steps.dry_run {
        return Ok(ExitStatus::Success);
    }
    // sbatch passes the environment on to the jobs: the slices take the plan's masking profile
    // and must not be handed the job token.
    // sbatch passes TRACEPARENT on too: the slices' spans join the execute step's.
    let out = Command::new("bash")
        .arg(&submit)
        .env_remove(crate::env::ENV_TOKEN)
        .envs(steps.trace_env())
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
        watch(false);
        std::thread::sleep(Duration::from_secs(1));
    }
}
