//! Stopping a transcription from outside: a per-job deadline and a flag the daemon raises on
//! shutdown, or when a client cancels the job. whisper.cpp polls it after each encoder pass and decoder step (its abort
//! callback); the window loop checks it between windows.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Cancel {
    /// 0: go on; [`SHUTDOWN`] or [`REQUESTED`]: stop.
    flag: Arc<AtomicU8>,
    deadline: Option<(Instant, Duration)>,
}

/// Why a transcription was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The job ran past its time limit (the limit it had).
    TimedOut(Duration),
    /// The daemon asked it to stop (shutdown).
    Cancelled,
    /// A client cancelled the job (`DELETE /v1/jobs/{id}`).
    Requested,
}

const SHUTDOWN: u8 = 1;
const REQUESTED: u8 = 2;

impl Cancel {
    /// This token (sharing its stop flag) with a time limit of `limit` from now.
    pub fn limited(&self, limit: Duration) -> Self {
        Cancel {
            flag: self.flag.clone(),
            deadline: Some((Instant::now() + limit, limit)),
        }
    }

    /// Asks the work to stop for the shutdown; every clone of this token sees it.
    pub fn cancel(&self) {
        let _ = self
            .flag
            .compare_exchange(0, SHUTDOWN, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Asks the work to stop for good: the client no longer wants it (this wins over a
    /// shutdown, which would requeue it).
    pub fn cancel_by_request(&self) {
        self.flag.store(REQUESTED, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> Option<Stopped> {
        match self.flag.load(Ordering::Relaxed) {
            SHUTDOWN => return Some(Stopped::Cancelled),
            REQUESTED => return Some(Stopped::Requested),
            _ => {}
        }
        match self.deadline {
            Some((at, limit)) if Instant::now() >= at => Some(Stopped::TimedOut(limit)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::TimedOut(limit) => write!(
                f,
                "took longer than its time limit of {}",
                humantime::format_duration(*limit)
            ),
            Stopped::Cancelled => write!(f, "stopped because the daemon is shutting down"),
            Stopped::Requested => write!(f, "cancelled by request"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_sees_the_cancel_and_a_deadline_expires() {
        let c = Cancel::default();
        let seen_by = c.clone();
        assert_eq!(seen_by.stopped(), None);
        c.cancel();
        assert_eq!(seen_by.stopped(), Some(Stopped::Cancelled));
        let t = Cancel::default().limited(Duration::ZERO);
        assert_eq!(t.stopped(), Some(Stopped::TimedOut(Duration::ZERO)));
        let later = Cancel::default().limited(Duration::from_secs(3600));
        assert_eq!(later.stopped(), None);
        later.cancel();
        assert_eq!(later.stopped(), Some(Stopped::Cancelled));
    }
}
