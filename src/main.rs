//! The `batchwin` binary: parse arguments, set up logging, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = batchwin::cli::Cli::parse();
    batchwin::settings::init_logging(&cli.global);
    match cli.run() {
        Ok(status) => status.into(),
        Err(failure) => {
            if !batchwin::settings::is_broken_pipe(&failure.error) {
                eprintln!("error: {:#}", failure.error);
            } else {
                return ExitCode::SUCCESS;
            }
            failure.status.into()
        }
    }
}
