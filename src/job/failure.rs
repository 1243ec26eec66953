//! How a job can fail, as types: which step it was at, and whether retrying can help.

use std::time::Duration;

use crate::pipeline::cancel::Stopped;

/// The step of the job path a failure happened at (its name is what the journal, the
/// error report and notifications show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Checks before any work: the input's name, size and kind.
    Validate,
    /// Getting the bytes (an S3 HEAD or GET).
    Fetch,
    /// Hashing the content.
    Hash,
    Decode,
    Transcribe,
    /// Telling speakers apart.
    Diarize,
    Render,
    /// Putting the outputs.
    Write,
    /// Feeding the datasets.
    Dataset,
    /// Running past the time limit.
    Timeout,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Fetch => "fetch",
            Stage::Hash => "hash",
            Stage::Decode => "decode",
            Stage::Transcribe => "transcribe",
            Stage::Diarize => "diarize",
            Stage::Render => "render",
            Stage::Write => "write",
            Stage::Dataset => "dataset",
            Stage::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job did not finish.
#[derive(Debug)]
pub enum Failure {
    /// The input itself is bad: retrying will not help.
    Permanent { stage: Stage, reason: String },
    /// Something around it failed (disk full, unwritable output, a refused request): retry
    /// later, counting an attempt.
    Transient { stage: Stage, reason: String },
    /// A service it needs is unreachable or overloaded: wait `wait`, without blaming the
    /// input or counting an attempt.
    Unavailable {
        stage: Stage,
        reason: String,
        wait: Duration,
    },
    /// Not tried: a service it needs was down a moment ago (its breaker is open). Waits
    /// `wait` without an attempt, a log line or a retry counted.
    Deferred { reason: String, wait: Duration },
    /// It ran past its time limit, or the daemon is shutting down.
    Stopped(Stopped),
}

impl Failure {
    pub fn permanent(stage: Stage, reason: impl Into<String>) -> Failure {
        Failure::Permanent {
            stage,
            reason: reason.into(),
        }
    }

    pub fn transient(stage: Stage, reason: impl Into<String>) -> Failure {
        Failure::Transient {
            stage,
            reason: reason.into(),
        }
    }

    /// What went wrong, without the stage: what `hotfolderd transcribe` prints.
    pub fn reason(&self) -> String {
        match self {
            Failure::Permanent { reason, .. }
            | Failure::Transient { reason, .. }
            | Failure::Unavailable { reason, .. }
            | Failure::Deferred { reason, .. } => reason.clone(),
            Failure::Stopped(why) => why.to_string(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Permanent { stage, reason } | Failure::Transient { stage, reason } => {
                write!(f, "{stage}: {reason}")
            }
            Failure::Unavailable { stage, reason, .. } => {
                write!(f, "{stage}: unavailable: {reason}")
            }
            Failure::Deferred { reason, .. } => f.write_str(reason),
            Failure::Stopped(why) => write!(f, "{why}"),
        }
    }
}
