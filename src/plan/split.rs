//! Cutting a large staged file into parts at record boundaries, with the vendor's own framing
//! (the same chunking the engine uses), so that the parts of one file can run as units of
//! their own on several workers.

use std::path::Path;

use crate::config::Config;
use crate::vendor::Vendor;

use super::Part;
use super::manifest::ManifestRow;

/// Cuts a local file into parts of about `limit` bytes at record boundaries.
pub fn split_file(config: &Config, row: &ManifestRow, limit: u64) -> Result<Vec<Part>, String> {
    let (idx, _) = config
        .vendor(&row.vendor)
        .ok_or_else(|| format!("unknown vendor `{}`", row.vendor))?;
    let path = Path::new(&row.location);
    if row.location.contains("://") {
        return Ok(Vec::new()); // remote files are planned whole
    }
    if config.vendors[idx].output.format == crate::config::Format::Pdf {
        // A PDF is one document (its page count is on every page): its pages cannot be put
        // together from parts, so a file with PDF output is planned whole.
        return Ok(Vec::new());
    }
    let mut decoder = Vendor::input_decoder(config, idx).map_err(|e| e.to_string())?;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // SAFETY: read-only mapping of a staged file that is not modified while planning.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
    let pre = decoder.preamble(&map).map_err(|e| e.to_string())?;
    let body = (pre.body_end - pre.body_start) as u64;
    let count = body.div_ceil(limit.max(1)).max(1);
    let target = (body / count).max(1) as usize;
    let mut parts = Vec::new();
    for c in decoder.frame(&map, &pre, target) {
        let c = c.map_err(|e| e.to_string())?;
        parts.push(Part {
            index: parts.len() as u32,
            count: 0,
            start: c.bytes.start as u64,
            end: c.bytes.end as u64,
            first_record: c.first_record,
            first_line: c.first_line,
        });
    }
    let n = parts.len() as u32;
    for p in &mut parts {
        p.count = n;
    }
    Ok(parts)
}
