//! Notifications: the document announcing a finished input or training run
//! (`document.rs`), and its delivery to a webhook (`webhook.rs`, signed) or an SQS queue.
//! The outbox in the journal decides what to send and when; this module sends one.

pub mod document;
pub mod webhook;

use std::time::Duration;

use crate::config::{NotifyConfig, NotifyKind};

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// Worth another try later (network error, timeout, 5xx, 408, 429).
    Retry(String),
    /// The receiver refused it for good (another 4xx): not retried.
    Refused(String),
}

/// A configured `[[notify]]` target, ready to send.
pub struct Target {
    /// The journal's name for it: its URL or queue URL.
    pub name: String,
    pub kind: NotifyKind,
    pub secret: Vec<u8>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub max_backoff: Duration,
    pub link_expiry: Duration,
    pub force_path_style: bool,
}

impl Target {
    /// Reads the secret file: a webhook without its key cannot start.
    pub fn from_config(c: &NotifyConfig) -> Result<Target, String> {
        let secret = match &c.secret_file {
            Some(path) => {
                read_secret(path.get_ref()).map_err(|e| format!("notify secret_file {e}"))?
            }
            None => Vec::new(),
        };
        Ok(Target {
            name: c.target(),
            kind: *c.kind.get_ref(),
            secret,
            timeout: *c.timeout.get_ref(),
            max_attempts: *c.max_attempts.get_ref(),
            max_backoff: *c.max_backoff.get_ref(),
            link_expiry: *c.link_expiry.get_ref(),
            force_path_style: c.force_path_style,
        })
    }

    /// An HTTP job's `callback_url`: a webhook with a `[[notify]]` webhook's default limits.
    pub fn callback(url: &str, secret: Vec<u8>) -> Target {
        Target {
            name: url.to_string(),
            kind: NotifyKind::Webhook,
            secret,
            timeout: Duration::from_secs(10),
            max_attempts: 15,
            max_backoff: Duration::from_secs(600),
            link_expiry: Duration::from_secs(24 * 3600),
            force_path_style: false,
        }
    }

    /// The wait before attempt `attempts + 1`: 2^attempts seconds, capped, with up to ±25 %
    /// jitter so that many daemons do not retry in step.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let base = Duration::from_secs(1u64 << attempts.min(20)).min(self.max_backoff);
        let jitter = (rand_unit() - 0.5) * 0.5;
        base.mul_f64(1.0 + jitter)
    }
}

/// A key or token kept in a file: its bytes less surrounding whitespace, never empty.
/// The error names the file.
pub fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let secret = text.trim_ascii().to_vec();
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret)
}

/// A number in [0, 1) from the system's random source.
fn rand_unit() -> f64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    (u64::from_le_bytes(n) >> 11) as f64 / (1u64 << 53) as f64
}

/// Publishes `body` to an SNS topic, with the delivery key and event as message attributes
/// (which SNS hands on to SQS and HTTP subscribers).
pub async fn send_sns(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    body: &str,
    delivery: &str,
    event: &str,
) -> Sent {
    use aws_sdk_sns::types::MessageAttributeValue;
    let attr = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
    };
    let (Ok(delivery_attr), Ok(event_attr)) = (attr(delivery), attr(event)) else {
        return Sent::Refused("cannot build the message attributes".into());
    };
    let sent = sns
        .publish()
        .topic_arn(topic_arn)
        .message(body)
        .message_attributes("hotfolderd-delivery", delivery_attr)
        .message_attributes("hotfolderd-event", event_attr)
        .send()
        .await;
    match sent {
        Ok(_) => Sent::Delivered,
        Err(e) => Sent::Retry(crate::aws::describe(&e)),
    }
}

/// Sends `body` to an SQS queue, with the delivery key and event as message attributes.
pub async fn send_sqs(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    body: &str,
    delivery: &str,
    event: &str,
) -> Sent {
    use aws_sdk_sqs::types::MessageAttributeValue;
    let attr = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
    };
    let (Ok(delivery_attr), Ok(event_attr)) = (attr(delivery), attr(event)) else {
        return Sent::Refused("cannot build the message attributes".into());
    };
    let sent = sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .message_attributes("hotfolderd-delivery", delivery_attr)
        .message_attributes("hotfolderd-event", event_attr)
        .send()
        .await;
    match sent {
        Ok(_) => Sent::Delivered,
        Err(e) => Sent::Retry(crate::aws::describe(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let t = Target {
            name: "x".into(),
            kind: NotifyKind::Webhook,
            secret: b"k".to_vec(),
            timeout: Duration::from_secs(1),
            max_attempts: 5,
            max_backoff: Duration::from_secs(60),
            link_expiry: Duration::from_secs(60),
            force_path_style: false,
        };
        for _ in 0..100 {
            let first = t.backoff(0).as_secs_f64();
            assert!((0.75..=1.25).contains(&first), "{first}");
            let late = t.backoff(10).as_secs_f64();
            assert!((45.0..=75.0).contains(&late), "{late}");
        }
    }
}
