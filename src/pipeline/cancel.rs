//! Stopping a transcription from outside: a per-job deadline and a flag the daemon raises on
//! shutdown. whisper.cpp polls it after each encoder pass and decoder step (its abort
//! callback); the window loop checks it between windows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    deadline: Option<(Instant, Duration)>,
}

/// Why a transcription was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The job ran past its time limit (the limit it had).
    TimedOut(Duration),
    /// The daemon asked it to stop (shutdown).
    Cancelled,
}

impl Cancel {
    /// This token (sharing its stop flag) with a time limit of `limit` from now.
    pub fn limited(&self, limit: Duration) -> Self {
        Cancel {
            flag: self.flag.clone(),
            deadline: Some((Instant::now() + limit, limit)),
        }
    }

    /// Asks the work to stop; every clone of this token sees it.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> Option<Stopped> {
        if self.flag.load(Ordering::Relaxed) {
            return Some(Stopped::Cancelled);
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
