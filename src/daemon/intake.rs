//! Intake: records every complete file the sources hand over and queues new ones, in
//! batches (one journal transaction, one fsync, for as many files as have arrived), so a
//! burst of thousands of files is journaled at disk speed rather than one fsync each.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Shared, SourceId};
use crate::journal::{Arrival, Arrived, State};
use crate::sources::fs::Candidate;

/// Most arrivals journaled in one transaction.
const BATCH: usize = 1024;

pub(super) async fn intake(shared: Arc<Shared>, mut rx: mpsc::Receiver<Candidate>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let candidates = std::mem::take(&mut batch);
        let shared = shared.clone();
        let done = tokio::task::spawn_blocking(move || record(&shared, &candidates)).await;
        if let Err(e) = done {
            tracing::error!(error = %e, "intake batch ended abnormally");
        }
    }
}

/// Journals one batch; wakes workers for what was queued. A version seen before is left
/// alone, except a `done` one still in its folder: a crash came between journaling its
/// outputs and moving it, so the move is finished now.
fn record(shared: &Shared, candidates: &[Candidate]) {
    let arrivals: Vec<Arrival> = candidates
        .iter()
        .map(|c| Arrival {
            source: SourceId::folder(&c.root).to_string(),
            key: c.rel.to_string_lossy().into_owned(),
            version: c.meta.version(),
            size: c.meta.len,
            device: Some(c.meta.device),
        })
        .collect();
    let result = shared.journal().arrive(&arrivals);
    let arrived = match result {
        Ok(a) => a,
        Err(e) => {
            for c in candidates {
                tracing::error!(file = %c.root.join(&c.rel).display(), error = %e, "cannot journal input; it will be seen again on the next scan");
            }
            return;
        }
    };
    let mut queued = 0;
    for (c, a) in candidates.iter().zip(arrived) {
        match a {
            Arrived::Queued(id) => {
                queued += 1;
                tracing::debug!(id, file = %c.root.join(&c.rel).display(), "queued");
            }
            Arrived::Known(id, State::Done) => {
                finish_after(shared, id, &SourceId::folder(&c.root), &c.rel)
            }
            Arrived::Known(..) => {}
        }
    }
    shared.wake_workers(queued);
}

/// Completes the after-action of an input whose outputs are already journaled.
fn finish_after(shared: &Shared, id: i64, source: &SourceId, rel: &Path) {
    let Some(folder) = shared
        .folder(source)
        .filter(|f| f.after != crate::config::After::Keep)
    else {
        return;
    };
    // Only an input whose outputs this folder's output holds was finished under the layout
    // it has now: one subtitled in a media library (outputs beside it, or skipped with
    // none) stays where it is after the folder is turned into a drop folder.
    let outputs = shared.journal().get(id).ok().flatten().map(|i| i.outputs);
    let made_here = outputs.is_some_and(|o| {
        !o.is_empty()
            && o.iter().all(|o| {
                let o = Path::new(o);
                o.starts_with(&folder.output) && !o.starts_with(&folder.root)
            })
    });
    if !made_here {
        return;
    }
    let place = folder.place(rel.to_path_buf());
    let file = place.root.join(&place.rel);
    match crate::job::after_done(&place) {
        Ok(note) => {
            if let Some((event, detail)) = note {
                if let Err(e) = shared.journal().note(id, event, &detail) {
                    tracing::warn!(id, error = %e, "cannot record the input's move in the journal");
                }
            }
            tracing::info!(file = %file.display(), "finished the move interrupted by the last stop")
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "could not move/delete a finished input")
        }
    }
}
