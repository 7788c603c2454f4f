//! `publish`: deliver each successful output (and, where the vendor asks, its reject file) to
//! the vendor's outbound location, atomically and idempotently, and record every delivery.
//!
//! What to deliver comes from the slices' ledgers: the latest attempt of each unit. A file
//! that was split is delivered once all its parts succeeded, as one file: the parts put
//! together in order (and judged against the vendor's skip limit as a whole). Its reject file
//! is the parts' put together the same way, the rejects of a part that numbered its records
//! and lines from its own start (a part of a file at a URL) renumbered by the records and
//! lines of the parts before it, as their ledgers recorded them: the whole file's reject file,
//! or none when those numbers are not known. A target that already holds the same bytes is
//! skipped; one with different bytes is refused unless `overwrite`.
//!
//! With `--follow` ([`PublishRequest::follow`]) it delivers while the slices run: each file
//! once the slices' journals record all its units as succeeded, then, when the slices have
//! ended, the rest from the ledgers, leaving out what it delivered already.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::TransferSettings;
use crate::config::Config;
use crate::ledger::find_ledgers;
use crate::ledger::merge::with_latest;
use crate::ledger::{Batch, Delivery, Ledger, RunInfo};
use crate::rejects::Shift;
use crate::storage::{ExpectedContent, StorageError, Store, Transferred};
use crate::vendor::SkipLimit;

pub struct PublishRequest<'a> {
    pub config: &'a Config,
    pub settings: &'a TransferSettings,
    /// Where outputs go, below which the outbound layout applies; a vendor's
    /// `transfer.outbound` replaces it.
    pub target: Option<&'a str>,
    pub date: &'a str,
    /// Folder of slice ledgers (or one ledger).
    pub ledgers: &'a Path,
    /// The ledger that deliveries are recorded in.
    pub ledger: &'a Path,
    pub run: &'a RunInfo,
    pub overwrite: bool,
    pub progress: bool,
    /// Deliver each output once a run appending to a journal below `ledgers` records it, until
    /// this file exists; then the rest, from the ledgers (`--follow`).
    pub follow: Option<&'a Path>,
}

/// A file to deliver: one or more local pieces put together in order.
#[derive(Debug, Clone)]
struct Item {
    vendor: String,
    input_path: String,
    kind: &'static str,
    pieces: Vec<Piece>,
    /// Name of the delivered file (layout's `{file}`).
    file: String,
    base: String,
    /// Why the pieces cannot be put together into the whole file's (the numbers of a split
    /// file's rejects): the delivery fails with it.
    unfit: Option<String>,
}

/// One piece of a file to deliver.
#[derive(Debug, Clone)]
struct Piece {
    path: PathBuf,
    /// What its ledger recorded of it (none for a reject file).
    recorded: Option<ExpectedContent>,
    /// For the reject file of a part numbered from its own start: what comes before the part,
    /// added to its numbers (see `rejects`).
    shift: Option<Shift>,
}

#[derive(Debug, Default)]
pub struct PublishOutcome {
    pub delivered: usize,
    pub skipped: usize,
    pub refused: Vec<String>,
    pub failed: Vec<String>,
    /// Units that cannot be delivered: failed in processing, parts missing, skip limit.
    pub not_ready: Vec<String>,
    /// Whether a failure may go away on a second try (network).
    pub transient: bool,
    /// Whether a target's SSH host key was refused: the configuration must change (exit 2).
    pub host_key_refused: bool,
    pub bytes: u64,
    /// `--follow` found no ledger once the slices ended: none recorded anything.
    pub no_ledgers: bool,
}

#[derive(Clone)]
struct Unit {
    part: Option<i64>,
    parts: Option<i64>,
    status: String,
    error: Option<String>,
    output_path: Option<String>,
    output_sha256: Option<String>,
    output_bytes: i64,
    /// `ended_at`, microseconds since the epoch.
    ended_us: i64,
    reject_path: Option<String>,
    records_in: i64,
    records_rejected: i64,
    first_record: Option<i64>,
    lines: Option<i64>,
}

impl Unit {
    fn of(d: crate::ledger::query::Deliverable) -> Unit {
        Unit {
            part: d.part,
            parts: d.parts,
            status: d.status,
            error: d.error,
            output_path: d.output_path,
            output_sha256: d.output_sha256,
            reject_path: d.reject_path,
            records_in: d.records_in,
            records_rejected: d.records_rejected,
            output_bytes: d.output_bytes,
            ended_us: d.ended_us,
            first_record: d.first_record,
            lines: d.lines,
        }
    }

    /// What the ledger recorded of the unit's output: its size and checksum, and that it was
    /// complete when the unit ended.
    fn recorded(&self) -> Option<ExpectedContent> {
        let sha256 = self.output_sha256.clone()?;
        Some(ExpectedContent {
            content: Transferred {
                bytes: self.output_bytes.max(0) as u64,
                sha256,
            },
            written_by: std::time::UNIX_EPOCH
                .checked_add(std::time::Duration::from_micros(self.ended_us.max(0) as u64)),
        })
    }
}

/// The name a part's output is written under, back to the whole file's name.
fn whole_name(path: &str) -> String {
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind(".part-") {
        Some(i) if name[i..].contains("-of-") => name[..i].to_string(),
        _ => name,
    }
}

/// Reads the latest attempt of every unit from the ledgers and turns it into deliveries;
/// `None` when there is no ledger.
fn plan_items(
    req: &PublishRequest<'_>,
    out: &mut PublishOutcome,
) -> anyhow::Result<Option<Vec<Item>>> {
    use anyhow::Context;
    // Made by the first slice that recorded anything.
    if !req.ledgers.exists() && !crate::ledger::journal::path_of(req.ledgers).exists() {
        return Ok(None);
    }
    let ledgers = find_ledgers(req.ledgers, Some(req.ledger))
        .with_context(|| format!("cannot read ledgers in `{}`", req.ledgers.display()))?;
    if ledgers.is_empty() {
        return Ok(None);
    }
    let latest = with_latest(&ledgers, |conn| {
        Ok(crate::ledger::query::deliverables(conn)?)
    })?;
    let mut units: BTreeMap<(String, String), Vec<Unit>> = BTreeMap::new();
    for d in latest {
        units
            .entry((d.vendor.clone(), d.input_path.clone()))
            .or_default()
            .push(Unit::of(d));
    }
    items_of(req, units, out).map(Some)
}

/// The deliveries of each file's units (its parts in order), and in `out.not_ready` why a
/// file's output cannot be delivered.
fn items_of(
    req: &PublishRequest<'_>,
    units: BTreeMap<(String, String), Vec<Unit>>,
    out: &mut PublishOutcome,
) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    for ((vendor, input), us) in units {
        let Some((vi, v)) = req.config.vendor(&vendor) else {
            out.not_ready
                .push(format!("{input}: vendor `{vendor}` is not in the config"));
            continue;
        };
        let base = match (&v.transfer.outbound, req.target) {
            (Some(o), _) => o.clone(),
            (None, Some(t)) => t.to_string(),
            (None, None) => anyhow::bail!(
                "no target for vendor `{vendor}`: give --target or set transfer.outbound for the vendor"
            ),
        };
        let expected = us[0].parts.unwrap_or(1).max(1) as usize;
        let mut ready = us.iter().all(|u| u.status == "succeeded");
        let mut why = us
            .iter()
            .find(|u| u.status != "succeeded")
            .map(|u| format!("{} ({})", u.status, u.error.clone().unwrap_or_default()));
        if us[0].part.is_some() && us.len() != expected {
            ready = false;
            why = Some(format!("{} of {expected} parts have a result", us.len()));
        }
        let (records, rejected) = us.iter().fold((0, 0), |(a, b), u| {
            (a + u.records_in, b + u.records_rejected)
        });
        let limit = SkipLimit::of(req.config, vi)?;
        if ready && us.len() > 1 && limit.exceeded(rejected as u64, records as u64) {
            ready = false;
            why = Some(format!(
                "{rejected} of {records} records rejected, over the skip limit of {limit}"
            ));
        }
        if ready {
            let pieces: Vec<_> = us
                .iter()
                .filter_map(|u| {
                    u.output_path.as_ref().map(|p| Piece {
                        path: PathBuf::from(p),
                        recorded: u.recorded(),
                        shift: None,
                    })
                })
                .collect();
            if let Some(first) = pieces.first() {
                let file = whole_name(&first.path.display().to_string());
                items.push(Item {
                    vendor: vendor.clone(),
                    input_path: input.clone(),
                    kind: "output",
                    pieces,
                    file,
                    base: base.clone(),
                    unfit: None,
                });
            }
        } else {
            out.not_ready
                .push(format!("{vendor} `{input}`: {}", why.unwrap_or_default()));
        }
        if v.transfer.publish_rejects
            && us.iter().all(|u| u.reject_path.is_some())
            && (us[0].part.is_none() || us.len() == expected)
        {
            let (shifts, unfit) = match shifts(&input, &us) {
                Ok(s) => (s, None),
                Err(e) => (vec![None; us.len()], Some(e)),
            };
            let pieces: Vec<_> = us
                .iter()
                .zip(shifts)
                .filter_map(|(u, shift)| {
                    u.reject_path.as_ref().map(|p| Piece {
                        path: PathBuf::from(p),
                        recorded: None,
                        shift,
                    })
                })
                .collect();
            let file = whole_name(&pieces[0].path.display().to_string());
            items.push(Item {
                vendor,
                input_path: input,
                kind: "rejects",
                pieces,
                file,
                base,
                unfit,
            });
        }
    }
    Ok(items)
}

/// For the reject file of each of the units of file `input` (its parts in order), what comes
/// before the part when it numbered its rejects from its own start (`first_record` 0: a part of
/// a file at a URL after the first): the records and lines of the parts before it, as their
/// ledgers recorded them. `Err` says why those are not known (a part before it failed, or was
/// recorded without its lines): its rejects cannot be given the whole file's numbers.
fn shifts(input: &str, us: &[Unit]) -> Result<Vec<Option<Shift>>, String> {
    let mut before: Result<Shift, String> = Ok(Shift::default());
    let mut out = Vec::with_capacity(us.len());
    for u in us {
        // A row written before the ledger recorded `first_record`: a part of a file at a URL
        // after the first was cut by ranged reads, so numbered from its own start.
        let first_record = u.first_record.or_else(|| {
            (super::location::is_url(input) && u.part.is_some_and(|p| p > 0)).then_some(0)
        });
        let of = |u: &Unit| {
            format!(
                "part {} of {}",
                u.part.unwrap_or(0) + 1,
                u.parts.unwrap_or(1)
            )
        };
        if first_record == Some(0) {
            match &before {
                Ok(b) => out.push(Some(*b)),
                Err(why) => {
                    return Err(format!(
                        "the rejects of {} are numbered from the part's own start, and what comes before it is not known ({why}): not delivered rather than with wrong record and line numbers",
                        of(u)
                    ));
                }
            }
        } else {
            out.push(None);
        }
        before = before.and_then(|b| {
            if u.status != "succeeded" {
                return Err(format!("{} {}", of(u), u.status));
            }
            let lines = u.lines.ok_or_else(|| {
                format!(
                    "{} was recorded without its count of lines, by an earlier batchwin",
                    of(u)
                )
            })?;
            Ok(Shift {
                records: b.records.saturating_add(u.records_in.max(0) as u64),
                lines: b.lines.saturating_add(lines.max(0) as u64),
            })
        });
    }
    Ok(out)
}

/// The local file to upload, and what it holds.
struct Assembled {
    path: PathBuf,
    /// Whether `path` is a temporary file to remove after the upload.
    temporary: bool,
    /// What it holds, checked by the upload.
    expected: ExpectedContent,
}

/// The local file to upload when [`recorded`] does not give it: the pieces of a split file put
/// together in a temporary file (or one piece whose ledger recorded no checksum). Each piece is
/// read once: checked against the checksum its ledger recorded, and hashed as the whole file,
/// so the delivery can be compared with what a target already holds. A reject file's piece
/// with a shift is renumbered line by line as it is put in (see `rejects`).
fn assemble(item: &Item) -> Result<Assembled, String> {
    use std::io::{BufRead, Read};
    let single = item.pieces.len() == 1 && item.pieces[0].shift.is_none();
    let path = if single {
        item.pieces[0].path.clone()
    } else {
        let tmp = crate::storage::temp_sibling(&item.pieces[0].path.with_file_name(&item.file));
        // Removed by a signal too (`crate::cancel`), until the delivery removes it.
        crate::cancel::register_temporary(&tmp);
        tmp
    };
    let run = || -> Result<(u64, String), String> {
        let write_err = |e: std::io::Error| format!("cannot write `{}`: {e}", path.display());
        let mut out = match single {
            true => None,
            false => Some(std::io::BufWriter::with_capacity(
                1 << 20,
                crate::files::create(&path).map_err(write_err)?,
            )),
        };
        // One piece is the whole file: its own hash is the whole file's.
        let mut whole = (!single).then(Sha256::new);
        let mut bytes = 0u64;
        let mut last = String::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut moved = Vec::new();
        for piece in &item.pieces {
            let p = &piece.path;
            let read_err = |e: std::io::Error| format!("cannot read `{}`: {e}", p.display());
            let mut f = std::fs::File::open(p).map_err(read_err)?;
            let mut h = Sha256::new();
            if let Some(shift) = piece.shift {
                // Line by line, each put in with its numbers moved on.
                let mut lines = std::io::BufReader::with_capacity(1 << 20, f);
                let mut number = 0u64;
                loop {
                    buf.clear();
                    if lines.read_until(b'\n', &mut buf).map_err(read_err)? == 0 {
                        break;
                    }
                    number += 1;
                    h.update(&buf);
                    moved.clear();
                    crate::rejects::shifted(&buf, shift, &mut moved).map_err(|e| {
                        format!(
                            "`{}` line {number}: {e}; the file's rejects are not delivered rather than with wrong record and line numbers",
                            p.display()
                        )
                    })?;
                    if let Some(w) = whole.as_mut() {
                        w.update(&moved);
                    }
                    if let Some(o) = out.as_mut() {
                        o.write_all(&moved).map_err(write_err)?;
                    }
                    bytes += moved.len() as u64;
                }
                buf.resize(1 << 20, 0);
            } else {
                loop {
                    let n = f.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    if let Some(w) = whole.as_mut() {
                        w.update(&buf[..n]);
                    }
                    if let Some(o) = out.as_mut() {
                        o.write_all(&buf[..n]).map_err(write_err)?;
                    }
                    bytes += n as u64;
                }
            }
            last = hex::encode(h.finalize());
            if let Some(want) = piece
                .recorded
                .as_ref()
                .map(|w| &w.content.sha256)
                .filter(|w| **w != last)
            {
                return Err(format!(
                    "`{}` changed since it was processed (sha256 {last}, ledger says {want})",
                    p.display()
                ));
            }
        }
        if let Some(o) = out.as_mut() {
            o.flush().map_err(write_err)?;
        }
        Ok((bytes, whole.map_or(last, |w| hex::encode(w.finalize()))))
    };
    match run() {
        Ok((bytes, sha256)) => Ok(Assembled {
            path,
            temporary: !single,
            expected: ExpectedContent {
                content: Transferred { bytes, sha256 },
                // Just read and checked.
                written_by: None,
            },
        }),
        Err(e) => {
            if !single {
                let _ = std::fs::remove_file(&path);
                crate::cancel::forget_temporary(&path);
            }
            Err(e)
        }
    }
}

enum Done {
    Delivered(u64, String),
    Skipped(u64, String),
    Refused(String),
    /// What went wrong, whether a retry may help, whether a host key was refused.
    Failed(String, bool, bool),
}

/// A whole output whose ledger recorded it: nothing to read before the upload, which hashes it
/// as it goes (or, delivering the file itself, sees that it has not changed) and checks it
/// before completing.
fn recorded(item: &Item) -> Option<Result<Assembled, String>> {
    let [
        Piece {
            path,
            recorded: Some(expected),
            shift: None,
        },
    ] = item.pieces.as_slice()
    else {
        return None;
    };
    Some(match std::fs::metadata(path) {
        Ok(_) => Ok(Assembled {
            path: path.clone(),
            temporary: false,
            expected: expected.clone(),
        }),
        Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
    })
}

async fn deliver(req: &PublishRequest<'_>, store: &Store, item: &Item, name: &str) -> Done {
    let local = recorded(item).unwrap_or_else(|| tokio::task::block_in_place(|| assemble(item)));
    let local = match local {
        Ok(l) => l,
        Err(e) => return Done::Failed(e, false, false),
    };
    let expected = &local.expected;
    let (bytes, sha256) = (expected.content.bytes, &expected.content.sha256);
    let result = async {
        // Same bytes already there: nothing to do. Different bytes: refuse unless told.
        let mut overwrite = false;
        if let Some(e) = store.head(name).await? {
            if e.size == bytes {
                // A server that sends more than it listed holds other bytes than ours.
                let same = match store.checksum(name, Some(e.size)).await {
                    Ok(sum) => sum.sha256 == *sha256,
                    Err(StorageError::Oversize { .. }) => false,
                    Err(other) => return Err(other),
                };
                if same {
                    return Ok(Done::Skipped(bytes, sha256.clone()));
                }
            }
            if !req.overwrite {
                return Ok(Done::Refused(format!(
                    "{} already exists with different content ({} bytes); not replaced (use --overwrite to replace it)",
                    store.url_of(name),
                    e.size
                )));
            }
            overwrite = true;
        }
        match store
            .put_file_checked(name, &local.path, overwrite, Some(expected))
            .await
        {
            Ok(t) => Ok(Done::Delivered(t.bytes, t.sha256)),
            Err(StorageError::AlreadyExists { .. }) => Ok(Done::Refused(format!(
                "{} appeared while it was being delivered; not replaced",
                store.url_of(name)
            ))),
            Err(e) => Err(e),
        }
    }
    .await;
    if local.temporary {
        let _ = std::fs::remove_file(&local.path);
        crate::cancel::forget_temporary(&local.path);
    }
    match result {
        Ok(d) => d,
        Err(e) => Done::Failed(
            e.to_string(),
            e.is_transient(),
            matches!(e, StorageError::HostKey { .. }),
        ),
    }
}

/// `item` with each piece that is a URL (an output in a run location) downloaded into
/// `copies`, and the local copies made.
async fn local_pieces(
    req: &PublishRequest<'_>,
    item: &Item,
    copies: &super::location::LocalCopies,
) -> Result<(Item, Vec<PathBuf>), StorageError> {
    let mut local = item.clone();
    let mut made = Vec::new();
    for Piece { path, .. } in &mut local.pieces {
        let text = path.display().to_string();
        if super::location::is_url(&text) {
            let copy = copies
                .path()
                .join(format!("{:08x}", rand::random::<u32>()))
                .join(whole_name(&text));
            super::location::download(&text, &copy, &req.settings.store).await?;
            *path = copy.clone();
            made.push(copy);
        }
    }
    Ok((local, made))
}

pub async fn publish(req: &PublishRequest<'_>) -> anyhow::Result<PublishOutcome> {
    let mut out = PublishOutcome::default();
    let mut d = Deliveries {
        ledger: Ledger::open(req.ledger)?,
        stores: HashMap::new(),
        // Outputs in a run location (a URL in the ledger) are downloaded, a few at a time,
        // just before their delivery, and removed after it.
        copies: super::location::LocalCopies::new("publish")?,
        done: HashMap::new(),
    };
    if let Some(until) = req.follow {
        follow(req, until, &mut d, &mut out).await?;
    }
    let Some(items) = plan_items(req, &mut out)? else {
        // Following slices, none of which recorded anything: nothing to publish.
        if req.follow.is_some() {
            out.no_ledgers = true;
            return Ok(out);
        }
        anyhow::bail!("no ledgers (*.duckdb) in `{}`", req.ledgers.display());
    };
    let items: Vec<Item> = items
        .into_iter()
        // Delivered while following the slices: the same pieces, already counted.
        .filter(|it| d.done.get(&it.key()) != Some(&it.signature()))
        .collect();
    let bar = crate::printer::progress_bar(
        req.progress,
        items.len() as u64,
        "{bar:40} {pos}/{len} files {msg}",
    );
    d.deliver(req, &items, &bar, &mut out, true).await?;
    bar.finish_and_clear();
    for n in &out.not_ready {
        tracing::warn!("not delivered: {n}");
    }
    Ok(out)
}

/// How often `--follow` looks for new rows in the slices' journals: a delivery waits at most
/// this long after its unit is recorded, and reading a few new lines costs microseconds.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// `--follow`: delivers each file whose units the runs appending to the journals below the
/// ledgers folder have all recorded (succeeded), as they record them, until `until` exists.
/// What cannot be delivered yet (a unit failed, a part recorded by an earlier run) is left to
/// the pass over the ledgers that follows; so is a delivery that failed here.
async fn follow(
    req: &PublishRequest<'_>,
    until: &Path,
    d: &mut Deliveries,
    out: &mut PublishOutcome,
) -> anyhow::Result<()> {
    let mut tail = crate::ledger::journal::Tail::new(req.ledgers);
    let mut units: HashMap<(String, String), BTreeMap<i64, Unit>> = HashMap::new();
    let hidden = indicatif::ProgressBar::hidden();
    loop {
        // Looked at before the rows are read: rows recorded before the slices ended are read
        // in this round.
        let ended = until.exists();
        let mut touched = std::collections::BTreeSet::new();
        for row in tail.files()? {
            let key = (row.vendor.clone(), row.input_path.clone());
            let part = row.part.unwrap_or(-1);
            units
                .entry(key.clone())
                .or_default()
                .insert(part, Unit::of(row.deliverable()));
            touched.insert(key);
        }
        let files: BTreeMap<_, _> = touched
            .into_iter()
            .filter_map(|k| {
                let us: Vec<Unit> = units.get(&k)?.values().cloned().collect();
                Some((k, us))
            })
            .collect();
        // Why a file is not ready is told by the pass over the ledgers.
        let items = items_of(req, files, &mut PublishOutcome::default())?;
        // A reject file whose parts cannot be numbered as the whole file's is refused by the
        // pass over the ledgers, once.
        let items: Vec<Item> = items
            .into_iter()
            .filter(|it| it.unfit.is_none() && !d.done.contains_key(&it.key()))
            .collect();
        d.deliver(req, &items, &hidden, out, false).await?;
        if ended {
            return Ok(());
        }
        // The slices' end is looked for more often than the rows: the pass over the ledgers
        // that follows it is what the end of a run waits for.
        let next_round = tokio::time::Instant::now() + FOLLOW_EVERY;
        while tokio::time::Instant::now() < next_round && !until.exists() {
            tokio::time::sleep(ENDED_EVERY).await;
        }
    }
}

/// How often `--follow` looks for the file that says the slices have ended.
const ENDED_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

impl Item {
    /// Which delivery it is: one per file and kind.
    fn key(&self) -> (String, String, &'static str) {
        (self.vendor.clone(), self.input_path.clone(), self.kind)
    }

    /// What it delivers: its pieces and their recorded checksums.
    fn signature(&self) -> String {
        self.pieces
            .iter()
            .map(|p| {
                let sha = p
                    .recorded
                    .as_ref()
                    .map_or("", |r| r.content.sha256.as_str());
                format!("{}={sha}", p.path.display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// What delivering needs across passes: the deliveries' ledger, a store per target, a folder
/// for downloaded outputs, and the deliveries made (delivered, already there or refused; not
/// failed), by [`Item::key`], with their [`Item::signature`].
struct Deliveries {
    ledger: Ledger,
    stores: HashMap<String, Store>,
    copies: super::location::LocalCopies,
    done: HashMap<(String, String, &'static str), String>,
}

impl Deliveries {
    /// Delivers `items`, a few at a time, and records each delivery. A failed delivery counts
    /// in `out` when `final_pass`; otherwise it is recorded, and the pass over the ledgers
    /// tries it again.
    async fn deliver(
        &mut self,
        req: &PublishRequest<'_>,
        items: &[Item],
        bar: &indicatif::ProgressBar,
        out: &mut PublishOutcome,
        final_pass: bool,
    ) -> anyhow::Result<()> {
        // One store per distinct target.
        for it in items {
            if !self.stores.contains_key(&it.base) {
                let s = Store::open(&it.base, &req.settings.store).await?;
                self.stores.insert(it.base.clone(), s);
            }
        }
        let mut names = Vec::with_capacity(items.len());
        for it in items {
            let name = req
                .settings
                .outbound
                .render(req.date, &it.vendor, &it.file)
                .map_err(anyhow::Error::msg)?;
            crate::storage::safe_name(&name)?;
            names.push(name);
        }
        let (stores, copies) = (&self.stores, &self.copies);
        let work = futures::stream::iter(items.iter().zip(&names).map(|(it, name)| {
            let bar = bar.clone();
            async move {
                let store = &stores[&it.base];
                let pieces = match &it.unfit {
                    Some(why) => Err(why.clone()),
                    None => Ok(local_pieces(req, it, copies).await),
                };
                let done = match pieces {
                    Err(why) => Done::Failed(why, false, false),
                    Ok(Ok((local, downloaded))) => {
                        let done = deliver(req, store, &local, name).await;
                        for p in downloaded {
                            let _ = std::fs::remove_file(p);
                        }
                        done
                    }
                    Ok(Err(e)) => Done::Failed(
                        e.to_string(),
                        e.is_transient(),
                        matches!(e, StorageError::HostKey { .. }),
                    ),
                };
                bar.inc(1);
                (it, store.url_of(name), done)
            }
        }))
        .buffer_unordered(req.settings.concurrency);
        futures::pin_mut!(work);
        // Deliveries are recorded in batches. A publish killed before its last batch loses
        // only those rows: running it again finds the files already there with the same
        // bytes and records them as skipped.
        let mut batch = Batch::default();
        while let Some((it, target, done)) = work.next().await {
            let mut d = Delivery {
                vendor: it.vendor.clone(),
                input_path: it.input_path.clone(),
                kind: it.kind,
                target: target.clone(),
                bytes: None,
                sha256: None,
                status: "delivered",
                error: None,
                at: chrono::Utc::now(),
            };
            let settled = !matches!(done, Done::Failed(..));
            match done {
                Done::Delivered(b, s) => {
                    tracing::info!("delivered {target} ({b} bytes)");
                    out.delivered += 1;
                    out.bytes += b;
                    (d.bytes, d.sha256) = (Some(b), Some(s));
                }
                Done::Skipped(b, s) => {
                    tracing::info!("{target} is already there with the same content: skipped");
                    out.skipped += 1;
                    (d.bytes, d.sha256, d.status) = (Some(b), Some(s), "skipped");
                }
                Done::Refused(m) => {
                    tracing::error!("{m}");
                    out.refused.push(m.clone());
                    (d.status, d.error) = ("refused", Some(m));
                }
                Done::Failed(m, transient, host_key) => {
                    tracing::error!("{target}: {m}");
                    if final_pass {
                        out.transient |= transient;
                        out.host_key_refused |= host_key;
                        out.failed.push(format!("{target}: {m}"));
                    }
                    (d.status, d.error) = ("failed", Some(m));
                }
            }
            if settled {
                self.done.insert(it.key(), it.signature());
            }
            if batch.push(d) {
                self.ledger.record_deliveries(req.run, &batch.take())?;
            }
        }
        self.ledger.record_deliveries(req.run, &batch.take())?;
        Ok(())
    }
}

/// How many files a local target folder holds, at any depth: what `demo` reports as
/// delivered.
pub fn files_below(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "s3://staging/2026-11-29/a.jsonl";

    fn part(index: i64, first_record: i64, records: i64, lines: Option<i64>) -> Unit {
        Unit {
            part: Some(index),
            parts: Some(3),
            status: "succeeded".into(),
            error: None,
            output_path: None,
            output_sha256: None,
            output_bytes: 0,
            ended_us: 0,
            reject_path: None,
            records_in: records,
            records_rejected: 0,
            first_record: Some(first_record),
            lines,
        }
    }

    /// The parts of a file at a URL after the first are moved on by the records and lines of
    /// the parts before them; a local file's parts, numbered in the whole file already, are
    /// not; a part after one whose counts are not known cannot be numbered.
    #[test]
    fn the_parts_after_the_first_are_moved_on_by_those_before() {
        let shift = |records, lines| Some(Shift { records, lines });
        let url = [
            part(0, 1, 10, Some(12)),
            part(1, 0, 5, Some(7)),
            part(2, 0, 1, Some(1)),
        ];
        assert_eq!(
            shifts(URL, &url),
            Ok(vec![None, shift(10, 12), shift(15, 19)])
        );
        let local = [
            part(0, 1, 10, None),
            part(1, 11, 5, None),
            part(2, 16, 1, None),
        ];
        assert_eq!(shifts(URL, &local), Ok(vec![None, None, None]));
        let mut failed = url.clone();
        failed[1].status = "failed".into();
        let e = shifts(URL, &failed).expect_err("part 3 cannot be numbered");
        assert!(
            e.contains("part 3 of 3") && e.contains("part 2 of 3 failed"),
            "{e}"
        );
        // A failed last part leaves the parts before it as they are.
        let mut last = url.clone();
        last[2].status = "failed".into();
        assert_eq!(
            shifts(URL, &last),
            Ok(vec![None, shift(10, 12), shift(15, 19)])
        );
        let mut older = url.clone();
        older[0].lines = None;
        let e = shifts(URL, &older).expect_err("no lines for part 1");
        assert!(e.contains("without its count of lines"), "{e}");
        // Rows from before the ledger recorded a part's first record: a later part of a file
        // at a URL was numbered from its own start, with no lines recorded before it; a local
        // file's parts were numbered in the whole file.
        let mut old = local.clone();
        for u in &mut old {
            u.first_record = None;
        }
        let e = shifts(URL, &old).expect_err("part 2 cannot be numbered");
        assert!(e.contains("part 2 of 3"), "{e}");
        assert_eq!(shifts("/staging/a.jsonl", &old), Ok(vec![None, None, None]));
    }
}
