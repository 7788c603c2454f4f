//! Traces and notifications, against real HTTP servers on 127.0.0.1
//! (`tests/servers/http_recorder.py`, standard-library Python): the span tree of a generated
//! day's `run` exported over OTLP/HTTP (JSON bodies), with one span per unit whose figures are
//! the ledger's; no connection at all without the OTEL variables; `TRACEPARENT` in every task
//! of the emitted engine files; each webhook event once, with the report's figures, in the
//! three body styles; and a webhook server that is down costing the run nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use serde_json::Value;

use crate::util::{Dir, generate_day_on, plan_json};

/// A recording HTTP server: its port, and the requests it was sent (one JSON line each).
pub(crate) struct Recorder {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Recorder {
    pub(crate) fn start(dir: &Path, name: &str) -> Recorder {
        let python = std::env::var_os("BATCHWIN_TEST_PYTHON").unwrap_or("python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/http_recorder.py");
        let port_file = dir.join(format!("{name}.port"));
        let log = dir.join(format!("{name}.jsonl"));
        let child = Command::new(python)
            .arg(script)
            .arg(&port_file)
            .arg(&log)
            .spawn()
            .expect("start the recording server");
        let started = Instant::now();
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                break p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the recording server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Recorder { child, port, log }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a recorded request"))
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A generated day on a folder standing in for the vendors' server, and a window `[windows.day]`
/// that opened `opened` minutes ago and closes in three hours: the window's date (and its
/// start, in `DIR/window-start`, for the report).
fn day(d: &Dir, opened: i64, seed: &str) -> String {
    let s = Utc::now() - chrono::Duration::minutes(opened);
    let e = Utc::now() + chrono::Duration::minutes(180);
    let date = s.format("%Y-%m-%d").to_string();
    generate_day_on(d, "6", "2000", "3", seed, &date);
    let cfg = d.read("day/batchwin.toml")
        + &format!(
            "\n[windows.day]\nstart = \"{:02}:{:02}\"\nend = \"{:02}:{:02}\"\ntime_zone = \"UTC\"\nsource = {:?}\n\n[transfer]\nsettle = \"0s\"\n",
            s.hour(),
            s.minute(),
            e.hour(),
            e.minute(),
            d.path("day").display().to_string(),
        );
    d.write("day/batchwin.toml", cfg);
    let start = s
        .with_second(0)
        .and_then(|s| s.with_nanosecond(0))
        .expect("a minute");
    d.write(
        "window-start",
        start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    date
}

fn run_cmd(d: &Dir, date: &str) -> assert_cmd::Command {
    let mut c = d.cmd();
    c.args(crate::run::run_args(date, &["--workers", "2"]));
    c
}

fn report(d: &Dir, date: &str) -> Value {
    let o = d
        .cmd()
        .args([
            "report",
            "--ledgers",
            &format!("runs/{date}-day/out/ledgers"),
            "--config",
            "day/batchwin.toml",
            "--window-start",
            &d.read("window-start"),
            "--format",
            "json",
        ])
        .output()
        .expect("report");
    serde_json::from_slice(&o.stdout).expect("report json")
}

/// One exported span: its ids, name and attributes.
#[derive(Debug, Clone)]
pub(crate) struct Sp {
    pub trace: String,
    pub id: String,
    pub parent: String,
    pub name: String,
    pub attrs: BTreeMap<String, Value>,
}

impl Sp {
    pub(crate) fn int(&self, k: &str) -> i64 {
        match &self.attrs[k] {
            Value::Number(n) => n.as_i64().expect("an integer"),
            Value::String(s) => s.parse().expect("an integer"),
            v => panic!("{k} is {v}"),
        }
    }
    fn str(&self, k: &str) -> &str {
        self.attrs[k].as_str().unwrap_or("")
    }
}

/// The spans of every OTLP/JSON export the receiver got.
pub(crate) fn spans(r: &Recorder) -> Vec<Sp> {
    let mut out = Vec::new();
    for req in r.requests() {
        assert_eq!(req["path"], "/v1/traces", "{req}");
        for rs in req["body"]["resourceSpans"]
            .as_array()
            .expect("resourceSpans")
        {
            for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                for s in ss["spans"].as_array().expect("spans") {
                    let attrs = s["attributes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|kv| {
                                    let v = kv["value"]
                                        .as_object()
                                        .and_then(|o| o.values().next().cloned())
                                        .unwrap_or(Value::Null);
                                    (kv["key"].as_str().unwrap_or("").to_string(), v)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Sp {
                        trace: s["traceId"].as_str().unwrap_or("").to_lowercase(),
                        id: s["spanId"].as_str().unwrap_or("").to_lowercase(),
                        parent: s["parentSpanId"].as_str().unwrap_or("").to_lowercase(),
                        name: s["name"].as_str().unwrap_or("").to_string(),
                        attrs,
                    });
                }
            }
        }
    }
    out
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[test]
fn a_windows_spans_form_one_tree_with_the_ledgers_figures() {
    let d = Dir::new();
    let date = day(&d, 1, "41");
    let otlp = Recorder::start(d.root(), "otlp");
    run_cmd(&d, &date)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url(""))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("TRACEPARENT", format!("00-{TRACE}-{PARENT}-01"))
        .assert()
        .code(0);
    let all = spans(&otlp);
    assert!(!all.is_empty(), "no span arrived");
    assert!(
        all.iter().all(|s| s.trace == TRACE),
        "one trace, the one given"
    );
    let named = |n: &str| -> Vec<&Sp> { all.iter().filter(|s| s.name == n).collect() };
    let one = |n: &str| -> &Sp {
        let v = named(n);
        assert_eq!(v.len(), 1, "one `{n}` span: {v:?}");
        v[0]
    };
    let run = one("run");
    assert_eq!(run.parent, PARENT, "the run joins the trace it was given");
    let window = one("window");
    assert_eq!(window.parent, run.id);
    assert_eq!(window.str("batchwin.date"), date);
    for step in ["fetch", "plan", "execute", "report"] {
        let s = one(step);
        assert_eq!(s.parent, window.id, "{step} is a step of the window");
        assert_eq!(s.int("batchwin.exit_code"), 0, "{step}");
    }
    let execute = one("execute");
    let plan = plan_json(&d, &format!("runs/{date}-day/plan.json"));
    let slices = named("slice");
    assert_eq!(slices.len(), plan["slices"].as_array().unwrap().len());
    assert!(
        slices.iter().all(|s| s.parent == execute.id),
        "slices under execute"
    );
    let slice_ids: BTreeSet<&str> = slices.iter().map(|s| s.id.as_str()).collect();

    // One span per unit, under its slice, with the ledger's figures.
    let files = named("file");
    assert!(files.iter().all(|f| slice_ids.contains(f.parent.as_str())));
    let r = report(&d, &date);
    let t = &r["totals"];
    assert_eq!(files.len() as i64, t["units"].as_i64().unwrap(), "{t}");
    let distinct: BTreeSet<&str> = files.iter().map(|f| f.str("batchwin.file")).collect();
    assert_eq!(distinct.len() as i64, t["files"].as_i64().unwrap(), "{t}");
    let sum = |k: &str| files.iter().map(|f| f.int(k)).sum::<i64>();
    assert_eq!(
        sum("batchwin.records_in"),
        t["records_in"].as_i64().unwrap()
    );
    assert_eq!(
        sum("batchwin.records_out"),
        t["records_out"].as_i64().unwrap()
    );
    assert_eq!(
        sum("batchwin.records_rejected"),
        t["records_rejected"].as_i64().unwrap()
    );
    assert_eq!(sum("batchwin.bytes"), t["bytes"].as_i64().unwrap());
    for v in r["vendors"].as_array().unwrap() {
        let of: Vec<&&Sp> = files
            .iter()
            .filter(|f| f.str("batchwin.vendor") == v["vendor"])
            .collect();
        assert_eq!(of.len() as i64, v["units"].as_i64().unwrap(), "{v}");
        let records: i64 = of.iter().map(|f| f.int("batchwin.records_in")).sum();
        let rejected: i64 = of.iter().map(|f| f.int("batchwin.records_rejected")).sum();
        assert_eq!(records, v["records_in"].as_i64().unwrap(), "{v}");
        assert_eq!(rejected, v["records_rejected"].as_i64().unwrap(), "{v}");
        assert!(of.iter().all(|f| f.str("batchwin.outcome") == "succeeded"));
    }
}

#[test]
fn without_the_otel_variables_nothing_is_sent() {
    let d = Dir::new();
    let date = day(&d, 1, "42");
    let otlp = Recorder::start(d.root(), "otlp");
    // The receiver listens where a collector would, and a parent context is given: still
    // nothing may reach it.
    let mut c = run_cmd(&d, &date);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            c.env_remove(k);
        }
    }
    c.env("TRACEPARENT", format!("00-{TRACE}-{PARENT}-01"))
        .assert()
        .code(0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(otlp.requests().is_empty(), "{:?}", otlp.requests());
}

#[test]
fn every_task_of_the_emitted_engine_files_joins_the_plans_trace() {
    let d = Dir::new();
    crate::util::generate_day(&d, "12", "1000", "4", "43");
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let o = crate::util::plan_day_command(
        &d,
        &["--slices", "3", "--emit", "slurm,aws-batch,azure-batch,k8s"],
    )
    .args(["--date", crate::util::DATE])
    .env("TRACEPARENT", &tp)
    .assert()
    .success();
    let _ = o;
    assert_eq!(plan_json(&d, "plan.json")["traceparent"], tp.as_str());
    let mut tasks = 0;
    for e in std::fs::read_dir(d.path("emit/slurm")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sbatch") {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.contains(&format!("export TRACEPARENT=\"${{TRACEPARENT:-{tp}}}\"")),
                "{text}"
            );
            tasks += 1;
        }
    }
    assert!(tasks >= 2, "stage arrays and the report");
    // Every environment list of every JSON task has it.
    let mut lists = 0;
    for engine in ["aws-batch", "azure-batch", "k8s"] {
        for e in std::fs::read_dir(d.path(&format!("emit/{engine}"))).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let mut found = Vec::new();
            collect_env_lists(&v, &mut found);
            for list in found {
                lists += 1;
                assert!(
                    list.iter()
                        .any(|e| e["name"] == "TRACEPARENT" && e["value"] == tp.as_str()),
                    "{}: {list:?}",
                    p.display()
                );
            }
        }
    }
    assert!(
        lists >= 3,
        "AWS Batch, Azure Batch and Kubernetes tasks: {lists}"
    );
    // Without a trace context, nothing of it is written.
    let d2 = Dir::new();
    crate::util::generate_day(&d2, "6", "1000", "2", "44");
    crate::util::plan_day_command(&d2, &["--slices", "2", "--emit", "slurm,k8s"])
        .args(["--date", crate::util::DATE])
        .assert()
        .success();
    assert!(plan_json(&d2, "plan.json").get("traceparent").is_none());
    let k8s: String = std::fs::read_dir(d2.path("emit/k8s"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(!k8s.contains("TRACEPARENT"));
}

/// Every task's environment list: AWS Batch `environment`, Azure `environmentSettings`,
/// Kubernetes containers' `env`.
fn collect_env_lists(v: &Value, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(o) => {
            if let Some(c) = o.get("containerOverrides") {
                out.push(c["environment"].as_array().cloned().unwrap_or_default());
            }
            if o.contains_key("commandLine") {
                out.push(
                    o.get("environmentSettings")
                        .and_then(|e| e.as_array())
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            if let Some(Value::Array(cs)) = o.get("containers") {
                for c in cs {
                    out.push(c["env"].as_array().cloned().unwrap_or_default());
                }
            }
            o.values().for_each(|x| collect_env_lists(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_env_lists(x, out)),
        _ => {}
    }
}

const WEBHOOKS: &str = "\n[notify]\nretry_wait = \"100ms\"\n\n[[notify.webhook]]\nname = \"generic\"\nurl_env = \"BATCHWIN_TEST_HOOK_GENERIC\"\n\n[[notify.webhook]]\nname = \"slack\"\nurl_env = \"BATCHWIN_TEST_HOOK_SLACK\"\nstyle = \"slack\"\n\n[[notify.webhook]]\nname = \"teams\"\nurl_env = \"BATCHWIN_TEST_HOOK_TEAMS\"\nstyle = \"teams\"\n";

#[test]
fn each_event_reaches_each_webhook_once_with_the_reports_figures() {
    let d = Dir::new();
    // The window opened three hours ago: the HIGH (1 h) and MEDIUM (2 h) SLAs are at risk as
    // soon as the run starts, and missed at its end. V001's files all fail (no reject allowed).
    let date = day(&d, 180, "45");
    let cfg = d
        .read("day/batchwin.toml")
        .replacen("skip_limit = \"5%\"", "skip_limit = 0", 1)
        + WEBHOOKS;
    d.write("day/batchwin.toml", cfg);
    let hooks = Recorder::start(d.root(), "hooks");
    let out = run_cmd(&d, &date)
        .env("BATCHWIN_TEST_HOOK_GENERIC", hooks.url("/generic/token-g"))
        .env("BATCHWIN_TEST_HOOK_SLACK", hooks.url("/slack/token-s"))
        .env("BATCHWIN_TEST_HOOK_TEAMS", hooks.url("/teams/token-t"))
        .assert()
        .code(1);
    let o = out.get_output();
    let printed =
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        !printed.contains("token-"),
        "a webhook's URL was printed:\n{printed}"
    );

    let r = report(&d, &date);
    let reqs = hooks.requests();
    let of = |style: &str| -> Vec<Value> {
        reqs.iter()
            .filter(|q| {
                q["path"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("/{style}/"))
            })
            .map(|q| q["body"].clone())
            .collect()
    };
    let generic = of("generic");
    let events =
        |kind: &str| -> Vec<&Value> { generic.iter().filter(|b| b["event"] == kind).collect() };

    // file_failed: one per failed unit, with its ledger figures.
    let failed: Vec<&Value> = r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "failed")
        .collect();
    assert!(!failed.is_empty());
    let ff = events("file_failed");
    assert_eq!(ff.len(), failed.len(), "{ff:?}");
    let ff_files: BTreeSet<String> = ff
        .iter()
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ff_files.len(), ff.len(), "each failed file once");
    for e in &ff {
        assert_eq!(e["vendor"], "V001");
        assert!(e["records_rejected"].as_u64().unwrap() > 0, "{e}");
        assert!(e["error"].as_str().unwrap().contains("skip limit"), "{e}");
    }
    let v001 = r["vendors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vendor"] == "V001")
        .unwrap();
    let sum = |k: &str| ff.iter().map(|e| e[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!(
        sum("records_in"),
        v001["records_in"].as_i64().unwrap(),
        "{v001}"
    );
    assert_eq!(
        sum("records_rejected"),
        v001["records_rejected"].as_i64().unwrap(),
        "{v001}"
    );

    // The SLAs: at risk once and missed once for each priority the report says missed.
    let missed: BTreeSet<String> = r["priorities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["sla_met"] == false)
        .map(|p| p["priority"].as_str().unwrap().to_string())
        .collect();
    assert!(
        missed.contains("high") && missed.contains("medium"),
        "{}",
        r["priorities"]
    );
    let prios = |kind: &str| -> Vec<String> {
        events(kind)
            .iter()
            .map(|e| e["priority"].as_str().unwrap().to_string())
            .collect()
    };
    let mut risk = prios("sla_at_risk");
    risk.sort();
    assert_eq!(risk, ["high", "medium"]);
    let mut m = prios("sla_missed");
    m.sort();
    assert_eq!(m, missed.iter().cloned().collect::<Vec<_>>());

    // The window's end, once, with the report's totals.
    let fin = events("window_finished");
    assert_eq!(fin.len(), 1);
    let t = &r["totals"];
    for k in [
        "files",
        "units",
        "succeeded",
        "failed",
        "records_in",
        "records_out",
        "records_rejected",
        "bytes",
    ] {
        assert_eq!(fin[0][k], t[k], "{k}: {} against {t}", fin[0]);
    }
    assert_eq!(fin[0]["exit_code"], 1);
    assert_eq!(
        generic.len(),
        ff.len() + risk.len() + m.len() + 1,
        "nothing else: {generic:?}"
    );

    // The same events in the other styles.
    let slack = of("slack");
    assert_eq!(slack.len(), generic.len());
    assert!(
        slack
            .iter()
            .all(|b| b.as_object().unwrap().len() == 1 && b["text"].is_string())
    );
    let teams = of("teams");
    assert_eq!(teams.len(), generic.len());
    assert!(
        teams
            .iter()
            .all(|b| b["attachments"][0]["content"]["type"] == "AdaptiveCard")
    );

    // Every delivery recorded in the run folder, without the URLs.
    let log = d.read(&format!("runs/{date}-day/notifications.jsonl"));
    assert_eq!(log.lines().count(), reqs.len(), "{log}");
    assert!(!log.contains("token-"), "{log}");
    assert!(
        log.lines().all(|l| l.contains("\"delivered\":true")),
        "{log}"
    );
}

#[test]
fn a_webhook_server_that_is_down_costs_the_run_nothing() {
    let d = Dir::new();
    let date = day(&d, 1, "46");
    let cfg = d.read("day/batchwin.toml") + WEBHOOKS;
    d.write("day/batchwin.toml", cfg);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook/token-down");
    let started = Instant::now();
    let out = run_cmd(&d, &date)
        .env("BATCHWIN_TEST_HOOK_GENERIC", &url)
        .env("BATCHWIN_TEST_HOOK_SLACK", &url)
        .env("BATCHWIN_TEST_HOOK_TEAMS", &url)
        .assert()
        .code(0);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let o = out.get_output();
    let printed =
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(!printed.contains("token-down"), "{printed}");
    assert!(printed.contains("not delivered"), "{printed}");
    let log = d.read(&format!("runs/{date}-day/notifications.jsonl"));
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The window's end, to three webhooks, none delivered.
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l["delivered"] == false && l["event"] == "window_finished")
    );
    assert!(!log.contains("token-down"), "{log}");
}

#[test]
fn spans_of_a_slice_stopped_by_sigterm_are_sent_before_it_exits() {
    let d = Dir::new();
    crate::util::generate_day(&d, "40", "1500000", "4", "47");
    let otlp = Recorder::start(d.root(), "otlp");
    let mut child = d
        .process()
        .args(crate::util::process_day_args("out", crate::util::DATE))
        .arg("-q")
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp.url("/v1/traces"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env_remove("TRACEPARENT")
        .spawn()
        .expect("start");
    std::thread::sleep(Duration::from_millis(700));
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "the run ended before the signal");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(143));
    let all = spans(&otlp);
    let process: Vec<&Sp> = all.iter().filter(|s| s.name == "process").collect();
    assert_eq!(process.len(), 1, "{all:?}");
    assert!(
        process[0].parent.is_empty(),
        "a new trace without TRACEPARENT"
    );
    let files: Vec<&Sp> = all.iter().filter(|s| s.name == "file").collect();
    assert!(files.iter().all(|f| f.parent == process[0].id));
    // Every unit the ledger recorded has its span, the cancelled ones too.
    let o = d
        .cmd()
        .args(["report", "--ledgers", "out", "--format", "json"])
        .output()
        .expect("report");
    let r: Value = serde_json::from_slice(&o.stdout).expect("report json");
    assert_eq!(
        files.len() as i64,
        r["totals"]["units"].as_i64().unwrap(),
        "{}",
        r["totals"]
    );
    assert!(
        files
            .iter()
            .any(|f| f.str("batchwin.outcome") == "cancelled"),
        "a unit in flight was cancelled"
    );
    assert_eq!(
        files
            .iter()
            .filter(|f| f.str("batchwin.outcome") == "succeeded")
            .count() as i64,
        r["totals"]["succeeded"].as_i64().unwrap()
    );
}
