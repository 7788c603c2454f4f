//! `batchwin run`: a whole window on this machine or on Slurm, deferral at the window's end and
//! the next run finishing the work, the overlap lock, and `--dry-run`.

use std::time::{Duration, Instant};

use crate::util::{Dir, assert_published, generate_day, process_day, tree};

const DATE: &str = "2026-11-29";

/// Adds a window `day` (00:00 to `end`, UTC) reading the generated day and delivering to
/// `outbound/`.
fn add_window(d: &Dir, end: &str) {
    let cfg = d.read("day/batchwin.toml")
        + &format!(
            "\n[windows.day]\nstart = \"00:00\"\nend = \"{end}\"\ntime_zone = \"UTC\"\nsource = {:?}\ntarget = {:?}\n",
            d.path("day").display().to_string(),
            d.path("outbound").display().to_string()
        );
    d.write("day/batchwin.toml", cfg);
}

fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "run",
        "--config",
        "day/batchwin.toml",
        "--window",
        "day",
        "--date",
        DATE,
        "--runs",
        "runs",
    ];
    a.extend_from_slice(extra);
    a
}

fn stdout(o: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&o.get_output().stdout).into_owned()
}

/// Totals of the run's merged ledgers, from `report --format json`.
fn totals(d: &Dir) -> serde_json::Value {
    let o = d
        .cmd()
        .args([
            "report",
            "--ledgers",
            &format!("runs/{DATE}-day/out/ledgers"),
            "--format",
            "json",
        ])
        .assert();
    let v: serde_json::Value = serde_json::from_slice(&o.get_output().stdout).expect("report json");
    v["totals"].clone()
}

fn expected(d: &Dir) -> serde_json::Value {
    serde_json::from_str(&d.read("day/expected.json")).unwrap()
}

#[test]
fn a_window_runs_end_to_end_and_matches_single_file_processing() {
    let d = Dir::new();
    generate_day(&d, "12", "30000", "3", "31");
    process_day(&d, "whole");
    add_window(&d, "23:59");
    let o = d
        .cmd()
        .args(run_args(&["--catch-up", "--workers", "2"]))
        .assert()
        .code(0);
    let out = stdout(&o);
    for step in [
        "step       fetch: batchwin fetch",
        "step       plan: batchwin plan",
        "step       slice 1: batchwin process",
        "step       publish: batchwin publish",
        "step       report: batchwin report",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    assert_published(&d.path("whole"), &d.path(&format!("outbound/{DATE}")));
    let t = totals(&d);
    let e = expected(&d);
    assert_eq!(t["records_in"], e["records"], "{t}");
    assert_eq!(t["records_rejected"], e["invalid"], "{t}");
    let run = d.path(&format!("runs/{DATE}-day"));
    for f in [
        "manifest.jsonl",
        "plan.json",
        "report.html",
        "publish.duckdb",
        "state.json",
    ] {
        assert!(run.join(f).is_file(), "{f} kept in the run folder");
    }
    // Again: nothing left to do, nothing delivered twice.
    let again = d.cmd().args(run_args(&["--catch-up"])).assert().code(0);
    assert!(
        stdout(&again).contains("12 files already done"),
        "{}",
        stdout(&again)
    );
    assert!(
        stdout(&again).contains("nothing left to do"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn a_window_too_short_defers_medium_and_low_and_the_next_run_finishes_them() {
    let d = Dir::new();
    generate_day(&d, "12", "30000", "3", "32");
    process_day(&d, "whole");
    // The window closed a minute after midnight of a day long past: only HIGH units start.
    add_window(&d, "00:01");
    let first = d.cmd().args(run_args(&[])).assert().code(1);
    let out = stdout(&first);
    assert!(out.contains("deferred"), "{out}");
    let e = expected(&d);
    let per_file = e["per_file"].as_array().unwrap();
    let high = per_file.iter().filter(|f| f["priority"] == "high").count();
    let published = tree(&d.path(&format!("outbound/{DATE}")));
    let outputs = published
        .keys()
        .filter(|k| !k.contains(".rejects."))
        .count();
    assert_eq!(
        outputs,
        high,
        "only HIGH files were done and published: {:?}",
        published.keys()
    );
    assert!(high > 0 && high < per_file.len());
    let state: serde_json::Value =
        serde_json::from_str(&d.read(&format!("runs/{DATE}-day/state.json"))).unwrap();
    assert_eq!(state["complete"], false);

    let second = d.cmd().args(run_args(&["--catch-up"])).assert().code(0);
    assert!(
        stdout(&second).contains(&format!("{high} files already done")),
        "{}",
        stdout(&second)
    );
    assert_published(&d.path("whole"), &d.path(&format!("outbound/{DATE}")));
    let t = totals(&d);
    assert_eq!(t["records_in"], e["records"], "{t}");
    assert_eq!(t["records_rejected"], e["invalid"], "{t}");
}

#[test]
fn two_runs_of_one_window_never_overlap() {
    let d = Dir::new();
    generate_day(&d, "2", "500", "1", "33");
    add_window(&d, "23:59");
    let dir = d.path(&format!("runs/{DATE}-day"));
    std::fs::create_dir_all(&dir).unwrap();
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .unwrap();
    held.try_lock().expect("the test holds the lock");
    let o = d.cmd().args(run_args(&["--catch-up"])).assert().code(1);
    let err = String::from_utf8_lossy(&o.get_output().stderr).into_owned();
    assert!(
        err.contains("another run of window `day` for 2026-11-29 is in progress"),
        "{err}"
    );
    assert!(!dir.join("manifest.jsonl").exists(), "nothing was fetched");
    drop(held);
    d.cmd().args(run_args(&["--catch-up"])).assert().code(0);
}

#[test]
fn a_dry_run_shows_the_work_and_touches_nothing() {
    let d = Dir::new();
    generate_day(&d, "6", "3000", "2", "34");
    add_window(&d, "23:59");
    let before = tree(&d.path("day"));
    let o = d.cmd().args(run_args(&["--dry-run"])).assert().code(0);
    let out = stdout(&o);
    assert!(out.contains("would fetch 6 files"), "{out}");
    assert!(
        out.contains("slices") && out.contains("step       slice 0: batchwin process"),
        "{out}"
    );
    assert!(!d.path("runs").exists(), "a dry run creates nothing");
    assert!(!d.path("outbound").exists());
    assert_eq!(tree(&d.path("day")), before);
}

#[test]
fn a_window_runs_on_slurm() {
    if crate::util::service("SLURM_CONF").is_none() {
        return;
    }
    let d = Dir::new();
    generate_day(&d, "8", "20000", "3", "35");
    process_day(&d, "whole");
    add_window(&d, "23:59");
    let started = Instant::now();
    let o = d
        .cmd()
        .args(run_args(&["--executor", "slurm"]))
        .env("SLURM_CONF", std::env::var("SLURM_CONF").unwrap())
        .assert()
        .code(0);
    let out = stdout(&o);
    assert!(
        out.contains("submitted") && out.contains("completed"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(300));
    assert_published(&d.path("whole"), &d.path(&format!("outbound/{DATE}")));
    let t = totals(&d);
    assert_eq!(t["records_in"], expected(&d)["records"], "{t}");
}
