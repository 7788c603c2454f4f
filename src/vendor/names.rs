//! The names of a unit's outputs: `file_name` and `reject_file_name` patterns, checked when a
//! vendor is built and expanded for each input file (a split file's parts add
//! `plan::Part::output_name`'s suffix).

/// A name pattern may use `{vendor}`, `{stem}`, `{name}`, `{ext}` and `{date}`, and must stay a
/// plain file name.
pub(crate) fn check_name_pattern(p: &str) -> Result<(), String> {
    if p.contains('/') || p.contains('\\') || p.contains("..") {
        return Err(format!("{p:?} must be a file name, not a path"));
    }
    let mut rest = p;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else {
            return Err(format!("{p:?} has an unclosed `{{`"));
        };
        let name = &rest[i + 1..i + j];
        if !matches!(name, "vendor" | "stem" | "name" | "ext" | "date") {
            return Err(format!(
                "unknown placeholder `{{{name}}}`; use vendor, stem, name, ext or date"
            ));
        }
        rest = &rest[i + j + 1..];
    }
    Ok(())
}

/// Expands a name pattern for one input file.
pub fn expand_name(pattern: &str, vendor: &str, input_name: &str, date: &str) -> String {
    let (stem, ext) = match input_name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, e),
        _ => (input_name, ""),
    };
    pattern
        .replace("{vendor}", vendor)
        .replace("{stem}", stem)
        .replace("{name}", input_name)
        .replace("{ext}", ext)
        .replace("{date}", date)
}
