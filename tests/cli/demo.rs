//! `batchwin demo`: the first command a newcomer runs.

use predicates::prelude::*;

use crate::util::Dir;

#[test]
fn demo_generates_processes_and_checks_a_day() {
    let d = Dir::new();
    d.cmd()
        .args(["demo", "--dir", "demo", "--files", "8", "--records", "4000"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "files      8 (8 succeeded, 0 failed)",
        ))
        .stdout(
            predicate::str::is_match(
                "check +4,000 records and ([0-9]+) rejects, expected 4,000 and ([0-9]+): ok",
            )
            .unwrap(),
        );
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let run = d.path(&format!("demo/runs/{date}-demo"));
    assert!(run.join("out/ledgers/slice-00000.duckdb").is_file());
    assert!(run.join("report.html").is_file());
    let delivered = crate::util::tree(&d.path(&format!("demo/outbound-server/outbound/{date}")));
    assert_eq!(
        delivered.len(),
        8,
        "every output delivered: {:?}",
        delivered.keys()
    );
}

#[test]
fn demo_refuses_an_existing_folder() {
    let d = Dir::new();
    std::fs::create_dir(d.path("demo")).unwrap();
    d.cmd()
        .args(["demo", "--dir", "demo"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));
}
