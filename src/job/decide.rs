//! What the journal does with a job that ended: a pure function of the attempt count and
//! the outcome, so every source follows the same retry rules.

use std::time::Duration;

use super::failure::{Failure, Stage};
use super::Done;
use crate::pipeline::cancel::Stopped;

/// Transient failures are retried this many times before the input is marked failed.
const MAX_ATTEMPTS: i64 = 5;
/// A job that ran past its time limit is tried this many times in all.
const MAX_TIMEOUT_ATTEMPTS: i64 = 2;

/// Why an input goes back to the queue (the `kind` label of the retries metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    Transient,
    Timeout,
    Shutdown,
}

impl RetryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RetryKind::Transient => "transient",
            RetryKind::Timeout => "timeout",
            RetryKind::Shutdown => "shutdown",
        }
    }
}

#[derive(Debug)]
pub enum Decision {
    /// Journal the outputs, then finish the input (move, delete, tag…).
    Done(Box<Done>),
    /// The input is bad: reject it (quarantine where its source has a place for that).
    Reject { stage: Stage, reason: String },
    /// Transient failures exhausted: fail it, but the input itself may be fine.
    GiveUp(String),
    /// Back to the queue, not before `delay`, counting the attempt.
    Retry {
        why: String,
        delay: Duration,
        kind: RetryKind,
    },
    /// A client cancelled the job: it ends here, as `cancelled`.
    Cancelled,
    /// A service is down: back to the queue after `delay`, not counting the attempt;
    /// `tried`: whether the job called it (else its breaker was open: nothing to report).
    Wait {
        why: String,
        delay: Duration,
        tried: bool,
    },
}

/// `attempts`: how many times this input has been claimed, this one included.
pub fn decide(attempts: i64, outcome: Result<Done, Failure>) -> Decision {
    let failure = match outcome {
        Ok(done) => return Decision::Done(Box::new(done)),
        Err(f) => f,
    };
    match failure {
        Failure::Permanent { stage, reason } => Decision::Reject { stage, reason },
        Failure::Unavailable {
            stage,
            reason,
            wait,
        } => Decision::Wait {
            why: format!("{stage}: unavailable: {reason}"),
            delay: wait,
            tried: true,
        },
        Failure::Deferred { reason, wait } => Decision::Wait {
            why: reason,
            delay: wait,
            tried: false,
        },
        Failure::Stopped(Stopped::Cancelled) => Decision::Retry {
            why: "interrupted by shutdown; requeued".into(),
            delay: Duration::ZERO,
            kind: RetryKind::Shutdown,
        },
        Failure::Stopped(Stopped::Requested) => Decision::Cancelled,
        Failure::Stopped(why @ Stopped::TimedOut(_)) => {
            if attempts >= MAX_TIMEOUT_ATTEMPTS {
                Decision::Reject {
                    stage: Stage::Timeout,
                    reason: format!(
                        "{why} on each of {attempts} attempts; raise [asr] job_timeout_factor/job_timeout_max if the hardware is slow"
                    ),
                }
            } else {
                Decision::Retry {
                    why: format!("timeout: {why} (attempt {attempts} of {MAX_TIMEOUT_ATTEMPTS})"),
                    delay: backoff(attempts),
                    kind: RetryKind::Timeout,
                }
            }
        }
        Failure::Transient { stage, reason } => {
            if attempts >= MAX_ATTEMPTS {
                Decision::GiveUp(format!(
                    "{stage}: {reason} (gave up after {attempts} attempts)"
                ))
            } else {
                Decision::Retry {
                    why: format!("{stage}: {reason} (attempt {attempts} of {MAX_ATTEMPTS})"),
                    delay: backoff(attempts),
                    kind: RetryKind::Transient,
                }
            }
        }
    }
}

/// 2^attempts seconds, at most about a minute.
fn backoff(attempts: i64) -> Duration {
    Duration::from_secs(1 << attempts.clamp(0, 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> Failure {
        Failure::transient(Stage::Write, "disk full")
    }

    #[test]
    fn transient_failures_retry_with_backoff_then_give_up() {
        match decide(1, Err(transient())) {
            Decision::Retry { delay, kind, why } => {
                assert_eq!(delay, Duration::from_secs(2));
                assert_eq!(kind, RetryKind::Transient);
                assert!(
                    why.starts_with("write: disk full (attempt 1 of 5)"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(MAX_ATTEMPTS, Err(transient())),
            Decision::GiveUp(why) if why.contains("gave up after 5 attempts")
        ));
    }

    #[test]
    fn timeouts_get_a_second_chance_then_are_rejected() {
        let timed_out = || Failure::Stopped(Stopped::TimedOut(Duration::from_secs(9)));
        assert!(matches!(
            decide(1, Err(timed_out())),
            Decision::Retry {
                kind: RetryKind::Timeout,
                ..
            }
        ));
        assert!(matches!(
            decide(2, Err(timed_out())),
            Decision::Reject {
                stage: Stage::Timeout,
                ..
            }
        ));
    }

    #[test]
    fn shutdown_requeues_at_once_and_outages_wait_without_an_attempt() {
        assert!(matches!(
            decide(9, Err(Failure::Stopped(Stopped::Cancelled))),
            Decision::Retry { delay, kind: RetryKind::Shutdown, .. } if delay.is_zero()
        ));
        let outage = Failure::Unavailable {
            stage: Stage::Fetch,
            reason: "connection refused".into(),
            wait: Duration::from_secs(7),
        };
        assert!(matches!(
            decide(99, Err(outage)),
            Decision::Wait { delay, .. } if delay == Duration::from_secs(7)
        ));
    }

    #[test]
    fn bad_input_is_rejected_on_the_first_attempt() {
        assert!(matches!(
            decide(1, Err(Failure::permanent(Stage::Decode, "not audio"))),
            Decision::Reject {
                stage: Stage::Decode,
                ..
            }
        ));
    }
}
