//! A circuit breaker for a remote service (S3 or SQS behind one `[[s3]]` source): after
//! consecutive outage-type failures (cannot connect, timeouts, 5xx, throttling) it opens for
//! a growing, jittered time, during which jobs wait in the queue without calling the service
//! or using up their attempts; then one job probes, and a success closes it. So an outage
//! costs a few calls a minute, not one per queued job, and the daemon recovers by itself.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;

/// Longest the breaker stays open before letting a probe through.
const MAX_OPEN: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Breaker {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Ok` when a call may go out now; otherwise how long to wait before asking again.
    pub fn admit(&self) -> Result<(), Duration> {
        let mut s = self.state();
        match s.open_until {
            None => Ok(()),
            Some(until) if Instant::now() < until => Err(until - Instant::now()),
            Some(_) if s.probing => Err(Duration::from_secs(1)),
            Some(_) => {
                s.probing = true;
                Ok(())
            }
        }
    }

    pub fn success(&self) {
        let mut s = self.state();
        if s.open_until.is_some() {
            tracing::info!(after_failures = s.failures, "service reachable again");
        }
        *s = State::default();
    }

    /// Whether S3 calls are being held back now (open, or one probe out).
    pub fn is_open(&self) -> bool {
        self.state().open_until.is_some()
    }

    /// Records an outage-type failure; returns how long callers should now wait.
    pub fn failure(&self) -> Duration {
        let mut s = self.state();
        s.failures += 1;
        s.probing = false;
        let wait = crate::sources::sqs::backoff(s.failures).min(MAX_OPEN);
        s.open_until = Some(Instant::now() + wait);
        wait
    }
}

/// Whether an SDK error means the service is unreachable or overloaded (worth backing off
/// from), as opposed to an answer about this request (missing object, access denied).
pub fn is_outage<E>(e: &SdkError<E, HttpResponse>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status >= 500
                || status == 429
                || matches!(
                    s.err().code(),
                    Some(
                        "SlowDown"
                            | "ServiceUnavailable"
                            | "InternalError"
                            | "RequestTimeout"
                            | "Throttling"
                    )
                )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_failure_lets_one_probe_through_and_closes_on_success() {
        let b = Breaker::default();
        assert!(b.admit().is_ok());
        let wait = b.failure();
        assert!(wait >= Duration::from_secs(1));
        assert!(b.admit().is_err(), "open right after a failure");
        b.state().open_until = Some(Instant::now());
        assert!(b.admit().is_ok(), "one probe");
        assert!(b.admit().is_err(), "only one probe at a time");
        b.success();
        assert!(b.admit().is_ok() && b.admit().is_ok());
        for _ in 0..20 {
            b.failure();
        }
        assert!(b.failure() <= Duration::from_secs(60));
    }
}
