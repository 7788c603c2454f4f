//! What each engine needs to run a plan: Slurm batch scripts, AWS Batch SubmitJob requests,
//! Azure Batch job and task collections, Kubernetes Indexed Jobs; each with a `submit.sh`.
//!
//! Every engine runs the same command in each task, `batchwin process --plan PLAN`, and the
//! task finds its slice from the engine's index variable plus `BATCHWIN_SLICE_OFFSET` (arrays
//! that hold a later stage, or the second part of a stage larger than the engine's array
//! limit, start at an offset). Azure Batch tasks carry `--slice K` on their command line.
//!
//! Two ways of running ([`Mode`]): when the plan or the run folder as workers see them are URLs,
//! workers share nothing but the object store (`process --plan URL --out URL --scratch DIR`,
//! the config read from the run location, credentials from the environment or the engine's
//! identity): Fargate on AWS Batch, no mount on Azure Batch, no PersistentVolumeClaim on
//! Kubernetes, node-local scratch on Slurm. Otherwise every worker mounts one shared
//! filesystem at the same path (EC2 with EFS on AWS Batch).
//!
//! Limits honoured: Slurm's MaxArraySize (indexes 0..MaxArraySize-1), AWS Batch arrays of 2 to
//! 10,000 children (a single slice is a plain job), at most 20 `dependsOn` entries, Azure Batch
//! collections of at most 100 tasks and 1 MB.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::config::Priority;
use crate::plan::Plan;

/// Engines `plan --emit` can write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Slurm,
    AwsBatch,
    AzureBatch,
    K8s,
}

/// How tasks find the plan and batchwin, and engine settings.
#[derive(Debug, Clone)]
pub struct EmitOptions {
    /// The plan as workers see it (a shared path or URL).
    pub plan: String,
    /// The vendor configuration as workers see it.
    pub config: String,
    /// Where slices write outputs and ledgers, as workers see it.
    pub out: String,
    /// The batchwin command on workers.
    pub batchwin: String,
    /// Most array tasks running at once.
    pub max_concurrent: usize,
    /// Slurm's MaxArraySize.
    pub slurm_max_array_size: usize,
    /// Container image (AWS Batch, Kubernetes).
    pub image: String,
    /// Attempts for retryable failures (exit code 3).
    pub retries: u32,
    /// Per-task time limit, seconds.
    pub timeout_seconds: u64,
    /// The variable the masking key is read from (`[masking] key_env`, default
    /// `BATCHWIN_MASK_KEY`): engines that inject secrets put the key there. `None` when no
    /// worker needs it ([`crate::config::Config::hashes`]): then no secret is asked for, and
    /// the files run without one.
    pub mask_key_env: Option<String>,
    /// One worker's size, as engines are asked for it (`[pricing] worker_vcpus` and
    /// `worker_memory_gib`).
    pub worker: WorkerSize,
}

/// The vCPUs and memory one worker asks its engine for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerSize {
    pub vcpus: f64,
    pub memory_mib: u64,
}

/// How workers reach the plan, the config and the run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One filesystem mounted at the same path on the planner and on every worker.
    SharedFilesystem,
    /// The plan and the run folder are URLs (`s3://`, `az://`, `gs://`, `sftp://`): a worker
    /// starts in an empty folder with local scratch and credentials in its environment.
    RunLocation,
}

impl EmitOptions {
    /// [`Mode::RunLocation`] when the plan or the run folder as workers see them are URLs.
    pub fn mode(&self) -> Mode {
        if self.plan.contains("://") || self.out.contains("://") {
            Mode::RunLocation
        } else {
            Mode::SharedFilesystem
        }
    }

    /// `process` and its flags but the slice: with the config on the shared filesystem, or
    /// (run location) with local `scratch`, the config being read from beside the plan.
    fn process_args(&self, scratch: &str) -> Vec<String> {
        match self.mode() {
            Mode::SharedFilesystem => vec![
                "process".into(),
                "--config".into(),
                self.config.clone(),
                "--plan".into(),
                self.plan.clone(),
                "--out".into(),
                self.out.clone(),
            ],
            Mode::RunLocation => vec![
                "process".into(),
                "--plan".into(),
                self.plan.clone(),
                "--out".into(),
                self.out.clone(),
                "--scratch".into(),
                scratch.into(),
            ],
        }
    }
}

impl EmitOptions {
    /// The report every engine runs after the last stage: the slices' ledgers, with the plan so
    /// that a slice which never wrote its ledger is reported missing.
    fn report_args(&self) -> Vec<String> {
        vec![
            "report".into(),
            "--ledgers".into(),
            format!("{}/ledgers", self.out),
            "--plan".into(),
            self.plan.clone(),
        ]
    }
}

/// Fargate's valid vCPU and memory pairs (MiB), from the AWS Batch `resourceRequirements`
/// reference, as `resourceRequirements` values; an error saying which sizes are when `w` is not
/// one.
pub fn fargate_size(w: WorkerSize) -> Result<(String, String), String> {
    // In quarters of a vCPU, so that the sizes compare exactly.
    let quarters = w.vcpus * 4.0;
    let (lo, hi, step): (u64, u64, u64) = match quarters as u64 {
        q if q as f64 != quarters => (0, 0, 1),
        1 => (512, 2048, 512),
        2 => (1024, 4096, 1024),
        4 => (2048, 8192, 1024),
        8 => (4096, 16384, 1024),
        16 => (8192, 30720, 1024),
        32 => (16384, 61440, 4096),
        64 => (32768, 122880, 8192),
        _ => (0, 0, 1),
    };
    if hi == 0 {
        return Err(format!(
            "Fargate runs 0.25, 0.5, 1, 2, 4, 8 or 16 vCPUs, not {}",
            w.vcpus
        ));
    }
    let m = w.memory_mib;
    // 0.25 vCPU takes 512, 1024 or 2048 MiB: multiples of 512 up to 2048 but for 1536.
    let ok = (lo..=hi).contains(&m) && m.is_multiple_of(step) && !(w.vcpus == 0.25 && m == 1536);
    if !ok {
        return Err(format!(
            "Fargate gives {} vCPU {lo} to {hi} MiB of memory in steps of {step}, not {m} MiB",
            w.vcpus
        ));
    }
    Ok((w.vcpus.to_string(), m.to_string()))
}

/// Local scratch a run-location worker needs, GiB: the largest unit three times over (the one
/// being processed, the next one downloading, and an output as large as its input), rounded up.
fn scratch_gib(plan: &Plan) -> u64 {
    let largest = plan
        .slices
        .iter()
        .flat_map(|s| s.units.iter().map(|u| u.bytes))
        .max()
        .unwrap_or(0);
    (largest.saturating_mul(3)).div_ceil(1 << 30).max(1)
}

/// One array (or plain job) to submit: slices `offset .. offset + size` of one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayJob {
    pub stage: usize,
    pub offset: usize,
    pub size: usize,
    /// Highest priority among its units (picks the AWS Batch queue).
    pub priority: Priority,
}

/// Cuts each stage into arrays of at most `max` tasks.
pub fn arrays(plan: &Plan, max: usize) -> Vec<ArrayJob> {
    let mut out = Vec::new();
    for st in &plan.stages {
        let mut offset = st.first_slice;
        let end = st.first_slice + st.slices;
        while offset < end {
            let size = (end - offset).min(max.max(1));
            let priority = plan.slices[offset..offset + size]
                .iter()
                .flat_map(|s| s.units.iter().map(|u| u.priority))
                .min()
                .unwrap_or(Priority::Low);
            out.push(ArrayJob {
                stage: st.index,
                offset,
                size,
                priority,
            });
            offset += size;
        }
    }
    out
}

/// Job files hold paths and the plan's layout, no vendor data, but go the way of every file
/// batchwin writes: no world access (a script is `0750`, owner and group may run it).
fn write(path: &Path, text: &str, executable: bool) -> anyhow::Result<()> {
    crate::files::write(path, text)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o750))?;
    }
    Ok(())
}

fn json_text(v: &Value) -> String {
    // Serializing a Value cannot fail.
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Writes the files for `engine` into `dir/ENGINE/`; returns the files written.
pub fn emit(
    plan: &Plan,
    engine: Engine,
    dir: &Path,
    o: &EmitOptions,
) -> anyhow::Result<Vec<PathBuf>> {
    let sub = dir.join(match engine {
        Engine::Slurm => "slurm",
        Engine::AwsBatch => "aws-batch",
        Engine::AzureBatch => "azure-batch",
        Engine::K8s => "k8s",
    });
    std::fs::create_dir_all(&sub).with_context(|| format!("cannot create `{}`", sub.display()))?;
    let files = match engine {
        Engine::Slurm => slurm(plan, &sub, o),
        Engine::AwsBatch => aws_batch(plan, &sub, o),
        Engine::AzureBatch => azure_batch(plan, &sub, o),
        Engine::K8s => k8s(plan, &sub, o),
    }?;
    if let Some(tp) = &plan.traceparent {
        add_traceparent(&files, tp)?;
    }
    Ok(files)
}

/// Gives every task of the written files the plan's W3C trace context (`TRACEPARENT`), so the
/// slices' spans join the trace `plan` ran in. Done on the files as written, whatever builds
/// them: a Slurm script exports it (unless the submitting environment has one: `sbatch` passes
/// that on, as `run --executor slurm` does), and every JSON task definition gets it in its
/// environment (AWS Batch `containerOverrides.environment`, Azure Batch tasks'
/// `environmentSettings`, Kubernetes containers' `env`).
fn add_traceparent(files: &[PathBuf], tp: &str) -> anyhow::Result<()> {
    const VAR: &str = crate::env::ENV_TRACEPARENT;
    fn walk(v: &mut Value, tp: &str) {
        let entry = |name: &str| json!({name: VAR, "value": tp});
        let push = |list: &mut Value, name: &str| {
            if !list.is_array() {
                *list = json!([]);
            }
            if let Some(a) = list.as_array_mut()
                && !a.iter().any(|e| e[name] == VAR)
            {
                a.push(entry(name));
            }
        };
        match v {
            Value::Object(o) => {
                if let Some(c) = o.get_mut("containerOverrides") {
                    push(&mut c["environment"], "name");
                }
                if o.contains_key("commandLine") {
                    push(
                        o.entry("environmentSettings").or_insert(Value::Null),
                        "name",
                    );
                }
                if let Some(Value::Array(cs)) = o.get_mut("containers") {
                    for c in cs {
                        push(&mut c["env"], "name");
                    }
                }
                o.values_mut().for_each(|x| walk(x, tp));
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, tp)),
            _ => {}
        }
    }
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read `{}`", f.display()))?;
        let new = match f.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                let mut v: Value = serde_json::from_str(&text)
                    .with_context(|| format!("`{}` is not JSON", f.display()))?;
                walk(&mut v, tp);
                json_text(&v)
            }
            // After the `#SBATCH` header, which must come before any command.
            Some("sbatch") => {
                let mut lines: Vec<&str> = text.lines().collect();
                let at = lines
                    .iter()
                    .skip(1)
                    .position(|l| !l.starts_with('#'))
                    .map_or(lines.len(), |i| i + 1);
                let export = format!("export {VAR}=\"${{{VAR}:-{tp}}}\"");
                lines.insert(at, &export);
                lines.join("\n") + "\n"
            }
            _ => continue,
        };
        write(f, &new, false)?;
    }
    Ok(())
}

fn job_name(plan: &Plan, a: &ArrayJob) -> String {
    format!("batchwin-{}-s{}-{}", plan.date, a.stage, a.offset)
}

fn slurm(plan: &Plan, dir: &Path, o: &EmitOptions) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let jobs = arrays(plan, o.slurm_max_array_size.max(1));
    let url = o.mode() == Mode::RunLocation;
    // Run location: scratch on the node's own disk (the job's private temporary folder when
    // the cluster gives one), and logs beside the scripts, as the run folder is not a path.
    let mut process = sh_quote(&o.batchwin);
    for a in o.process_args("SCRATCH") {
        process.push(' ');
        process.push_str(&if a == "SCRATCH" {
            "\"${SLURM_TMPDIR:-${TMPDIR:-/tmp}}\"".to_string()
        } else {
            sh_quote(&a)
        });
    }
    let logs = if url {
        "logs".to_string()
    } else {
        format!("{}/logs", o.out)
    };
    // Whole minutes, at least one: `0:00:00` would mean no limit to Slurm.
    let minutes = o.timeout_seconds.div_ceil(60).max(1);
    let time = format!("{}:{:02}:00", minutes / 60, minutes % 60);
    for a in &jobs {
        let name = job_name(plan, a);
        let script = format!(
            "#!/usr/bin/env bash\n\
             #SBATCH --job-name={name}\n\
             #SBATCH --array=0-{last}%{conc}\n\
             #SBATCH --requeue\n\
             #SBATCH --time={time}\n\
             #SBATCH --output={logs}/%x-%A_%a.log\n\
             #SBATCH --open-mode=append\n\
             # Stage {stage}, slices {offset}..{end} of the plan; the task's slice is\n\
             # SLURM_ARRAY_TASK_ID + BATCHWIN_SLICE_OFFSET.\n\
             export BATCHWIN_SLICE_OFFSET={offset}\n\
             {process}\n\
             rc=$?\n\
             # Exit code 3 is a retryable I/O failure: put the task back in the queue.\n\
             if [ \"$rc\" -eq 3 ] && [ \"${{SLURM_RESTART_COUNT:-0}}\" -lt {retries} ]; then\n\
             \x20 scontrol requeue \"${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}\"\n\
             fi\n\
             exit \"$rc\"\n",
            last = a.size - 1,
            conc = o.max_concurrent.max(1),
            stage = a.stage,
            offset = a.offset,
            end = a.offset + a.size - 1,
            retries = o.retries,
        );
        let path = dir.join(format!("stage-{}-{}.sbatch", a.stage, a.offset));
        write(&path, &script, false)?;
        files.push(path);
    }
    let report = format!(
        "#!/usr/bin/env bash\n#SBATCH --job-name=batchwin-{}-report\n#SBATCH --output={logs}/%x-%j.log\nexec {} {}\n",
        plan.date,
        sh_quote(&o.batchwin),
        o.report_args()
            .iter()
            .map(|a| sh_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let report_path = dir.join("report.sbatch");
    write(&report_path, &report, false)?;
    files.push(report_path);

    let mut s = String::from(
        "#!/usr/bin/env bash\n# Submits the plan's arrays in stage order, each stage after the one before it\n# ended (afterany: a slice holds back only the vendors that come after one that did not\n# finish, as their units are recorded blocked), then the report after all of them ended.\n# Prints one `name job-id` line per job.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n",
    );
    let _ = writeln!(s, "mkdir -p {}", sh_quote(&logs));
    let mut prev: Vec<String> = Vec::new();
    let mut all: Vec<String> = Vec::new();
    for st in &plan.stages {
        let mut this = Vec::new();
        for a in jobs.iter().filter(|a| a.stage == st.index) {
            let var = format!("job_{}_{}", a.stage, a.offset);
            let dep = if prev.is_empty() {
                String::new()
            } else {
                format!(
                    " --dependency=afterany:{}",
                    prev.iter()
                        .map(|v| format!("${v}"))
                        .collect::<Vec<_>>()
                        .join(":")
                )
            };
            let _ = writeln!(
                s,
                "{var}=$(sbatch --parsable{dep} stage-{}-{}.sbatch)\n{var}=${{{var}%%;*}}\necho \"{} ${var}\"",
                a.stage,
                a.offset,
                job_name(plan, a)
            );
            this.push(var);
        }
        all.extend(this.iter().cloned());
        prev = this;
    }
    let deps = all
        .iter()
        .map(|v| format!("${v}"))
        .collect::<Vec<_>>()
        .join(":");
    let dep = if deps.is_empty() {
        String::new()
    } else {
        format!(" --dependency=afterany:{deps}")
    };
    let _ = writeln!(
        s,
        "report=$(sbatch --parsable{dep} report.sbatch)\nreport=${{report%%;*}}\necho \"batchwin-{}-report $report\"",
        plan.date
    );
    let submit = dir.join("submit.sh");
    write(&submit, &s, true)?;
    files.push(submit);
    Ok(files)
}

/// AWS Batch limits from its API reference.
pub const AWS_MAX_ARRAY: usize = 10_000;
pub const AWS_MAX_DEPENDS_ON: usize = 20;

/// The retry strategy of the job definition and of every request: a retryable failure (exit
/// code 3) and a Spot reclaim are tried again, the next attempt resuming the slice from its
/// ledger; anything else fails the job at once. A reclaim shows as exit code 143 when the
/// container gets its SIGTERM (Fargate Spot's two minutes' notice, EC2 Spot's) and as a status
/// reason `Host EC2*` when the instance went first. A job stopped by its timeout or by
/// TerminateJob is not retried by AWS Batch whatever its exit code, so 143 here is a reclaim.
fn aws_retry(o: &EmitOptions) -> Value {
    json!({
        "attempts": aws_attempts(o),
        "evaluateOnExit": [
            {"onExitCode": "3", "action": "RETRY"},
            {"onExitCode": "143", "action": "RETRY"},
            {"onReason": "Host EC2*", "action": "RETRY"},
            {"onExitCode": "*", "action": "EXIT"}
        ]
    })
}

fn aws_queue(p: Priority) -> &'static str {
    match p {
        Priority::High => "batchwin-high",
        Priority::Medium => "batchwin-medium",
        Priority::Low => "batchwin-low",
    }
}

/// SubmitJob requests, one per array; `${JOB_...}` placeholders in `dependsOn` are filled by
/// `submit.sh` with the ids of the jobs submitted before.
pub fn aws_requests(plan: &Plan, o: &EmitOptions) -> Vec<(String, Value)> {
    let jobs = arrays(plan, AWS_MAX_ARRAY);
    let mut prev: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for st in &plan.stages {
        let mut this = Vec::new();
        for a in jobs.iter().filter(|a| a.stage == st.index) {
            let var = format!("JOB_{}_{}", a.stage, a.offset);
            let mut req = json!({
                "jobName": job_name(plan, a),
                "jobQueue": aws_queue(a.priority),
                "jobDefinition": "batchwin",
                "retryStrategy": aws_retry(o),
                "timeout": {"attemptDurationSeconds": o.timeout_seconds.max(60)},
                "containerOverrides": {
                    "command": aws_process_args(o),
                    // An array task adds its index to the offset; a plain job (one slice) has
                    // no index and is told its slice outright.
                    "environment": [{
                        "name": if a.size >= 2 { "BATCHWIN_SLICE_OFFSET" } else { "BATCHWIN_SLICE" },
                        "value": a.offset.to_string()
                    }]
                },
                "tags": {"batchwin:date": plan.date, "batchwin:stage": a.stage.to_string()},
                "propagateTags": true
            });
            if a.size >= 2 {
                req["arrayProperties"] = json!({"size": a.size});
            }
            if !prev.is_empty() {
                req["dependsOn"] = aws_depends_on(&prev);
            }
            out.push((var.clone(), req));
            this.push(var);
        }
        prev = this;
    }
    // The report after the last stage: it runs when every slice ended with its units recorded
    // (the slices exit 0 then, see `aws_process_args`), and its exit status is the day's.
    let mut report = json!({
        "jobName": format!("batchwin-{}-report", plan.date),
        "jobQueue": aws_queue(Priority::High),
        "jobDefinition": "batchwin",
        "retryStrategy": aws_retry(o),
        "timeout": {"attemptDurationSeconds": o.timeout_seconds.max(60)},
        "containerOverrides": {"command": o.report_args()},
        "tags": {"batchwin:date": plan.date, "batchwin:stage": "report"},
        "propagateTags": true
    });
    if !prev.is_empty() {
        report["dependsOn"] = aws_depends_on(&prev);
    }
    out.push(("JOB_REPORT".to_string(), report));
    out
}

/// `dependsOn` on the jobs `submit.sh` keeps the ids of in the variables `vars`, filled in by
/// `envsubst` (at most AWS Batch's 20).
fn aws_depends_on(vars: &[String]) -> Value {
    vars.iter()
        .take(AWS_MAX_DEPENDS_ON)
        .map(|v| json!({"jobId": format!("${{{v}}}")}))
        .collect()
}

/// A slice's command on AWS Batch. A job there runs only when every job it depends on
/// succeeded, so a slice whose units all ended and were recorded, some of them failed, exits 0
/// (`--failures-exit 0`): the next stage still runs and holds back only the vendors that come
/// after one that did not finish (recorded as blocked), as on the other engines. So does a
/// slice whose last attempt (`--attempts`, the retry strategy's, against AWS Batch's
/// `AWS_BATCH_JOB_ATTEMPT`) ends on a retryable error: no retry is left, and the report names
/// its units; and so does one that ends on an error no retry mends (exit code 2), on any
/// attempt. AWS Batch stops an attempt at its timeout and fails it whatever its exit code, so a
/// slice stops itself before that (`--stop-after`, [`aws_stop_after`]) and ends the same way.
/// A reclaim's SIGTERM on the last attempt ends it the same way; an instance that goes before
/// the container could stop still fails the stages after it.
fn aws_process_args(o: &EmitOptions) -> Vec<String> {
    let mut args = o.process_args(AWS_SCRATCH);
    args.extend([
        "--failures-exit".to_string(),
        "0".to_string(),
        "--attempts".to_string(),
        aws_attempts(o).to_string(),
        "--stop-after".to_string(),
        format!("{}s", aws_stop_after(o)),
    ]);
    args
}

/// When a slice on AWS Batch stops itself, in seconds: a minute before the attempt's timeout
/// (`timeout.attemptDurationSeconds`), for the units in flight to wind down within the grace
/// period (25 s) and the ledger to be uploaded; half of it for a timeout under two minutes.
pub fn aws_stop_after(o: &EmitOptions) -> u64 {
    let timeout = o.timeout_seconds.max(60);
    timeout.saturating_sub(60).max(timeout / 2)
}

/// The attempts AWS Batch makes at a job: `--retries`, within its range of 1 to 10.
fn aws_attempts(o: &EmitOptions) -> u32 {
    o.retries.clamp(1, 10)
}

fn aws_batch(plan: &Plan, dir: &Path, o: &EmitOptions) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let reqs = aws_requests(plan, o);
    let mut s = String::from(
        "#!/usr/bin/env bash\n# Submits the plan's AWS Batch jobs in stage order with the AWS CLI; each request's\n# dependsOn placeholders are filled with the job ids of the stage before. Prints `name job-id`.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n",
    );
    for (var, req) in &reqs {
        let name = format!("{}.json", req["jobName"].as_str().unwrap_or("job"));
        let path = dir.join(&name);
        write(&path, &json_text(req), false)?;
        files.push(path);
        let _ = writeln!(
            s,
            "{var}=$(envsubst < {name} | aws batch submit-job --cli-input-json file:///dev/stdin --query jobId --output text)\nexport {var}\necho \"{} ${var}\"",
            req["jobName"].as_str().unwrap_or("job")
        );
    }
    let def = match o.mode() {
        Mode::SharedFilesystem => json!({
            "jobDefinitionName": "batchwin",
            "type": "container",
            "platformCapabilities": ["EC2"],
            "containerProperties": {
                "image": o.image,
                "command": ["--help"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "2"},
                    {"type": "MEMORY", "value": "4096"}
                ]
            },
            "retryStrategy": aws_retry(o),
            "timeout": {"attemptDurationSeconds": o.timeout_seconds.max(60)}
        }),
        Mode::RunLocation => fargate_job_definition(plan, o)?,
    };
    let def_path = dir.join("job-definition.json");
    write(&def_path, &json_text(&def), false)?;
    files.push(def_path);
    let submit = dir.join("submit.sh");
    write(&submit, &s, true)?;
    files.push(submit);
    Ok(files)
}

/// Where a Fargate task's scratch goes: its ephemeral storage (the container's own disk).
const AWS_SCRATCH: &str = "/tmp/batchwin-scratch";

/// The RegisterJobDefinition request of a run-location worker on Fargate: nothing mounted,
/// the masking key injected from Secrets Manager, the role the task's credentials come from,
/// and ephemeral storage sized to the plan's largest unit. `${...}` are filled by `envsubst`
/// when it is registered (aws-batch/README.md).
fn fargate_job_definition(plan: &Plan, o: &EmitOptions) -> anyhow::Result<Value> {
    let (vcpu, memory) = fargate_size(o.worker)
        .map_err(|m| anyhow::anyhow!("[pricing] worker size for AWS Batch on Fargate: {m}"))?;
    let mut container = json!({
        "image": o.image,
        "command": ["--help"],
        "resourceRequirements": [
            {"type": "VCPU", "value": vcpu},
            {"type": "MEMORY", "value": memory}
        ],
        // The task's own credentials (S3, Secrets Manager) come from the job role; pulling
        // the image and reading the secret at start, from the execution role.
        "executionRoleArn": "arn:aws:iam::${AWS_ACCOUNT_ID}:role/batchwin-execution",
        "jobRoleArn": "arn:aws:iam::${AWS_ACCOUNT_ID}:role/batchwin-worker",
        "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
        // Private subnets reach S3 through a gateway endpoint or a NAT; no public address.
        "networkConfiguration": {"assignPublicIp": "DISABLED"},
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
        "environment": [{"name": crate::env::ENV_LOG_FORMAT, "value": "json"}],
        "logConfiguration": {"logDriver": "awslogs"}
    });
    if let Some(var) = &o.mask_key_env {
        container["secrets"] =
            json!([{"name": var, "valueFrom": "${BATCHWIN_MASK_KEY_SECRET_ARN}"}]);
    }
    // Fargate gives 20 GiB of task storage at no charge; more (up to 200) is asked for.
    let gib = scratch_gib(plan);
    if gib > 20 {
        if gib > 200 {
            anyhow::bail!(
                "the plan's largest unit needs {gib} GiB of scratch, more than Fargate's 200: cut large files smaller (--split-bytes)"
            );
        }
        container["ephemeralStorage"] = json!({"sizeInGiB": gib.max(21)});
    }
    Ok(json!({
        "jobDefinitionName": "batchwin",
        "type": "container",
        "platformCapabilities": ["FARGATE"],
        "containerProperties": container,
        "retryStrategy": aws_retry(o),
        "timeout": {"attemptDurationSeconds": o.timeout_seconds.max(60)},
        "propagateTags": true,
        "tags": {"app": "batchwin"}
    }))
}

/// Azure Batch limits from its REST reference.
pub const AZURE_MAX_TASKS_PER_CALL: usize = 100;
pub const AZURE_MAX_BYTES_PER_CALL: usize = 1_000_000;

/// A run-location task's scratch: its own working folder on the node's local disk, which Azure
/// Batch removes after the task's retention time.
const AZURE_SCRATCH: &str = "$AZ_BATCH_TASK_WORKING_DIR";

/// Task collections (`TaskAddCollectionParameter` bodies) of at most 100 tasks and 1 MB. Task
/// ids are the slice numbers, so dependencies can use `taskIdRanges`.
pub fn azure_collections(plan: &Plan, o: &EmitOptions) -> Vec<Value> {
    let mut tasks: Vec<Value> = Vec::new();
    for st in &plan.stages {
        for k in st.first_slice..st.first_slice + st.slices {
            let mut t = json!({
                "id": k.to_string(),
                "displayName": format!("batchwin {} stage {} slice {}", plan.date, st.index, k),
                "commandLine": format!("/bin/sh -c \"{} {} --slice {}\"", o.batchwin, o.process_args(AZURE_SCRATCH).join(" "), k),
                "constraints": {"maxTaskRetryCount": o.retries as i64, "maxWallClockTime": format!("PT{}S", o.timeout_seconds.max(60))},
                "exitConditions": {
                    // Once its retries are spent, whatever its exit code, a slice lets the next
                    // stage and the report run: the next stage's slices hold back the vendors
                    // that come after one that did not finish (recorded as blocked), the
                    // report names what failed, and the job ends.
                    "default": {"jobAction": "none", "dependencyAction": "satisfy"}
                }
            });
            if st.index > 0 {
                let before = &plan.stages[st.index - 1];
                t["dependsOn"] = json!({"taskIdRanges": [{"start": before.first_slice, "end": before.first_slice + before.slices - 1}]});
            }
            tasks.push(t);
        }
    }
    let n = plan.slices.len();
    tasks.push(json!({
        "id": n.to_string(),
        "displayName": format!("batchwin {} report", plan.date),
        "commandLine": format!("/bin/sh -c \"{} {}\"", o.batchwin, o.report_args().join(" ")),
        "dependsOn": {"taskIdRanges": [{"start": 0, "end": n.saturating_sub(1)}]},
        // The report ends the day: its exit status says whether the day had failures, and
        // running it again would say the same.
        "constraints": {"maxTaskRetryCount": 0, "maxWallClockTime": format!("PT{}S", o.timeout_seconds.max(60))}
    }));
    let mut collections: Vec<Value> = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut size = 0usize;
    for t in tasks {
        let len = t.to_string().len() + 1;
        if current.len() == AZURE_MAX_TASKS_PER_CALL
            || (size + len + 16 > AZURE_MAX_BYTES_PER_CALL && !current.is_empty())
        {
            collections.push(json!({"value": std::mem::take(&mut current)}));
            size = 0;
        }
        size += len;
        current.push(t);
    }
    if !current.is_empty() {
        collections.push(json!({"value": current}));
    }
    collections
}

fn azure_batch(plan: &Plan, dir: &Path, o: &EmitOptions) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let job_id = format!("batchwin-{}", plan.date);
    let mut job = json!({
        "id": job_id,
        "poolInfo": {"poolId": "${BATCHWIN_POOL_ID}"},
        "usesTaskDependencies": true,
        // Terminate only once every task has been added (submit.sh sets it at the end): a job
        // with no tasks yet counts as complete.
        "onAllTasksComplete": "noaction",
        "onTaskFailure": "performexitoptionsjobaction",
        "metadata": [{"name": "batchwin-date", "value": plan.date}]
    });
    let azure_store = ["az://", "azure://", "abfs://", "abfss://"]
        .iter()
        .any(|p| o.out.starts_with(p))
        || o.out.contains(".blob.core.windows.net");
    if o.mode() == Mode::RunLocation && azure_store {
        // Nothing is mounted: the object store is reached with the pool's user-assigned
        // managed identity (its client id tells which, when the pool has several), or with the
        // AZURE_STORAGE_* settings an operator adds here. No secret goes in these settings:
        // anyone who can read the job can read them.
        job["commonEnvironmentSettings"] = json!([
            {"name": "AZURE_STORAGE_ACCOUNT_NAME", "value": "${AZURE_STORAGE_ACCOUNT_NAME}"},
            {"name": "AZURE_CLIENT_ID", "value": "${BATCHWIN_IDENTITY_CLIENT_ID}"},
            {"name": crate::env::ENV_LOG_FORMAT, "value": "json"}
        ]);
    }
    let job_path = dir.join("job.json");
    write(&job_path, &json_text(&job), false)?;
    files.push(job_path);
    let mut s = format!(
        "#!/usr/bin/env bash\n# Creates the job, then adds its tasks in collections of at most {AZURE_MAX_TASKS_PER_CALL}.\n# Needs BATCHWIN_POOL_ID and an authenticated `az batch` (account, endpoint).\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\nenvsubst < job.json > /tmp/batchwin-job-$$.json\naz batch job create --json-file /tmp/batchwin-job-$$.json\necho \"{job_id} created\"\n"
    );
    for (i, c) in azure_collections(plan, o).iter().enumerate() {
        let name = format!("tasks-{i:04}.json");
        let path = dir.join(&name);
        write(&path, &json_text(c), false)?;
        files.push(path);
        let _ = writeln!(
            s,
            "az batch task create --job-id {job_id} --json-file {name} > /dev/null\necho \"{name} added\""
        );
    }
    let _ = writeln!(
        s,
        "az batch job set --job-id {job_id} --on-all-tasks-complete terminatejob\necho \"{job_id} will end when its tasks have\""
    );
    let submit = dir.join("submit.sh");
    write(&submit, &s, true)?;
    files.push(submit);
    Ok(files)
}

/// Kubernetes names of the run-location objects an operator creates once (docs/engines.md).
pub const K8S_SERVICE_ACCOUNT: &str = "batchwin-worker";
pub const K8S_CREDENTIALS_SECRET: &str = "batchwin-credentials";
pub const K8S_MASK_KEY_SECRET: &str = "batchwin-mask-key";
/// Where a run-location pod's emptyDir scratch is mounted.
const K8S_SCRATCH: &str = "/scratch";

/// The pod spec of a worker running `args`. Run location: an emptyDir for scratch (sized to
/// the plan's largest unit), credentials from the `batchwin-credentials` Secret when there is
/// one (AWS_*, AZURE_STORAGE_*, GOOGLE_*) or from the service account's workload identity,
/// the masking key from its own Secret; resources as `[pricing]` sizes a worker.
fn k8s_pod(plan: &Plan, o: &EmitOptions, args: Vec<String>, env: Value) -> Value {
    let mut container = json!({
        "name": "batchwin",
        "image": o.image,
        "args": args,
        "env": env
    });
    let mut spec = json!({"restartPolicy": "Never", "containers": []});
    if o.mode() == Mode::RunLocation {
        let cpu = format!("{}m", (o.worker.vcpus * 1000.0).round() as u64);
        let memory = format!("{}Mi", o.worker.memory_mib);
        let gib = scratch_gib(plan);
        container["envFrom"] =
            json!([{"secretRef": {"name": K8S_CREDENTIALS_SECRET, "optional": true}}]);
        if let Some(env) = container["env"].as_array_mut() {
            if let Some(var) = &o.mask_key_env {
                env.push(json!({"name": var, "valueFrom": {"secretKeyRef": {
                    "name": K8S_MASK_KEY_SECRET, "key": "key", "optional": true}}}));
            }
            env.push(json!({"name": crate::env::ENV_LOG_FORMAT, "value": "json"}));
        }
        container["volumeMounts"] = json!([{"name": "scratch", "mountPath": K8S_SCRATCH}]);
        container["resources"] = json!({
            "requests": {"cpu": cpu, "memory": memory, "ephemeral-storage": format!("{gib}Gi")},
            "limits": {"memory": memory, "ephemeral-storage": format!("{}Gi", gib + 1)}
        });
        container["securityContext"] = json!({
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]}
        });
        spec["serviceAccountName"] = json!(K8S_SERVICE_ACCOUNT);
        spec["volumes"] =
            json!([{"name": "scratch", "emptyDir": {"sizeLimit": format!("{}Gi", gib + 1)}}]);
    }
    spec["containers"] = json!([container]);
    json!({"metadata": {"labels": {"app": "batchwin", "batchwin/date": plan.date}}, "spec": spec})
}

fn k8s(plan: &Plan, dir: &Path, o: &EmitOptions) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut s = String::from(
        "#!/usr/bin/env bash\n# Creates one Indexed Job per stage and waits for each to end (Complete or Failed) before\n# the next: a slice holds back only the vendors that come after one that did not finish, as\n# their units are recorded blocked. Exits 1 when a stage's Job failed.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\nfailed=0\n# Waits for job/$1 to end (its activeDeadlineSeconds bounds it: past that it is Failed),\n# through passing failures of kubectl; prints its name and how it ended.\nwait_job() {\n  local state=\"\"\n  until [[ \"$state\" == *Complete* || \"$state\" == *Failed* ]]; do\n    sleep 10\n    state=$(kubectl get \"job/$1\" -o jsonpath='{.status.conditions[?(@.status==\"True\")].type}' || true)\n  done\n  if [[ \"$state\" == *Failed* ]]; then echo \"$1 failed\"; failed=1; else echo \"$1 complete\"; fi\n}\n",
    );
    for st in &plan.stages {
        let name = format!("batchwin-{}-s{}", plan.date, st.index);
        let parallelism = o.max_concurrent.clamp(1, st.slices.max(1));
        let env =
            json!([{"name": crate::env::ENV_SLICE_OFFSET, "value": st.first_slice.to_string()}]);
        let job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": {"app": "batchwin", "batchwin/date": plan.date}},
            "spec": {
                "completionMode": "Indexed",
                "completions": st.slices,
                "parallelism": parallelism,
                // Each slice (index) has its own retries, for exit code 3 only: any other
                // failure fails that index at once, and the others carry on.
                "backoffLimitPerIndex": o.retries,
                "podFailurePolicy": {"rules": [
                    // A pod evicted or preempted (a spot node reclaimed, a drain) is not the
                    // slice's failure: it does not count against the index's retries, and
                    // the next pod resumes the slice from its ledger.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    // `onPodConditions` is required (empty) by the API of 1.25 to 1.28.
                    {"action": "FailIndex", "onExitCodes": {"operator": "NotIn", "values": [3]}, "onPodConditions": []}
                ]},
                // The whole stage: as many waves of tasks as parallelism needs, each within
                // the task limit, and its retries.
                "activeDeadlineSeconds": o.timeout_seconds.max(60)
                    * (st.slices.div_ceil(parallelism) as u64)
                    * (u64::from(o.retries) + 1),
                "template": k8s_pod(plan, o, o.process_args(K8S_SCRATCH), env)
            }
        });
        let file = format!("{name}.json");
        let path = dir.join(&file);
        write(&path, &json_text(&job), false)?;
        files.push(path);
        // The Job's activeDeadlineSeconds bounds the wait: past it, the Job is Failed.
        let _ = writeln!(s, "kubectl apply -f {file}\nwait_job {name}");
    }
    if o.mode() == Mode::RunLocation {
        // The report reads every slice's ledger from the run location; on a shared
        // filesystem it is run where the run folder is (docs/engines.md).
        let name = format!("batchwin-{}-report", plan.date);
        let job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": {"app": "batchwin", "batchwin/date": plan.date}},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": o.timeout_seconds.max(60),
                "template": k8s_pod(plan, o, o.report_args(), json!([]))
            }
        });
        let file = format!("{name}.json");
        let path = dir.join(&file);
        write(&path, &json_text(&job), false)?;
        files.push(path);
        let _ = writeln!(
            s,
            "kubectl apply -f {file}\nwait_job {name}\nkubectl logs \"job/{name}\" || true"
        );
    }
    s.push_str("exit \"$failed\"\n");
    let submit = dir.join("submit.sh");
    write(&submit, &s, true)?;
    files.push(submit);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(vcpus: f64, memory_mib: u64) -> Result<(String, String), String> {
        fargate_size(WorkerSize { vcpus, memory_mib })
    }

    #[test]
    fn fargate_takes_only_its_own_sizes() {
        assert_eq!(size(2.0, 4096), Ok(("2".into(), "4096".into())));
        assert_eq!(size(0.25, 512), Ok(("0.25".into(), "512".into())));
        assert!(size(0.25, 1536).is_err());
        assert!(size(16.0, 122_880).is_ok());
        assert!(size(8.0, 18_432).is_err(), "8 vCPU go in steps of 4096 MiB");
        assert!(size(3.0, 8192).unwrap_err().contains("not 3"));
        assert!(size(2.0, 2048).unwrap_err().contains("4096 to 16384"));
    }
}
