//! Typed exit codes, shared by every subcommand and documented in the README and `--help`.
//!
//! Engines key on them: AWS Batch `evaluateOnExit` and Slurm requeue retry only
//! [`ExitStatus::Retryable`].

use std::process::ExitCode;

use signal_hook::consts::SIGTERM;

/// How a batchwin command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: everything succeeded.
    Success,
    /// 1: data failure: a file failed (skip limit exceeded, unreadable format), units were
    /// deferred, blocked or quarantined (the day is not done), a transfer failed for good
    /// (permission denied, a listed file missing, more bytes than listed), an SLA missed.
    DataFailure,
    /// 2: usage or configuration error: fix the command line or `batchwin.toml`; an SSH host
    /// key refused (unknown, or not the recorded one) is one.
    Usage,
    /// 3: retryable I/O error (connection refused or reset, timeout, 5xx, throttling): run the
    /// same command again. Nothing that a retry cannot fix ends with it.
    Retryable,
    /// 128 + signal: stopped by SIGTERM (143) or SIGINT (130); the next run resumes. A slice
    /// stopped at its `process --stop-after` has 142 (SIGALRM's number, see
    /// `crate::cancel::TIME_LIMIT`) in its ledger, and ends with `--failures-exit`'s code.
    Interrupted(i32),
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::DataFailure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Retryable => 3,
            ExitStatus::Interrupted(sig) => (128 + sig).clamp(0, 255) as u8,
        }
    }

    /// A slice's status under `process --failures-exit CODE`: with 0, units that ended and were
    /// recorded as failed, blocked or deferred end the slice as a success, so that an engine
    /// which stops every later job once one fails (AWS Batch's `dependsOn`) still runs the
    /// later stages and the report; every other status is kept.
    pub fn failures_as(self, failures_exit: u8) -> ExitStatus {
        match self {
            ExitStatus::DataFailure if failures_exit == 0 => ExitStatus::Success,
            s => s,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> ExitCode {
        ExitCode::from(s.code())
    }
}

/// An error and its causes on one line, as `{:#}` writes them (`what: why: why`), except that a
/// cause the text before it already holds is not written again: several errors name their
/// cause in their own message and keep it as their source too (for the retry checks that look
/// for an I/O error among the causes), and `{:#}` alone wrote such a cause twice
/// (`cannot read config `x`: No such file or directory (os error 2): No such file …`).
pub fn error_text(e: &anyhow::Error) -> String {
    chain_text(e.as_ref())
}

/// [`error_text`] of any error.
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

/// An error that carries the exit status it should end the process with.
#[derive(Debug, thiserror::Error)]
#[error("{}", error_text(error))]
pub struct Failure {
    pub status: ExitStatus,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            status: ExitStatus::Usage,
            error: error.into(),
        }
    }
    pub fn data(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            status: ExitStatus::DataFailure,
            error: error.into(),
        }
    }
    pub fn retryable(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            status: ExitStatus::Retryable,
            error: error.into(),
        }
    }
}

/// Which attempt at a slice this is, where the engine retries a slice itself and a job that
/// fails stops every job after it (AWS Batch). On the last attempt a retryable failure is one
/// no retry will come for: the slice ends with `--failures-exit`'s code instead of 3
/// ([`Attempts::status`]), so that the later stages and the report still run, as they do
/// after a slice whose files failed on their data. With `--failures-exit 0` so does a usage
/// or configuration error (exit code 2) on any attempt: the engine files retry only 3 and a
/// reclaim, and no retry would mend it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Attempts {
    /// With `--plan`: how many attempts the engine makes at this slice in all (the AWS Batch
    /// files give their `retryStrategy.attempts`). On the last one (`--attempt`), a retryable
    /// failure (exit code 3) ends the slice with `--failures-exit`'s code instead; with
    /// `--failures-exit 0` so does a SIGTERM then (143), and a usage or configuration error
    /// (exit code 2) on any attempt: the report then says which of its units are failed or
    /// missing, and the next stage's slices record the vendors after theirs as `blocked`.
    #[arg(long, value_name = "N", requires = "plan", value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: Option<u32>,
    /// This attempt's number, from 1 (default: AWS Batch's `AWS_BATCH_JOB_ATTEMPT`).
    #[arg(long, value_name = "K", env = crate::env::ENV_AWS_BATCH_ATTEMPT, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,
    /// With `--plan`: once the slice has run this long, it stops as a SIGTERM would (units in
    /// flight are recorded `cancelled`, the rest left) and ends with `--failures-exit`'s code;
    /// the report names those units. Give it under the engine's time limit (the AWS Batch
    /// files do), where a job stopped from outside fails the jobs after it.
    #[arg(long, value_name = "DURATION", requires = "plan", value_parser = humantime::parse_duration)]
    pub stop_after: Option<std::time::Duration>,
    /// The slice's cancellation ([`Attempts::arm`]).
    #[arg(skip)]
    pub cancel: crate::cancel::Cancel,
}

impl Attempts {
    /// Arms the slice's cancellation (`cancel`), when the process starts, so that `--stop-after`
    /// counts from then: it stops the slice at `--stop-after` when that is given, and should
    /// the grace period then run out, the process exits with `failures_exit`'s status, as
    /// [`Attempts::status`] ends it otherwise; so it does after a SIGTERM on the last attempt
    /// with `--failures-exit 0`.
    pub fn arm(&mut self, failures_exit: u8) {
        let code = ExitStatus::DataFailure.failures_as(failures_exit).code();
        if let Some(after) = self.stop_after {
            self.cancel.stop_after(after);
            self.cancel.exit_instead(crate::cancel::TIME_LIMIT, code);
        }
        let last = matches!((self.attempts, self.attempt), (Some(n), Some(k)) if k >= n);
        if last && code == 0 {
            self.cancel.exit_instead(SIGTERM, code);
        }
    }

    /// A slice's outcome `r` as the process ends it: stopped by `--stop-after`, it becomes
    /// `failures_exit`'s status; with `--attempts` given, so does a usage or configuration
    /// error when that status is a success, and on the last attempt a retryable failure, and a
    /// SIGTERM when that status is a success (an error is printed as the program prints
    /// errors). The reason is said; anything else is kept.
    pub fn status(
        &self,
        r: Result<ExitStatus, Failure>,
        failures_exit: u8,
    ) -> Result<ExitStatus, Failure> {
        let status = ExitStatus::DataFailure.failures_as(failures_exit);
        let ended = match &r {
            Ok(s) => *s,
            Err(f) => f.status,
        };
        let say_error = || {
            if let Err(f) = &r {
                eprintln!("error: {}", error_text(&f.error));
            }
        };
        // Only exit code 0 lets an engine's later jobs run.
        let so = if status == ExitStatus::Success {
            ", so that the later stages and the report run"
        } else {
            ""
        };
        if let (ExitStatus::Interrupted(crate::cancel::TIME_LIMIT), Some(after)) =
            (ended, self.stop_after)
        {
            say_error();
            eprintln!(
                "stopped    the slice ran for its --stop-after of {}: exit code {}{so} (the \
                 report names this slice's units that were cancelled or not started)",
                humantime::format_duration(after),
                status.code()
            );
            return Ok(status);
        }
        let Some(n) = self.attempts else {
            return r;
        };
        // Only where it lets the later jobs run (`--failures-exit 0`): 1 would fail them as 2
        // does, and lose the code that says what to fix.
        if r.is_err() && ended == ExitStatus::Usage && status == ExitStatus::Success {
            say_error();
            eprintln!(
                "attempt    ended on an error no retry mends: exit code {} instead of 2{so} (the \
                 report names this slice's units that were not recorded; the vendors after \
                 theirs are blocked)",
                status.code()
            );
            return Ok(status);
        }
        let Some(k) = self.attempt.filter(|&k| k >= n) else {
            return r;
        };
        // A SIGTERM on the last attempt (on AWS Batch, a Spot reclaim's notice: the job
        // definition retries 143 while attempts are left) likewise, with `--failures-exit 0`.
        let what = match ended {
            ExitStatus::Retryable => "ended on a retryable error",
            ExitStatus::Interrupted(SIGTERM) if status == ExitStatus::Success => {
                "was stopped by SIGTERM"
            }
            _ => return r,
        };
        say_error();
        eprintln!(
            "attempt    {k} of {n} {what} and none is left: exit code {} instead of {}{so} (the \
             report names this slice's units that failed or were not recorded; the vendors \
             after theirs are blocked)",
            status.code(),
            ended.code()
        );
        Ok(status)
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Failure {
        Failure::usage(e)
    }
}

/// Help text listing the exit codes, appended to `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0         success
  1         data failure: a file failed (skip limit exceeded, unreadable input), units were
            deferred, blocked or quarantined (the day is not done), a transfer failed for
            good (permission denied, missing file), an SLA was missed
  2         usage or configuration error, a refused SSH host key
  3         retryable I/O error (unreachable, timeout, 5xx): run the same command again
  130, 143  stopped by SIGINT or SIGTERM: the unit in flight was abandoned cleanly; run again";

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read `x`: {source}")]
    struct Named {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_written_again() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(Named { source: io() }).context("step");
        assert_eq!(error_text(&e), "step: cannot read `x`: gone");
        let e = anyhow::Error::new(io()).context("cannot read `y`");
        assert_eq!(error_text(&e), "cannot read `y`: gone");
    }
}
