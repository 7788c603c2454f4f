//! The rules of the house (CONTRIBUTING.md), checked over the source so that they cannot drift:
//! no import cycle between modules, commands that stay glue, ledger tables named only in
//! `src/ledger/`, and public type names that mean one thing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, keyed by its module path (`engine::batch`, `cli`, ...).
fn modules() -> BTreeMap<String, (PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        let name = if parts.is_empty() {
            "crate".to_string()
        } else {
            parts.join("::")
        };
        let text = std::fs::read_to_string(&f).expect("read source");
        out.insert(name, (f, without_tests(&text)));
    }
    out
}

/// The text before a file's `#[cfg(test)]` module: tests may reach anywhere.
fn without_tests(text: &str) -> String {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// The modules a file refers to: `crate::a::b` and `super::x` paths, resolved to the deepest
/// module that exists (`crate::engine::batch::run` is `engine::batch`).
fn references(
    name: &str,
    text: &str,
    known: &BTreeMap<String, (PathBuf, String)>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    // `super` of `a::b` (a file `a/b.rs`) is `a`; of `a` (a file `a/mod.rs`) the crate.
    let base_of_super = match name.rsplit_once("::") {
        Some((parent, _)) => parent.to_string(),
        None => "crate".to_string(),
    };
    let mut push = |segments: Vec<String>| {
        // The deepest known module among the path's prefixes.
        for n in (1..=segments.len()).rev() {
            let candidate = segments[..n].join("::");
            if known.contains_key(&candidate) && candidate != name {
                out.insert(candidate);
                return;
            }
        }
    };
    // Expand `use crate::{a, b::c}` groups one level: enough for this code base's imports.
    let mut paths: Vec<(String, String)> = Vec::new();
    for (root, rest) in [("crate::", "crate"), ("super::", "super")] {
        let mut from = 0;
        while let Some(i) = code[from..].find(root) {
            let at = from + i;
            let before = code[..at].chars().last().unwrap_or(' ');
            from = at + root.len();
            if before.is_alphanumeric() || before == '_' || before == ':' {
                continue;
            }
            let tail: String = code[from..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '{')
                .collect();
            if let Some(brace) = tail.find('{') {
                let head = tail[..brace].trim_end_matches("::").to_string();
                let close = code[from + brace..].find('}').map_or(0, |j| j);
                let group = &code[from + brace + 1..from + brace + close];
                for item in group.split(',') {
                    let item = item.trim().split(" as ").next().unwrap_or("").trim();
                    if item.is_empty() || item == "self" {
                        paths.push((rest.into(), head.clone()));
                    } else {
                        paths.push((rest.into(), format!("{head}::{item}")));
                    }
                }
            } else {
                paths.push((rest.into(), tail.trim_end_matches(':').to_string()));
            }
        }
    }
    for (root, path) in paths {
        let mut segments: Vec<String> = Vec::new();
        if root == "super" && base_of_super != "crate" {
            segments.extend(base_of_super.split("::").map(String::from));
        }
        segments.extend(path.split("::").filter(|s| !s.is_empty()).map(|s| {
            s.trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
                .to_string()
        }));
        push(segments);
    }
    out
}

/// The edges of the module graph that count: between two top-level modules, and between two
/// files of the same folder (siblings). A parent module and its own children may refer to each
/// other (a `mod.rs` re-exports its children, a child uses what its parent shares).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, (_, text)) in &known {
        if name == "crate" || name == "main" {
            continue;
        }
        for to in references(name, text, &known) {
            let (a, b) = (name.as_str(), to.as_str());
            let top = |m: &str| m.split("::").next().unwrap_or(m).to_string();
            let parent = |m: &str| m.rsplit_once("::").map(|(p, _)| p.to_string());
            if top(a) != top(b) {
                g.entry(top(a)).or_default().insert(top(b));
            } else if parent(a).is_some() && parent(a) == parent(b) {
                g.entry(a.to_string()).or_default().insert(b.to_string());
            }
        }
    }
    g
}

/// A cycle in `g`, when there is one.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, g, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_between_modules() {
    let g = graph();
    assert!(
        g.get("commands").is_some_and(|to| to.contains("engine")),
        "the graph is read wrongly: `commands` must refer to `engine`: {g:?}"
    );
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "import cycle: {} (a module above another may use it, not the other way round)",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    // What the check is for: two siblings that use each other, and two top-level modules.
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("pipeline::map".into())
        .or_default()
        .insert("pipeline::mask".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("pipeline::mask".into())
        .or_default()
        .insert("pipeline::map".into());
    assert!(find_cycle(&g).is_some());
}

#[test]
fn commands_are_glue() {
    for (name, (path, text)) in modules() {
        if !name.starts_with("commands::") {
            continue;
        }
        let lines = text.lines().count();
        assert!(
            lines <= 350,
            "`{}` has {lines} lines: a command file holds its flags, resolves them, calls one \
             domain function and prints; move the work to the room it belongs to",
            path.display()
        );
        for word in ["std::thread", "read_dir", "SELECT ", "conn.prepare"] {
            assert!(
                !text.contains(word),
                "`{}` uses `{word}`: threads, folder walks and SQL belong in the domain rooms",
                path.display()
            );
        }
    }
}

#[test]
fn only_the_ledger_names_ledger_tables() {
    for (name, (path, text)) in modules() {
        if name == "ledger" || name.starts_with("ledger::") {
            continue;
        }
        for word in [
            "SELECT ",
            "INSERT INTO",
            "CREATE TABLE",
            "DELETE FROM",
            "FROM files",
            "FROM runs",
        ] {
            assert!(
                !text.contains(word),
                "`{}` has SQL (`{word}`): ledger reads and writes belong in `src/ledger/`",
                path.display()
            );
        }
    }
}

#[test]
fn public_type_names_mean_one_thing() {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut twice = Vec::new();
    for (name, (_, text)) in modules() {
        for line in text.lines() {
            let line = line.trim_start();
            for kind in ["pub struct ", "pub enum ", "pub type ", "pub trait "] {
                let Some(rest) = line.strip_prefix(kind) else {
                    continue;
                };
                let ty: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if let Some(other) = seen.insert(ty.clone(), name.clone()) {
                    twice.push(format!("`{ty}` in `{other}` and `{name}`"));
                }
            }
        }
    }
    assert!(
        twice.is_empty(),
        "public types with the same name: {}",
        twice.join(", ")
    );
}
