//! `batchwin manifest`: write the manifest of a local inbound folder (`DIR/VENDOR/FILE`) for
//! `plan`, for files that are already local (`fetch` writes its own as it stages them).

use std::path::PathBuf;

use clap::Args;

use crate::exit::{ExitStatus, Failure};
use crate::plan::manifest;
use crate::printer::GlobalArgs;

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The vendor configuration file.
    #[arg(long, env = crate::env::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
    /// The day's inbound folder, laid out as `DIR/VENDOR/FILE`.
    pub inbound: PathBuf,
    /// Where to write the manifest (JSON Lines).
    #[arg(long, default_value = "manifest.jsonl")]
    pub out: PathBuf,
}

pub fn run(g: &GlobalArgs, a: ManifestArgs) -> Result<ExitStatus, Failure> {
    let config = crate::config::Config::load(&a.config)?;
    let (rows, report) = manifest::scan(&config, &a.inbound).map_err(Failure::usage)?;
    for u in &report.unknown {
        tracing::warn!(
            "`{}`: no vendor with that id in the config; left out",
            u.display()
        );
    }
    manifest::write(&a.out, &rows).map_err(Failure::data)?;
    if !g.quiet {
        let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
        println!(
            "manifest   `{}`: {} files, {:.1} MB ({} left out: unknown vendor)",
            a.out.display(),
            rows.len(),
            bytes as f64 / 1e6,
            report.unknown.len()
        );
    }
    Ok(ExitStatus::Success)
}
