//! Graceful cancellation: SIGTERM (what AWS Batch, Slurm and Kubernetes send before SIGKILL)
//! and SIGINT (Ctrl-C) stop the run from starting new work. Windows of chunks already in flight
//! finish (a window is a few megabytes of input, so this takes well under a second), the unit
//! being written is abandoned with its temporary files removed and recorded as `cancelled`,
//! and the process exits with 128 + the signal number (143 for SIGTERM, 130 for SIGINT; a slice
//! may end with another code, see `crate::exit::Attempts`). The next run does the cancelled and
//! the never-started units again.
//!
//! The engines give a bounded time between SIGTERM and SIGKILL (AWS Batch and Kubernetes 30 s
//! by default, Slurm its `KillWait`). A grace period, shorter than that, bounds the wait: if
//! work in flight has not wound down when it ends (a huge record, a stalled disk), the
//! process removes its registered temporary files and exits at once with the same code. The
//! units in flight are then left as started, not finished, which the next run redoes. A run
//! stopped by its time limit whose work ended within the grace period ([`Cancel::finish`]) is
//! left to close its ledger and upload it: it has the time kept before the engine's limit.
//!
//! `fetch`, `publish`, `report` and the commands that read a run location (`plan`, `status`,
//! `log`, `release`) have nothing to wind down: a signal stops them at once, with their
//! registered temporary files and folders removed ([`Cancel::exit_on_signal`]).
//!
//! A slice can also stop itself this way once it has run for a time it is given
//! ([`Cancel::stop_after`], `process --stop-after`): before an engine's own time limit stops it
//! from outside, where a job stopped by its timeout fails every job after it (AWS Batch).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The default of `--grace-period` (its variable is `crate::env::ENV_GRACE_PERIOD`).
pub const DEFAULT_GRACE_PERIOD: &str = "25s";
/// [`DEFAULT_GRACE_PERIOD`] in seconds (the run-location lock's timing is built on it).
pub const DEFAULT_GRACE_SECONDS: u64 = 25;

/// [`DEFAULT_GRACE_PERIOD`] as a duration.
pub fn default_grace() -> Duration {
    Duration::from_secs(DEFAULT_GRACE_SECONDS)
}

/// Not a signal the process receives: the number [`Cancel::stop_after`] stores in place of
/// one when the slice's own time limit is reached (SIGALRM's, which batchwin does not handle).
pub const TIME_LIMIT: i32 = signal_hook::consts::SIGALRM;

/// Set by the signal handler to the number of the signal received; 0 until then. The time the
/// signal was first noticed starts the grace period of [`Cancel::overdue`].
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    signal: Arc<AtomicUsize>,
    noticed: Arc<OnceLock<Instant>>,
    /// Exit codes in place of 128 + signal when the grace period runs out, by signal (see
    /// [`Cancel::exit_instead`]).
    instead: Arc<Mutex<Vec<(i32, u8)>>>,
    /// Set once the run's work has ended ([`Cancel::finish`]); the time limit is set under
    /// the same lock, so it never comes after this.
    finished: Arc<Mutex<bool>>,
}

impl Cancel {
    /// Installs the handlers for SIGTERM and SIGINT. A second signal of either kind while the
    /// run is winding down is also just recorded; SIGKILL remains the way to stop at once.
    pub fn install() -> std::io::Result<Cancel> {
        let c = Cancel::default();
        c.listen()?;
        Ok(c)
    }

    /// Makes SIGTERM and SIGINT set this flag.
    pub fn listen(&self) -> std::io::Result<()> {
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register_usize(sig, Arc::clone(&self.signal), sig as usize)?;
        }
        Ok(())
    }

    /// Starts a thread that stops the run as a signal would, with [`TIME_LIMIT`], once `after`
    /// has passed, unless a signal came first or the run's work has ended.
    pub fn stop_after(&self, after: Duration) {
        let me = self.clone();
        let at = Instant::now() + after;
        std::thread::spawn(move || {
            loop {
                if me.is_cancelled() || me.is_finished() {
                    return;
                }
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(100)));
            }
            let finished = me.finished.lock().unwrap_or_else(|e| e.into_inner());
            if !*finished {
                let _ = me.signal.compare_exchange(
                    0,
                    TIME_LIMIT as usize,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            }
        });
    }

    /// Should the grace period after `sig` run out, the process exits with `code` instead of
    /// 128 + `sig` (a slice's `--failures-exit` code, where its own time limit or a SIGTERM on
    /// its last attempt ends it with that code; see `crate::exit::Attempts`).
    pub fn exit_instead(&self, sig: i32, code: u8) {
        self.instead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((sig, code));
    }

    /// Says that the run's work has ended: no time limit stops it after this, and when it was
    /// its time limit that stopped it, the grace period does not cut what follows (the
    /// ledger's close, a slice's last upload): that has the time kept before the engine's own
    /// limit. After a signal the grace period still bounds everything.
    pub fn finish(&self) {
        *self.finished.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    fn is_finished(&self) -> bool {
        *self.finished.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The signal received, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s as i32),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.signal().is_some()
    }

    /// Whether a signal came `grace` or longer ago (counted from the first call that noticed
    /// it, so call it in the loop that waits).
    pub fn overdue(&self, grace: Duration) -> bool {
        self.is_cancelled() && self.noticed.get_or_init(Instant::now).elapsed() >= grace
    }

    /// Starts a watchdog thread: once a signal has come, it gives the process `grace` to end
    /// by itself, then removes the registered temporary files and exits with 128 + signal (or
    /// the code [`Cancel::exit_instead`] gave for that signal). After the time limit, a run
    /// whose work ended within the grace period ([`Cancel::finish`]) is left to end by itself.
    ///
    /// It ends the process with `_exit`, as [`Cancel::exit_on_signal`] does: the units in flight
    /// are still running on other threads, beneath the static destructors that `exit` runs. With
    /// `exit`, a slice stopped this way once died of a signal instead of exiting with its code
    /// (the CLI test `a_slice_stopped_at_its_time_limit_ends_with_its_failures_exit_code_after_
    /// the_grace_period`, in a fresh-clone CI run on 2026-12-07).
    pub fn enforce_grace(&self, grace: Duration) {
        let me = self.clone();
        std::thread::spawn(move || {
            loop {
                if me.signal().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            while !me.overdue(grace) {
                std::thread::sleep(Duration::from_millis(10));
            }
            // The signal now, should another have come since.
            let sig = me.signal().unwrap_or(signal_hook::consts::SIGTERM);
            if sig == TIME_LIMIT && me.is_finished() {
                return;
            }
            let removed = remove_temporaries();
            let instead = me.instead.lock().unwrap_or_else(|e| e.into_inner());
            let code = match instead.iter().find(|(s, _)| *s == sig) {
                Some(&(_, code)) => i32::from(code),
                None => 128 + sig,
            };
            let _ = writeln!(
                std::io::stderr(),
                "stopped    the grace period of {} after {} is over: stopping now \
                 ({removed} temporary files removed); units in flight are redone by the next run",
                humantime::format_duration(grace),
                describe(sig)
            );
            exit_now(code)
        });
    }

    /// For a command with nothing to wind down (`fetch`, `publish`, `report`, `plan`, `status`,
    /// `log`, `release`): on SIGTERM or SIGINT it removes the registered temporary files and
    /// folders (files half downloaded or half put together, the folder of local copies) and
    /// exits at once with 128 + the signal, where the signal's default action would have left
    /// them behind. `then` says what becomes of the work in flight ("files in flight are
    /// fetched again by the next run").
    ///
    /// The process ends with `_exit`: the command's own thread may still be inside DuckDB or a
    /// transfer, whose static destructors `exit` would run beneath it. Lines already printed are
    /// out (stdout is line-buffered); a signal's default action would have lost the rest too.
    ///
    /// The returned flag says whether a signal came, for what the command does meanwhile.
    pub fn exit_on_signal(then: &'static str) -> std::io::Result<Cancel> {
        let me = Cancel::install()?;
        let flag = me.clone();
        std::thread::spawn(move || {
            let sig = loop {
                if let Some(sig) = me.signal() {
                    break sig;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let removed = remove_temporaries();
            // Not `eprintln!`: it panics when stderr is a closed pipe (a `tee` stopped by the
            // same Ctrl-C), and this thread would then end without ending the process.
            let _ = writeln!(
                std::io::stderr(),
                "stopped    by {}: stopping now ({removed} temporary files removed); {then}",
                describe(sig)
            );
            exit_now(128 + sig)
        });
        Ok(flag)
    }

    /// After [`Cancel::exit_on_signal`], the signal that came, if any, once the thread that
    /// watches for one has had the time to remove the temporaries and exit (it looks every
    /// 20 ms), so that the caller does not end with what its work made of the interruption.
    pub fn exiting(&self) -> Option<i32> {
        let sig = self.signal()?;
        std::thread::sleep(Duration::from_secs(5));
        Some(sig)
    }

    /// A grace period for child processes started after a signal could come, so that they
    /// stop by themselves a little before their parent gives up on them.
    pub fn child_grace(grace: Duration) -> Duration {
        grace.saturating_sub((grace / 5).min(Duration::from_secs(5)))
    }
}

/// Calls [`Cancel::finish`] when dropped: at the end of a run's work, on every way out.
pub struct FinishOnDrop<'a>(pub &'a Cancel);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Ends the process with `code` at once, without the destructors that `exit` runs (DuckDB's,
/// which the command's own thread may still be using; see [`Cancel::exit_on_signal`]).
#[cfg(feature = "cli")]
fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` ends the process at once; nothing after it runs.
    unsafe { libc::_exit(code) }
}

/// Without the command-line tool there is no DuckDB, and `exit` is the same.
#[cfg(not(feature = "cli"))]
fn exit_now(code: i32) -> ! {
    std::process::exit(code)
}

/// What stopped the run: `signal 15`, or `its time limit` ([`TIME_LIMIT`]).
pub fn describe(sig: i32) -> String {
    if sig == TIME_LIMIT {
        "its time limit".to_string()
    } else {
        format!("signal {sig}")
    }
}

/// Temporary files (and folders) being written, removed if the grace period runs out (or,
/// for the commands with nothing to wind down, at a signal: [`Cancel::exit_on_signal`]).
static TEMPORARIES: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Registers a temporary file, or a folder with what it holds, that must not outlive the
/// process.
pub fn register_temporary(path: &Path) {
    if let Ok(mut t) = TEMPORARIES.lock() {
        t.insert(path.to_path_buf());
    }
}

/// Forgets a temporary file that was renamed into place or removed.
pub fn forget_temporary(path: &Path) {
    if let Ok(mut t) = TEMPORARIES.lock() {
        t.remove(path);
    }
}

/// Removes every registered temporary file; how many there were.
fn remove_temporaries() -> usize {
    let Ok(mut t) = TEMPORARIES.lock() else {
        return 0;
    };
    let n = t.len();
    for p in std::mem::take(&mut *t) {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(p);
            }
            _ => {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_counts_from_the_first_notice_of_a_signal() {
        let c = Cancel::default();
        assert!(!c.overdue(Duration::ZERO), "no signal yet");
        c.signal.store(15, Ordering::Relaxed);
        assert!(!c.overdue(Duration::from_millis(200)));
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.overdue(Duration::from_millis(200)));
        assert!(
            c.clone().overdue(Duration::from_millis(200)),
            "clones share the clock"
        );
    }

    #[test]
    fn a_time_limit_stops_the_run_unless_its_work_ended_or_a_signal_came_first() {
        let c = Cancel::default();
        c.stop_after(Duration::from_millis(50));
        assert_eq!(c.signal(), None);
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(c.signal(), Some(TIME_LIMIT));
        let c = Cancel::default();
        c.stop_after(Duration::from_millis(200));
        c.finish();
        assert!(c.is_finished());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(c.signal(), None, "the work had ended");
        let c = Cancel::default();
        c.stop_after(Duration::from_millis(200));
        c.signal.store(15, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(c.signal(), Some(15), "the signal came first");
    }

    #[test]
    fn the_default_grace_period_is_what_the_flags_say() {
        let flag = humantime::parse_duration(DEFAULT_GRACE_PERIOD).unwrap();
        assert_eq!(default_grace(), flag);
    }

    #[test]
    fn child_grace_is_a_little_shorter() {
        let s = Duration::from_secs;
        assert_eq!(Cancel::child_grace(s(25)), s(20));
        assert_eq!(Cancel::child_grace(s(120)), s(115));
        assert_eq!(Cancel::child_grace(s(1)), Duration::from_millis(800));
        assert_eq!(Cancel::child_grace(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn registered_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let gone = dir.path().join("gone");
        std::fs::write(&kept, b"x").unwrap();
        std::fs::write(&gone, b"x").unwrap();
        register_temporary(&kept);
        register_temporary(&gone);
        forget_temporary(&kept);
        assert!(remove_temporaries() >= 1);
        assert!(kept.exists());
        assert!(!gone.exists());
    }
}
