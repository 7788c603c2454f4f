//! Traces: OpenTelemetry spans for a run (`run`, one span per invocation and one per window
//! day), its steps (fetch, plan, execute, publish, report), the slices (`process`) and their
//! files (one span per unit, with its vendor, records in, out and rejected, bytes and outcome;
//! an error as a span event), exported over OTLP/HTTP to the collector the standard
//! `OTEL_EXPORTER_OTLP_*` variables name ([`crate::env::otlp`]).
//!
//! Without those variables nothing is created: no exporter, no thread, no connection, and
//! every span here is an empty `Option`. With them, the cost is per unit, never per record: a
//! file's span is written once the unit has ended, from the same [`FileOutcome`] the ledger
//! records, with the unit's own start and end times, so the span's figures are the ledger's.
//!
//! Processes join one trace through the W3C `TRACEPARENT` variable: `run` gives each step and
//! each slice the context of its step's span, `plan` records the context it ran in so that the
//! job files it writes pass it to every task ([`crate::plan::emit`]). Spans are flushed when
//! [`Traces`] is dropped, at the end of the command, whatever its result (also after SIGTERM
//! or SIGINT, which end a command normally), within [`FLUSH_TIMEOUT`].

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use opentelemetry::Context;
pub use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::engine::batch::BatchSummary;
use crate::env::OtlpSettings;
use crate::exit::Failure;
use crate::outcome::{FileOutcome, FileStatus};

/// Longest wait for a collector when the command ends: an unreachable one costs at most this.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// One export's HTTP timeout (the flush waits for at most [`FLUSH_TIMEOUT`] in all).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// The traces of one command: the exporter when traces are configured, and the context it
/// joins (`TRACEPARENT`).
pub struct Traces {
    exporter: Option<(SdkTracerProvider, SdkTracer)>,
    /// The remote parent from `TRACEPARENT`, or an empty context (a new trace).
    parent: Context,
    /// The `TRACEPARENT` received, passed on unchanged when this command exports nothing.
    incoming: Option<String>,
}

impl Traces {
    /// Starts the exporter when `otlp` is set; joins `traceparent` when it is a valid W3C
    /// trace context (an invalid one is warned about and ignored). An exporter that cannot be
    /// built is warned about: traces never stop a command.
    pub fn start(otlp: Option<&OtlpSettings>, traceparent: Option<&str>) -> Traces {
        let incoming = traceparent.and_then(|t| match parse_traceparent(t) {
            Some(_) => Some(t.trim().to_string()),
            None => {
                tracing::warn!(
                    "{} is not a W3C trace context (00-TRACEID-SPANID-FLAGS): ignored",
                    crate::env::ENV_TRACEPARENT
                );
                None
            }
        });
        let parent = incoming
            .as_deref()
            .and_then(parse_traceparent)
            .unwrap_or_default();
        let exporter = otlp.and_then(|o| match build(o) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!("traces are not exported: {e}");
                None
            }
        });
        Traces {
            exporter,
            parent,
            incoming,
        }
    }

    /// No exporter and no parent: what commands that do not trace use.
    pub fn off() -> Traces {
        Traces {
            exporter: None,
            parent: Context::new(),
            incoming: None,
        }
    }

    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.exporter.is_some()
    }

    /// The `TRACEPARENT` received, as given.
    pub fn incoming(&self) -> Option<&str> {
        self.incoming.as_deref()
    }

    /// A span under the received context (or the root of a new trace).
    pub fn span(&self, name: &'static str, attributes: Vec<KeyValue>) -> TraceSpan {
        let Some((_, tracer)) = &self.exporter else {
            return TraceSpan { inner: None };
        };
        TraceSpan::start(tracer, &self.parent, name, attributes, None)
    }

    /// What a child process is given as `TRACEPARENT` under `span`: the span's context when
    /// spans are exported, else the context this command received (passed through).
    pub fn pass_on(&self, span: &TraceSpan) -> Option<String> {
        span.traceparent().or_else(|| self.incoming.clone())
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some((provider, _)) = self.exporter.take()
            && let Err(e) = provider.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::warn!("traces could not all be sent: {e}");
        }
    }
}

fn build(o: &OtlpSettings) -> Result<(SdkTracerProvider, SdkTracer), String> {
    for w in &o.warnings {
        tracing::warn!("{w}");
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(o.traces_url.clone())
        .with_protocol(if o.json {
            opentelemetry_otlp::Protocol::HttpJson
        } else {
            opentelemetry_otlp::Protocol::HttpBinary
        })
        .with_headers(o.headers.iter().cloned().collect::<HashMap<_, _>>())
        .with_timeout(EXPORT_TIMEOUT)
        // A collector that refuses or is away costs a retry or two, not a minute of backoff.
        .with_retry_policy(
            opentelemetry_otlp::RetryPolicy::recommended()
                .with_max_retries(2)
                .with_max_delay(Duration::from_secs(1)),
        )
        .build()
        .map_err(|e| format!("the OTLP exporter for `{}`: {e}", host_of(&o.traces_url)))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name(o.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("batchwin");
    tracing::debug!("traces go to {}", host_of(&o.traces_url));
    Ok((provider, tracer))
}

/// The scheme, host and port of a URL, without its path, query or credentials: what may be
/// printed of an endpoint or webhook URL.
pub fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}", u.scheme(), u.host_str().unwrap_or("?"))
        }
        Err(_) => "an invalid URL".to_string(),
    }
}

/// The context a W3C `traceparent` value stands for, when it is valid.
fn parse_traceparent(value: &str) -> Option<Context> {
    let carrier = HashMap::from([("traceparent".to_string(), value.trim().to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// One span, or nothing when traces are not exported. Ended when dropped.
pub struct TraceSpan {
    inner: Option<(SdkTracer, Context)>,
}

impl TraceSpan {
    fn start(
        tracer: &SdkTracer,
        parent: &Context,
        name: &'static str,
        attributes: Vec<KeyValue>,
        times: Option<(SystemTime, SystemTime)>,
    ) -> TraceSpan {
        let mut b = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes);
        if let Some((start, _)) = times {
            b = b.with_start_time(start);
        }
        let span = b.start_with_context(tracer, parent);
        let cx = parent.with_span(span);
        if let Some((_, end)) = times {
            cx.span().end_with_timestamp(end);
        }
        TraceSpan {
            inner: Some((tracer.clone(), cx)),
        }
    }

    /// A span that is nothing (traces off).
    pub fn none() -> TraceSpan {
        TraceSpan { inner: None }
    }

    /// A child span, starting now.
    pub fn child(&self, name: &'static str, attributes: Vec<KeyValue>) -> TraceSpan {
        match &self.inner {
            Some((tracer, cx)) => TraceSpan::start(tracer, cx, name, attributes, None),
            None => TraceSpan::none(),
        }
    }

    /// Adds attributes (e.g. the exit code once known).
    pub fn set(&self, attributes: Vec<KeyValue>) {
        if let Some((_, cx)) = &self.inner {
            cx.span().set_attributes(attributes);
        }
    }

    /// Records an error: an `exception` event with its message, and the span's status.
    pub fn error(&self, message: &str) {
        if let Some((_, cx)) = &self.inner {
            let span = cx.span();
            span.add_event(
                "exception",
                vec![KeyValue::new("exception.message", message.to_string())],
            );
            span.set_status(Status::error(message.to_string()));
        }
    }

    /// The span's W3C trace context, for a child process.
    pub fn traceparent(&self) -> Option<String> {
        let (_, cx) = self.inner.as_ref()?;
        let mut carrier: HashMap<String, String> = HashMap::new();
        TraceContextPropagator::new().inject_context(cx, &mut carrier);
        carrier.remove("traceparent")
    }

    /// One span per unit, under this one, from its outcome (the figures the ledger records),
    /// with the unit's start and end times.
    pub fn file(&self, o: &FileOutcome) {
        let Some((tracer, cx)) = &self.inner else {
            return;
        };
        let mut attributes = vec![
            KeyValue::new("batchwin.vendor", o.vendor.clone()),
            KeyValue::new("batchwin.file", o.input_path.display().to_string()),
            KeyValue::new("batchwin.outcome", o.status.to_string()),
            KeyValue::new("batchwin.records_in", o.records_in as i64),
            KeyValue::new("batchwin.records_out", o.records_out as i64),
            KeyValue::new("batchwin.records_rejected", o.records_rejected as i64),
            KeyValue::new("batchwin.bytes", o.input_bytes as i64),
            KeyValue::new("batchwin.output_bytes", o.output_bytes as i64),
        ];
        if let Some((i, n)) = o.part {
            attributes.push(KeyValue::new("batchwin.part", i64::from(i) + 1));
            attributes.push(KeyValue::new("batchwin.parts", i64::from(n)));
        }
        let times: (SystemTime, SystemTime) = (o.started_at.into(), o.ended_at.into());
        let span = TraceSpan::start(tracer, cx, "file", attributes, Some(times));
        if matches!(o.status, FileStatus::Failed | FileStatus::Cancelled) {
            span.error(o.error.as_deref().unwrap_or("unknown error"));
        }
    }

    /// Ends the span now (dropping it does the same).
    pub fn end(self) {}
}

impl Drop for TraceSpan {
    fn drop(&mut self) {
        if let Some((_, cx)) = &self.inner {
            cx.span().end();
        }
    }
}

/// A batch's units as file spans under `span`, and its totals (or its error) on `span`.
pub fn record_batch(span: &TraceSpan, result: &Result<BatchSummary, Failure>) {
    if span.inner.is_none() {
        return;
    }
    match result {
        Ok(summary) => {
            for o in &summary.outcomes {
                span.file(o);
            }
            let count = |s: FileStatus| summary.outcomes.iter().filter(|o| o.status == s).count();
            span.set(vec![
                KeyValue::new("batchwin.units", summary.outcomes.len() as i64),
                KeyValue::new("batchwin.failed", count(FileStatus::Failed) as i64),
                KeyValue::new("batchwin.exit_code", i64::from(summary.status().code())),
            ]);
            if let Some(sig) = summary.interrupted {
                span.error(&format!("stopped by signal {sig}"));
            }
        }
        Err(f) => span.error(&crate::exit::error_text(&f.error)),
    }
}

/// An attribute, for callers that do not name the OpenTelemetry crate.
pub fn attr(key: &'static str, value: impl Into<opentelemetry::Value>) -> KeyValue {
    KeyValue::new(key, value)
}

/// A valid W3C trace context, as given, or `None` (emitted job files carry only valid ones).
pub fn valid_traceparent(value: &str) -> Option<String> {
    parse_traceparent(value).map(|_| value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_off_without_an_endpoint_and_pass_the_context_through() {
        let t = Traces::start(
            None,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        assert!(!t.enabled());
        let s = t.span("run", vec![]);
        assert!(s.traceparent().is_none());
        assert_eq!(
            t.pass_on(&s).as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert!(Traces::start(None, Some("garbage")).incoming().is_none());
        assert!(
            valid_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01").is_none()
        );
    }

    #[test]
    fn only_scheme_host_and_port_of_a_url_are_printed() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T000/B000/XXXX?token=1"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            host_of("http://user:pw@127.0.0.1:4318/v1/traces"),
            "http://127.0.0.1:4318"
        );
        assert_eq!(host_of("not a url"), "an invalid URL");
    }
}
