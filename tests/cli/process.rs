//! `batchwin process`: one vendor file reproduced locally, and a whole generated day.

use predicates::prelude::*;

use crate::util::{DATE, Dir, generate, process_day_command, tree_hashes};

/// A small CSV vendor exercising every kind of check, mapping and mask.
pub const ACME: &str = r#"
[[vendor]]
id = "ACME"
name = "Acme Corp"
priority = "high"
sla = "2h"
skip_limit = "75%"

[vendor.input]
format = "csv"
delimiter = ","
header = true

[[vendor.fields]]
name = "id"
type = "integer"
required = true

[[vendor.fields]]
name = "email"
source = "E-mail"
pattern = "[^@]+@[^@]+"

[[vendor.fields]]
name = "amount"
type = "decimal"
min = 0

[[vendor.fields]]
name = "status"
values = ["open", "closed"]

[[vendor.fields]]
name = "start_date"
type = "date"

[[vendor.fields]]
name = "end_date"
type = "date"

[[vendor.fields]]
name = "closed_at"
type = "timestamp"

[[vendor.fields]]
name = "country"

[[vendor.rules]]
name = "end_after_start"
check = "end_date >= start_date"

[[vendor.rules]]
name = "closed_needs_closed_at"
when = "status == 'closed'"
require = ["closed_at"]

[vendor.lookups.countries]
US = "United States"
FR = "France"

[vendor.output]
format = "csv"
delimiter = "|"
file_name = "{vendor}_{date}_{stem}.csv"

[[vendor.output.fields]]
name = "ID"
from = "id"

[[vendor.output.fields]]
name = "email_token"
from = "email"
mask = "hash"
hash_length = 16

[[vendor.output.fields]]
name = "domain"
from = "email"
mask = "email_domain"

[[vendor.output.fields]]
name = "amount"
decimals = 2
decimal_separator = ","

[[vendor.output.fields]]
name = "start"
from = "start_date"
date_format = "%d/%m/%Y"

[[vendor.output.fields]]
name = "country"
transform = ["trim", "upper"]
lookup = "countries"
lookup_default = "Unknown"

[[vendor.output.fields]]
name = "label"
template = "{status}-{id}"

[[vendor.output.fields]]
name = "feed"
value = "acme"
"#;

const ACME_INPUT: &str = "id,E-mail,amount,status,start_date,end_date,closed_at,country\n\
1,ann@example.com,12.5,open,2026-01-02,2026-02-01,, us \n\
2,bob@example.org,7,closed,2026-01-02,,2026-01-05T10:00:00Z,fr\n\
x3,carl@example.com,1,open,2026-01-02,,,US\n\
4,dan@example.com,-1,open,2026-01-02,,,US\n\
5,eve@example.com,1,closed,2026-01-02,,,US\n\
6,fay@example.com,1,open,2026-03-02,2026-01-01,,DE\n\
7,\"gus@example.com\",\"1000.005\",open,2026-01-02,,,\"U\nS\"\n\
8,hal@example.com,1,open\n";

#[test]
fn one_vendor_file_reproduced_locally() {
    let d = Dir::new();
    d.write("batchwin.toml", ACME);
    d.write("in/acme_0001.csv", ACME_INPUT);
    d.cmd()
        .args([
            "process",
            "--vendor",
            "ACME",
            "--input",
            "in/acme_0001.csv",
            "--out",
            "out",
            "--date",
            "2026-11-29",
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "files      1 (1 succeeded, 0 failed)",
        ))
        .stdout(predicate::str::contains(
            "records    8 in, 3 out, 5 rejected",
        ));

    // Output: mapped, masked, in input order. The hash is HMAC-SHA-256 under the test key
    // (Python: hmac.new(key, b"ann@example.com", hashlib.sha256).hexdigest()[:16]).
    let out = d.read("out/ACME_2026-11-29_acme_0001.csv");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "ID|email_token|domain|amount|start|country|label|feed"
    );
    assert_eq!(lines.len(), 4, "{out}");
    let ann = lines[1].split('|').collect::<Vec<_>>();
    assert_eq!(ann[0], "1");
    assert_eq!(ann[1].len(), 16);
    assert_eq!(
        &ann[2..],
        [
            "***@example.com",
            "12,50",
            "02/01/2026",
            "United States",
            "open-1",
            "acme"
        ]
    );
    assert!(
        lines[2].ends_with("|7,00|02/01/2026|France|closed-2|acme"),
        "{}",
        lines[2]
    );
    // A quoted newline stays inside its record; the lookup default applies.
    assert!(lines[3].starts_with("7|"), "{}", lines[3]);
    assert!(
        lines[3].ends_with("|1000,01|02/01/2026|Unknown|open-7|acme"),
        "{}",
        lines[3]
    );

    // Rejects: one JSON line each, with record number, line, field, rule and reason.
    let rejects = d.read("out/acme_0001.rejects.jsonl");
    let rows: Vec<serde_json::Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(u64, u64, String)> = rows
        .iter()
        .map(|r| {
            let e = &r["errors"][0];
            let key = match e["field"].as_str() {
                Some(f) => format!("{f}.{}", e["rule"].as_str().unwrap()),
                None => e["rule"].as_str().unwrap().to_string(),
            };
            (
                r["record"].as_u64().unwrap(),
                r["line"].as_u64().unwrap(),
                key,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, 4, "id.type".to_string()),
            (4, 5, "amount.min".to_string()),
            (5, 6, "closed_needs_closed_at".to_string()),
            (6, 7, "end_after_start".to_string()),
            (8, 10, "columns".to_string()),
        ]
    );
    // The default `reject_raw = "masked"`: the e-mail, which the output hashes, is hashed.
    assert_eq!(
        rows[0]["raw"],
        format!("x3,{},1,open,2026-01-02,,,US", token("carl@example.com"))
    );
    assert_eq!(
        rows[0]["errors"][0]["reason"],
        "field `id`: \"x3\" is not an integer"
    );
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(d.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

/// The first 16 hex characters of HMAC-SHA-256 under the test key: what `mask = "hash"` with
/// `hash_length = 16` writes, computed here independently of batchwin's masking code.
fn token(value: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(crate::util::MASK_KEY.as_bytes())
        .expect("any key length");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())[..16].to_string()
}

/// Rejects under each `reject_raw` setting: `clear` keeps the record's text as read; `masked`
/// (the default) hides what the output masks (here the e-mail, hashed) in the text and in the
/// reasons, and writes no text when the value cannot be hidden for sure (a record that could
/// not be read, a value unescaped when read, a value that occurs twice); `omit` writes no text.
/// The output file is the same under all three.
#[test]
fn reject_files_under_each_reject_raw_setting() {
    let input = "id,E-mail,amount,status,start_date,end_date,closed_at,country\n\
        1,ann@example.com,12.5,open,2026-01-02,2026-02-01,, us \n\
        x3,carl@example.com,1,open,2026-01-02,,,US\n\
        10,nomail,1,open,2026-01-02,,,US\n\
        11,\"q\"\"x@example.com\",-1,open,2026-01-02,,,US\n\
        12,dup@example.com,-1,open,2026-01-02,,,dup@example.com\n\
        13,hal@example.com,1,open\n";
    let lines: Vec<&str> = input.lines().collect();
    let mut outputs = Vec::new();
    for setting in [None, Some("clear"), Some("masked"), Some("omit")] {
        let d = Dir::new();
        // Five rejects of six records: no skip limit here.
        let mut config = ACME.replace("skip_limit = \"75%\"\n", "");
        if let Some(s) = setting {
            config = config.replace(
                "file_name = \"{vendor}_{date}_{stem}.csv\"",
                &format!("file_name = \"{{vendor}}_{{date}}_{{stem}}.csv\"\nreject_raw = \"{s}\""),
            );
        }
        d.write("batchwin.toml", config);
        d.write("in/acme_0001.csv", input);
        d.cmd()
            .args(["process", "--vendor", "ACME", "--input", "in/acme_0001.csv"])
            .args(["--out", "out", "--date", "2026-11-29"])
            .assert()
            .code(0)
            .stdout(predicate::str::contains(
                "records    6 in, 1 out, 5 rejected",
            ));
        outputs.push(d.read("out/ACME_2026-11-29_acme_0001.csv"));
        let rejects = d.read("out/acme_0001.rejects.jsonl");
        let rows: Vec<serde_json::Value> = rejects
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(rows.len(), 5, "{rejects}");
        let raw: Vec<Option<&str>> = rows.iter().map(|r| r["raw"].as_str()).collect();
        let omitted: Vec<Option<&str>> = rows.iter().map(|r| r["raw_omitted"].as_str()).collect();
        let nomail_reason = rows[1]["errors"][0]["reason"].as_str().expect("a reason");
        match setting {
            Some("clear") => {
                assert_eq!(raw, lines[2..].iter().map(|l| Some(*l)).collect::<Vec<_>>());
                assert_eq!(omitted, [None; 5]);
                assert_eq!(
                    nomail_reason,
                    "field `email`: \"nomail\" does not match pattern [^@]+@[^@]+"
                );
            }
            None | Some("masked") => {
                assert_eq!(
                    raw,
                    [
                        Some(
                            format!("x3,{},1,open,2026-01-02,,,US", token("carl@example.com"))
                                .as_str()
                        ),
                        Some(format!("10,{},1,open,2026-01-02,,,US", token("nomail")).as_str()),
                        None,
                        None,
                        None,
                    ]
                );
                assert_eq!(
                    omitted,
                    [
                        None,
                        None,
                        Some("unlocated"),
                        Some("repeated"),
                        Some("unparsed")
                    ]
                );
                assert_eq!(
                    nomail_reason,
                    format!(
                        "field `email`: \"{}\" does not match pattern [^@]+@[^@]+",
                        token("nomail")
                    )
                );
            }
            _ => {
                assert_eq!(raw, [None; 5]);
                assert_eq!(omitted, [Some("configured"); 5]);
                assert!(!nomail_reason.contains("nomail"), "{nomail_reason}");
            }
        }
        // Whatever the setting, no value is written that is not in the record, and only
        // `clear` writes the e-mails.
        for (row, line) in rows.iter().zip(&lines[2..]) {
            assert_eq!(
                row.to_string().contains("@example.com"),
                setting == Some("clear") && line.contains("@example.com"),
                "{row} ({line})"
            );
        }
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:?}");
}

#[test]
fn skip_limit_exceeded_fails_the_file_and_keeps_no_output() {
    let d = Dir::new();
    d.write(
        "batchwin.toml",
        ACME.replace("skip_limit = \"75%\"", "skip_limit = 2"),
    );
    d.write("in/acme.csv", ACME_INPUT);
    d.cmd()
        .args([
            "process",
            "--vendor",
            "ACME",
            "--input",
            "in/acme.csv",
            "--out",
            "out",
            "--date",
            "2026-11-29",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "5 of 8 records rejected, over the skip limit of 2 records",
        ));
    assert!(!d.path("out/ACME_2026-11-29_acme.csv").exists());
    assert_eq!(d.read("out/acme.rejects.jsonl").lines().count(), 5);

    // The file sent again with its first two records only, which pass: it has an output.
    let process = |d: &Dir| {
        d.cmd()
            .args(["process", "--vendor", "ACME", "--input", "in/acme.csv"])
            .args(["--out", "out", "--date", "2026-11-29"])
            .assert()
    };
    let good: String = ACME_INPUT
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    d.write("in/acme.csv", &good);
    process(&d).success();
    assert_eq!(d.read("out/ACME_2026-11-29_acme.csv").lines().count(), 3);
    // Sent a third time, over the skip limit again: the output of the run before is gone too.
    d.write("in/acme.csv", ACME_INPUT);
    let o = process(&d).code(1);
    assert!(!d.path("out/ACME_2026-11-29_acme.csv").exists());
    assert!(
        crate::util::stderr(&o).contains("the output an earlier run made of this file"),
        "{}",
        crate::util::stderr(&o)
    );
}

#[test]
fn unknown_vendor_and_missing_input_are_usage_errors() {
    let d = Dir::new();
    d.write("batchwin.toml", ACME);
    d.cmd()
        .args([
            "process", "--vendor", "NOPE", "--input", "x.csv", "--out", "out",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown vendor `NOPE`"));
    d.cmd()
        .args([
            "process",
            "--vendor",
            "ACME",
            "--input",
            "missing.csv",
            "--out",
            "out",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`missing.csv` is not a readable file",
        ));
}

/// Every bad-input case gives its documented result: a reject with a reason, or a failed file
/// with a clear error; never a crash.
#[test]
fn bad_inputs_give_rejects_or_clear_errors() {
    let d = Dir::new();
    d.write("batchwin.toml", ACME.replace("skip_limit = \"75%\"\n", ""));
    let header = "id,E-mail,amount,status,start_date,end_date,closed_at,country\n";
    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        (
            "utf8",
            [header.as_bytes(), b"1,a\xff@x.com,1,open,2026-01-02,,,US\n"].concat(),
            0,
            "utf8",
        ),
        (
            "nul",
            [header.as_bytes(), b"1,a\0@x.com,1,open,2026-01-02,,,US\n"].concat(),
            0,
            "",
        ),
        (
            "unterminated",
            [header.as_bytes(), b"1,\"a@x.com,1,open,2026-01-02,,,US\n"].concat(),
            0,
            "quote",
        ),
        (
            "ragged",
            [header.as_bytes(), b"1,a@x.com,1\n"].concat(),
            0,
            "columns",
        ),
        ("empty", Vec::new(), 0, ""),
        ("missing_column", b"id,amount\n1,2\n".to_vec(), 1, "E-mail"),
        (
            "binary",
            vec![0xff, 0xfe, 0x00, 0x01, 0x02, b'\n', 0x80, 0x81],
            1,
            "",
        ),
    ];
    for (name, bytes, code, needle) in cases {
        let input = format!("in/{name}.csv");
        d.write(&input, &bytes);
        let assert = d
            .cmd()
            .args([
                "process",
                "--vendor",
                "ACME",
                "--input",
                &input,
                "--out",
                &format!("out-{name}"),
            ])
            .assert();
        let out = assert.get_output();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(code), "{name}: {text}");
        assert!(!text.contains("panicked"), "{name}: {text}");
        if !needle.is_empty() {
            let rejects =
                std::fs::read_to_string(d.path(&format!("out-{name}/{name}.rejects.jsonl")))
                    .unwrap_or_default();
            assert!(
                text.contains(needle) || rejects.contains(needle),
                "{name}: expected {needle:?} in\n{text}\n{rejects}"
            );
        }
    }
}

#[test]
fn outputs_are_identical_whatever_the_thread_count_and_chunk_size() {
    let d = Dir::new();
    generate(&d, "day", "12", "30000", &["--seed", "7"]);
    let mut trees = Vec::new();
    for (threads, chunk) in [("1", "1048576"), ("2", "1024"), ("2", "65536")] {
        let out = format!("out-{threads}-{chunk}");
        process_day_command(&d, &out, DATE)
            .env("RAYON_NUM_THREADS", threads)
            .args(["--chunk-bytes", chunk])
            .assert()
            .code(0);
        trees.push(tree_hashes(&d.path(&out), &|p| {
            p.extension().is_some_and(|e| e == "duckdb" || e == "wal")
                || crate::util::is_status_document(p)
        }));
    }
    assert_eq!(
        trees[0].len(),
        24,
        "12 outputs and 12 reject files: {:?}",
        trees[0].keys()
    );
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
}

/// `formula_guard = true` writes a `'` before CSV output values a spreadsheet would run as a
/// formula; without it the same values are written as they were read.
#[test]
fn formula_guard_neutralises_formula_like_csv_values() {
    let config = "[[vendor]]\nid = \"F\"\n[vendor.input]\nformat = \"csv\"\n\
        [[vendor.fields]]\nname = \"id\"\n[[vendor.fields]]\nname = \"note\"\n\
        [vendor.output]\nformat = \"csv\"\nfile_name = \"{stem}.out.csv\"\n";
    let input = "id,note\n1,=HYPERLINK(\"http://x.example\")\n2,-10.00\n3,plain\n4,@SUM(A1)\n";
    let mut outputs = Vec::new();
    for guard in ["", "formula_guard = true\n"] {
        let d = Dir::new();
        d.write("batchwin.toml", format!("{config}{guard}"));
        d.write("in/f.csv", input);
        d.cmd()
            .args([
                "process", "--vendor", "F", "--input", "in/f.csv", "--out", "out",
            ])
            .assert()
            .code(0);
        outputs.push(d.read("out/f.out.csv"));
    }
    assert_eq!(
        outputs[0],
        "id,note\n1,\"=HYPERLINK(\"\"http://x.example\"\")\"\n2,-10.00\n3,plain\n4,@SUM(A1)\n"
    );
    assert_eq!(
        outputs[1],
        "id,note\n1,\"'=HYPERLINK(\"\"http://x.example\"\")\"\n2,'-10.00\n3,plain\n4,'@SUM(A1)\n"
    );
}

/// JSON Lines in and out: a key holding a dot read by a JSON Pointer `source`, a huge number
/// where a path would go deeper, and typed output (numbers with their own digits, booleans,
/// strings, `null` or left out), as docs/config.md says.
#[test]
fn jsonl_typed_output_and_pointer_paths() {
    let d = Dir::new();
    let config = |values: &str, empty: &str| {
        format!(
            r#"
[[vendor]]
id = "J"
name = "JSON vendor"

[vendor.input]
format = "jsonl"

[[vendor.fields]]
name = "id"
type = "integer"

[[vendor.fields]]
name = "amount"
type = "decimal"

[[vendor.fields]]
name = "ok"
type = "boolean"

[[vendor.fields]]
name = "mx"
source = "/m.x"

[[vendor.fields]]
name = "deep"
source = "m.x"

[vendor.output]
format = "jsonl"
json_values = "{values}"
json_empty = "{empty}"

[[vendor.output.fields]]
name = "id"

[[vendor.output.fields]]
name = "money.amount"
from = "amount"

[[vendor.output.fields]]
name = "money.shown"
from = "amount"
decimals = 2
thousands_separator = ","

[[vendor.output.fields]]
name = "ok"

[[vendor.output.fields]]
name = "mx"

[[vendor.output.fields]]
name = "deep"
"#
        )
    };
    d.write(
        "in/j.jsonl",
        concat!(
            "{\"id\":\"+007\",\"amount\":\"1234.5\",\"ok\":\"Y\",\"m.x\":\"dot\",\"m\":1e400}\n",
            "{\"id\":8,\"amount\":\"-0.50\",\"ok\":false,\"m\":{\"x\":12.50}}\n",
            "{\"id\":9}\n",
        ),
    );
    let run = |values: &str, empty: &str| {
        d.write("batchwin.toml", config(values, empty));
        let out = format!("out-{values}-{empty}");
        d.cmd()
            .args([
                "process",
                "--vendor",
                "J",
                "--input",
                "in/j.jsonl",
                "--out",
                &out,
            ])
            .assert()
            .success();
        d.read(&format!("{out}/j.out.jsonl"))
    };
    assert_eq!(
        run("typed", "null"),
        concat!(
            "{\"id\":7,\"money\":{\"amount\":1234.5,\"shown\":\"1,234.50\"},\"ok\":true,\"mx\":\"dot\",\"deep\":null}\n",
            "{\"id\":8,\"money\":{\"amount\":-0.50,\"shown\":\"-0.50\"},\"ok\":false,\"mx\":null,\"deep\":\"12.50\"}\n",
            "{\"id\":9,\"money\":{\"amount\":null,\"shown\":null},\"ok\":null,\"mx\":null,\"deep\":null}\n",
        )
    );
    assert_eq!(
        run("typed", "omit"),
        concat!(
            "{\"id\":7,\"money\":{\"amount\":1234.5,\"shown\":\"1,234.50\"},\"ok\":true,\"mx\":\"dot\"}\n",
            "{\"id\":8,\"money\":{\"amount\":-0.50,\"shown\":\"-0.50\"},\"ok\":false,\"deep\":\"12.50\"}\n",
            "{\"id\":9}\n",
        )
    );
    assert_eq!(
        run("strings", "null"),
        concat!(
            "{\"id\":\"+007\",\"money\":{\"amount\":\"1234.5\",\"shown\":\"1,234.50\"},\"ok\":\"Y\",\"mx\":\"dot\",\"deep\":null}\n",
            "{\"id\":\"8\",\"money\":{\"amount\":\"-0.50\",\"shown\":\"-0.50\"},\"ok\":\"false\",\"mx\":null,\"deep\":\"12.50\"}\n",
            "{\"id\":\"9\",\"money\":{\"amount\":null,\"shown\":null},\"ok\":null,\"mx\":null,\"deep\":null}\n",
        )
    );
    // A pointer with a `~` that is not an escape names the key.
    d.write(
        "batchwin.toml",
        config("typed", "null").replace("source = \"/m.x\"", "source = \"/m~x\""),
    );
    d.cmd()
        .args([
            "process",
            "--vendor",
            "J",
            "--input",
            "in/j.jsonl",
            "--out",
            "bad",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("source").and(predicate::str::contains("~0")));
}

/// A masked field's key given twice in a JSON Lines record: the reader takes the last value,
/// the text still holds the other, so the masked reject line leaves the text out
/// (`raw_omitted: repeated`) rather than show the value the output hides.
#[test]
fn a_repeated_masked_key_never_reaches_the_reject_file() {
    let d = Dir::new();
    d.write(
        "batchwin.toml",
        r#"
[[vendor]]
id = "J"
name = "JSON vendor"

[vendor.input]
format = "jsonl"

[[vendor.fields]]
name = "card"

[[vendor.fields]]
name = "amount"
type = "integer"

[vendor.output]
format = "jsonl"

[[vendor.output.fields]]
name = "card"
mask = "redact"

[[vendor.output.fields]]
name = "amount"
"#,
    );
    d.write(
        "in/j.jsonl",
        concat!(
            "{\"card\":\"4111111111111111\",\"card\":\"4222222222222222\",\"amount\":\"bad\"}\n",
            "{\"card\":\"4333333333333333\",\"amount\":\"bad\"}\n",
        ),
    );
    d.cmd()
        .args([
            "process",
            "--vendor",
            "J",
            "--input",
            "in/j.jsonl",
            "--out",
            "out",
        ])
        .assert()
        .success();
    let rejects = d.read("out/j.rejects.jsonl");
    assert!(
        !rejects.contains("4111") && !rejects.contains("4222") && !rejects.contains("4333"),
        "{rejects}"
    );
    let lines: Vec<serde_json::Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["raw_omitted"], "repeated", "{rejects}");
    assert!(
        lines[1]["raw"].as_str().is_some_and(|r| r.contains("***")),
        "{rejects}"
    );
}

/// An output that looks up a masked field through a transform: its lookup miss would quote
/// the transformed value, so the reason is withheld from the reject file.
#[test]
fn a_lookup_of_a_masked_value_is_not_quoted_in_rejects() {
    let d = Dir::new();
    d.write(
        "batchwin.toml",
        r#"
[[vendor]]
id = "M"
name = "Masked lookups"

[vendor.input]
format = "csv"

[[vendor.fields]]
name = "email"

[vendor.lookups.segments]
"ann@example.com" = "gold"

[vendor.output]
format = "csv"

[[vendor.output.fields]]
name = "email"
mask = "email_domain"

[[vendor.output.fields]]
name = "segment"
from = "email"
transform = ["lower"]
lookup = "segments"
"#,
    );
    d.write(
        "in/m.csv",
        "email\nAnn@Example.com\nBob.Secret@Example.com\n",
    );
    d.cmd()
        .args([
            "process", "--vendor", "M", "--input", "in/m.csv", "--out", "out",
        ])
        .assert()
        .success();
    let rejects = d.read("out/m.rejects.jsonl");
    assert_eq!(rejects.lines().count(), 1, "{rejects}");
    assert!(!rejects.to_lowercase().contains("bob.secret"), "{rejects}");
    assert!(rejects.contains("withheld"), "{rejects}");
}

/// On a terminal, the progress bar moves while one large file is processed, not only when it
/// ends: run under `script` (util-linux), which gives `process` a terminal, the bar is drawn
/// at several positions between nothing and the file's size, with the records counted so far.
#[test]
fn the_progress_bar_moves_within_one_large_file() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` command (util-linux) to give the run a terminal");
        return;
    }
    let d = Dir::new();
    generate(
        &d,
        "day",
        "1",
        "1000000",
        &["--vendors", "1", "--seed", "3"],
    );
    let input = std::fs::read_dir(d.path(&format!("day/inbound/{DATE}/V001")))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let exe = assert_cmd::cargo::cargo_bin("batchwin");
    let line = format!(
        "{} process --config day/batchwin.toml --vendor V001 --input {} --out out",
        exe.display(),
        input.display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-c", &line, "/dev/null"])
        .env("BATCHWIN_MASK_KEY", crate::util::MASK_KEY)
        .env("COLUMNS", "200")
        .current_dir(d.root())
        .output()
        .expect("run script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    let size = std::fs::metadata(&input).unwrap().len();
    let mut positions = std::collections::BTreeSet::new();
    let mut records = std::collections::BTreeSet::new();
    for l in text.lines() {
        // `{bytes}/{total_bytes}`, e.g. `24.00 MiB/191.44 MiB`, and `N records`.
        if let Some((done, _)) = l.split_once(" MiB/")
            && let Some(n) = done.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok())
        {
            positions.insert((n * 100.0) as u64);
        }
        if let Some((n, _)) = l.split_once(" records, ")
            && let Some(n) = n.rsplit(' ').next()
        {
            records.insert(n.replace(',', ""));
        }
    }
    let total_mib = size as f64 / (1 << 20) as f64;
    let between = positions
        .iter()
        .filter(|&&p| p > 0 && (p as f64) < total_mib * 100.0 - 1.0)
        .count();
    assert!(
        between >= 2 && records.len() >= 3,
        "the bar stood still: positions {positions:?}, records {records:?} in {text}"
    );
}
