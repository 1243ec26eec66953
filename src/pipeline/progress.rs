//! How far a running transcription is: seconds of audio done out of the total the input
//! declares. The transcriber moves it on after each call; the daemon reads it for the jobs
//! API, `/metrics` and `hotfolderd status`, and `hotfolderd transcribe` draws it. Clones
//! share one counter, as `Cancel` shares its flag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Milliseconds of audio done, and the total (0: not known).
    done_ms: Arc<AtomicU64>,
    total_ms: Arc<AtomicU64>,
    /// What earlier passes over the audio did (split channels run one after the other):
    /// a pass's own seconds count from here.
    base_ms: Arc<AtomicU64>,
}

/// One reading of a [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds {
    pub done: f64,
    /// `None` when the input does not say how long it is (a stream without a length).
    pub total: Option<f64>,
}

impl Seconds {
    /// From 0 to 1, when the total is known.
    pub fn fraction(&self) -> Option<f64> {
        self.total
            .filter(|t| *t > 0.0)
            .map(|t| (self.done / t).clamp(0.0, 1.0))
    }
}

fn ms(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1000.0).round() as u64
}

impl Progress {
    pub fn set_total(&self, seconds: Option<f64>) {
        self.total_ms
            .store(seconds.map_or(0, ms), Ordering::Relaxed);
    }

    /// The audio up to `seconds` (of this pass) is done (never moves back).
    pub fn done_up_to(&self, seconds: f64) {
        let base = self.base_ms.load(Ordering::Relaxed);
        self.done_ms
            .fetch_max(base + ms(seconds), Ordering::Relaxed);
    }

    /// Another pass over the audio begins: its seconds add to what is done.
    pub fn next_pass(&self) {
        self.base_ms
            .store(self.done_ms.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    pub fn get(&self) -> Seconds {
        let total = self.total_ms.load(Ordering::Relaxed);
        Seconds {
            done: self.done_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            total: (total > 0).then_some(total as f64 / 1000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_it_and_it_never_moves_back() {
        let p = Progress::default();
        let seen = p.clone();
        assert_eq!(seen.get().fraction(), None);
        p.set_total(Some(60.0));
        p.done_up_to(30.0);
        p.done_up_to(12.0);
        assert_eq!(
            seen.get(),
            Seconds {
                done: 30.0,
                total: Some(60.0)
            }
        );
        assert_eq!(seen.get().fraction(), Some(0.5));
        p.done_up_to(75.0);
        assert_eq!(seen.get().fraction(), Some(1.0));
    }

    #[test]
    fn a_second_pass_adds_to_the_first() {
        let p = Progress::default();
        p.set_total(Some(40.0));
        p.done_up_to(20.0);
        p.next_pass();
        p.done_up_to(10.0);
        assert_eq!(p.get().fraction(), Some(0.75));
    }
}
