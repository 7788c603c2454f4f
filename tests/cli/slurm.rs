//! A generated day run as Slurm job arrays on a real single-node Slurm, started by
//! `scripts/test` (see `scripts/services/slurm-up`): from a shared folder, and from a run
//! location on the S3 API server that checks signatures, with workers that share nothing but
//! the store.

use std::time::{Duration, Instant};

use crate::run_location;
use crate::telemetry::{Recorder, spans};
use crate::util::{Dir, assert_same_outputs, generate_day, plan_day, process_day};

#[test]
fn a_planned_day_runs_on_slurm_and_matches_local_processing() {
    let Some(_) = crate::util::service("SLURM_CONF") else {
        return;
    };
    let d = Dir::new();
    generate_day(&d, "20", "30000", "10", "5");
    process_day(&d, "whole");
    let bin = assert_cmd::cargo::cargo_bin("batchwin");
    let run = d.path("run");
    plan_day(
        &d,
        &[
            "--slices",
            "3",
            "--split-bytes",
            "60000",
            "--emit",
            "slurm",
            "--emit-dir",
            "emit",
            "--slurm-max-array-size",
            "2",
            "--max-concurrent",
            "2",
            "--worker-batchwin",
            bin.to_str().unwrap(),
            "--worker-out",
            run.to_str().unwrap(),
        ],
    );
    let ids = submit_jobs(submit_command(&d));
    // Two stages of 3 slices in arrays of at most 2 tasks: 4 arrays, and the report job.
    assert_eq!(ids.len(), 5, "{ids:?}");
    let states = wait_for(&ids);
    assert!(states.lines().all(|l| l.ends_with("COMPLETED")), "{states}");
    // Array tasks 0..=1 and 0..=0 of each stage, plus the report: 7 jobs.
    assert_eq!(states.lines().count(), 7, "{states}");
    assert_same_outputs(&d.path("whole"), &run);
    let ledgers = std::fs::read_dir(run.join("ledgers")).unwrap().count();
    assert_eq!(ledgers, 6);
    let report = report_log(&run);
    // The report job merged every slice's ledger: the 20 files, none failed.
    assert!(report.contains("files      20 ("), "{report}");
    assert!(report.contains(" succeeded, 0 failed)"), "{report}");
}

/// A vendor whose files fail, and one `after` it, on Slurm: the next stage starts once the
/// first has ended (`afterany`), its slices record the vendor after the failed one as `blocked`
/// with the parent named, and the report job runs and says the day failed; every job ends.
#[test]
fn a_failed_vendor_blocks_the_one_after_it_and_the_report_runs_on_slurm() {
    let Some(_) = crate::util::service("SLURM_CONF") else {
        return;
    };
    let d = crate::engines::day_where_v002_fails();
    let bin = assert_cmd::cargo::cargo_bin("batchwin");
    let run = d.path("run");
    plan_day(
        &d,
        &[
            "--slices",
            "4",
            "--emit",
            "slurm",
            "--emit-dir",
            "emit",
            "--worker-batchwin",
            bin.to_str().unwrap(),
            "--worker-out",
            run.to_str().unwrap(),
        ],
    );
    let ids = submit_jobs(submit_command(&d));
    let states = wait_for(&ids);
    // The slices with V002's failed files and the report exit 1; none is left waiting.
    assert!(
        states.lines().any(|l| l.ends_with("FAILED"))
            && states
                .lines()
                .all(|l| l.ends_with("FAILED") || l.ends_with("COMPLETED")),
        "{states}"
    );
    let report = report_log(&run);
    // `N succeeded, M failed` is printed whatever M; `blocked` only when some are.
    assert!(
        !report.contains("succeeded, 0 failed") && report.contains("blocked"),
        "{report}"
    );
    crate::engines::assert_v002_failed_and_v003_blocked(&d);
}

/// `bash DIR/emit/slurm/submit.sh` with the masking key the tasks read.
fn submit_command(d: &Dir) -> std::process::Command {
    let mut submit = std::process::Command::new("bash");
    submit
        .arg(d.path("emit/slurm/submit.sh"))
        .env("BATCHWIN_MASK_KEY", crate::util::MASK_KEY);
    submit
}

/// The log the report job left in the run folder `run` (it ran, or this panics).
fn report_log(run: &std::path::Path) -> String {
    let log = std::fs::read_dir(run.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("report"))
        .expect("the report job's log");
    std::fs::read_to_string(log).unwrap()
}

/// Runs an emitted `submit.sh`: the ids of the jobs it submitted.
fn submit_jobs(mut submit: std::process::Command) -> Vec<String> {
    let out = submit.output().expect("submit.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "submit.sh: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect()
}

/// Waits until every task of the jobs `ids` has ended: one `ID STATE` line per task.
fn wait_for(ids: &[String]) -> String {
    let started = Instant::now();
    loop {
        let q = std::process::Command::new("squeue")
            .args(["-h", "-t", "all", "-o", "%i %T", "-j", &ids.join(",")])
            .output()
            .expect("squeue");
        let states = String::from_utf8_lossy(&q.stdout).into_owned();
        let done = !states.is_empty()
            && states.lines().all(|l| {
                ![
                    "PENDING",
                    "RUNNING",
                    "CONFIGURING",
                    "COMPLETING",
                    "REQUEUED",
                ]
                .iter()
                .any(|s| l.ends_with(s))
            });
        if done {
            return states;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "Slurm jobs did not finish in time:\n{states}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

const TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
const PARENT: &str = "10f067aa0ba902b8";

/// A day staged on the S3 API server that checks request signatures (s3s-fs) runs as Slurm
/// arrays of workers that share nothing but the store: planned to a run location there with the Slurm files for URL workers (node-local
/// scratch, no `--config`), a large file cut in parts by ranged reads, submitted as emitted
/// with the store's credentials in the submitting environment. The report and publish from
/// the run location give the generator's totals and, byte for byte, local processing's
/// outputs; every task's spans join the trace `plan` ran in (`TRACEPARENT`), as the script
/// passes it on.
#[test]
fn a_day_staged_on_s3_runs_as_slurm_arrays_of_url_workers_in_the_plans_trace() {
    let Some(conf) = crate::util::service("SLURM_CONF") else {
        return;
    };
    let Some(loc) = run_location::s3_sigv4() else {
        return;
    };
    let d = Dir::new();
    run_location::stage(&d, &loc, "12", "20000", "4");
    let otlp = Recorder::start(d.root(), "otlp");
    let bin = assert_cmd::cargo::cargo_bin("batchwin");
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let o = run_location::plan_command(
        &d,
        &loc,
        &[
            "--slices",
            "3",
            "--split-bytes",
            "100000",
            "--emit",
            "slurm",
            "--emit-dir",
            "emit",
            "--slurm-max-array-size",
            "2",
            "--max-concurrent",
            "3",
            "--worker-batchwin",
            bin.to_str().unwrap(),
            "--worker-out",
            &loc.url("run"),
        ],
    )
    .env("TRACEPARENT", &tp)
    .output()
    .expect("plan");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&loc.objects("run")["plan.json"]).expect("plan");
    let slices = plan["slices"].as_array().unwrap().len();
    assert!(
        plan["slices"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["units"].as_array().unwrap())
            .any(|u| u["part"]["preamble_bytes"].is_u64()),
        "a file cut by ranged reads"
    );
    // Submitted from a shell with the store's credentials and the trace exporter's endpoint
    // (Slurm hands the submitting environment to the tasks), not TRACEPARENT: the scripts
    // give the plan's to every task.
    let mut bash = std::process::Command::new("bash");
    bash.arg(d.path("emit/slurm/submit.sh"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SLURM_CONF", &conf)
        .env("BATCHWIN_MASK_KEY", crate::util::MASK_KEY)
        .envs(loc.env.iter().map(|(k, v)| (k, v)))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url(""))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
    let ids = submit_jobs(bash);
    let states = wait_for(&ids);
    assert!(states.lines().all(|l| l.ends_with("COMPLETED")), "{states}");
    assert_eq!(states.lines().count(), slices + 1, "{states}");
    let logs = crate::util::tree(&d.path("emit/slurm/logs"));
    let report = logs
        .iter()
        .find(|(k, _)| k.contains("report"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .expect("the report job's log");
    assert!(report.contains("files      12 ("), "{report}");
    assert!(report.contains(" succeeded, 0 failed)"), "{report}");
    run_location::report_and_publish(&d, &loc);
    // One `slice` span per task, child of the plan's span context; each unit's `file` span
    // below its slice's.
    let all = spans(&otlp);
    let slice_spans: Vec<_> = all.iter().filter(|s| s.name == "slice").collect();
    let mut seen: Vec<i64> = slice_spans
        .iter()
        .map(|s| s.int("batchwin.slice"))
        .collect();
    seen.sort();
    assert_eq!(seen, (0..slices as i64).collect::<Vec<_>>());
    for s in &slice_spans {
        assert_eq!((s.trace.as_str(), s.parent.as_str()), (TRACE, PARENT));
    }
    let files: Vec<_> = all.iter().filter(|s| s.name == "file").collect();
    let units: usize = plan["slices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["units"].as_array().unwrap().len())
        .sum();
    assert_eq!(files.len(), units);
    assert!(
        files
            .iter()
            .all(|f| f.trace == TRACE && slice_spans.iter().any(|s| s.id == f.parent))
    );
}
