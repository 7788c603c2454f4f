//! A plan told to people: slices and stages, the estimate against the window, each priority
//! against its SLA, the masking profile and what was left for the next run (what `plan`
//! prints).

use std::path::Path;

/// The calculation, for people.
pub fn render(p: &super::Plan, out: &Path) -> String {
    let e = &p.estimate;
    let mut s = format!(
        "plan       `{}`: {} slices in {} stage(s)\nwork       {:.1} MB, {:.1} s estimated\n",
        out.display(),
        p.slices.len(),
        p.stages.len(),
        e.total_bytes as f64 / 1e6,
        e.total_work_seconds
    );
    if let Some(w) = e.window_seconds {
        s.push_str(&format!(
            "window     {:.0} s at utilization {} = {:.0} s budget\n",
            w,
            e.utilization,
            w * e.utilization
        ));
    }
    s.push_str(&format!(
        "finish     {:.1} s estimated\n",
        e.makespan_seconds
    ));
    if !p.masking.is_default() {
        s.push_str(&format!(
            "masking    profile {} for {} (issuer {}, key {})\n",
            p.masking.profile.as_deref().unwrap_or("(configured masks)"),
            p.masking.subject.as_deref().unwrap_or("-"),
            p.masking.issuer.as_deref().unwrap_or("-"),
            p.masking.key_id.as_deref().unwrap_or("-"),
        ));
    }
    for st in &p.stages {
        let spans: Vec<f64> = p.slices[st.first_slice..st.first_slice + st.slices]
            .iter()
            .map(|s| s.estimated_seconds)
            .collect();
        let lo = spans.iter().cloned().fold(f64::MAX, f64::min);
        s.push_str(&format!(
            "stage {}    slices {}..{}, makespan {:.1} s (shortest slice {:.1} s), vendors {}\n",
            st.index,
            st.first_slice,
            st.first_slice + st.slices - 1,
            st.estimated_seconds,
            lo,
            st.vendors.len()
        ));
    }
    for pr in &e.priorities {
        s.push_str(&format!(
            "{:<10} {} units, done at {:.1} s{}\n",
            pr.priority.to_string().to_uppercase(),
            pr.units,
            pr.estimated_finish_seconds,
            match pr.sla_seconds {
                Some(sla) => format!(
                    ", SLA {:.0} s: {}",
                    sla,
                    if pr.meets_sla { "met" } else { "MISSED" }
                ),
                None => String::new(),
            }
        ));
    }
    if let Some(d) = &p.deferred {
        let bytes: u64 = d.files.iter().map(|f| f.bytes).sum();
        s.push_str(&format!(
            "deferred   {} files ({:.1} MB) of MEDIUM and LOW vendors, left for the next run: {}\n",
            d.files.len(),
            bytes as f64 / 1e6,
            d.reason
        ));
    }
    s
}
