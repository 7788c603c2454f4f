//! A temporary folder with fixtures and a `batchwin` command that runs in it with the
//! project's environment variables cleared.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use sha2::{Digest, Sha256};

pub struct Dir {
    pub tmp: tempfile::TempDir,
}

pub const MASK_KEY: &str = "0123456789abcdef0123456789abcdef";

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, contents).expect("write fixture");
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// `batchwin` in this folder, with every `BATCHWIN_*` variable removed and a known
    /// masking key.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("batchwin").expect("binary");
        for (k, _) in std::env::vars() {
            if k.starts_with("BATCHWIN_") || k.starts_with("RAYON_") {
                c.env_remove(k);
            }
        }
        c.env("BATCHWIN_MASK_KEY", MASK_KEY);
        c.current_dir(self.root());
        c
    }
}

/// sha256 of every file below `dir` (relative path -> hex), for comparing whole trees.
pub fn tree_hashes(
    dir: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if !skip(&p) {
                let rel = p.strip_prefix(dir).expect("prefix").display().to_string();
                out.insert(
                    rel,
                    hex::encode(Sha256::digest(std::fs::read(&p).expect("read"))),
                );
            }
        }
    }
    out
}

/// Replaces the temp folder in a message by `[TMP]` so snapshots are stable.
pub fn redact(text: &str, dir: &Dir) -> String {
    text.replace(&dir.root().display().to_string(), "[TMP]")
}

/// Asserts that every output and reject file under `whole/VENDOR/` equals, byte for byte, the
/// same file under `run/VENDOR/`, or the concatenation of its parts (`NAME.part-…`) in order.
pub fn assert_same_outputs(whole: &Path, run: &Path) {
    let mut checked = 0;
    for vendor in std::fs::read_dir(whole).expect("whole outputs") {
        let vendor = vendor.expect("entry");
        if !vendor.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(vendor.path()).expect("vendor outputs") {
            let f = f.expect("entry");
            let name = f.file_name().to_string_lossy().into_owned();
            let expected = std::fs::read(f.path()).expect("read");
            let dir = run.join(vendor.file_name());
            let mut pieces: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n == &name || n.starts_with(&format!("{name}.part-")))
                .collect();
            pieces.sort();
            assert!(
                !pieces.is_empty(),
                "no output for {name} in {}",
                dir.display()
            );
            let joined: Vec<u8> = pieces
                .iter()
                .flat_map(|p| std::fs::read(dir.join(p)).expect("read"))
                .collect();
            assert!(
                joined == expected,
                "{name}: {} pieces differ from the whole-file output",
                pieces.len()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no outputs compared under {}", whole.display());
}

/// `batchwin generate` of a small day into `DIR/day`.
pub fn generate_day(d: &Dir, files: &str, records: &str, vendors: &str, seed: &str) {
    d.cmd()
        .args([
            "generate",
            "--out",
            "day",
            "--files",
            files,
            "--records",
            records,
            "--vendors",
            vendors,
            "--seed",
            seed,
        ])
        .assert()
        .success();
}

/// `batchwin process` of the whole generated day (`DIR/day`) into `DIR/OUT`; must succeed.
pub fn process_day(d: &Dir, out: &str) {
    d.cmd()
        .args([
            "process",
            "--config",
            "day/batchwin.toml",
            "--inbound",
            "day/inbound/2026-11-29",
            "--out",
            out,
            "--date",
            "2026-11-29",
        ])
        .assert()
        .code(0);
}
