//! Retention and clean-up, at start-up and every `[daemon] cleanup_every`: inputs kept in
//! `done/` or quarantined in `failed/`, and local outputs, are deleted once older than the
//! folder's `keep_done` / `keep_failed` / `keep_outputs` (HTTP jobs' uploads and outputs
//! after `[http] keep_failed` / `keep_outputs`), each deletion recorded in the
//! journal (and so the audit log); stale temporary files of interrupted writes are removed
//! (only the daemon's own names). Driven by the journal, never by scanning for old files,
//! so nothing the daemon did not produce is touched. An input deleted this way leaves every
//! dataset's future manifests (`dataset_removal`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{FolderInfo, Shared, SourceId};
use crate::journal::{Input, Removal, HTTP_SOURCE};
use crate::sources::names::{DONE_DIR, FAILED_DIR};

/// A folder's retention policy (absent: keep).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Keep {
    pub done: Option<Duration>,
    pub failed: Option<Duration>,
    pub outputs: Option<Duration>,
}

/// Inputs handled per folder and kind in one pass (the rest wait for the next).
const BATCH: usize = 1000;

pub(super) async fn cleanup_loop(
    shared: Arc<Shared>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || cleanup_once(&s)).await;
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

fn cleanup_once(shared: &Shared) {
    remove_expired(shared);
    // Inputs retention deleted (this pass or one a crash cut short) leave the datasets.
    super::dataset_removal::forget_deleted(shared);
}

fn remove_expired(shared: &Shared) {
    let folders: Vec<(SourceId, FolderInfo)> = shared
        .folders
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(id, f)| (id.clone(), f.clone()))
        .collect();
    let now = crate::notify::document::now_ms();
    if let Some(after) = shared.compact_after {
        let cut = now - after.as_millis() as i64;
        match shared.journal().compact(cut) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                events = n,
                "compacted the journal (the audit log keeps every event)"
            ),
            Err(e) => tracing::error!(error = %e, "cannot compact the journal"),
        }
    }
    for (id, f) in folders {
        let n = crate::sinks::local::remove_stale_temps(&f.output, super::STALE_TEMP_AGE);
        if n > 0 {
            tracing::info!(output = %f.output.display(), removed = n, "removed stale temporary files of interrupted writes");
        }
        let policies = [
            (Removal::DoneCopy, f.keep.done, "keep_done"),
            (Removal::FailedCopy, f.keep.failed, "keep_failed"),
            (Removal::Outputs, f.keep.outputs, "keep_outputs"),
        ];
        if !apply(shared, &id.to_string(), &policies, now, |input, what| {
            remove(&folder_files(&f.root, input, what))
        }) {
            return;
        }
    }
    if let Some(api) = &shared.api {
        let policies = [
            (Removal::Upload, api.keep.failed, "[http] keep_failed"),
            (Removal::Outputs, api.keep.outputs, "[http] keep_outputs"),
        ];
        apply(shared, HTTP_SOURCE, &policies, now, |input, what| {
            let files = match what {
                Removal::Upload => api.kept_uploads(&input.key),
                _ => local_outputs(input),
            };
            remove(&files)
        });
    }
}

/// Deletes, for each policy, what is due of `source`'s inputs with `delete`, and records
/// each deletion. False when the journal cannot be read (the pass stops).
fn apply(
    shared: &Shared,
    source: &str,
    policies: &[(Removal, Option<Duration>, &str)],
    now: i64,
    delete: impl Fn(&Input, Removal) -> Result<Vec<String>, String>,
) -> bool {
    for &(what, keep, key) in policies {
        let Some(keep) = keep else { continue };
        let before = now - keep.as_millis() as i64;
        let due = match shared.journal().retention_due(source, what, before, BATCH) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "retention: cannot read the journal");
                return false;
            }
        };
        for input in due {
            match delete(&input, what) {
                Ok(files) => {
                    let detail = format!(
                        "retention ({key} = {}): removed {}",
                        humantime::format_duration(keep),
                        if files.is_empty() {
                            "nothing (already gone)".to_string()
                        } else {
                            files.join(", ")
                        }
                    );
                    if let Err(e) = shared.journal().mark_removed(input.id, what, &detail) {
                        tracing::error!(error = %e, "retention: cannot record a deletion");
                    }
                }
                Err(e) => {
                    tracing::warn!(id = input.id, error = %e, "retention: cannot delete; will try again");
                }
            }
        }
    }
    true
}

/// The files `what` names for `input` of a watched folder at `root`.
fn folder_files(root: &Path, input: &Input, what: Removal) -> Vec<PathBuf> {
    match what {
        Removal::DoneCopy => vec![root.join(DONE_DIR).join(&input.key)],
        Removal::FailedCopy => {
            let parked = root.join(FAILED_DIR).join(&input.key);
            let mut report = parked.clone().into_os_string();
            report.push(".error.json");
            vec![parked, report.into()]
        }
        Removal::Outputs => local_outputs(input),
        // Only HTTP jobs have uploads.
        Removal::Upload => Vec::new(),
    }
}

/// An input's journaled local outputs: S3 results are the bucket's lifecycle rules' business.
fn local_outputs(input: &Input) -> Vec<PathBuf> {
    input
        .outputs
        .iter()
        .filter(|o| !o.starts_with("s3://"))
        .map(Into::into)
        .collect()
}

/// Deletes `paths`; returns the ones that were there.
fn remove(paths: &[PathBuf]) -> Result<Vec<String>, String> {
    let mut removed = Vec::new();
    for p in paths {
        match std::fs::remove_file(p) {
            Ok(()) => removed.push(p.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    Ok(removed)
}
