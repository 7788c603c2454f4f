//! The command line's own documentation: shell completion scripts and man pages, written
//! from the clap definition of the command line (handed in by `cli`), so they cannot drift
//! from the parser.

use std::io::Write;

/// Writes the completion script of `shell` for the command line `cmd`.
pub fn completions(cmd: &mut clap::Command, shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, cmd, "batchwin", out);
}

/// The man pages of the command line `cmd`: (file name, roff text), `batchwin.1` first, then
/// `batchwin-SUBCOMMAND.1` for each subcommand, in the order `--help` lists them.
pub fn man_pages(cmd: &clap::Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = Vec::new();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    pages.push(("batchwin.1".to_string(), page));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        // A subcommand's page is titled and named as `man batchwin-NAME` finds it.
        let name = format!("batchwin-{}", sub.get_name());
        let sub = sub
            .clone()
            .name(name.clone())
            .version(cmd.get_version().unwrap_or_default().to_string());
        let mut page = Vec::new();
        clap_mangen::Man::new(sub).render(&mut page)?;
        pages.push((format!("{name}.1"), page));
    }
    Ok(pages)
}
