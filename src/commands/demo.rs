//! `batchwin demo`: generate a small day in a fresh folder and run it end to end with
//! `batchwin run` (fetch, plan, process, publish, report), local folders standing in for the
//! vendors' SFTP server and the outbound server; then check the result against what the
//! generator says the day contains.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;

use crate::config::Config;
use crate::exit::{ExitStatus, Failure};
use crate::generate::{Expected, GenerateOptions, generate};
use crate::printer::GlobalArgs;

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
    // The demo's window opens now (UTC) and lasts four hours; the day is its day.
    let now = chrono::Utc::now();
    let date = now.format("%Y-%m-%d").to_string();
    let (start, end) = (
        now.format("%H:%M").to_string(),
        (now + chrono::Duration::hours(4))
            .format("%H:%M")
            .to_string(),
    );
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
        crate::printer::thousands(gen_summary.records),
        gen_summary.bytes as f64 / 1e6
    ));
    // The vendors' server and the outbound server are folders here; the window is the demo's.
    let vendors_server = dir.join("vendors-server");
    std::fs::create_dir_all(&vendors_server)
        .map_err(|e| Failure::data(anyhow!("cannot create `{}`: {e}", vendors_server.display())))?;
    std::fs::rename(dir.join("inbound"), vendors_server.join("inbound"))
        .map_err(|e| Failure::data(anyhow!("cannot move the generated files: {e}")))?;
    let outbound_server = dir.join("outbound-server");
    let mut text = std::fs::read_to_string(&gen_summary.config)
        .with_context(|| format!("cannot read `{}`", gen_summary.config.display()))
        .map_err(Failure::data)?;
    text.push_str(&format!(
        "\n# The demo's batch window: the vendors' server and the outbound server are folders.\n\
         [windows.demo]\nstart = \"{start}\"\nend = \"{end}\"\ntime_zone = \"UTC\"\nsource = {:?}\ntarget = {:?}\n\n\
         # Files on the demo's server are complete as soon as they are listed.\n[transfer]\nsettle = \"0s\"\n",
        vendors_server.display().to_string(),
        outbound_server.display().to_string()
    ));
    crate::files::write(&gen_summary.config, text)
        .map_err(|e| Failure::data(anyhow!("cannot write the config: {e}")))?;
    Config::load(&gen_summary.config)?;
    let runs = dir.join("runs");
    let status = crate::window::run(
        g,
        &crate::window::RunSettings {
            config: std::path::absolute(&gen_summary.config).unwrap_or(gen_summary.config.clone()),
            window: "demo".into(),
            date: Some(date.clone()),
            executor: crate::window::Executor::Local,
            workers: None,
            runs: Some(runs.clone()),
            run_location: None,
            max_slices: None,
            utilization: None,
            catch_up: true,
            dry_run: false,
            grace_period: crate::cancel::default_grace(),
            token: None,
            // A demo's run can be traced, to try a collector.
            otlp: crate::env::otlp(),
            traceparent: None,
            secrets: crate::env::secret,
        },
    )?;

    // Check the run against what the generator wrote.
    let text = std::fs::read_to_string(&gen_summary.expected)
        .with_context(|| format!("cannot read `{}`", gen_summary.expected.display()))
        .map_err(Failure::data)?;
    let expected: Expected = serde_json::from_str(&text).map_err(|e| Failure::data(anyhow!(e)))?;
    let run_dir = runs.join(format!("{date}-demo"));
    let (records, rejected) = counts(&run_dir.join("out/ledgers")).map_err(Failure::data)?;
    let delivered = crate::transfer::publish::files_below(&outbound_server);
    let ok = rejected == expected.invalid
        && records == expected.records
        && status == ExitStatus::Success;
    say(format!(
        "check      {} records and {} rejects, expected {} and {}: {}",
        crate::printer::thousands(records),
        crate::printer::thousands(rejected),
        crate::printer::thousands(expected.records),
        crate::printer::thousands(expected.invalid),
        if ok { "ok" } else { "MISMATCH" }
    ));
    say(format!(
        "delivered  {delivered} files to `{}`",
        outbound_server.display()
    ));
    say(format!("run folder {}", run_dir.display()));
    say(format!(
        "report     {}",
        run_dir.join("report.html").display()
    ));
    Ok(if ok {
        ExitStatus::Success
    } else {
        worse_than_ok(status)
    })
}

fn worse_than_ok(s: ExitStatus) -> ExitStatus {
    if s == ExitStatus::Success {
        ExitStatus::DataFailure
    } else {
        s
    }
}

/// Records in and rejected over the latest attempt of every unit in the run's ledgers.
fn counts(ledgers: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let found = crate::ledger::find_ledgers(ledgers, None)?;
    let c =
        crate::ledger::merge::with_latest(&found, |conn| Ok(crate::ledger::query::totals(conn)?))?;
    Ok((c.records_in as u64, c.records_rejected as u64))
}
