//! The answer to a transcription request: the result in the `response_format` asked for,
//! once the job has ended, or 202 with the job when `sync_timeout` passes first. A rejected
//! input (not good audio) is a 400 with the reason the journal records.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::ApiError;
use super::request::{Request, ResponseFormat, Task};
use super::Shared;
use crate::journal::{HttpJob, State};
use crate::pipeline::render::Format;

/// How often a waiting request looks at the journal even without a wake-up.
const RECHECK: Duration = Duration::from_secs(1);

pub(super) async fn when_done(shared: &Arc<Shared>, mut job: HttpJob) -> Response {
    let Some(api) = shared.api.as_ref() else {
        return ApiError::not_found("the API is off").into_response();
    };
    let mut ended = shared.job_events.subscribe();
    let deadline = tokio::time::Instant::now() + api.sync_timeout;
    loop {
        if job.state.is_final() {
            return result(&job)
                .await
                .unwrap_or_else(IntoResponse::into_response);
        }
        if *shared.stopping.borrow() {
            return super::jobs::accepted(&job);
        }
        tokio::select! {
            _ = super::moved(&mut ended, job.input_id) => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = tokio::time::sleep_until(deadline) => return super::jobs::accepted(&job),
        }
        job = match shared.journal().http_job(&job.job_id) {
            Ok(Some(j)) => j,
            Ok(None) => return ApiError::not_found("the job left the journal").into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        };
    }
}

/// The reply to a job that has ended.
pub(super) async fn result(job: &HttpJob) -> Result<Response, ApiError> {
    let request = Request::parse(&job.request)
        .map_err(|e| ApiError::internal(format!("the journaled request cannot be read: {e}")))?;
    let reason = job.last_error.clone().unwrap_or_default();
    match job.state {
        State::Done => {}
        State::Quarantined => return Err(ApiError::invalid("file", reason)),
        State::Cancelled => {
            return Err(ApiError::final_status(
                StatusCode::CONFLICT,
                "cancelled",
                format!("the job was cancelled: {reason}"),
            ))
        }
        _ => {
            return Err(ApiError::final_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "transcription_failed",
                format!("the transcription failed: {reason}"),
            ))
        }
    }
    let text_of = |format: Format| read_output(job, format);
    let plain = |body: String| {
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
    };
    Ok(match request.response_format {
        ResponseFormat::Srt => plain(text_of(Format::Srt).await?),
        ResponseFormat::Vtt => plain(text_of(Format::Vtt).await?),
        format => {
            let doc: Value = serde_json::from_str(&text_of(Format::Json).await?)
                .map_err(|e| ApiError::internal(format!("the json output cannot be read: {e}")))?;
            match format {
                ResponseFormat::Text => plain(format!("{}\n", doc["text"].as_str().unwrap_or(""))),
                ResponseFormat::VerboseJson => axum::Json(verbose_json(&doc, &request)).into_response(),
                _ => axum::Json(json!({
                    "text": doc["text"],
                    "usage": {"type": "duration", "seconds": doc["duration"].as_f64().unwrap_or(0.0).ceil() as u64},
                }))
                .into_response(),
            }
        }
    })
}

/// Job `job`'s output in `format`, as text.
pub(super) async fn read_output(job: &HttpJob, format: Format) -> Result<String, ApiError> {
    let bytes = local_output(&format!("job {}", job.job_id), &job.outputs, format).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The local output in `format` among `outputs` (journaled paths, never a request's) of
/// `owner` (`job …`, `input …`): 404 when there is none, 410 when retention (or someone)
/// removed it.
pub(super) async fn local_output(
    owner: &str,
    outputs: &[String],
    format: Format,
) -> Result<Vec<u8>, ApiError> {
    let path = outputs
        .iter()
        .find(|o| !o.starts_with("s3://") && Format::of_path(o) == Some(format))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "{owner} has no local {} output",
                format.extension()
            ))
        })?;
    tokio::fs::read(path).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ApiError::status(
            axum::http::StatusCode::GONE,
            "output_removed",
            format!(
                "{owner}'s {} output is gone: retention (keep_outputs) removed it; submit the file again",
                format.extension()
            ),
        ),
        _ => ApiError::internal(format!("cannot read {owner}'s output: {e}")),
    })
}

/// OpenAI's `verbose_json` from the daemon's json document.
fn verbose_json(doc: &Value, request: &Request) -> Value {
    let empty = Vec::new();
    let segments = doc["segments"].as_array().unwrap_or(&empty);
    let code = doc["language"].as_str().unwrap_or("");
    let language = whisper_rs::get_lang_id(code)
        .and_then(whisper_rs::get_lang_str_full)
        .unwrap_or(code);
    let mut out = json!({
        "task": match request.task { Task::Transcribe => "transcribe", Task::Translate => "translate" },
        "language": language,
        "duration": doc["duration"],
        "text": doc["text"],
    });
    if request.wants("segment") {
        let list: Vec<Value> = segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let tokens: Vec<Value> = s["tokens"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|t| t["id"].clone())
                    .collect();
                json!({
                    "id": i,
                    "seek": (s["start"].as_f64().unwrap_or(0.0) * 100.0).round() as i64,
                    "start": s["start"],
                    "end": s["end"],
                    "text": s["text"],
                    "tokens": tokens,
                    "temperature": s["temperature"],
                    "avg_logprob": s["avg_logprob"],
                    "compression_ratio": s["compression_ratio"],
                    "no_speech_prob": s["no_speech_prob"],
                })
            })
            .collect();
        out["segments"] = Value::Array(list);
    }
    if request.wants("word") {
        let words: Vec<Value> = segments
            .iter()
            .flat_map(|s| s["words"].as_array().unwrap_or(&empty).iter())
            .map(|w| {
                json!({
                    "word": w["word"].as_str().unwrap_or("").trim(),
                    "start": w["start"],
                    "end": w["end"],
                })
            })
            .collect();
        out["words"] = Value::Array(words);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn verbose_json_has_openais_shape() {
        let doc = json!({
            "language": "en", "duration": 2.5, "text": "Hello there.",
            "segments": [{"start": 0.5, "end": 2.0, "text": " Hello there.", "temperature": 0.0,
                "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01,
                "tokens": [{"id": 50364, "text": "Hello"}],
                "words": [{"word": " Hello", "start": 0.5, "end": 1.0}, {"word": " there.", "start": 1.0, "end": 2.0}]}]
        });
        let mut request: Request = serde_json::from_value(json!({
            "filename": "a.wav", "stored_as": "j.wav", "sha256": "", "size": 1, "model": "whisper-1",
            "profile": null, "task": "transcribe", "language": null, "prompt": null, "temperature": null,
            "response_format": "verbose_json", "granularities": ["word"]
        }))
        .unwrap();
        let v = verbose_json(&doc, &request);
        assert_eq!(v["language"], "english");
        assert_eq!(v["words"][1]["word"], "there.");
        assert!(v.get("segments").is_none(), "{v}");
        request.granularities = vec!["word".into(), "segment".into()];
        let v = verbose_json(&doc, &request);
        assert_eq!(v["segments"][0]["seek"], 50);
        assert_eq!(v["segments"][0]["tokens"][0], 50364);
    }
}
