//! Copies the journal's events to the audit log, in order, as they happen (every half
//! second, and once more at shutdown). The copy position is the log's last `seq` or the
//! journal's `audit_seq`, whichever is further, so a crash between the two repeats nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::audit::{AuditLine, AuditLog};
use crate::notify::document::rfc3339;

const EVERY: Duration = Duration::from_millis(500);
const BATCH: usize = 2000;
const CURSOR: &str = "audit_seq";

pub(super) fn open(config: &crate::config::JournalConfig) -> Result<(AuditLog, i64), String> {
    let path = config.audit_path();
    AuditLog::open(&path, *config.audit_max_size.get_ref(), config.audit_keep)
        .map_err(|e| format!("audit log {}: {e}", path.display()))
}

/// Runs on a blocking thread until `stop`, then copies what is left.
pub(super) fn audit_loop(
    shared: Arc<Shared>,
    mut log: AuditLog,
    last: i64,
    stop: watch::Receiver<bool>,
) {
    let mut seq = last;
    let mut failing = false;
    loop {
        let stopping = *stop.borrow();
        match copy(&shared, &mut log, &mut seq) {
            Ok(n) if n == BATCH => continue,
            Ok(_) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::error!(error = %e, "cannot write the audit log; retrying (the journal keeps every event)");
                }
                failing = true;
            }
        }
        if stopping {
            return;
        }
        std::thread::sleep(EVERY);
    }
}

/// Copies up to a batch of events after `seq`; returns how many.
fn copy(shared: &Shared, log: &mut AuditLog, seq: &mut i64) -> Result<usize, String> {
    let events = {
        let j = shared.journal();
        *seq = (*seq).max(j.meta(CURSOR).map_err(|e| e.to_string())?);
        j.events_after(*seq, BATCH).map_err(|e| e.to_string())?
    };
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(0);
    };
    let lines: Vec<AuditLine> = events
        .into_iter()
        .map(|e| AuditLine {
            seq: e.seq,
            time: rfc3339(e.at),
            job_id: e.input_id,
            run_id: e.run_id,
            model_id: e.model_id,
            source: e.source,
            key: e.key,
            event: e.event,
            detail: e.detail,
        })
        .collect();
    log.append(&lines).map_err(|e| e.to_string())?;
    *seq = last;
    shared
        .journal()
        .set_meta(CURSOR, last)
        .map_err(|e| e.to_string())?;
    Ok(lines.len())
}
