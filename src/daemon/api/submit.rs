//! Taking an upload in: checks that cost nothing (size announced, idempotency key known,
//! uploads at once), the body streamed to disk, the fields checked, the file put in place,
//! then the job journaled; the reply waits for the result (transcriptions) or not (jobs).

use std::sync::Arc;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::receive::{receive, too_large, Incoming, Limits, ReceivedFile};
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

/// `POST /v1/jobs`: a multipart upload, or JSON naming an S3 object; 202 at once.
pub(super) async fn jobs(
    State(shared): State<Arc<Shared>>,
    req: axum::extract::Request,
) -> Response {
    let headers = req.headers().clone();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json {
        return match from_url(&shared, &headers, req.into_body()).await {
            Ok(job) => super::jobs::accepted(&job),
            Err(e) => e.into_response(),
        };
    }
    let multipart =
        <Multipart as axum::extract::FromRequest<Arc<Shared>>>::from_request(req, &shared).await;
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
            Answer::Result if prefers_async(headers) => {
                let mut reply = super::jobs::accepted(&job);
                reply.headers_mut().insert(
                    "preference-applied",
                    header::HeaderValue::from_static("respond-async"),
                );
                reply
            }
            Answer::Result => super::reply::when_done(shared, job).await,
            Answer::Job => super::jobs::accepted(&job),
        },
        Err(e) => e.into_response(),
    }
}

/// `Prefer: respond-async` (RFC 7240): the client wants the job at once, not the result.
fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
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

/// What the cheap checks let through: the API, the idempotency key and the job it already
/// names (if any), a place among the uploads arriving now.
struct Admitted<'a> {
    api: &'a super::Api,
    key: Option<String>,
    /// The job an earlier request with the same key made: this request is answered from it,
    /// once its body shows it is the same request (422 if not).
    known: Option<HttpJob>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

async fn admit<'a>(shared: &'a Shared, headers: &HeaderMap) -> Result<Admitted<'a>, ApiError> {
    let Some(api) = shared.api.as_ref() else {
        return Err(ApiError::not_found("the API is off ([http] api = false)"));
    };
    let key = idempotency_key(headers)?;
    let known = match &key {
        Some(k) => shared.journal().http_job_by_idempotency_key(k)?,
        None => None,
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The form's other fields and boundaries take a little beyond the file.
    if announced.is_some_and(|n| n > api.max_upload_size.saturating_add(1 << 20)) {
        return Err(too_large(api.max_upload_size));
    }
    if known.is_none() && *shared.stopping.borrow() {
        return Err(ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the daemon is stopping; send the file again once it is back",
        ));
    }
    let Ok(permit) = api.uploads_at_once.clone().try_acquire_owned() else {
        return Err(ApiError::status(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_uploads",
            "as many uploads as [http] max_concurrent_uploads are arriving now; try again shortly",
        ));
    };
    Ok(Admitted {
        api,
        key,
        known,
        _permit: permit,
    })
}

/// The job `known` (made by an earlier request with the same `Idempotency-Key`), if
/// `request` asks for the same thing (the same file or object, the same options); else
/// 422, as a reused key must not quietly answer another request.
fn same_as_known(known: HttpJob, key: &str, request: &Request) -> Result<HttpJob, ApiError> {
    match Request::parse(&known.request) {
        Ok(first) if first.same_as(request) => Ok(known),
        _ => Err(ApiError::status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            format!(
                "Idempotency-Key {key:?} was used for job {} with another file or other options; send a new key for a new request",
                known.job_id
            ),
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
    let Admitted {
        api,
        key,
        known,
        _permit,
    } = admit(shared, headers).await?;
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
    let received = tokio::time::timeout(
        api.upload_timeout,
        receive(multipart, &api.uploads, &job_id, &limits),
    )
    .await
    .map_err(|_| {
        ApiError::status(
            StatusCode::REQUEST_TIMEOUT,
            "upload_too_slow",
            format!(
                "the upload took over [http] upload_timeout ({})",
                humantime::format_duration(api.upload_timeout)
            ),
        )
    })??;
    let fields = Fields::check(&received.fields, received.granularities)?;
    let profile = checked_profile(api, &fields)?;
    let Some(file) = received.file else {
        return Err(ApiError::invalid("file", "the form has no file part"));
    };
    let request = Request::new(&fields, profile, task).with_file(&file);
    if let (Some(known), Some(k)) = (known, &key) {
        // A retry of a journaled upload: its copy goes (dropped unplaced).
        return same_as_known(known, k, &request);
    }
    journal_file(shared, api, &job_id, key.as_deref(), &fields, request, file).await
}

/// The profile `model` names, and whether a callback may be asked for.
fn checked_profile(api: &super::Api, fields: &Fields) -> Result<Option<String>, ApiError> {
    if fields.callback_url.is_some() && !api.callbacks {
        return Err(ApiError::invalid(
            "callback_url",
            "callbacks are off here: they are signed with [http] callback_secret_file, which is not set",
        ));
    }
    api.profile_named(&fields.model).map_err(|known| {
        ApiError::invalid(
            "model",
            format!(
                "model {:?} is not served here; known: {}",
                fields.model,
                known.join(", ")
            ),
        )
    })
}

/// Puts a received file in place and journals it with its request, as a queued input.
async fn journal_file(
    shared: &Shared,
    api: &super::Api,
    job_id: &str,
    key: Option<&str>,
    fields: &Fields,
    request: Request,
    file: ReceivedFile,
) -> Result<HttpJob, ApiError> {
    let json = serde_json::to_string(&request)
        .map_err(|e| ApiError::internal(format!("cannot record the request: {e}")))?;
    let stored = api.uploads.join(&file.stored_as);
    let placed = file.file;
    tokio::task::spawn_blocking(move || placed.commit())
        .await
        .map_err(|e| ApiError::internal(format!("storing the upload ended abnormally: {e}")))?
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    let arrived = shared.journal().http_arrive(
        job_id,
        key,
        request.size,
        &json,
        fields.callback_url.as_deref(),
    );
    let job = match arrived {
        Ok(HttpArrived::Queued(job)) => job,
        Ok(HttpArrived::Known(job)) => {
            // The same key raced this upload in: that one is the job; this copy goes.
            let _ = std::fs::remove_file(&stored);
            return same_as_known(job, key.unwrap_or_default(), &request);
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

/// The longest JSON body `POST /v1/jobs` takes.
const MAX_JSON: usize = 64 << 10;

/// `POST /v1/jobs` with `{"url": "s3://bucket/key", …options}`: the object is fetched into
/// the uploads folder (streamed, hashed, limited as an upload), then journaled the same way.
async fn from_url(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<HttpJob, ApiError> {
    let Admitted {
        api,
        key,
        known,
        _permit,
    } = admit(shared, headers).await?;
    let bytes = axum::body::to_bytes(body, MAX_JSON).await.map_err(|e| {
        ApiError::bad(format!(
            "the JSON body cannot be read (at most {MAX_JSON} bytes): {e}"
        ))
    })?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
    let Some(object) = doc.as_object() else {
        return Err(ApiError::bad("the body must be a JSON object with a url"));
    };
    let mut fields = std::collections::HashMap::new();
    let mut granularities = Vec::new();
    for (k, v) in object {
        match (k.as_str(), v) {
            ("timestamp_granularities", serde_json::Value::Array(list)) => {
                granularities.extend(list.iter().filter_map(|g| g.as_str().map(str::to_string)))
            }
            (_, serde_json::Value::String(s)) => {
                fields.insert(k.clone(), s.clone());
            }
            (_, serde_json::Value::Number(n)) => {
                fields.insert(k.clone(), n.to_string());
            }
            (_, serde_json::Value::Bool(b)) => {
                fields.insert(k.clone(), b.to_string());
            }
            _ => {}
        }
    }
    let url = fields.remove("url").unwrap_or_default();
    let Some((bucket, object_key)) = url
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
    else {
        return Err(ApiError::invalid(
            "url",
            format!("url {url:?} is not s3://bucket/key"),
        ));
    };
    let fields = Fields::check(&fields, granularities)?;
    let profile = checked_profile(api, &fields)?;
    if let (Some(known), Some(k)) = (known, &key) {
        // A retry: the same object and options are the same request, without fetching it.
        let asked = Request::new(&fields, profile, Task::Transcribe).with_url(&url);
        return same_as_known(known, k, &asked);
    }
    let job_id = uuid::Uuid::new_v4().simple().to_string();
    let filename = object_key.rsplit('/').next().unwrap_or(object_key);
    let mut incoming = Incoming::create(&api.uploads, &job_id, filename, api.max_upload_size)?;
    let s3 = &api.s3().await.s3;
    let fetch_error = |e: String| {
        ApiError::status(
            StatusCode::BAD_GATEWAY,
            "fetch_failed",
            format!("cannot fetch {url}: {e}"),
        )
    };
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(object_key)
        .send()
        .await
        .map_err(|e| {
            let e = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
            if e.contains("NoSuchKey") || e.contains("NoSuchBucket") {
                ApiError::invalid("url", format!("{url} does not exist: {e}"))
            } else {
                fetch_error(e)
            }
        })?;
    if got
        .content_length()
        .is_some_and(|n| n as u64 > api.max_upload_size)
    {
        return Err(too_large(api.max_upload_size));
    }
    let mut body = got.body;
    loop {
        let chunk = tokio::time::timeout(api.upload_idle, body.next())
            .await
            .map_err(|_| fetch_error("S3 sent nothing for too long".into()))?;
        match chunk {
            None => break,
            Some(Ok(bytes)) => incoming.push(&bytes).await?,
            Some(Err(e)) => return Err(fetch_error(e.to_string())),
        }
    }
    let file = incoming.finish().await?;
    let request = Request::new(&fields, profile, Task::Transcribe)
        .with_url(&url)
        .with_file(&file);
    journal_file(shared, api, &job_id, key.as_deref(), &fields, request, file).await
}
