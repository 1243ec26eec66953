//! Taking an upload in: checks that cost nothing (size announced, idempotency key known,
//! uploads at once), the body streamed to disk, the fields checked, the file put in place,
//! then the job journaled; the reply waits for the result (transcriptions) or not (jobs).

use std::sync::Arc;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::receive::{receive, too_large, Limits};
use super::request::{Fields, Request, Task};
use super::Shared;
use crate::journal::{HttpArrived, HttpJob};

/// How a submission is answered once journaled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Wait for the result up to `sync_timeout` (OpenAI's endpoints).
    Result,
    /// 202 with the job at once (`POST /v1/jobs`).
    Job,
}

pub(super) async fn transcriptions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    submit(
        &shared,
        &headers,
        multipart,
        Task::Transcribe,
        Answer::Result,
    )
    .await
}

pub(super) async fn translations(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    submit(
        &shared,
        &headers,
        multipart,
        Task::Translate,
        Answer::Result,
    )
    .await
}

pub(super) async fn jobs(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    submit(&shared, &headers, multipart, Task::Transcribe, Answer::Job).await
}

async fn submit(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    task: Task,
    answer: Answer,
) -> Response {
    match take_in(shared, headers, multipart, task).await {
        Ok(job) => match answer {
            Answer::Result => super::reply::when_done(shared, job).await,
            Answer::Job => super::jobs::accepted(&job),
        },
        Err(e) => e.into_response(),
    }
}

/// The `Idempotency-Key` header, checked.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => Ok(Some(k.to_string())),
        _ => Err(ApiError::bad(
            "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// Journals the upload as a queued job (or finds the one its idempotency key made).
async fn take_in(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    task: Task,
) -> Result<HttpJob, ApiError> {
    let Some(api) = shared.api.as_ref() else {
        return Err(ApiError::not_found("the API is off ([http] api = false)"));
    };
    let key = idempotency_key(headers)?;
    if let Some(k) = &key {
        // A retry of an upload that was journaled: that job, without reading the body again.
        if let Some(job) = shared.journal().http_job_by_idempotency_key(k)? {
            return Ok(job);
        }
    }
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The form's other fields and boundaries take a little beyond the file.
    if announced.is_some_and(|n| n > api.max_upload_size.saturating_add(1 << 20)) {
        return Err(too_large(api.max_upload_size));
    }
    if *shared.stopping.borrow() {
        return Err(ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the daemon is stopping; send the file again once it is back",
        ));
    }
    let Ok(_permit) = api.uploads_at_once.clone().try_acquire_owned() else {
        return Err(ApiError::status(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_uploads",
            "as many uploads as [http] max_concurrent_uploads are arriving now; try again shortly",
        ));
    };
    let multipart = multipart.map_err(|e| {
        ApiError::bad(format!(
            "expected a multipart/form-data body with a file part: {}",
            e.body_text()
        ))
    })?;
    let job_id = uuid::Uuid::new_v4().simple().to_string();
    let limits = Limits {
        max_size: api.max_upload_size,
        idle: api.upload_idle,
    };
    let received = receive(multipart, &api.uploads, &job_id, &limits).await?;
    let fields = Fields::check(&received.fields, received.granularities)?;
    let profile = api.profile_named(&fields.model).map_err(|known| {
        ApiError::invalid(
            "model",
            format!(
                "model {:?} is not served here; known: {}",
                fields.model,
                known.join(", ")
            ),
        )
    })?;
    let Some(file) = received.file else {
        return Err(ApiError::invalid("file", "the form has no file part"));
    };
    let request = Request {
        filename: file.filename,
        stored_as: file.stored_as.clone(),
        sha256: file.sha256,
        size: file.size,
        model: fields.model,
        profile,
        task: if fields.translate {
            Task::Translate
        } else {
            task
        },
        language: fields.language,
        prompt: fields.prompt,
        temperature: fields.temperature,
        response_format: fields.response_format,
        granularities: fields.granularities,
    };
    let json = serde_json::to_string(&request)
        .map_err(|e| ApiError::internal(format!("cannot record the request: {e}")))?;
    let stored = api.uploads.join(&file.stored_as);
    tokio::task::spawn_blocking(move || file.file.commit())
        .await
        .map_err(|e| ApiError::internal(format!("storing the upload ended abnormally: {e}")))?
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    let arrived = shared
        .journal()
        .http_arrive(&job_id, key.as_deref(), request.size, &json);
    let job = match arrived {
        Ok(HttpArrived::Queued(job)) => job,
        Ok(HttpArrived::Known(job)) => {
            // The same key raced this upload in: that one is the job; this copy goes.
            let _ = std::fs::remove_file(&stored);
            return Ok(job);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&stored);
            return Err(e.into());
        }
    };
    tracing::info!(job = %job_id, file = %request.filename, bytes = request.size, "upload journaled");
    shared.wake_workers(1);
    Ok(job)
}
