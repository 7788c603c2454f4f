//! `batchwin --help` and every subcommand's `--help`, snapshotted: a flag added, renamed or
//! dropped, or a description changed, shows in review, and the docs can be checked against it.

use clap::CommandFactory;

use crate::util::{Dir, stdout};

/// Every subcommand, in the order `batchwin --help` lists them.
const SUBCOMMANDS: [&str; 9] = [
    "fetch", "manifest", "plan", "process", "generate", "publish", "report", "run", "demo",
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
