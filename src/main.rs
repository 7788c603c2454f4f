//! The `batchwin` binary: parse arguments, set up logging, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;

// Records are many small strings; mimalloc's thread-local free lists make their allocation
// a fraction of what the system allocator costs on this workload.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any file or thread: what batchwin and its libraries create has no world access.
    batchwin::files::restrict_umask();
    let cli = batchwin::cli::Cli::parse();
    batchwin::printer::init_logging(&cli.global);
    match cli.run() {
        Ok(status) => status.into(),
        Err(failure) => {
            if !batchwin::printer::is_broken_pipe(&failure.error) {
                eprintln!("error: {}", batchwin::exit::error_text(&failure.error));
            } else {
                return ExitCode::SUCCESS;
            }
            failure.status.into()
        }
    }
}
