//! `batchwin fetch`: copy a day's complete inbound files from a source (SFTP, object store or
//! folder) to a local staging folder and write the manifest for `plan`.

use std::path::PathBuf;

use clap::Args;

use super::transfer::TransferArgs;
use crate::exit::{ExitStatus, Failure};
use crate::printer::{self, GlobalArgs};
use crate::storage::Store;
use crate::transfer::fetch::{FetchRequest, fetch};
use crate::transfer::runtime;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The vendor configuration file.
    #[arg(long, env = crate::env::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
    /// Where vendors drop files: a folder, file://, s3://, az://, gs:// or sftp://USER@HOST:PORT/DIR.
    #[arg(long)]
    pub source: String,
    /// The day to fetch (YYYY-MM-DD; default today).
    #[arg(long, env = crate::env::ENV_DATE, value_parser = printer::check_date)]
    pub date: Option<String>,
    /// Local folder the files are copied to, as STAGING/DATE/VENDOR/FILE.
    #[arg(long)]
    pub staging: PathBuf,
    /// The manifest to write (JSON Lines); rows already in it are kept.
    #[arg(long, default_value = "manifest.jsonl")]
    pub manifest: PathBuf,
    /// How long a file's size and time must stay the same to count as complete (default:
    /// [transfer] settle, then 30s); 0s takes every file as it is listed.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub settle: Option<std::time::Duration>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

pub fn run(g: &GlobalArgs, a: FetchArgs) -> Result<ExitStatus, Failure> {
    let config = crate::config::Config::load(&a.config)?;
    let ts = a.transfer.resolve(&config, a.settle)?;
    let date = a.date.clone().unwrap_or_else(printer::today);
    if a.staging.to_string_lossy().contains("://") {
        return Err(Failure::usage(anyhow::anyhow!(
            "--staging must be a local folder: `process` reads staged files from a local disk"
        )));
    }
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let source = Store::open(&a.source, &ts.store).await?;
        let req = FetchRequest {
            config: &config,
            settings: &ts,
            source: &source,
            staging: &a.staging,
            date: &date,
            manifest: &a.manifest,
            progress: printer::progress_enabled(g),
        };
        fetch(&req).await
    });
    let o = match outcome {
        Ok(o) => o,
        Err(e) => {
            return Err(Failure {
                status: e.exit_status(),
                error: e.into(),
            });
        }
    };
    for (name, why) in &o.unsafe_names {
        tracing::error!("refused remote name {name}: {why}");
    }
    if !g.quiet {
        let bytes: u64 = o.fetched.iter().map(|r| r.bytes).sum();
        println!(
            "fetch      {date}: {} files staged ({:.1} MB), {} already staged, {} changed and staged again, \
             {} still being uploaded, {} of unknown vendors, {} refused names, {} skipped, {} failed; manifest `{}`: {} files",
            o.fetched.len(),
            bytes as f64 / 1e6,
            o.unchanged,
            o.changed.len(),
            o.waiting.len(),
            o.unknown.len(),
            o.unsafe_names.len(),
            o.skipped.len(),
            o.failed.len(),
            a.manifest.display(),
            o.manifest_rows
        );
    }
    // A refused host key before a transient failure: running again cannot help until the
    // configuration changes.
    let statuses: Vec<ExitStatus> = o.failed.iter().map(|(_, e)| e.exit_status()).collect();
    for worst in [ExitStatus::Usage, ExitStatus::Retryable] {
        if statuses.contains(&worst) {
            return Ok(worst);
        }
    }
    if !o.failed.is_empty() || !o.unsafe_names.is_empty() {
        return Ok(ExitStatus::DataFailure);
    }
    Ok(ExitStatus::Success)
}
