//! Cutting a large staged file into parts at record boundaries, with the vendor's own framing
//! (the same chunking the engine uses), so that the parts of one file can run as units of
//! their own on several workers.
//!
//! A file at a URL is cut at the same places as a local copy of it would be, reading only
//! small ranges of it (ranged requests): its first bytes (a byte order mark), and at each cut
//! the lines from the candidate place to the next record. That is possible for the formats
//! whose records are lines (JSON Lines, fixed-width: [`Decoder::line_records`]). In a CSV or
//! XML file where a record starts depends on every byte before it (a quoted field may hold
//! newlines, elements nest), which only reading the whole file tells: `fetch` finds such
//! places while it holds the file it stages at a URL ([`staged_cuts`], the manifest's `cuts`),
//! and the planner cuts there ([`split_staged`]). A worker downloads an XML part with the
//! file's closing tags after it (`epilogue_bytes`), so that its reader finds the document
//! closed. The planner does not count the records and lines before a cut either (that too is
//! the whole file): a part of a file at a URL other than the first
//! numbers its records and lines from its own start (`first_record` and `first_line` are 0 in
//! the plan), and counts its lines for its ledger, so that `publish` can give its rejects the
//! whole file's numbers (see `rejects`).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use crate::codecs::Decoder;
use crate::config::Config;
use crate::storage::{RangeRead, Store, StoreOptions};
use crate::vendor::Vendor;

use super::Part;
use super::manifest::{ManifestRow, StagedCuts};

/// Bytes read at a time around a cut: many lines of any usual format, in one request.
const WINDOW: u64 = 16 * 1024;

/// What the splitter needs to read files at URLs: the transfer runtime and the stores'
/// options (credentials, endpoints), and the cuts made so far.
pub struct RangeReads<'a> {
    rt: &'a tokio::runtime::Runtime,
    opts: &'a StoreOptions,
    /// Parts of each file (URL, split size) already cut: the planner may plan the day more
    /// than once (to find what fits the window), and a file is read for its cuts once.
    cut: Mutex<HashMap<(String, u64), Vec<Part>>>,
}

impl<'a> RangeReads<'a> {
    pub fn new(rt: &'a tokio::runtime::Runtime, opts: &'a StoreOptions) -> RangeReads<'a> {
        RangeReads {
            rt,
            opts,
            cut: Mutex::default(),
        }
    }
}

/// Whether a file of this row's vendor may be cut into parts at all. A PDF is one document
/// (its page count is on every page): its pages cannot be put together from parts, so a file
/// with PDF output is planned whole.
pub fn may_cut(config: &Config, row: &ManifestRow) -> bool {
    config
        .vendor(&row.vendor)
        .is_some_and(|(_, v)| v.output.format != crate::config::Format::Pdf)
}

/// Cuts a file into parts of about `limit` bytes at record boundaries: a local file with the
/// vendor's framing over all of it, a file at a URL by ranged reads around the cuts (with
/// `reads`; without, or for a format where that cannot be done, it is planned whole).
pub fn split_file(
    config: &Config,
    row: &ManifestRow,
    limit: u64,
    reads: Option<&RangeReads<'_>>,
) -> Result<Vec<Part>, String> {
    let (idx, _) = config
        .vendor(&row.vendor)
        .ok_or_else(|| format!("unknown vendor `{}`", row.vendor))?;
    if !may_cut(config, row) {
        return Ok(Vec::new());
    }
    let mut decoder = Vendor::input_decoder(config, idx).map_err(|e| e.to_string())?;
    if row.location.contains("://") {
        return match (reads, decoder.line_records(), &row.cuts) {
            (Some(r), Some(blank), _) => split_remote(r, row, limit, &mut *decoder, blank),
            (Some(r), None, Some(cuts)) => split_staged(config, r, row, limit, cuts),
            _ => Ok(Vec::new()),
        };
    }
    let map = map_file(Path::new(&row.location))?;
    match local_parts(&map, &mut *decoder, |body| target_bytes(body, limit)) {
        Ok(parts) => Ok(counted(parts)),
        // A file its vendor's framing cannot read through is planned whole: its slice then
        // fails it alone, with the reason, instead of the plan failing the whole day.
        Err(reason) => {
            tracing::warn!("`{}` is planned whole: {reason}", row.location);
            Ok(Vec::new())
        }
    }
}

/// Spacing of the places [`staged_cuts`] keeps: at least this many bytes apart...
const STAGED_CUT_EVERY: u64 = 64 * 1024;
/// ...and about this many places in a file at most (about every 8 MB of a 2 GB file).
const STAGED_CUTS_MAX: u64 = 256;

/// Where a CSV or XML file that `fetch` stages at a URL may be cut, found from its local copy
/// at `path` before it is uploaded ([`StagedCuts`], the manifest row's `cuts`): the framing of
/// the whole file, cut about every [`STAGED_CUT_EVERY`] bytes, or a 256th of the file when
/// that is more, and where its last record ends when bytes follow it (XML's closing tags).
/// `None` for the formats whose records are lines (the planner cuts those by ranged reads), a
/// file whose output is a PDF, and one under two such spacings.
pub fn staged_cuts(
    config: &Config,
    vendor: &str,
    path: &Path,
    bytes: u64,
) -> Result<Option<StagedCuts>, String> {
    match StagedCutter::new(config, vendor, bytes)? {
        Some(cutter) => cutter.find(path),
        None => Ok(None),
    }
}

/// What [`staged_cuts`] needs of the config, taken out of it, so that the framing (about a
/// second per GB) can run on a blocking thread while `fetch` uploads the file.
pub struct StagedCutter {
    decoder: Box<dyn crate::codecs::Decoder>,
    xml: bool,
    settings: String,
    bytes: u64,
}

impl StagedCutter {
    /// `None` when a file of `bytes` bytes of `vendor` is not cut by its staged places.
    pub fn new(config: &Config, vendor: &str, bytes: u64) -> Result<Option<Self>, String> {
        let (idx, v) = config
            .vendor(vendor)
            .ok_or_else(|| format!("unknown vendor `{vendor}`"))?;
        let decoder = Vendor::input_decoder(config, idx).map_err(|e| e.to_string())?;
        if v.output.format == crate::config::Format::Pdf
            || decoder.line_records().is_some()
            || bytes < 2 * STAGED_CUT_EVERY
        {
            return Ok(None);
        }
        Ok(Some(Self {
            decoder,
            xml: v.input.format == crate::config::Format::Xml,
            settings: super::manifest::input_settings(&v.input),
            bytes,
        }))
    }

    /// The places of the file at `path`, which has the `bytes` this cutter was made for.
    pub fn find(mut self, path: &Path) -> Result<Option<StagedCuts>, String> {
        let bytes = self.bytes;
        let every = (bytes / STAGED_CUTS_MAX).max(STAGED_CUT_EVERY);
        let map = map_file(path)?;
        let parts = local_parts(&map, &mut *self.decoder, |_| every)?;
        let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
            return Ok(None);
        };
        let mut starts: Vec<u64> = parts.iter().map(|p| p.start).collect();
        if self.xml {
            // A part after the first is read right after the file's preamble, and the XML
            // reader places a reject in its line by the text from the line's start to the
            // record. That text is the whole file's only where the part holds the line break
            // before its first record: each place moves back over the blanks before its
            // record to that break, and a record whose line does not begin with blanks
            // (records on one line) is no place.
            let first_start = first.start;
            let mut kept = vec![first_start];
            for &s in &starts[1..] {
                let mut at = s as usize;
                while at > first_start as usize && matches!(map[at - 1], b' ' | b'\t' | b'\r') {
                    at -= 1;
                }
                if at > first_start as usize
                    && map[at - 1] == b'\n'
                    && (at - 1) as u64 > kept[kept.len() - 1]
                {
                    kept.push((at - 1) as u64);
                }
            }
            starts = kept;
            if starts.len() < 2 {
                return Ok(None);
            }
        }
        Ok(Some(StagedCuts {
            e_tag: None,
            settings: self.settings,
            first_line: first.first_line,
            starts,
            body_end: (last.end < bytes).then_some(last.end),
        }))
    }
}

/// The local file `path`, mapped read-only.
fn map_file(path: &Path) -> Result<memmap2::Mmap, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // SAFETY: read-only mapping of a staged file, which is not modified while it is planned
    // (or, for `fetch`, while the copy it just wrote is cut).
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())
}

/// The parts the vendor's framing cuts the file `map` into, each about `target(body)` bytes
/// of a body of `body` bytes (not yet counted: see [`counted`]).
fn local_parts(
    map: &[u8],
    decoder: &mut dyn Decoder,
    target: impl Fn(u64) -> u64,
) -> Result<Vec<Part>, String> {
    let pre = decoder.preamble(map).map_err(|e| e.to_string())?;
    let body = (pre.body_end - pre.body_start) as u64;
    let target = target(body).max(1);
    let mut parts = Vec::new();
    for c in decoder.frame(map, &pre, target as usize) {
        let c = c.map_err(|e| e.to_string())?;
        parts.push(Part {
            index: parts.len() as u32,
            count: 0,
            start: c.bytes.start as u64,
            end: c.bytes.end as u64,
            first_record: c.first_record,
            first_line: c.first_line,
            preamble_bytes: None,
            epilogue_bytes: None,
            e_tag: None,
        });
    }
    Ok(parts)
}

/// The framing's chunk size that cuts a body of `body` bytes into parts of at most about
/// `limit` bytes, as even as the records allow.
fn target_bytes(body: u64, limit: u64) -> u64 {
    let count = body.div_ceil(limit.max(1)).max(1);
    (body / count).max(1)
}

fn counted(mut parts: Vec<Part>) -> Vec<Part> {
    let n = parts.len() as u32;
    for p in &mut parts {
        p.count = n;
    }
    parts
}

/// Cuts a file at a URL by ranged reads, and says in the log how little of it was read.
fn split_remote(
    reads: &RangeReads<'_>,
    row: &ManifestRow,
    limit: u64,
    decoder: &mut dyn Decoder,
    blank: fn(&[u8]) -> bool,
) -> Result<Vec<Part>, String> {
    let key = (row.location.clone(), limit);
    let cut = || reads.cut.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(parts) = cut().get(&key) {
        return Ok(parts.clone());
    }
    let (store, name) = open_store_of(reads, &row.location)?;
    let mut read = |at: u64, len: u64| -> Result<RangeRead, String> {
        reads
            .rt
            .block_on(store.read_range(name, at..at + len))
            .map_err(|e| e.to_string())
    };
    let mut file = RangedFile::new(&mut read, row.bytes);
    let parts = line_cuts(&mut file, decoder, blank, limit)?;
    tracing::debug!(
        "cut `{}` ({} bytes) into {} parts, reading {} bytes of it in {} ranged requests",
        row.location,
        row.bytes,
        parts.len(),
        file.read_bytes,
        file.requests
    );
    cut().insert(key, parts.clone());
    Ok(parts)
}

/// The store holding the file at `location` (a URL), and the file's name in it.
fn open_store_of<'l>(
    reads: &RangeReads<'_>,
    location: &'l str,
) -> Result<(Store, &'l str), String> {
    let (dir, name) = location
        .trim_end_matches('/')
        .rsplit_once('/')
        .filter(|(d, n)| !n.is_empty() && !d.ends_with('/') && !d.ends_with(':'))
        .ok_or_else(|| "it names no file in a bucket or folder".to_string())?;
    let store = reads
        .rt
        .block_on(Store::open(dir, reads.opts))
        .map_err(|e| e.to_string())?;
    Ok((store, name))
}

/// Cuts a file staged at a URL at the places `fetch` found ([`StagedCuts`]), reading one byte
/// of it to check that it is still the object `fetch` staged (its size and ETag), with the
/// vendor's input settings `fetch` recorded: each cut the first of those places `target`
/// bytes or more after the one before, so the parts are about as even as the local
/// framing's, within the places' spacing. A part other than the first numbers its records and
/// lines from its own start, as a part cut by ranged reads does (see the module's header). A
/// file changed since it was staged, or whose vendor's input settings changed, is planned
/// whole.
fn split_staged(
    config: &Config,
    reads: &RangeReads<'_>,
    row: &ManifestRow,
    limit: u64,
    cuts: &StagedCuts,
) -> Result<Vec<Part>, String> {
    let key = (row.location.clone(), limit);
    let cut = || reads.cut.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(parts) = cut().get(&key) {
        return Ok(parts.clone());
    }
    let (Some(&body_start), Some((_, v))) = (cuts.starts.first(), config.vendor(&row.vendor))
    else {
        return Ok(Vec::new());
    };
    if body_start >= row.bytes {
        return Ok(Vec::new());
    }
    if cuts.settings != super::manifest::input_settings(&v.input) {
        tracing::warn!(
            "`{}`: the places fetch found to cut it were found with other input settings of \
             vendor {}: planned whole",
            row.location,
            row.vendor
        );
        return Ok(Vec::new());
    }
    let (store, name) = open_store_of(reads, &row.location)?;
    let now = reads
        .rt
        .block_on(store.read_range(name, 0..1))
        .map_err(|e| e.to_string())?;
    if now.size != row.bytes || cuts.e_tag.is_none() || now.e_tag != cuts.e_tag {
        tracing::warn!(
            "`{}` is not the file fetch staged ({} bytes, ETag {:?}; staged {} bytes, ETag \
             {:?}): planned whole",
            row.location,
            now.size,
            now.e_tag,
            row.bytes,
            cuts.e_tag
        );
        return Ok(Vec::new());
    }
    // Where the last record ends: the file's end, or (XML) where its closing tags start.
    let body_end = cuts.body_end.unwrap_or(row.bytes).min(row.bytes);
    let target = target_bytes(body_end.saturating_sub(body_start), limit);
    let mut chosen = vec![body_start];
    for &s in &cuts.starts[1..] {
        if s < body_end && s >= chosen[chosen.len() - 1] + target {
            chosen.push(s);
        }
    }
    chosen.push(body_end);
    let mut parts = url_parts(&chosen, body_start, cuts.first_line, now.e_tag);
    let epilogue = row.bytes - body_end;
    for p in &mut parts {
        p.epilogue_bytes = (epilogue > 0).then_some(epilogue);
    }
    tracing::debug!(
        "cut `{}` ({} bytes) into {} parts at the places fetch found",
        row.location,
        row.bytes,
        parts.len()
    );
    cut().insert(key, parts.clone());
    Ok(parts)
}

/// A file read on demand by ranges: the bytes read last, and what reading cost.
struct RangedFile<'r> {
    read: &'r mut dyn FnMut(u64, u64) -> Result<RangeRead, String>,
    size: u64,
    /// The object's ETag at the first read (every read must find the same).
    e_tag: Option<String>,
    /// `buf` holds bytes `at .. at + buf.len()` of the file.
    at: u64,
    buf: Vec<u8>,
    requests: u64,
    read_bytes: u64,
}

impl<'r> RangedFile<'r> {
    fn new(
        read: &'r mut dyn FnMut(u64, u64) -> Result<RangeRead, String>,
        size: u64,
    ) -> RangedFile<'r> {
        RangedFile {
            read,
            size,
            e_tag: None,
            at: 0,
            buf: Vec::new(),
            requests: 0,
            read_bytes: 0,
        }
    }

    /// Reads the window after what `buf` holds (when `pos` is there) or at `pos`; false at
    /// the end of the file.
    fn fetch(&mut self, pos: u64) -> Result<bool, String> {
        if pos >= self.size {
            return Ok(false);
        }
        let end = self.at + self.buf.len() as u64;
        let from = if pos >= self.at && pos <= end {
            end
        } else {
            self.buf.clear();
            self.at = pos;
            pos
        };
        if from >= self.size {
            return Ok(false);
        }
        let len = WINDOW.min(self.size - from);
        let got = (self.read)(from, len)?;
        self.requests += 1;
        self.read_bytes += got.bytes.len() as u64;
        if got.size != self.size || got.bytes.len() as u64 != len {
            return Err(format!(
                "it has {} bytes, the manifest says {}: it changed since it was staged; fetch it again",
                got.size, self.size
            ));
        }
        if self.requests == 1 {
            self.e_tag = got.e_tag;
        } else if got.e_tag != self.e_tag {
            return Err("it changed while it was being cut; plan again".into());
        }
        self.buf.extend_from_slice(&got.bytes);
        Ok(true)
    }

    /// The byte at `pos`.
    fn byte(&mut self, pos: u64) -> Result<Option<u8>, String> {
        while !(pos >= self.at && pos < self.at + self.buf.len() as u64) {
            if !self.fetch(pos)? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[(pos - self.at) as usize]))
    }

    /// The end of the line that `pos` is in (just after its newline, or the file's end), and
    /// its text without the LF or CR LF.
    fn line(&mut self, pos: u64) -> Result<(u64, Vec<u8>), String> {
        self.byte(pos)?;
        loop {
            let off = (pos - self.at) as usize;
            if let Some(i) = memchr::memchr(b'\n', &self.buf[off..]) {
                let mut text = self.buf[off..off + i].to_vec();
                if text.last() == Some(&b'\r') {
                    text.pop();
                }
                return Ok((pos + i as u64 + 1, text));
            }
            let end = self.at + self.buf.len() as u64;
            if !self.fetch(end)? {
                let mut text = self.buf[off..].to_vec();
                if text.last() == Some(&b'\r') {
                    text.pop();
                }
                return Ok((self.size, text));
            }
        }
    }

    /// The first record start at or after `pos` (`body_start` begins a line), and the number of
    /// newlines passed from `pos` to it.
    fn next_record(
        &mut self,
        pos: u64,
        body_start: u64,
        blank: fn(&[u8]) -> bool,
    ) -> Result<Option<(u64, u64)>, String> {
        let mut p = pos;
        let mut newlines = 0;
        if p > body_start && self.byte(p - 1)? != Some(b'\n') {
            if p >= self.size {
                return Ok(None);
            }
            p = self.line(p)?.0;
            newlines += 1;
        }
        while p < self.size {
            let (next, text) = self.line(p)?;
            if !blank(&text) {
                return Ok(Some((p, newlines)));
            }
            p = next;
            newlines += 1;
        }
        Ok(None)
    }
}

/// The parts of a file whose records are lines, cut where the engine's chunker would cut the
/// whole file (see `codecs::framing::chunks`): each cut is the first record that starts
/// `target` bytes or more after the one before, with at least one record before it.
fn line_cuts(
    file: &mut RangedFile<'_>,
    decoder: &mut dyn Decoder,
    blank: fn(&[u8]) -> bool,
    limit: u64,
) -> Result<Vec<Part>, String> {
    // The preamble of a line format is its byte order mark: the first bytes tell it.
    let head_len = file.size.min(16);
    let mut head = Vec::with_capacity(head_len as usize);
    for i in 0..head_len {
        head.extend(file.byte(i)?);
    }
    let pre = decoder.preamble(&head).map_err(|e| e.to_string())?;
    let body_start = pre.body_start as u64;
    let target = target_bytes(file.size.saturating_sub(body_start), limit);
    let mut cuts = vec![body_start];
    let first = file.next_record(body_start, body_start, blank)?;
    // A part holds at least one record: the first cut comes after the first record's start.
    let mut from = first.map(|(f, _)| f + 1);
    while let Some(f) = from {
        let start = cuts[cuts.len() - 1];
        match file.next_record((start + target).max(f), body_start, blank)? {
            Some((cut, _)) => {
                cuts.push(cut);
                from = Some(cut + 1);
            }
            None => from = None,
        }
    }
    cuts.push(file.size);
    let first_line = 1 + first.map_or(0, |(_, n)| n);
    Ok(url_parts(&cuts, body_start, first_line, file.e_tag.clone()))
}

/// The parts of a file at a URL between the byte offsets `cuts` (ascending: the first
/// record's start, the cuts, the file's end), each downloaded with the file's first
/// `body_start` bytes, while the object has the ETag `e_tag`. The first part starts with
/// record 1 on line `first_line`; the others number their records and lines from their own
/// start, as counting those before a cut would read the whole file (see the module's header).
fn url_parts(cuts: &[u64], body_start: u64, first_line: u64, e_tag: Option<String>) -> Vec<Part> {
    let mut parts: Vec<Part> = cuts
        .windows(2)
        .filter(|w| w[0] < w[1])
        .enumerate()
        .map(|(i, w)| Part {
            index: i as u32,
            count: 0,
            start: w[0],
            end: w[1],
            first_record: 0,
            first_line: 0,
            preamble_bytes: Some(body_start),
            epilogue_bytes: None,
            e_tag: e_tag.clone(),
        })
        .collect();
    if let Some(p) = parts.first_mut() {
        p.first_record = 1;
        p.first_line = first_line;
    }
    counted(parts)
}

/// The byte ranges a worker downloads for a part of a file of `file_bytes` bytes at a URL:
/// the file's preamble, the part's own bytes and the file's epilogue (XML's closing tags),
/// in that order, as one local file.
pub fn part_ranges(p: &Part, file_bytes: u64) -> Vec<Range<u64>> {
    let pre = p.preamble_bytes.unwrap_or(0).min(p.start);
    let mut ranges = vec![0..pre, p.start..p.end];
    if let Some(e) = p.epilogue_bytes.filter(|&e| e > 0) {
        ranges.push(file_bytes.saturating_sub(e).max(p.end)..file_bytes);
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    const VENDOR: &str = "[[vendor]]\nid = 'A'\n[vendor.input]\nformat = 'jsonl'\n[[vendor.fields]]\nname = 'a'\n[vendor.output]\nformat = 'jsonl'\n";

    fn row(location: &str, bytes: u64) -> ManifestRow {
        ManifestRow {
            vendor: "A".into(),
            location: location.into(),
            bytes,
            sha256: String::new(),
            format: crate::config::Format::Jsonl,
            priority: crate::config::Priority::Medium,
            discovered_at: String::new(),
            source: None,
            source_modified: None,
            replaced_sha256: None,
            modified: None,
            cuts: None,
        }
    }

    /// The places `fetch` finds in a CSV file (a header, quoted fields holding newlines) are
    /// record starts of the whole file's framing, the first on line 2, about every 64 KiB; a
    /// planner uses them only for the object `fetch` staged, with the same input settings: a
    /// file without an ETag (a folder, as SFTP) or found with other settings is planned whole.
    #[test]
    fn staged_cuts_are_record_starts_used_only_for_the_file_and_settings_they_were_found_for() {
        let csv = "[[vendor]]\nid = 'A'\n[vendor.input]\nformat = 'csv'\n[[vendor.fields]]\nname = 'a'\n[[vendor.fields]]\nname = 'b'\n[vendor.output]\nformat = 'csv'\n";
        let config = Config::parse(Path::new("batchwin.toml"), csv.to_string()).expect("config");
        let dir = tempfile::tempdir().unwrap();
        let mut data = b"a,b\n".to_vec();
        for i in 0..20_000 {
            match i % 3 {
                0 => data.extend_from_slice(format!("{i},\"two\nlines, {i}\"\n").as_bytes()),
                _ => data.extend_from_slice(format!("{i},plain\n").as_bytes()),
            }
        }
        let path = dir.path().join("f.csv");
        std::fs::write(&path, &data).unwrap();
        let size = data.len() as u64;
        let cuts = staged_cuts(&config, "A", &path, size)
            .expect("framed")
            .expect("cut");
        assert_eq!((cuts.starts[0], cuts.first_line), (4, 2));
        assert!(cuts.starts.windows(2).all(|w| w[0] < w[1] && w[1] < size));
        assert!(cuts.starts.len() as u64 >= size / STAGED_CUT_EVERY);
        // Every place is where a record of the whole file's framing starts.
        let mut decoder = Vendor::input_decoder(&config, 0).unwrap();
        let pre = decoder.preamble(&data).unwrap();
        let starts: std::collections::HashSet<u64> = decoder
            .frame(&data, &pre, 1)
            .map(|c| c.unwrap().bytes.start as u64)
            .collect();
        assert!(cuts.starts.iter().all(|s| starts.contains(s)));
        // Not for JSON Lines (cut by ranged reads), nor a small file.
        let lines = Config::parse(Path::new("batchwin.toml"), VENDOR.to_string()).unwrap();
        assert_eq!(staged_cuts(&lines, "A", &path, size), Ok(None));
        assert_eq!(staged_cuts(&config, "A", &path, 1000), Ok(None));

        let rt = crate::transfer::runtime().unwrap();
        let opts = StoreOptions::default();
        let reads = RangeReads::new(&rt, &opts);
        let mut r = row(&format!("file://{}", path.display()), size);
        r.vendor = "A".into();
        let with = |e_tag: Option<&str>, settings: &str| StagedCuts {
            e_tag: e_tag.map(str::to_string),
            settings: settings.to_string(),
            ..cuts.clone()
        };
        // A folder has no ETag: whole, whatever the row says.
        for c in [
            with(None, &cuts.settings),
            with(Some("\"e\""), &cuts.settings),
        ] {
            r.cuts = Some(c);
            assert_eq!(
                split_file(&config, &r, 100_000, Some(&reads)),
                Ok(Vec::new())
            );
        }
        r.cuts = Some(with(None, "0000000000000000"));
        assert_eq!(
            split_file(&config, &r, 100_000, Some(&reads)),
            Ok(Vec::new())
        );
    }

    /// In an XML file each place is the line break before a record (indented or not), so that
    /// a part read after the file's preamble holds the start of its first record's line; with
    /// every record on one line there is no such place (planned whole at a URL). Where the
    /// last record ends is kept too.
    #[test]
    fn staged_xml_places_are_the_line_breaks_before_records() {
        let xml = "[[vendor]]\nid = 'A'\n[vendor.input]\nformat = 'xml'\nrecord = 'r'\n[[vendor.fields]]\nname = 'a'\n[vendor.output]\nformat = 'csv'\n";
        let config = Config::parse(Path::new("batchwin.toml"), xml.to_string()).expect("config");
        let dir = tempfile::tempdir().unwrap();
        for (indent, line_end) in [("", "\n"), ("  ", "\n"), ("", "")] {
            let mut data = b"<?xml version=\"1.0\"?>\n<rs>".to_vec();
            for i in 0..20_000 {
                data.extend_from_slice(format!("{line_end}{indent}<r><a>{i}</a></r>").as_bytes());
            }
            data.extend_from_slice(b"\n</rs>\n");
            let path = dir.path().join("f.xml");
            std::fs::write(&path, &data).unwrap();
            let size = data.len() as u64;
            let cuts = staged_cuts(&config, "A", &path, size).expect("framed");
            if line_end.is_empty() {
                // Every record on one line: no place where a part begins a line of its own.
                assert_eq!(cuts, None);
                continue;
            }
            let cuts = cuts.expect("cut");
            assert!(cuts.starts.len() > 2, "{}", cuts.starts.len());
            for &s in &cuts.starts[1..] {
                let blank: Vec<u8> = data[s as usize..]
                    .iter()
                    .copied()
                    .take_while(u8::is_ascii_whitespace)
                    .collect();
                assert!(blank.contains(&b'\n'), "{s}: {blank:?}");
            }
            assert_eq!(cuts.body_end, Some(size - b"</rs>\n".len() as u64));
        }
    }

    /// A worker downloads a part of a file at a URL after the file's preamble, and for XML
    /// with the file's closing tags after it.
    #[test]
    fn a_part_is_downloaded_with_the_files_preamble_and_closing_bytes() {
        let mut p = url_parts(&[40, 500, 900], 40, 2, None).remove(1);
        assert_eq!(part_ranges(&p, 1000), [0..40, 500..900]);
        p.epilogue_bytes = Some(100);
        assert_eq!(part_ranges(&p, 1000), [0..40, 500..900, 900..1000]);
    }

    /// Ranged reads cut a file where the framing of the whole file cuts it, reading a small
    /// part of it: with a byte order mark, blank lines (also where a cut falls), CR LF, lines
    /// longer than the window and a last line without its newline.
    #[test]
    fn ranged_cuts_are_the_whole_files_cuts() {
        let config = Config::parse(Path::new("batchwin.toml"), VENDOR.to_string()).expect("config");
        let dir = std::env::temp_dir().join(format!("batchwin-split-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut seed = 7u64;
        for case in 0..12 {
            let mut data = Vec::new();
            if case % 2 == 1 {
                data.extend_from_slice(b"\xEF\xBB\xBF");
            }
            for i in 0..3000 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = seed >> 33;
                match r % 13 {
                    0 => data.extend_from_slice(b"\n"),
                    1 => data.extend_from_slice(b"  \r\n"),
                    2 if case == 4 => data.extend_from_slice(
                        format!("{{\"a\":\"{}\"}}\n", "x".repeat(70_000)).as_bytes(),
                    ),
                    3 => data.extend_from_slice(format!("{{\"a\":{i}}}\r\n").as_bytes()),
                    _ => data.extend_from_slice(
                        format!("{{\"a\":\"{}\"}}\n", "v".repeat((r % 200) as usize)).as_bytes(),
                    ),
                }
            }
            if case == 6 {
                data.extend_from_slice(b"{\"a\":1}");
            }
            let path = dir.join(format!("{case}.jsonl"));
            std::fs::write(&path, &data).unwrap();
            let limit = [20_000, 50_000, 100_000, 1_000_000][case % 4];
            let local = split_file(
                &config,
                &row(&path.display().to_string(), data.len() as u64),
                limit,
                None,
            )
            .expect("local split");
            let mut read = |at: u64, len: u64| -> Result<RangeRead, String> {
                let end = (at + len).min(data.len() as u64);
                Ok(RangeRead {
                    bytes: data[at as usize..end as usize].to_vec(),
                    size: data.len() as u64,
                    e_tag: Some("e".into()),
                })
            };
            let mut file = RangedFile::new(&mut read, data.len() as u64);
            let mut decoder = Vendor::input_decoder(&config, 0).unwrap();
            let blank = decoder
                .line_records()
                .expect("JSON Lines records are lines");
            let remote = line_cuts(&mut file, &mut *decoder, blank, limit).expect("ranged split");
            let ranges = |ps: &[Part]| -> Vec<(u32, u32, u64, u64)> {
                ps.iter()
                    .map(|p| (p.index, p.count, p.start, p.end))
                    .collect()
            };
            assert_eq!(ranges(&remote), ranges(&local), "case {case}");
            assert!(
                local.len() > 1 || limit == 1_000_000,
                "case {case}: {}",
                local.len()
            );
            assert_eq!(
                (remote[0].first_record, remote[0].first_line),
                (local[0].first_record, local[0].first_line),
                "case {case}"
            );
            // A window or two at each cut, never the whole file when the cuts are few.
            if case != 4 {
                assert!(
                    file.read_bytes <= (local.len() as u64 + 1) * 2 * WINDOW,
                    "case {case}: read {} of {} bytes",
                    file.read_bytes,
                    data.len()
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
