//! The SQS source: long-polls a queue of S3 event notifications and hands on each object
//! event for the configured bucket and prefix, with the message's receipt handle (the daemon
//! deletes the message only once the outputs are durable). Test events and events that are
//! not for us are deleted at once; a body that is not an S3 event is handed on as malformed.
//! Receive errors back off exponentially with jitter, up to a minute, and recover by
//! themselves: an outage never stops the daemon.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::s3_event::{parse_body, Body, Change, ObjectEvent};

#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub queue_url: String,
    pub input_bucket: String,
    pub input_prefix: String,
    pub max_messages: i32,
    pub wait_time: Duration,
    pub visibility_timeout: Duration,
    /// Deliver `ObjectRemoved` events (to delete the input's outputs) instead of dropping them.
    pub removals: bool,
    /// Delete or leave the messages this source does not want.
    pub foreign: crate::config::Foreign,
}

/// One SQS message as received.
#[derive(Debug, Clone)]
pub struct Message {
    pub queue_url: String,
    pub message_id: String,
    pub receipt_handle: String,
}

#[derive(Debug)]
pub enum Delivery {
    /// An object to process.
    Object {
        message: Message,
        event: ObjectEvent,
    },
    /// An input object was deleted (only with `on_removed = "delete_outputs"`).
    Removed {
        message: Message,
        event: ObjectEvent,
    },
    /// A body that is not an S3 event: journaled as failed, with the body.
    Malformed {
        message: Message,
        body: String,
        reason: String,
    },
}

/// Whether the queue answered its latest receive, for `/readyz`. A receive under way (a
/// long poll can last `wait_time`) keeps the last answer.
#[derive(Debug, Default)]
pub struct Reachability(std::sync::Mutex<Option<String>>);

impl Reachability {
    fn set(&self, problem: Option<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }

    /// Why the latest receive failed; `None` once one succeeds.
    pub fn problem(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Most time between receive attempts after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How often a daemon with no room looks again.
const FULL_WAIT: Duration = Duration::from_millis(250);

/// Polls until `shutdown` turns true or the receiver is dropped. `room()` says how many more
/// messages this daemon may hold now: a daemon with a backlog leaves messages in the queue
/// for the others instead of hoarding them past their visibility timeout.
pub async fn poll_queue(
    spec: QueueSpec,
    sqs: aws_sdk_sqs::Client,
    tx: mpsc::Sender<Delivery>,
    room: impl Fn() -> usize + Send,
    reach: std::sync::Arc<Reachability>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let take = room().min(spec.max_messages.max(1) as usize);
        if take == 0 {
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(FULL_WAIT) => {}
            }
            continue;
        }
        let receive = sqs
            .receive_message()
            .queue_url(&spec.queue_url)
            .max_number_of_messages(take as i32)
            .wait_time_seconds(spec.wait_time.as_secs() as i32)
            .visibility_timeout(spec.visibility_timeout.as_secs() as i32)
            .send();
        let result = tokio::select! {
            _ = shutdown.changed() => continue,
            r = receive => r,
        };
        let messages = match result {
            Ok(out) => {
                if failures > 0 {
                    tracing::info!(queue = %spec.queue_url, "queue reachable again");
                }
                failures = 0;
                reach.set(None);
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                failures += 1;
                crate::metrics::metrics()
                    .sqs_receive_errors
                    .get_or_create(&crate::metrics::Queue {
                        queue: spec.queue_url.clone(),
                    })
                    .inc();
                let wait = backoff(failures);
                let why = crate::aws::describe(&e);
                tracing::warn!(queue = %spec.queue_url, error = %why, ?wait, "cannot receive from the queue; retrying");
                reach.set(Some(format!(
                    "cannot receive from the queue ({failures} tries): {why}"
                )));
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        for m in messages {
            let (Some(receipt_handle), Some(message_id)) = (m.receipt_handle, m.message_id) else {
                continue;
            };
            let message = Message {
                queue_url: spec.queue_url.clone(),
                message_id,
                receipt_handle,
            };
            let body = m.body.unwrap_or_default();
            for d in sort(&spec, message, body) {
                match d {
                    Sorted::Deliver(d) => {
                        if tx.send(d).await.is_err() {
                            return;
                        }
                    }
                    Sorted::Drop(message, why) => {
                        tracing::info!(queue = %spec.queue_url, message = %message.message_id, "{why}; deleting the message");
                        delete(&sqs, &message).await;
                    }
                    Sorted::Foreign(message, why) => {
                        if spec.foreign == crate::config::Foreign::Keep {
                            tracing::info!(queue = %spec.queue_url, message = %message.message_id, "{why}; left in the queue (foreign = \"keep\")");
                        } else {
                            tracing::info!(queue = %spec.queue_url, message = %message.message_id, "{why}; deleting the message (foreign = \"delete\")");
                            delete(&sqs, &message).await;
                        }
                    }
                }
            }
        }
    }
}

enum Sorted {
    Deliver(Delivery),
    /// Nothing to do for this message: delete it.
    Drop(Message, String),
    /// Not for this source (another bucket, prefix or event type): `foreign` says.
    Foreign(Message, String),
}

/// What to do with one message: deliver its object events for our bucket and prefix, drop
/// a test event, set aside one for another bucket, prefix or event type, or deliver it as
/// malformed.
fn sort(spec: &QueueSpec, message: Message, body: String) -> Vec<Sorted> {
    let events = match parse_body(&body) {
        Ok(Body::Test) => return vec![Sorted::Drop(message, "s3:TestEvent".into())],
        Ok(Body::Events(e)) => e,
        Err(e) => {
            return vec![Sorted::Deliver(Delivery::Malformed {
                message,
                body,
                reason: e.to_string(),
            })]
        }
    };
    let wanted = |c: &Change| *c == Change::Created || (spec.removals && *c == Change::Removed);
    let (ours, others): (Vec<ObjectEvent>, Vec<ObjectEvent>) = events.into_iter().partition(|e| {
        wanted(&e.change) && e.bucket == spec.input_bucket && e.key.starts_with(&spec.input_prefix)
    });
    if ours.is_empty() {
        let why = match others.first() {
            Some(e) if e.bucket != spec.input_bucket => format!(
                "event for bucket {:?}, not {:?}: ignored",
                e.bucket, spec.input_bucket
            ),
            Some(e) if !wanted(&e.change) => format!("{} event ignored", e.name),
            Some(e) => format!(
                "key {:?} is outside prefix {:?}: ignored",
                e.key, spec.input_prefix
            ),
            None => "no records".into(),
        };
        return vec![Sorted::Foreign(message, why)];
    }
    ours.into_iter()
        .map(|event| {
            let message = message.clone();
            Sorted::Deliver(match event.change {
                Change::Removed => Delivery::Removed { message, event },
                _ => Delivery::Object { message, event },
            })
        })
        .collect()
}

/// Deletes a message; failures are logged (the message comes back and is recognised as
/// done, then deleted again).
pub async fn delete(sqs: &aws_sdk_sqs::Client, m: &Message) {
    let r = sqs
        .delete_message()
        .queue_url(&m.queue_url)
        .receipt_handle(&m.receipt_handle)
        .send()
        .await;
    if let Err(e) = r {
        tracing::warn!(queue = %m.queue_url, message = %m.message_id, error = %crate::aws::describe(&e), "cannot delete message; it will be seen again and deleted then");
    }
}

/// Why a message's visibility could not be extended.
#[derive(Debug)]
pub enum ExtendError {
    /// The receipt handle no longer works (the message was deleted, or it became visible
    /// and was received again, here or elsewhere): extending it again is pointless.
    HandleGone(String),
    /// Anything else, such as the service being unreachable: try again next beat.
    Failed(String),
}

/// Keeps a message hidden from other consumers for another `visibility` from now.
pub async fn extend(
    sqs: &aws_sdk_sqs::Client,
    m: &Message,
    visibility: Duration,
) -> Result<(), ExtendError> {
    use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError as E;
    sqs.change_message_visibility()
        .queue_url(&m.queue_url)
        .receipt_handle(&m.receipt_handle)
        .visibility_timeout(visibility.as_secs() as i32)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let why = crate::aws::describe(&e);
            match e.as_service_error() {
                Some(E::ReceiptHandleIsInvalid(_) | E::MessageNotInflight(_)) => {
                    ExtendError::HandleGone(why)
                }
                _ => ExtendError::Failed(why),
            }
        })
}

/// 1, 2, 4 … 60 s, each with up to a quarter of random jitter so a fleet does not retry in step.
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> QueueSpec {
        QueueSpec {
            queue_url: "q".into(),
            input_bucket: "media".into(),
            input_prefix: "in/".into(),
            max_messages: 10,
            wait_time: Duration::from_secs(20),
            visibility_timeout: Duration::from_secs(60),
            removals: false,
            foreign: crate::config::Foreign::Delete,
        }
    }

    fn msg() -> Message {
        Message {
            queue_url: "q".into(),
            message_id: "m".into(),
            receipt_handle: "r".into(),
        }
    }

    fn record(bucket: &str, key: &str, name: &str) -> String {
        format!(
            r#"{{"Records":[{{"eventSource":"aws:s3","eventName":"{name}","s3":{{"bucket":{{"name":"{bucket}"}},"object":{{"key":"{key}","size":3}}}}}}]}}"#
        )
    }

    #[test]
    fn only_created_objects_in_our_bucket_and_prefix_are_delivered() {
        let got = sort(
            &spec(),
            msg(),
            record("media", "in/a+b.wav", "ObjectCreated:Put"),
        );
        assert!(
            matches!(&got[..], [Sorted::Deliver(Delivery::Object { event, .. })] if event.key == "in/a b.wav")
        );
        for (body, why) in [
            (
                record("other", "in/a.wav", "ObjectCreated:Put"),
                "bucket \"other\"",
            ),
            (
                record("media", "out/a.wav", "ObjectCreated:Put"),
                "outside prefix",
            ),
            (
                record("media", "in/a.wav", "ObjectRemoved:Delete"),
                "ObjectRemoved:Delete event ignored",
            ),
        ] {
            let got = sort(&spec(), msg(), body);
            assert!(
                matches!(&got[..], [Sorted::Foreign(_, w)] if w.contains(why)),
                "{why}"
            );
        }
        let got = sort(&spec(), msg(), "{oops".into());
        assert!(
            matches!(&got[..], [Sorted::Deliver(Delivery::Malformed { body, .. })] if body == "{oops")
        );
    }

    #[test]
    fn removals_are_delivered_only_when_configured() {
        let removed = record("media", "in/a.wav", "ObjectRemoved:Delete");
        let spec = QueueSpec {
            removals: true,
            ..spec()
        };
        let got = sort(&spec, msg(), removed.clone());
        assert!(
            matches!(&got[..], [Sorted::Deliver(Delivery::Removed { event, .. })] if event.key == "in/a.wav")
        );
        let got = sort(&spec, msg(), removed.replace("media", "other"));
        assert!(matches!(&got[..], [Sorted::Foreign(..)]));
    }

    #[test]
    fn backoff_grows_to_a_minute_with_jitter() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) < Duration::from_millis(1251));
        assert!(backoff(3) >= Duration::from_secs(4));
        assert!(backoff(30) <= Duration::from_secs(75));
    }
}
