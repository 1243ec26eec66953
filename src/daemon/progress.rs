//! Every few seconds, journals how far each running job is (when it moved, for `hotfolderd
//! status`) and tells the API's waiting requests and event streams.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::pipeline::progress::Seconds;

const EVERY: Duration = Duration::from_secs(2);

pub(super) async fn progress_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut written: HashMap<i64, Seconds> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
        let now: HashMap<i64, Seconds> = shared
            .running()
            .iter()
            .map(|(id, job)| (*id, job.progress.get()))
            .collect();
        let mut moved = Vec::new();
        {
            let mut j = shared.journal();
            for (id, at) in &now {
                if written.get(id) != Some(at) {
                    if let Err(e) = j.set_progress(*id, at.done, at.total) {
                        tracing::warn!(id, error = %e, "cannot journal a job's progress");
                    }
                    moved.push(*id);
                }
            }
            for id in written.keys().filter(|id| !now.contains_key(id)) {
                if let Err(e) = j.clear_progress(*id) {
                    tracing::warn!(id, error = %e, "cannot clear a finished job's progress");
                }
            }
        }
        for id in moved {
            let _ = shared.job_events.send(id);
        }
        written = now;
    }
}
