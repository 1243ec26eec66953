//! `GET /v1/jobs/{id}/events`: Server-Sent Events for one job. The first event is the job
//! as `GET /v1/jobs/{id}` shows it (`state`); then a `progress` event each time its audio
//! seconds move (every few seconds while it runs) and a `state` event at each change of
//! state. The stream ends after the job's final state, or when the daemon stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::error::ApiError;
use super::jobs::{find, job_json, progress_of};
use super::Shared;
use crate::journal::State as JobState;

/// How often the stream looks at the job even without a wake-up.
const RECHECK: Duration = Duration::from_secs(2);

struct Follow {
    shared: Arc<Shared>,
    id: String,
    events: broadcast::Receiver<i64>,
    stopping: watch::Receiver<bool>,
    /// What was last sent: the state, and the progress event.
    state: Option<JobState>,
    progress: Option<Value>,
    ended: bool,
}

pub(super) async fn follow(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    find(&shared, &id)?;
    let f = Follow {
        events: shared.job_events.subscribe(),
        stopping: shared.stopping.clone(),
        shared,
        id,
        state: None,
        progress: None,
        ended: false,
    };
    Ok(Sse::new(stream_of(f))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn stream_of(f: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(f, |mut f| async move {
        loop {
            if f.ended || *f.stopping.borrow() {
                return None;
            }
            let job = match find(&f.shared, &f.id) {
                Ok(j) => j,
                Err(_) => return None,
            };
            let progress = progress_of(&f.shared, &job);
            let shown = job_json(&job, progress);
            if f.state != Some(job.state) {
                f.state = Some(job.state);
                f.ended = job.state.is_final();
                f.progress = Some(progress_json(&shown));
                let event = Event::default().event("state").data(shown.to_string());
                return Some((Ok(event), f));
            }
            let now = progress_json(&shown);
            if f.progress.as_ref() != Some(&now) {
                let event = Event::default().event("progress").data(now.to_string());
                f.progress = Some(now);
                return Some((Ok(event), f));
            }
            let id = job.input_id;
            tokio::select! {
                _ = super::moved(&mut f.events, id) => {}
                _ = f.stopping.changed() => {}
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
    })
}

fn progress_json(job: &Value) -> Value {
    json!({
        "id": job["id"],
        "progress": job["progress"],
        "audio_seconds_done": job["audio_seconds_done"],
        "audio_seconds_total": job["audio_seconds_total"],
    })
}
