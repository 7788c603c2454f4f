//! `batchwin completions SHELL` and `batchwin man --out DIR`: the shell completion script and
//! the man pages of the command line `cli` hands in, written by `manual`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::exit::{ExitStatus, Failure};
use crate::printer::GlobalArgs;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. Bash: `batchwin completions bash >
    /// ~/.local/share/bash-completion/completions/batchwin`.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Folder to write the pages into (created when missing); `man -l DIR/batchwin.1` reads one.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn completions(
    _g: &GlobalArgs,
    a: CompletionsArgs,
    mut cmd: clap::Command,
) -> Result<ExitStatus, Failure> {
    crate::manual::completions(&mut cmd, a.shell, &mut std::io::stdout().lock());
    Ok(ExitStatus::Success)
}

pub fn man(g: &GlobalArgs, a: ManArgs, cmd: clap::Command) -> Result<ExitStatus, Failure> {
    let pages = crate::manual::man_pages(&cmd)
        .context("cannot render the man pages")
        .map_err(Failure::data)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create `{}`", a.out.display()))
        .map_err(Failure::data)?;
    for (name, text) in &pages {
        let path = a.out.join(name);
        crate::files::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))
            .map_err(Failure::data)?;
    }
    if !g.quiet {
        println!("{} man pages in {}", pages.len(), a.out.display());
    }
    Ok(ExitStatus::Success)
}
