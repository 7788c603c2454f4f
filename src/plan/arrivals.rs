//! Files arriving while they are planned and processed: `fetch --listing` writes the rows it
//! is about to stage (checksums empty) before it copies a byte, and appends each file's row to
//! the manifest as its copy is verified. A plan made from the listing runs while the fetch
//! goes on; each unit waits here for its file's row, and takes its checksum and time from it.
//!
//! When the fetch has ended, the marker `MANIFEST.ended` exists ([`ended_marker`]: written by
//! `fetch --listing` as it ends, unless a signal ends it, and by `run` when the fetch it
//! started ended whatever way).
//! A file that has no row once the marker is there was not staged (the copy failed, or the
//! file was still being written and is left for the next fetch): its unit is not processed,
//! and the next run fetches and processes it.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

use super::manifest::ManifestRow;

/// How often a waiting unit looks at the manifest again: a row appended is seen within this,
/// and reading a few new lines costs microseconds.
const POLL: Duration = Duration::from_millis(20);

/// The marker that says the fetch appending to `manifest` has ended.
pub fn ended_marker(manifest: &Path) -> PathBuf {
    let mut name = manifest.as_os_str().to_os_string();
    name.push(".ended");
    PathBuf::from(name)
}

/// Writes [`ended_marker`] of `manifest` (the time it ended, for whoever looks).
pub fn mark_ended(manifest: &Path) -> std::io::Result<()> {
    mark_ended_at(&ended_marker(manifest))
}

/// Writes the marker `marker` (an [`ended_marker`]).
pub fn mark_ended_at(marker: &Path) -> std::io::Result<()> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    crate::files::write(marker, format!("{now}\n"))
}

/// What became of a listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Staged: its manifest row.
    Fetched(Box<ManifestRow>),
    /// The fetch ended without staging it.
    NotFetched,
}

/// The rows of a manifest that a fetch is appending to, read as they come (shared by a
/// slice's file workers).
pub struct Arrivals {
    manifest: PathBuf,
    ended: PathBuf,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Rows read so far, by location.
    rows: HashMap<String, ManifestRow>,
    /// The file read (its inode: the fetch replaces the manifest by a sorted copy as it ends)
    /// and how far.
    inode: u64,
    offset: u64,
    /// The start of a line not yet ended.
    partial: Vec<u8>,
}

impl Arrivals {
    pub fn new(manifest: &Path) -> Arrivals {
        Arrivals {
            manifest: manifest.to_path_buf(),
            ended: ended_marker(manifest),
            seen: Mutex::default(),
        }
    }

    /// Waits until the file at `location` is staged or the fetch has ended without it; `None`
    /// when `stop` says to stop waiting first. Errors when the manifest cannot be read.
    pub fn wait(&self, location: &str, stop: &dyn Fn() -> bool) -> anyhow::Result<Option<Arrival>> {
        loop {
            // The marker is looked at before the manifest is read: the fetch writes its last
            // manifest before the marker, so a row missing after that read is missing for good.
            let ended = self.ended.exists();
            if let Some(row) = self.look(location)? {
                return Ok(Some(Arrival::Fetched(Box::new(row))));
            }
            if ended {
                return Ok(Some(Arrival::NotFetched));
            }
            if stop() {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the file at `location` is staged (`true`) or the fetch has ended without
    /// it (`false`): for the planner, which reads a file it cuts into parts.
    pub fn staged(&self, location: &str) -> Result<bool, String> {
        match self.wait(location, &|| false) {
            Ok(Some(Arrival::Fetched(_))) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(crate::exit::error_text(&e)),
        }
    }

    /// Gives the parts of each file cut once it was staged that file's checksum and time, as
    /// a plan made from a manifest has them: a later run of the day knows the file done by it
    /// (`split.json`).
    pub fn fill_parts(&self, plan: &mut super::Plan) {
        let s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for u in plan.slices.iter_mut().flat_map(|k| k.units.iter_mut()) {
            if let (Some(_), Some(row)) = (&u.part, s.rows.get(&u.location)) {
                u.sha256 = row.sha256.clone();
                u.modified = row.modified.clone();
            }
        }
    }

    /// Reads what was appended since the last look; the row of `location`, if it came.
    fn look(&self, location: &str) -> anyhow::Result<Option<ManifestRow>> {
        let mut s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = s.rows.get(location) {
            return Ok(Some(r.clone()));
        }
        let cannot = || format!("cannot read manifest `{}`", self.manifest.display());
        let mut f = match std::fs::File::open(&self.manifest) {
            Ok(f) => f,
            // Not created yet: the fetch creates it as its first copy begins.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(cannot),
        };
        let meta = f.metadata().with_context(cannot)?;
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        if inode != s.inode || meta.len() < s.offset {
            // Another file (the fetch's final manifest) or a shorter one: read from the start.
            s.inode = inode;
            s.offset = 0;
            s.partial.clear();
        }
        if meta.len() > s.offset {
            f.seek(SeekFrom::Start(s.offset)).with_context(cannot)?;
            let mut more = Vec::new();
            f.read_to_end(&mut more).with_context(cannot)?;
            s.offset += more.len() as u64;
            let mut text = std::mem::take(&mut s.partial);
            text.extend_from_slice(&more);
            let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            s.partial = text[complete..].to_vec();
            for line in text[..complete].split(|&b| b == b'\n') {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let row: ManifestRow = serde_json::from_slice(line).with_context(|| {
                    format!(
                        "manifest `{}`: a line that is not a manifest row",
                        self.manifest.display()
                    )
                })?;
                s.rows.insert(row.location.clone(), row);
            }
        }
        Ok(s.rows.get(location).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn row(location: &str, sha256: &str) -> ManifestRow {
        ManifestRow {
            vendor: "v".into(),
            location: location.into(),
            bytes: 3,
            sha256: sha256.into(),
            format: crate::config::Format::Csv,
            priority: crate::config::Priority::High,
            discovered_at: "2026-12-04T00:00:00Z".into(),
            source: None,
            source_modified: None,
            replaced_sha256: None,
            modified: None,
            cuts: None,
        }
    }

    fn line(r: &ManifestRow) -> String {
        serde_json::to_string(r).expect("json") + "\n"
    }

    #[test]
    fn rows_are_seen_as_they_are_appended_and_the_end_tells_what_never_came() {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = dir.path().join("manifest.jsonl");
        let arrivals = Arrivals::new(&manifest);
        let never = || true;
        // No manifest yet: nothing has come, and the fetch goes on.
        assert_eq!(arrivals.wait("/a", &never).expect("wait"), None);

        // Half a line, then the rest: the row counts once its line has ended.
        let a = line(&row("/a", "aa"));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&manifest)
            .expect("manifest");
        f.write_all(&a.as_bytes()[..10]).expect("write");
        assert_eq!(arrivals.wait("/a", &never).expect("wait"), None);
        f.write_all(&a.as_bytes()[10..]).expect("write");
        assert_eq!(
            arrivals.wait("/a", &never).expect("wait"),
            Some(Arrival::Fetched(Box::new(row("/a", "aa"))))
        );

        // The fetch ends: its last manifest replaces the appended one (sorted, another file).
        drop(f);
        crate::plan::manifest::write(&manifest, &[row("/b", "bb"), row("/a", "aa")])
            .expect("final manifest");
        mark_ended(&manifest).expect("marker");
        assert_eq!(
            arrivals.wait("/b", &never).expect("wait"),
            Some(Arrival::Fetched(Box::new(row("/b", "bb"))))
        );
        assert_eq!(
            arrivals.wait("/c", &never).expect("wait"),
            Some(Arrival::NotFetched)
        );
    }

    #[test]
    fn a_wait_ends_as_soon_as_the_row_comes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = dir.path().join("manifest.jsonl");
        let arrivals = Arrivals::new(&manifest);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                std::fs::write(&manifest, line(&row("/a", "aa"))).expect("write");
            });
            let started = std::time::Instant::now();
            let got = arrivals
                .wait("/a", &|| started.elapsed() > Duration::from_secs(30))
                .expect("wait");
            assert_eq!(got, Some(Arrival::Fetched(Box::new(row("/a", "aa")))));
        });
    }

    #[test]
    fn a_line_that_is_not_a_row_is_an_error_naming_the_manifest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = dir.path().join("manifest.jsonl");
        std::fs::write(&manifest, "{not json\n").expect("write");
        let e = Arrivals::new(&manifest)
            .wait("/a", &|| true)
            .expect_err("not a row");
        assert!(format!("{e:#}").contains("manifest.jsonl"), "{e:#}");
    }
}
