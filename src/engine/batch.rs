//! Many units at once: the batch scheduler of `process` (and so of every slice an engine
//! runs). Units start in list order (priority first) on file workers, each unit's chunks
//! spread over all threads (see [`super::file`]); a processed unit's delivery and its record
//! in the ledger are handed to delivery threads. The ledger opens on a thread of its own while
//! the first units run; outputs wait for it (see [`Ready`]). A small run of local files writes
//! its rows to the ledger's journal instead (`crate::ledger::journal`).
//!
//! Also here: which units a slice of a plan still has to do (a slice run again skips what an
//! earlier run of it finished), and the units of an inbound folder.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use anyhow::{Context, anyhow};

use crate::codecs::Encoder;
use crate::config::Config;
use crate::exit::{ExitStatus, Failure};
use crate::ledger::journal::{self, Journal, Recorder};
use crate::ledger::{Batch, Ledger, RunInfo, query};
use crate::outcome::{FileOutcome, FileStatus};
use crate::plan::Plan;
use crate::printer::thousands;
use crate::vendor::{Vendor, expand_name};

use super::{EngineOptions, Journaling, KnownInput, Pending, Ready, process_file_deferred};

/// One unit to process (a file, or a part of a split file) and where its output goes.
#[derive(Debug, Clone)]
pub struct Work {
    /// The vendor's index in the configuration.
    pub vendor: usize,
    pub input: PathBuf,
    pub out_dir: PathBuf,
    /// A byte range of the file, for units of split files.
    pub part: Option<crate::plan::Part>,
    /// The file's checksum as the manifest recorded it.
    pub known: Option<KnownInput>,
    /// The whole file's size as planned (`None`: its size on disk). A slice beside the fetch,
    /// or over a run location, counts its units before their files are there.
    pub file_bytes: Option<u64>,
    /// Why the unit may not start: a vendor it comes `after` did not finish (see
    /// [`blocked_vendors`]). It is recorded as blocked, with this reason.
    pub blocked: Option<String>,
}

/// The result of processing a set of units, for the summary and the exit status.
pub struct BatchSummary {
    pub outcomes: Vec<FileOutcome>,
    pub seconds: f64,
    pub ledger: PathBuf,
    pub skipped: Vec<PathBuf>,
    /// The signal that stopped the run, if one did.
    pub interrupted: Option<i32>,
}

impl BatchSummary {
    /// What a slice prints at its end: which slice of how many, the units an earlier run of it
    /// had done, then [`BatchSummary::render`].
    pub fn render_slice(&self, k: usize, slices: usize, resumed: usize) -> String {
        let mut s = format!("slice      {k} of {slices}\n");
        if resumed > 0 {
            s.push_str(&format!(
                "resumed    {resumed} units done by an earlier run of this slice (same input, same config, output present): not done again\n"
            ));
        }
        s + &self.render()
    }

    /// The short summary printed at the end.
    pub fn render(&self) -> String {
        let n = self.outcomes.len();
        let failed: Vec<&FileOutcome> = self
            .outcomes
            .iter()
            .filter(|o| o.status == FileStatus::Failed)
            .collect();
        let (rin, rout, rrej, bytes) =
            self.outcomes.iter().fold((0u64, 0u64, 0u64, 0u64), |a, o| {
                (
                    a.0 + o.records_in,
                    a.1 + o.records_out,
                    a.2 + o.records_rejected,
                    a.3 + o.input_bytes,
                )
            });
        let secs = self.seconds.max(1e-9);
        let mut s = format!(
            "files      {n} ({} succeeded, {} failed)\nrecords    {} in, {} out, {} rejected ({:.2}%)\ntime       {:.2} s\nrate       {} records/s, {:.1} MB/s\nledger     {}\n",
            self.outcomes
                .iter()
                .filter(|o| o.status == FileStatus::Succeeded)
                .count(),
            failed.len(),
            thousands(rin),
            thousands(rout),
            thousands(rrej),
            if rin > 0 {
                rrej as f64 * 100.0 / rin as f64
            } else {
                0.0
            },
            self.seconds,
            thousands((rin as f64 / secs) as u64),
            bytes as f64 / secs / 1e6,
            self.ledger.display(),
        );
        if n == 1 {
            let o = &self.outcomes[0];
            if let Some(p) = &o.output_path {
                s.push_str(&format!("output     {}\n", p.display()));
            }
            if let Some(p) = &o.reject_path {
                s.push_str(&format!("rejects    {}\n", p.display()));
            }
        }
        for o in failed {
            s.push_str(&format!(
                "failed     {} `{}`: {}\n",
                o.vendor,
                o.input_path.display(),
                o.error.as_deref().unwrap_or("unknown error")
            ));
        }
        if let Some(sig) = self.interrupted {
            let cancelled = self
                .outcomes
                .iter()
                .filter(|o| o.status == FileStatus::Cancelled)
                .count();
            s.push_str(&format!(
                "stopped    by {}: {cancelled} units cancelled and cleaned up, the rest not started; run again to finish\n",
                crate::cancel::describe(sig)
            ));
        }
        let deferred = self
            .outcomes
            .iter()
            .filter(|o| o.status == FileStatus::Deferred)
            .count();
        if deferred > 0 {
            s.push_str(&format!(
                "deferred   {deferred} units of MEDIUM and LOW vendors: the window ended before they started\n"
            ));
        }
        for o in self
            .outcomes
            .iter()
            .filter(|o| o.status == FileStatus::Blocked)
        {
            let part = o
                .part
                .map(|(i, _)| format!(" part {}", i + 1))
                .unwrap_or_default();
            s.push_str(&format!(
                "blocked    {} `{}`{part}: {}\n",
                o.vendor,
                o.input_path.display(),
                o.error.as_deref().unwrap_or("")
            ));
        }
        for p in &self.skipped {
            s.push_str(&format!(
                "skipped    `{}`: no vendor with that id in the config\n",
                p.display()
            ));
        }
        s
    }

    pub fn status(&self) -> ExitStatus {
        if let Some(sig) = self.interrupted {
            ExitStatus::Interrupted(sig)
        } else if self.outcomes.iter().any(|o| {
            matches!(
                o.status,
                FileStatus::Failed | FileStatus::Deferred | FileStatus::Blocked
            )
        }) {
            ExitStatus::DataFailure
        } else {
            ExitStatus::Success
        }
    }
}

/// The units of a plan's slice still to do, and how many an earlier run of the slice did.
pub struct SliceUnits {
    pub units: Vec<Work>,
    /// Units done by an earlier run of this slice (same input, same config, output present).
    pub resumed: usize,
}

/// The units of slice `k` of `plan` (read from `plan_path`) still to do: those that this
/// slice's `ledger` records as done under the configuration `config_sha` are skipped when
/// their input still has the recorded checksum and their output is still there. Outputs go to
/// `out/VENDOR/`.
#[expect(
    clippy::too_many_arguments,
    reason = "each comes from a different place: the command line, the plan, the run location"
)]
pub fn slice_units(
    config: &Config,
    config_path: &Path,
    plan: &Plan,
    k: usize,
    site: &dyn UnitSite,
    out: &Path,
    ledger: &Path,
    config_sha: Option<&str>,
) -> Result<SliceUnits, Failure> {
    // Units this slice's ledger records as done under the same configuration and masking
    // profile are skipped when their input still has the recorded checksum and their output is
    // still there (the ledger's one answer to "is this unit done?"). Without the
    // configuration's checksum nothing counts as done.
    let latest = match (config_sha, ledger.exists()) {
        (Some(_), true) => Some(
            Ledger::open(ledger)
                .and_then(|l| l.latest_units())
                .map_err(Failure::data)?,
        ),
        _ => None,
    };
    let blocked = blocked_vendors(config, plan, k, site, ledger);
    let mut skipped_done = 0usize;
    let mut items = Vec::new();
    for u in &plan.slices[k].units {
        let (idx, _) = config.vendor(&u.vendor).ok_or_else(|| {
            Failure::usage(anyhow!(
                "the plan names vendor `{}`, which is not in `{}`",
                u.vendor,
                config_path.display()
            ))
        })?;
        let input = site.key(&u.location);
        if let Some(latest) = &latest {
            let key = input.display().to_string();
            let unit = query::UnitRef::One {
                input: &key,
                part: u.part.as_ref().map(|p| p.index),
            };
            match latest.is_done_as(
                unit,
                config_sha,
                plan.masking.profile.as_deref(),
                |a| site.same_input(u, &input, a),
                |a| site.output_present(a),
            ) {
                Ok(()) => {
                    skipped_done += 1;
                    continue;
                }
                Err(query::NotDone::OutputGone | query::NotDone::InputChanged) => tracing::info!(
                    "`{}`: its input or output changed since it was done: doing it again",
                    input.display()
                ),
                Err(query::NotDone::OtherProfile) => tracing::info!(
                    "`{}`: it was done under another masking profile: doing it again under the plan's",
                    input.display()
                ),
                Err(_) => {}
            }
        }
        items.push(Work {
            vendor: idx,
            input: site.local(items.len(), u),
            out_dir: out.join(&u.vendor),
            part: u.part.clone(),
            known: u.modified.clone().map(|modified| KnownInput {
                bytes: u.file_bytes,
                modified,
                sha256: u.sha256.clone(),
            }),
            file_bytes: Some(u.file_bytes),
            blocked: blocked.get(&u.vendor).cloned(),
        });
    }
    Ok(SliceUnits {
        units: items,
        resumed: skipped_done,
    })
}

/// The vendors of slice `k` that may not start, with the reason: a vendor declared `after`
/// others starts only when every unit the plan gives each of them succeeded, as their slices'
/// ledgers (beside `ledger`) record. The slices of a later stage run only once the earlier
/// stages ended (on every engine), so those ledgers are complete and closed; one that is
/// missing or unreadable blocks too. A blocked vendor's units are recorded as `blocked`, which
/// blocks the vendors after it in turn.
fn blocked_vendors(
    config: &Config,
    plan: &Plan,
    k: usize,
    site: &dyn UnitSite,
    ledger: &Path,
) -> HashMap<String, String> {
    let dir = ledger.parent().unwrap_or(Path::new("."));
    // Each parent's verdict, asked once however many of the slice's vendors come after it.
    let mut unfinished: HashMap<&str, Option<String>> = HashMap::new();
    // What each set of ledgers records, read once however many parents' units they hold (the
    // parents of a stage's vendors are usually all in the same slices).
    let mut read = LedgersRead::new();
    let mut blocked = HashMap::new();
    let here: HashSet<&str> = plan.slices[k]
        .units
        .iter()
        .map(|u| u.vendor.as_str())
        .collect();
    for v in here {
        let Some((_, vendor)) = config.vendor(v) else {
            continue;
        };
        for parent in &vendor.after {
            let why = unfinished
                .entry(parent.as_str())
                .or_insert_with(|| not_finished(plan, parent, site, dir, &mut read));
            if let Some(why) = why {
                blocked.insert(
                    v.to_string(),
                    format!("vendor {parent}, which it comes after, did not finish: {why}"),
                );
                break;
            }
        }
    }
    blocked
}

/// The latest attempt of each unit, as sets of ledgers record them (an error says why the set
/// cannot be read), each set read once.
type LedgersRead = HashMap<Vec<PathBuf>, Result<query::LatestUnits, String>>;

/// Why vendor `parent` has not finished the plan's day, or `None` when every unit the plan
/// gives it succeeded, as its slices' ledgers in `dir` record (read through `read`). A file the
/// plan left for the next run (the day did not fit) is not finished either.
fn not_finished(
    plan: &Plan,
    parent: &str,
    site: &dyn UnitSite,
    dir: &Path,
    read: &mut LedgersRead,
) -> Option<String> {
    if let Some(f) = plan
        .deferred
        .iter()
        .flat_map(|d| &d.files)
        .find(|f| f.vendor == parent)
    {
        return Some(format!("`{}` was left for the next run", f.location));
    }
    let slices: Vec<&crate::plan::Slice> = plan
        .slices
        .iter()
        .filter(|s| s.units.iter().any(|u| u.vendor == parent))
        .collect();
    let ledgers: Vec<PathBuf> = slices
        .iter()
        .map(|s| dir.join(format!("slice-{:05}.duckdb", s.index)))
        // Or only its journal (`process --journal`), folded as it is read.
        .filter(|p| p.exists() || journal::path_of(p).exists())
        .collect();
    let latest = match read.entry(ledgers).or_insert_with_key(|ledgers| {
        if ledgers.is_empty() {
            return Ok(query::LatestUnits::default());
        }
        crate::ledger::merge::with_latest(ledgers, |c| Ok(query::LatestUnits::read(c)?))
            .map_err(|e| e.to_string())
    }) {
        Ok(l) => l,
        Err(e) => return Some(format!("its ledgers cannot be read ({e})")),
    };
    slices
        .iter()
        .flat_map(|s| &s.units)
        .filter(|u| u.vendor == parent)
        .find(|u| {
            let key = site.key(&u.location).display().to_string();
            !latest
                .attempt(&key, u.part.as_ref().map(|p| p.index))
                .is_some_and(|a| a.succeeded)
        })
        .map(|u| format!("`{}` is not done", u.location))
}

/// Where a slice's units are read, and how an earlier run's work is checked: the plan's
/// folder on this machine ([`LocalSite`]), or a run location whose inputs are downloaded to
/// scratch (`super::remote`).
pub trait UnitSite {
    /// The name the ledger gives a unit's input (what "is this unit done?" is asked with).
    fn key(&self, location: &str) -> PathBuf;
    /// Where the engine reads the `n`th unit still to do.
    fn local(&self, n: usize, u: &crate::plan::Unit) -> PathBuf;
    /// Whether an attempt's output is still there with the size recorded.
    fn output_present(&self, a: &query::UnitAttempt) -> bool;
    /// Whether the unit's input (named `key`) is the one the attempt read.
    fn same_input(&self, u: &crate::plan::Unit, key: &Path, a: &query::UnitAttempt) -> bool;
}

/// A plan's units read where they are, on this machine: a relative location from the plan's
/// folder.
pub struct LocalSite<'a> {
    pub plan_path: &'a Path,
}

impl UnitSite for LocalSite<'_> {
    fn key(&self, location: &str) -> PathBuf {
        let p = PathBuf::from(location);
        match self.plan_path.parent() {
            Some(d) if p.is_relative() => d.join(p),
            _ => p,
        }
    }
    fn local(&self, _: usize, u: &crate::plan::Unit) -> PathBuf {
        self.key(&u.location)
    }
    fn output_present(&self, a: &query::UnitAttempt) -> bool {
        query::local_output_present(a)
    }
    fn same_input(&self, u: &crate::plan::Unit, input: &Path, a: &query::UnitAttempt) -> bool {
        // The input is the one done when the manifest's checksum, which the file still has
        // (same size and time), is the one done; otherwise it is read to tell.
        let unchanged = u.part.is_none()
            && u.sha256 == a.input_sha256
            && std::fs::metadata(input).is_ok_and(|m| {
                crate::plan::manifest::unchanged(&m, u.file_bytes, u.modified.as_deref())
            });
        unchanged || unit_sha256(input, u.part.as_ref()).is_ok_and(|s| s == a.input_sha256)
    }
}

/// The units of a plan made from `fetch --listing` while the fetch goes on (`process
/// --fetching`): each waits until its file's row is in the manifest, and takes its size, time
/// and checksum from it. A file the fetch ended without fails its unit, unrecorded: the next
/// run fetches it and processes it.
pub struct Arriving<'a> {
    pub arrivals: crate::plan::arrivals::Arrivals,
    pub cancel: &'a crate::cancel::Cancel,
}

impl<'a> Arriving<'a> {
    /// The hooks of a slice: waiting for the files arriving in `fetching` when given, else
    /// none.
    pub fn hooks(
        fetching: Option<&Path>,
        cancel: &'a crate::cancel::Cancel,
    ) -> Box<dyn UnitHooks + 'a> {
        match fetching {
            Some(m) => Box::new(Arriving {
                arrivals: crate::plan::arrivals::Arrivals::new(m),
                cancel,
            }),
            None => Box::new(NoHooks),
        }
    }
}

impl UnitHooks for Arriving<'_> {
    fn before(&self, _: usize, w: &Work) -> Result<Option<KnownInput>, Failure> {
        use crate::plan::arrivals::Arrival;
        let location = w.input.display().to_string();
        let arrival = self
            .arrivals
            .wait(&location, &|| self.cancel.is_cancelled())
            .map_err(Failure::data)?;
        match arrival {
            Some(Arrival::Fetched(row)) => {
                let row = *row;
                Ok(row.modified.map(|modified| KnownInput {
                    bytes: row.bytes,
                    modified,
                    sha256: row.sha256,
                }))
            }
            Some(Arrival::NotFetched) => Err(Failure::retryable(anyhow!(
                "`{location}` was not staged: the fetch ended without it (its messages say why); not processed, the next run fetches it and processes it"
            ))),
            None => Err(Failure {
                status: ExitStatus::Interrupted(self.cancel.signal().unwrap_or(libc::SIGTERM)),
                error: anyhow!("stopped while waiting for `{location}` to be fetched"),
            }),
        }
    }
    fn after(&self, _: usize, _: &Work, _: Option<&mut FileOutcome>) -> Result<(), Failure> {
        Ok(())
    }
}

/// The units of `inputs`, files of vendor `vendor` of the config at `config_path`, with
/// outputs to `out`: errors (usage) name an unknown vendor, or an input that is not a file.
pub fn input_units(
    config: &Config,
    config_path: &Path,
    vendor: &str,
    inputs: &[PathBuf],
    out: &Path,
) -> Result<Vec<Work>, Failure> {
    let (idx, _) = config.vendor(vendor).ok_or_else(|| {
        let known: Vec<&str> = config.vendors.iter().map(|v| v.id.as_str()).collect();
        Failure::usage(anyhow!(
            "unknown vendor `{vendor}` in `{}`; known: {}",
            config_path.display(),
            known.join(", ")
        ))
    })?;
    inputs
        .iter()
        .map(|p| {
            if !p.is_file() {
                return Err(Failure::usage(anyhow!(
                    "input `{}` is not a readable file",
                    p.display()
                )));
            }
            Ok(Work {
                vendor: idx,
                input: p.clone(),
                out_dir: out.to_path_buf(),
                part: None,
                known: None,
                file_bytes: None,
                blocked: None,
            })
        })
        .collect()
}

/// Lists `DIR/VENDOR/FILE`, highest priority first, larger files first within a priority.
/// Files in folders that name no vendor of the config are returned apart, to be reported.
pub fn scan_inbound(
    config: &Config,
    dir: &Path,
    out: &Path,
) -> anyhow::Result<(Vec<Work>, Vec<PathBuf>)> {
    let (files, unknown) = crate::plan::manifest::list(config, dir)?;
    let mut items: Vec<Work> = files
        .into_iter()
        .map(|(idx, input)| Work {
            vendor: idx,
            input,
            out_dir: out.join(&config.vendors[idx].id),
            part: None,
            known: None,
            file_bytes: None,
            blocked: None,
        })
        .collect();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    items.sort_by_cached_key(|w| {
        (
            config.vendors[w.vendor].priority,
            std::cmp::Reverse(size(&w.input)),
            w.input.clone(),
        )
    });
    Ok((items, unknown))
}

/// Processes `items` with the vendors they name, recording each unit in the ledger at
/// `ledger_path` as it is delivered; `skipped` (inputs no vendor claims) is passed through to
/// the summary. A progress bar of the input bytes is drawn when `progress`.
pub fn run(
    profiles: &[Vendor],
    items: Vec<Work>,
    ledger_path: &Path,
    opts: &EngineOptions,
    progress: bool,
    skipped: Vec<PathBuf>,
) -> Result<BatchSummary, Failure> {
    run_with(
        profiles,
        items,
        ledger_path,
        opts,
        progress,
        skipped,
        &NoHooks,
    )
}

/// What a run does around each unit besides processing it: a slice over a run location
/// downloads the input before the unit starts and uploads the outputs before it is recorded
/// (`super::remote`); a slice beside the fetch waits for each file to be staged
/// ([`Arriving`]).
pub trait UnitHooks: Sync {
    /// Before unit `i` (of the list [`run_with`] was given) is processed: waits until its
    /// input is at `w.input`; what is then known of it, when the hook learned that (its size,
    /// time and checksum: the input is not read only to hash it). An error fails the unit
    /// unprocessed.
    fn before(&self, i: usize, w: &Work) -> Result<Option<KnownInput>, Failure>;
    /// After unit `i` ended (delivered, failed, not started), before it is recorded:
    /// `outcome` is `None` when the unit stopped with an error and is not recorded. An error
    /// leaves the unit unrecorded and stops the run with its status once the rest is done.
    fn after(&self, i: usize, w: &Work, outcome: Option<&mut FileOutcome>) -> Result<(), Failure>;
    /// After finished units were committed to `ledger`, from the delivery thread that holds
    /// it: must return at once (the other deliveries wait). A slice over a run location has
    /// copies of its ledger uploaded as it goes (`super::remote`).
    fn recorded(&self, _ledger: &Ledger) {}
}

/// Processing only, where the files are.
pub struct NoHooks;

impl UnitHooks for NoHooks {
    fn before(&self, _: usize, _: &Work) -> Result<Option<KnownInput>, Failure> {
        Ok(None)
    }
    fn after(&self, _: usize, _: &Work, _: Option<&mut FileOutcome>) -> Result<(), Failure> {
        Ok(())
    }
}

/// [`run`], with `hooks` called around each unit.
pub fn run_with(
    profiles: &[Vendor],
    items: Vec<Work>,
    ledger_path: &Path,
    opts: &EngineOptions,
    progress: bool,
    skipped: Vec<PathBuf>,
    hooks: &dyn UnitHooks,
) -> Result<BatchSummary, Failure> {
    // Writers for the vendors that have units, not for every vendor of the configuration
    // (each was made once already, to check it, when its vendor was built): for one small file
    // with the 120 vendors of a generated day, making all of them was 1.6M instructions of the
    // command's thread (callgrind).
    let mut encoders: Vec<Option<Box<dyn Encoder>>> = profiles.iter().map(|_| None).collect();
    for w in &items {
        if encoders[w.vendor].is_none() {
            let made = profiles[w.vendor].encoder();
            encoders[w.vendor] = Some(made.map_err(|m| Failure::usage(anyhow!(m)))?);
        }
    }
    opts.cancel
        .listen()
        .map_err(|e| Failure::data(anyhow!("cannot install signal handlers: {e}")))?;
    opts.cancel.enforce_grace(opts.grace);
    // Whichever way this returns, its work has ended then (see `Cancel::finish`).
    let _finished = crate::cancel::FinishOnDrop(&opts.cancel);
    // Two inputs must never write the same output (for example `a.csv` and `a.txt` with the
    // default `{stem}.out.csv`): one would silently replace the other.
    let mut targets = std::collections::HashMap::new();
    for w in &items {
        let p = &profiles[w.vendor];
        let name = w
            .input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for pattern in [&p.output.file_name, &p.output.reject_file_name] {
            let mut target_name = expand_name(pattern, &p.id, &name, &opts.date);
            if let Some(part) = &w.part {
                target_name = part.output_name(&target_name);
            }
            let target = w.out_dir.join(target_name);
            if let Some(other) = targets.insert(target.clone(), w.input.clone()) {
                return Err(Failure::usage(anyhow!(
                    "`{}` and `{}` would both write `{}`; change `file_name` or `reject_file_name` of vendor `{}`",
                    other.display(),
                    w.input.display(),
                    target.display(),
                    p.id
                )));
            }
        }
    }
    let mut dirs: Vec<&Path> = items.iter().map(|w| w.out_dir.as_path()).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder `{}`", dir.display()))
            .map_err(Failure::data)?;
        remove_stale_temporaries(dir);
    }
    if let Some(parent) = ledger_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))
            .map_err(Failure::data)?;
    }
    let mut run = RunInfo::new("process");
    run.config_sha256 = opts.config_sha256.clone();
    run.masking = opts.masking.clone();
    // The ledger opens (DuckDB starts, the schema is checked) on a thread of its own while the
    // first units are processed; their outputs wait for it before they are renamed into place
    // (see `Ready`), so a ledger that cannot be opened still leaves nothing delivered.
    let ready = Ready::pending();
    let opts = &EngineOptions {
        ready: ready.clone(),
        ..opts.clone()
    };
    let total_bytes: u64 = items.iter().map(unit_bytes).sum();
    // A small run writes its rows to the ledger's journal: starting DuckDB would cost it more
    // than its work (see `crate::ledger::journal`); so does a run whose rows a publish follows.
    let journal = match opts.journal {
        Journaling::Never => false,
        Journaling::Small => total_bytes <= journal::SMALL_RUN_BYTES,
        Journaling::Always => true,
    };
    let ledger: OnceLock<Mutex<(Recorder, Batch<_>)>> = OnceLock::new();
    let open_failure: Mutex<Option<Failure>> = Mutex::new(None);
    let open_ledger = || {
        // Whatever happens here, units waiting for the ledger are told.
        let _unblock = SetOnDrop(&ready);
        let opened = if journal {
            Journal::begin(ledger_path, &run).map(Recorder::Journal)
        } else {
            Ledger::open_for_run(ledger_path)
                .and_then(|l| l.begin_run(&run).map(|()| Recorder::Ledger(l)))
        };
        match opened {
            Ok(l) => {
                let _ = ledger.set(Mutex::new((l, Batch::every(RECORD_EVERY))));
                ready.set(Ok(()));
            }
            Err(e) => {
                ready.set(Err(e.to_string()));
                *open_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(Failure::data(e));
            }
        }
    };

    let bar = crate::printer::progress_bar(progress, total_bytes, crate::printer::PROGRESS_BYTES);
    // The bar follows the engine's counts ten times a second: it moves as chunks are done, also
    // through one large file.
    let ticking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(!bar.is_hidden()));
    let ticker = ticking.load(std::sync::atomic::Ordering::Relaxed).then(|| {
        let (bar, counts, ticking) = (bar.clone(), opts.progress.clone(), ticking.clone());
        let base = counts.get();
        std::thread::spawn(move || {
            while ticking.load(std::sync::atomic::Ordering::Relaxed) {
                let (bytes, records, rejected) = counts.get();
                bar.set_position(bytes - base.0);
                bar.set_message(format!(
                    "{} records, {} rejected",
                    crate::printer::thousands(records - base.1),
                    crate::printer::thousands(rejected - base.2)
                ));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    });

    // The live status document: what the run has to do, then written once a second.
    let publisher = opts.live.as_ref().map(|live| {
        live.begin(&planned_units(profiles, &items), &opts.progress);
        live.publish_every(&opts.progress)
    });
    let started = Instant::now();
    // Files start in list order (priority first) on two file workers per thread (three in a
    // slice that reads its inputs past the page cache, below; never more than there are
    // files); each file's chunks are spread over all threads. A file worker also has work of
    // its own that leaves the threads idle (framing its next chunks, writing its outputs):
    // with two per thread, another file's chunks fill that time (measured: a tenth of a day's
    // slice 7% sooner, same CPU time). A slice that reads its inputs past the page cache
    // (`EngineOptions::inputs_past_cache`) waits on the disk for each while the fetch copies
    // beside it: with three per thread, the whole day took 32.36 s against 34.16 s (means of
    // six runs each, alternating; see docs/benchmarks.md).
    //
    // A processed unit's delivery (waiting for the ledger, syncing its outputs, renaming them
    // into place, recording it) is handed to a delivery thread, and its file worker starts the
    // next unit. A sync waits on the disk for a millisecond to tens of them, and file workers
    // that all waited at once left both cores idle (measured: 133 syncs of a tenth of a day's
    // CSV vendors took 0.45 s of the file workers' 3.6 s).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<FileOutcome, Failure>>>> =
        items.iter().map(|_| Mutex::new(None)).collect();
    let start = |i: usize, w: &Work| -> Result<(FileOutcome, Option<Pending>), Failure> {
        let p = &profiles[w.vendor];
        // In the live status document a unit runs from when its input is there (a unit
        // waiting for its download or its fetch still counts as left to do).
        let started = || {
            if let Some(live) = &opts.live {
                live.unit_started(&p.id, &w.input, w.part.as_ref().map(|p| p.index));
            }
        };
        let skipped = |o: FileOutcome| {
            started();
            let bytes = w.part.as_ref().map_or(o.input_bytes, |p| p.end - p.start);
            opts.progress.add(bytes, 0, 0);
            Ok((o, None))
        };
        if let Some(reason) = &w.blocked {
            return skipped(FileOutcome::blocked(
                &p.id,
                &w.input,
                file_bytes(w),
                w.part.as_ref(),
                reason,
            ));
        }
        let late = || {
            opts.deadline.is_some_and(|d| {
                p.priority != crate::config::Priority::High && chrono::Utc::now() >= d
            })
        };
        let deferred = || FileOutcome::deferred(&p.id, &w.input, file_bytes(w), w.part.as_ref());
        if late() {
            return skipped(deferred());
        }
        let arrived = hooks.before(i, w)?;
        // The window may have ended while the input was awaited (a download, a fetch).
        if late() {
            return skipped(deferred());
        }
        started();
        // Made above for the vendor of every unit.
        let Some(encoder) = encoders[w.vendor].as_deref() else {
            return Err(Failure::usage(anyhow!("no writer for vendor `{}`", p.id)));
        };
        let (outcome, pending) = process_file_deferred(
            p,
            encoder,
            &w.input,
            &w.out_dir,
            opts,
            w.part.as_ref(),
            arrived.as_ref().or(w.known.as_ref()),
        )
        .with_context(|| format!("cannot read `{}`", w.input.display()))
        // The file was there when the run started: a read that fails now is an I/O fault (a
        // network filesystem, a disk) worth retrying, unless running again cannot change it (a
        // file this account may not read, a folder where a file was).
        .map_err(|e| {
            let permanent = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::IsADirectory
                    )
                })
            });
            if permanent {
                Failure::data(e)
            } else {
                Failure::retryable(e)
            }
        })?;
        Ok((outcome, Some(pending)))
    };
    let finish = |i: usize,
                  w: &Work,
                  mut outcome: FileOutcome,
                  pending: Option<Pending>|
     -> Result<FileOutcome, Failure> {
        let p = &profiles[w.vendor];
        if let Some(pending) = pending {
            pending.deliver(&mut outcome);
        }
        hooks.after(i, w, Some(&mut outcome))?;
        if let Some(live) = &opts.live {
            live.unit_ended(&outcome, &w.input, unit_bytes(w));
        }
        if outcome.status == FileStatus::Failed {
            tracing::warn!(vendor = %p.id, file = %w.input.display(), error = outcome.error.as_deref().unwrap_or(""), "file failed");
        }
        // Recorded once the ledger is open; when it cannot be, the run fails as a whole.
        let (Ok(()), Some(l)) = (ready.wait(), ledger.get()) else {
            return Ok(outcome);
        };
        // A poisoned lock only means another thread panicked while recording; the ledger
        // connection itself is still usable.
        let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
        let (ledger, batch) = &mut *l;
        if batch.push((p.priority.to_string(), outcome.clone())) {
            ledger
                .record_files(&run, &batch.take())
                .map_err(Failure::data)?;
            if let Some(ledger) = ledger.ledger() {
                hooks.recorded(ledger);
            }
        }
        drop(l);
        Ok(outcome)
    };
    let per_thread = FILE_WORKERS_PER_THREAD + usize::from(opts.inputs_past_cache);
    // No more than there are units. `process --input` of one small file starts one file worker
    // and one delivery thread instead of four each: it was faster so in 10 of 14 rounds of 100
    // runs (alternating), by 0.9 ms in the median round, on a machine whose rounds varied by
    // more than that.
    let workers = (per_thread * rayon::current_num_threads().max(1)).clamp(1, items.len().max(1));
    let (to_deliver, deliveries) =
        std::sync::mpsc::channel::<(usize, FileOutcome, Option<Pending>)>();
    let deliveries = Mutex::new(deliveries);
    {
        let (next, items, slots, start, finish, ready, deliveries, hooks) = (
            &next,
            &items,
            &slots,
            &start,
            &finish,
            &ready,
            &deliveries,
            hooks,
        );
        // File workers and delivery threads are plain threads, not rayon workers: waiting on its
        // chunks, a file worker then never picks up another file's whole loop from the pool's
        // queue, and a sync never holds up a thread of the pool.
        std::thread::scope(|scope| {
            scope.spawn(open_ledger);
            for _ in 0..workers {
                let to_deliver = to_deliver.clone();
                scope.spawn(move || {
                    loop {
                        // After SIGTERM or SIGINT no new unit starts, nor after the ledger failed.
                        if opts.cancel.is_cancelled() || ready.failed() {
                            break;
                        }
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(w) = items.get(i) else { break };
                        match start(i, w) {
                            Ok((outcome, pending)) => {
                                // The receiver outlives the workers, so sending cannot fail; if it
                                // did, the unit would be delivered here.
                                if let Err(std::sync::mpsc::SendError((_, outcome, pending))) =
                                    to_deliver.send((i, outcome, pending))
                                {
                                    let r = finish(i, w, outcome, pending);
                                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                                }
                            }
                            Err(e) => {
                                let _ = hooks.after(i, w, None);
                                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(Err(e))
                            }
                        }
                    }
                });
            }
            drop(to_deliver);
            for _ in 0..workers {
                scope.spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next unit.
                        let next = deliveries.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((i, outcome, pending)) = next else {
                            break;
                        };
                        let r = finish(i, &items[i], outcome, pending);
                        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    }
                });
            }
        });
    }
    let results: Vec<Result<FileOutcome, Failure>> = slots
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    ticking.store(false, std::sync::atomic::Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(failure) = open_failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(failure);
    }
    let Some(ledger) = ledger.into_inner() else {
        return Err(Failure::data(anyhow!(
            "ledger `{}` could not be opened",
            ledger_path.display()
        )));
    };
    let (mut ledger, mut batch) = ledger.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut outcomes = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results {
        match r {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                tracing::error!("{}", crate::exit::error_text(&e.error));
                first_error.get_or_insert(e);
            }
        }
    }
    // The work has ended: no time limit stops the run now (see `Cancel::finish`).
    opts.cancel.finish();
    let summary = BatchSummary {
        outcomes,
        seconds,
        ledger: ledger_path.to_path_buf(),
        skipped,
        interrupted: opts.cancel.signal(),
    };
    let status = first_error.as_ref().map_or(summary.status(), |e| e.status);
    let ended = ledger
        .end_run_with_files(&run, &batch.take(), status.code() as i32)
        .map_err(Failure::data);
    // Closed (a journal's lock let go) before the last document says the run ended, so that a
    // reader it tells may then open or fold the ledger.
    drop(ledger);
    if let Some(p) = publisher {
        p.finish(match &ended {
            Ok(()) => status.code() as i32,
            Err(e) => e.status.code() as i32,
        });
    }
    ended?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// A unit's input bytes, what the engine counts as it goes: a part's byte range, a whole
/// file's size.
fn unit_bytes(w: &Work) -> u64 {
    match &w.part {
        Some(p) => p.end - p.start,
        None => file_bytes(w),
    }
}

/// A unit's whole file's size: as planned, else on disk.
fn file_bytes(w: &Work) -> u64 {
    w.file_bytes
        .unwrap_or_else(|| std::fs::metadata(&w.input).map_or(0, |m| m.len()))
}

/// The units as the live status document counts them.
fn planned_units(profiles: &[Vendor], items: &[Work]) -> Vec<super::live::PlannedUnit> {
    items
        .iter()
        .map(|w| super::live::PlannedUnit {
            vendor: profiles[w.vendor].id.clone(),
            priority: profiles[w.vendor].priority.to_string(),
            bytes: unit_bytes(w),
        })
        .collect()
}

/// Gives a [`Ready`] signal as a failure when dropped before it was
/// given otherwise (a panic while opening the ledger), so that no unit waits for ever.
struct SetOnDrop<'a>(&'a Ready);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(Err("the ledger could not be opened".into()));
    }
}

/// File workers per processing thread (see [`run`]); one more in a slice that reads its inputs
/// past the page cache.
pub(super) const FILE_WORKERS_PER_THREAD: usize = 2;

/// How long finished units wait to be recorded in the ledger together. Recording is done by
/// the delivery threads, off the file workers' path, so it can be often: what is left for the
/// end of the run (one transaction and the ledger's checkpoint, both waiting on the disk) is
/// then the last few units only (measured: the end of a run of the 63 files of a tenth of a
/// day's CSV vendors took 7-21 ms recording them all, before the checkpoint's 8-11 ms).
const RECORD_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Removes the temporary files (`.NAME.tmp-PID`) that a process killed outright (SIGKILL, a
/// machine that went down) left in `dir`; those of processes still running are theirs.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp-"))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!(
                    "removed `{}`, left by an earlier run that was killed",
                    e.path().display()
                ),
                Err(err) => tracing::warn!("cannot remove `{}`: {err}", e.path().display()),
            }
        }
    }
}

/// sha256 of a unit's bytes: the whole file, or a part's byte range (as the ledger records it).
fn unit_sha256(input: &Path, part: Option<&crate::plan::Part>) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek};
    let Some(p) = part else {
        return crate::plan::manifest::file_sha256(input);
    };
    let mut f = std::fs::File::open(input)?;
    f.seek(std::io::SeekFrom::Start(p.start))?;
    let mut sha = Sha256::new();
    std::io::copy(&mut f.take(p.end.saturating_sub(p.start)), &mut sha)?;
    Ok(hex::encode(sha.finalize()))
}
