//! SIGTERM and SIGINT: stop cleanly, exit 128 + signal, leave no temporary files, and let the
//! next run finish the work.

use std::time::{Duration, Instant};

use crate::util::{
    DATE, Dir, generate_day, plan_day_command, process_day, process_day_args, tree_hashes,
};

/// Sends `signal` (`-TERM`, `-INT`) to `child`, which must still be running.
fn send(signal: &str, child: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(
        sent.success(),
        "the process ended before the signal: make the day larger"
    );
}

fn stop_with(signal: &str, code: i32) {
    let d = Dir::new();
    generate_day(&d, "40", "1500000", "4", "9");
    let mut child = d
        .process()
        .args(process_day_args("out", DATE))
        .arg("-q")
        .spawn()
        .expect("start");
    std::thread::sleep(Duration::from_millis(700));
    send(signal, &child);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit within 10 s of {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(code), "{signal}");
    // No temporary or partial file anywhere in the output.
    let leftovers: Vec<String> = tree_hashes(&d.path("out"), &|_| false)
        .into_keys()
        .filter(|k| k.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let ledger = batchwin::ledger::Ledger::open(&d.path("out/ledger.duckdb")).unwrap();
    let (exit, done): (i32, i64) = ledger
        .connection()
        .query_row(
            "SELECT (SELECT exit_code FROM runs), (SELECT count(*) FROM files WHERE status = 'succeeded')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(exit, code);
    assert!(done < 40, "everything had finished before the signal");
    drop(ledger);
    // The next run finishes the day.
    process_day(&d, "out");
}

#[test]
fn sigterm_stops_cleanly_with_143_and_the_next_run_finishes() {
    stop_with("-TERM", 143);
}

#[test]
fn sigint_stops_cleanly_with_130() {
    stop_with("-INT", 130);
}

#[test]
fn work_in_flight_past_the_grace_period_is_abandoned_and_redone_next_time() {
    let d = Dir::new();
    // One file of a million records in a single chunk: the whole unit is one piece of work in
    // flight that takes seconds, much longer than the grace period.
    generate_day(&d, "1", "1000000", "4", "10");
    let child = d
        .process()
        .args(process_day_args("out", DATE))
        .args([
            "--chunk-bytes",
            "1000000000",
            "--grace-period",
            "200ms",
            "-q",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    // Signal once the unit's temporary output exists, that is, once its work is in flight.
    let started = Instant::now();
    while !std::fs::read_dir(d.path("out/V001"))
        .map(|r| {
            r.flatten()
                .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        })
        .unwrap_or(false)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the unit never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    send("-TERM", &child);
    let signalled = Instant::now();
    let out = child.wait_with_output().expect("wait");
    let took = signalled.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(143), "{err}");
    // The output and the reject file are removed by the grace period's end. On a loaded
    // machine the signal can come while the unit is still being framed: the unit is then
    // cancelled at once (its files removed) and the process ends by itself, within the grace
    // period or just after it (waiting for the ledger). Either way it ends with 143 at once
    // and nothing is left behind (below).
    let by_grace = err.contains("grace period of 200ms after signal 15 is over");
    assert!(
        !by_grace
            || err.contains("(2 temporary files removed)")
            || err.contains("(0 temporary files removed)"),
        "{err}"
    );
    assert!(took < Duration::from_secs(2), "exit {took:?} after SIGTERM");
    let left: Vec<String> = tree_hashes(&d.path("out"), &|_| false)
        .into_keys()
        .filter(|k| !k.starts_with("ledger.duckdb") && k != "status.json")
        .collect();
    assert!(
        left.is_empty(),
        "nothing but the ledger and the status document stays: {left:?}"
    );
    process_day(&d, "out");
}

/// A generated day of `files` files of `records` records in all, planned into one slice at
/// `plan.json`.
fn planned_day(files: &str, records: &str, seed: &str) -> Dir {
    let d = Dir::new();
    generate_day(&d, files, records, "4", seed);
    plan_day_command(&d, &["--out", "plan.json", "--slices", "1", "--date", DATE])
        .assert()
        .success();
    d
}

/// `process` of the slice of [`planned_day`] into `out`, quiet, with `flags`.
fn slice_of(d: &Dir, out: &str, flags: &[&str]) -> std::process::Command {
    let mut c = d.process();
    c.args(crate::util::slice_args("plan.json", 0, out))
        .arg("-q")
        .args(flags);
    c
}

/// A slice of a plan stopped by SIGTERM on the last attempt its engine makes (`--attempts`;
/// on AWS Batch, a Spot reclaim's notice, which the job definition retries while attempts are
/// left) ends with `--failures-exit 0`'s code, so that the later jobs and the report run; on
/// an earlier attempt it ends with 143, to be retried.
#[test]
fn sigterm_on_the_last_attempt_of_a_slice_lets_the_later_jobs_run() {
    let d = planned_day("40", "1500000", "9");
    for (attempt, code) in [("1", 143), ("2", 0)] {
        let out = format!("out-{attempt}");
        let flags = [
            "--failures-exit",
            "0",
            "--attempts",
            "2",
            "--attempt",
            attempt,
        ];
        let child = slice_of(&d, &out, &flags)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start");
        // Signalled once its status document says it runs (its handlers are in place by then).
        let status = d.path(&format!("{out}/status"));
        let started = Instant::now();
        while std::fs::read_dir(&status).map_or(true, |mut r| r.next().is_none()) {
            assert!(started.elapsed() < Duration::from_secs(30), "it never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300));
        send("-TERM", &child);
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "attempt {attempt}: {err}");
        let said =
            "attempt    2 of 2 was stopped by SIGTERM and none is left: exit code 0 instead of 143";
        assert_eq!(err.contains(said), code == 0, "attempt {attempt}: {err}");
    }
}

/// A slice whose unit in flight outlasts the grace period after its `--stop-after` (one
/// file of two million records in one chunk: about 1.5 s of work here) is ended by the
/// watchdog with `--failures-exit`'s code, not 128 + a signal, as the slice would have ended
/// by itself.
#[test]
fn a_slice_stopped_at_its_time_limit_ends_with_its_failures_exit_code_after_the_grace_period() {
    let d = planned_day("1", "2000000", "10");
    let flags = [
        "--chunk-bytes",
        "1000000000",
        "--stop-after",
        "300ms",
        "--grace-period",
        "200ms",
        "--failures-exit",
        "0",
    ];
    let out = slice_of(&d, "out", &flags).output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // On a much faster machine the unit could end within the grace period: the slice then
    // ends by itself, saying so.
    assert!(
        err.contains("the grace period of 200ms after its time limit is over")
            || err.contains("stopped    the slice ran for its --stop-after of 300ms"),
        "{err}"
    );
}

/// A fetch to a staging store, stopped by SIGTERM (an engine stopping the job, `run` stopping
/// its step) while it waits for the files to settle: it exits with 143 at once and leaves
/// nothing behind in the temporary folder (the folder of copies on their way to the store) or
/// in staging; the next fetch stages the day.
#[test]
fn a_fetch_stopped_by_sigterm_leaves_no_temporary_folder() {
    let d = Dir::new();
    generate_day(&d, "3", "300", "1", "12");
    let tmp = d.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let staging = format!("file://{}", d.path("staging").display());
    let fetch = |settle: &str| {
        let mut c = d.process();
        c.env("TMPDIR", &tmp).args([
            "-q",
            "fetch",
            "--config",
            "day/batchwin.toml",
            "--source",
            "day",
            "--date",
            DATE,
            "--staging",
            &staging,
            "--manifest",
            "manifest.jsonl",
            "--settle",
            settle,
        ]);
        c
    };
    let child = fetch("60s")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    stop_once_copying(child, &tmp, &["batchwin-fetch-"]);
    if d.path("staging").exists() {
        let staged = tree_hashes(&d.path("staging"), &|_| false);
        assert!(staged.is_empty(), "{staged:?}");
    }

    let out = fetch("0s").output().expect("fetch");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(names_in(&tmp), Vec::<String>::new());
    let staged = tree_hashes(&d.path("staging"), &|_| false);
    assert_eq!(staged.len(), 3, "{staged:?}");
    assert_eq!(d.read("manifest.jsonl").lines().count(), 3);
}

/// A publish following the slices (as `run` starts it beside them), stopped by SIGTERM (`run`
/// passing its own on, or dying): it exits with 143 at once and leaves neither of its local
/// folders (the ledgers' copies, the outputs' copies) behind in the temporary folder.
#[test]
fn a_publish_stopped_by_sigterm_leaves_no_temporary_folder() {
    let d = Dir::new();
    generate_day(&d, "2", "100", "1", "13");
    let tmp = d.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::create_dir_all(d.path("out")).unwrap();
    let child = d
        .process()
        .env("TMPDIR", &tmp)
        .args([
            "-q",
            "publish",
            "--config",
            "day/batchwin.toml",
            "--ledgers",
            "out",
            "--follow",
            "out/slices.ended",
            "--target",
            "outbound",
            "--date",
            DATE,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    stop_once_copying(child, &tmp, &["batchwin-ledgers-", "batchwin-publish-"]);
}

/// The names in `dir`, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits until `child` (its stderr piped) has made its temporary folders in `tmp`, one named
/// after each of `prefixes` (in their order), then stops it with SIGTERM: it must exit with 143
/// at once, say that it removed them, and leave `tmp` empty.
fn stop_once_copying(child: std::process::Child, tmp: &std::path::Path, prefixes: &[&str]) {
    let started = Instant::now();
    while names_in(tmp).len() < prefixes.len() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no folders of copies: {:?}",
            names_in(tmp)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let names = names_in(tmp);
    for (name, prefix) in names.iter().zip(prefixes) {
        assert!(name.starts_with(prefix), "{names:?}");
    }
    send("-TERM", &child);
    let signalled = Instant::now();
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(signalled.elapsed() < Duration::from_secs(2));
    let removed = format!(
        "stopped    by signal 15: stopping now ({} temporary files removed)",
        prefixes.len()
    );
    assert!(err.contains(&removed), "{err}");
    assert_eq!(names_in(tmp), Vec::<String>::new());
}
