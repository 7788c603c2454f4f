//! A disk that fills up while outputs are written: a clear error, the file recorded as failed,
//! and nothing partial under a final name. Needs a small filesystem: a 1 MB tmpfs, mounted when
//! the tests run as root (as `scripts/test` does in CI).

use crate::util::Dir;

const CONFIG: &str = r#"
[[vendor]]
id = "C"
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
"#;

/// A 1 MB tmpfs at `dir`, unmounted when dropped.
struct Small(std::path::PathBuf);

impl Small {
    fn mount(dir: std::path::PathBuf) -> Option<Small> {
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
    d.write("c.toml", CONFIG);
    let mut csv = String::from("id,name\n");
    for i in 1..200_000 {
        csv.push_str(&format!("{i},name{i}\n"));
    }
    d.write("many.csv", &csv);
    d.write("few.csv", "id,name\n1,a\n");
    let Some(small) = Small::mount(d.path("small")) else {
        return;
    };
    let o = d
        .cmd()
        .args([
            "process", "--config", "c.toml", "--vendor", "C", "--input", "many.csv", "--input",
            "few.csv",
        ])
        .args([
            "--out",
            "small/out",
            "--ledger",
            "ledger.duckdb",
            "--date",
            "2026-11-29",
        ])
        .assert()
        .code(1);
    let out = String::from_utf8_lossy(&o.get_output().stdout).into_owned();
    assert!(
        out.contains("cannot write") && out.contains("No space left on device"),
        "{out}"
    );
    let left: Vec<String> = std::fs::read_dir(small.0.join("out"))
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
    assert!(
        left.contains(&"few.out.csv".to_string()),
        "the other file carried on: {left:?}"
    );
    let ledger = batchwin::ledger::Ledger::open(&d.path("ledger.duckdb")).unwrap();
    let (status, error): (String, String) = ledger
        .connection()
        .query_row(
            "SELECT status, error FROM files WHERE input_path LIKE '%many.csv'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "failed");
    assert!(error.contains("No space left on device"), "{error}");
}
