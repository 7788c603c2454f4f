//! `batchwin --help` and every subcommand's `--help`, snapshotted: a flag added, renamed or
//! dropped, or a description changed, shows in review, and the docs can be checked against it.

use clap::CommandFactory;

use crate::util::{Dir, stdout};

/// Every subcommand, in the order `batchwin --help` lists them.
const SUBCOMMANDS: [&str; 14] = [
    "fetch",
    "manifest",
    "plan",
    "process",
    "generate",
    "publish",
    "report",
    "status",
    "log",
    "release",
    "run",
    "demo",
    "completions",
    "man",
];

/// What `batchwin ARGS --help` prints, as it prints it into a pipe: the width clap wraps at
/// comes from a terminal or `COLUMNS`, so neither is passed on. [`Dir::cmd`] clears every
/// `BATCHWIN_*` variable, so `[env: NAME=]` shows no value from the machine the tests run on.
fn help(args: &[&str]) -> String {
    let d = Dir::new();
    let o = d
        .cmd()
        .env_remove("COLUMNS")
        .env_remove("LINES")
        .args(args)
        .arg("--help")
        .assert()
        .code(0);
    stdout(&o)
}

#[test]
fn the_snapshotted_subcommands_are_all_there_are() {
    let names: Vec<String> = batchwin::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "help")
        .collect();
    assert_eq!(
        names, SUBCOMMANDS,
        "a subcommand was added, removed or renamed: update SUBCOMMANDS and accept its snapshot"
    );
}

#[test]
fn help_of_batchwin_and_every_subcommand() {
    let top = help(&[]);
    for name in SUBCOMMANDS {
        assert!(
            top.contains(&format!("  {name} ")),
            "`batchwin --help` does not list {name}:\n{top}"
        );
    }
    insta::assert_snapshot!("help", top);
    for name in SUBCOMMANDS {
        insta::assert_snapshot!(format!("help_{name}"), help(&[name]));
    }
}

/// `batchwin completions SHELL` for every shell clap_complete knows: a script that names every
/// subcommand; bash's parses (`bash -n`).
#[test]
fn completions_for_every_shell() {
    let d = Dir::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = d.cmd().args(["completions", shell]).assert().code(0);
        let script = stdout(&o);
        for name in SUBCOMMANDS {
            assert!(script.contains(name), "{shell}: {name} missing");
        }
        if shell == "bash" {
            d.write("batchwin.bash", &script);
            let ok = std::process::Command::new("bash")
                .arg("-n")
                .arg(d.path("batchwin.bash"))
                .status()
                .expect("bash");
            assert!(ok.success(), "the bash completion script does not parse");
        }
    }
    d.cmd().args(["completions", "tcsh"]).assert().code(2);
}

/// `batchwin man --out DIR`: `batchwin.1` and one page per subcommand, each with its options,
/// that groff renders without a warning.
#[test]
fn man_pages_for_batchwin_and_every_subcommand() {
    let d = Dir::new();
    d.cmd().args(["man", "--out", "man"]).assert().code(0);
    let mut pages = vec!["batchwin.1".to_string()];
    pages.extend(SUBCOMMANDS.iter().map(|n| format!("batchwin-{n}.1")));
    let mut found: Vec<String> = std::fs::read_dir(d.path("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    pages.sort();
    assert_eq!(found, pages);
    let process = d.read("man/batchwin-process.1");
    assert!(
        process.starts_with(".ie") || process.contains(".TH batchwin-process 1"),
        "{process}"
    );
    assert!(process.contains("chunk\\-bytes"), "{process}");
    for page in &pages {
        let out = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(d.path(&format!("man/{page}")))
            .output()
            .expect("groff (Debian: apt-get install groff-base)");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
