//! `batchwin generate`: deterministic synthetic days.

use crate::util::{Dir, generate, tree_hashes};

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let d = Dir::new();
    for (out, seed) in [("a", "42"), ("b", "42"), ("c", "43")] {
        generate(&d, out, "9", "5000", &["--seed", seed]);
    }
    let a = tree_hashes(&d.path("a"), &|_| false);
    assert_eq!(
        a.len(),
        9 + 3,
        "9 files, batchwin.toml, mask.key, expected.json"
    );
    assert_eq!(a, tree_hashes(&d.path("b"), &|_| false));
    assert_ne!(a, tree_hashes(&d.path("c"), &|_| false));
}

#[test]
fn expected_json_adds_up_and_covers_every_format() {
    let d = Dir::new();
    generate(&d, "day", "16", "40000", &[]);
    let e: serde_json::Value = serde_json::from_str(&d.read("day/expected.json")).unwrap();
    let files = e["per_file"].as_array().unwrap();
    assert_eq!(files.len(), 16);
    assert_eq!(e["records"], 40000);
    let sum: u64 = files.iter().map(|f| f["records"].as_u64().unwrap()).sum();
    assert_eq!(sum, 40000);
    let invalid: u64 = files.iter().map(|f| f["invalid"].as_u64().unwrap()).sum();
    assert_eq!(e["invalid"].as_u64().unwrap(), invalid);
    // About 2% invalid, exactly round(records * 0.02) per file.
    for f in files {
        let n = f["records"].as_u64().unwrap();
        assert_eq!(
            f["invalid"].as_u64().unwrap(),
            ((n as f64) * 0.02).round() as u64
        );
        let reasons: u64 = f["reasons"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(reasons, f["invalid"].as_u64().unwrap());
        assert!(
            d.path(&format!("day/{}", f["path"].as_str().unwrap()))
                .is_file()
        );
    }
    let formats: std::collections::BTreeSet<&str> = files
        .iter()
        .map(|f| f["format"].as_str().unwrap())
        .collect();
    assert_eq!(
        formats.into_iter().collect::<Vec<_>>(),
        ["csv", "fixed", "jsonl", "xml"]
    );
}
