//! The `batchwin` binary: parse arguments, set up logging, run, map the result to an exit code,
//! and end the process.

use clap::Parser;

// Records are many small strings; mimalloc's thread-local free lists make their allocation
// a fraction of what the system allocator costs on this workload.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Before any file or thread: what batchwin and its libraries create has no world access.
    batchwin::files::restrict_umask();
    let cli = batchwin::cli::Cli::parse();
    batchwin::printer::init_logging(&cli.global);
    let code = match cli.run() {
        Ok(status) => status.code(),
        Err(failure) if batchwin::printer::is_broken_pipe(&failure.error) => 0,
        Err(failure) => {
            eprintln!("error: {}", batchwin::exit::error_text(&failure.error));
            failure.status.code()
        }
    };
    end(code)
}

/// Ends the process with `code` once the command has returned: its files written and closed,
/// its ledger closed, its traces flushed, all inside `Cli::run`. What a normal exit would do
/// after that is the work of no one here: the C++ destructors of DuckDB's static tables and
/// mimalloc giving its freed pages back to the kernel, one `madvise` at a time, just before the
/// kernel takes them all anyway. Leaving out only those (the process's own stdout and the C
/// library's streams are flushed first), `process --input` of the bench's small file took 12.5
/// to 12.8 ms a run instead of 13.7 to 14.2, and 15.1 to 16.3 instead of 17.0 to 18.1 later in
/// a slower hour (each time 3 rounds of 100 runs, alternating).
fn end(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: `fflush(NULL)` flushes every C stream; `_exit` ends the process, and nothing
    // after it runs.
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(i32::from(code))
    }
}
