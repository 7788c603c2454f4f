//! A generated day run as Slurm job arrays on a real single-node Slurm, started by
//! `scripts/test` (see `scripts/services/slurm-up`).

use std::time::{Duration, Instant};

use crate::util::{Dir, assert_same_outputs, generate_day, plan_day, process_day};

#[test]
fn a_planned_day_runs_on_slurm_and_matches_local_processing() {
    if std::env::var_os("SLURM_CONF").is_none() {
        eprintln!("SLURM_CONF is not set: no Slurm to submit to. scripts/test starts one.");
        return;
    }
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
    let out = std::process::Command::new("bash")
        .arg(d.path("emit/slurm/submit.sh"))
        .env("BATCHWIN_MASK_KEY", crate::util::MASK_KEY)
        .output()
        .expect("submit.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "submit.sh: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect();
    // Two stages of 3 slices in arrays of at most 2 tasks: 4 arrays, and the report job.
    assert_eq!(ids.len(), 5, "{text}");

    let started = Instant::now();
    let states = loop {
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
            break states;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "Slurm jobs did not finish in time:\n{states}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(states.lines().all(|l| l.ends_with("COMPLETED")), "{states}");
    // Array tasks 0..=1 and 0..=0 of each stage, plus the report: 7 jobs.
    assert_eq!(states.lines().count(), 7, "{states}");
    assert_same_outputs(&d.path("whole"), &run);
    let ledgers = std::fs::read_dir(run.join("ledgers")).unwrap().count();
    assert_eq!(ledgers, 6);
    let report = std::fs::read_dir(run.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("report"))
        .expect("report log");
    let report = std::fs::read_to_string(report).unwrap();
    // The report job merged every slice's ledger: the 20 files, none failed.
    assert!(report.contains("files      20 ("), "{report}");
    assert!(report.contains(" succeeded, 0 failed)"), "{report}");
}
