//! Inputs that must never crash: each gives a clean reject with its line and reason, or a clear
//! error that fails the file, and the run carries on.

use crate::util::{Dir, plan_json, stderr, stdout};

/// One vendor per format, every record kept unless it cannot be read.
const CONFIG: &str = r#"
[[vendor]]
id = "C"
skip_limit = "100%"
[vendor.input]
format = "csv"
header = true
[[vendor.fields]]
name = "id"
type = "integer"
required = true
[[vendor.fields]]
name = "name"
[vendor.output]
format = "csv"

[[vendor]]
id = "J"
skip_limit = "100%"
[vendor.input]
format = "jsonl"
[[vendor.fields]]
name = "id"
type = "integer"
[[vendor.fields]]
name = "name"
source = "a.b"
[vendor.output]
format = "jsonl"

[[vendor]]
id = "X"
skip_limit = "100%"
[vendor.input]
format = "xml"
record = "r"
[[vendor.fields]]
name = "id"
type = "integer"
[[vendor.fields]]
name = "name"
[vendor.output]
format = "xml"

[[vendor]]
id = "F"
skip_limit = "100%"
[vendor.input]
format = "fixed"
[[vendor.fields]]
name = "id"
type = "integer"
start = 0
width = 4
[[vendor.fields]]
name = "name"
start = 4
width = 6
[vendor.output]
format = "fixed"
"#;

struct Outcome {
    code: i32,
    stdout: String,
    rejects: Vec<serde_json::Value>,
}

fn process(vendor: &str, name: &str, bytes: &[u8]) -> Outcome {
    let d = Dir::new();
    d.write("c.toml", CONFIG);
    d.write(name, bytes);
    let o = d
        .cmd()
        .args([
            "process", "--config", "c.toml", "--vendor", vendor, "--input", name, "--out", "out",
        ])
        .args(["--date", "2026-11-29"])
        .output()
        .expect("batchwin");
    let rejects = std::fs::read_dir(d.path("out"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".rejects."))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).expect("reject line is JSON"))
                .collect::<Vec<_>>()
        })
        .collect();
    Outcome {
        code: o.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        rejects,
    }
}

/// (line, rule) of each reject.
fn rejected(o: &Outcome) -> Vec<(u64, String)> {
    o.rejects
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["errors"][0]["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn invalid_utf8_is_rejected_with_its_column() {
    let o = process("C", "a.csv", b"id,name\n1,ok\n2,bad\xff\xfe\n3,x\n");
    assert_eq!(o.code, 0);
    assert_eq!(rejected(&o), [(3, "utf8".to_string())]);
    assert!(
        o.rejects[0]["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("`name`")
    );
}

#[test]
fn a_nul_byte_in_a_field_is_data_and_in_a_header_an_error() {
    let o = process("C", "a.csv", b"id,name\n1,a\x00b\n2,c\n");
    assert_eq!(
        (o.code, o.rejects.len()),
        (0, 0),
        "NUL is valid UTF-8 and kept as data"
    );
    let o = process("C", "a.csv", b"id,na\x00me\n1,a\n");
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("not a text CSV file"), "{}", o.stdout);
}

#[test]
fn an_unterminated_quote_on_the_last_line_is_one_reject_and_one_that_swallows_records_fails() {
    let o = process("C", "a.csv", b"id,name\n1,ok\n2,\"unterminated\n\n");
    assert_eq!(o.code, 0);
    assert_eq!(rejected(&o), [(3, "quote".to_string())]);
    // The rows after it would be one record with it: the file fails, its reject kept.
    let rows: String = (3..1000).map(|i| format!("{i},c\n")).collect();
    let o = process(
        "C",
        "a.csv",
        format!("id,name\n1,ok\n2,\"unterminated\n{rows}").as_bytes(),
    );
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stdout.contains("line 3")
            && o.stdout
                .contains("the 997 lines with content after it cannot be read"),
        "{}",
        o.stdout
    );
    assert_eq!(rejected(&o), [(3, "quote".to_string())]);
}

#[test]
fn an_xml_record_left_open_is_one_reject_and_the_records_after_it_are_read() {
    let records: String = (1..=1000)
        .map(|i| match i {
            2 => "<r><id>2</id></rr>\n".to_string(),
            i => format!("<r><id>{i}</id></r>\n"),
        })
        .collect();
    let o = process("X", "a.xml", format!("<rs>\n{records}</rs>\n").as_bytes());
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stdout.contains("1,000 in, 999 out, 1 rejected"),
        "{}",
        o.stdout
    );
    assert_eq!(rejected(&o), [(3, "xml".to_string())]);
}

#[test]
fn an_xml_file_without_a_record_element_fails() {
    for (data, says) in [
        (
            &b"<rs>\n<R><id>1</id></R>\n</rs>\n"[..],
            "no `<r>` record element in the root element `<rs>`, which holds `<R>`",
        ),
        (
            b"<r><id>1</id></r>\n",
            "the root element is the record element `<r>`",
        ),
    ] {
        let o = process("X", "a.xml", data);
        assert_eq!(o.code, 1, "{}", o.stdout);
        assert!(o.stdout.contains(says), "{}", o.stdout);
    }
    let o = process("X", "a.xml", b"<rs>\n</rs>\n");
    assert_eq!((o.code, o.rejects.len()), (0, 0), "{}", o.stdout);
}

#[test]
fn duplicate_or_missing_header_columns_fail_the_file_with_a_reason() {
    let o = process("C", "a.csv", b"id,id\n1,2\n");
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("repeats column `id`"), "{}", o.stdout);
    let o = process("C", "a.csv", b"id\n1\n");
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.contains("line 1: the header has no column `name`"),
        "{}",
        o.stdout
    );
}

#[test]
fn ragged_rows_are_rejected() {
    let o = process("C", "a.csv", b"id,name\n1,a,extra\n2\n3,c\n");
    assert_eq!(o.code, 0);
    assert_eq!(
        rejected(&o),
        [(2, "columns".to_string()), (3, "columns".to_string())]
    );
}

#[test]
fn a_100_mb_field_is_read() {
    let mut big = b"id,name\n1,".to_vec();
    big.extend(std::iter::repeat_n(b'x', 100_000_000));
    big.extend_from_slice(b"\n2,ok\n");
    let o = process("C", "a.csv", &big);
    assert_eq!((o.code, o.rejects.len()), (0, 0), "{}", o.stdout);
    assert!(o.stdout.contains("2 in, 2 out"), "{}", o.stdout);
}

#[test]
fn deeply_nested_json_and_lines_that_are_not_json_are_rejected() {
    let deep = format!(
        "{{\"id\":1,\"a\":{{\"b\":\"x\"}}}}\n{}{}\nnot json\n{{\"id\":2}}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let o = process("J", "a.jsonl", deep.as_bytes());
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(
        rejected(&o),
        [(2, "json".to_string()), (3, "json".to_string())]
    );
    let nested = format!("{}1{}\n", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    // Values are found by path without building the whole tree: 10,000 levels under a field
    // the vendor does not read cost nothing, and nothing overflows.
    let o = process("J", "b.jsonl", nested.as_bytes());
    assert_eq!((o.code, o.rejects.len()), (0, 0), "{}", o.stdout);
    assert!(o.stdout.contains("1 in, 1 out"), "{}", o.stdout);
}

#[test]
fn entity_bombs_and_external_entities_are_refused_never_expanded() {
    let bomb = b"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>\n<rs><r><id>1</id><name>&lol2;</name></r></rs>\n";
    let o = process("X", "a.xml", bomb);
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.contains("entities are never expanded"),
        "{}",
        o.stdout
    );
    let xxe = b"<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<rs><r><id>1</id><name>&xxe;</name></r></rs>\n";
    let o = process("X", "b.xml", xxe);
    assert_eq!(o.code, 1);
    assert!(
        !o.stdout.contains("root:"),
        "the external entity was not read"
    );
}

#[test]
fn fixed_width_lines_of_the_wrong_length_are_rejected() {
    let o = process("F", "a.dat", b"0001abcdef\n02\n0003ghijkl\n");
    assert_eq!(o.code, 0);
    assert_eq!(rejected(&o), [(2, "length".to_string())]);
}

#[test]
fn an_empty_file_is_zero_records() {
    for (v, name) in [("C", "a.csv"), ("J", "a.jsonl"), ("F", "a.dat")] {
        let o = process(v, name, b"");
        assert_eq!((o.code, o.rejects.len()), (0, 0), "{v}: {}", o.stdout);
        assert!(o.stdout.contains("0 in, 0 out"), "{v}: {}", o.stdout);
    }
}

#[test]
fn a_file_in_another_format_fails_or_is_rejected_clearly() {
    let o = process("X", "a.xml", b"id,name\n1,x\n");
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("not XML"), "{}", o.stdout);
    let o = process("J", "a.jsonl", b"id,name\n1,x\n");
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(
        rejected(&o),
        [(1, "json".to_string()), (2, "json".to_string())]
    );
}

/// A file too large for one unit whose framing fails is planned whole, not cut: the plan goes
/// on for the rest of the day, and the slice fails that file alone, with the reason.
#[test]
fn a_large_file_its_framing_cannot_read_through_is_planned_whole_and_fails_alone() {
    let d = Dir::new();
    d.write("c.toml", CONFIG);
    let rows: String = (3..20_000).map(|i| format!("{i},c\n")).collect();
    d.write(
        "in/C/broken.csv",
        format!("id,name\n1,ok\n2,\"unterminated\n{rows}"),
    );
    d.write("in/C/good.csv", format!("id,name\n{rows}"));
    let o = d
        .cmd()
        .args([
            "plan", "--config", "c.toml", "--scan", "in", "--slices", "1",
        ])
        .args(["--split-bytes", "20000", "--date", "2026-11-29"])
        .assert()
        .success();
    let err = stderr(&o);
    assert!(err.contains("broken.csv` is planned whole"), "{err}");
    let plan = plan_json(&d, "plan.json");
    let units = plan["slices"][0]["units"].as_array().unwrap();
    let whole: Vec<bool> = units
        .iter()
        .filter(|u| u["location"].as_str().unwrap().ends_with("broken.csv"))
        .map(|u| u["part"].is_null())
        .collect();
    assert_eq!(whole, [true], "{plan}");
    assert!(units.len() > 2, "the good file is cut: {plan}");
    let o = d
        .cmd()
        .args(["process", "--config", "c.toml", "--plan", "plan.json"])
        .args(["--slice", "0", "--out", "run"])
        .assert()
        .code(1);
    let out = stdout(&o);
    assert!(
        out.contains("broken.csv") && out.contains("cannot be read as records"),
        "{out}"
    );
}

/// A symbolic link in a vendor's folder is not followed by `manifest`, `plan --scan` or
/// `process --inbound` (a vendor's link must not make batchwin read a file of the machine's),
/// unless `[transfer] symlinks = "follow-inside"` and it leads to a file in the same folder.
#[cfg(unix)]
#[test]
fn links_in_a_local_inbound_folder_are_skipped_unless_they_stay_inside() {
    let d = Dir::new();
    d.write("c.toml", CONFIG);
    d.write("in/C/a.csv", "id,name\n1,x\n");
    d.write("secret.csv", "id,name\n7,secret\n");
    std::os::unix::fs::symlink(d.path("secret.csv"), d.path("in/C/out.csv")).unwrap();
    std::os::unix::fs::symlink(d.path("in/C/a.csv"), d.path("in/C/same.csv")).unwrap();
    let listed = |d: &Dir| {
        let o = d
            .cmd()
            .args(["manifest", "--config", "c.toml", "in", "--out", "m.jsonl"])
            .assert()
            .success();
        let names: Vec<String> = d
            .read("m.jsonl")
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["location"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        (names, stderr(&o))
    };
    let (names, err) = listed(&d);
    assert_eq!(names, ["a.csv"]);
    assert!(
        err.contains("out.csv: skipped: a symbolic link, not followed"),
        "{err}"
    );
    assert!(err.contains("same.csv: skipped"), "{err}");
    // process --inbound reads the same listing: the secret is in no output.
    d.cmd()
        .args([
            "process",
            "--config",
            "c.toml",
            "--inbound",
            "in",
            "--out",
            "run",
        ])
        .args(["--date", "2026-11-29", "-q"])
        .assert()
        .success();
    assert!(!d.path("run/C/out.out.csv").exists() && d.path("run/C/a.out.csv").exists());
    d.write(
        "c.toml",
        format!("[transfer]\nsymlinks = \"follow-inside\"\n{CONFIG}"),
    );
    let (names, err) = listed(&d);
    assert_eq!(names, ["a.csv", "same.csv"]);
    assert!(
        err.contains(
            "out.csv: skipped: a symbolic link that does not lead to a file in its vendor's folder"
        ),
        "{err}"
    );
}
