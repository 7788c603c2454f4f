//! The job token: real JWTs signed in the test with keys made for it (RSA and EC P-256 in a
//! JWKS, Ed25519 as a PEM file, by the `openssl` command), verified by `process` and `plan`.
//! Each role gets exactly what its masking profile says; every refusal exits 2, writes
//! nothing and says why; the token never shows in the output, the errors or the ledger.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::util::{Dir, MASK_KEY, stderr, stdout};

const ISSUER: &str = "https://id.example.test/realms/ops";
const AUDIENCE: &str = "batchwin";

const INPUT: &str = "id,email,phone,card
1,ann@example.com,5551234567,4111111111111111
2,bob@corp.org,5559876543,5500000000000004
";

const CONFIG: &str = r#"
[auth]
issuer = "https://id.example.test/realms/ops"
audience = "batchwin"
algorithms = ["RS256", "ES256", "EdDSA"]
jwks = "keys/jwks.json"
roles_claim = "realm_access.roles"
leeway = "30s"
[[auth.key]]
kid = "ed-1"
pem = "keys/ed.pub.pem"

[[masking.profile]]
name = "support"
roles = ["support"]
[[masking.profile.rule]]
vendors = ["acme"]
fields = ["email"]
show = "clear"

[[masking.profile]]
name = "auditor"
roles = ["auditor"]
[[masking.profile.rule]]
vendors = ["acme"]
fields = ["card"]
show = "keep_last"
keep = 4
[[masking.profile.rule]]
vendors = ["*"]
fields = ["*"]
show = "email_domain"

[[vendor]]
id = "acme"
input = { format = "csv" }
fields = [{ name = "id", type = "integer" }, { name = "email" }, { name = "phone" }, { name = "card" }]
[vendor.output]
format = "csv"
fields = [
  { name = "id" },
  { name = "email", mask = "hash", hash_length = 12 },
  { name = "phone", mask = "keep_last", keep = 4 },
  { name = "card", mask = "redact" },
]
"#;

/// The keys, made once per test folder: `keys/{rsa,ec,ed}.pem` (private, PKCS#8),
/// `keys/*.pub.pem`, and `keys/jwks.json` with the RSA (`rsa-1`) and EC (`ec-1`) public keys.
fn keys(d: &Dir) {
    std::fs::create_dir_all(d.path("keys")).expect("mkdir keys");
    let openssl = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d.root())
            .output()
            .expect("the openssl command");
        assert!(o.status.success(), "openssl {args:?}: {o:?}");
    };
    for (name, alg) in [
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
        ),
        (
            "rsa-other",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
        ),
        (
            "ec",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        ("ed", &["-algorithm", "ed25519"][..]),
    ] {
        let key = format!("keys/{name}.pem");
        openssl(&[&["genpkey"], alg, &["-out", &key]].concat());
        openssl(&[
            "pkey",
            "-in",
            &key,
            "-pubout",
            "-out",
            &format!("keys/{name}.pub.pem"),
        ]);
    }
    let jwk = |file: &str, alg: Algorithm, kid: &str| -> Jwk {
        let pem = std::fs::read(d.path(file)).expect("key");
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            _ => EncodingKey::from_ec_pem(&pem),
        }
        .expect("private key");
        let mut j = Jwk::from_encoding_key(&key, alg).expect("jwk");
        j.common.key_id = Some(kid.to_string());
        j
    };
    let set = JwkSet {
        keys: vec![
            jwk("keys/rsa.pem", Algorithm::RS256, "rsa-1"),
            jwk("keys/ec.pem", Algorithm::ES256, "ec-1"),
        ],
    };
    d.write(
        "keys/jwks.json",
        serde_json::to_string_pretty(&set).expect("jwks"),
    );
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_secs() as i64)
}

/// Claims for `roles`, valid for an hour.
fn claims(roles: &[&str]) -> serde_json::Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "jdoe@example.test",
        "iat": now(),
        "exp": now() + 3600,
        "realm_access": { "roles": roles },
    })
}

/// A token over `claims`, signed with `keys/FILE` (private) by `alg`, naming `kid`.
fn sign(
    d: &Dir,
    alg: Algorithm,
    kid: Option<&str>,
    file: &str,
    claims: &serde_json::Value,
) -> String {
    let pem = std::fs::read(d.path(&format!("keys/{file}"))).expect("key");
    let key = match alg {
        Algorithm::RS256 | Algorithm::RS384 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        // The key confusion attack: the public key's bytes as an HMAC secret.
        _ => EncodingKey::from_secret(&pem),
    }
    .expect("signing key");
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// base64url without padding, for the unsigned token made by hand.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn setup() -> Dir {
    let d = Dir::new();
    keys(&d);
    d.write("batchwin.toml", CONFIG);
    d.write("in/acme/a.csv", INPUT);
    d
}

/// `process` of the input with the token in `keys/token.jwt` when given; the assert.
fn process(d: &Dir, out: &str, token: Option<&str>) -> assert_cmd::assert::Assert {
    let mut c = d.cmd();
    c.args([
        "process",
        "--config",
        "batchwin.toml",
        "--vendor",
        "acme",
        "--input",
        "in/acme/a.csv",
        "--out",
        out,
    ]);
    if let Some(t) = token {
        d.write("keys/token.jwt", format!("{t}\n"));
        c.args(["--token", "keys/token.jwt"]);
    }
    c.assert()
}

fn hash12(v: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(MASK_KEY.as_bytes()).expect("key");
    mac.update(v.as_bytes());
    hex::encode(mac.finalize().into_bytes())[..12].to_string()
}

/// Every byte of every file below `dir` as text (lossy), to look for the token in.
fn all_bytes(dir: &Path) -> String {
    crate::util::tree(dir)
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

/// The token is nowhere in what the command printed nor in what it wrote.
fn assert_secret(a: &assert_cmd::assert::Assert, d: &Dir, out: &str, token: &str) {
    assert!(!stdout(a).contains(token), "token in stdout");
    assert!(!stderr(a).contains(token), "token in stderr");
    // The signature alone is enough to replay nothing, but must not be printed either.
    let sig = token.rsplit('.').next().unwrap_or(token);
    if sig.len() > 8 {
        assert!(!stderr(a).contains(sig), "signature in stderr");
    }
    if d.path(out).exists() {
        assert!(!all_bytes(&d.path(out)).contains(token), "token in {out}");
    }
}

#[test]
fn each_role_sees_what_its_profile_says_and_the_ledger_keeps_who_asked() {
    let d = setup();
    let h1 = hash12("ann@example.com");
    let h2 = hash12("bob@corp.org");
    // No token: every field masked as configured.
    process(&d, "none", None).code(0);
    assert_eq!(
        d.read("none/a.out.csv"),
        format!("id,email,phone,card\n1,{h1},******4567,***\n2,{h2},******6543,***\n")
    );
    // support (RS256, JWKS): the e-mail in clear, the rest as configured.
    let t = sign(
        &d,
        Algorithm::RS256,
        Some("rsa-1"),
        "rsa.pem",
        &claims(&["support"]),
    );
    let a = process(&d, "support", Some(&t)).code(0);
    assert_secret(&a, &d, "support", &t);
    assert_eq!(
        d.read("support/a.out.csv"),
        "id,email,phone,card\n1,ann@example.com,******4567,***\n2,bob@corp.org,******6543,***\n"
    );
    // auditor (ES256, JWKS): the card's last four, every other masked field by its domain.
    let t = sign(
        &d,
        Algorithm::ES256,
        Some("ec-1"),
        "ec.pem",
        &claims(&["viewer", "auditor"]),
    );
    let a = process(&d, "auditor", Some(&t)).code(0);
    assert_secret(&a, &d, "auditor", &t);
    assert_eq!(
        d.read("auditor/a.out.csv"),
        "id,email,phone,card\n1,***@example.com,***,************1111\n2,***@corp.org,***,************0004\n"
    );
    // EdDSA (PEM key) with a role no profile names: the configured masks.
    let t = sign(
        &d,
        Algorithm::EdDSA,
        Some("ed-1"),
        "ed.pem",
        &claims(&["guest"]),
    );
    let a = process(&d, "guest", Some(&t)).code(0);
    assert_secret(&a, &d, "guest", &t);
    assert_eq!(d.read("guest/a.out.csv"), d.read("none/a.out.csv"));
    // The same token in BATCHWIN_TOKEN.
    let t = sign(&d, Algorithm::EdDSA, None, "ed.pem", &claims(&["support"]));
    let a = d
        .cmd()
        .env("BATCHWIN_TOKEN", &t)
        .args([
            "process",
            "--config",
            "batchwin.toml",
            "--vendor",
            "acme",
            "--input",
            "in/acme/a.csv",
            "--out",
            "env",
        ])
        .assert()
        .code(0);
    assert_secret(&a, &d, "env", &t);
    assert_eq!(d.read("env/a.out.csv"), d.read("support/a.out.csv"));

    // The audit trail: each run's profile, subject, issuer and key, in every report format.
    let report = |out: &str, format: &str| {
        let a = d
            .cmd()
            .args([
                "report",
                "--ledgers",
                &format!("{out}/ledger.duckdb"),
                "--out",
                &format!("report-{out}-{format}.duckdb"),
                "--format",
                format,
            ])
            .assert()
            .code(0);
        stdout(&a)
    };
    let j: serde_json::Value = serde_json::from_str(&report("auditor", "json")).expect("json");
    assert_eq!(
        j["masking"],
        json!([{ "profile": "auditor", "subject": "jdoe@example.test", "issuer": ISSUER, "key_id": "ec-1", "runs": 1 }])
    );
    let line = format!("profile support, token of jdoe@example.test (issuer {ISSUER}, key rsa-1)");
    assert!(
        report("support", "table").contains(&line),
        "{}",
        report("support", "table")
    );
    assert!(report("support", "markdown").contains(&line));
    // HTML escapes the issuer's slashes.
    let html = report("support", "html");
    assert!(
        html.contains("Masking: profile support, token of jdoe@example.test (issuer ")
            && html.contains("key rsa-1), 1 run"),
        "{html}"
    );
    assert!(report("guest", "table").contains("configured masks, token of jdoe@example.test"));
    // Without a token the report is as it was: no masking line.
    assert!(!report("none", "table").contains("masking"));
    assert!(serde_json::from_str::<serde_json::Value>(&report("none", "json")).expect("json")["masking"].is_null());
}

#[test]
fn every_bad_token_is_refused_with_exit_2_and_nothing_written() {
    let d = setup();
    let mut c = claims(&["support"]);
    let expired = {
        c["exp"] = json!(now() - 3600);
        sign(&d, Algorithm::RS256, Some("rsa-1"), "rsa.pem", &c)
    };
    let early = {
        let mut c = claims(&["support"]);
        c["nbf"] = json!(now() + 3600);
        sign(&d, Algorithm::RS256, Some("rsa-1"), "rsa.pem", &c)
    };
    let issuer = {
        let mut c = claims(&["support"]);
        c["iss"] = json!("https://evil.example.test");
        sign(&d, Algorithm::RS256, Some("rsa-1"), "rsa.pem", &c)
    };
    let audience = {
        let mut c = claims(&["support"]);
        c["aud"] = json!("someone-else");
        sign(&d, Algorithm::ES256, Some("ec-1"), "ec.pem", &c)
    };
    let unsigned = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#),
        b64url(claims(&["support"]).to_string().as_bytes())
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", expired, "it has expired"),
        ("not yet valid", early, "it is not valid yet"),
        ("wrong issuer", issuer, "its issuer (`iss`) is not"),
        (
            "wrong audience",
            audience,
            "its audience (`aud`) does not include `batchwin`",
        ),
        (
            "bad signature",
            sign(
                &d,
                Algorithm::RS256,
                Some("rsa-1"),
                "rsa-other.pem",
                &claims(&["support"]),
            ),
            "the signature does not verify with key `rsa-1`",
        ),
        ("alg none", unsigned, "algorithm `none` is not accepted"),
        (
            "algorithm not allowed",
            sign(
                &d,
                Algorithm::RS384,
                Some("rsa-1"),
                "rsa.pem",
                &claims(&["support"]),
            ),
            "algorithm `RS384` is not accepted",
        ),
        (
            "HS256 with the public key as secret",
            sign(
                &d,
                Algorithm::HS256,
                Some("rsa-1"),
                "rsa.pub.pem",
                &claims(&["support"]),
            ),
            "algorithm `HS256` is not accepted",
        ),
        (
            "unknown kid",
            sign(
                &d,
                Algorithm::RS256,
                Some("nope"),
                "rsa.pem",
                &claims(&["support"]),
            ),
            "no configured key has id `nope`",
        ),
        (
            "malformed",
            "not-a.jwt".to_string(),
            "it is not a compact JWT",
        ),
        (
            "malformed parts",
            "eyJhbGciOiJSUzI1NiJ9.%%%.abc".to_string(),
            "token refused",
        ),
        (
            "a signature of the wrong key type",
            sign(
                &d,
                Algorithm::ES256,
                Some("rsa-1"),
                "ec.pem",
                &claims(&["support"]),
            ),
            "key `rsa-1` is not a key for algorithm `ES256`",
        ),
    ];
    for (what, token, message) in &cases {
        let out = format!("out-{}", what.replace(' ', "-"));
        let a = process(&d, &out, Some(token)).code(2);
        let err = stderr(&a);
        assert!(err.contains(message), "{what}: {err}");
        assert!(
            !d.path(&out).exists(),
            "{what}: something was written in {out}"
        );
        assert_secret(&a, &d, &out, token);
        // `plan` refuses it the same way and writes no plan.
        let a = d
            .cmd()
            .args([
                "plan",
                "--config",
                "batchwin.toml",
                "--scan",
                "in",
                "--out",
                "plan.json",
                "--token",
                "keys/token.jwt",
            ])
            .assert()
            .code(2);
        assert!(stderr(&a).contains(message), "plan, {what}: {}", stderr(&a));
        assert!(
            !d.path("plan.json").exists(),
            "plan, {what}: a plan was written"
        );
        assert_secret(&a, &d, &out, token);
    }
}

#[test]
fn a_token_without_auth_and_a_symmetric_algorithm_in_auth_are_refused() {
    let d = setup();
    let t = sign(
        &d,
        Algorithm::RS256,
        Some("rsa-1"),
        "rsa.pem",
        &claims(&["support"]),
    );
    let auth_start = CONFIG.find("[auth]").expect("auth");
    let auth_end = CONFIG.find("[[masking.profile]]").expect("profile");
    let without = format!("{}{}", &CONFIG[..auth_start], &CONFIG[auth_end..]);
    d.write("batchwin.toml", &without);
    let a = process(&d, "out", Some(&t)).code(2);
    assert!(stderr(&a).contains("no `[auth]` table"), "{}", stderr(&a));
    assert_secret(&a, &d, "out", &t);
    // Without a token the same config runs, with the configured masks.
    process(&d, "out", None).code(0);

    d.write(
        "batchwin.toml",
        CONFIG.replace(
            r#"algorithms = ["RS256", "ES256", "EdDSA"]"#,
            r#"algorithms = ["RS256", "HS256"]"#,
        ),
    );
    let a = process(&d, "out2", None).code(2);
    assert!(
        stderr(&a).contains("`HS256` is symmetric"),
        "{}",
        stderr(&a)
    );
    assert!(stderr(&a).contains("line 5"), "{}", stderr(&a));
}

#[test]
fn plan_verifies_once_and_its_slices_apply_the_plans_profile() {
    let d = setup();
    let support = sign(
        &d,
        Algorithm::RS256,
        Some("rsa-1"),
        "rsa.pem",
        &claims(&["support"]),
    );
    d.write("keys/token.jwt", &support);
    let a = d
        .cmd()
        .args([
            "plan",
            "--config",
            "batchwin.toml",
            "--scan",
            "in",
            "--out",
            "plan.json",
            "--date",
            "2026-11-29",
            "--token",
            "keys/token.jwt",
        ])
        .assert()
        .code(0);
    assert!(
        stdout(&a).contains("masking    profile support for jdoe@example.test"),
        "{}",
        stdout(&a)
    );
    assert_secret(&a, &d, "plan.json", &support);
    assert!(!d.read("plan.json").contains(&support));
    let plan: serde_json::Value = serde_json::from_str(&d.read("plan.json")).expect("plan");
    assert_eq!(
        plan["masking"],
        json!({ "profile": "support", "subject": "jdoe@example.test", "issuer": ISSUER, "key_id": "rsa-1" })
    );
    // The slice needs no token, and an auditor's token in its environment changes nothing.
    let auditor = sign(
        &d,
        Algorithm::ES256,
        Some("ec-1"),
        "ec.pem",
        &claims(&["auditor"]),
    );
    let a = d
        .cmd()
        .env("BATCHWIN_TOKEN", &auditor)
        .args([
            "process",
            "--config",
            "batchwin.toml",
            "--plan",
            "plan.json",
            "--slice",
            "0",
            "--out",
            "out",
        ])
        .assert()
        .code(0);
    assert!(
        stderr(&a).contains("the token is not used with --plan"),
        "{}",
        stderr(&a)
    );
    assert_secret(&a, &d, "out", &auditor);
    assert_secret(&a, &d, "out", &support);
    assert_eq!(
        d.read("out/acme/a.out.csv"),
        "id,email,phone,card\n1,ann@example.com,******4567,***\n2,bob@corp.org,******6543,***\n"
    );
    let a = d
        .cmd()
        .args(["report", "--ledgers", "out/ledgers", "--format", "json"])
        .assert()
        .code(0);
    let j: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("json");
    assert_eq!(j["masking"][0]["profile"], "support");
    assert_eq!(j["masking"][0]["key_id"], "rsa-1");

    // The same day planned again for an auditor: the slice's units done under `support` are
    // not done for `auditor`, and are made again under its profile.
    d.write("keys/token.jwt", &auditor);
    d.cmd()
        .args([
            "plan",
            "--config",
            "batchwin.toml",
            "--scan",
            "in",
            "--out",
            "plan.json",
            "--date",
            "2026-11-29",
            "--token",
            "keys/token.jwt",
        ])
        .assert()
        .code(0);
    let again = d
        .cmd()
        .args([
            "process",
            "--config",
            "batchwin.toml",
            "--plan",
            "plan.json",
            "--slice",
            "0",
            "--out",
            "out",
        ])
        .assert()
        .code(0);
    assert!(!stdout(&again).contains("resumed"), "{}", stdout(&again));
    assert_eq!(
        d.read("out/acme/a.out.csv"),
        "id,email,phone,card\n1,***@example.com,***,************1111\n2,***@corp.org,***,************0004\n"
    );
    // Run again under the same plan, the unit is done.
    let same = d
        .cmd()
        .args([
            "process",
            "--config",
            "batchwin.toml",
            "--plan",
            "plan.json",
            "--slice",
            "0",
            "--out",
            "out",
        ])
        .assert()
        .code(0);
    assert!(
        stdout(&same).contains("resumed    1 units"),
        "{}",
        stdout(&same)
    );
    let plan: serde_json::Value = serde_json::from_str(&d.read("plan.json")).expect("plan");

    // A plan naming a profile the configuration does not have is refused, nothing written.
    let mut plan = plan;
    plan["masking"]["profile"] = json!("root");
    d.write("plan2.json", serde_json::to_string(&plan).expect("plan"));
    let a = d
        .cmd()
        .args([
            "process",
            "--config",
            "batchwin.toml",
            "--plan",
            "plan2.json",
            "--slice",
            "0",
            "--out",
            "out2",
        ])
        .assert()
        .code(2);
    assert!(
        stderr(&a).contains("no masking profile `root`"),
        "{}",
        stderr(&a)
    );
    assert!(!d.path("out2").exists());
}

#[test]
fn run_hands_the_token_to_its_plan_and_the_window_gets_the_profile() {
    use chrono::Timelike;
    let d = setup();
    let start = chrono::Utc::now() - chrono::Duration::minutes(1);
    let end = start + chrono::Duration::hours(3);
    let date = start.format("%Y-%m-%d").to_string();
    d.write(
        "batchwin.toml",
        format!(
            "{CONFIG}\n[windows.day]\nstart = \"{:02}:{:02}\"\nend = \"{:02}:{:02}\"\ntime_zone = \"UTC\"\nsource = {:?}\n\n[transfer]\nsettle = \"0s\"\n",
            start.hour(),
            start.minute(),
            end.hour(),
            end.minute(),
            d.path("src").display().to_string(),
        ),
    );
    d.write(&format!("src/inbound/{date}/acme/a.csv"), INPUT);
    let run = |runs: &str, token: Option<&str>, env: Option<&str>| {
        let mut c = d.cmd();
        c.args([
            "run",
            "--config",
            "batchwin.toml",
            "--window",
            "day",
            "--date",
            &date,
            "--runs",
            runs,
        ]);
        if let Some(t) = token {
            d.write("keys/token.jwt", t);
            c.args(["--token", "keys/token.jwt"]);
        }
        if let Some(t) = env {
            c.env("BATCHWIN_TOKEN", t);
        }
        c.assert()
    };
    let support = sign(
        &d,
        Algorithm::RS256,
        Some("rsa-1"),
        "rsa.pem",
        &claims(&["support"]),
    );
    let a = run("runs-a", Some(&support), None).code(0);
    assert_secret(&a, &d, "runs-a", &support);
    assert_eq!(
        d.read(&format!("runs-a/{date}-day/out/acme/a.out.csv")),
        "id,email,phone,card\n1,ann@example.com,******4567,***\n2,bob@corp.org,******6543,***\n"
    );
    let auditor = sign(
        &d,
        Algorithm::EdDSA,
        Some("ed-1"),
        "ed.pem",
        &claims(&["auditor"]),
    );
    let a = run("runs-b", None, Some(&auditor)).code(0);
    assert_secret(&a, &d, "runs-b", &auditor);
    // The slices were not handed the token: no warning about one.
    assert!(
        !stderr(&a).contains("the token is not used"),
        "{}",
        stderr(&a)
    );
    assert_eq!(
        d.read(&format!("runs-b/{date}-day/out/acme/a.out.csv")),
        "id,email,phone,card\n1,***@example.com,***,************1111\n2,***@corp.org,***,************0004\n"
    );
    // A refused token stops the window at its plan, with nothing processed.
    let mut c = claims(&["support"]);
    c["exp"] = json!(now() - 3600);
    let expired = sign(&d, Algorithm::RS256, Some("rsa-1"), "rsa.pem", &c);
    let a = run("runs-c", Some(&expired), None).code(2);
    assert!(stderr(&a).contains("it has expired") || stdout(&a).contains("it has expired"));
    assert_secret(&a, &d, "runs-c", &expired);
    assert!(!d.path(&format!("runs-c/{date}-day/out")).exists());
}
