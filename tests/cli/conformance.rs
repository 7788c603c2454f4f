//! The readers against conforming parsers: Python's `json` module for JSON Lines, expat for
//! XML. The
//! generator and the comparison live in `tests/conformance/*.py` (they run under the test
//! Python that `scripts/test` sets up); this module runs them on the built binary.

use std::path::Path;

use crate::util::Dir;

/// Runs a differential script with the test Python; skipped (with a note) without one.
fn differential(script: &str, args: &[&str]) {
    let Some(python) = std::env::var_os("BATCHWIN_TEST_PYTHON") else {
        assert!(
            std::env::var_os("BATCHWIN_REQUIRE_SERVICES").is_none(),
            "BATCHWIN_TEST_PYTHON is not set; scripts/test sets it"
        );
        eprintln!("BATCHWIN_TEST_PYTHON is not set; scripts/test sets it. Not checked here.");
        return;
    };
    let d = Dir::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(script);
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(assert_cmd::cargo::cargo_bin("batchwin"))
        .arg(d.path("work"))
        .args(args)
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{} found differences:\n{text}",
        script.display()
    );
}

/// Generated JSON Lines files and damaged copies of their lines, at 1 and 2 threads and small
/// chunks: every record read as `json.loads` reads it under docs/config.md's rules, every line
/// it refuses rejected with its own line and column.
#[test]
fn jsonl_reads_as_python_json_does() {
    for seed in ["1", "2"] {
        differential("jsonl_differential.py", &["--seed", seed, "--files", "8"]);
    }
}

/// Generated XML files, a fifth of their records damaged, at 1 and 2 threads and small chunks:
/// every record expat reads gives expat's values under docs/config.md's rules, every record it
/// refuses is rejected.
#[test]
fn xml_reads_as_expat_does() {
    for seed in ["1", "2"] {
        differential("xml_differential.py", &["--seed", seed, "--files", "8"]);
    }
}
