//! The machine's read-and-write limit for `scripts/bench`: read every input file, count its
//! lines, and write its bytes to an output file, with no parsing, one file per thread. Outputs
//! are written as `process` writes its own, past the page cache (`batchwin::files::DirectFile`),
//! so that the limit stays the fastest way this machine writes them.
//!
//! Usage: `copy_limit OUT_DIR FILE...`; prints `records N` (lines) and `seconds S`.

use std::io::Write;
use std::time::Instant;

use rayon::prelude::*;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let out = std::path::PathBuf::from(args.next().expect("usage: copy_limit OUT_DIR FILE..."));
    let files: Vec<std::path::PathBuf> = args.map(Into::into).collect();
    std::fs::create_dir_all(&out)?;
    let started = Instant::now();
    let lines: u64 = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| -> std::io::Result<u64> {
            let file = std::fs::File::open(f)?;
            // SAFETY: read-only mapping of a benchmark input that nothing modifies.
            let map = unsafe { memmap2::Mmap::map(&file)? };
            let n = memchr::memchr_iter(b'\n', &map).count() as u64;
            let mut w = batchwin::files::DirectFile::create(&out.join(format!("{i}.out")))?;
            w.write_all(&map)?;
            w.finish()?.sync_all()?;
            Ok(n)
        })
        .collect::<std::io::Result<Vec<u64>>>()?
        .into_iter()
        .sum();
    println!("records {lines}");
    println!("seconds {:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
