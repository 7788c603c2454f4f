//! `fetch`: find a day's inbound files at a source, wait until each is complete, copy it to a
//! local staging folder while checksumming it, and record it in the manifest.
//!
//! A file is complete when its vendor's completion marker exists (vendors with `marker`), or
//! when its size and modification time are the same in two listings `settle` apart. Rows are
//! appended to the manifest as copies finish, so an interrupted fetch keeps what it staged; the
//! manifest is then rewritten with one row per file. Running fetch again copies nothing that is
//! already staged unchanged. Files are copied HIGH vendors' first, larger ones first within a
//! priority; with a listing, the rows to be staged are written before the first copy, so that
//! planning and processing can start while the files arrive ([`crate::plan::arrivals`]).
//!
//! Only regular files are fetched. A symbolic link in a vendor's folder is skipped with a
//! warning, or with `[transfer] symlinks = "follow-inside"` followed when the file it resolves
//! to is inside the same vendor's folder (listed and read as that file); fifos, sockets and
//! devices are skipped with a warning; a folder the server will not list is a failure. Each
//! copy is capped at the size the file was listed with: a source that sends more is refused
//! and nothing of it kept. The day must fit on the staging filesystem before a byte is copied.
//!
//! A file staged at a URL passes through the local staging folder first; while it is there,
//! the places where a CSV or XML file may be cut are found for the planner and written in its row
//! (`cuts`, see `plan::split::staged_cuts`), on a blocking thread while the file is uploaded.
//! Each file is uploaded in its own task, beside the other files' downloads and uploads
//! (`--concurrency` at once), not after them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;

use super::{DayLayout, TransferSettings};
use crate::config::{Config, Symlinks};
use crate::plan::manifest::{self, ManifestRow, StagedCuts};
use crate::storage::{Entry, LinkTarget, OtherKind, StorageError, Store, Transferred, safe_name};

/// What to fetch and where to.
pub struct FetchRequest<'a> {
    pub config: &'a Config,
    pub settings: &'a TransferSettings,
    pub source: &'a Store,
    /// Local folder; files land in `STAGING/DATE/VENDOR/FILE`.
    pub staging: &'a Path,
    /// A staging store (a URL): each file is copied through `staging` (then a scratch
    /// folder, holding only the files in flight) to `DATE/VENDOR/FILE` there, and the manifest
    /// names it there.
    pub staging_store: Option<&'a Store>,
    pub date: &'a str,
    pub manifest: &'a Path,
    /// Where to write, before a byte is copied, the rows this fetch will have staged if every
    /// copy succeeds (those of files to copy with empty checksums), in the order they are
    /// copied: a plan made from it may run while the files arrive ([`crate::plan::arrivals`]).
    pub listing: Option<&'a Path>,
    pub progress: bool,
}

/// What a fetch did.
#[derive(Debug, Default)]
pub struct FetchOutcome {
    /// Rows written by this run (new or changed files).
    pub fetched: Vec<ManifestRow>,
    /// Files already staged unchanged: not copied again.
    pub unchanged: usize,
    /// Files that changed at the source since they were staged (staged again; flagged).
    pub changed: Vec<String>,
    /// Files still being uploaded (no marker yet, or size or time still moving).
    pub waiting: Vec<String>,
    /// Files under folders that name no configured vendor.
    pub unknown: Vec<String>,
    /// Names refused as unsafe (traversal, control characters).
    pub unsafe_names: Vec<(String, String)>,
    /// Entries of vendors' folders that are not fetched: links not followed, fifos, sockets,
    /// devices (name, why). Each is named in a warning.
    pub skipped: Vec<(String, String)>,
    /// Files that could not be copied.
    pub failed: Vec<(String, StorageError)>,
    /// Rows in the manifest after this run.
    pub manifest_rows: usize,
}

struct Candidate {
    /// As listed: a followed link's name, with its target's size and time.
    entry: Entry,
    /// The name that is read: the entry's own, or a followed link's target.
    read: String,
    vendor: usize,
    file: String,
}

/// A day's listing as fetch sees it: the regular files (and followed links) with the name to
/// read each from; everything else sorted into `out`.
struct Found {
    files: Vec<(Entry, String)>,
}

/// Lists the day, follows links as `[transfer] symlinks` says, and records in `out` (when
/// given: the second listing of `settle` records nothing again) what is skipped or refused.
async fn list_day(
    req: &FetchRequest<'_>,
    day: &DayLayout,
    mut out: Option<&mut FetchOutcome>,
) -> Result<Found, StorageError> {
    let follow = req.settings.symlinks == Symlinks::FollowInside;
    let listing = req.source.list_all(&day.prefix, follow).await?;
    let mut files: Vec<(Entry, String)> = listing
        .files
        .into_iter()
        .map(|e| {
            let read = e.name.clone();
            (e, read)
        })
        .collect();
    for o in listing.others {
        // Entries outside the layout, of unknown vendors, or still being written are not
        // data, whatever they are.
        let configured = |v: &str| req.config.vendor(v).is_some();
        let in_layout = day
            .split(&o.name)
            .filter(|(v, f)| configured(v) && !super::is_partial_name(f));
        let why = match o.kind {
            OtherKind::Unsafe(reason) => {
                if let Some(out) = out.as_deref_mut()
                    && day.vendor_of(&o.name).is_some_and(configured)
                {
                    out.unsafe_names
                        .push((o.name.escape_debug().to_string(), reason));
                }
                continue;
            }
            OtherKind::Unreadable(reason) => {
                if let Some(out) = out.as_deref_mut()
                    && day.folder_may_hold(&o.name, configured)
                {
                    let e = StorageError::Failed {
                        store: req.source.url().to_string(),
                        message: format!(
                            "the folder `{}` cannot be listed ({reason}); its files were not fetched",
                            o.name.escape_debug()
                        ),
                    };
                    tracing::error!("{e}");
                    out.failed.push((req.source.url_of(&o.name), e));
                }
                continue;
            }
            // A link or special file where a folder of a configured vendor would be (a
            // vendor's folder that is a link) is named too: the files behind it are not seen.
            _ if in_layout.is_none() && !day.folder_may_hold(&o.name, configured) => continue,
            OtherKind::Special(what) => format!("{what}, not a regular file"),
            OtherKind::Link(target) => {
                let folder = day.vendor_folder(&o.name).unwrap_or_default();
                match target {
                    LinkTarget::NotResolved => {
                        "a symbolic link, not followed ([transfer] symlinks = \"skip\")".into()
                    }
                    LinkTarget::File { target, entry }
                        if target.starts_with(&format!("{folder}/")) =>
                    {
                        files.push((entry, target));
                        continue;
                    }
                    LinkTarget::File { target, .. } => format!(
                        "a symbolic link to `{target}`, outside the vendor's folder `{folder}`: not followed"
                    ),
                    LinkTarget::Outside(path) => format!(
                        "a symbolic link to `{}`, outside the source: not followed",
                        path.escape_debug()
                    ),
                    LinkTarget::Folder(f) => {
                        format!("a symbolic link to the folder `{f}`: folders are not followed")
                    }
                    LinkTarget::Special(t, what) => {
                        format!("a symbolic link to `{t}`, {what}: not followed")
                    }
                    LinkTarget::Broken(why) => {
                        format!("a symbolic link that leads nowhere or in a loop ({why})")
                    }
                }
            }
        };
        if let Some(out) = out.as_deref_mut() {
            tracing::warn!(
                "{}: skipped: {why}",
                req.source.url_of(&o.name).escape_debug()
            );
            out.skipped.push((o.name.escape_debug().to_string(), why));
        }
    }
    Ok(Found { files })
}

fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Finds the day's complete files. Errors only when the source cannot be listed.
async fn discover(
    req: &FetchRequest<'_>,
    out: &mut FetchOutcome,
    known: &HashMap<String, ManifestRow>,
) -> Result<Vec<Candidate>, StorageError> {
    let day = req
        .settings
        .inbound
        .for_date(req.date)
        .map_err(|m| StorageError::BadUrl {
            url: req.source.url().into(),
            reason: m,
        })?;
    let listing = list_day(req, &day, Some(&mut *out)).await?.files;
    let names: HashSet<&str> = listing.iter().map(|(e, _)| e.name.as_str()).collect();
    let mut candidates = Vec::new();
    let mut unknown_vendors: BTreeMap<String, usize> = BTreeMap::new();
    for (e, read) in &listing {
        let Some((vendor, file)) = day.split(&e.name) else {
            continue;
        };
        if super::is_partial_name(file) {
            continue;
        }
        if let Err(err) = safe_name(&e.name) {
            out.unsafe_names
                .push((e.name.escape_debug().to_string(), err.to_string()));
            continue;
        }
        let Some((vi, v)) = req.config.vendor(vendor) else {
            *unknown_vendors.entry(vendor.to_string()).or_default() += 1;
            out.unknown.push(e.name.clone());
            continue;
        };
        if let Some(marker) = &v.transfer.marker {
            let (pre, post) = marker.split_once("{file}").unwrap_or(("", ""));
            let is_marker = file.len() > pre.len() + post.len()
                && file.starts_with(pre)
                && file.ends_with(post);
            if is_marker {
                continue;
            }
            let marker_name = format!(
                "{}{}",
                &e.name[..e.name.len() - file.len()],
                marker.replace("{file}", file)
            );
            if !names.contains(marker_name.as_str()) {
                out.waiting.push(e.name.clone());
                continue;
            }
        }
        candidates.push(Candidate {
            entry: e.clone(),
            read: read.clone(),
            vendor: vi,
            file: file.to_string(),
        });
    }
    for (v, n) in &unknown_vendors {
        tracing::warn!("{n} file(s) under `{v}`, which is not a configured vendor: not fetched");
    }
    // Files of vendors without markers must hold still for `settle`, unless they are exactly
    // what was staged before (then nothing will be copied anyway).
    let needs_settle = |c: &Candidate| {
        req.config.vendors[c.vendor].transfer.marker.is_none()
            && !known
                .get(&req.source.url_of(&c.entry.name))
                .is_some_and(|r| {
                    r.bytes == c.entry.size
                        && r.source_modified.as_deref() == Some(&rfc3339(&c.entry.modified))
                })
    };
    if req.settings.settle.is_zero() || !candidates.iter().any(&needs_settle) {
        return Ok(candidates);
    }
    tracing::info!(
        "waiting {:?} to see which files are still being uploaded",
        req.settings.settle
    );
    tokio::time::sleep(req.settings.settle).await;
    let again: HashMap<String, Entry> = list_day(req, &day, None)
        .await?
        .files
        .into_iter()
        .map(|(e, _)| (e.name.clone(), e))
        .collect();
    let mut stable = Vec::new();
    for c in candidates {
        if !needs_settle(&c) {
            stable.push(c);
            continue;
        }
        match again.get(&c.entry.name) {
            Some(e2) if e2.size == c.entry.size && e2.modified == c.entry.modified => {
                stable.push(c)
            }
            Some(_) => out.waiting.push(c.entry.name),
            None => {}
        }
    }
    Ok(stable)
}

/// Runs a fetch. `Err` means the source could not be listed (after retries); failures of
/// single files are in [`FetchOutcome::failed`].
pub async fn fetch(req: &FetchRequest<'_>) -> Result<FetchOutcome, StorageError> {
    let mut out = FetchOutcome::default();
    let previous = if req.manifest.exists() {
        manifest::read(req.manifest).map_err(|e| manifest_failed(req.manifest, e))?
    } else {
        Vec::new()
    };
    let known: HashMap<String, ManifestRow> = previous
        .iter()
        .map(|r| (r.key().to_string(), r.clone()))
        .collect();
    let candidates = discover(req, &mut out, &known).await?;

    // Which files to copy: new, or changed at the source, or whose staged copy is gone.
    let mut todo = Vec::new();
    let mut staged_before = Vec::new();
    for c in candidates {
        let url = req.source.url_of(&c.entry.name);
        let vendor = &req.config.vendors[c.vendor].id;
        let staged = staged_path(req.staging, req.date, vendor, &c.file);
        if let Some(r) = known.get(&url) {
            let same_source = r.bytes == c.entry.size
                && r.source_modified.as_deref() == Some(&rfc3339(&c.entry.modified));
            let staged_ok = match req.staging_store {
                Some(st) => st
                    .head(&staged_name(req.date, vendor, &c.file))
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|e| e.size == r.bytes),
                None => std::fs::metadata(&staged).is_ok_and(|m| m.len() == r.bytes),
            };
            if same_source && staged_ok {
                out.unchanged += 1;
                staged_before.push(r.clone());
                continue;
            }
        }
        todo.push((c, url, staged));
    }
    // HIGH vendors' files first, larger ones first within a priority: the order the plan
    // gives each slice its units, so that slices running beside the fetch find theirs early.
    todo.sort_by(|(a, _, _), (b, _, _)| {
        let priority = |c: &Candidate| req.config.vendors[c.vendor].priority;
        priority(a)
            .cmp(&priority(b))
            .then(b.entry.size.cmp(&a.entry.size))
            .then(a.entry.name.cmp(&b.entry.name))
    });

    let total: u64 = todo.iter().map(|(c, _, _)| c.entry.size).sum();
    // The whole day must fit before a byte is copied: a disk that fills up half-way leaves a
    // day that is neither fetched nor not.
    if total > 0 && req.staging_store.is_none() {
        std::fs::create_dir_all(req.staging).map_err(|e| StorageError::local(req.staging, e))?;
        let available = free_bytes(req.staging).map_err(|e| StorageError::local(req.staging, e))?;
        if total > available {
            return Err(StorageError::NoRoom {
                path: req.staging.display().to_string(),
                needed: total,
                available,
            });
        }
    }
    let bar = crate::printer::progress_bar(req.progress, total, crate::printer::PROGRESS_BYTES);
    let files_total = todo.len();
    let mut files_done = 0usize;
    bar.set_message(format!("0/{files_total} files"));

    if let Some(dir) = req.manifest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::local(dir, e))?;
    }

    let now = rfc3339(&chrono::Utc::now());
    let mut previous = previous;
    if let Some(listing) = req.listing {
        // The rows of files about to be copied again leave the manifest first: a unit waiting
        // for its file must not take the staged copy this fetch replaces.
        let again: HashSet<&str> = todo.iter().map(|(_, url, _)| url.as_str()).collect();
        if previous.iter().any(|r| again.contains(r.key())) {
            previous.retain(|r| !again.contains(r.key()));
            manifest::write(req.manifest, &previous)
                .map_err(|e| manifest_failed(req.manifest, e))?;
        }
        let mut rows = staged_before;
        rows.extend(todo.iter().map(|(c, url, staged)| {
            let v = &req.config.vendors[c.vendor];
            ManifestRow {
                vendor: v.id.clone(),
                location: staged_location(req, staged, &v.id, &c.file),
                bytes: c.entry.size,
                sha256: String::new(),
                format: v.input.format,
                priority: v.priority,
                discovered_at: now.clone(),
                source: Some(url.clone()),
                source_modified: Some(rfc3339(&c.entry.modified)),
                replaced_sha256: None,
                modified: None,
                cuts: None,
            }
        }));
        manifest::write(listing, &rows).map_err(|e| manifest_failed(listing, e))?;
    }
    // Opened after the listing's pruning, which replaces the manifest by another file.
    let mut log =
        crate::files::append(req.manifest).map_err(|e| StorageError::local(req.manifest, e))?;
    let copies = futures::stream::iter(todo.into_iter().map(|(c, url, staged)| {
        let bar = bar.clone();
        async move {
            let result = req
                .source
                .get_file_capped(&c.read, &staged, Some(c.entry.size))
                .await;
            // A copy that is not the listed size is looked at again: a file that changed since
            // it was listed is still being written; one that still lists the same is not what
            // the server says it is.
            let again = match &result {
                Ok(t) if t.bytes != c.entry.size => true,
                Err(StorageError::Oversize { .. }) => true,
                _ => false,
            };
            let still = again
                && (req.source.head(&c.read).await.ok().flatten())
                    .is_some_and(|e| e.size == c.entry.size && e.modified == c.entry.modified);
            // A copy of the listed size goes on to a staging URL here, beside the other
            // files' copies, not after them.
            let uploaded = match (&result, req.staging_store) {
                (Ok(got), Some(st)) if got.bytes == c.entry.size => {
                    Some(upload_staged(req, st, &c, &url, &staged, got).await)
                }
                _ => None,
            };
            bar.inc(c.entry.size);
            (c, url, staged, result, still, uploaded)
        }
    }))
    .buffer_unordered(req.settings.concurrency);
    futures::pin_mut!(copies);
    while let Some((c, url, staged, result, still, uploaded)) = copies.next().await {
        files_done += 1;
        bar.set_message(format!("{files_done}/{files_total} files"));
        let got = match result {
            Ok(t) => t,
            Err(StorageError::Oversize { .. }) if !still => {
                tracing::warn!(
                    "{url} grew while it was copied (listed with {} bytes): left for the next fetch",
                    c.entry.size
                );
                out.waiting.push(c.entry.name);
                continue;
            }
            Err(e) => {
                tracing::error!("{url}: {e}");
                out.failed.push((url, e));
                continue;
            }
        };
        if got.bytes != c.entry.size && still {
            // The same size and time as listed, and fewer bytes: a retry reads the same.
            let _ = std::fs::remove_file(&staged);
            let e = StorageError::Failed {
                store: req.source.url().to_string(),
                message: format!(
                    "`{}` sent {} bytes but lists {} (and still does); refused, nothing of it was kept",
                    c.read, got.bytes, c.entry.size
                ),
            };
            tracing::error!("{e}");
            out.failed.push((url, e));
            continue;
        }
        if got.bytes != c.entry.size {
            // It grew or shrank while being copied: still being written. The next fetch takes it.
            tracing::warn!(
                "{url} changed size while it was copied ({} then {} bytes): left for the next fetch",
                c.entry.size,
                got.bytes
            );
            let _ = std::fs::remove_file(&staged);
            out.waiting.push(c.entry.name);
            continue;
        }
        let v = &req.config.vendors[c.vendor];
        let replaced = known
            .get(&url)
            .filter(|r| r.sha256 != got.sha256)
            .map(|r| r.sha256.clone());
        if replaced.is_some() {
            tracing::warn!(
                "{url} changed since it was staged: staged again (was sha256 {})",
                known[&url].sha256
            );
            out.changed.push(url.clone());
        }
        // The staged copy's time, for `process` to see that it is still the copy checked here.
        let (modified, cuts) = match uploaded {
            Some(Ok(cuts)) => (None, cuts),
            Some(Err(e)) => {
                tracing::error!("{url}: {e}");
                out.failed.push((url, e));
                continue;
            }
            None => (
                std::fs::metadata(&staged)
                    .ok()
                    .filter(|m| m.len() == got.bytes)
                    .and_then(|m| crate::plan::manifest::modified_text(&m)),
                None,
            ),
        };
        let location = staged_location(req, &staged, &v.id, &c.file);
        let row = ManifestRow {
            vendor: v.id.clone(),
            location,
            bytes: got.bytes,
            sha256: got.sha256,
            format: v.input.format,
            priority: v.priority,
            discovered_at: now.clone(),
            source: Some(url),
            source_modified: Some(rfc3339(&c.entry.modified)),
            replaced_sha256: replaced,
            modified,
            cuts,
        };
        // Appended as soon as the copy is verified, so a fetch that is stopped keeps it.
        let line = serde_json::to_string(&row).expect("a manifest row serializes");
        writeln!(log, "{line}")
            .and_then(|()| log.flush())
            .map_err(|e| StorageError::local(req.manifest, e))?;
        out.fetched.push(row);
    }
    bar.finish_and_clear();
    drop(log);

    let mut rows = previous;
    rows.extend(out.fetched.iter().cloned());
    let mut rows = manifest::dedupe(rows);
    rows.sort_by(|a, b| (&a.vendor, &a.location).cmp(&(&b.vendor, &b.location)));
    out.manifest_rows = rows.len();
    manifest::write(req.manifest, &rows).map_err(|e| manifest_failed(req.manifest, e))?;
    Ok(out)
}

/// Uploads the local copy `staged` of `c` (`got`, of its listed size) to the staging store
/// `st`, checked against what was downloaded, whole or not at all, and removes the local copy.
/// Gives where the planner may cut it (a CSV or XML file on an object store), with the
/// uploaded object's ETag.
async fn upload_staged(
    req: &FetchRequest<'_>,
    st: &Store,
    c: &Candidate,
    url: &str,
    staged: &Path,
    got: &Transferred,
) -> Result<Option<StagedCuts>, StorageError> {
    let v = &req.config.vendors[c.vendor];
    // Where a CSV or XML file may be cut, found while it is here: a planner cannot find that
    // without reading the whole object. Only on object stores, whose ETag tells the planner
    // it is still this file (SFTP has none).
    let object_store = st.conditional() == crate::storage::Conditional::Atomic;
    let cutter = match object_store
        .then(|| crate::plan::split::StagedCutter::new(req.config, &v.id, got.bytes))
        .transpose()
    {
        Ok(cutter) => cutter.flatten(),
        Err(e) => {
            tracing::warn!("{url}: not cut into parts when planned: {e}");
            None
        }
    };
    // The framing (about a second per GB) runs on a blocking thread while the file is
    // uploaded, both reading the same local copy.
    let finding = cutter.map(|cutter| {
        let path = staged.to_path_buf();
        tokio::task::spawn_blocking(move || cutter.find(&path))
    });
    let name = staged_name(req.date, &v.id, &c.file);
    let expected = crate::storage::ExpectedContent {
        content: got.clone(),
        written_by: None,
    };
    let put = st.put_file_checked(&name, staged, true, Some(&expected));
    let found = async {
        match finding {
            Some(f) => Some(f.await.unwrap_or_else(|e| Err(e.to_string()))),
            None => None,
        }
    };
    let (put, found) = tokio::join!(put, found);
    let _ = std::fs::remove_file(staged);
    put?;
    let mut cuts = match found.transpose() {
        Ok(cuts) => cuts.flatten(),
        Err(e) => {
            tracing::warn!("{url}: not cut into parts when planned: {e}");
            None
        }
    };
    // The object's ETag, for the planner to cut only what was uploaded here. Without one a
    // planner could not tell this file from another of the same size: it is planned whole.
    if let Some(found) = cuts.as_mut() {
        match st.read_range(&name, 0..1).await {
            Ok(r) if r.e_tag.is_some() => found.e_tag = r.e_tag,
            Ok(_) => cuts = None,
            Err(e) => {
                tracing::warn!("{url}: not cut into parts when planned: {e}");
                cuts = None;
            }
        }
    }
    Ok(cuts)
}

/// A manifest (or listing) that cannot be read or written.
fn manifest_failed(path: &Path, e: anyhow::Error) -> StorageError {
    StorageError::Failed {
        store: path.display().to_string(),
        message: crate::exit::error_text(&e),
    }
}

/// Where the manifest says a file is staged: its URL in a staging store, else the absolute
/// path of `staged`.
fn staged_location(req: &FetchRequest<'_>, staged: &Path, vendor: &str, file: &str) -> String {
    match req.staging_store {
        Some(st) => st.url_of(&staged_name(req.date, vendor, file)),
        None => std::path::absolute(staged)
            .unwrap_or_else(|_| staged.to_path_buf())
            .display()
            .to_string(),
    }
}

/// Bytes an unprivileged writer may still use on the filesystem that holds `dir` (statvfs).
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a NUL-terminated path and a zeroed struct that the call fills; both outlive it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// `DATE/VENDOR/FILE`: a fetched file's name in a staging store.
pub fn staged_name(date: &str, vendor: &str, file: &str) -> String {
    format!("{date}/{vendor}/{file}")
}

/// `STAGING/DATE/VENDOR/FILE` for a fetched file.
pub fn staged_path(staging: &Path, date: &str, vendor: &str, file: &str) -> PathBuf {
    staging.join(date).join(vendor).join(file)
}
