//! The planner: the day's manifest in, slices sized to the batch window out.
//!
//! A *unit* is a file, or a byte range of a large file cut at record boundaries by the same
//! framing `process` uses (so a quoted CSV newline or an XML record is never cut). Units are
//! grouped into *stages* by the vendors' `after` dependencies, and within a stage assigned to
//! *slices* (array-job tasks) by longest-processing-time-first on their estimated cost, one
//! priority class at a time, HIGH first: so HIGH work is spread over every slice and finishes
//! first, and each slice runs its units in priority order.
//!
//! This module owns the plan's data and the arithmetic; reading files to split them goes
//! through the codecs, and the engine-specific files are written by `emit`.

pub mod arrivals;
pub mod cost;
pub mod emit;
pub mod manifest;
pub mod render;
#[cfg(feature = "cli")]
pub mod split;

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::vendor::profile::MaskingChoice;

use crate::config::{Config, ConfigError, KeyPath, Priority};
use manifest::ManifestRow;

/// The newest plan file format version, which this batchwin writes when a plan needs it.
/// Version 2 added a part's `epilogue_bytes` (an XML part at a URL downloads the file's
/// closing tags): a batchwin that reads only version 1 would download such a part without
/// them and fail on it as a truncated file, so it refuses the plan by its version instead.
/// A plan without such a part is written as version 1, which such a batchwin still runs.
pub const PLAN_VERSION: u32 = 2;

/// The oldest plan version this batchwin reads, and the one it writes when nothing newer is
/// needed: what a version 1 plan says means the same to this batchwin as to the one that
/// wrote it.
pub const OLDEST_PLAN_VERSION: u32 = 1;

/// Throughput assumed for a vendor with no history, in bytes per second per slice.
pub const DEFAULT_BYTES_PER_SECOND: f64 = 50e6;

/// A byte range of a file, cut at record boundaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// 0-based part number.
    pub index: u32,
    /// Number of parts of the file.
    pub count: u32,
    /// Byte range in the file.
    pub start: u64,
    pub end: u64,
    /// Number (1-based) of the part's first record in the file, and the line it starts on.
    /// 0 when not known: a part of a file at a URL other than the first is cut without
    /// reading what comes before it, and numbers its records and lines from its own start
    /// (`publish` renumbers its rejects by the records and lines the parts before it counted).
    pub first_record: u64,
    pub first_line: u64,
    /// For a part of a file at a URL: the file's first bytes that its format reads before any
    /// record (a byte order mark, a CSV header, XML's declaration and opening root tag), which
    /// a worker downloads with the part's own bytes (see [`split::part_ranges`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preamble_bytes: Option<u64>,
    /// For a part of a file at a URL whose format ends the file with bytes after its last
    /// record (XML: the closing tags), how many: a worker downloads them after the part's own
    /// bytes, so that its reader finds the document closed (see [`split::part_ranges`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epilogue_bytes: Option<u64>,
    /// For a part of a file at a URL on an object store: the object's ETag when it was cut. A
    /// worker reads the part only while the object still has it, so a file changed since it
    /// was planned (even to the same size) is never processed in parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
}

impl Part {
    /// The name of this part's output when the whole file's is `name`:
    /// `NAME.part-00002-of-00005` (1-based, so it reads naturally), so that the parts' outputs,
    /// put together in name order, are the whole file's.
    pub fn output_name(&self, name: &str) -> String {
        format!("{name}.part-{:05}-of-{:05}", self.index + 1, self.count)
    }
}

/// One piece of work: a file, or a part of one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub vendor: String,
    pub location: String,
    pub priority: Priority,
    /// Bytes of this unit (the part's size for a part).
    pub bytes: u64,
    /// Size and checksum of the whole file.
    pub file_bytes: u64,
    pub sha256: String,
    /// The file's modification time when `sha256` was taken (the manifest's `modified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    pub estimated_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
}

/// One array-job task's work, in the order it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    pub index: usize,
    pub stage: usize,
    pub estimated_seconds: f64,
    pub units: Vec<Unit>,
}

/// Vendors whose files run together; a stage starts when the one before it has finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub index: usize,
    pub vendors: Vec<String>,
    /// Global index of the stage's first slice, and how many it has.
    pub first_slice: usize,
    pub slices: usize,
    pub estimated_seconds: f64,
}

/// When each priority is estimated to finish, against its tightest SLA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorityEstimate {
    pub priority: Priority,
    pub units: usize,
    pub estimated_finish_seconds: f64,
    /// The tightest SLA among the priority's vendors, when any has one.
    pub sla_seconds: Option<f64>,
    pub meets_sla: bool,
}

/// The sizing calculation, kept in the plan and printed by `plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub total_bytes: u64,
    pub total_work_seconds: f64,
    pub window_seconds: Option<f64>,
    pub utilization: f64,
    pub slices: usize,
    pub makespan_seconds: f64,
    pub priorities: Vec<PriorityEstimate>,
}

/// A self-describing plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub created_at: String,
    pub date: String,
    pub manifest_sha256: String,
    pub config_sha256: String,
    pub estimate: Estimate,
    pub stages: Vec<Stage>,
    pub slices: Vec<Slice>,
    /// The masking profile every slice applies, chosen by the token `plan` verified, and the
    /// token's audit facts; absent without a token (the masks as configured).
    #[serde(default, skip_serializing_if = "MaskingChoice::is_default")]
    pub masking: MaskingChoice,
    /// Files of the manifest left for the next run: the day does not fit the window at the
    /// largest number of slices allowed (see [`plan_what_fits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<Deferral>,
    /// The W3C trace context `plan` ran in (`TRACEPARENT`): the emitted job files give it to
    /// every task, so that the slices' spans join the same trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The configuration stored beside the plan in its run location (`plan --out URL`), by
    /// its name there: what a worker given `--plan URL` and no `--config` loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// Files a plan leaves for the next run, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deferral {
    pub reason: String,
    pub files: Vec<DeferredFile>,
}

/// A file of the manifest left for the next run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferredFile {
    pub vendor: String,
    pub location: String,
    pub priority: Priority,
    pub bytes: u64,
}

impl Plan {
    /// Warns when a slice was given a token (`--token`, told by `token_flag`, or the
    /// `BATCHWIN_TOKEN` variable): the plan verified one and chose the masking profile once
    /// for every slice, and a slice cannot be given another.
    pub fn warn_token_unused(&self, token_flag: bool) {
        if token_flag || crate::env::token().is_some() {
            tracing::warn!(
                "the token is not used with --plan: the slice applies the plan's masking profile ({})",
                self.masking
                    .profile
                    .as_deref()
                    .unwrap_or("configured masks")
            );
        }
    }

    /// The checksum of the configuration at `config_path`, with a warning when it is not the
    /// one the plan was made with.
    pub fn config_sha_of(&self, config_path: &Path) -> Option<String> {
        let sha = manifest::file_sha256(config_path).ok();
        if sha.as_ref().is_some_and(|s| *s != self.config_sha256) {
            tracing::warn!(
                "`{}` changed since the plan was made",
                config_path.display()
            );
        }
        sha
    }

    pub fn read(path: &Path) -> anyhow::Result<Plan> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read plan `{}`", path.display()))?;
        let plan: Plan = serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not a batchwin plan", path.display()))?;
        anyhow::ensure!(
            (OLDEST_PLAN_VERSION..=PLAN_VERSION).contains(&plan.version),
            "plan `{}` has version {}, this batchwin reads versions {OLDEST_PLAN_VERSION} to \
             {PLAN_VERSION}",
            path.display(),
            plan.version
        );
        Ok(plan)
    }
}

/// Measured cost per vendor, seconds per byte.
#[derive(Debug, Clone, Default)]
pub struct CostModel {
    pub seconds_per_byte: BTreeMap<String, f64>,
    pub default_seconds_per_byte: f64,
}

impl CostModel {
    pub fn new() -> CostModel {
        CostModel {
            seconds_per_byte: BTreeMap::new(),
            default_seconds_per_byte: 1.0 / DEFAULT_BYTES_PER_SECOND,
        }
    }
    pub fn cost(&self, vendor: &str, bytes: u64) -> f64 {
        self.seconds_per_byte
            .get(vendor)
            .copied()
            .unwrap_or(self.default_seconds_per_byte)
            * bytes as f64
    }
}

/// How many slices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SliceCount {
    Fixed(usize),
    /// As few as finish inside the window at the given utilization, at most `max`.
    Auto {
        window_seconds: f64,
        utilization: f64,
        max: usize,
    },
}

/// Planner inputs besides the manifest.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub slices: SliceCount,
    /// Files larger than this are split; `None`: automatic (a quarter of an even slice's share,
    /// at least 16 MiB).
    pub split_bytes: Option<u64>,
    pub date: String,
}

/// Errors that stop planning.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("manifest row {row}: vendor `{vendor}` is not in the config")]
    UnknownVendor { row: usize, vendor: String },
    #[error(
        "the work does not fit the window: {work:.0} s of work in {window:.0} s at utilization {utilization} needs more than --max-slices {max} slices (with {max} slices the estimate is {best:.0} s)"
    )]
    DoesNotFit {
        work: f64,
        window: f64,
        utilization: f64,
        max: usize,
        best: f64,
    },
    #[error("cannot split `{location}`: {reason}")]
    Split { location: String, reason: String },
}

/// Stage of every vendor from the `after` dependencies; a cycle is a configuration error that
/// names the vendors in it.
pub fn vendor_stages(config: &Config) -> Result<Vec<usize>, ConfigError> {
    let n = config.vendors.len();
    let index: BTreeMap<&str, usize> = config
        .vendors
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id.as_str(), i))
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut stage = vec![0usize; n];
    // Iterative depth-first search, keeping the path to report a cycle.
    for root in 0..n {
        if mark[root] != Mark::New {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Active;
        while let Some(&mut (v, ref mut next)) = path.last_mut() {
            let deps = &config.vendors[v].after;
            if *next < deps.len() {
                let dep_name = &deps[*next];
                *next += 1;
                let Some(&d) = index.get(dep_name.as_str()) else {
                    let i = *next - 1;
                    return Err(config.at(
                        &KeyPath::vendor(v).key("after").index(i),
                        format!("unknown vendor `{dep_name}`"),
                    ));
                };
                match mark[d] {
                    Mark::Done => {}
                    Mark::Active => {
                        let from = path.iter().position(|(x, _)| *x == d).unwrap_or(0);
                        let mut names: Vec<&str> = path[from..]
                            .iter()
                            .map(|(x, _)| config.vendors[*x].id.as_str())
                            .collect();
                        names.push(config.vendors[d].id.as_str());
                        return Err(config.at(
                            &KeyPath::vendor(v).key("after"),
                            format!(
                                "vendors depend on each other in a cycle: {}",
                                names.join(" -> ")
                            ),
                        ));
                    }
                    Mark::New => {
                        mark[d] = Mark::Active;
                        path.push((d, 0));
                    }
                }
            } else {
                stage[v] = deps
                    .iter()
                    .filter_map(|d| index.get(d.as_str()))
                    .map(|&d| stage[d] + 1)
                    .max()
                    .unwrap_or(0);
                mark[v] = Mark::Done;
                path.pop();
            }
        }
    }
    Ok(stage)
}

/// Splits a large local file into parts at record boundaries with the vendor's framing.
pub type Splitter<'a> = dyn Fn(&ManifestRow, u64) -> Result<Vec<Part>, String> + Sync + 'a;

/// Builds the plan.
pub fn plan(
    config: &Config,
    rows: &[ManifestRow],
    costs: &CostModel,
    opts: &PlanOptions,
    split: &Splitter<'_>,
    hashes: (String, String),
) -> Result<Plan, PlanError> {
    let stages_of = vendor_stages(config)?;
    for (i, r) in rows.iter().enumerate() {
        if config.vendor(&r.vendor).is_none() {
            return Err(PlanError::UnknownVendor {
                row: i + 1,
                vendor: r.vendor.clone(),
            });
        }
    }
    let stage_of = |vendor: &str| config.vendor(vendor).map_or(0, |(i, _)| stages_of[i]);
    let total_bytes: u64 = rows.iter().map(|r| r.bytes).sum();
    let total_work: f64 = rows.iter().map(|r| costs.cost(&r.vendor, r.bytes)).sum();

    // Group rows by stage (only stages that have files, renumbered from 0).
    let mut by_stage: BTreeMap<usize, Vec<&ManifestRow>> = BTreeMap::new();
    for r in rows {
        by_stage.entry(stage_of(&r.vendor)).or_default().push(r);
    }
    let groups: Vec<Vec<&ManifestRow>> = by_stage.into_values().collect();

    let assign_all = |n: usize| -> Result<Vec<Vec<Slice>>, PlanError> {
        groups
            .iter()
            .enumerate()
            .map(|(s, rows)| {
                let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
                let limit = opts
                    .split_bytes
                    .unwrap_or_else(|| (bytes / (n as u64 * 4).max(1)).max(16 << 20));
                let units = make_units(rows, costs, limit, split)?;
                let n = n.min(units.len()).max(1);
                Ok(assign(units, n, s))
            })
            .collect()
    };
    let finish = |stages: &[Vec<Slice>]| -> f64 { stages.iter().map(|sl| makespan(sl)).sum() };

    let (stage_slices, window, utilization) = match opts.slices {
        SliceCount::Fixed(n) => (assign_all(n.max(1))?, None, 1.0),
        SliceCount::Auto {
            window_seconds,
            utilization,
            max,
        } => {
            let budget = window_seconds * utilization;
            let mut n = ((total_work / budget).ceil() as usize).clamp(1, max.max(1));
            loop {
                let s = assign_all(n)?;
                let f = finish(&s);
                if f <= budget {
                    break (s, Some(window_seconds), utilization);
                }
                if n >= max {
                    return Err(PlanError::DoesNotFit {
                        work: total_work,
                        window: window_seconds,
                        utilization,
                        max,
                        best: f,
                    });
                }
                // Grow by the shortfall, at least one slice.
                n = ((n as f64 * f / budget).ceil() as usize)
                    .max(n + 1)
                    .min(max);
            }
        }
    };

    // Number slices globally, stage after stage.
    let mut slices = Vec::new();
    let mut stages = Vec::new();
    let mut stage_start = 0.0;
    let mut prio_finish: BTreeMap<Priority, f64> = BTreeMap::new();
    let mut prio_units: BTreeMap<Priority, usize> = BTreeMap::new();
    for (s, group) in stage_slices.into_iter().enumerate() {
        let first = slices.len();
        let span = makespan(&group);
        let mut vendors: Vec<String> = groups[s].iter().map(|r| r.vendor.clone()).collect();
        vendors.sort();
        vendors.dedup();
        for mut slice in group {
            let mut t = stage_start;
            for u in &slice.units {
                t += u.estimated_seconds;
                let e = prio_finish.entry(u.priority).or_insert(0.0);
                *e = e.max(t);
                *prio_units.entry(u.priority).or_insert(0) += 1;
            }
            slice.index = slices.len();
            slices.push(slice);
        }
        stages.push(Stage {
            index: s,
            vendors,
            first_slice: first,
            slices: slices.len() - first,
            estimated_seconds: span,
        });
        stage_start += span;
    }
    let priorities = [Priority::High, Priority::Medium, Priority::Low]
        .into_iter()
        .filter(|p| prio_units.contains_key(p))
        .map(|p| {
            let sla = config
                .vendors
                .iter()
                .filter(|v| v.priority == p && rows.iter().any(|r| r.vendor == v.id))
                .filter_map(|v| v.sla.map(|s| s.0))
                .map(|d| d.as_secs_f64())
                .reduce(f64::min);
            let finish = prio_finish.get(&p).copied().unwrap_or(0.0);
            PriorityEstimate {
                priority: p,
                units: prio_units.get(&p).copied().unwrap_or(0),
                estimated_finish_seconds: finish,
                sla_seconds: sla,
                meets_sla: sla.is_none_or(|s| finish <= s),
            }
        })
        .collect();
    // The oldest version that says what this plan says, so that workers of an older batchwin
    // still run a plan that needs nothing newer.
    let needs_closing_bytes = slices
        .iter()
        .flat_map(|s| &s.units)
        .any(|u| u.part.as_ref().is_some_and(|p| p.epilogue_bytes.is_some()));
    Ok(Plan {
        version: if needs_closing_bytes {
            PLAN_VERSION
        } else {
            OLDEST_PLAN_VERSION
        },
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        date: opts.date.clone(),
        manifest_sha256: hashes.0,
        config_sha256: hashes.1,
        estimate: Estimate {
            total_bytes,
            total_work_seconds: total_work,
            window_seconds: window,
            utilization,
            slices: slices.len(),
            makespan_seconds: stage_start,
            priorities,
        },
        stages,
        slices,
        deferred: None,
        config: None,
        masking: MaskingChoice::default(),
        traceparent: None,
    })
}

/// [`plan`], and when the day does not fit the window at the largest number of slices allowed,
/// the plan of what fits: every HIGH file, then MEDIUM and LOW files in manifest order (MEDIUM
/// first) as many as fit, the rest left for the next run ([`Plan::deferred`]), as the window's
/// end defers MEDIUM and LOW units that have not started. HIGH files are never deferred: when
/// they alone do not fit, they are planned on the largest number of slices, to finish as soon
/// as they can, and the reason says they will not finish in the window.
pub fn plan_what_fits(
    config: &Config,
    rows: &[ManifestRow],
    costs: &CostModel,
    opts: &PlanOptions,
    split: &Splitter<'_>,
    hashes: (String, String),
) -> Result<Plan, PlanError> {
    let whole = plan(config, rows, costs, opts, split, hashes.clone());
    let (Err(too_big @ PlanError::DoesNotFit { .. }), SliceCount::Auto { max, .. }) =
        (&whole, opts.slices)
    else {
        return whole;
    };
    let reason = too_big.to_string();
    // The rows that may wait, in the order they are kept: MEDIUM before LOW, then manifest order.
    let mut may: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].priority != Priority::High)
        .collect();
    may.sort_by_key(|&i| (rows[i].priority, i));
    let with = |k: usize| -> Vec<ManifestRow> {
        let kept: HashSet<usize> = may[..k].iter().copied().collect();
        rows.iter()
            .enumerate()
            .filter(|(i, r)| r.priority == Priority::High || kept.contains(i))
            .map(|(_, r)| r.clone())
            .collect()
    };
    // The largest number of rows that may wait that still fits (more rows, more work): the
    // whole day does not, so fewer than all. `best` is the plan of `lo` rows once one fits.
    let (mut lo, mut hi) = (0usize, may.len());
    let mut best: Option<Plan> = None;
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        match plan(config, &with(mid), costs, opts, split, hashes.clone()) {
            Ok(p) => {
                best = Some(p);
                lo = mid;
            }
            Err(PlanError::DoesNotFit { .. }) => hi = mid - 1,
            Err(e) => return Err(e),
        }
    }
    let (mut p, reason) = match best {
        Some(p) => (p, reason),
        None => match plan(config, &with(0), costs, opts, split, hashes.clone()) {
            Ok(p) => (p, reason),
            // HIGH alone does not fit: planned all the same, on every slice allowed.
            Err(PlanError::DoesNotFit { .. }) => {
                let all = PlanOptions {
                    slices: SliceCount::Fixed(max),
                    ..opts.clone()
                };
                let mut p = plan(config, &with(0), costs, &all, split, hashes)?;
                p.estimate.window_seconds = whole_window(opts);
                (
                    p,
                    format!(
                        "{reason}; HIGH files alone do not fit: planned on {max} slices, they will not finish in the window"
                    ),
                )
            }
            Err(e) => return Err(e),
        },
    };
    let files: Vec<DeferredFile> = may[lo..]
        .iter()
        .map(|&i| DeferredFile {
            vendor: rows[i].vendor.clone(),
            location: rows[i].location.clone(),
            priority: rows[i].priority,
            bytes: rows[i].bytes,
        })
        .collect();
    if !files.is_empty() {
        p.deferred = Some(Deferral { reason, files });
    }
    Ok(p)
}

fn whole_window(opts: &PlanOptions) -> Option<f64> {
    match opts.slices {
        SliceCount::Auto { window_seconds, .. } => Some(window_seconds),
        SliceCount::Fixed(_) => None,
    }
}

fn makespan(slices: &[Slice]) -> f64 {
    slices
        .iter()
        .map(|s| s.estimated_seconds)
        .fold(0.0, f64::max)
}

/// Turns rows into units, splitting files over `limit` bytes.
fn make_units(
    rows: &[&ManifestRow],
    costs: &CostModel,
    limit: u64,
    split: &Splitter<'_>,
) -> Result<Vec<Unit>, PlanError> {
    let mut units = Vec::with_capacity(rows.len());
    for r in rows {
        let whole = |bytes: u64, part: Option<Part>| Unit {
            vendor: r.vendor.clone(),
            location: r.location.clone(),
            priority: r.priority,
            bytes,
            file_bytes: r.bytes,
            sha256: r.sha256.clone(),
            modified: r.modified.clone(),
            estimated_seconds: costs.cost(&r.vendor, bytes),
            part,
        };
        if r.bytes > limit {
            let parts = split(r, limit).map_err(|reason| PlanError::Split {
                location: r.location.clone(),
                reason,
            })?;
            if parts.len() > 1 {
                units.extend(parts.into_iter().map(|p| whole(p.end - p.start, Some(p))));
                continue;
            }
        }
        units.push(whole(r.bytes, None));
    }
    Ok(units)
}

/// A slice's load in the assignment heap: least loaded first, then lowest index.
#[derive(PartialEq)]
struct Load(f64, usize);
impl Eq for Load {}
impl PartialOrd for Load {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Load {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// Longest-processing-time first into `n` slices, one priority class at a time (HIGH first).
/// Within a slice, units run in priority order, larger first. Deterministic: ties go to the
/// lower slice index and keep manifest order.
fn assign(mut units: Vec<Unit>, n: usize, stage: usize) -> Vec<Slice> {
    units.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.estimated_seconds.total_cmp(&a.estimated_seconds))
            .then(a.location.cmp(&b.location))
            .then(
                a.part
                    .as_ref()
                    .map(|p| p.index)
                    .cmp(&b.part.as_ref().map(|p| p.index)),
            )
    });
    let mut slices: Vec<Slice> = (0..n)
        .map(|i| Slice {
            index: i,
            stage,
            estimated_seconds: 0.0,
            units: Vec::new(),
        })
        .collect();
    let mut heap: BinaryHeap<Reverse<Load>> = (0..n).map(|i| Reverse(Load(0.0, i))).collect();
    for u in units {
        let Some(Reverse(Load(load, i))) = heap.pop() else {
            break;
        };
        let cost = u.estimated_seconds;
        slices[i].units.push(u);
        slices[i].estimated_seconds = load + cost;
        heap.push(Reverse(Load(load + cost, i)));
    }
    slices
}

/// Reads `06:00-10:00` as a window length in seconds (a window that crosses midnight ends the
/// next day).
pub fn window_seconds(w: &str) -> Result<f64, String> {
    let (a, b) = w
        .split_once('-')
        .ok_or_else(|| format!("{w:?} is not a window like 06:00-10:00"))?;
    let t = |s: &str| {
        chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map_err(|_| format!("{s:?} is not a time like 06:00"))
    };
    let (start, end) = (t(a)?, t(b)?);
    let mut secs = (end - start).num_seconds();
    if secs <= 0 {
        secs += 24 * 3600;
    }
    Ok(secs as f64)
}

/// Which of a plan's `slices` a task runs: `slice` when given, else the engine's array `index`
/// plus `offset` (a single-slice AWS Batch stage is a plain job: no index, the offset alone).
pub fn slice_index(
    slice: Option<usize>,
    index: Option<usize>,
    offset: usize,
    slices: usize,
) -> anyhow::Result<usize> {
    let k = match (slice, index) {
        (Some(k), _) => k,
        (None, Some(i)) => i + offset,
        (None, None) if offset > 0 => offset,
        (None, None) => anyhow::bail!(
            "which slice? give `--slice K`, or run as an array task (AWS_BATCH_JOB_ARRAY_INDEX, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)"
        ),
    };
    if k >= slices {
        anyhow::bail!(
            "slice {k} is outside the plan, which has slices 0 to {}",
            slices.saturating_sub(1)
        );
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("batchwin.toml"), text.to_string()).unwrap()
    }

    const VENDOR: &str = "[vendor.input]\nformat = 'jsonl'\n[[vendor.fields]]\nname = 'a'\n[vendor.output]\nformat = 'jsonl'\n";

    fn vendors(spec: &[(&str, &str, &[&str])]) -> Config {
        let mut s = String::new();
        for (id, prio, after) in spec {
            let after: Vec<String> = after.iter().map(|a| format!("{a:?}")).collect();
            s.push_str(&format!(
                "[[vendor]]\nid = {id:?}\npriority = {prio:?}\nafter = [{}]\nsla = '1h'\n{VENDOR}",
                after.join(", ")
            ));
        }
        config(&s)
    }

    fn row(vendor: &str, n: usize, bytes: u64, prio: Priority) -> ManifestRow {
        ManifestRow {
            vendor: vendor.into(),
            location: format!("/in/{vendor}/{n:05}.jsonl"),
            bytes,
            sha256: String::new(),
            format: crate::config::Format::Jsonl,
            priority: prio,
            discovered_at: String::new(),
            source: None,
            source_modified: None,
            replaced_sha256: None,
            modified: None,
            cuts: None,
        }
    }

    fn no_split(_: &ManifestRow, _: u64) -> Result<Vec<Part>, String> {
        Err("not splittable in this test".into())
    }

    fn opts(slices: SliceCount) -> PlanOptions {
        PlanOptions {
            slices,
            split_bytes: Some(u64::MAX),
            date: "2026-11-29".into(),
        }
    }

    #[test]
    fn cycles_name_the_vendors() {
        let c = vendors(&[
            ("A", "high", &["C"]),
            ("B", "high", &["A"]),
            ("C", "high", &["B"]),
        ]);
        let e = vendor_stages(&c).unwrap_err().to_string();
        assert!(e.contains("A -> C -> B -> A"), "{e}");
        let c = vendors(&[
            ("A", "high", &[]),
            ("B", "high", &["A"]),
            ("C", "low", &["A", "B"]),
        ]);
        assert_eq!(vendor_stages(&c).unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn plans_of_the_versions_this_batchwin_reads_are_read_and_others_refused() {
        let c = vendors(&[("H", "high", &[])]);
        let rows = [row("H", 0, 1_000, Priority::High)];
        let p = plan(
            &c,
            &rows,
            &CostModel::new(),
            &opts(SliceCount::Fixed(1)),
            &no_split,
            Default::default(),
        )
        .unwrap();
        // Nothing in it needs version 2.
        assert_eq!(p.version, OLDEST_PLAN_VERSION);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        for (version, readable) in [(1, true), (2, true), (0, false), (3, false)] {
            let mut v = serde_json::to_value(&p).unwrap();
            v["version"] = version.into();
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
            match Plan::read(&path) {
                Ok(read) => {
                    assert!(readable, "version {version} was read");
                    assert_eq!(read.slices.len(), 1);
                }
                Err(e) => {
                    assert!(!readable, "version {version}: {e:#}");
                    let e = format!("{e:#}");
                    assert!(
                        e.contains(&format!(
                            "has version {version}, this batchwin reads versions 1 to 2"
                        )),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn slices_are_balanced_and_high_runs_first() {
        let c = vendors(&[("H", "high", &[]), ("L", "low", &[])]);
        let mut rows = Vec::new();
        for i in 0..400 {
            let prio = if i % 4 == 0 {
                Priority::High
            } else {
                Priority::Low
            };
            let v = if prio == Priority::High { "H" } else { "L" };
            rows.push(row(v, i, 1_000_000 + (i as u64 * 7919) % 9_000_000, prio));
        }
        let p = plan(
            &c,
            &rows,
            &CostModel::new(),
            &opts(SliceCount::Fixed(8)),
            &no_split,
            Default::default(),
        )
        .unwrap();
        assert_eq!(p.slices.len(), 8);
        let spans: Vec<f64> = p.slices.iter().map(|s| s.estimated_seconds).collect();
        let (lo, hi) = (
            spans.iter().cloned().fold(f64::MAX, f64::min),
            spans.iter().cloned().fold(0.0, f64::max),
        );
        assert!((hi - lo) / hi < 0.02, "{spans:?}");
        for s in &p.slices {
            let prios: Vec<Priority> = s.units.iter().map(|u| u.priority).collect();
            assert!(
                prios.windows(2).all(|w| w[0] <= w[1]),
                "slice {} runs out of priority order",
                s.index
            );
        }
        let units: usize = p.slices.iter().map(|s| s.units.len()).sum();
        assert_eq!(units, 400);
        let high = &p.estimate.priorities[0];
        assert_eq!(high.priority, Priority::High);
        assert!(high.estimated_finish_seconds < p.estimate.makespan_seconds / 3.0);
    }

    #[test]
    fn dependencies_make_stages() {
        let c = vendors(&[("A", "high", &[]), ("B", "high", &["A"])]);
        let rows: Vec<ManifestRow> = (0..10)
            .map(|i| row(if i < 5 { "A" } else { "B" }, i, 5_000_000, Priority::High))
            .collect();
        let p = plan(
            &c,
            &rows,
            &CostModel::new(),
            &opts(SliceCount::Fixed(3)),
            &no_split,
            Default::default(),
        )
        .unwrap();
        assert_eq!(p.stages.len(), 2);
        assert_eq!((p.stages[1].first_slice, p.stages[1].slices), (3, 3));
        assert!(
            p.slices[..3]
                .iter()
                .all(|s| s.units.iter().all(|u| u.vendor == "A"))
        );
        assert!(
            (p.estimate.makespan_seconds
                - (p.stages[0].estimated_seconds + p.stages[1].estimated_seconds))
                .abs()
                < 1e-9
        );
    }

    /// A day larger than the window at the largest number of slices: every HIGH file, then
    /// MEDIUM before LOW as many as fit; the rest is left for the next run, with the reason.
    #[test]
    fn a_day_too_big_plans_what_fits_high_first() {
        let c = vendors(&[("H", "high", &[]), ("M", "medium", &[]), ("L", "low", &[])]);
        // 1 s of work per 50 MB file; 2 slices of a 10 s window at 0.8: 16 s.
        let mut rows = Vec::new();
        for (i, (v, p)) in [
            ("L", Priority::Low),
            ("M", Priority::Medium),
            ("H", Priority::High),
        ]
        .iter()
        .cycle()
        .take(30)
        .enumerate()
        {
            rows.push(row(v, i, 50_000_000, *p));
        }
        let auto = |window| {
            opts(SliceCount::Auto {
                window_seconds: window,
                utilization: 0.8,
                max: 2,
            })
        };
        let go = |o: &PlanOptions| {
            plan_what_fits(
                &c,
                &rows,
                &CostModel::new(),
                o,
                &no_split,
                Default::default(),
            )
        };
        let p = go(&auto(10.0)).unwrap();
        let planned: Vec<&Unit> = p.slices.iter().flat_map(|s| &s.units).collect();
        let count = |v: &str| planned.iter().filter(|u| u.vendor == v).count();
        assert_eq!((count("H"), count("M"), count("L")), (10, 6, 0));
        assert!(p.estimate.makespan_seconds <= 16.0 + 1e-9);
        let d = p.deferred.as_ref().expect("files left for the next run");
        assert_eq!(d.files.len(), 14);
        assert!(d.files.iter().all(|f| f.priority != Priority::High));
        assert!(d.reason.contains("does not fit the window"), "{}", d.reason);
        // HIGH alone does not fit: planned on every slice allowed all the same, nothing else.
        let p = go(&auto(5.0)).unwrap();
        assert_eq!(p.slices.len(), 2);
        assert!(
            p.slices
                .iter()
                .flat_map(|s| &s.units)
                .all(|u| u.vendor == "H")
        );
        let d = p.deferred.as_ref().unwrap();
        assert_eq!(d.files.len(), 20);
        assert!(
            d.reason.contains("HIGH files alone do not fit"),
            "{}",
            d.reason
        );
        // A day that fits is planned whole, with nothing deferred.
        let p = go(&auto(100.0)).unwrap();
        assert!(p.deferred.is_none());
        assert_eq!(p.slices.iter().map(|s| s.units.len()).sum::<usize>(), 30);
    }

    #[test]
    fn auto_slices_fit_the_window_or_say_why_not() {
        let c = vendors(&[("A", "medium", &[])]);
        // 1000 files of 50 MB at 50 MB/s: 1000 s of work.
        let rows: Vec<ManifestRow> = (0..1000)
            .map(|i| row("A", i, 50_000_000, Priority::Medium))
            .collect();
        let auto = |window, max| SliceCount::Auto {
            window_seconds: window,
            utilization: 0.8,
            max,
        };
        let p = plan(
            &c,
            &rows,
            &CostModel::new(),
            &opts(auto(100.0, 100)),
            &no_split,
            Default::default(),
        )
        .unwrap();
        assert_eq!(p.slices.len(), 13, "1000 s / (100 s * 0.8) = 12.5, so 13");
        assert!(p.estimate.makespan_seconds <= 80.0);
        let e = plan(
            &c,
            &rows,
            &CostModel::new(),
            &opts(auto(100.0, 5)),
            &no_split,
            Default::default(),
        )
        .unwrap_err();
        assert!(matches!(e, PlanError::DoesNotFit { .. }), "{e}");
    }

    #[test]
    fn windows() {
        assert_eq!(window_seconds("06:00-10:00").unwrap(), 4.0 * 3600.0);
        assert_eq!(window_seconds("22:00-02:00").unwrap(), 4.0 * 3600.0);
        assert!(window_seconds("6-10").is_err());
    }
}
