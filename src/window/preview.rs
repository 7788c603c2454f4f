//! `run --dry-run`: what fetch would find at the window's source now, and the plan's
//! calculation for it, made in a temporary folder; nothing in the run folder changes.

use std::path::Path;

use anyhow::anyhow;

use crate::exit::Failure;

use super::steps::{Step, Steps};
use super::{Executor, RunSettings, WindowDay};

/// For `--dry-run`: the plan's calculation for what the source holds now, made in a temporary
/// folder from the listing (files are not split: they are not here to look into).
pub(crate) fn preview_plan(
    steps: &Steps<'_>,
    config: &crate::config::Config,
    w: &WindowDay,
    found: &[(String, String, u64)],
    a: &RunSettings,
    dir: &Path,
) -> Result<(), Failure> {
    let rows: Vec<_> = found
        .iter()
        .filter_map(|(v, f, size)| {
            let (_, vc) = config.vendor(v)?;
            Some(crate::plan::manifest::ManifestRow {
                vendor: v.clone(),
                location: crate::transfer::fetch::staged_path(&dir.join("staging"), &w.date, v, f)
                    .display()
                    .to_string(),
                bytes: *size,
                sha256: String::new(),
                format: vc.input.format,
                priority: vc.priority,
                discovered_at: String::new(),
                source: None,
                source_modified: None,
                replaced_sha256: None,
                modified: None,
                cuts: None,
            })
        })
        .collect();
    if rows.is_empty() {
        println!("plan       nothing to plan");
        return Ok(());
    }
    let tmp = std::env::temp_dir().join(format!(
        "batchwin-dry-run-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&tmp)
        .map_err(|e| Failure::data(anyhow!("cannot create `{}`: {e}", tmp.display())))?;
    let m = tmp.join("manifest.jsonl");
    let result = crate::plan::manifest::write(&m, &rows)
        .map_err(Failure::data)
        .and_then(|()| {
            let slices = match a.executor {
                Executor::Local => a
                    .workers
                    .map(|n| n as usize)
                    .or(w.config.workers)
                    .unwrap_or(1)
                    .to_string(),
                Executor::Slurm => "auto".to_string(),
            };
            let out = tmp.join("plan.json");
            let plan = Step::Plan {
                config: &steps.config,
                manifest: &m,
                window: &w.span,
                date: &w.date,
                out: &out,
                slices,
                split_bytes: Some(u64::MAX),
                slurm: None,
                max_slices: a.max_slices,
                utilization: a.utilization,
                token: a.token.as_deref(),
                fetching: None,
            };
            println!("plan       the calculation for these files:");
            steps.exec(steps.command(&plan.args()))
        });
    let _ = std::fs::remove_dir_all(&tmp);
    result.map(|_| ())
}

/// For `--dry-run`: what fetch would find at the source now.
pub(crate) fn preview_fetch(
    config: &crate::config::Config,
    w: &WindowDay,
) -> Result<Vec<(String, String, u64)>, Failure> {
    let ts = crate::transfer::TransferSettings::resolve(config, &Default::default())?;
    let rt = crate::transfer::runtime()?;
    let found = rt.block_on(async {
        let store = crate::storage::Store::open(&w.config.source, &ts.store).await?;
        let day =
            ts.inbound
                .for_date(&w.date)
                .map_err(|m| crate::storage::StorageError::BadUrl {
                    url: w.config.source.clone(),
                    reason: m,
                })?;
        let list = store.list(&day.prefix).await?;
        Ok::<_, crate::storage::StorageError>(
            list.into_iter()
                .filter_map(|e| {
                    day.split(&e.name)
                        .map(|(v, f)| (v.to_string(), f.to_string(), e.size))
                })
                .filter(|(_, f, _)| !crate::transfer::is_partial_name(f))
                .collect::<Vec<_>>(),
        )
    });
    let found = found.map_err(|e| Failure {
        status: e.exit_status(),
        error: e.into(),
    })?;
    let mut per: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for (v, _, size) in &found {
        let e = per.entry(v.clone()).or_default();
        e.0 += 1;
        e.1 += size;
    }
    println!(
        "would fetch {} files, {:.1} MB, from `{}`",
        found.len(),
        found.iter().map(|x| x.2).sum::<u64>() as f64 / 1e6,
        crate::storage::redact_url(&w.config.source)
    );
    for (v, (n, b)) in per {
        let known = if config.vendor(&v).is_some() {
            ""
        } else {
            " (not a configured vendor: left alone)"
        };
        println!("           {v}: {n} files, {:.1} MB{known}", b as f64 / 1e6);
    }
    Ok(found)
}
