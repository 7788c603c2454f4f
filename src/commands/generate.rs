//! `batchwin generate`: write a deterministic synthetic day for demos, tests and benchmarks.

use std::path::PathBuf;

use clap::Args;

use crate::exit::{ExitStatus, Failure};
use crate::generate::{GenerateOptions, generate};
use crate::printer::{self, GlobalArgs};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Folder to write into (`inbound/DATE/VENDOR/FILE`, `batchwin.toml`, `mask.key`, `expected.json`).
    #[arg(long)]
    pub out: PathBuf,
    /// Business date of the day.
    #[arg(long, env = crate::env::ENV_DATE, value_parser = printer::check_date, default_value = "2026-11-29")]
    pub date: String,
    /// Number of files.
    #[arg(long, default_value_t = 2500)]
    pub files: usize,
    /// Total number of records over all files.
    #[arg(long, default_value_t = 25_000_000)]
    pub records: u64,
    /// Seed: the same seed always gives the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of vendors (default: one per 20 files, between 4 and 120).
    #[arg(long)]
    pub vendors: Option<usize>,
    /// Share of invalid records in each file.
    #[arg(long, default_value_t = 0.02)]
    pub invalid_rate: f64,
}

pub fn run(g: &GlobalArgs, a: GenerateArgs) -> Result<ExitStatus, Failure> {
    let opts = GenerateOptions {
        out: a.out,
        date: a.date,
        files: a.files,
        records: a.records,
        seed: a.seed,
        vendors: a.vendors,
        invalid_rate: a.invalid_rate,
    };
    let s = generate(&opts).map_err(Failure::usage)?;
    if !g.quiet {
        println!(
            "generated {} files of {} vendors: {} records ({} invalid), {:.1} MB\nconfig     {}\nexpected   {}\ninbound    {}",
            s.files,
            s.vendors,
            crate::printer::thousands(s.records),
            crate::printer::thousands(s.invalid),
            s.bytes as f64 / 1e6,
            s.config.display(),
            s.expected.display(),
            s.inbound.display()
        );
    }
    Ok(ExitStatus::Success)
}
