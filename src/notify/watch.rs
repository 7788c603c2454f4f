//! What a `process` run's unit outcomes are told to: the run's trace span (one child span per
//! unit, when traces are exported) and the webhooks (one `file_failed` per failed unit). Local
//! slices, slices of a run location and `--input` runs share it.

use std::path::PathBuf;

use crate::config::NotifyConfig;
use crate::engine::batch::BatchSummary;
use crate::exit::Failure;
use crate::notify::Notifier;
use crate::telemetry::{KeyValue, TraceSpan, Traces};

/// The traces and notifications of one `process`.
pub struct Watch {
    // Declared before `traces`: the span ends before the exporter is flushed.
    span: TraceSpan,
    _traces: Traces,
    notifier: Notifier,
}

impl Watch {
    /// Starts the span `name` under `traceparent` (when traces are exported) and the notifier
    /// recording to `notify_log`.
    pub fn new(
        traceparent: Option<&str>,
        notify_log: PathBuf,
        notify: &NotifyConfig,
        name: &'static str,
        attrs: Vec<KeyValue>,
    ) -> Watch {
        let traces = Traces::start(crate::env::otlp().as_ref(), traceparent);
        let span = traces.span(name, attrs);
        Watch {
            span,
            _traces: traces,
            notifier: Notifier::new(notify, &crate::env::secret, &notify_log),
        }
    }

    /// One span per unit, a notification per failed unit; the summary back.
    pub fn record(
        &self,
        date: &str,
        result: Result<BatchSummary, Failure>,
    ) -> Result<BatchSummary, Failure> {
        crate::telemetry::record_batch(&self.span, &result);
        if let Ok(summary) = &result {
            for e in crate::notify::failures(date, &summary.outcomes) {
                self.notifier.send(&e);
            }
        }
        result
    }
}
