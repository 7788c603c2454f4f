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
        std::fs::write(&tmp, serde_json::to_string_pretty(&known)?)
            .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        std::fs::rename(&tmp, split)
            .with_context(|| format!("cannot write `{}`", split.display()))?;
    }
    Ok(())
}

/// The manifest's files not done yet, and how many are. A file is done when the latest
/// attempt of each of its units succeeded and every output is still there, and it is the same
/// file: its checksum is the one recorded (a whole file), or the one it had when an earlier
/// plan of the day cut it into the parts that succeeded (a split file; see [`split_files`]).
pub(crate) fn remaining(
    manifest: &Path,
    ledgers: &Path,
    split: &Path,
) -> anyhow::Result<(Vec<crate::plan::manifest::ManifestRow>, usize)> {
    let rows = crate::plan::manifest::read(manifest)?;
    let split = split_files(split)?;
    let found = if ledgers.is_dir() {
        crate::ledger::report::find_ledgers(ledgers, None)?
    } else {
        Vec::new()
    };
    if found.is_empty() {
        return Ok((rows, 0));
    }
    let done = crate::ledger::report::with_latest(&found, |conn| {
        // A file is done when each of its units' latest attempt succeeded and its output is
        // still there: (input, checksum) of such files.
        let mut stmt = conn.prepare(
            "SELECT input_path, any_value(input_sha256), string_agg(coalesce(output_path, ''), chr(10)),
                    coalesce(max(parts), 1)
             FROM latest GROUP BY input_path
             HAVING bool_and(status = 'succeeded') AND count(*) = coalesce(max(parts), 1)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut done = std::collections::HashMap::new();
        for r in rows {
            let (input, sha, outputs, parts) = r?;
            let present = outputs
                .split('\n')
                .all(|o| !o.is_empty() && Path::new(o).is_file());
            // The parts of a split file carry their own checksums, not the file's.
            let sha = if parts > 1 {
                split.get(&input).cloned()
            } else {
                Some(sha)
            };
            if let (true, Some(sha)) = (present, sha) {
                done.insert(input, sha);
            }
        }
        Ok(done)
    })?;
    let (finished, left): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|r| done.get(&r.location) == Some(&r.sha256));
    Ok((left, finished.len()))
}
