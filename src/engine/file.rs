//! One file (or one part of a split file): memory-map it (a slice reads a whole input of up
//! to `files::WHOLE_MAX` bytes past the page cache instead, see `files::read_whole`), frame it
//! into chunks at record boundaries, run the pipeline on the chunks in parallel, and write the
//! output and reject files in input order.
//!
//! Memory is bounded by the chunks in flight (at most two windows of `threads * 4` chunks of
//! `chunk_bytes` input each, with their outputs, between being framed and being written), and
//! write buffers of at most 8 MiB for each output and reject file open (see
//! `files::DirectFile`), and a slice's input read whole (at most `files::WHOLE_MAX`), never by
//! a larger file: pages of the mapping that were read can be dropped by the kernel, so a file
//! larger than memory works.
//!
//! Outputs are written under a temporary name in the target folder and renamed into place only
//! when complete, so a reader never sees half a file. A file that fails (its skip limit is
//! exceeded, it cannot be framed, a write fails) leaves no output under the final name; its
//! reject file is still delivered so the operator can see why.
//!
//! A PDF output cannot be written chunk by chunk: its chunks' rows go, in the same order, to a
//! spool file beside the output ([`RowSpool`]), and the document is drawn from it at the end
//! of the file (`codecs::pdf`), once the counts for its title block are known.
//!
//! This module owns no configuration parsing and no ledger: it returns a [`FileOutcome`] that
//! the caller records.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::checksum::Sha256;

use crate::codecs::{BadRecord, Chunk, Decoded, Encoder, count_lf};
use crate::config::{Format, RejectRaw};
use crate::outcome::{FileOutcome, RejectCounts, UnitError};
use crate::pipeline::mask::RawOmitted;
use crate::pipeline::{Problem, recycle};
use crate::plan::Part;
use crate::rejects::RejectLine;
use crate::vendor::{Vendor, expand_name};

use super::{EngineOptions, Ready};

/// The results of one chunk, in the order they must be written.
#[derive(Default)]
struct ChunkOut {
    out: Vec<u8>,
    rejects: Vec<u8>,
    records_in: u64,
    records_out: u64,
    rejected: u64,
    counts: RejectCounts,
}

/// A file being written under a temporary name, hashed as it goes.
struct TempOutput {
    tmp: PathBuf,
    dest: PathBuf,
    /// `None` once closed ([`TempOutput::close`]): then `file` holds every byte.
    writer: Option<crate::files::DirectFile>,
    file: Option<File>,
    hasher: Sha256,
    bytes: u64,
}

impl TempOutput {
    fn create(dest: PathBuf) -> std::io::Result<TempOutput> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        // Written once and not read back here: past the page cache (see `DirectFile`).
        let writer = crate::files::DirectFile::create(&tmp)?;
        crate::cancel::register_temporary(&tmp);
        Ok(TempOutput {
            tmp,
            dest,
            writer: Some(writer),
            file: None,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.write_beside(b, None)
    }

    /// [`write`](Self::write), hashing `b` beside `also`'s bytes into its checksum, when given
    /// (two checksums are taken in about the time of one: see `checksum`). `also` is hashed
    /// even when `b` cannot be written: its bytes are counted as taken.
    fn write_beside(
        &mut self,
        b: &[u8],
        also: Option<(&mut Sha256, &[u8])>,
    ) -> std::io::Result<()> {
        match also {
            Some((sum, bytes)) => Sha256::update_pair(&mut self.hasher, b, sum, bytes),
            None => self.hasher.update(b),
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(std::io::Error::other("written after it was closed"));
        };
        self.bytes += b.len() as u64;
        writer.write_all(b)
    }

    /// Writes the bytes still held: the output is complete on the disk, short of a sync, and
    /// holds no write buffer while its unit waits to be delivered.
    fn close(&mut self) -> std::io::Result<()> {
        if let Some(w) = self.writer.take() {
            self.file = Some(w.finish()?);
        }
        Ok(())
    }

    /// Flushes, syncs and renames into place; returns (path, bytes, sha256). Readers never
    /// see a partial file under the final name, and a commit that fails (a full disk) leaves
    /// no temporary file either.
    fn commit(mut self) -> std::io::Result<(PathBuf, u64, String)> {
        let placed = self
            .close()
            .and_then(|()| {
                self.file
                    .take()
                    .ok_or_else(|| std::io::Error::other("its last bytes could not be written"))
            })
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(&self.tmp, &self.dest));
        if placed.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        crate::cancel::forget_temporary(&self.tmp);
        placed.map(|()| (self.dest, self.bytes, hex::encode(self.hasher.finalize())))
    }

    fn abandon(self) {
        drop((self.writer, self.file));
        let _ = std::fs::remove_file(&self.tmp);
        crate::cancel::forget_temporary(&self.tmp);
    }
}

/// So that a PDF document can be written straight into the output (see [`RowSpool`]).
impl Write for TempOutput {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        TempOutput::write(self, b).map(|()| b.len())
    }
    /// Nothing to do: the bytes held are written when the output is closed.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The rows of a PDF output, in input order, until the document is drawn at the end of the
/// file (see `codecs::pdf`): a scratch file beside the output, so that memory holds the chunks
/// in flight, not the file's records. Removed when dropped.
struct RowSpool {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl RowSpool {
    fn create(dest: &Path) -> std::io::Result<RowSpool> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dest.with_file_name(format!(".{name}.rows-{}", std::process::id()));
        let file = crate::files::create_scratch(&path)?;
        crate::cancel::register_temporary(&path);
        Ok(RowSpool {
            path,
            writer: BufWriter::with_capacity(64 << 10, file),
        })
    }

    /// Draws the table of the rows into `out`.
    fn draw(
        &mut self,
        layout: &crate::codecs::pdf::TableLayout,
        details: &crate::codecs::pdf::TitleLines,
        out: &mut TempOutput,
    ) -> Result<crate::codecs::pdf::TableStats, crate::codecs::pdf::TableError> {
        self.writer.flush()?;
        crate::codecs::pdf::write_table(layout, details, self.writer.get_mut(), out)
    }
}

impl Drop for RowSpool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        crate::cancel::forget_temporary(&self.path);
    }
}

/// An input's checksum taken before (by `fetch`, or the scan that made the manifest), with the
/// size and modification time the file had then.
#[derive(Debug, Clone)]
pub struct KnownInput {
    pub bytes: u64,
    pub modified: String,
    pub sha256: String,
}

/// Hashes the input in order as each chunk's outputs are written (beside them), and releases
/// the pages of the mapping that are done with, so that resident memory stays bounded by the
/// chunks in flight, not the file.
struct InputHasher<'m> {
    sum: InputSum,
    /// Bytes hashed so far (everything before this offset).
    done: usize,
    map: Option<&'m memmap2::Mmap>,
    /// Line feeds in the bytes hashed, when they are counted (see [`FileOutcome::lines`]):
    /// counted in the same pass, as the bytes are read for the checksum anyway.
    lines: Option<u64>,
}

enum InputSum {
    Hashing(Sha256),
    /// The whole file's checksum is known: nothing to hash.
    Known(String),
}

impl InputHasher<'_> {
    /// Hashes `data[self.done..end]`.
    fn advance(&mut self, data: &[u8], end: usize) {
        if let Some((sum, bytes)) = self.next_bytes(data, end) {
            sum.update(bytes);
        }
    }

    /// `data[self.done..end]`, its lines counted, with the checksum the caller hashes it into
    /// (beside an output's bytes: see [`TempOutput::write_beside`]); none when the checksum is
    /// known.
    fn next_bytes<'d>(&mut self, data: &'d [u8], end: usize) -> Option<(&mut Sha256, &'d [u8])> {
        let bytes = data.get(self.done..end).unwrap_or_default();
        if let Some(n) = &mut self.lines {
            *n += count_lf(bytes);
        }
        self.done = self.done.max(end);
        match &mut self.sum {
            InputSum::Hashing(sum) => Some((sum, bytes)),
            InputSum::Known(_) => None,
        }
    }

    /// Tells the kernel the mapping before `end` is no longer needed by this process.
    fn release(&self, end: usize) {
        #[cfg(unix)]
        if let Some(m) = self.map {
            let page = 4096;
            let len = end.min(self.done) / page * page;
            if len > 0 {
                // SAFETY: the mapping is read-only and never written through; dropping its pages
                // only means a later read faults them in again from the file, which is unchanged.
                let _ =
                    unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, len) };
            }
        }
    }

    /// The checksum of the bytes before `end`, and their line feeds when they are counted.
    fn finish(mut self, data: &[u8], end: usize) -> (String, Option<u64>) {
        self.advance(data, end);
        let sum = match self.sum {
            InputSum::Hashing(sum) => hex::encode(sum.finalize()),
            InputSum::Known(sha) => sha,
        };
        (sum, self.lines)
    }
}

/// Processes one input file of `profile` into `out_dir`.
///
/// Never panics on input: every problem with the data becomes a reject or a failed outcome.
/// `Err` is returned only when the input cannot be opened or mapped at all.
///
/// With `part`, only that byte range of the file is processed (a unit of a split file): its
/// records keep their numbers and lines in the whole file, the output header is written only
/// by the first part and the footer only by the last, and the outputs are named
/// `NAME.part-IIIII-of-NNNNN` so that the parts, put together in order, are the whole output.
///
/// The outcome's `input_sha256` is the checksum of the bytes processed, hashed as each chunk's
/// outputs are written, or `known`'s when the whole file still has the size and modification time it had
/// when that was taken (then it has not been written since, and is read only to be processed).
pub fn process_file(
    profile: &Vendor,
    encoder: &dyn Encoder,
    input: &Path,
    out_dir: &Path,
    opts: &EngineOptions,
    part: Option<&Part>,
    known: Option<&KnownInput>,
) -> std::io::Result<FileOutcome> {
    let (mut outcome, pending) =
        process_file_deferred(profile, encoder, input, out_dir, opts, part, known)?;
    pending.deliver(&mut outcome);
    Ok(outcome)
}

/// The smallest chunk a file is cut into to give each thread one (see [`process_file`]).
const MIN_SPLIT_CHUNK: usize = 64 << 10;

/// [`process_file`] up to its outputs' delivery, which is left to [`Pending::deliver`]: what
/// remains (waiting for the run's ledger, syncing the outputs to disk, renaming them into
/// place) is waiting, not work, so a caller can hand it to another thread and start its next
/// unit meanwhile. The outcome is final once `deliver` has completed it.
pub fn process_file_deferred(
    profile: &Vendor,
    encoder: &dyn Encoder,
    input: &Path,
    out_dir: &Path,
    opts: &EngineOptions,
    part: Option<&Part>,
    known: Option<&KnownInput>,
) -> std::io::Result<(FileOutcome, Pending)> {
    let started_at = chrono::Utc::now();
    let file = File::open(input)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let known = known
        .filter(|k| {
            part.is_none() && crate::plan::manifest::unchanged(&meta, k.bytes, Some(&k.modified))
        })
        .map(|k| k.sha256.clone());
    // A slice's whole input, when small enough, is read past the page cache (see
    // `files::read_whole`); other inputs are mapped.
    let whole = match part {
        None if opts.inputs_past_cache && len > 0 && len <= crate::files::WHOLE_MAX => {
            crate::files::read_whole(&file, len)?
        }
        _ => None,
    };
    // SAFETY: the mapping is read-only; batchwin never writes inbound files, and the staging
    // area's contract is that files are complete and unchanging once they are listed.
    let map = if len == 0 || whole.is_some() {
        None
    } else {
        Some(unsafe { memmap2::MmapOptions::new().map(&file)? })
    };
    let data: &[u8] = whole.as_deref().or(map.as_deref()).unwrap_or(&[]);
    #[cfg(unix)]
    if let Some(m) = &map {
        let _ = m.advise(memmap2::Advice::Sequential);
    }

    let input_name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into());
    let named = |pattern: &str| {
        let name = expand_name(pattern, &profile.id, &input_name, &opts.date);
        out_dir.join(match part {
            Some(p) => p.output_name(&name),
            None => name,
        })
    };
    let out_path = named(&profile.output.file_name);
    let reject_path = named(&profile.output.reject_file_name);

    let mut outcome = FileOutcome {
        started_at,
        ended_at: started_at,
        ..FileOutcome::new(&profile.id, input, len, part)
    };

    let range = match part {
        Some(p) if p.start <= p.end && p.end <= len => p.start as usize..p.end as usize,
        Some(p) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "part {}..{} lies outside the file ({len} bytes): the file changed since it was planned",
                    p.start, p.end
                ),
            ));
        }
        None => 0..data.len(),
    };
    outcome.input_bytes = (range.end - range.start) as u64;
    let mut hasher = InputHasher {
        sum: known.map_or_else(|| InputSum::Hashing(Sha256::new()), InputSum::Known),
        done: range.start,
        map: map.as_ref(),
        // A part of a file at a URL counts its lines, the first part's from the file's start,
        // so that `publish` can number the rejects of the parts after it (see `FileOutcome`).
        lines: part
            .filter(|p| p.preamble_bytes.is_some())
            .map(|p| match p.index {
                0 => count_lf(&data[..range.start]),
                _ => 0,
            }),
    };
    let (result, delivery) = run_chunks(
        profile,
        encoder,
        data,
        &input_name,
        &out_path,
        &reject_path,
        opts,
        &mut outcome,
        &mut hasher,
        part,
    );
    (outcome.input_sha256, outcome.lines) = hasher.finish(data, range.end);
    if let Err(e) = result {
        outcome.fail(e);
    }
    outcome.ended_at = chrono::Utc::now();
    Ok((
        outcome,
        Pending {
            delivery,
            ready: opts.ready.clone(),
        },
    ))
}

/// What is left of a processed unit: its outputs, complete under their temporary names, to be
/// put in place (see [`process_file_deferred`]).
#[must_use = "the outputs stay temporary files until they are delivered"]
pub struct Pending {
    delivery: Delivery,
    ready: Ready,
}

/// Which outputs of a unit are delivered.
#[expect(
    clippy::large_enum_variant,
    reason = "one per unit, moved once: its size costs nothing"
)]
enum Delivery {
    /// The unit succeeded: the output and the reject file.
    Both { out: TempOutput, rej: TempOutput },
    /// The input is unusable (over the skip limit, not the configured format): the reject file
    /// says why, so it is kept; the output is gone already.
    RejectsOnly { rej: TempOutput },
    /// Nothing (cancelled, or a write failed): the temporary files are gone already.
    Nothing,
}

impl Pending {
    /// Waits for the run's ledger (see [`Ready`]), then syncs and renames the outputs into
    /// place, completing `outcome`. Outputs that cannot be put in place (a disk that filled
    /// up) are removed and fail the unit; so does a ledger that could not be opened.
    pub fn deliver(self, outcome: &mut FileOutcome) {
        self.put_in_place(outcome);
        outcome.ended_at = chrono::Utc::now();
    }

    fn put_in_place(self, outcome: &mut FileOutcome) {
        if let Err(e) = self.ready.wait() {
            match self.delivery {
                Delivery::Both { out, rej } => {
                    out.abandon();
                    rej.abandon();
                }
                Delivery::RejectsOnly { rej } => rej.abandon(),
                Delivery::Nothing => {}
            }
            return outcome.fail(UnitError::NotDelivered(e));
        }
        match self.delivery {
            Delivery::Both { out, rej } => {
                // A file whose output or reject file cannot be put in place keeps neither, as
                // when a write fails: the reject file goes first, and is taken back when the
                // output then fails.
                let reject_dest = rej.dest.clone();
                let rejects = match rej.commit() {
                    Ok((p, _, _)) => p,
                    Err(e) => {
                        out.abandon();
                        return outcome.fail(write_err(&reject_dest, e));
                    }
                };
                let out_dest = out.dest.clone();
                match out.commit() {
                    Ok((p, bytes, sha)) => {
                        outcome.reject_path = Some(rejects);
                        outcome.output_path = Some(p);
                        outcome.output_bytes = bytes;
                        outcome.output_sha256 = Some(sha);
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&rejects);
                        outcome.fail(write_err(&out_dest, e));
                    }
                }
            }
            Delivery::RejectsOnly { rej } => {
                if let Ok((p, _, _)) = rej.commit() {
                    outcome.reject_path = Some(p);
                }
            }
            Delivery::Nothing => {}
        }
    }
}

/// A write to `what` (an output, a reject file, a spool) that failed.
fn write_err(what: &Path, source: std::io::Error) -> UnitError {
    UnitError::WriteFailed {
        path: what.to_path_buf(),
        source,
    }
}

/// Where a unit's processed chunks go, in order: the output (or the PDF row spool) and the
/// reject file, with the unit's counts.
struct Sink<'a> {
    spool: Option<&'a mut RowSpool>,
    out: &'a mut TempOutput,
    rej: &'a mut TempOutput,
    outcome: &'a mut FileOutcome,
    opts: &'a EngineOptions,
    out_path: &'a Path,
    reject_path: &'a Path,
}

impl Sink<'_> {
    /// Writes `r`, and hashes `input` (the input bytes of `r`'s chunk, into its checksum when
    /// it is taken) beside the output.
    fn write(&mut self, r: ChunkOut, input: Option<(&mut Sha256, &[u8])>) -> Result<(), UnitError> {
        match &mut self.spool {
            None => self.out.write_beside(&r.out, input),
            Some(sp) => {
                if let Some((sum, bytes)) = input {
                    sum.update(bytes);
                }
                sp.writer.write_all(&r.out)
            }
        }
        .map_err(|e| write_err(self.out_path, e))?;
        self.rej
            .write(&r.rejects)
            .map_err(|e| write_err(self.reject_path, e))?;
        self.opts
            .buffers
            .give(r.out, r.rejects, 4 * self.opts.chunk_bytes.max(1 << 16));
        let o = &mut *self.outcome;
        o.records_in += r.records_in;
        o.records_out += r.records_out;
        o.records_rejected += r.rejected;
        for (k, n) in r.counts {
            *o.reject_counts.entry(k).or_default() += n;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn run_chunks(
    profile: &Vendor,
    encoder: &dyn Encoder,
    data: &[u8],
    input_name: &str,
    out_path: &Path,
    reject_path: &Path,
    opts: &EngineOptions,
    outcome: &mut FileOutcome,
    hasher: &mut InputHasher<'_>,
    part: Option<&Part>,
) -> (Result<(), UnitError>, Delivery) {
    let mut decoder = match profile.decoder() {
        Ok(d) => d,
        Err(e) => return (Err(UnitError::Unreadable(e)), Delivery::Nothing),
    };
    let mut out = match TempOutput::create(out_path.to_path_buf()) {
        Ok(o) => o,
        Err(e) => return (Err(write_err(out_path, e)), Delivery::Nothing),
    };
    let mut rej = match TempOutput::create(reject_path.to_path_buf()) {
        Ok(r) => r,
        Err(e) => {
            out.abandon();
            return (Err(write_err(reject_path, e)), Delivery::Nothing);
        }
    };
    // Where the bytes counted in `opts.progress` end: the unit's first byte, then each chunk's
    // end; the rest of the unit (its tail, or all of it when it stopped early) when it ends.
    let (unit_start, unit_end) =
        part.map_or((0, data.len()), |p| (p.start as usize, p.end as usize));
    let mut counted_to = unit_start;
    let pdf = profile.output.format == Format::Pdf;
    let result = (|| -> Result<(), UnitError> {
        if pdf && part.is_some() {
            // The planner keeps such files whole (see `plan::split`).
            return Err(UnitError::Unreadable(format!(
                "{input_name}: a PDF output is one document and cannot be written in parts"
            )));
        }
        let mut spool = if pdf {
            Some(RowSpool::create(out_path).map_err(|e| write_err(out_path, e))?)
        } else {
            None
        };
        let mut pre = decoder
            .preamble(data)
            .map_err(|e| UnitError::Unreadable(format!("{input_name}: {e}")))?;
        let (record_offset, first, last) = match part {
            Some(p) => {
                pre.body_start = p.start as usize;
                pre.body_end = p.end as usize;
                // The line at the part's first byte (which may precede its first record); a
                // part cut without reading what comes before it (`first_line` 0: see
                // `plan::split`) counts its lines from its own start, and `publish` moves its
                // rejects' numbers on by what came before it (see `rejects`).
                pre.body_first_line = if p.first_line == 0 {
                    1
                } else {
                    1 + memchr::memchr_iter(b'\n', &data[..pre.body_start.min(data.len())]).count()
                        as u64
                };
                (
                    p.first_record.saturating_sub(1),
                    p.index == 0,
                    p.index + 1 == p.count,
                )
            }
            None => (0, true, true),
        };
        let decoder = &*decoder;
        if first {
            let mut head = Vec::new();
            encoder.header(&mut head);
            out.write(&head).map_err(|e| write_err(out_path, e))?;
        }

        // A file of less than a chunk a thread is cut so that each of the pool's threads gets
        // a chunk of it (of 64 KiB at least): a small file alone in a run is then not processed
        // by one thread while the other waits. `process --input` of the bench's small file
        // (177 KB) was faster so in 13 of 15 rounds of 100 runs (alternating), by 4.3 ms in
        // the mean of the last 10, a slow hour's; the tenth of a day's CSV and JSON Lines
        // vendors took as long as before, within the noise (5 runs each, alternating).
        let threads = rayon::current_num_threads().max(1);
        let body = pre.body_end.min(data.len()).saturating_sub(pre.body_start);
        let chunk_bytes = opts
            .chunk_bytes
            .min(body.div_ceil(threads).max(MIN_SPLIT_CHUNK));
        let mut frames = decoder.frame(data, &pre, chunk_bytes);
        let mut sink = Sink {
            spool: spool.as_mut(),
            out: &mut out,
            rej: &mut rej,
            outcome: &mut *outcome,
            opts,
            out_path,
            reject_path,
        };
        // The pool's threads process chunks in any order; this thread (a file worker, outside
        // the pool) frames them, and writes each chunk's outputs as soon as it is the next in
        // input order, hashing them beside the chunk's input, with up to two windows of chunks
        // in flight. No chunk waits for a window to end: this thread, which did as much work as
        // each of the pool's two on one large file, waited at each window's end for its slowest
        // chunk (with the outputs written in a thread of their own, the wide CSV took 2.11-2.26 s
        // this way, 2.30-2.37 s a window at a time; see docs/benchmarks.md).
        let in_flight = 2 * opts.window_chunks.max(1);
        let stopped = rayon::in_place_scope(|scope| -> Result<Option<UnitError>, UnitError> {
            let (tx, rx) = std::sync::mpsc::channel();
            // The chunks spawned and not written yet, in input order: where each ends, and its
            // results once they are in. `first` is the sequence number of the front one.
            let mut queue: VecDeque<(usize, Option<std::thread::Result<ChunkOut>>)> =
                VecDeque::new();
            let (mut first, mut framed, mut stop) = (0usize, false, None);
            let mut unreleased = 0;
            loop {
                if opts.cancel.is_cancelled() {
                    return Err(UnitError::Cancelled);
                }
                // The run cannot record this unit (see `Ready`): nothing more to read.
                let reading = !framed && stop.is_none() && !opts.ready.failed();
                while reading && queue.len() < in_flight {
                    let mut chunk = match frames.next() {
                        Some(Ok(c)) => c,
                        Some(Err(e)) => {
                            // The chunks before it are written first: their rejects are kept.
                            stop = Some(UnitError::Unreadable(format!("{input_name}: {e}")));
                            break;
                        }
                        None => {
                            framed = true;
                            break;
                        }
                    };
                    chunk.first_record += record_offset;
                    let seq = first + queue.len();
                    queue.push_back((chunk.bytes.end, None));
                    let tx = tx.clone();
                    scope.spawn(move |_| {
                        // Every job sends once: a panic is carried to this file's thread (which
                        // would otherwise wait for this chunk for ever) and raised there.
                        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            // A unit being cancelled does not wait for its chunks in flight.
                            if opts.cancel.is_cancelled() {
                                return ChunkOut::default();
                            }
                            let (out, rejects) =
                                opts.buffers.take(chunk.bytes.len() + chunk.bytes.len() / 4);
                            let r = ChunkOut {
                                out,
                                rejects,
                                ..ChunkOut::default()
                            };
                            process_chunk(profile, decoder, encoder, data, &chunk, input_name, r)
                        }));
                        let _ = tx.send((seq, done));
                    });
                }
                let Some((end, _)) = queue.front() else {
                    break;
                };
                let end = *end;
                while queue.front().is_some_and(|(_, r)| r.is_none()) {
                    // `tx` lives until the loop ends, and every chunk in the queue sends once.
                    let Ok((seq, done)) = rx.recv() else {
                        unreachable!("the sender is held here")
                    };
                    queue[seq - first].1 = Some(done);
                }
                let Some((_, Some(done))) = queue.pop_front() else {
                    unreachable!("the front chunk's results are in")
                };
                first += 1;
                let r = done.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                opts.progress.add(
                    end.saturating_sub(counted_to) as u64,
                    r.records_in,
                    r.rejected,
                );
                counted_to = counted_to.max(end);
                sink.write(r, hasher.next_bytes(data, end))?;
                unreleased += 1;
                if unreleased >= opts.window_chunks.max(1) {
                    hasher.release(end);
                    unreleased = 0;
                }
            }
            Ok(stop)
        })?;
        if let Some(e) = stopped {
            return Err(e);
        }
        if last {
            let mut tail = Vec::new();
            encoder.footer(&mut tail);
            out.write(&tail).map_err(|e| write_err(out_path, e))?;
        }
        // The skip limit is the whole file's: a part alone is too small a sample to judge,
        // so parts are judged when they are put together (see `publish` and `report`).
        if part.is_none()
            && profile
                .skip_limit
                .exceeded(outcome.records_rejected, outcome.records_in)
        {
            let mut top: Vec<_> = outcome.reject_counts.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1));
            let reasons: Vec<String> = top
                .iter()
                .take(3)
                .map(|((f, r), n)| match f {
                    Some(f) => format!("{f}.{r}: {n}"),
                    None => format!("{r}: {n}"),
                })
                .collect();
            return Err(UnitError::SkipLimit {
                rejected: outcome.records_rejected,
                records: outcome.records_in,
                limit: profile.skip_limit.to_string(),
                reasons: reasons.join(", "),
            });
        }
        if let Some(sp) = &mut spool {
            let details = vec![
                (
                    "Vendor".to_string(),
                    format!("{} ({})", profile.name, profile.id),
                ),
                ("Input file".to_string(), input_name.to_string()),
                ("Business date".to_string(), opts.date.clone()),
                (
                    "Records".to_string(),
                    format!(
                        "{} in, {} out, {} rejected",
                        outcome.records_in, outcome.records_out, outcome.records_rejected
                    ),
                ),
            ];
            use crate::codecs::pdf::TableError;
            let stats =
                sp.draw(&profile.pdf_layout(), &details, &mut out)
                    .map_err(|e| match e {
                        TableError::Io(e) => write_err(out_path, e),
                        e => UnitError::Unreadable(format!("{input_name}: {e}")),
                    })?;
            if stats.replaced > 0 {
                tracing::warn!(
                    vendor = %profile.id,
                    file = %input_name,
                    replaced = stats.replaced,
                    "PDF output: {} characters the font has no glyph for are shown as U+FFFD (a replacement box)",
                    stats.replaced
                );
            }
        }
        Ok(())
    })();
    opts.progress
        .add(unit_end.saturating_sub(counted_to) as u64, 0, 0);
    // The last bytes are written now: a unit waiting to be delivered holds no write buffers.
    let result = result.and_then(|()| {
        out.close().map_err(|e| write_err(out_path, e))?;
        rej.close().map_err(|e| write_err(reject_path, e))
    });
    // A file that fails has no output: one an earlier run made under its name (of an earlier
    // version of the input) goes too. A cancelled unit has not failed: the next run does it.
    if let Err(e) = &result
        && !matches!(e, UnitError::Cancelled)
    {
        remove_earlier_output(&out.dest);
    }
    match result {
        Ok(()) => (Ok(()), Delivery::Both { out, rej }),
        Err(e) if e.leaves_nothing() => {
            // Nothing of a cancelled unit stays behind: the next run does it again. After a
            // failed write (a disk that filled up or went away) what was written is partial.
            out.abandon();
            rej.abandon();
            (Err(e), Delivery::Nothing)
        }
        Err(e) => {
            // Only the reject file is delivered: its last bytes are written now, and the
            // output is gone, so the unit holds no write buffer while it waits. A reject file
            // that cannot be completed is not delivered either.
            out.abandon();
            match rej.close() {
                Ok(()) => (Err(e), Delivery::RejectsOnly { rej }),
                Err(_) => {
                    rej.abandon();
                    (Err(e), Delivery::Nothing)
                }
            }
        }
    }
}

/// Removes `dest`, the output an earlier run made under the name of a file that failed now,
/// saying so; none there is the usual case.
fn remove_earlier_output(dest: &Path) {
    match std::fs::remove_file(dest) {
        Ok(()) => tracing::warn!(
            "removed `{}`, the output an earlier run made of this file: it failed now",
            dest.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            "cannot remove `{}`, the output an earlier run made of this file, which failed \
             now: {e}",
            dest.display()
        ),
    }
}

fn process_chunk(
    profile: &Vendor,
    decoder: &dyn crate::codecs::Decoder,
    encoder: &dyn Encoder,
    data: &[u8],
    chunk: &Chunk,
    input_name: &str,
    // Empty, with the buffers to write into.
    mut r: ChunkOut,
) -> ChunkOut {
    // `values`: the record's values as read, `None` when it could not be read.
    let reject = |r: &mut ChunkOut,
                  number: u64,
                  line: u64,
                  raw: &[u8],
                  values: Option<&[Option<std::borrow::Cow<'_, str>>]>,
                  repeated: bool,
                  mut problems: Vec<Problem>| {
        r.rejected += 1;
        for p in &problems {
            *r.counts
                .entry((p.field.clone(), p.rule.clone()))
                .or_default() += 1;
        }
        // Most records are UTF-8: checked with the vectorized validator, not the standard
        // library's lossy reading (4 % of the samples on a CSV file with half its records
        // rejected, `scripts/bench --rejects`).
        let text = match crate::codecs::utf8(raw) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(raw),
        };
        let pipeline = &profile.pipeline;
        let (raw, raw_omitted) = match profile.output.reject_raw {
            RejectRaw::Clear => (Some(text), None),
            RejectRaw::Masked => {
                pipeline.mask_reasons(values, &mut problems);
                match pipeline.masked_raw(text, values, repeated) {
                    Ok(t) => (Some(t), None),
                    Err(why) => (None, Some(why)),
                }
            }
            RejectRaw::Omit => {
                pipeline.mask_reasons(values, &mut problems);
                (None, Some(RawOmitted::Configured))
            }
        };
        RejectLine {
            file: input_name,
            record: number,
            line,
            errors: &problems,
            raw,
            raw_omitted,
        }
        .write(&mut r.rejects);
    };
    // Per-record working vectors, allocated once per chunk.
    let mut typed_store: Vec<crate::pipeline::validate::Typed<'static>> = Vec::new();
    let mut out_store: Vec<Option<std::borrow::Cow<'static, str>>> = Vec::new();
    let mut refs_store: Vec<Option<&'static str>> = Vec::new();
    let mut ws = profile.pipeline.workspace();
    decoder.decode(data, chunk, &mut |d| {
        r.records_in += 1;
        match d {
            Decoded::Bad(BadRecord {
                number,
                line,
                raw,
                field,
                rule,
                reason,
            }) => {
                reject(
                    &mut r,
                    number,
                    line,
                    raw,
                    None,
                    false,
                    vec![Problem {
                        field,
                        rule: rule.to_string(),
                        reason,
                    }],
                );
            }
            Decoded::Record(rec) => {
                let mut typed = recycle(std::mem::take(&mut typed_store));
                let mut values = recycle(std::mem::take(&mut out_store));
                match profile
                    .pipeline
                    .apply_into(rec.values, &mut ws, &mut typed, &mut values)
                {
                    Ok(()) => {
                        let mut refs = recycle(std::mem::take(&mut refs_store));
                        refs.extend(values.iter().map(|v| v.as_deref()));
                        match encoder.record(&refs, &mut r.out) {
                            Ok(()) => r.records_out += 1,
                            Err(e) => {
                                let p = Problem {
                                    field: Some(e.field.clone()),
                                    rule: "output".into(),
                                    reason: format!("output field `{}`: {}", e.field, e.reason),
                                };
                                reject(
                                    &mut r,
                                    rec.number,
                                    rec.line,
                                    rec.raw,
                                    Some(rec.values),
                                    rec.repeated,
                                    vec![p],
                                );
                            }
                        }
                        refs_store = recycle(refs);
                    }
                    Err(problems) => reject(
                        &mut r,
                        rec.number,
                        rec.line,
                        rec.raw,
                        Some(rec.values),
                        rec.repeated,
                        problems,
                    ),
                }
                typed_store = recycle(typed);
                ws.reclaim(&mut values);
                out_store = recycle(values);
            }
        }
    });
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FileStatus;
    use std::time::{Duration, Instant};

    const CONFIG: &str = r#"
[[vendor]]
id = "C"
[vendor.input]
format = "csv"
[[vendor.fields]]
name = "id"
type = "integer"
[vendor.output]
format = "csv"
"#;

    /// A unit's outputs wait for the run's ledger: nothing is renamed into place before the
    /// signal is given, and nothing at all when it is given as a failure.
    #[test]
    fn outputs_wait_for_the_ready_signal() {
        let cfg = crate::config::Config::parse(Path::new("t.toml"), CONFIG.into()).unwrap();
        let profile = Vendor::build(&cfg, 0, None).unwrap();
        let encoder = profile.encoder().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "id\n1\nx\n2\n").unwrap();
        let delay = Duration::from_millis(200);
        for given in [Ok(()), Err("the ledger is locked".to_string())] {
            let out = dir.path().join(if given.is_ok() { "ok" } else { "failed" });
            std::fs::create_dir(&out).unwrap();
            let opts = EngineOptions {
                ready: Ready::pending(),
                ..EngineOptions::default()
            };
            let started = Instant::now();
            let outcome = std::thread::scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(delay);
                    opts.ready.set(given.clone());
                });
                process_file(&profile, encoder.as_ref(), &input, &out, &opts, None, None).unwrap()
            });
            assert!(started.elapsed() >= delay, "returned before the signal");
            let mut left: Vec<String> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            match given {
                Ok(()) => {
                    assert_eq!(outcome.status, FileStatus::Succeeded);
                    assert_eq!((outcome.records_out, outcome.records_rejected), (2, 1));
                    assert_eq!(left, ["in.out.csv", "in.rejects.jsonl"]);
                }
                Err(e) => {
                    assert_eq!(outcome.status, FileStatus::Failed);
                    assert_eq!(outcome.error, Some(format!("not delivered: {e}")));
                    assert!(left.is_empty(), "{left:?}");
                }
            }
        }
    }

    /// One vendor per reader, every record kept unless it cannot be read or its `id` is not
    /// an integer.
    const READERS: &str = r#"
[[vendor]]
id = "C"
skip_limit = "100%"
[vendor.input]
format = "csv"
header = true
[[vendor.fields]]
name = "id"
type = "integer"
[[vendor.fields]]
name = "name"
[vendor.output]
format = "csv"

[[vendor]]
id = "J"
skip_limit = "100%"
[vendor.input]
format = "jsonl"
[[vendor.fields]]
name = "id"
type = "integer"
[[vendor.fields]]
name = "name"
[vendor.output]
format = "jsonl"

[[vendor]]
id = "X"
skip_limit = "100%"
[vendor.input]
format = "xml"
record = "r"
[[vendor.fields]]
name = "id"
type = "integer"
[[vendor.fields]]
name = "name"
[vendor.output]
format = "xml"

[[vendor]]
id = "F"
skip_limit = "100%"
[vendor.input]
format = "fixed"
[[vendor.fields]]
name = "id"
type = "integer"
start = 0
width = 4
[[vendor.fields]]
name = "name"
start = 4
width = 6
[vendor.output]
format = "fixed"
"#;

    /// XML markup that cannot be skipped, many windows into a file: the unit fails as
    /// unreadable, and its reject file keeps every reject of the records before it, those of
    /// its own window included, in order.
    #[test]
    fn markup_that_stops_a_file_late_keeps_the_rejects_before_it() {
        let cfg = crate::config::Config::parse(Path::new("t.toml"), READERS.into()).unwrap();
        let x = cfg.vendors.iter().position(|v| v.id == "X").unwrap();
        let profile = Vendor::build(&cfg, x, None).unwrap();
        let encoder = profile.encoder().unwrap();
        let mut xml = String::from("<?xml version=\"1.0\"?>\n<rs>\n");
        let mut bad = Vec::new();
        for i in 0..400 {
            let id = if i % 9 == 4 {
                bad.push(i + 3);
                "x".to_string()
            } else {
                i.to_string()
            };
            xml.push_str(&format!("<r><id>{id}</id><name>n{i}</name></r>\n"));
        }
        xml.push_str("<!DOCTYPE x>\n<r><id>y</id><name>after</name></r>\n</rs>\n");
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("x.xml");
        std::fs::write(&input, &xml).unwrap();
        for (chunk_bytes, window_chunks) in [(256, 2), (64, 1), (1 << 20, 8)] {
            let out = dir
                .path()
                .join(format!("out-{chunk_bytes}-{window_chunks}"));
            std::fs::create_dir(&out).unwrap();
            let opts = EngineOptions {
                chunk_bytes,
                window_chunks,
                ..EngineOptions::default()
            };
            let o =
                process_file(&profile, encoder.as_ref(), &input, &out, &opts, None, None).unwrap();
            assert_eq!(o.status, FileStatus::Failed, "{chunk_bytes}");
            let error = o.error.clone().unwrap_or_default();
            assert!(error.contains("markup declaration"), "{error}");
            assert!(o.output_path.is_none());
            let rejects = std::fs::read_to_string(o.reject_path.as_ref().unwrap()).unwrap();
            let lines: Vec<u64> = rejects
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                        .as_u64()
                        .unwrap()
                })
                .collect();
            assert_eq!(
                lines, bad,
                "{chunk_bytes} bytes a chunk, {window_chunks} a window"
            );
            assert_eq!(o.records_rejected, bad.len() as u64);
        }
    }

    /// A file of each format cut into parts that number their rejects from their own start, as
    /// the parts of a file at a URL do: each part's count of records and lines moves the
    /// numbers of the parts after it on to the whole file's, so the parts' reject files, put
    /// together with [`crate::rejects::shifted`], are the whole file's byte for byte. Records
    /// over several lines (a quoted CSV newline, XML elements), blank lines, rejects of the
    /// reader (with the line in their reason) and of the pipeline.
    #[test]
    fn parts_numbered_alone_renumber_to_the_whole_files_rejects() {
        let cfg = crate::config::Config::parse(Path::new("t.toml"), READERS.into()).unwrap();
        let mut csv = String::from("\u{feff}id,name\n");
        let mut jsonl = String::from("\u{feff}");
        let mut xml = String::from("<?xml version=\"1.0\"?>\n<rs>\n");
        let mut fixed = String::new();
        for i in 0..60 {
            let id = if i % 7 == 3 {
                "x".to_string()
            } else {
                i.to_string()
            };
            match i % 5 {
                0 => csv.push_str(&format!("{id},\"two\nlines\"\n")),
                1 => csv.push_str(&format!("{id},a,extra\n")),
                2 => csv.push('\n'),
                _ => csv.push_str(&format!("{id},b\r\n")),
            }
            match i % 5 {
                0 => jsonl.push_str(&format!("{{\"id\":\"{id}\",\"name\":\"n\"}} x\n")),
                1 => jsonl.push_str("   \n"),
                2 => jsonl.push_str(&format!("{{\"id\":{i},\n")),
                _ => jsonl.push_str(&format!("{{\"id\":\"{id}\",\"name\":\"é\"}}\r\n")),
            }
            match i % 5 {
                0 => xml.push_str(&format!("<r>\n  <id>{id}</id>\n  <name>a</b>\n</r>\n")),
                1 => xml.push_str(&format!("  <r><id>{id}</id>\n<name>&bad;</name></r>\n")),
                2 => xml.push_str("\n\n"),
                _ => xml.push_str(&format!("<r><id>{id}</id><name>\né</name></r>\n")),
            }
            match i % 5 {
                0 => fixed.push_str("12\n"),
                1 => fixed.push('\n'),
                _ => fixed.push_str(&format!("{id:>4}abcdef\n")),
            }
        }
        xml.push_str("</rs>\n");
        let dir = tempfile::tempdir().unwrap();
        for (index, (name, data)) in [
            ("c.csv", csv),
            ("j.jsonl", jsonl),
            ("x.xml", xml),
            ("f.txt", fixed),
        ]
        .into_iter()
        .enumerate()
        {
            let profile = Vendor::build(&cfg, index, None).unwrap();
            let encoder = profile.encoder().unwrap();
            let input = dir.path().join(name);
            std::fs::write(&input, &data).unwrap();
            let run = |out: &str, part: Option<&Part>| {
                let out = dir.path().join(out);
                std::fs::create_dir_all(&out).unwrap();
                let opts = EngineOptions::default();
                let o = process_file(&profile, encoder.as_ref(), &input, &out, &opts, part, None)
                    .unwrap();
                assert_eq!(o.status, FileStatus::Succeeded, "{name}: {:?}", o.error);
                let rejects = std::fs::read(o.reject_path.as_ref().unwrap()).unwrap();
                (o, rejects)
            };
            let (_, whole) = run(&format!("{name}-whole"), None);
            let mut decoder = profile.decoder().unwrap();
            let bytes = data.as_bytes();
            let pre = decoder.preamble(bytes).unwrap();
            let chunks: Vec<Chunk> = decoder
                .frame(bytes, &pre, 60)
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(chunks.len() > 4, "{name}: {} parts", chunks.len());
            let count = chunks.len() as u32;
            let (mut joined, mut shift) = (Vec::new(), crate::rejects::Shift::default());
            let mut renumbered = 0;
            for (i, c) in chunks.iter().enumerate() {
                let first = i == 0;
                let part = Part {
                    index: i as u32,
                    count,
                    start: c.bytes.start as u64,
                    end: if i + 1 == chunks.len() {
                        pre.body_end as u64
                    } else {
                        chunks[i + 1].bytes.start as u64
                    },
                    first_record: if first { c.first_record } else { 0 },
                    first_line: if first { c.first_line } else { 0 },
                    preamble_bytes: Some(pre.body_start as u64),
                    epilogue_bytes: None,
                    e_tag: None,
                };
                let (o, rejects) = run(&format!("{name}-parts"), Some(&part));
                assert_eq!(o.first_record, Some(part.first_record));
                if first {
                    joined.extend_from_slice(&rejects);
                } else {
                    for line in rejects.split_inclusive(|&b| b == b'\n') {
                        crate::rejects::shifted(line, shift, &mut joined).unwrap();
                        renumbered += 1;
                    }
                }
                shift.records += o.records_in;
                shift.lines += o.lines.expect("a part of a file at a URL counts its lines");
            }
            assert!(renumbered > 5, "{name}: {renumbered} rejects renumbered");
            assert_eq!(
                String::from_utf8_lossy(&joined),
                String::from_utf8_lossy(&whole),
                "{name}"
            );
        }
    }
}
