//! Graceful cancellation: SIGTERM (what AWS Batch, Slurm and Kubernetes send before SIGKILL)
//! and SIGINT (Ctrl-C) stop the run from starting new work. Windows of chunks already in flight
//! finish (a window is a few megabytes of input, so this takes well under a second), the unit
//! being written is abandoned with its temporary files removed and recorded as `cancelled`,
//! and the process exits with 128 + the signal number (143 for SIGTERM, 130 for SIGINT). The
//! next run does the cancelled and the never-started units again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Set by the signal handler to the number of the signal received; 0 until then.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicUsize>);

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
            signal_hook::flag::register_usize(sig, Arc::clone(&self.0), sig as usize)?;
        }
        Ok(())
    }

    /// The signal received, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s as i32),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.signal().is_some()
    }
}
