//! The lock at a run location (`URL/DATE-WINDOW/.lock`) that keeps two machines running the
//! same window and day apart, as [`super::lock`] does for runs sharing a local run folder. No
//! OS lock reaches across machines, so it is a lease: a small JSON object naming its holder
//! (host, pid, since, renewed at, and a token of its own), taken by a conditional creation,
//! renewed every [`RENEW_EVERY`] by a thread of the run while the run goes on, and deleted
//! when the run ends, normally or by an error. A run killed outright (SIGKILL, a machine that
//! went down) leaves it behind: once it has not been renewed for [`LEASE`] it is stale, and the
//! next run takes it over. A `renewed_at` more than [`CLOCK_TOLERANCE`] ahead of the reader's
//! clock is not believed: the store's time of the lock's last write stands for it.
//!
//! On object stores (S3, Azure Blob, GCS) every write of the lock is one conditional request
//! ([`crate::storage::Conditional::Atomic`]): the creation is refused when a lock is there
//! (`If-None-Match: *`), a renewal and a takeover only while the lock is the version read
//! (`If-Match` on its ETag), so two machines taking over the same stale lock cannot both win,
//! and a holder whose lock was taken over finds out at its next renewal. The test servers
//! (moto, s3s-fs, Azurite) all honour these preconditions. On SFTP and in folders each write is
//! a temporary file renamed (never a lock written in place), the creation exclusive too, but a
//! renewal or a takeover is a read, a comparison and a rename
//! ([`crate::storage::Conditional::CheckThenWrite`]). So a takeover there is made only by the
//! run that first claims that version of the stale lock, by creating a claim beside it
//! exclusively ([`take_over`]): of several runs taking the same stale lock over at once, one
//! wins. A claim left by a run that died holds for [`CLAIM_STALE`].
//!
//! Whose lock it is is judged by its token, not its bytes: a write of this run's that the
//! store took but whose answer was lost (and that a retry then found changed, or there) is
//! adopted. A holder that finds at a renewal that its lock holds another token (or is gone) has
//! lost it: it says so and stops its run as a SIGTERM would (exit code 143), since another
//! machine may be running the day. So does a holder that could not renew it for [`GIVE_UP`],
//! counted from when its last renewal that the store took was sent, every attempt cut off when
//! that time runs out: the run, with its steps' grace period, has then stopped before any other
//! run may find the lock stale (the invariant is stated and checked beside [`GIVE_UP`]). The
//! lock is deleted at the end only while its last renewal is younger than [`GIVE_UP`], so no
//! takeover can come between the read and the delete; on S3 and Azure Blob the delete is
//! conditional too (`If-Match`, see [`Store::delete_if`]), on GCS, SFTP and in folders it is
//! not (`object_store` 0.14 has no conditional delete, and SFTP none at all).

use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::exit::Failure;
use crate::storage::{Conditional, StorageError, Store, StoreOptions, Version, Versioned};

use super::WindowDay;

/// The lock's name in the day's run location.
pub const LOCK_NAME: &str = ".lock";
/// How long a lock may go without a renewal before another run may take it over.
pub const LEASE: Duration = Duration::from_secs(180);
/// How often the holder renews its lock.
pub const RENEW_EVERY: Duration = Duration::from_secs(30);
/// How long the holder goes on without a renewal before it gives up its run (stops it as a
/// SIGTERM would): counted from the moment the last renewal the store took was *sent*, and
/// every renewal attempt is cut off when this time runs out, whatever the store's retries.
pub const GIVE_UP: Duration = LEASE.saturating_sub(RENEW_EVERY.saturating_mul(2));
/// How far ahead of this machine's clock a lock's `renewed_at` may be and still be believed:
/// further ahead, it was written by a clock that ran ahead (of a holder that may be long
/// dead), and the store's time of the write stands for it instead.
pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(30);

// The invariant that keeps two runs apart: a holder that could not renew gives up at
// `GIVE_UP`, and its steps then have the grace period (`--grace-period`, 25 s by default) to
// stop; all of that, plus clocks that disagree by up to `CLOCK_TOLERANCE`, ends before any
// other run may judge the lock stale at `LEASE`:
//
//     GIVE_UP + default grace + CLOCK_TOLERANCE <= LEASE     (120 s + 25 s + 30 s <= 180 s)
//
// and the holder tries more than once before it gives up (`RENEW_EVERY < GIVE_UP`). A grace
// period set longer than `LEASE - GIVE_UP - CLOCK_TOLERANCE` (35 s) voids the guarantee.
const _: () = assert!(
    GIVE_UP.as_secs() + crate::cancel::DEFAULT_GRACE_SECONDS + CLOCK_TOLERANCE.as_secs()
        <= LEASE.as_secs()
        && RENEW_EVERY.as_secs() < GIVE_UP.as_secs()
);

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

    /// The holder a lock found in the store names; `None` when it is not batchwin's JSON.
    fn of(found: &Versioned) -> Option<Holder> {
        serde_json::from_slice(&found.bytes).ok()
    }

    /// Whether the lock `found` is this holder's (the same token), whatever renewal of it.
    fn owns(&self, found: &Versioned) -> bool {
        Holder::of(found).is_some_and(|h| h.token == self.token)
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// When a lock found in the store was last renewed: as its holder wrote it, by the holder's
/// clock (machines that share a run location keep their clocks within seconds of each other
/// with NTP, and the lease is minutes long); the store's time of the write when the lock cannot
/// be read (a lock not batchwin's) or when its `renewed_at` is more than [`CLOCK_TOLERANCE`]
/// ahead of `now` (a clock that ran ahead: believed, such a lock would never go stale).
fn last_renewed(
    holder: Option<&Holder>,
    modified: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    let ahead = chrono::Duration::from_std(CLOCK_TOLERANCE).unwrap_or_default();
    holder
        .and_then(|h| chrono::DateTime::parse_from_rfc3339(&h.renewed_at).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .filter(|t| *t <= now + ahead)
        .unwrap_or(modified)
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
    /// When the last write of the lock that the store took was sent (before it was sent: the
    /// lock's `renewed_at` is no older than this).
    renewed: Instant,
}

impl Lease {
    /// Takes the lock of window day `w` at the run location `url` (`URL/DATE-WINDOW`): created
    /// when there is none, taken over when it is stale, refused (exit code 1) while another run
    /// holds it. A store that cannot be reached, after its retries, ends the run with exit
    /// code 3.
    pub fn take(url: &str, opts: &StoreOptions, w: &WindowDay) -> Result<Lease, Failure> {
        let rt = crate::transfer::runtime()?;
        let store = rt.block_on(Store::open(url, opts))?;
        let (holder, version, renewed) = rt.block_on(acquire(&store, w))?;
        let (stop, stopped) = std::sync::mpsc::channel();
        let held = Held {
            rt,
            store,
            holder,
            version,
            renewed,
        };
        // The thread gets what it holds once it runs: if it cannot start, the lock just taken
        // is released here.
        let (give, given) = std::sync::mpsc::channel::<Held>();
        let started = std::thread::Builder::new()
            .name("run-location lock".into())
            .spawn(move || {
                if let Ok(held) = given.recv() {
                    held.renew_until(&stopped);
                }
            });
        let renewer = match started {
            Ok(t) => t,
            Err(e) => {
                held.release();
                return Err(Failure::data(anyhow!(
                    "cannot start the lock's renewal: {e}"
                )));
            }
        };
        if let Err(std::sync::mpsc::SendError(held)) = give.send(held) {
            held.release();
            let _ = renewer.join();
            return Err(Failure::data(anyhow!(
                "the lock's renewal stopped as it started"
            )));
        }
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

/// Takes the lock: see [`Lease::take`]. Gives the holder written, its version, and when the
/// write that the store took was sent.
async fn acquire(store: &Store, w: &WindowDay) -> Result<(Holder, Version, Instant), Failure> {
    acquire_as(store, w, Holder::new()).await
}

/// [`acquire`] as `holder`.
async fn acquire_as(
    store: &Store,
    w: &WindowDay,
    mut holder: Holder,
) -> Result<(Holder, Version, Instant), Failure> {
    let started = Instant::now();
    let mut sent = started;
    // A lock deleted, or taken over by another, between two requests: look again, a few times.
    for _ in 0..5 {
        let bytes = holder.bytes();
        match store.create_bytes(LOCK_NAME, &bytes).await {
            Ok(v) => return Ok((holder, v, sent)),
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(not_taken(e)),
        }
        let Some(found) = store.get_versioned(LOCK_NAME).await.map_err(not_taken)? else {
            continue;
        };
        let other = Holder::of(&found);
        // A write retried after a lost answer: an earlier attempt of this run made it.
        if let Some(mine) = other.clone().filter(|h| h.token == holder.token) {
            let at = if found.bytes == bytes { sent } else { started };
            return Ok((mine, found.version, at));
        }
        let renewed = last_renewed(other.as_ref(), found.modified, chrono::Utc::now());
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
        sent = Instant::now();
        holder.renewed_at = now();
        match take_over(store, &found, &holder).await {
            Ok(v) => {
                println!(
                    "lock       took over the stale lock `{}` ({}), not renewed for more than {}",
                    store.url_of(LOCK_NAME),
                    other
                        .as_ref()
                        .map_or_else(|| "holder unknown".to_string(), Holder::describe),
                    humantime::format_duration(LEASE)
                );
                return Ok((holder, v, sent));
            }
            // Someone else renewed it, took it over or released it meanwhile, or this very
            // write made it before its answer was lost: look again.
            Err(StorageError::Conflict { .. }) => {}
            Err(e) => return Err(not_taken(e)),
        }
    }
    Err(Failure::retryable(anyhow!(
        "the lock `{}` kept changing while this run tried to take it; run again",
        store.url_of(LOCK_NAME)
    )))
}

/// How long a claim on a stale lock ([`take_over`]) keeps other runs from taking that lock
/// over, judged as a lock is (by the `renewed_at` in it, see [`last_renewed`]): three times
/// [`TAKEOVER_WITHIN`], so only a claim whose run died is that old.
pub const CLAIM_STALE: Duration = Duration::from_secs(180);
/// How long a run that made a claim may take to replace the lock: it gives up after that, with
/// the claim left to go stale.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(60);

/// The name of the claim on the lock version `v` ([`take_over`]): `.lock.takeover-` and the
/// start of the version's checksum, hidden like the lock.
fn claim_name(v: &Version) -> String {
    format!(
        "{LOCK_NAME}.takeover-{}",
        v.sha256.get(..16).unwrap_or(&v.sha256)
    )
}

/// Replaces the stale lock `found` by `holder`'s, as one run only. On object stores that is
/// the conditional replacement itself (`If-Match`). On SFTP and in folders a replacement is a
/// read, a comparison and a rename, so two runs replacing the same stale lock at once could
/// both succeed: there a run first claims that version of the lock, creating
/// [`claim_name`] exclusively (a rename that never replaces), replaces the lock only with the
/// claim made (within [`TAKEOVER_WITHIN`]), and deletes the claim after. Of several runs taking
/// the same stale lock over, one makes the claim; the others are told the lock changed
/// (`Conflict`) and look again. The lock itself is never absent meanwhile. A claim holding
/// `holder`'s own token (a creation retried after its answer was lost) is its own. A claim
/// left by a run that died is removed once [`CLAIM_STALE`] old, by the one run that creates
/// the marker `CLAIM.stale-` and the start of that claim's checksum, exclusively: it deletes
/// the claim only while it is still that one, so a run that came late never deletes a newer
/// claim. Markers stay (a few bytes, and only where a run died while taking a lock over).
async fn take_over(
    store: &Store,
    found: &Versioned,
    holder: &Holder,
) -> Result<Version, StorageError> {
    let bytes = holder.bytes();
    if store.conditional() == Conditional::Atomic {
        return store.replace_bytes(LOCK_NAME, &bytes, &found.version).await;
    }
    let claim = claim_name(&found.version);
    let conflict = |store: String| StorageError::Conflict {
        store,
        name: LOCK_NAME.to_string(),
    };
    match store.create_bytes(&claim, &bytes).await {
        Ok(_) => {}
        Err(StorageError::AlreadyExists { store: s, .. }) => {
            let Some(there) = store.get_versioned(&claim).await? else {
                return Err(conflict(s));
            };
            if holder.owns(&there) {
                return replace_and_unclaim(store, found, &bytes, &claim).await;
            }
            let now = chrono::Utc::now();
            let renewed = last_renewed(Holder::of(&there).as_ref(), there.modified, now);
            if (now - renewed).to_std().is_ok_and(|age| age >= CLAIM_STALE) {
                let marker = format!("{claim}.stale-{}", &there.version.sha256[..16]);
                if store.create_bytes(&marker, b"").await.is_ok()
                    && store
                        .get_versioned(&claim)
                        .await?
                        .is_some_and(|c| c.version.sha256 == there.version.sha256)
                {
                    tracing::warn!(
                        "deleting the claim `{}` on the stale lock, left by a run that did not \
                         finish taking the lock over",
                        store.url_of(&claim)
                    );
                    store.delete(&claim).await?;
                }
            }
            return Err(conflict(s));
        }
        Err(e) => return Err(e),
    }
    replace_and_unclaim(store, found, &bytes, &claim).await
}

/// The replacement of [`take_over`] once the claim is made, within [`TAKEOVER_WITHIN`], and
/// the claim's deletion.
async fn replace_and_unclaim(
    store: &Store,
    found: &Versioned,
    bytes: &[u8],
    claim: &str,
) -> Result<Version, StorageError> {
    let replace = store.replace_bytes(LOCK_NAME, bytes, &found.version);
    let replaced = match tokio::time::timeout(TAKEOVER_WITHIN, replace).await {
        Ok(r) => r,
        Err(_) => {
            // The claim is left to go stale: the replacement may still land meanwhile.
            return Err(StorageError::Transient {
                store: store.url().to_string(),
                message: format!(
                    "the takeover of the stale lock did not finish within {}",
                    humantime::format_duration(TAKEOVER_WITHIN)
                ),
            });
        }
    };
    if let Err(e) = store.delete(claim).await {
        tracing::warn!(
            "cannot delete the claim `{}`, which no run looks at once the lock is replaced: \
             it may be deleted by hand: {e}",
            store.url_of(claim)
        );
    }
    replaced
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
    /// it (when it is still this run's). A lock lost, or not renewed for [`GIVE_UP`], stops the
    /// run.
    fn renew_until(mut self, stopped: &std::sync::mpsc::Receiver<()>) {
        loop {
            let left = self.left();
            if left.is_zero() {
                self.lost(&format!(
                    "it could not be renewed for {}, and another run may take it over once it \
                     is {} old",
                    humantime::format_duration(GIVE_UP),
                    humantime::format_duration(LEASE)
                ));
                return;
            }
            // Until the run ends (the sender dropped), a renewal at each timeout, and a look
            // at the time left at the latest when it runs out.
            match stopped.recv_timeout(RENEW_EVERY.min(left)) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => break,
            }
            let left = self.left();
            if left.is_zero() {
                continue;
            }
            match self.renew(left) {
                Ok(()) => {}
                Err(Lost::To(other)) => {
                    self.lost(&format!("another holder has it now ({other})"));
                    return;
                }
                Err(Lost::NotRenewed(e)) => {
                    tracing::warn!(
                        "cannot renew the lock `{}` (trying again in {} s; this run stops if it \
                         cannot for {}): {e}",
                        self.store.url_of(LOCK_NAME),
                        RENEW_EVERY.min(self.left()).as_secs(),
                        humantime::format_duration(GIVE_UP)
                    );
                }
            }
        }
        self.release();
    }

    /// The time left before this holder gives up its lock.
    fn left(&self) -> Duration {
        GIVE_UP.saturating_sub(self.renewed.elapsed())
    }

    /// One renewal, given up after `within` (the store's retries included): the lock rewritten
    /// with a new `renewed_at`, only while it is the version this run last wrote. A lock found
    /// changed that is still this run's (a renewal whose answer was lost made it) is adopted,
    /// and renewed again.
    fn renew(&mut self, within: Duration) -> Result<(), Lost> {
        let sent = Instant::now();
        let mut next = self.holder.clone();
        next.renewed_at = now();
        let bytes = next.bytes();
        let store = &self.store;
        let version = self.version.clone();
        let attempt = async {
            let mut expected = version;
            // The renewal, then at most once more on the version of this run's own lock found.
            for _ in 0..2 {
                match store.replace_bytes(LOCK_NAME, &bytes, &expected).await {
                    Ok(v) => return Ok(v),
                    Err(StorageError::Conflict { .. }) => {}
                    Err(e) => return Err(Lost::NotRenewed(e.to_string())),
                }
                let found = match store.get_versioned(LOCK_NAME).await {
                    Ok(Some(found)) => found,
                    Ok(None) => return Err(Lost::To("no lock: it was deleted".into())),
                    Err(e) => return Err(Lost::NotRenewed(e.to_string())),
                };
                if found.bytes == bytes {
                    return Ok(found.version);
                }
                match Holder::of(&found) {
                    Some(h) if h.token == next.token => expected = found.version,
                    Some(h) => return Err(Lost::To(h.describe())),
                    // Not JSON: a lock being written (SFTP without posix-rename) or damaged,
                    // which a later renewal or the store's own time settles.
                    None => {
                        return Err(Lost::NotRenewed(format!(
                            "`{}` holds no lock that can be read",
                            store.url_of(LOCK_NAME)
                        )));
                    }
                }
            }
            Err(Lost::NotRenewed(format!(
                "`{}` kept changing while it was renewed",
                store.url_of(LOCK_NAME)
            )))
        };
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(within, attempt).await })
            .unwrap_or_else(|_| {
                Err(Lost::NotRenewed(format!(
                    "no renewal within {}",
                    humantime::format_duration(Duration::from_secs(within.as_secs().max(1)))
                )))
            })?;
        self.holder = next;
        self.version = r;
        self.renewed = sent;
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

    /// Deletes the lock when it is still this run's: read, its token compared, then deleted,
    /// all within the time left before [`GIVE_UP`]. A lock not renewed for that long is left
    /// alone (another run may be about to take it over, and the next run takes it over once
    /// stale): while the holder is within it, no other run can judge its lock stale, so no
    /// takeover can come between the read and the delete. The delete is conditional on S3 and
    /// Azure Blob (`If-Match` on the ETag read), and plain elsewhere or where that fails.
    fn release(&self) {
        let store = &self.store;
        let left = self.left();
        if left.is_zero() {
            tracing::warn!(
                "the lock `{}` was left as it is: it was not renewed for {}, so another run may \
                 be taking it over (the next run takes it over once it is {} old)",
                store.url_of(LOCK_NAME),
                humantime::format_duration(GIVE_UP),
                humantime::format_duration(LEASE)
            );
            return;
        }
        let r = self.rt.block_on(async {
            let delete = async {
                match store.get_versioned(LOCK_NAME).await? {
                    Some(found) if self.holder.owns(&found) => {
                        match store.delete_if(LOCK_NAME, &found.version).await {
                            Ok(true) => Ok(()),
                            // Changed since it was read: not this run's to delete any more.
                            Err(StorageError::Conflict { .. }) => Ok(()),
                            // A store that cannot delete conditionally: a plain delete, which
                            // the time left keeps apart from any takeover.
                            Ok(false) => store.delete(LOCK_NAME).await,
                            // A conditional delete that failed (its signed request goes without
                            // the store's proxy and certificate settings), or that deleted it
                            // and lost its answer: plainly, only while the lock is still this
                            // run's (a new run may have made its own meanwhile).
                            Err(_) => match store.get_versioned(LOCK_NAME).await? {
                                Some(now) if self.holder.owns(&now) => {
                                    store.delete(LOCK_NAME).await
                                }
                                _ => Ok(()),
                            },
                        }
                    }
                    _ => Ok(()),
                }
            };
            tokio::time::timeout(left, delete).await
        });
        let e = match r {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "no answer within the {} the lock had left",
                humantime::format_duration(Duration::from_secs(left.as_secs().max(1)))
            ),
        };
        tracing::warn!(
            "cannot delete the lock `{}` (the next run takes it over once it is {} old): {e}",
            store.url_of(LOCK_NAME),
            humantime::format_duration(LEASE)
        );
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

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&chrono::Utc)
    }

    /// The holder gives up, and its steps have had their grace period, before any other run
    /// may find its lock stale, even by a clock `CLOCK_TOLERANCE` ahead of its own.
    #[test]
    fn a_holder_stops_before_its_lock_can_be_taken_over() {
        let grace = crate::cancel::default_grace();
        assert_eq!(
            humantime::parse_duration(crate::cancel::DEFAULT_GRACE_PERIOD).expect("grace"),
            grace
        );
        assert_eq!(GIVE_UP, LEASE - 2 * RENEW_EVERY);
        assert!(GIVE_UP + grace + CLOCK_TOLERANCE <= LEASE, "{GIVE_UP:?}");
        assert!(RENEW_EVERY < GIVE_UP);
        // A renewal sent at 06:10:00 that the store took: the holder stops by 06:12:00 plus
        // the grace; another run looking with a clock 30 s ahead finds it stale only at
        // 06:13:00 by its clock, 06:12:30 by the holder's.
        let renewed = t("2026-12-03T06:10:00Z");
        let stopped = renewed + chrono::Duration::from_std(GIVE_UP + grace).expect("d");
        let skew = chrono::Duration::from_std(CLOCK_TOLERANCE).expect("d");
        assert!(!is_stale(renewed, stopped + skew));
    }

    #[test]
    fn a_lock_is_stale_once_not_renewed_for_the_lease() {
        let holder = Holder {
            host: "h".into(),
            pid: 1,
            since: "2026-12-03T06:00:00Z".into(),
            renewed_at: "2026-12-03T06:10:00Z".into(),
            token: "x".into(),
        };
        let now = t("2026-12-03T06:11:00Z");
        // The holder's time; the store's when there is no holder to read.
        let r = last_renewed(Some(&holder), t("2026-12-03T06:11:00Z"), now);
        assert_eq!(r, t("2026-12-03T06:10:00Z"));
        assert_eq!(
            last_renewed(None, t("2026-12-03T06:09:00Z"), now),
            t("2026-12-03T06:09:00Z")
        );
        assert!(!is_stale(r, t("2026-12-03T06:12:59Z")));
        assert!(is_stale(r, t("2026-12-03T06:13:00Z")));
    }

    /// A `renewed_at` ahead of the clock: believed within `CLOCK_TOLERANCE`; beyond it, the
    /// store's time of the write stands for it, so a lock of a holder whose clock ran ahead
    /// and that died goes stale a `LEASE` after its last write.
    #[test]
    fn a_renewal_in_the_future_is_not_believed() {
        let ahead = |renewed_at: &str| Holder {
            host: "fast-clock".into(),
            pid: 1,
            since: "2026-12-03T06:00:00Z".into(),
            renewed_at: renewed_at.into(),
            token: "x".into(),
        };
        let now = t("2026-12-03T06:10:00Z");
        let written = t("2026-12-03T06:06:00Z");
        let near = ahead("2026-12-03T06:10:20Z");
        assert_eq!(
            last_renewed(Some(&near), written, now),
            t("2026-12-03T06:10:20Z")
        );
        let far = ahead("2027-01-01T00:00:00Z");
        let r = last_renewed(Some(&far), written, now);
        assert_eq!(r, written);
        assert!(is_stale(r, now));
    }

    fn open(dir: &std::path::Path) -> (tokio::runtime::Runtime, Store) {
        let rt = crate::transfer::runtime().expect("runtime");
        let store = rt
            .block_on(Store::open(
                &dir.display().to_string(),
                &StoreOptions::default(),
            ))
            .expect("store");
        (rt, store)
    }

    fn held(dir: &std::path::Path) -> Held {
        let w = crate::window::day::test_day();
        let (rt, store) = open(dir);
        let (holder, version, renewed) = rt.block_on(acquire(&store, &w)).expect("taken");
        Held {
            rt,
            store,
            holder,
            version,
            renewed,
        }
    }

    /// Of the `results` of runs racing for the stale lock in `dir`: exactly one took it over
    /// and holds it; each other one was told the lock is taken, or that it kept changing (no
    /// error of the server's, such as a rename refused while the claim came and went); and
    /// nothing but the lock is left.
    fn one_won(
        results: &[Result<(Holder, Version, Instant), Failure>],
        dir: &std::path::Path,
        round: usize,
    ) {
        let won: Vec<&Holder> = results.iter().flatten().map(|(h, _, _)| h).collect();
        assert_eq!(won.len(), 1, "round {round}: {} took it over", won.len());
        for f in results.iter().filter_map(|r| r.as_ref().err()) {
            let e = crate::exit::error_text(&f.error);
            assert!(
                e.contains("is in progress") || e.contains("kept changing"),
                "round {round}: {e}"
            );
        }
        let now: Holder =
            serde_json::from_slice(&std::fs::read(dir.join(LOCK_NAME)).unwrap()).unwrap();
        assert_eq!(&now, won[0]);
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [LOCK_NAME], "round {round}");
    }

    /// Several runs finding the same stale lock at once in a folder, where a replacement is
    /// checked then written: exactly one takes it over (the others find it taken), and no
    /// claim is left beside it. A claim that a run which died left on a stale lock keeps the
    /// lock from being taken over only until it is `CLAIM_STALE` old.
    #[test]
    fn of_several_runs_taking_over_a_stale_lock_one_wins() {
        let w = crate::window::day::test_day();
        let gone = Holder {
            host: "gone-host".into(),
            renewed_at: "2026-01-01T00:00:00.000Z".into(),
            ..Holder::new()
        };
        for round in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let (rt, store) = open(dir.path());
            std::fs::write(dir.path().join(LOCK_NAME), gone.bytes()).expect("stale lock");
            let results = rt.block_on(futures::future::join_all(
                (0..6).map(|_| acquire(&store, &w)),
            ));
            one_won(&results, dir.path(), round);
        }

        let dir = tempfile::tempdir().expect("temp dir");
        let (rt, store) = open(dir.path());
        let lock = dir.path().join(LOCK_NAME);
        std::fs::write(&lock, gone.bytes()).expect("stale lock");
        let version = crate::storage::Version::new(None, None, &gone.bytes());
        let claim = dir.path().join(claim_name(&version));
        let left = std::fs::File::create(&claim).expect("a claim left behind");
        let now = std::time::SystemTime::now();
        left.set_modified(now - CLAIM_STALE / 2).unwrap();
        assert!(
            rt.block_on(acquire(&store, &w)).is_err(),
            "a fresh claim holds"
        );
        left.set_modified(now - CLAIM_STALE * 2).unwrap();
        assert!(
            rt.block_on(acquire(&store, &w)).is_ok(),
            "an old claim does not"
        );
        assert!(!claim.exists());
    }

    /// The test SFTP server (`scripts/services/sshd-up`): its URL, the local folder its root
    /// is, and the options with its key and known_hosts. `None` when it is not running (a
    /// failure when the suite requires its services).
    fn sftp_server() -> Option<(String, std::path::PathBuf, StoreOptions)> {
        let Ok(base) = std::env::var("BATCHWIN_TEST_SFTP") else {
            assert!(
                std::env::var_os("BATCHWIN_REQUIRE_SERVICES").is_none(),
                "BATCHWIN_TEST_SFTP is not set: start scripts/services/sshd-up"
            );
            return None;
        };
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
        let mut opts = StoreOptions::default();
        opts.ssh.key = Some(var("BATCHWIN_TEST_SFTP_KEY").into());
        opts.ssh.known_hosts = Some(var("BATCHWIN_TEST_SFTP_KNOWN_HOSTS").into());
        Some((base, var("BATCHWIN_TEST_SFTP_ROOT").into(), opts))
    }

    /// Over SFTP, where a replacement is a read, a comparison and a rename in several
    /// requests: six runs, each with a connection of its own, taking over the same stale lock
    /// at once, their requests interleaved. Exactly one wins and no claim is left. (Without the
    /// claim, several won in every round when this test was written.)
    #[test]
    fn over_sftp_of_several_runs_taking_over_a_stale_lock_one_wins() {
        let Some((base, root, opts)) = sftp_server() else {
            return;
        };
        let w = crate::window::day::test_day();
        let gone = Holder {
            host: "gone-host".into(),
            renewed_at: "2026-01-01T00:00:00.000Z".into(),
            ..Holder::new()
        };
        let rt = crate::transfer::runtime().expect("runtime");
        for round in 0..5 {
            let dir = tempfile::tempdir_in(&root).expect("a folder on the server");
            let url = format!("{base}{}", dir.path().display());
            std::fs::write(dir.path().join(LOCK_NAME), gone.bytes()).expect("stale lock");
            let stores: Vec<Store> = rt.block_on(futures::future::join_all((0..6).map(|_| {
                let (url, opts) = (url.clone(), opts.clone());
                async move {
                    let store = Store::open(&url, &opts).await.expect("store");
                    // Connected before the race starts.
                    store.head(LOCK_NAME).await.expect("connected");
                    store
                }
            })));
            let results = rt.block_on(futures::future::join_all(
                stores.iter().map(|s| acquire(s, &w)),
            ));
            one_won(&results, dir.path(), round);
        }
    }

    /// In a folder: a second run is refused; the holder renews its lock, finds out when another
    /// run has taken it, and then leaves that run's lock alone; a lock still its own it deletes.
    #[test]
    fn the_holder_renews_finds_a_lock_taken_over_and_deletes_only_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let w = crate::window::day::test_day();
        let mut held = held(dir.path());
        let refused = match held.rt.block_on(acquire(&held.store, &w)) {
            Ok(_) => panic!("a second lock was granted"),
            Err(f) => crate::exit::error_text(&f.error),
        };
        assert!(
            refused.contains(&format!(
                "another run of window `morning` for 2026-12-03 is in progress (host {} pid {}",
                held.holder.host, held.holder.pid
            )),
            "{refused}"
        );
        let before = held.renewed;
        assert!(held.renew(GIVE_UP).is_ok(), "renewed");
        assert!(held.renewed > before, "the renewal's time is kept");
        let lock = dir.path().join(LOCK_NAME);
        let renewed: Holder =
            serde_json::from_slice(&std::fs::read(&lock).expect("lock")).expect("json");
        assert_eq!(renewed, held.holder);
        held.release();
        assert!(!lock.exists(), "its own lock is deleted");

        // Taken over by another run meanwhile: lost, and the other's lock is left alone.
        let mut held = self::held(dir.path());
        let mut other = Holder::new();
        other.host = "other-host".into();
        std::fs::write(&lock, other.bytes()).expect("taken over");
        match held.renew(GIVE_UP) {
            Err(Lost::To(who)) => assert!(who.contains("host other-host"), "{who}"),
            _ => panic!("the renewal did not find the lock lost"),
        }
        held.release();
        assert_eq!(std::fs::read(&lock).expect("still there"), other.bytes());
    }

    /// A renewal that the store took but whose answer was lost leaves the holder with a version
    /// that is no longer the lock's: the next renewal finds its own token there, adopts it and
    /// goes on, instead of calling the lock lost; the lock is then deleted as its own.
    #[test]
    fn a_renewal_whose_answer_was_lost_is_adopted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut held = held(dir.path());
        let (old_holder, old_version) = (held.holder.clone(), held.version.clone());
        assert!(held.renew(GIVE_UP).is_ok(), "renewed");
        // The answer "lost": the holder still knows the version before that renewal.
        held.holder = old_holder;
        held.version = old_version;
        match held.renew(GIVE_UP) {
            Ok(()) => {}
            Err(Lost::To(who)) => panic!("its own renewal was taken for another holder: {who}"),
            Err(Lost::NotRenewed(e)) => panic!("not renewed: {e}"),
        }
        let lock = dir.path().join(LOCK_NAME);
        let now: Holder =
            serde_json::from_slice(&std::fs::read(&lock).expect("lock")).expect("json");
        assert_eq!(now, held.holder, "renewed again on the version found");
        held.release();
        assert!(!lock.exists(), "its own lock is deleted");

        // So does the taking of the lock: a creation that the store took but whose answer was
        // lost is retried, finds the lock there (`AlreadyExists`), and the lock with this run's
        // token is this run's, whatever renewal of it is there.
        let w = crate::window::day::test_day();
        let mine = Holder::new();
        for there in [
            mine.clone(),
            Holder {
                renewed_at: "2026-12-03T06:00:00.000Z".into(),
                ..mine.clone()
            },
        ] {
            std::fs::write(&lock, there.bytes()).expect("written");
            let (got, version, _) = held
                .rt
                .block_on(acquire_as(&held.store, &w, mine.clone()))
                .expect("its own lock");
            assert_eq!(got, there);
            assert_eq!(version.sha256, crate::storage::sha256_hex(&there.bytes()));
        }
        // Another run's lock that is not stale is refused, whoever wrote it.
        let other = Holder::new();
        std::fs::write(&lock, other.bytes()).expect("written");
        assert!(held.rt.block_on(acquire_as(&held.store, &w, mine)).is_err());
    }

    /// A lock unreadable at a renewal (a write in progress, damage) is not a loss: the
    /// renewal is tried again; and a holder that did not renew for `GIVE_UP` leaves its lock
    /// alone when its run ends, as another run may be taking it over.
    #[test]
    fn an_unreadable_lock_is_not_a_loss_and_a_lapsed_lock_is_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut held = held(dir.path());
        let lock = dir.path().join(LOCK_NAME);
        let mine = std::fs::read(&lock).expect("lock");
        std::fs::write(&lock, b"{\"host\": \"half").expect("damaged");
        match held.renew(GIVE_UP) {
            Err(Lost::NotRenewed(e)) => assert!(e.contains("no lock that can be read"), "{e}"),
            Err(Lost::To(who)) => panic!("an unreadable lock was taken for a loss: {who}"),
            Ok(()) => panic!("renewed over an unreadable lock"),
        }
        std::fs::write(&lock, &mine).expect("restored");
        held.renewed = Instant::now()
            .checked_sub(GIVE_UP)
            .expect("a clock that far back");
        assert!(held.left().is_zero());
        held.release();
        assert_eq!(std::fs::read(&lock).expect("left"), mine);
    }
}
