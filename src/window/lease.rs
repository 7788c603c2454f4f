//! The lock at a run location (`URL/DATE-WINDOW/.lock`) that keeps two machines running the
//! same window and day apart, as [`super::lock`] does for runs sharing a local run folder. No
//! OS lock reaches across machines, so it is a lease: a small JSON object naming its holder
//! (host, pid, since, renewed at, and a token of its own), taken by a conditional creation,
//! renewed every [`RENEW_EVERY`] by a thread of the run while the run goes on, and deleted
//! when the run ends, normally or by an error. A run killed outright (SIGKILL, a machine that
//! went down) leaves it behind: once it has not been renewed for [`LEASE`] it is stale, and the
//! next run takes it over.
//!
//! On object stores (S3, Azure Blob, GCS) every write of the lock is one conditional request
//! ([`crate::storage::Conditional::Atomic`]): the creation is refused when a lock is there
//! (`If-None-Match: *`), a renewal and a takeover only while the lock is the version read
//! (`If-Match` on its ETag), so two machines taking over the same stale lock cannot both win,
//! and a holder whose lock was taken over finds out at its next renewal. The test servers
//! (moto, s3s-fs, Azurite) all honour these preconditions. On SFTP and in folders the creation
//! is exclusive too, but a renewal or a takeover is a read, a comparison and a write
//! ([`crate::storage::Conditional::CheckThenWrite`]): two takeovers of the same stale lock
//! within that moment could both seem to win, and the loser finds out at its next renewal.
//!
//! A holder that finds at a renewal that its lock is someone else's, or that could not renew
//! it for a whole [`LEASE`] (the store down), has lost it: it says so and stops its run as a
//! SIGTERM would (exit code 143), since another machine may be running the day.

use std::time::Duration;

use anyhow::anyhow;

use crate::exit::Failure;
use crate::storage::{StorageError, Store, StoreOptions, Version};

use super::WindowDay;

/// The lock's name in the day's run location.
pub const LOCK_NAME: &str = ".lock";
/// How long a lock may go without a renewal before another run may take it over.
pub const LEASE: Duration = Duration::from_secs(180);
/// How often the holder renews its lock: six renewals fit in a [`LEASE`], so a store that
/// fails a few of them in a row does not cost the lock.
pub const RENEW_EVERY: Duration = Duration::from_secs(30);

/// What the lock object holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// When the holder took the lock and last renewed it (RFC 3339, UTC, by its own clock).
    pub since: String,
    pub renewed_at: String,
    /// This holder's own identity: a restarted run with the same host and pid is another one.
    pub token: String,
}

impl Holder {
    fn new() -> Holder {
        let now = now();
        Holder {
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            since: now.clone(),
            renewed_at: now,
            token: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!(
            "host {} pid {} since {}, renewed at {}",
            self.host, self.pid, self.since, self.renewed_at
        )
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// When a lock found in the store was last renewed: as its holder wrote it, by the holder's
/// clock (machines that share a run location keep their clocks within seconds of each other
/// with NTP, and the lease is minutes long); the store's time of the write when the lock cannot
/// be read (a lock being written on SFTP, or not batchwin's).
fn last_renewed(
    holder: Option<&Holder>,
    modified: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    holder
        .and_then(|h| chrono::DateTime::parse_from_rfc3339(&h.renewed_at).ok())
        .map_or(modified, |t| t.with_timezone(&chrono::Utc))
}

/// Whether a lock last renewed at `renewed` is stale at `now`.
fn is_stale(renewed: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> bool {
    (now - renewed).to_std().is_ok_and(|age| age >= LEASE)
}

/// The lock held at a run location; renewed by a thread of its own until dropped, then deleted.
pub(crate) struct Lease {
    stop: Option<std::sync::mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

/// What the renewing thread holds.
struct Held {
    rt: tokio::runtime::Runtime,
    store: Store,
    holder: Holder,
    version: Version,
}

impl Lease {
    /// Takes the lock of window day `w` at the run location `url` (`URL/DATE-WINDOW`): created
    /// when there is none, taken over when it is stale, refused (exit code 1) while another run
    /// holds it. A store that cannot be reached, after its retries, ends the run with exit
    /// code 3.
    pub fn take(url: &str, opts: &StoreOptions, w: &WindowDay) -> Result<Lease, Failure> {
        let rt = crate::transfer::runtime()?;
        let store = rt.block_on(Store::open(url, opts))?;
        let (holder, version) = rt.block_on(acquire(&store, w))?;
        let (stop, stopped) = std::sync::mpsc::channel();
        let held = Held {
            rt,
            store,
            holder,
            version,
        };
        let renewer = std::thread::Builder::new()
            .name("run-location lock".into())
            .spawn(move || held.renew_until(&stopped))
            .map_err(|e| Failure::data(anyhow!("cannot start the lock's renewal: {e}")))?;
        Ok(Lease {
            stop: Some(stop),
            renewer: Some(renewer),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
    }
}

/// Takes the lock: see [`Lease::take`].
async fn acquire(store: &Store, w: &WindowDay) -> Result<(Holder, Version), Failure> {
    let mut holder = Holder::new();
    // A lock deleted, or taken over by another, between two requests: look again, a few times.
    for _ in 0..5 {
        let bytes = holder.bytes();
        match store.create_bytes(LOCK_NAME, &bytes).await {
            Ok(v) => return Ok((holder, v)),
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(not_taken(e)),
        }
        let Some(found) = store.get_versioned(LOCK_NAME).await.map_err(not_taken)? else {
            continue;
        };
        // A create retried after a lost answer: the first attempt made it.
        if found.bytes == bytes {
            return Ok((holder, found.version));
        }
        let other: Option<Holder> = serde_json::from_slice(&found.bytes).ok();
        let renewed = last_renewed(other.as_ref(), found.modified);
        if !is_stale(renewed, chrono::Utc::now()) {
            return Err(Failure::data(anyhow!(
                "another run of window `{}` for {} is in progress ({}); not starting. Its lock: \
                 `{}` (taken over once not renewed for {})",
                w.name,
                w.date,
                other.as_ref().map_or_else(
                    || "a lock being written, holder unknown".to_string(),
                    Holder::describe
                ),
                store.url_of(LOCK_NAME),
                humantime::format_duration(LEASE)
            )));
        }
        holder.renewed_at = now();
        let bytes = holder.bytes();
        match store.replace_bytes(LOCK_NAME, &bytes, &found.version).await {
            Ok(v) => {
                println!(
                    "lock       took over the stale lock `{}` ({}), not renewed for more than {}",
                    store.url_of(LOCK_NAME),
                    other
                        .as_ref()
                        .map_or_else(|| "holder unknown".to_string(), Holder::describe),
                    humantime::format_duration(LEASE)
                );
                return Ok((holder, v));
            }
            // Someone else renewed it, took it over or released it meanwhile: look again.
            Err(StorageError::Conflict { .. }) => {}
            Err(e) => return Err(not_taken(e)),
        }
    }
    Err(Failure::retryable(anyhow!(
        "the lock `{}` kept changing while this run tried to take it; run again",
        store.url_of(LOCK_NAME)
    )))
}

/// A store's error while the lock is taken, saying so, with the exit status the error calls
/// for (3 when running again may help).
fn not_taken(e: StorageError) -> Failure {
    Failure {
        status: e.exit_status(),
        error: anyhow::Error::from(e).context("cannot take the run location's lock; not starting"),
    }
}

impl Held {
    /// Renews the lock every [`RENEW_EVERY`] until `stopped` says the run ended, then deletes
    /// it (when it is still this run's). A lock lost stops the run.
    fn renew_until(mut self, stopped: &std::sync::mpsc::Receiver<()>) {
        let mut renewed = std::time::Instant::now();
        // Until the run ends (the sender dropped), a renewal at each timeout.
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            stopped.recv_timeout(RENEW_EVERY)
        {
            match self.renew() {
                Ok(()) => renewed = std::time::Instant::now(),
                Err(Lost::To(other)) => {
                    self.lost(&format!("another holder has it now ({other})"));
                    return;
                }
                Err(Lost::NotRenewed(e)) if renewed.elapsed() >= LEASE => {
                    self.lost(&format!(
                        "it could not be renewed for {} ({e}), so another run may have taken it over",
                        humantime::format_duration(LEASE)
                    ));
                    return;
                }
                Err(Lost::NotRenewed(e)) => {
                    tracing::warn!(
                        "cannot renew the lock `{}` (trying again in {} s): {e}",
                        self.store.url_of(LOCK_NAME),
                        RENEW_EVERY.as_secs()
                    );
                }
            }
        }
        self.release();
    }

    /// One renewal: the lock rewritten with a new `renewed_at`, only while it is the version
    /// this run last wrote.
    fn renew(&mut self) -> Result<(), Lost> {
        let mut next = self.holder.clone();
        next.renewed_at = now();
        let bytes = next.bytes();
        let store = &self.store;
        let r = self.rt.block_on(async {
            match store.replace_bytes(LOCK_NAME, &bytes, &self.version).await {
                Ok(v) => Ok(v),
                Err(StorageError::Conflict { .. }) => {
                    // A replace retried after a lost answer may have made it the first time.
                    match store.get_versioned(LOCK_NAME).await {
                        Ok(Some(found)) if found.bytes == bytes => Ok(found.version),
                        Ok(Some(found)) => Err(Lost::To(
                            serde_json::from_slice::<Holder>(&found.bytes)
                                .map_or_else(|_| "an unreadable lock".into(), |h| h.describe()),
                        )),
                        Ok(None) => Err(Lost::To("no lock: it was deleted".into())),
                        Err(e) => Err(Lost::NotRenewed(e.to_string())),
                    }
                }
                Err(e) => Err(Lost::NotRenewed(e.to_string())),
            }
        })?;
        self.holder = next;
        self.version = r;
        Ok(())
    }

    /// Says that the lock was lost and stops the run as a SIGTERM would: its steps are told
    /// to stop, and the run ends with exit code 143.
    fn lost(&self, why: &str) {
        tracing::error!(
            "lost the lock `{}` of this run ({}): {why}; stopping",
            self.store.url_of(LOCK_NAME),
            self.holder.describe()
        );
        // SAFETY: raise(3) with a plain signal number has no memory effects; the run's
        // handler only sets a flag.
        unsafe {
            libc::raise(libc::SIGTERM);
        }
    }

    /// Deletes the lock when it is still this run's (read, compared, deleted: object stores
    /// have no conditional delete, and a lock that is still this run's is not stale, so no
    /// other run is taking it over).
    fn release(&self) {
        let store = &self.store;
        let mine = self.holder.bytes();
        let r = self.rt.block_on(async {
            match store.get_versioned(LOCK_NAME).await? {
                Some(found) if found.bytes == mine => store.delete(LOCK_NAME).await,
                _ => Ok(()),
            }
        });
        if let Err(e) = r {
            tracing::warn!(
                "cannot delete the lock `{}` (the next run takes it over once it is {} old): {e}",
                store.url_of(LOCK_NAME),
                humantime::format_duration(LEASE)
            );
        }
    }
}

/// Why a renewal did not happen.
enum Lost {
    /// The lock is someone else's now (described).
    To(String),
    /// The store did not take the renewal (the error): tried again at the next tick.
    NotRenewed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_stale_once_not_renewed_for_the_lease() {
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&chrono::Utc)
        };
        let holder = Holder {
            host: "h".into(),
            pid: 1,
            since: "2026-12-03T06:00:00Z".into(),
            renewed_at: "2026-12-03T06:10:00Z".into(),
            token: "x".into(),
        };
        // The holder's time; the store's when there is no holder to read.
        let r = last_renewed(Some(&holder), t("2026-12-03T06:11:00Z"));
        assert_eq!(r, t("2026-12-03T06:10:00Z"));
        assert_eq!(
            last_renewed(None, t("2026-12-03T06:09:00Z")),
            t("2026-12-03T06:09:00Z")
        );
        assert!(!is_stale(r, t("2026-12-03T06:12:59Z")));
        assert!(is_stale(r, t("2026-12-03T06:13:00Z")));
        // A renewal in the future (a clock ahead) is not stale.
        assert!(!is_stale(r, t("2026-12-03T06:00:00Z")));
    }

    /// In a folder: a second run is refused; the holder renews its lock, finds out when another
    /// run has taken it, and then leaves that run's lock alone; a lock still its own it deletes.
    #[test]
    fn the_holder_renews_finds_a_lock_taken_over_and_deletes_only_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let w = crate::window::day::test_day();
        let open = || {
            let rt = crate::transfer::runtime().expect("runtime");
            let store = rt
                .block_on(Store::open(
                    &dir.path().display().to_string(),
                    &StoreOptions::default(),
                ))
                .expect("store");
            (rt, store)
        };
        let (rt, store) = open();
        let (holder, version) = rt.block_on(acquire(&store, &w)).expect("taken");
        let refused = match rt.block_on(acquire(&store, &w)) {
            Ok(_) => panic!("a second lock was granted"),
            Err(f) => format!("{:#}", f.error),
        };
        assert!(
            refused.contains(&format!(
                "another run of window `morning` for 2026-12-03 is in progress (host {} pid {}",
                holder.host, holder.pid
            )),
            "{refused}"
        );
        let mut held = Held {
            rt,
            store,
            holder,
            version,
        };
        assert!(held.renew().is_ok(), "renewed");
        let lock = dir.path().join(LOCK_NAME);
        let renewed: Holder =
            serde_json::from_slice(&std::fs::read(&lock).expect("lock")).expect("json");
        assert_eq!(renewed, held.holder);
        held.release();
        assert!(!lock.exists(), "its own lock is deleted");

        // Taken over by another run meanwhile: lost, and the other's lock is left alone.
        let (rt, store) = open();
        let (holder, version) = rt.block_on(acquire(&store, &w)).expect("taken");
        let mut held = Held {
            rt,
            store,
            holder,
            version,
        };
        let mut other = Holder::new();
        other.host = "other-host".into();
        std::fs::write(&lock, other.bytes()).expect("taken over");
        match held.renew() {
            Err(Lost::To(who)) => assert!(who.contains("host other-host"), "{who}"),
            _ => panic!("the renewal did not find the lock lost"),
        }
        held.release();
        assert_eq!(std::fs::read(&lock).expect("still there"), other.bytes());
    }
}
