//! The lock in a run folder (`RUN/.lock`) that keeps two runs of the same window and day
//! apart: an OS file lock, released when the process ends however it ends, with the holder's
//! pid and start time written in it for the message the second run prints.

use std::path::Path;

use anyhow::{Context, anyhow};

use crate::exit::Failure;

use super::WindowDay;

/// The lock that keeps two runs of the same window and day apart; held until dropped.
pub(crate) struct RunLock(#[allow(dead_code)] std::fs::File);

pub(crate) fn lock(run_dir: &Path, w: &WindowDay) -> Result<RunLock, Failure> {
    use std::io::{Read, Seek, Write};
    let path = run_dir.join(".lock");
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, crate::files::FILE_MODE);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot open `{}`", path.display()))
        .map_err(Failure::data)?;
    match f.try_lock() {
        Ok(()) => {
            let _ = f.set_len(0);
            let _ = f.rewind();
            let _ = write!(
                f,
                "pid {} since {}",
                std::process::id(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            Ok(RunLock(f))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            Err(Failure::data(anyhow!(
                "another run of window `{}` for {} is in progress ({}); not starting. Its folder: `{}`",
                w.name,
                w.date,
                if holder.is_empty() {
                    "unknown process".to_string()
                } else {
                    holder
                },
                run_dir.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Failure::data(anyhow!(
            "cannot lock `{}`: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::window::day::test_day as day;

    #[test]
    fn a_second_run_of_the_same_window_and_day_is_refused_until_the_first_ends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held = lock(dir.path(), &day()).expect("the first run locks");
        let holder = std::fs::read_to_string(dir.path().join(".lock")).expect("lock file");
        assert!(
            holder.starts_with(&format!("pid {} since ", std::process::id())),
            "{holder}"
        );
        let refused = match lock(dir.path(), &day()) {
            Ok(_) => panic!("a second lock was granted"),
            Err(f) => crate::exit::error_text(&f.error),
        };
        assert!(
            refused.contains("another run of window `morning` for 2026-12-03 is in progress")
                && refused.contains(&holder),
            "{refused}"
        );
        drop(held);
        lock(dir.path(), &day()).expect("free again once the first run ended");
    }
}
