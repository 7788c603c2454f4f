//! `batchwin demo`: generate a small day in a fresh folder, process all of it on this machine,
//! and check the result against what the generator says it contains.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;

use crate::cli::GlobalArgs;
use crate::config::Config;
use crate::exit::{ExitStatus, Failure};
use crate::generate::{Expected, GenerateOptions, generate};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo (must not exist yet; default a new folder in the temp directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Number of files.
    #[arg(long, default_value_t = 40)]
    pub files: usize,
    /// Total number of records.
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Seed of the synthetic day.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn run(g: &GlobalArgs, a: DemoArgs) -> Result<ExitStatus, Failure> {
    let dir = match a.dir {
        Some(d) => {
            if d.exists() {
                return Err(Failure::usage(anyhow!(
                    "`{}` already exists; give a new folder",
                    d.display()
                )));
            }
            d
        }
        None => {
            std::env::temp_dir().join(format!("batchwin-demo-{}", uuid::Uuid::new_v4().simple()))
        }
    };
    let date = "2026-11-29".to_string();
    let opts = GenerateOptions {
        out: dir.clone(),
        date: date.clone(),
        files: a.files,
        records: a.records,
        seed: a.seed,
        vendors: None,
        invalid_rate: 0.02,
    };
    let gen_summary = generate(&opts).map_err(Failure::usage)?;
    let say = |s: String| {
        if !g.quiet {
            println!("{s}");
        }
    };
    say(format!(
        "demo folder `{}`\ngenerated  {} files of {} vendors, {} records, {:.1} MB",
        dir.display(),
        gen_summary.files,
        gen_summary.vendors,
        super::process::thousands(gen_summary.records),
        gen_summary.bytes as f64 / 1e6
    ));
    let config = Config::load(&gen_summary.config)?;
    let out = dir.join("out");
    let summary = super::process::process_inbound(g, &config, &gen_summary.inbound, &out, &date)?;
    say(summary.render());

    // Check the run against what the generator wrote.
    let text = std::fs::read_to_string(&gen_summary.expected)
        .with_context(|| format!("cannot read `{}`", gen_summary.expected.display()))
        .map_err(Failure::data)?;
    let expected: Expected = serde_json::from_str(&text).map_err(|e| Failure::data(anyhow!(e)))?;
    let rejected: u64 = summary.outcomes.iter().map(|o| o.records_rejected).sum();
    let records: u64 = summary.outcomes.iter().map(|o| o.records_in).sum();
    let ok = rejected == expected.invalid
        && records == expected.records
        && summary.status() == ExitStatus::Success;
    say(format!(
        "check      {} records and {} rejects, expected {} and {}: {}",
        super::process::thousands(records),
        super::process::thousands(rejected),
        super::process::thousands(expected.records),
        super::process::thousands(expected.invalid),
        if ok { "ok" } else { "MISMATCH" }
    ));
    say(format!("outputs    {}", out.display()));
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::DataFailure
    })
}
