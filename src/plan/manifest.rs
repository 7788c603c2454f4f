//! The manifest: one JSON line per inbound file of a day (vendor, location, size, checksum,
//! format, priority, when it was discovered). `fetch` writes it as it stages a day's files;
//! [`scan`] builds it from a local folder laid out as `inbound/DATE/VENDOR/FILE`.
//!
//! The schema is documented in `docs/manifest.md`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, Format, Priority};

/// One inbound file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRow {
    pub vendor: String,
    /// A local path or a URL. A relative path is read from the planner's working folder, and
    /// from the plan's folder by `process --plan`: write absolute paths to move a plan.
    pub location: String,
    pub bytes: u64,
    pub sha256: String,
    pub format: Format,
    pub priority: Priority,
    /// RFC 3339, UTC.
    pub discovered_at: String,
    /// Where `fetch` found the file (URL without credentials); absent for local scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The source file's modification time when it was fetched (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_modified: Option<String>,
    /// Set when the file changed at the source after it had been staged: the checksum of the
    /// copy this row replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_sha256: Option<String>,
    /// The modification time of the file at `location` when its size and checksum were taken
    /// (RFC 3339 with nanoseconds, UTC). While the file keeps that size and time it has not
    /// been written since, and `process` records `sha256` as its checksum instead of reading
    /// the file a second time only to hash it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// For a CSV or XML file that `fetch` staged at a URL: where some of its records start,
    /// found while the file was on the fetching machine, so that the planner can cut it
    /// without reading it (see `plan::split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuts: Option<StagedCuts>,
}

/// A short checksum of a vendor's input settings as this batchwin reads them, for
/// [`StagedCuts::settings`]. A planner of another version may find it different and plan the
/// file whole: the safe side.
pub fn input_settings(input: &crate::config::InputConfig) -> String {
    let sum = Sha256::digest(format!("{input:?}").as_bytes());
    hex::encode(&sum[..8])
}

/// Where a file staged at a URL may be cut ([`ManifestRow::cuts`]): the start of its first
/// record, then the first record starting at or after each [`StagedCuts::every`] bytes
/// further on, as the engine's framing of the whole file finds them (a CSV record's start
/// depends on every quote before it, an XML record's on the elements around it). A planner
/// cuts the file only at these places.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedCuts {
    /// The staged object's ETag after its upload (none on SFTP): a planner cuts the object
    /// only while it still has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    /// The line the first record starts on (after a header, say).
    pub first_line: u64,
    /// The vendor's input settings the places were found with ([`input_settings`]): a
    /// planner whose settings differ (another quote character, say) does not use them.
    pub settings: String,
    /// Byte offsets of record starts, ascending; the first is the first record's.
    pub starts: Vec<u64>,
    /// Where the last record ends, when bytes follow it to the file's end (XML's closing
    /// tags), which a worker downloads with each part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_end: Option<u64>,
}

/// A file's modification time as a manifest records it (RFC 3339 with nanoseconds, UTC).
pub fn modified_text(m: &std::fs::Metadata) -> Option<String> {
    let t: chrono::DateTime<chrono::Utc> = m.modified().ok()?.into();
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

/// Whether a file (`m`, its metadata now) still has the size and modification time recorded
/// when its checksum was taken.
pub fn unchanged(m: &std::fs::Metadata, bytes: u64, modified: Option<&str>) -> bool {
    m.len() == bytes && modified.is_some() && modified_text(m).as_deref() == modified
}

impl ManifestRow {
    /// What identifies the file across runs: its source, or its location for local scans.
    pub fn key(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.location)
    }
}

/// Keeps the last row of each file (a manifest that `fetch` appended to may hold an earlier
/// row for a file that changed), in the order of first appearance.
pub fn dedupe(rows: Vec<ManifestRow>) -> Vec<ManifestRow> {
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out: Vec<ManifestRow> = Vec::with_capacity(rows.len());
    for r in rows {
        match index.get(r.key()) {
            Some(&i) => out[i] = r,
            None => {
                index.insert(r.key().to_string(), out.len());
                out.push(r);
            }
        }
    }
    out
}

/// Reads a manifest, keeping the last row of each file (see [`dedupe`]); errors name the line.
pub fn read(path: &Path) -> anyhow::Result<Vec<ManifestRow>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read manifest `{}`", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read manifest `{}`", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: ManifestRow = serde_json::from_str(&line).with_context(|| {
            format!(
                "manifest `{}` line {}: not a manifest row",
                path.display(),
                i + 1
            )
        })?;
        rows.push(row);
    }
    Ok(dedupe(rows))
}

/// Writes a manifest atomically (temporary name, then rename).
pub fn write(path: &Path, rows: &[ManifestRow]) -> anyhow::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let f = crate::files::create(&tmp)
            .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        let mut w = std::io::BufWriter::new(f);
        for r in rows {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

/// What a scan found besides the rows.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Files under folders that name no configured vendor.
    pub unknown: Vec<PathBuf>,
}

/// A day's inbound folder as [`list`] finds it: (vendor index, path) of each file of a
/// configured vendor, and the files under folders that name none.
pub type InboundFiles = (Vec<(usize, PathBuf)>, Vec<PathBuf>);

/// Whether the entry `p` of the vendor folder `vdir` is a file to list: a regular file, or with
/// `[transfer] symlinks = "follow-inside"` a symbolic link that resolves to a regular file in
/// `vdir` itself. Any other link is left out with a warning, as `fetch` leaves it: a link that
/// a vendor put in its drop folder must not make batchwin read (and send back, in rejects) a
/// file of the machine's.
fn listed_file(config: &Config, vdir: &Path, p: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return false;
    };
    if meta.is_file() {
        return true;
    }
    if !meta.file_type().is_symlink() {
        return false;
    }
    let why = match config.transfer.symlinks {
        crate::config::Symlinks::Skip => {
            "a symbolic link, not followed ([transfer] symlinks = \"skip\")"
        }
        crate::config::Symlinks::FollowInside => {
            let inside = std::fs::canonicalize(p)
                .ok()
                .zip(std::fs::canonicalize(vdir).ok())
                .filter(|(t, v)| t.parent() == Some(v.as_path()));
            match inside {
                Some((t, _)) if t.is_file() => return true,
                Some(_) => "a symbolic link to something that is not a regular file",
                None => "a symbolic link that does not lead to a file in its vendor's folder",
            }
        }
    };
    tracing::warn!("{}: skipped: {why}", p.display());
    false
}

/// Lists `DIR/VENDOR/FILE` (a day's inbound folder): (vendor index, path) in vendor, then file
/// name order, and the files under folders that name no configured vendor. Hidden files and
/// names ending in `.part` or `.tmp` are still being written and are left out, and so are
/// symbolic links, unless `[transfer] symlinks` follows them ([`listed_file`]).
pub fn list(config: &Config, dir: &Path) -> anyhow::Result<InboundFiles> {
    let mut vendor_dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read inbound folder `{}`", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    vendor_dirs.sort();
    let mut files = Vec::new();
    let mut unknown = Vec::new();
    for vdir in vendor_dirs {
        let name = vdir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut found: Vec<PathBuf> = std::fs::read_dir(&vdir)
            .with_context(|| format!("cannot read `{}`", vdir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| !is_partial(p) && listed_file(config, &vdir, p))
            .collect();
        found.sort();
        match config.vendor(&name) {
            Some((idx, _)) => files.extend(found.into_iter().map(|f| (idx, f))),
            None => unknown.extend(found),
        }
    }
    Ok((files, unknown))
}

/// Builds manifest rows for a day's inbound folder (see [`list`]), reading each file once to
/// checksum it.
pub fn scan(config: &Config, dir: &Path) -> anyhow::Result<(Vec<ManifestRow>, ScanReport)> {
    use rayon::prelude::*;
    let (files, unknown) = list(config, dir)?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let rows = files
        .into_par_iter()
        .map(|(idx, path)| {
            let v = &config.vendors[idx];
            let Checksum {
                bytes,
                sha256,
                modified,
            } = checksum(&path)?;
            let location = std::path::absolute(&path)
                .unwrap_or(path)
                .display()
                .to_string();
            Ok(ManifestRow {
                vendor: v.id.clone(),
                location,
                bytes,
                sha256,
                format: v.input.format,
                priority: v.priority,
                discovered_at: now.clone(),
                source: None,
                source_modified: None,
                replaced_sha256: None,
                modified,
                cuts: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((rows, ScanReport { unknown }))
}

/// Names that are still being written: hidden, `*.part`, `*.tmp`.
pub fn is_partial(p: &Path) -> bool {
    let n = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    n.starts_with('.') || n.ends_with(".part") || n.ends_with(".tmp")
}

/// What reading a local file found.
pub struct Checksum {
    pub bytes: u64,
    pub sha256: String,
    /// Its modification time (see [`modified_text`]), when it had the same size and time
    /// before and after it was read: a file written to meanwhile has none.
    pub modified: Option<String>,
}

/// Size and sha256 of a local file, streamed.
pub fn checksum(path: &Path) -> anyhow::Result<Checksum> {
    let cannot = || format!("cannot read `{}`", path.display());
    let mut f = std::fs::File::open(path).with_context(cannot)?;
    let before = f.metadata().with_context(cannot)?;
    let mut h = Sha256::new();
    let bytes = std::io::copy(&mut f, &mut h).with_context(cannot)?;
    let modified = modified_text(&before).filter(|m| {
        f.metadata()
            .is_ok_and(|after| unchanged(&after, bytes, Some(m)))
    });
    Ok(Checksum {
        bytes,
        sha256: hex::encode(h.finalize()),
        modified,
    })
}

/// sha256 of a file's bytes, for the plan's record of which manifest and config it was made from.
pub fn file_sha256(path: &Path) -> anyhow::Result<String> {
    checksum(path).map(|c| c.sha256)
}
