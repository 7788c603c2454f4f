//! Notifications: the webhooks of `[notify]` told about a window's events (a file failed or
//! was quarantined, an SLA at risk during the run, an SLA missed, the window finished with the
//! report's totals), in a generic JSON, Slack or Teams body.
//!
//! A notification never fails the command that sends it: each is tried `attempts` times with a
//! doubling wait, then given up, logged (with the webhook's name and host only: its URL carries
//! a token and is never printed) and recorded, like every delivery, as one JSON line in the
//! run folder's `notifications.jsonl`. A webhook that failed every try is tried once, not
//! `attempts` times, for the rest of the command, so a server that is down costs a run a few
//! seconds, however many events it has. The URLs come from the environment ([`Notifier::new`]
//! is given the lookup), and nothing is built, no client and no thread, without webhooks.

pub mod watch;

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{NotifyConfig, NotifyEventKind, WebhookStyle};
use crate::outcome::{FileOutcome, FileStatus};
use crate::telemetry::host_of;

/// Something a webhook may be told, with its figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A unit failed (the skip limit was exceeded, the input could not be read).
    FileFailed {
        date: String,
        vendor: String,
        file: String,
        /// 1-based part of a split file.
        part: Option<u32>,
        records_in: u64,
        records_rejected: u64,
        error: String,
    },
    /// A file failed `attempts` times and is no longer planned (sent by the quarantine).
    FileQuarantined {
        date: String,
        vendor: String,
        file: String,
        attempts: u32,
        error: String,
    },
    /// A priority's estimated finish is past its SLA.
    SlaAtRisk {
        window: String,
        date: String,
        priority: String,
        units: u64,
        /// The estimated finish and the SLA's time, RFC 3339 UTC.
        eta: String,
        sla: String,
        late_by_seconds: f64,
    },
    /// The report says a priority missed its SLA.
    SlaMissed {
        window: String,
        date: String,
        priority: String,
        sla_seconds: f64,
        finished_after_seconds: Option<f64>,
        late_by_seconds: Option<f64>,
        /// What kept it from being met (`3 failed, 2 deferred`), when units were not done.
        not_done: String,
    },
    /// A window's run ended: its exit code and the report's totals.
    WindowFinished {
        window: String,
        date: String,
        exit_code: i32,
        files: i64,
        units: i64,
        succeeded: i64,
        failed: i64,
        deferred: i64,
        cancelled: i64,
        blocked: i64,
        quarantined: i64,
        records_in: i64,
        records_out: i64,
        records_rejected: i64,
        bytes: i64,
        wall_seconds: f64,
    },
}

impl Event {
    pub fn kind(&self) -> NotifyEventKind {
        match self {
            Event::FileFailed { .. } => NotifyEventKind::FileFailed,
            Event::FileQuarantined { .. } => NotifyEventKind::FileQuarantined,
            Event::SlaAtRisk { .. } => NotifyEventKind::SlaAtRisk,
            Event::SlaMissed { .. } => NotifyEventKind::SlaMissed,
            Event::WindowFinished { .. } => NotifyEventKind::WindowFinished,
        }
    }

    /// One line for people: the title of a card, the text of a Slack message.
    pub fn text(&self) -> String {
        match self {
            Event::FileFailed {
                date,
                vendor,
                file,
                part,
                records_in,
                records_rejected,
                error,
            } => format!(
                "batchwin {date}: {vendor} `{file}`{} failed ({records_in} records read, {records_rejected} rejected): {error}",
                part.map(|p| format!(" part {p}")).unwrap_or_default()
            ),
            Event::FileQuarantined {
                date,
                vendor,
                file,
                attempts,
                error,
            } => format!(
                "batchwin {date}: {vendor} `{file}` quarantined after {attempts} failed attempts: {error}"
            ),
            Event::SlaAtRisk {
                window,
                date,
                priority,
                eta,
                sla,
                late_by_seconds,
                ..
            } => format!(
                "batchwin {window} {date}: {priority} at risk: estimated to finish {eta}, SLA {sla} ({late_by_seconds:.0} s late)"
            ),
            Event::SlaMissed {
                window,
                date,
                priority,
                sla_seconds,
                late_by_seconds,
                not_done,
                ..
            } => {
                let why = match late_by_seconds {
                    Some(l) => format!("finished {l:.0} s after its SLA of {sla_seconds:.0} s"),
                    None => format!("not finished within its SLA of {sla_seconds:.0} s"),
                };
                let not_done = if not_done.is_empty() {
                    String::new()
                } else {
                    format!(" ({not_done})")
                };
                format!("batchwin {window} {date}: {priority} missed its SLA: {why}{not_done}")
            }
            Event::WindowFinished {
                window,
                date,
                exit_code,
                files,
                units,
                succeeded,
                failed,
                records_in,
                records_out,
                records_rejected,
                ..
            } => format!(
                "batchwin {window} {date} finished with exit code {exit_code}: {files} files ({units} units: {succeeded} succeeded, {failed} failed), {records_in} records in, {records_out} out, {records_rejected} rejected"
            ),
        }
    }

    /// The request body in a webhook's style.
    pub fn body(&self, style: WebhookStyle) -> Value {
        let text = self.text();
        match style {
            WebhookStyle::Generic => {
                let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
                v["text"] = Value::String(text);
                v
            }
            WebhookStyle::Slack => json!({ "text": text }),
            WebhookStyle::Teams => {
                // The figures as a fact set under the line: what a Teams card shows best.
                let facts: Vec<Value> = serde_json::to_value(self)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, v)| k != "event" && !v.is_null())
                    .map(|(k, v)| {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                        json!({"title": k, "value": v})
                    })
                    .collect();
                json!({
                    "type": "message",
                    "attachments": [{
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": "1.4",
                            "body": [
                                {"type": "TextBlock", "text": text, "wrap": true, "weight": "Bolder"},
                                {"type": "FactSet", "facts": facts}
                            ]
                        }
                    }]
                })
            }
        }
    }
}

/// The events for the failed units of a batch.
pub fn failures(date: &str, outcomes: &[FileOutcome]) -> Vec<Event> {
    outcomes
        .iter()
        .filter(|o| o.status == FileStatus::Failed)
        .map(|o| Event::FileFailed {
            date: date.to_string(),
            vendor: o.vendor.clone(),
            file: o.input_path.display().to_string(),
            part: o.part.map(|(i, _)| i + 1),
            records_in: o.records_in,
            records_rejected: o.records_rejected,
            error: o.error.clone().unwrap_or_default(),
        })
        .collect()
}

struct Hook {
    name: String,
    /// `None`: the variable `url_env` names is not set (warned about once, recorded).
    url: Option<String>,
    url_env: String,
    style: WebhookStyle,
    events: Option<Vec<NotifyEventKind>>,
}

/// Sends events to the configured webhooks and records each delivery.
pub struct Notifier {
    hooks: Vec<Hook>,
    log: PathBuf,
    attempts: u32,
    retry_wait: Duration,
    timeout: Duration,
    client: std::sync::OnceLock<Option<reqwest::blocking::Client>>,
    /// Webhooks that failed every try: tried once from then on.
    down: Mutex<HashSet<String>>,
}

/// One line of `notifications.jsonl`.
#[derive(Serialize)]
struct Delivery<'a> {
    at: String,
    event: &'static str,
    webhook: &'a str,
    /// Scheme, host and port only.
    host: String,
    delivered: bool,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Notifier {
    /// The webhooks of `config`, their URLs looked up with `secret` (the environment), each
    /// delivery recorded in `log`.
    pub fn new(
        config: &NotifyConfig,
        secret: &dyn Fn(&str) -> Option<String>,
        log: &Path,
    ) -> Notifier {
        let hooks = config
            .webhooks
            .iter()
            .map(|w| Hook {
                name: w.name.clone(),
                url: secret(&w.url_env),
                url_env: w.url_env.clone(),
                style: w.style,
                events: w.events.clone(),
            })
            .collect();
        Notifier {
            hooks,
            log: log.to_path_buf(),
            attempts: config.attempts.unwrap_or(3).max(1),
            retry_wait: config.retry_wait.map_or(Duration::from_secs(1), |s| s.0),
            timeout: config.timeout.map_or(Duration::from_secs(5), |s| s.0),
            client: std::sync::OnceLock::new(),
            down: Mutex::new(HashSet::new()),
        }
    }

    /// Whether any webhook wants `kind` (so that its figures need gathering at all).
    pub fn wants(&self, kind: NotifyEventKind) -> bool {
        self.hooks
            .iter()
            .any(|h| h.events.as_ref().is_none_or(|e| e.contains(&kind)))
    }

    /// Sends `event` to every webhook that wants it. Never fails: what did not arrive is
    /// logged and recorded.
    pub fn send(&self, event: &Event) {
        let kind = event.kind();
        for h in &self.hooks {
            if !h.events.as_ref().is_none_or(|e| e.contains(&kind)) {
                continue;
            }
            let Some(url) = &h.url else {
                tracing::warn!(
                    "webhook `{}`: `{}` is not set; {} not sent",
                    h.name,
                    h.url_env,
                    kind.name()
                );
                self.record(Delivery {
                    at: now(),
                    event: kind.name(),
                    webhook: &h.name,
                    host: String::new(),
                    delivered: false,
                    attempts: 0,
                    status: None,
                    error: Some(format!("`{}` is not set", h.url_env)),
                });
                continue;
            };
            let d = self.deliver(h, url, &event.body(h.style), kind);
            if !d.delivered {
                tracing::warn!(
                    "webhook `{}` ({}): {} not delivered after {} {}: {}",
                    h.name,
                    d.host,
                    kind.name(),
                    d.attempts,
                    if d.attempts == 1 { "try" } else { "tries" },
                    d.error.as_deref().unwrap_or("")
                );
            }
            self.record(d);
        }
    }

    fn deliver<'a>(
        &self,
        h: &'a Hook,
        url: &str,
        body: &Value,
        kind: NotifyEventKind,
    ) -> Delivery<'a> {
        let mut d = Delivery {
            at: now(),
            event: kind.name(),
            webhook: &h.name,
            host: host_of(url),
            delivered: false,
            attempts: 0,
            status: None,
            error: None,
        };
        let Some(client) = self
            .client
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .timeout(self.timeout)
                    .build()
                    .map_err(|e| tracing::warn!("cannot set up an HTTP client for webhooks: {e}"))
                    .ok()
            })
            .as_ref()
        else {
            d.error = Some("no HTTP client".into());
            return d;
        };
        let down = self
            .down
            .lock()
            .map(|s| s.contains(&h.name))
            .unwrap_or(false);
        let tries = if down { 1 } else { self.attempts };
        let mut wait = self.retry_wait;
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        for attempt in 1..=tries {
            d.attempts = attempt;
            let request = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone());
            match request.send() {
                Ok(r) if r.status().is_success() => {
                    d.delivered = true;
                    d.status = Some(r.status().as_u16());
                    d.error = None;
                    return d;
                }
                Ok(r) => {
                    let s = r.status();
                    d.status = Some(s.as_u16());
                    d.error = Some(format!("HTTP {s}"));
                    // A refusal other than "too many" or a server error will not change.
                    if s.is_client_error() && s.as_u16() != 429 {
                        break;
                    }
                }
                // Without the URL: it carries the webhook's token. The causes say why
                // (refused, timed out, a certificate), and none of them holds the URL.
                Err(e) => {
                    let e = e.without_url();
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        text = format!("{text}: {s}");
                        source = s.source();
                    }
                    d.error = Some(text);
                }
            }
            if attempt < tries {
                std::thread::sleep(wait);
                wait *= 2;
            }
        }
        if let Ok(mut s) = self.down.lock() {
            s.insert(h.name.clone());
        }
        d
    }

    fn record(&self, d: Delivery<'_>) {
        let line = serde_json::to_string(&d).unwrap_or_default() + "\n";
        // One write per line in append mode: slices that record at the same time do not mix
        // their lines.
        let written = (|| -> std::io::Result<()> {
            if let Some(dir) = self.log.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = crate::files::append(&self.log)?;
            f.write_all(line.as_bytes())
        })();
        if let Err(e) = written {
            tracing::warn!(
                "cannot record a notification in `{}`: {e}",
                self.log.display()
            );
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Event {
        Event::FileFailed {
            date: "2026-12-03".into(),
            vendor: "V001".into(),
            file: "in/V001_1.csv".into(),
            part: None,
            records_in: 120,
            records_rejected: 40,
            error: "skip limit exceeded".into(),
        }
    }

    #[test]
    fn bodies_carry_the_event_in_each_style() {
        let e = failed();
        let g = e.body(WebhookStyle::Generic);
        assert_eq!(g["event"], "file_failed");
        assert_eq!(g["records_in"], 120);
        assert!(g["text"].as_str().is_some_and(|t| t.contains("V001")));
        let s = e.body(WebhookStyle::Slack);
        assert_eq!(s.as_object().map(|o| o.len()), Some(1));
        assert!(
            s["text"]
                .as_str()
                .is_some_and(|t| t.contains("120 records"))
        );
        let t = e.body(WebhookStyle::Teams);
        let card = &t["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert!(card["body"][1]["facts"].as_array().is_some_and(|f| {
            f.iter()
                .any(|f| f["title"] == "vendor" && f["value"] == "V001")
        }));
    }

    #[test]
    fn a_url_in_the_config_is_refused_with_its_line_and_key() {
        let text = "[notify]\nattempts = 2\n\n[[notify.webhook]]\nname = \"ops\"\nurl_env = \"OPS_URL\"\n\n[[notify.webhook]]\nname = \"chat\"\nurl_env = \"https://hooks.slack.com/services/T0/B0/secret\"\n";
        let e = crate::config::Config::parse(std::path::Path::new("b.toml"), text.into())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("config `b.toml` line 10, key `notify.webhook[1].url_env`: name the environment variable"),
            "{e}"
        );
        let twice = "[[notify.webhook]]\nname = \"ops\"\nurl_env = \"A\"\n[[notify.webhook]]\nname = \"ops\"\nurl_env = \"B\"\n";
        let e = crate::config::Config::parse(std::path::Path::new("b.toml"), twice.into())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("line 5, key `notify.webhook[1].name`"), "{e}");
        let style = "[[notify.webhook]]\nname = \"ops\"\nurl_env = \"A\"\nstyle = \"discord\"\n";
        let e = crate::config::Config::parse(std::path::Path::new("b.toml"), style.into())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("line 4") && e.contains("discord"), "{e}");
    }

    #[test]
    fn a_webhook_without_its_variable_is_recorded_not_sent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config: crate::config::Config = toml::from_str(
            "[[notify.webhook]]\nname = \"ops\"\nurl_env = \"NOT_SET_ANYWHERE\"\nevents = [\"file_failed\"]\n",
        )
        .expect("config");
        let log = dir.path().join("notifications.jsonl");
        let n = Notifier::new(&config.notify, &|_| None, &log);
        assert!(n.wants(NotifyEventKind::FileFailed));
        assert!(!n.wants(NotifyEventKind::WindowFinished));
        n.send(&failed());
        let text = std::fs::read_to_string(&log).expect("log");
        let v: Value = serde_json::from_str(text.trim()).expect("one line");
        assert_eq!(v["delivered"], false);
        assert_eq!(v["webhook"], "ops");
    }
}
