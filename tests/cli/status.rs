//! `batchwin status` on a run in progress: a generated day of many small files on one thread,
//! polled while its slice runs; what it shows only rises, and ends equal to the report's.

use std::time::{Duration, Instant};

use crate::util::{DATE, Dir, generate_day, stdout};

/// `status RUN --format json` now.
fn status(d: &Dir, run: &str) -> serde_json::Value {
    let o = d
        .cmd()
        .args(["status", run, "--format", "json"])
        .output()
        .expect("status");
    status_json(&o)
}

/// The view a `status --format json` printed (exit code 0, or 1 for a view that calls for
/// attention).
pub(crate) fn status_json(o: &std::process::Output) -> serde_json::Value {
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "status failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("status json")
}

pub(crate) fn n(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = v;
    for k in path {
        v = match k.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[*k],
        };
    }
    v.as_u64().unwrap_or_else(|| panic!("{path:?} in {v}"))
}

#[test]
fn status_follows_a_running_slice_and_ends_with_the_reports_figures() {
    let d = Dir::new();
    // Many small files on one thread, in chunks of a kilobyte: slow enough to be seen while it
    // runs (each status document is replaced once a second; this slice takes a few seconds).
    generate_day(&d, "1500", "600000", "4", "41");
    std::fs::create_dir_all(d.path("run")).unwrap();
    // The plan is in the run folder, as `run` lays it out: its files named whole.
    let inbound = d.path(&format!("day/inbound/{DATE}"));
    d.cmd()
        .args([
            "plan",
            "--config",
            "day/batchwin.toml",
            "--scan",
            inbound.to_str().unwrap(),
            "--date",
            DATE,
            "--slices",
            "1",
            "--out",
            "run/plan.json",
        ])
        .assert()
        .success();
    // Before any slice started: everything left, the slice waiting.
    let before = status(&d, "run");
    assert_eq!(n(&before, &["totals", "done"]), 0);
    assert_eq!(before["slices"][0]["state"], "waiting");
    let units = n(&before, &["totals", "units"]);
    assert!(units >= 1500, "{units} units");

    let mut child = d
        .process()
        .args([
            "process",
            "--config",
            "day/batchwin.toml",
            "--plan",
            "run/plan.json",
            "--slice",
            "0",
            "--out",
            "run/out",
            "--chunk-bytes",
            "1024",
            "-q",
        ])
        .env("RAYON_NUM_THREADS", "1")
        .spawn()
        .expect("process");
    follow(&mut child, units, || status(&d, "run"));
    let end = status(&d, "run");
    let o = d
        .cmd()
        .args(["report", "--ledgers", "run/out/ledgers", "--format", "json"])
        .assert();
    let report: serde_json::Value = serde_json::from_slice(&o.get_output().stdout).unwrap();
    assert_ends_as_reported(&end, &report, units);
    let table = stdout(&d.cmd().args(["status", "run"]).assert());
    assert!(table.contains("(ended,"), "{table}");
    assert!(table.contains(&format!("{units}/{units} done")), "{table}");
}

/// Polls `status` while `child` (a slice) runs, until it ended: what the view shows (units
/// done, the slice's bytes and records) only rises, and it was seen in progress.
pub(crate) fn follow(
    child: &mut std::process::Child,
    units: u64,
    mut status: impl FnMut() -> serde_json::Value,
) {
    let started = Instant::now();
    let mut seen: Vec<(u64, u64, u64)> = Vec::new();
    let mut while_running = 0;
    let mut mid_while_running = 0;
    loop {
        let running = child.try_wait().expect("wait").is_none();
        let s = status();
        let figures = (
            n(&s, &["totals", "done"]),
            n(&s, &["slices", "0", "bytes_done"]),
            n(&s, &["slices", "0", "records"]),
        );
        if running && s["slices"][0]["state"] == "running" {
            while_running += 1;
            if figures.0 > 0 && figures.0 < units {
                mid_while_running += 1;
            }
            assert!(!s["ended"].as_bool().unwrap());
        }
        if let Some(last) = seen.last() {
            assert!(
                figures.0 >= last.0 && figures.1 >= last.1 && figures.2 >= last.2,
                "went back: {last:?} then {figures:?}"
            );
        }
        seen.push(figures);
        if !running {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the slice takes too long"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // The document is replaced about once a second and a fast machine ends the slice in a few
    // seconds, so one view part-way through (some units done, some left) is what can be asked
    // for; how many such views there are depends on the machine's speed.
    assert!(
        while_running >= 2 && mid_while_running >= 1,
        "the run was not seen in progress: {seen:?}"
    );
}

/// The view at the end: every unit done, and the figures the report gives.
pub(crate) fn assert_ends_as_reported(
    end: &serde_json::Value,
    report: &serde_json::Value,
    units: u64,
) {
    assert!(end["ended"].as_bool().unwrap(), "{end}");
    assert_eq!(n(end, &["totals", "done"]), units);
    assert_eq!(n(end, &["totals", "left"]), 0);
    for (st, rp) in [
        ("succeeded", "succeeded"),
        ("failed", "failed"),
        ("records", "records_in"),
        ("rejected", "records_rejected"),
    ] {
        assert_eq!(
            end["totals"][st], report["totals"][rp],
            "{st}: status {} report {}",
            end["totals"], report["totals"]
        );
    }
    // The per-priority lines cover every unit.
    let by_priority: u64 = end["priorities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| n(p, &["done"]))
        .sum();
    assert_eq!(by_priority, units);
}
