//! AWS clients, configured once: credentials and region from the standard chain
//! (`AWS_ACCESS_KEY_ID`…, profile files, web identity, ECS/EC2 instance roles),
//! `AWS_ENDPOINT_URL` honoured, every call bounded by timeouts, and the SDK's standard retry
//! (exponential backoff with jitter) on throttling and transient errors.

use std::time::Duration;

mod breaker;
pub mod resumable;
pub use breaker::{is_outage, Breaker};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

/// Connecting to an endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt of one call, end to end. Long enough for a 20 s SQS long poll; object bodies
/// are streamed after the call returns and are bounded by `READ_TIMEOUT` instead.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(40);
/// One call including its retries.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
/// No byte received for this long on an open connection (a stalled body stream).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per call (the first plus retries) before the error reaches the daemon, whose own
/// backoff and circuit breaker take over.
const MAX_ATTEMPTS: u32 = 4;

#[derive(Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// For `[[notify]] kind = "sns"`.
    pub sns: aws_sdk_sns::Client,
}

/// Builds the clients. `force_path_style` addresses buckets as `endpoint/bucket/key`
/// (S3-compatible stores, emulators).
pub async fn clients(force_path_style: bool) -> Clients {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await;
    let s3 = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(force_path_style)
        .build();
    Clients {
        s3: aws_sdk_s3::Client::from_conf(s3),
        sqs: aws_sdk_sqs::Client::new(&shared),
        sns: aws_sdk_sns::Client::new(&shared),
    }
}

/// A failed S3 step: `outage` when the service could not be reached or was overloaded (the
/// caller's circuit breaker backs off), otherwise an answer about this request or a local
/// problem.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Failed {
    pub outage: bool,
    pub reason: String,
}

impl Failed {
    /// An SDK call that failed, for the object at `at` (`s3://bucket/key`).
    pub fn call<E>(
        at: &str,
        e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Failed
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        Failed {
            outage: is_outage(e),
            reason: format!("{at}: {}", describe(e)),
        }
    }
}

/// Whether a conditional request's condition did not hold (`If-Match`, `If-None-Match`).
pub fn precondition_failed<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &E) -> bool {
    matches!(
        e.code(),
        Some("PreconditionFailed") | Some("ConditionalRequestConflict")
    )
}

/// Every object under `prefix` in `bucket`: (key, etag), all pages.
pub async fn list_keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>, Failed> {
    let at = format!("s3://{bucket}/{prefix}");
    let mut out = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Failed::call(&at, &e))?;
        out.extend(page.contents().iter().filter_map(|o| {
            Some((
                o.key()?.to_string(),
                o.e_tag().unwrap_or_default().to_string(),
            ))
        }));
    }
    Ok(out)
}

impl From<String> for Failed {
    fn from(reason: String) -> Failed {
        Failed {
            outage: false,
            reason,
        }
    }
}

/// An SDK error as one line: the service's code and message where there is one.
pub fn describe<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => err.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(d) => format!("cannot reach the endpoint: {d:?}"),
        other => other.to_string(),
    }
}
