//! The command line: one enum of subcommands and dispatch. The options every subcommand
//! shares are `printer::GlobalArgs`; each subcommand's own options live in `commands/NAME.rs`.

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands;
use crate::exit::{EXIT_CODES_HELP, ExitStatus, Failure};
use crate::printer::GlobalArgs;

/// batchwin: validate, map, mask and rewrite vendor files inside a batch window.
#[derive(Debug, Parser)]
#[command(name = "batchwin", version, after_help = EXIT_CODES_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy the day's complete inbound files from SFTP or an object store to staging; write the manifest.
    #[command(after_help = EXIT_CODES_HELP)]
    Fetch(commands::fetch::FetchArgs),
    /// List a local inbound folder (`DIR/VENDOR/FILE`) as a manifest for `plan`.
    #[command(after_help = EXIT_CODES_HELP)]
    Manifest(commands::manifest::ManifestArgs),
    /// Shard the manifest into slices sized to the batch window; emit engine job files.
    #[command(after_help = EXIT_CODES_HELP)]
    Plan(commands::plan::PlanArgs),
    /// Process vendor files: validate, map, mask, write output and rejects, record a ledger.
    #[command(after_help = EXIT_CODES_HELP)]
    Process(commands::process::ProcessArgs),
    /// Write a deterministic synthetic day of vendor files, its config and expected counts.
    #[command(after_help = EXIT_CODES_HELP)]
    Generate(commands::generate::GenerateArgs),
    /// Deliver outputs to vendors' outbound locations, atomically and idempotently.
    #[command(after_help = EXIT_CODES_HELP)]
    Publish(commands::publish::PublishArgs),
    /// Sum up a run from its ledgers: files, records, rejects, failures.
    #[command(after_help = EXIT_CODES_HELP)]
    Report(commands::report::ReportArgs),
    /// Show a run while it runs and after: priorities against their SLA, slices, failures.
    #[command(after_help = EXIT_CODES_HELP)]
    Status(commands::status::StatusArgs),
    /// Past runs, one line each; `--why FILE`: why a file was processed, skipped or re-run.
    #[command(after_help = EXIT_CODES_HELP)]
    Log(commands::log::LogArgs),
    /// Put quarantined files back, so that the next run of the window plans them again.
    #[command(after_help = EXIT_CODES_HELP)]
    Release(commands::release::ReleaseArgs),
    /// Run a batch window end to end: fetch, plan, process every slice, publish, report.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(commands::run::RunArgs),
    /// Generate a small day in a fresh folder and process all of it: the first thing to run.
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(commands::demo::DemoArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or PowerShell.
    #[command(after_help = EXIT_CODES_HELP)]
    Completions(commands::docs::CompletionsArgs),
    /// Write the man pages (`batchwin.1` and one per subcommand) into a folder.
    #[command(after_help = EXIT_CODES_HELP)]
    Man(commands::docs::ManArgs),
}

impl Cli {
    pub fn run(self) -> Result<ExitStatus, Failure> {
        let g = self.global;
        match self.command {
            Command::Fetch(a) => commands::fetch::run(&g, a),
            Command::Publish(a) => commands::publish::run(&g, a),
            Command::Manifest(a) => commands::manifest::run(&g, a),
            Command::Plan(a) => commands::plan::run(&g, a),
            Command::Process(a) => commands::process::run(&g, a),
            Command::Report(a) => commands::report::run(&g, a),
            Command::Generate(a) => commands::generate::run(&g, a),
            Command::Run(a) => commands::run::run(&g, a),
            Command::Status(a) => commands::status::run(&g, a),
            Command::Log(a) => commands::log::run(&g, a),
            Command::Release(a) => commands::release::run(&g, a),
            Command::Demo(a) => commands::demo::run(&g, a),
            // The pages describe this very parser: it is handed down, so that nothing below
            // the command line needs to know it.
            Command::Completions(a) => commands::docs::completions(&g, a, Cli::command()),
            Command::Man(a) => commands::docs::man(&g, a, Cli::command()),
        }
    }
}
