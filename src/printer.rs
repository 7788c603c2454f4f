//! What every command shares on the terminal: the global options (`--quiet`, `--verbose`,
//! `--log-format`), logging set-up on stderr, progress bars, number formatting, and the
//! business date's default and check.

use clap::{Args, ValueEnum};

/// Options shared by every subcommand.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Print only errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log detail (-v info, -vv debug, -vvv trace).
    #[arg(long, short, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = crate::env::ENV_LOG_FORMAT)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

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
pub const PROGRESS_BYTES: &str =
    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}";

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

/// Formats 1234567 as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Reads an RFC 3339 time (`--deadline`), in UTC.
pub fn parse_deadline(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{s:?} is not a time like 2026-11-29T10:00:00Z: {e}"))
}
