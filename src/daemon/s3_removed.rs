//! `on_removed = "delete_outputs"`: when an input object is deleted, its outputs go too —
//! unless the key exists again by the time the event is handled (it was uploaded anew, and
//! that upload's own event makes new outputs). The message is deleted once every output is
//! gone and the journal has retired the key's finished versions (so the same bytes uploaded
//! again are transcribed again); on an error it stays and is handled again when redelivered.
//! The content then leaves every dataset's future manifests (`dataset_removal`).

use std::sync::Arc;

use super::{QueueInfo, Shared, SourceId};
use crate::aws::describe;
use crate::sources::s3_event::ObjectEvent;
use crate::sources::sqs::{delete, Message};

pub(super) async fn handle(shared: Arc<Shared>, message: Message, event: ObjectEvent) {
    let Some(q) = shared.queue(&SourceId::queue(&message.queue_url)) else {
        return;
    };
    let uri = format!("s3://{}/{}", event.bucket, event.key);
    match delete_outputs(&shared, &q, &message.queue_url, &event.key).await {
        Ok(Removal::Deleted(n)) => {
            // An upload of the same bytes later must be transcribed again, not skipped as
            // an input already done.
            let source = SourceId::queue(&message.queue_url).to_string();
            let retired = {
                let s = shared.clone();
                let key = event.key.clone();
                tokio::task::spawn_blocking(move || {
                    s.journal().retire_key(
                        &source,
                        &key,
                        "the input object was deleted; its outputs too",
                    )
                })
                .await
            };
            let retired = retired
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            if let Err(e) = retired {
                tracing::error!(%uri, error = %e, "cannot journal the removal; the event will be handled again");
                return;
            }
            // Its content leaves the datasets' future manifests, unless another input
            // still holds it (a failure here is retried by the next retention pass).
            let s = shared.clone();
            let _ = tokio::task::spawn_blocking(move || super::dataset_removal::forget_deleted(&s))
                .await;
            tracing::info!(%uri, outputs = n, "input deleted; its outputs were deleted");
        }
        Ok(Removal::InputBack) => {
            tracing::info!(%uri, "input deleted and uploaded again; its outputs stay");
        }
        Err(e) => {
            tracing::warn!(%uri, error = %e, "input deleted, but its outputs cannot be deleted now; the event will be handled again");
            return;
        }
    }
    delete(&q.clients.sqs, &message).await;
}

enum Removal {
    Deleted(usize),
    InputBack,
}

/// Deletes the outputs the journal recorded for every version of `key` (names are the
/// journal's: another input's outputs with a similar name are never touched).
async fn delete_outputs(
    shared: &Shared,
    q: &QueueInfo,
    queue_url: &str,
    key: &str,
) -> Result<Removal, String> {
    let s3 = &q.clients.s3;
    match s3
        .head_object()
        .bucket(&q.spec.input_bucket)
        .key(key)
        .send()
        .await
    {
        Ok(_) => return Ok(Removal::InputBack),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(describe(&e)),
    }
    let outputs = journaled_outputs(shared, &SourceId::queue(queue_url).to_string(), key)
        .map_err(|e| format!("cannot read the journal: {e}"))?;
    for uri in &outputs {
        let Some((bucket, out)) = uri
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        s3.delete_object()
            .bucket(bucket)
            .key(out)
            .send()
            .await
            .map_err(|e| format!("{uri}: {}", describe(&e)))?;
    }
    Ok(Removal::Deleted(outputs.len()))
}

/// Every output recorded for any version of `key`, once each.
fn journaled_outputs(
    shared: &Shared,
    source: &str,
    key: &str,
) -> Result<Vec<String>, crate::journal::JournalError> {
    let j = shared.journal();
    let mut all = Vec::new();
    for id in j.inputs_named(Some(source), key)? {
        if let Some(input) = j.get(id)? {
            all.extend(input.outputs);
        }
    }
    all.sort();
    all.dedup();
    Ok(all)
}
