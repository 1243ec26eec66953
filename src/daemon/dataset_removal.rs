//! Inputs deleted by retention (`keep_done`) or with their object in S3 (`on_removed =
//! "delete_outputs"`) leave every dataset's future manifests: after each retention pass and
//! each handled S3 removal, a content whose every input is gone is taken out of the datasets
//! that hold it (`Dataset::forget`), and after each training run (a running run defers it).
//! Driven by the journal, so a pass a crash cut short is finished by the next.

use super::Shared;
use crate::dataset::forget::Forgot;

/// Contents handled per dataset in one pass (the rest wait for the next).
const BATCH: usize = 1000;

/// Blocking: file and journal work.
pub(super) fn forget_deleted(shared: &Shared) {
    for d in &shared.datasets {
        let orphans = shared.journal().dataset_orphans(&d.name, BATCH);
        let orphans = match orphans {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(dataset = %d.name, error = %e, "cannot read the journal for deleted inputs");
                continue;
            }
        };
        if orphans.is_empty() {
            continue;
        }
        match d.forget(&shared.journal, &orphans) {
            Ok(Forgot::Done(done)) => {
                for (sha256, lines) in done {
                    tracing::info!(dataset = %d.name, %sha256, lines,
                        "every input with this content was deleted: it left the dataset's future manifests");
                }
            }
            Ok(Forgot::Deferred) => tracing::info!(dataset = %d.name, contents = orphans.len(),
                "deleted inputs leave the dataset after its running training run"),
            Err(e) => tracing::warn!(dataset = %d.name, error = %e,
                "cannot take deleted inputs out of the dataset now; the next pass tries again"),
        }
    }
}
