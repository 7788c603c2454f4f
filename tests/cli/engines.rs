//! Engine files for workers that share no filesystem (the plan and the run folder as URLs):
//! each checked by its engine's own models (botocore, azure-batch, the Kubernetes OpenAPI
//! schemas), by the Job rules a schema cannot check, and, for Azure Batch, by playing the
//! service's failure rules over the emitted tasks with a vendor whose files fail. And what the
//! day costs, as `plan` and `report` print it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::util::{Dir, generate_day, plan_day, plan_json, process_day, stdout};

const PLAN_URL: &str = "s3://batchwin-runs/2026-11-29/plan.json";
const RUN_URL: &str = "s3://batchwin-runs/2026-11-29";

fn validators() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validators")
}

/// Runs a validator script with `python`; panics with its report when it fails.
fn validate(python: &std::ffi::OsStr, script: &str, args: &[&Path]) {
    let out = std::process::Command::new(python)
        .arg(validators().join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_files(dir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            out.insert(p.file_name().unwrap().to_string_lossy().into_owned(), v);
        }
    }
    out
}

/// Every string in `v`, with the key it is under.
fn strings<'a>(v: &'a Value, key: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((key.to_string(), s)),
        Value::Array(a) => a.iter().for_each(|x| strings(x, key, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| strings(x, k, out)),
        _ => {}
    }
}

fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            keys(x, out)
        }),
        _ => {}
    }
}

fn dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns1123_label)
}

/// The rules the API server applies to a batch/v1 Job that its OpenAPI schema does not say
/// (pkg/apis/batch/validation): what would pass `kubernetes-validate` and still be refused.
fn job_rule_violations(job: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let name = job["metadata"]["name"].as_str().unwrap_or("");
    let spec = &job["spec"];
    let pod = &spec["template"]["spec"];
    let indexed = spec["completionMode"] == "Indexed";
    let completions = spec["completions"].as_i64();
    if !dns1123_subdomain(name) {
        bad.push(format!("name {name:?} is not a DNS-1123 subdomain"));
    }
    // Pods of an Indexed Job are named NAME-INDEX-RANDOM and labelled with NAME: 63 at most.
    if name.len() > 63 {
        bad.push(format!("name {name:?} is longer than 63 characters"));
    }
    if indexed {
        match completions {
            None => bad.push("an Indexed Job needs completions".into()),
            Some(c) if c > 100_000 => bad.push(format!("completions {c} above 100000")),
            _ => {}
        }
    }
    if let (Some(p), Some(c)) = (spec["parallelism"].as_i64(), completions) {
        if p > c || p < 0 {
            bad.push(format!("parallelism {p} outside 0..completions {c}"));
        }
        if indexed && p > 100_000 {
            bad.push(format!("parallelism {p} above 100000 for an Indexed Job"));
        }
    }
    if !spec["backoffLimitPerIndex"].is_null() && !indexed {
        bad.push("backoffLimitPerIndex needs completionMode Indexed".into());
    }
    if let Some(m) = spec["maxFailedIndexes"].as_i64()
        && (spec["backoffLimitPerIndex"].is_null() || completions.is_some_and(|c| m > c))
    {
        bad.push("maxFailedIndexes needs backoffLimitPerIndex and at most completions".into());
    }
    if let Some(rules) = spec["podFailurePolicy"]["rules"].as_array() {
        if pod["restartPolicy"] != "Never" {
            bad.push("podFailurePolicy needs restartPolicy Never".into());
        }
        if rules.len() > 20 {
            bad.push("more than 20 podFailurePolicy rules".into());
        }
        for r in rules {
            if r["action"] == "FailIndex" && spec["backoffLimitPerIndex"].is_null() {
                bad.push("FailIndex needs backoffLimitPerIndex".into());
            }
            let on_codes = !r["onExitCodes"].is_null();
            let on_conditions = r["onPodConditions"]
                .as_array()
                .is_some_and(|c| !c.is_empty());
            if on_codes == on_conditions {
                bad.push("a rule has exactly one of onExitCodes and onPodConditions".into());
            }
            let codes = r["onExitCodes"]["values"].as_array();
            if codes.is_some_and(|c| c.is_empty() || c.len() > 255) {
                bad.push("onExitCodes values: 1 to 255 codes".into());
            }
            if r["onExitCodes"]["operator"] == "In"
                && codes.is_some_and(|c| c.iter().any(|v| v == 0))
            {
                bad.push("onExitCodes In may not hold 0".into());
            }
        }
    }
    match pod["restartPolicy"].as_str() {
        Some("Never") | Some("OnFailure") => {}
        other => bad.push(format!(
            "a Job's pods restart Never or OnFailure, not {other:?}"
        )),
    }
    if spec["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|s| s <= 0)
    {
        bad.push("activeDeadlineSeconds must be above 0".into());
    }
    let volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    for c in pod["containers"].as_array().into_iter().flatten() {
        let cname = c["name"].as_str().unwrap_or("");
        if !dns1123_label(cname) {
            bad.push(format!("container name {cname:?} is not a DNS-1123 label"));
        }
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let v = m["name"].as_str().unwrap_or("");
            if !volumes.contains(&v) {
                bad.push(format!("volumeMount {v:?} names no volume"));
            }
        }
        for e in c["env"].as_array().into_iter().flatten() {
            let n = e["name"].as_str().unwrap_or("");
            if n.is_empty() || n.contains('=') {
                bad.push(format!("env name {n:?}"));
            }
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            let n = e["secretRef"]["name"].as_str().unwrap_or("");
            if !dns1123_subdomain(n) {
                bad.push(format!("envFrom secret {n:?} is not a DNS-1123 subdomain"));
            }
        }
    }
    if let Some(sa) = pod["serviceAccountName"].as_str()
        && !dns1123_subdomain(sa)
    {
        bad.push(format!(
            "serviceAccountName {sa:?} is not a DNS-1123 subdomain"
        ));
    }
    for v in pod["volumes"].as_array().into_iter().flatten() {
        if !dns1123_label(v["name"].as_str().unwrap_or("")) {
            bad.push(format!("volume name {:?}", v["name"]));
        }
    }
    bad
}

/// The checker itself can fail: each rule broken once on a good Job is caught.
#[test]
fn the_job_rule_checker_catches_each_broken_rule() {
    let good: Value = serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "batchwin-2026-11-29-s0"},
        "spec": {
            "completionMode": "Indexed", "completions": 3, "parallelism": 3,
            "backoffLimitPerIndex": 2,
            "podFailurePolicy": {"rules": [{"action": "FailIndex",
                "onExitCodes": {"operator": "NotIn", "values": [3]}, "onPodConditions": []}]},
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "batchwin", "image": "x",
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
                "volumes": [{"name": "scratch", "emptyDir": {}}]}}
        }
    });
    assert_eq!(job_rule_violations(&good), Vec::<String>::new());
    type Break = (&'static str, fn(&mut Value));
    let breaks: [Break; 8] = [
        ("completions", |j| {
            j["spec"].as_object_mut().unwrap().remove("completions");
        }),
        ("restartPolicy", |j| {
            j["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure".into()
        }),
        ("parallelism", |j| j["spec"]["parallelism"] = 4.into()),
        ("100000", |j| {
            j["spec"]["completions"] = 100_001.into();
            j["spec"]["parallelism"] = 1.into()
        }),
        ("DNS-1123", |j| j["metadata"]["name"] = "Batchwin_S0".into()),
        ("FailIndex needs backoffLimitPerIndex", |j| {
            j["spec"]
                .as_object_mut()
                .unwrap()
                .remove("backoffLimitPerIndex");
        }),
        ("names no volume", |j| {
            j["spec"]["template"]["spec"]["volumes"] = serde_json::json!([])
        }),
        ("longer than 63", |j| {
            j["metadata"]["name"] = "b".repeat(64).into()
        }),
    ];
    for (rule, f) in breaks {
        let mut j = good.clone();
        f(&mut j);
        let v = job_rule_violations(&j);
        assert!(v.iter().any(|m| m.contains(rule)), "{rule}: {v:?}");
    }
}

/// A day planned with the plan and the run folder as URLs: every engine's files run as they
/// are, with nothing mounted, and pass the engines' own models.
#[test]
fn run_location_engine_files_mount_nothing_and_pass_the_engines_models() {
    let d = Dir::new();
    generate_day(&d, "30", "3000", "10", "11");
    plan_day(
        &d,
        &[
            "--slices",
            "7",
            "--emit",
            "slurm,aws-batch,azure-batch,k8s",
            "--emit-dir",
            "emit",
            "--slurm-max-array-size",
            "4",
            "--worker-plan",
            PLAN_URL,
            "--worker-out",
            RUN_URL,
        ],
    );
    // Shared filesystem too, so that every manifest emitted is checked.
    plan_day(
        &d,
        &[
            "--out",
            "plan-shared.json",
            "--slices",
            "7",
            "--emit",
            "k8s",
            "--emit-dir",
            "emit-shared",
        ],
    );

    // AWS Batch: Fargate, the run location's command, the key from Secrets Manager.
    let aws = json_files(&d.path("emit/aws-batch"));
    let def = &aws["job-definition.json"];
    assert_eq!(def["platformCapabilities"], serde_json::json!(["FARGATE"]));
    let c = &def["containerProperties"];
    assert!(c["volumes"].is_null() && c["mountPoints"].is_null(), "{c}");
    assert_eq!(c["secrets"][0]["name"], "BATCHWIN_MASK_KEY");
    assert!(c["executionRoleArn"].is_string() && c["jobRoleArn"].is_string());
    let submits: Vec<&Value> = aws
        .iter()
        .filter(|(n, _)| n.as_str() != "job-definition.json" && !n.ends_with("-report.json"))
        .map(|(_, v)| v)
        .collect();
    // One array per stage, then the report.
    assert_eq!(submits.len(), 2);
    let report = aws
        .iter()
        .find(|(n, _)| n.ends_with("-report.json"))
        .map(|(_, v)| v)
        .expect("a report job");
    assert_eq!(
        report["containerOverrides"]["command"],
        serde_json::json!([
            "report",
            "--ledgers",
            format!("{RUN_URL}/ledgers"),
            "--plan",
            PLAN_URL
        ])
    );
    for r in &submits {
        let cmd: Vec<&str> = r["containerOverrides"]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            cmd,
            [
                "process",
                "--plan",
                PLAN_URL,
                "--out",
                RUN_URL,
                "--scratch",
                "/tmp/batchwin-scratch",
                "--failures-exit",
                "0",
                "--attempts",
                &r["retryStrategy"]["attempts"].to_string(),
                // A minute before the attempt's timeout, which AWS Batch would fail it at.
                "--stop-after",
                &format!(
                    "{}s",
                    r["timeout"]["attemptDurationSeconds"].as_u64().unwrap() - 60
                ),
            ]
        );
    }

    // Azure Batch: nothing mounted, the same command with the task's slice.
    let az = json_files(&d.path("emit/azure-batch"));
    for (name, v) in &az {
        let mut k = Vec::new();
        keys(v, &mut k);
        assert!(!k.iter().any(|k| k == "mountConfiguration"), "{name}");
    }
    let tasks = az["tasks-0000.json"]["value"].as_array().unwrap();
    assert_eq!(
        tasks[0]["commandLine"],
        format!(
            "/bin/sh -c \"batchwin process --plan {PLAN_URL} --out {RUN_URL} --scratch $AZ_BATCH_TASK_WORKING_DIR --slice 0\""
        )
    );

    // Kubernetes: no PersistentVolumeClaim, emptyDir scratch, credentials from a Secret or the
    // service account's workload identity, and a report Job after the stages.
    let k8s = json_files(&d.path("emit/k8s"));
    assert_eq!(
        k8s.keys().collect::<Vec<_>>(),
        [
            "batchwin-2026-11-29-report.json",
            "batchwin-2026-11-29-s0.json",
            "batchwin-2026-11-29-s1.json"
        ]
    );
    for (name, job) in &k8s {
        let mut k = Vec::new();
        keys(job, &mut k);
        assert!(
            !k.iter().any(|k| k == "persistentVolumeClaim"),
            "{name}: {job}"
        );
        let pod = &job["spec"]["template"]["spec"];
        assert!(pod["volumes"][0]["emptyDir"].is_object(), "{name}");
        assert_eq!(pod["serviceAccountName"], "batchwin-worker");
        let c = &pod["containers"][0];
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "batchwin-credentials");
        let mut s = Vec::new();
        strings(&c["args"], "args", &mut s);
        assert!(!s.iter().any(|(_, a)| *a == "--config"), "{name}: {s:?}");
    }
    assert_eq!(
        k8s["batchwin-2026-11-29-report.json"]["spec"]["template"]["spec"]["containers"][0]["args"],
        serde_json::json!([
            "report",
            "--ledgers",
            format!("{RUN_URL}/ledgers"),
            "--plan",
            PLAN_URL
        ])
    );
    for dir in ["emit/k8s", "emit-shared/k8s"] {
        for (name, job) in json_files(&d.path(dir)) {
            let v = job_rule_violations(&job);
            assert!(v.is_empty(), "{dir}/{name}: {v:?}");
        }
    }

    // Slurm: node-local scratch, logs beside the scripts, the report from the run location.
    let s0 = d.read("emit/slurm/stage-0-0.sbatch");
    assert!(
        s0.contains(&format!(
            "batchwin process --plan {PLAN_URL} --out {RUN_URL} --scratch \"${{SLURM_TMPDIR:-${{TMPDIR:-/tmp}}}}\""
        )) && s0.contains("#SBATCH --output=logs/%x-%A_%a.log"),
        "{s0}"
    );
    assert!(
        d.read("emit/slurm/report.sbatch")
            .contains(&format!("report --ledgers {RUN_URL}/ledgers")),
    );

    let Some(py) = std::env::var_os("BATCHWIN_TEST_PYTHON") else {
        eprintln!(
            "BATCHWIN_TEST_PYTHON is not set; scripts/test sets it. Models not checked here."
        );
        return;
    };
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("aws-batch");
    validate(&py, "aws_batch.py", &[&d.path("emit/aws-batch"), &setup]);
    validate(&py, "k8s.py", &[&d.path("emit/k8s")]);
    validate(&py, "k8s.py", &[&d.path("emit-shared/k8s")]);
    let az = std::env::var_os("BATCHWIN_TEST_AZURE_PYTHON")
        .expect("scripts/test sets BATCHWIN_TEST_AZURE_PYTHON with BATCHWIN_TEST_PYTHON");
    validate(&az, "azure_batch.py", &[&d.path("emit/azure-batch")]);
}

/// Fargate takes only its own vCPU and memory pairs: a worker size it does not run is refused
/// when the files are written, not when AWS Batch is asked.
#[test]
fn a_worker_size_fargate_does_not_run_is_refused() {
    let d = Dir::new();
    generate_day(&d, "4", "400", "4", "11");
    let config =
        d.read("day/batchwin.toml") + "\n[pricing]\nworker_vcpus = 2\nworker_memory_gib = 2\n";
    d.write("day/batchwin.toml", config);
    let o = crate::util::plan_day_command(&d, &["--emit", "aws-batch"])
        .args(["--worker-plan", PLAN_URL, "--worker-out", RUN_URL])
        .args(["--date", "2026-11-29"])
        .assert()
        .code(2);
    let err = crate::util::stderr(&o);
    assert!(
        err.contains("pricing.worker_memory_gib")
            && err.contains(
                "Fargate gives 2 vCPU 4096 to 16384 MiB of memory in steps of 1024, not 2048 MiB"
            ),
        "{err}"
    );
}

/// The masking key is asked of the engine only when a field is hashed: the files of a day that
/// hashes nothing run without a secret to create first.
#[test]
fn engine_files_ask_for_the_masking_key_only_when_a_field_is_hashed() {
    let d = Dir::new();
    generate_day(&d, "4", "400", "4", "11");
    let emit = |d: &Dir, dir: &str| {
        crate::util::plan_day_command(d, &["--emit", "aws-batch,k8s", "--emit-dir", dir])
            .args(["--worker-plan", PLAN_URL, "--worker-out", RUN_URL])
            .args(["--date", "2026-11-29"])
            .assert()
            .success();
    };
    // The key's variable on the first container of each Kubernetes Job.
    let k8s_key = |d: &Dir, dir: &str| -> Vec<bool> {
        json_files(&d.path(&format!("{dir}/k8s")))
            .values()
            .map(|job| {
                job["spec"]["template"]["spec"]["containers"][0]["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["name"] == "BATCHWIN_MASK_KEY")
            })
            .collect()
    };
    emit(&d, "hashed");
    let def = &json_files(&d.path("hashed/aws-batch"))["job-definition.json"];
    assert_eq!(
        def["containerProperties"]["secrets"][0]["valueFrom"],
        "${BATCHWIN_MASK_KEY_SECRET_ARN}"
    );
    assert!(k8s_key(&d, "hashed").iter().all(|&k| k));

    // The same day with its hashed fields redacted instead.
    let config = d.read("day/batchwin.toml");
    assert!(config.contains("mask = \"hash\""));
    let redacted: String = config
        .lines()
        .filter(|l| !l.starts_with("hash_length"))
        .map(|l| l.replace("mask = \"hash\"", "mask = \"redact\"") + "\n")
        .collect();
    d.write("day/batchwin.toml", redacted);
    emit(&d, "plain");
    let def = &json_files(&d.path("plain/aws-batch"))["job-definition.json"];
    assert!(def["containerProperties"]["secrets"].is_null(), "{def}");
    assert!(
        !d.read("plain/aws-batch/job-definition.json")
            .contains("SECRET_ARN")
    );
    let keys = k8s_key(&d, "plain");
    assert!(!keys.is_empty() && keys.iter().all(|&k| !k), "{keys:?}");
}

/// What Azure Batch does with the emitted tasks, played with the tasks' own command lines run
/// for real: a task runs when each task it depends on succeeded or failed with `satisfy`; a
/// task that exits non-zero is run again up to its `maxTaskRetryCount`, then its exit options
/// apply (`dependencyAction` for its dependents, `jobAction` for the job, as `onTaskFailure:
/// performexitoptionsjobaction` asks). Returns each task's exit code and attempts, and whether
/// a job action ended the job early.
fn play_azure(
    root: &Path,
    job: &Value,
    tasks: &[Value],
) -> (BTreeMap<String, (i32, u64)>, Option<String>) {
    assert_eq!(job["onTaskFailure"], "performexitoptionsjobaction");
    let mut done: BTreeMap<String, (i32, u64)> = BTreeMap::new();
    let mut satisfied: BTreeMap<String, bool> = BTreeMap::new();
    // Task ids are slice numbers and the report's, in dependency order.
    for t in tasks {
        let id = t["id"].as_str().unwrap().to_string();
        let ready = t["dependsOn"]["taskIdRanges"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| {
                (r["start"].as_u64().unwrap()..=r["end"].as_u64().unwrap())
                    .all(|k| satisfied.get(&k.to_string()) == Some(&true))
            });
        if !ready {
            continue;
        }
        let retries = t["constraints"]["maxTaskRetryCount"].as_u64().unwrap_or(0);
        let mut attempts = 0;
        let code = loop {
            attempts += 1;
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(
                    t["commandLine"]
                        .as_str()
                        .unwrap()
                        .strip_prefix("/bin/sh -c \"")
                        .unwrap()
                        .strip_suffix('"')
                        .unwrap(),
                )
                .current_dir(root)
                .env("BATCHWIN_MASK_KEY", crate::util::MASK_KEY)
                .output()
                .unwrap();
            let code = out.status.code().unwrap_or(-1);
            if code == 0 || attempts > retries {
                break code;
            }
        };
        done.insert(id.clone(), (code, attempts));
        let exit_options = if code == 0 {
            serde_json::json!({"dependencyAction": "satisfy", "jobAction": "none"})
        } else {
            let ec = &t["exitConditions"];
            ec["exitCodes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["code"] == code)
                .map(|m| m["exitOptions"].clone())
                .unwrap_or_else(|| ec["default"].clone())
        };
        // Azure's defaults for a failed task: block its dependents, leave the job be.
        let action = exit_options["dependencyAction"]
            .as_str()
            .unwrap_or(if code == 0 { "satisfy" } else { "block" });
        satisfied.insert(id.clone(), action == "satisfy");
        match exit_options["jobAction"].as_str().unwrap_or("none") {
            "none" => {}
            other => return (done, Some(format!("task {id} took job action {other}"))),
        }
    }
    (done, None)
}

/// The indexes (as task ids) of the plan's slices that hold a unit of `vendor`.
fn slices_with(p: &Value, vendor: &str) -> Vec<String> {
    p["slices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["units"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["vendor"] == vendor)
        })
        .map(|s| s["index"].to_string())
        .collect()
}

/// A generated day of 20 files over 10 vendors, in which V002's files fail and V003 comes
/// after V002 ([`v002_fails_and_v003_comes_after`]).
pub(crate) fn day_where_v002_fails() -> Dir {
    let d = Dir::new();
    generate_day(&d, "20", "4000", "10", "11");
    v002_fails_and_v003_comes_after(&d);
    d
}

/// Changes the generated day's configuration so that V002's files fail (its records all lack
/// a required field, and its skip limit is 0) and V003 comes after V002 (its slices run in the
/// next stage, and are held back by V002's failure).
pub(crate) fn v002_fails_and_v003_comes_after(d: &Dir) {
    let config = d.read("day/batchwin.toml");
    let at = config.find("id = \"V002\"").unwrap();
    let end = at + config[at..].find("[[vendor]]").unwrap();
    let v002 = config[at..end].replacen("skip_limit = \"5%\"", "skip_limit = 0", 1)
        + "[[vendor.fields]]\nname = \"not_in_the_files\"\nrequired = true\n\n";
    d.write(
        "day/batchwin.toml",
        format!("{}{v002}{}", &config[..at], &config[end..])
            .replace("id = \"V003\"", "id = \"V003\"\nafter = [\"V002\"]"),
    );
}

/// A plan with a vendor whose files fail (its skip limit is 0): on Azure Batch, the failing
/// slice is retried by its own retry count, then lets the next stage and the report run; the
/// report names the failure, and every task completes, so the job ends.
#[test]
fn azure_batch_lets_the_report_run_after_a_failed_slice_and_the_job_ends() {
    let d = day_where_v002_fails();
    let batchwin = assert_cmd::cargo::cargo_bin("batchwin");
    let run = d.path("run").display().to_string();
    plan_day(
        &d,
        &[
            "--slices",
            "4",
            "--retries",
            "2",
            "--emit",
            "azure-batch",
            "--emit-dir",
            "emit",
            "--worker-batchwin",
            batchwin.to_str().unwrap(),
            "--worker-out",
            &run,
        ],
    );
    let p = plan_json(&d, "plan.json");
    let failing: Vec<String> = slices_with(&p, "V002");
    assert!(!failing.is_empty());
    let job: Value = serde_json::from_str(&d.read("emit/azure-batch/job.json")).unwrap();
    let tasks: Vec<Value> = json_files(&d.path("emit/azure-batch"))
        .into_iter()
        .filter(|(n, _)| n.starts_with("tasks-"))
        .flat_map(|(_, c)| c["value"].as_array().unwrap().clone())
        .collect();
    let slices = p["slices"].as_array().unwrap().len();
    assert_eq!(tasks.len(), slices + 1);
    for t in &tasks[..slices] {
        // A retryable exit 3 is retried by the task's own count, as many times as --retries.
        assert_eq!(t["constraints"]["maxTaskRetryCount"], 2, "{t}");
    }
    let (done, ended_early) = play_azure(d.root(), &job, &tasks);
    assert_eq!(ended_early, None);
    assert_eq!(done.len(), tasks.len(), "every task ran: {done:?}");
    let holding: Vec<String> = slices_with(&p, "V003");
    for (id, (code, attempts)) in &done {
        if failing.contains(id) || holding.contains(id) {
            // A slice with failed or blocked units exits 1 each attempt.
            assert_eq!((*code, *attempts), (1, 3), "slice {id}");
        } else if *id == slices.to_string() {
            // The report ran and says the day failed.
            assert_eq!(*code, 1, "report");
        } else {
            assert_eq!((*code, *attempts), (0, 1), "slice {id}");
        }
    }
    // The job is told to end once every task has been added, and every task has completed.
    let submit = d.read("emit/azure-batch/submit.sh");
    let last_add = submit.rfind("az batch task create").unwrap();
    assert!(submit[last_add..].contains("--on-all-tasks-complete terminatejob"));
    assert_v002_failed_and_v003_blocked(&d);
}

/// The report of `DIR/run/ledgers` after [`v002_fails_and_v003_comes_after`]: it says the day
/// failed (exit 1), V002's files failed, V003's are blocked with V002 named, and no other
/// vendor's file is left undone.
pub(crate) fn assert_v002_failed_and_v003_blocked(d: &Dir) {
    let report = d
        .cmd()
        .args(["report", "--ledgers", "run/ledgers", "--format", "json"])
        .assert()
        .code(1);
    let r: Value = serde_json::from_str(&stdout(&report)).unwrap();
    let failures = r["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f["vendor"] == "V002" && f["status"] == "failed"),
        "{failures:?}"
    );
    let v003: Vec<&Value> = failures.iter().filter(|f| f["vendor"] == "V003").collect();
    assert!(
        !v003.is_empty()
            && v003
                .iter()
                .all(|f| f["status"] == "blocked"
                    && f["error"].as_str().unwrap_or("").contains("V002")),
        "{v003:?}"
    );
    assert!(
        failures
            .iter()
            .all(|f| f["vendor"] == "V002" || f["vendor"] == "V003"),
        "{failures:?}"
    );
}

/// The string values of keys `a` and `b` of each object of the JSON array `v` (none when `v`
/// is not an array).
fn string_pairs(v: &Value, a: &str, b: &str) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|o| (o[a].as_str().unwrap().into(), o[b].as_str().unwrap().into()))
        .collect()
}

/// What AWS Batch does with the emitted SubmitJob requests, played with each job's own
/// command run for real, in `submit.sh`'s order: a job runs only when every job it depends on
/// succeeded (otherwise it fails without running, as AWS Batch fails a job whose dependency
/// failed); an array job runs each child with `AWS_BATCH_JOB_ARRAY_INDEX` and succeeds when
/// all of them do; an attempt is tried again while `retryStrategy` says RETRY for its exit
/// code and attempts are left. Returns each job's name and its exit codes (`None`: not run).
fn play_aws_batch(
    root: &Path,
    batchwin: &Path,
    submit: &str,
    dir: &Path,
) -> Vec<(String, Option<Vec<i32>>)> {
    let mut succeeded: BTreeMap<String, bool> = BTreeMap::new();
    let mut played = Vec::new();
    for line in submit
        .lines()
        .filter(|l| l.contains("aws batch submit-job"))
    {
        let var = line.split('=').next().unwrap().to_string();
        let file = line
            .split("envsubst < ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let req: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let name = req["jobName"].as_str().unwrap().to_string();
        let ready = req["dependsOn"].as_array().into_iter().flatten().all(|d| {
            let dep = d["jobId"]
                .as_str()
                .unwrap()
                .trim_start_matches("${")
                .trim_end_matches('}');
            succeeded[dep]
        });
        if !ready {
            succeeded.insert(var, false);
            played.push((name, None));
            continue;
        }
        let args: Vec<String> = req["containerOverrides"]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let env = string_pairs(&req["containerOverrides"]["environment"], "name", "value");
        let children = req["arrayProperties"]["size"].as_u64();
        let retry = &req["retryStrategy"];
        let attempts = retry["attempts"].as_u64().unwrap_or(1);
        let mut codes = Vec::new();
        for i in 0..children.unwrap_or(1) {
            let mut attempt = 0;
            let code = loop {
                attempt += 1;
                let mut c = std::process::Command::new(batchwin);
                c.args(&args)
                    .current_dir(root)
                    .env("BATCHWIN_MASK_KEY", crate::util::MASK_KEY)
                    .envs(env.iter().map(|(k, v)| (k, v)));
                if children.is_some() {
                    c.env("AWS_BATCH_JOB_ARRAY_INDEX", i.to_string());
                }
                let code = c.output().unwrap().status.code().unwrap_or(-1);
                let action = retry["evaluateOnExit"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|e| {
                        e["onExitCode"]
                            .as_str()
                            .is_some_and(|p| p == "*" || p == code.to_string())
                    })
                    .map(|e| e["action"].as_str().unwrap().to_string());
                if code == 0 || action.as_deref() != Some("RETRY") || attempt >= attempts {
                    break code;
                }
            };
            codes.push(code);
        }
        succeeded.insert(var, codes.iter().all(|&c| c == 0));
        played.push((name, Some(codes)));
    }
    played
}

/// What Kubernetes does with the emitted Indexed Jobs, played with the pods' own command
/// lines run for real, in the order `submit.sh` applies them (each Job waited for until it is
/// Complete or Failed, then the next): every index of a Job runs with `JOB_COMPLETION_INDEX`
/// and the container's environment; an index whose pod exits non-zero is failed at once by the
/// `FailIndex` rule unless its exit code is one the rule leaves out, which is retried up to
/// `backoffLimitPerIndex`; a Job with a failed index is Failed. Returns each Job's name and
/// its indexes' exit codes.
fn play_k8s(root: &Path, batchwin: &Path, dir: &Path) -> Vec<(String, Vec<i32>)> {
    let submit = std::fs::read_to_string(dir.join("submit.sh")).unwrap();
    let mut played = Vec::new();
    for file in submit
        .lines()
        .filter_map(|l| l.strip_prefix("kubectl apply -f "))
    {
        let job: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let spec = &job["spec"];
        let container = &spec["template"]["spec"]["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let env = string_pairs(&container["env"], "name", "value");
        let retried: Vec<i64> = spec["podFailurePolicy"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["action"] == "FailIndex" && r["onExitCodes"]["operator"] == "NotIn")
            .flat_map(|r| r["onExitCodes"]["values"].as_array().unwrap().clone())
            .filter_map(|v| v.as_i64())
            .collect();
        let retries = spec["backoffLimitPerIndex"].as_u64().unwrap_or(0);
        let mut codes = Vec::new();
        for i in 0..spec["completions"].as_u64().unwrap_or(1) {
            let mut attempt = 0;
            let code = loop {
                attempt += 1;
                let code = std::process::Command::new(batchwin)
                    .args(&args)
                    .current_dir(root)
                    .env("BATCHWIN_MASK_KEY", crate::util::MASK_KEY)
                    .env("JOB_COMPLETION_INDEX", i.to_string())
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .output()
                    .unwrap()
                    .status
                    .code()
                    .unwrap_or(-1);
                if code == 0 || !retried.contains(&i64::from(code)) || attempt > retries {
                    break code;
                }
            };
            codes.push(code);
        }
        played.push((job["metadata"]["name"].as_str().unwrap().to_string(), codes));
    }
    played
}

/// A plan with a vendor whose files fail, on Kubernetes: the first stage's Job is Failed (the
/// index with V002's files fails), `submit.sh` goes on to the next stage,
/// whose slices record V003, which comes after V002, as `blocked` with V002 named, and the
/// report names both and says the day failed.
#[test]
fn kubernetes_runs_the_next_stage_after_a_failed_slice_and_blocks_the_vendor_after_it() {
    let d = day_where_v002_fails();
    let batchwin = assert_cmd::cargo::cargo_bin("batchwin");
    plan_day(
        &d,
        &["--slices", "4", "--emit", "k8s", "--emit-dir", "emit"],
    );
    // The pods run batchwin (the image's entry point) with their args, in the planner's
    // folder: the shared filesystem, mounted at the same path.
    let dir = d.path("emit/k8s");
    let submit = std::fs::read_to_string(dir.join("submit.sh")).unwrap();
    assert!(submit.contains("wait_job") && submit.ends_with("exit \"$failed\"\n"));
    let played = play_k8s(d.root(), &batchwin, &dir);
    assert_eq!(played.len(), 2, "{played:?}");
    let p = plan_json(&d, "plan.json");
    let failing = slices_with(&p, "V002");
    assert!(!failing.is_empty());
    // Stage 0: the slices with V002's files exit 1, the others 0.
    let first = p["stages"][1]["first_slice"].as_u64().unwrap() as usize;
    assert_eq!(played[0].1.len(), first, "{played:?}");
    for (k, code) in played[0].1.iter().enumerate() {
        let expected = if failing.contains(&k.to_string()) {
            1
        } else {
            0
        };
        assert_eq!(*code, expected, "slice {k}: {played:?}");
    }
    // Stage 1 ran all the same: the slices with V003's files exit 1, its units being blocked;
    // the others 0.
    assert_eq!(
        played[1].1.len() + first,
        p["slices"].as_array().unwrap().len()
    );
    let blocked = slices_with(&p, "V003");
    assert!(!blocked.is_empty());
    for (k, code) in played[1].1.iter().enumerate() {
        let expected = i32::from(blocked.contains(&(first + k).to_string()));
        assert_eq!(*code, expected, "slice {}: {played:?}", first + k);
    }
    assert_v002_failed_and_v003_blocked(&d);
}

/// A vendor whose files fail, and one that comes after it, on AWS Batch: the failing slices
/// record their failures and succeed as jobs, so the next stage runs and records the later
/// vendor as blocked (as every other engine does), and the report job runs last and fails the
/// day, naming both.
#[test]
fn aws_batch_runs_the_later_stages_and_the_report_after_a_failed_slice() {
    let d = Dir::new();
    generate_day(&d, "12", "2400", "4", "13");
    v002_fails_and_v003_comes_after(&d);
    let batchwin = assert_cmd::cargo::cargo_bin("batchwin");
    let run = d.path("run").display().to_string();
    plan_day(
        &d,
        &[
            "--slices",
            "3",
            "--emit",
            "aws-batch",
            "--emit-dir",
            "emit",
            "--worker-out",
            &run,
        ],
    );
    let submit = d.read("emit/aws-batch/submit.sh");
    let played = play_aws_batch(d.root(), &batchwin, &submit, &d.path("emit/aws-batch"));
    let (report, slices) = played.split_last().unwrap();
    assert!(report.0.ends_with("-report"), "{played:?}");
    assert!(slices.len() >= 2, "two stages at least: {played:?}");
    for (name, codes) in slices {
        let codes = codes
            .as_ref()
            .unwrap_or_else(|| panic!("{name} did not run: {played:?}"));
        assert!(codes.iter().all(|&c| c == 0), "{name}: {codes:?}");
    }
    assert_eq!(
        report.1,
        Some(vec![1]),
        "the report fails the day: {played:?}"
    );

    let o = d
        .cmd()
        .args(["report", "--ledgers", "run/ledgers", "--format", "json"])
        .assert()
        .code(1);
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let states: std::collections::BTreeSet<(String, String)> =
        string_pairs(&r["failures"], "vendor", "status")
            .into_iter()
            .collect();
    assert_eq!(
        states,
        [
            ("V002".into(), "failed".into()),
            ("V003".into(), "blocked".into())
        ]
        .into(),
        "{}",
        r["failures"]
    );
}

/// Reads `label  X vCPU-hours, Y GB-hours` and the engines' rows after it from `plan`'s output.
fn cost_block(out: &str, label: &str) -> (f64, f64, usize, BTreeMap<String, (f64, f64)>) {
    let mut lines = out
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{label} ")));
    let head = lines.next().unwrap_or_else(|| panic!("no {label}: {out}"));
    let nums: Vec<f64> = head
        .split_whitespace()
        .filter_map(|w| w.trim_matches(|c| c == '(' || c == ',').parse().ok())
        .collect();
    let workers: usize = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    lines.next();
    let mut engines = BTreeMap::new();
    for l in lines.take(4) {
        let w: Vec<&str> = l.split_whitespace().collect();
        engines.insert(
            w[0].to_string(),
            (w[1].parse().unwrap(), w[3].parse().unwrap()),
        );
    }
    (nums[0], nums[1], workers, engines)
}

/// `plan` prices the day from the measured history: its estimated file time times the
/// vCPU-seconds the past run's workers held per second of file time (wall time × threads over
/// summed file time) gives the vCPU-hours, the worker's size the GB-hours and worker-hours, each
/// engine's price is `[pricing]`'s, and a day twice as large costs twice as much and needs the
/// workers for twice the work.
#[test]
fn plan_prices_the_day_and_a_day_twice_as_large() {
    let d = Dir::new();
    generate_day(&d, "40", "200000", "8", "11");
    process_day(&d, "past");
    let config = d.read("day/batchwin.toml")
        + "\n[pricing]\nworker_vcpus = 4\nworker_memory_gib = 8\ncurrency = \"EUR\"\n\
           [pricing.aws-batch]\nvcpu_hour = 36\ngb_hour = 4\nspot_vcpu_hour = 12\n";
    d.write("day/batchwin.toml", config);
    // A window of one minute at utilization 0.01: 0.6 s per worker, so the work needs several.
    let out = plan_day(
        &d,
        &[
            "--history",
            "past",
            "--slices",
            "2",
            "--window",
            "06:00-06:01",
            "--utilization",
            "0.01",
        ],
    );
    let p = plan_json(&d, "plan.json");
    let work = p["estimate"]["total_work_seconds"].as_f64().unwrap();
    assert!(work > 0.0);
    // What the past run's workers held per second of the file time it recorded.
    let ledger = batchwin::ledger::Ledger::open(&d.path("past/ledger.duckdb")).unwrap();
    let held: f64 = ledger
        .connection()
        .query_row(
            "SELECT ((SELECT sum((epoch(ended_at) - epoch(started_at)) * threads) FROM runs WHERE command = 'process')
                    / (SELECT sum(epoch(ended_at) - epoch(started_at)) FROM files))::DOUBLE",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        out.contains(&format!(
            "workers held {held:.2} vCPU-seconds per second of file time"
        )),
        "{held}: {out}"
    );
    for (label, k) in [("cost", 1.0), ("cost x2", 2.0)] {
        let (vcpu_h, gb_h, workers, engines) = cost_block(&out, label);
        let want_vcpu = k * work * held / 3600.0;
        // Figures are printed to 4 decimals below 1 (hours below 10), to 2 above.
        let close = |a: f64, b: f64| (a - b).abs() <= if b >= 1.0 { 0.006 } else { 1e-4 };
        assert!(
            close(vcpu_h, want_vcpu),
            "{label}: {vcpu_h} vs {want_vcpu}\n{out}"
        );
        assert!(close(gb_h, 2.0 * want_vcpu), "{label}\n{out}");
        // Worker-seconds: the vCPU-seconds over the worker's 4 vCPUs.
        let worker_seconds = want_vcpu * 3600.0 / 4.0;
        assert_eq!(
            workers,
            (worker_seconds / 0.6).ceil() as usize,
            "{label}\n{out}"
        );
        let (on_demand, spot) = engines["aws-batch"];
        assert!(
            close(on_demand, want_vcpu * 36.0 + 2.0 * want_vcpu * 4.0),
            "{out}"
        );
        // Spot memory defaults to the on-demand price.
        assert!(
            close(spot, want_vcpu * 12.0 + 2.0 * want_vcpu * 4.0),
            "{out}"
        );
    }
    assert!(out.contains(" EUR "), "{out}");
    assert!(
        out.contains("(example prices)"),
        "the engines left out are examples: {out}"
    );
    assert!(out.contains("ran 100-200 for its day"), "{out}");
}

/// `report` prices the run that happened: the `process` runs' wall time × threads, from the
/// ledger.
#[test]
fn report_prices_the_measured_run() {
    let d = Dir::new();
    generate_day(&d, "6", "30000", "3", "11");
    process_day(&d, "run");
    let config = d.read("day/batchwin.toml")
        + "\n[pricing]\n[pricing.slurm]\nvcpu_hour = 3600\nspot_vcpu_hour = 1800\n";
    d.write("day/batchwin.toml", config);
    let o = d
        .cmd()
        .args([
            "report",
            "--ledgers",
            "run/ledger.duckdb",
            "--out",
            "merged.duckdb",
        ])
        .args(["--config", "day/batchwin.toml"])
        .assert();
    let out = stdout(&o);
    let ledger = batchwin::ledger::Ledger::open(&d.path("run/ledger.duckdb")).unwrap();
    let vcpu_seconds: f64 = ledger
        .connection()
        .query_row(
            "SELECT sum((epoch(ended_at) - epoch(started_at)) * threads)::DOUBLE FROM runs WHERE command = 'process'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(vcpu_seconds > 0.0);
    let line = out.lines().find(|l| l.starts_with("cost ")).unwrap();
    assert!(line.contains("(1 runs, wall time x threads)"), "{line}");
    // The CPU time the run measured is printed beside what it held, as the ledger has it.
    let cpu_seconds: f64 = ledger
        .connection()
        .query_row(
            "SELECT cpu_seconds FROM runs WHERE command = 'process'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(cpu_seconds > 0.0);
    let cpu = out.lines().find(|l| l.starts_with("cpu ")).unwrap();
    let hours: f64 = cpu.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((hours - cpu_seconds / 3600.0).abs() < 0.0001, "{cpu}");
    assert!(cpu.contains("(1 of 1 runs)"), "{cpu}");
    // 3600 per vCPU-hour is one per vCPU-second.
    let slurm = out
        .lines()
        .find(|l| l.trim_start().starts_with("slurm "))
        .unwrap();
    let w: Vec<&str> = slurm.split_whitespace().collect();
    let (on_demand, spot): (f64, f64) = (w[1].parse().unwrap(), w[3].parse().unwrap());
    // Amounts are printed to 2 decimals from 1 up, to 4 below.
    assert!((on_demand - vcpu_seconds).abs() <= 0.006, "{out}");
    assert!((spot - vcpu_seconds / 2.0).abs() <= 0.006, "{out}");
}

/// `[pricing]` errors name the file, the line and the key.
#[test]
fn a_negative_price_names_its_key_and_line() {
    let d = Dir::new();
    generate_day(&d, "4", "400", "4", "11");
    let config = d.read("day/batchwin.toml")
        + "\n[pricing]\n[pricing.k8s]\nvcpu_hour = 0.05\ngb_hour = -1\n";
    let line = config.lines().position(|l| l == "gb_hour = -1").unwrap() + 1;
    d.write("day/batchwin.toml", config);
    let o = crate::util::plan_day_command(&d, &[]).assert().code(2);
    let err = crate::util::stderr(&o);
    assert!(
        err.contains(&format!("line {line}"))
            && err.contains("pricing.k8s.gb_hour")
            && err.contains("-1 is not a price"),
        "{err}"
    );
}
