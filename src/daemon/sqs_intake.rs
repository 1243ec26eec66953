//! Intake for SQS deliveries: each object event becomes a journaled input (one row per
//! object version, however often the event is delivered), its message is remembered for
//! the heartbeat and the final delete, and a message for an input already final is deleted
//! at once. Bodies that are not S3 events are journaled as failed with the body kept;
//! removals (with `on_removed = "delete_outputs"`) go to `s3_removed`.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Shared, SourceId};
use crate::config::Malformed;
use crate::journal::{Arrival, Arrived, State};
use crate::sources::sqs::{delete, Delivery, Message};

/// Longest raw body kept in the journal (SQS allows 256 KiB).
const MAX_KEPT_BODY: usize = 256 * 1024;

pub(super) async fn sqs_intake(shared: Arc<Shared>, mut rx: mpsc::Receiver<Delivery>) {
    while let Some(d) = rx.recv().await {
        if let Delivery::Removed { message, event } = d {
            tokio::spawn(super::s3_removed::handle(shared.clone(), message, event));
            continue;
        }
        let s = shared.clone();
        let done = tokio::task::spawn_blocking(move || record(&s, d)).await;
        let Ok(Some(message)) = done else { continue };
        if let Some(q) = shared.queue(&SourceId::queue(&message.queue_url)) {
            delete(&q.clients.sqs, &message).await;
        }
    }
}

/// How the journal tells one upload of a key from another: its `versionId` in a versioned
/// bucket; else its ETag with the event's `sequencer` (S3 orders a key's events by it), so
/// the same bytes uploaded again after something else are a new version; a redelivered
/// event has the same sequencer. The S3 job reads exactly this version (`job::S3Object`).
pub(super) fn object_version(event: &crate::sources::s3_event::ObjectEvent) -> String {
    let etag = event.etag.as_deref().map(|e| e.trim_matches('"'));
    let id = match (&event.version_id, etag, &event.sequencer) {
        (Some(v), _, _) => format!("v:{v}"),
        (None, Some(e), _) => format!("etag:{e}"),
        (None, None, Some(_)) => String::new(),
        (None, None, None) => return format!("size:{}", event.size.unwrap_or(0)),
    };
    match &event.sequencer {
        Some(s) if id.is_empty() => format!("seq:{s}"),
        Some(s) => format!("{id}@seq:{s}"),
        None => id,
    }
}

/// Journals one delivery; returns the message if it should be deleted now.
fn record(shared: &Shared, d: Delivery) -> Option<Message> {
    match d {
        Delivery::Object { message, event } => {
            let version = object_version(&event);
            let arrival = Arrival {
                source: SourceId::queue(&message.queue_url).to_string(),
                key: event.key.clone(),
                version,
                size: event.size.unwrap_or(0),
                device: None,
            };
            let arrived = shared.journal().arrive(std::slice::from_ref(&arrival));
            match arrived.as_deref() {
                Ok([Arrived::Queued(id)]) => {
                    tracing::info!(id, bucket = %event.bucket, key = %event.key, "queued");
                    shared.receipts().add(*id, message);
                    shared.wake_workers(1);
                    None
                }
                Ok([Arrived::Known(id, state)]) if state.is_final() => {
                    tracing::info!(id, key = %event.key, state = state.as_str(), "event for an input already finished; deleting the message");
                    Some(message)
                }
                Ok([Arrived::Known(id, state)]) => {
                    let mut receipts = shared.receipts();
                    if receipts.holds(*id, &message.message_id) {
                        // The heartbeat should have kept it hidden.
                        tracing::warn!(id, key = %event.key, message = %message.message_id, state = state.as_str(), "message delivered again while its input is held here: the visibility heartbeat did not keep it hidden");
                    } else {
                        tracing::info!(id, key = %event.key, message = %message.message_id, "another event for an object version already queued here");
                    }
                    receipts.add(*id, message);
                    None
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::error!(key = %event.key, error = %e, "cannot journal the event; the queue will redeliver it");
                    None
                }
            }
        }
        // Handled by `s3_removed` before it gets here; if one did, the queue redelivers it.
        Delivery::Removed { .. } => None,
        Delivery::Malformed {
            message,
            body,
            reason,
        } => {
            let source = SourceId::queue(&message.queue_url).to_string();
            let kept: String = body.chars().take(MAX_KEPT_BODY).collect();
            let detail = format!("malformed message: {reason}; body: {kept}");
            let result = {
                let mut j = shared.journal();
                j.record_seen(
                    &source,
                    &format!("message:{}", message.message_id),
                    "body",
                    body.len() as u64,
                )
                .and_then(|(id, new)| {
                    if new {
                        j.transition(id, State::Failed, Some(&detail))?;
                    }
                    Ok(id)
                })
            };
            match result {
                Ok(id) => {
                    tracing::warn!(id, queue = %message.queue_url, message = %message.message_id, %reason, "malformed message journaled as failed")
                }
                Err(e) => {
                    tracing::error!(message = %message.message_id, error = %e, "cannot journal a malformed message")
                }
            }
            let policy = shared
                .queue(&SourceId::queue(&message.queue_url))
                .map(|q| q.malformed);
            (policy == Some(Malformed::Delete)).then_some(message)
        }
    }
}
