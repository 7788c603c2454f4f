//! Configuration errors name the file, the line and the key, and exit with code 2.

use crate::process::ACME;
use crate::util::{Dir, redact};

/// Runs `process` with `config` and returns its stderr with the temp folder redacted.
fn error_for(config: &str) -> String {
    let d = Dir::new();
    d.write("batchwin.toml", config);
    d.write("in.csv", "id\n1\n");
    let out = d
        .cmd()
        .args([
            "process", "--vendor", "ACME", "--input", "in.csv", "--out", "out",
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    redact(&String::from_utf8_lossy(&out.stderr), &d)
}

#[test]
fn unknown_key() {
    let c = ACME.replace("pattern = \"[^@]+@[^@]+\"", "patern = \"[^@]+@[^@]+\"");
    insta::assert_snapshot!(error_for(&c));
}

#[test]
fn wrong_type() {
    let c = ACME.replace("header = true", "header = \"yes\"");
    insta::assert_snapshot!(error_for(&c));
}

#[test]
fn unknown_enum_value() {
    let c = ACME.replace("priority = \"high\"", "priority = \"urgent\"");
    insta::assert_snapshot!(error_for(&c));
}

#[test]
fn output_from_unknown_field() {
    let c = ACME.replace("from = \"start_date\"", "from = \"start_dat\"");
    insta::assert_snapshot!(error_for(&c));
}

/// A file that uses TOML 1.1 (an inline table over two lines, ending with a comma) is read,
/// and an error found when its vendor is built names the line of its key, not line 0.
#[test]
fn a_key_after_toml_1_1_syntax_is_located() {
    let c = "[[vendor]]\nid = \"ACME\"\ninput = { format = \"csv\",\n  delimiter = \",\", }\n\
             [[vendor.fields]]\nname = \"id\"\n[vendor.output]\nformat = \"csv\"\n\
             [[vendor.output.fields]]\nname = \"out\"\nfrom = \"nope\"\n";
    let err = error_for(c);
    assert!(
        err.contains("line 11, key `vendor[0].output.fields[0].from`: unknown input field `nope`"),
        "{err}"
    );
}

#[test]
fn rule_with_unknown_field() {
    let c = ACME.replace(
        "check = \"end_date >= start_date\"",
        "check = \"end_date >= begin_date\"",
    );
    insta::assert_snapshot!(error_for(&c));
}

#[test]
fn require_unknown_field() {
    let c = ACME.replace("require = [\"closed_at\"]", "require = [\"closed_on\"]");
    insta::assert_snapshot!(error_for(&c));
}

#[test]
fn unknown_lookup_table() {
    let c = ACME.replace("lookup = \"countries\"", "lookup = \"nations\"");
    insta::assert_snapshot!(error_for(&c));
}

#[test]
fn bad_regex() {
    let c = ACME.replace("pattern = \"[^@]+@[^@]+\"", "pattern = \"[^@+\"");
    insta::assert_snapshot!(error_for(&c));
}

#[test]
fn hash_mask_without_key() {
    let d = Dir::new();
    d.write("batchwin.toml", ACME);
    d.write("in.csv", "id\n1\n");
    let out = d
        .cmd()
        .env_remove("BATCHWIN_MASK_KEY")
        .args([
            "process", "--vendor", "ACME", "--input", "in.csv", "--out", "out",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(redact(&String::from_utf8_lossy(&out.stderr), &d));
}

#[test]
fn bad_toml_syntax() {
    let c = ACME.replace("[vendor.input]", "[vendor.input");
    insta::assert_snapshot!(error_for(&c));
}

#[test]
fn missing_config_file() {
    let d = Dir::new();
    d.write("in.csv", "id\n1\n");
    let out = d
        .cmd()
        .args([
            "process", "--vendor", "ACME", "--input", "in.csv", "--out", "out",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read config `batchwin.toml`"), "{err}");
    // The cause is said once, though the error names it and keeps it as its source too.
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
}

#[test]
fn help_lists_exit_codes() {
    let d = Dir::new();
    let out = d.cmd().args(["process", "--help"]).output().expect("run");
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

/// A delivery target of a kind batchwin cannot reach, and no transfers at once, are found when
/// the file is read by any command, not by the `publish` after the window's processing.
#[test]
fn a_location_batchwin_cannot_reach_and_zero_concurrency_name_their_key() {
    let c = format!("{ACME}\n[vendor.transfer]\noutbound = \"ftp://files.example.com/out\"\n");
    let e = error_for(&c);
    assert!(
        e.contains("key `vendor[0].transfer.outbound`")
            && e.contains("`ftp://` is not a location batchwin can use"),
        "{e}"
    );
    let e = error_for(&format!("[transfer]\nconcurrency = 0\n{ACME}"));
    assert!(
        e.contains("line 2") && e.contains("key `transfer.concurrency`: must be at least 1"),
        "{e}"
    );
    let c = format!(
        "{ACME}\n[windows.morning]\nstart = \"06:00\"\nend = \"10:00\"\nsource = \"sftp://in@h/srv\"\ntarget = \"http://x\"\n"
    );
    assert!(error_for(&c).contains("key `windows.morning.target`"));
}

/// Vendors are built side by side, yet with errors in several the one reported is always the
/// first in the file's order.
#[test]
fn of_several_broken_vendors_the_first_is_reported() {
    let vendor = |id: &str, from: &str| {
        format!(
            "[[vendor]]\nid = \"{id}\"\n[vendor.input]\nformat = \"csv\"\n[[vendor.fields]]\n\
             name = \"id\"\n[vendor.output]\nformat = \"csv\"\n[[vendor.output.fields]]\n\
             name = \"out\"\nfrom = \"{from}\"\n"
        )
    };
    let mut c = vendor("ACME", "nope_first");
    for i in 0..40 {
        c.push_str(&vendor(&format!("V{i:02}"), "nope_later"));
    }
    for _ in 0..5 {
        let err = error_for(&c);
        assert!(
            err.contains("key `vendor[0].output.fields[0].from`: unknown input field `nope_first`"),
            "{err}"
        );
    }
}
