//! Reading jobs back: one job (`GET /v1/jobs/{id}`), the newest of them by state
//! (`GET /v1/jobs?state=…`), an output (`GET /v1/jobs/{id}/outputs/{format}`), and the
//! names `model` may take (`GET /v1/models`). A job is found by its id in the journal; its
//! outputs are the paths the journal lists, so nothing a client sends becomes a path.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::ApiError;
use super::request::Request;
use super::Shared;
use crate::journal::{HttpJob, State as JobState};
use crate::pipeline::progress::Seconds;
use crate::pipeline::render::Format;

/// The most jobs one listing returns.
const MAX_LISTED: usize = 1000;

/// A job as the API shows it; `running`: how far it is, if it runs now.
pub(super) fn job_json(job: &HttpJob, running: Option<Seconds>) -> Value {
    let request = Request::parse(&job.request).ok();
    let outputs: serde_json::Map<String, Value> = job
        .outputs
        .iter()
        .filter_map(|o| Format::of_path(o))
        .map(|f| {
            let name = format_name(f);
            (
                name.clone(),
                Value::String(format!("/v1/jobs/{}/outputs/{name}", job.job_id)),
            )
        })
        .collect();
    json!({
        "id": job.job_id,
        "object": "transcription.job",
        "state": job.state.as_str(),
        "progress": match (job.state, running) {
            (JobState::Done, _) => 1.0,
            (_, Some(at)) => at.fraction().unwrap_or(0.0),
            _ => 0.0,
        },
        "audio_seconds_done": running.map(|at| at.done),
        "audio_seconds_total": running.and_then(|at| at.total),
        "reason": job.last_error,
        "created_at": job.created_at / 1000,
        "filename": request.as_ref().map(|r| r.filename.clone()),
        "model": request.as_ref().map(|r| r.model.clone()),
        "task": request.as_ref().map(|r| r.task),
        "url": format!("/v1/jobs/{}", job.job_id),
        "outputs": outputs,
    })
}

/// A format as the API names it (`json-full`, not `JsonFull`).
pub(super) fn format_name(f: Format) -> String {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// 202 with the job and where to follow it.
pub(super) fn accepted(job: &HttpJob) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/jobs/{}", job.job_id))],
        axum::Json(job_json(job, None)),
    )
        .into_response()
}

/// How far a job is, while it runs.
pub(super) fn progress_of(shared: &Shared, job: &HttpJob) -> Option<Seconds> {
    shared
        .running()
        .get(&job.input_id)
        .map(|r| r.progress.get())
}

pub(super) fn find(shared: &Shared, id: &str) -> Result<HttpJob, ApiError> {
    shared
        .journal()
        .http_job(id)?
        .ok_or_else(|| ApiError::not_found(format!("no job {id:?}")))
}

pub(super) async fn show(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = find(&shared, &id)?;
    Ok(axum::Json(job_json(&job, progress_of(&shared, &job))).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct Listing {
    state: Option<String>,
    limit: Option<usize>,
}

/// How long a cancel waits for a running job to stop and journal it.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `DELETE /v1/jobs/{id}`: a queued job is cancelled in the journal (and its upload goes);
/// a running one is stopped inside whisper.cpp, and its worker journals `cancelled` and
/// removes the upload. Cancelling a cancelled job answers the same again.
pub(super) async fn cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut job = find(&shared, &id)?;
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    let mut events = shared.job_events.subscribe();
    let mut stopping = shared.stopping.clone();
    while !job.state.is_final() {
        if job.state == JobState::Queued
            && shared
                .journal()
                .cancel_queued(job.input_id, "cancelled by request before it ran")?
        {
            if let (Some(api), Ok(request)) = (&shared.api, Request::parse(&job.request)) {
                let _ = std::fs::remove_file(api.uploads.join(&request.stored_as));
            }
            let _ = shared.job_events.send(job.input_id);
        } else {
            if let Some(r) = shared.running().get(&job.input_id) {
                r.cancel.cancel_by_request();
            }
            let pending = || {
                ApiError::status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cancel_pending",
                    format!("job {id} was asked to stop but has not yet; ask again"),
                )
            };
            if *stopping.borrow() {
                return Err(pending());
            }
            tokio::select! {
                _ = super::moved(&mut events, job.input_id) => {}
                _ = stopping.changed() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                _ = tokio::time::sleep_until(deadline) => return Err(pending()),
            }
        }
        job = find(&shared, &id)?;
    }
    if job.state != JobState::Cancelled {
        return Err(ApiError::final_status(
            StatusCode::CONFLICT,
            "already_ended",
            format!("job {id} has already ended: {}", job.state.as_str()),
        ));
    }
    Ok(axum::Json(job_json(&job, None)).into_response())
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<Listing>,
) -> Result<Response, ApiError> {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "state",
                format!("state {s:?} is not one of queued, running, done, failed, quarantined, cancelled"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LISTED);
    let jobs = shared.journal().http_jobs(state, limit)?;
    let data: Vec<Value> = jobs
        .iter()
        .map(|j| job_json(j, progress_of(&shared, j)))
        .collect();
    Ok(axum::Json(json!({"object": "list", "data": data})).into_response())
}

pub(super) async fn output(
    State(shared): State<Arc<Shared>>,
    Path((id, format)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = find(&shared, &id)?;
    let format: Format = serde_json::from_value(Value::String(format.clone())).map_err(|_| {
        ApiError::invalid(
            "format",
            format!("{format:?} is not a format (json, srt, vtt, txt, lrc, csv, json-full)"),
        )
    })?;
    if job.state != JobState::Done {
        return Err(ApiError::final_status(
            StatusCode::CONFLICT,
            "not_done",
            format!("job {id} is {}, not done", job.state.as_str()),
        ));
    }
    let body = super::reply::read_output(&job, format).await?;
    Ok(([(header::CONTENT_TYPE, content_type(format))], body).into_response())
}

/// How an output is served.
pub(super) fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json | Format::JsonFull => "application/json",
        Format::Vtt => "text/vtt; charset=utf-8",
        Format::Csv => "text/csv; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

pub(super) async fn models(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let Some(api) = shared.api.as_ref() else {
        return Err(ApiError::not_found("the API is off"));
    };
    let data: Vec<Value> = api
        .model_ids()
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "hotfolderd"}))
        .collect();
    Ok(axum::Json(json!({"object": "list", "data": data})).into_response())
}
