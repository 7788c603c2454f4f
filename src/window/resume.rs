//! What a window's run folder still has to do: the manifest's files that no earlier attempt
//! of the day finished, and the files its plans split into parts (remembered across attempts,
//! since each plan covers only what was left).

use std::path::Path;

use anyhow::Context;

/// Files this run folder's plans split into parts, with the checksum each had when it was cut:
/// `split.json`, `{ location: sha256 }`, kept across the attempts of the day (each plan covers
/// only what was left, so `plan.json` alone forgets what earlier attempts split).
pub(crate) fn split_files(
    split: &Path,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    match std::fs::read_to_string(split) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not a list of split files", split.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", split.display())),
    }
}

/// Adds the files `plan_path` splits to `split` (see [`split_files`]).
pub(crate) fn remember_split_files(plan_path: &Path, split: &Path) -> anyhow::Result<()> {
    let plan = crate::plan::Plan::read(plan_path)?;
    let mut known = split_files(split)?;
    let before = known.clone();
    for u in plan.slices.iter().flat_map(|s| &s.units) {
        if u.part.is_some() {
            known.insert(u.location.clone(), u.sha256.clone());
        }
    }
    if known != before {
        let tmp = split.with_extension("json.tmp");
        crate::files::write(&tmp, serde_json::to_string_pretty(&known)?)
            .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        std::fs::rename(&tmp, split)
            .with_context(|| format!("cannot write `{}`", split.display()))?;
    }
    Ok(())
}

/// What is left of a day: the manifest's files to plan, how many are done, and the files in
/// quarantine (not planned).
pub(crate) struct Remaining {
    pub left: Vec<crate::plan::manifest::ManifestRow>,
    pub done: usize,
    pub quarantined: Vec<crate::ledger::query::Quarantined>,
}

/// The manifest's files not done yet and not in quarantine, how many are done, and which are in
/// quarantine. A file is done as [`crate::ledger::query::LatestUnits::is_done`] says: the
/// latest attempt of each of its units succeeded, under the configuration `config_sha256` when
/// it is known, and every output is still there with its recorded size, and it is the same
/// file: its checksum is the one recorded (a whole file), or the one it had when an earlier
/// plan of the day cut it into the parts that succeeded (a split file; see [`split_files`]).
pub(crate) fn remaining(
    manifest: &Path,
    ledgers: &Path,
    split: &Path,
    config_sha256: Option<&str>,
) -> anyhow::Result<Remaining> {
    use crate::ledger::query::local_output_present;
    remaining_where(
        manifest,
        ledgers,
        split,
        config_sha256,
        local_output_present,
    )
}

/// [`remaining`], asking `output_present` whether an attempt's output is still there with its
/// recorded size (a run location answers from a listing of its objects).
pub(crate) fn remaining_where(
    manifest: &Path,
    ledgers: &Path,
    split: &Path,
    config_sha256: Option<&str>,
    mut output_present: impl FnMut(&crate::ledger::query::UnitAttempt) -> bool,
) -> anyhow::Result<Remaining> {
    use crate::ledger::query::{LatestUnits, UnitRef, quarantined};
    let rows = crate::plan::manifest::read(manifest)?;
    let split = split_files(split)?;
    let found = if ledgers.is_dir() {
        crate::ledger::find_ledgers(ledgers, None)?
    } else {
        Vec::new()
    };
    if found.is_empty() {
        return Ok(Remaining {
            left: rows,
            done: 0,
            quarantined: Vec::new(),
        });
    }
    let (latest, held) = crate::ledger::merge::with_latest(&found, |conn| {
        Ok((LatestUnits::read(conn)?, quarantined(conn)?))
    })?;
    let held_paths: std::collections::HashSet<&str> =
        held.iter().map(|q| q.input_path.as_str()).collect();
    let mut left = Vec::new();
    let mut done = 0;
    let mut in_quarantine = Vec::new();
    for r in rows {
        if held_paths.contains(r.location.as_str()) {
            in_quarantine.push(r.location.clone());
            continue;
        }
        let is_done = latest
            .is_done_where(
                UnitRef::File(&r.location),
                config_sha256,
                |a| {
                    // The parts of a split file carry their own checksums, not the file's.
                    if a.parts.unwrap_or(1) > 1 {
                        split.get(&r.location) == Some(&r.sha256)
                    } else {
                        a.input_sha256 == r.sha256
                    }
                },
                &mut output_present,
            )
            .is_ok();
        if is_done {
            done += 1;
        } else {
            left.push(r);
        }
    }
    // Only the quarantined files of this manifest: the day's, not an earlier cut's.
    let quarantined = held
        .into_iter()
        .filter(|q| in_quarantine.contains(&q.input_path))
        .collect();
    Ok(Remaining {
        left,
        done,
        quarantined,
    })
}
