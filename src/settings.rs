//! Settings resolved once: flags, then environment variables, then the config file, then
//! defaults. Every environment variable batchwin reads is a constant here, wired into clap with
//! `env = ...`; nothing deeper in the code reads the environment.

use std::path::Path;

use crate::cli::{GlobalArgs, LogFormat};
use crate::config::Config;
use crate::pipeline::mask::MaskKey;

/// Path of the configuration file.
pub const ENV_CONFIG: &str = "BATCHWIN_CONFIG";
/// The default variable holding the masking key (`[masking] key_env` names another).
pub const ENV_MASK_KEY: &str = "BATCHWIN_MASK_KEY";
/// `text` or `json`.
pub const ENV_LOG_FORMAT: &str = "BATCHWIN_LOG_FORMAT";
/// The slice of a plan to run (overrides the engine's array index).
pub const ENV_SLICE: &str = "BATCHWIN_SLICE";
/// Added to the engine's array index: the first slice of the array (set by emitted jobs).
pub const ENV_SLICE_OFFSET: &str = "BATCHWIN_SLICE_OFFSET";
/// The engines' array index variables.
pub const ENV_AWS_BATCH_INDEX: &str = "AWS_BATCH_JOB_ARRAY_INDEX";
pub const ENV_SLURM_INDEX: &str = "SLURM_ARRAY_TASK_ID";
pub const ENV_K8S_INDEX: &str = "JOB_COMPLETION_INDEX";
/// The business date (`YYYY-MM-DD`) used in output names; default today.
pub const ENV_DATE: &str = "BATCHWIN_DATE";

/// Sets up tracing on stderr: text for people, JSON for log collectors.
pub fn init_logging(g: &GlobalArgs) {
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("batchwin={level}"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match g.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.without_time().with_target(false).try_init(),
    };
}

/// Whether an error is a broken pipe (for example `batchwin ... | head`): a quiet success.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Loads the masking key named by the config: `[masking] key_file`, else the variable named by
/// `[masking] key_env` (default `BATCHWIN_MASK_KEY`). `Ok(None)` when neither is set; vendors
/// that hash then fail to build with a message saying how to set it.
pub fn load_mask_key(config: &Config) -> anyhow::Result<Option<MaskKey>> {
    use anyhow::Context;
    if let Some(f) = &config.masking.key_file {
        let path = config.relative(f);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read masking key file `{}`", path.display()))?;
        return MaskKey::new(bytes)
            .map(Some)
            .map_err(|m| anyhow::anyhow!("masking key file `{}`: {m}", path.display()));
    }
    let var = config.masking.key_env.as_deref().unwrap_or(ENV_MASK_KEY);
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => {
            let bytes = v.into_encoded_bytes();
            MaskKey::new(bytes)
                .map(Some)
                .map_err(|m| anyhow::anyhow!("masking key in `{var}`: {m}"))
        }
        _ => Ok(None),
    }
}

/// Today's date as `YYYY-MM-DD`, the default business date.
pub fn today() -> String {
    chrono::Local::now().format("%Y-%m-%d").to_string()
}

/// Checks a `YYYY-MM-DD` date given on the command line.
pub fn check_date(d: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
        .map(|_| d.to_string())
        .map_err(|_| format!("{d:?} is not a date like 2026-11-29"))
}

/// Whether progress bars should be drawn (stderr is a terminal and not quiet).
pub fn progress_enabled(g: &GlobalArgs) -> bool {
    use std::io::IsTerminal;
    !g.quiet && std::io::stderr().is_terminal()
}

/// Progress bar template for byte counts.
pub const PROGRESS_BYTES: &str = "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}";

/// A progress bar of `len` drawn with `template` when `enabled`, else a hidden one.
pub fn progress_bar(enabled: bool, len: u64, template: &str) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// Loads the config, resolving a relative path against the working directory.
pub fn load_config(path: &Path) -> Result<Config, crate::config::ConfigError> {
    Config::load(path)
}
