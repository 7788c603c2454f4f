//! A disk that fills up while outputs are written: a clear error, the file recorded as failed,
//! nothing partial under a final name, no temporary file left, and the other files carry on.
//! A day that does not fit on the staging disk: `fetch` stops before it copies anything.
//! Needs a small filesystem: a 1 MB tmpfs, mounted when the tests run as root (as
//! `scripts/test` does in CI).

use crate::util::Dir;

/// Vendors `C` and `D`, alike.
fn config() -> String {
    ["C", "D"]
        .map(|id| {
            format!(
                r#"
[[vendor]]
id = "{id}"
[vendor.input]
format = "csv"
header = true
[[vendor.fields]]
name = "id"
type = "integer"
[[vendor.fields]]
name = "name"
[vendor.output]
format = "csv"
"#
            )
        })
        .concat()
}

/// A 1 MB tmpfs at `dir`, unmounted when dropped.
pub(crate) struct Small(pub std::path::PathBuf);

impl Small {
    pub(crate) fn mount(dir: std::path::PathBuf) -> Option<Small> {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Small(dir))
        } else if std::env::var_os("BATCHWIN_REQUIRE_SERVICES").is_some() {
            panic!("cannot mount a tmpfs: run the tests as root (scripts/test does in CI)")
        } else {
            eprintln!("cannot mount a tmpfs (not root?): skipped");
            None
        }
    }
}

impl Drop for Small {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_file_cleanly() {
    let d = Dir::new();
    d.write("c.toml", config());
    let mut csv = String::from("id,name\n");
    for i in 1..200_000 {
        csv.push_str(&format!("{i},name{i}\n"));
    }
    // Vendor C's outputs go to a small disk that `many.csv` fills (with `few.csv`, which may
    // fit or not: the two are processed at the same time); vendor D's go to the test's disk.
    d.write("in/C/many.csv", &csv);
    d.write("in/C/few.csv", "id,name\n1,a\n");
    d.write("in/D/other.csv", "id,name\n1,a\n2,b\n");
    let Some(small) = Small::mount(d.path("out/C")) else {
        return;
    };
    // An output an earlier run made of an older `many.csv`: not this file's, and gone after it
    // fails (a failed file has no output).
    std::fs::write(small.0.join("many.out.csv"), "id,name\n1,older\n").unwrap();
    let o = d
        .cmd()
        .args([
            "process",
            "--config",
            "c.toml",
            "--inbound",
            "in",
            "--out",
            "out",
        ])
        .args(["--ledger", "ledger.duckdb", "--date", "2026-11-29"])
        .assert()
        .code(1);
    let out = String::from_utf8_lossy(&o.get_output().stdout).into_owned();
    assert!(
        out.contains("cannot write") && out.contains("No space left on device"),
        "{out}"
    );
    let left: Vec<String> = std::fs::read_dir(&small.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !left.iter().any(|n| n.starts_with("many.")),
        "nothing of many.csv under a final name: {left:?}"
    );
    assert!(
        !left.iter().any(|n| n.starts_with('.')),
        "no temporary files: {left:?}"
    );
    let ledger = batchwin::ledger::Ledger::open(&d.path("ledger.duckdb")).unwrap();
    let status = |name: &str| -> (String, Option<String>) {
        ledger
            .connection()
            .query_row(
                "SELECT status, error FROM files WHERE input_path LIKE '%/' || ?",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let (many, error) = status("many.csv");
    assert_eq!(many, "failed");
    assert!(
        error
            .unwrap_or_default()
            .contains("No space left on device")
    );
    // `few.csv` either fitted, or failed as cleanly.
    match status("few.csv") {
        (s, None) if s == "succeeded" => assert!(left.contains(&"few.out.csv".to_string())),
        (s, Some(e)) if s == "failed" => {
            assert!(e.contains("No space left on device"), "{e}");
            assert!(!left.iter().any(|n| n.starts_with("few.")), "{left:?}");
        }
        other => panic!("few.csv: {other:?}"),
    }
    assert_eq!(status("other.csv"), ("succeeded".to_string(), None));
    assert!(
        d.path("out/D/other.out.csv").is_file(),
        "the other vendor carried on"
    );
}

#[test]
fn a_day_that_does_not_fit_on_the_staging_disk_is_not_fetched() {
    let d = Dir::new();
    d.write("c.toml", config());
    d.write("src/inbound/2026-11-29/C/few.csv", "id,name\n1,a\n");
    // 2 MB: more than the 1 MB disk holds.
    let mut csv = String::from("id,name\n");
    while csv.len() < 2 << 20 {
        csv.push_str("123456,a name\n");
    }
    d.write("src/inbound/2026-11-29/D/many.csv", &csv);
    let Some(small) = Small::mount(d.path("staging")) else {
        return;
    };
    let o = d
        .cmd()
        .args([
            "fetch",
            "--config",
            "c.toml",
            "--source",
            "src",
            "--staging",
        ])
        .arg(&small.0)
        .args([
            "--date",
            "2026-11-29",
            "--settle",
            "0s",
            "--manifest",
            "m.jsonl",
        ])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&o.get_output().stderr).into_owned();
    assert!(
        err.contains("the day's files need") && err.contains("nothing was copied"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&small.0).unwrap().collect();
    assert!(left.is_empty(), "nothing staged: {left:?}");
    assert!(
        std::fs::read_to_string(d.path("m.jsonl"))
            .unwrap_or_default()
            .is_empty(),
        "no manifest rows"
    );
}
