//! The dashboard at `/`: one page and its script, embedded in the binary (no CDN), that
//! draw `GET /v1/dashboard` (a snapshot of the queue, running jobs with their progress,
//! recent inputs with links to their outputs, failures, throughput per source, datasets'
//! hours toward their next run, training runs with loss curves and WER, the serving
//! model) and fetch it again whenever `GET /v1/dashboard/events` says something changed.
//! The page holds no data, so it is served as `/metrics` is; its data needs the API's token.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::error::ApiError;
use super::Shared;
use crate::journal::{JournalError, Recent, HTTP_SOURCE};
use crate::pipeline::render::Format;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");

/// Inputs listed as recent.
const RECENT: usize = 30;
/// Failures listed.
const FAILURES: usize = 10;
/// Training runs shown (the newest).
const RUNS_SHOWN: usize = 10;
/// Points of a run's loss curve sent (evenly picked from its metrics).
const CURVE_POINTS: usize = 200;
/// The stream says "changed" at most this often, and at least this often while jobs run.
const EVENT_GAP: Duration = Duration::from_secs(1);
const HEARTBEAT: Duration = Duration::from_secs(5);

pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

pub(super) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// `GET /v1/dashboard`.
pub(super) async fn snapshot(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let s = shared.clone();
    let doc = tokio::task::spawn_blocking(move || build(&s))
        .await
        .map_err(|e| ApiError::internal(format!("the dashboard ended abnormally: {e}")))??;
    Ok(axum::Json(doc).into_response())
}

fn build(shared: &Shared) -> Result<Value, JournalError> {
    let now = crate::journal::now_ms();
    let j = shared.journal();
    let counts: serde_json::Map<String, Value> = j
        .counts()?
        .into_iter()
        .map(|(state, n)| (state.as_str().to_string(), json!(n)))
        .collect();
    let recent: Vec<Value> = j.recent_inputs(RECENT)?.iter().map(recent_json).collect();
    let failures: Vec<Value> = j
        .recent_failures(FAILURES)?
        .into_iter()
        .map(|(id, source, key, reason)| json!({"input": id, "source": source, "key": key, "reason": reason}))
        .collect();
    let throughput: Vec<Value> = j
        .audio_done_since(now - 3_600_000)?
        .into_iter()
        .map(
            |(source, seconds)| json!({"source": source, "audio_hours_per_hour": seconds / 3600.0}),
        )
        .collect();
    let mut datasets = Vec::new();
    for d in &shared.datasets {
        let ledger = j.ledger(&d.name)?;
        datasets.push(json!({
            "name": d.name,
            "total_hours": ledger.total_seconds / 3600.0,
            "new_hours": ledger.new_seconds / 3600.0,
            "threshold_hours": d.threshold_seconds / 3600.0,
            "progress": if d.threshold_seconds > 0.0 { (ledger.new_seconds / d.threshold_seconds).min(1.0) } else { 0.0 },
        }));
    }
    let runs = j.runs(None)?;
    let running_sources: Vec<(i64, String, String)> = j
        .running_progress()?
        .into_iter()
        .map(|r| (r.id, r.source, r.key))
        .collect();
    drop(j);
    let running: Vec<Value> = {
        let table = shared.running();
        running_sources
            .into_iter()
            .map(|(id, source, key)| {
                let at = table.get(&id).map(|r| r.progress.get());
                json!({
                    "input": id,
                    "source": source,
                    "key": key,
                    "audio_seconds_done": at.map(|a| a.done),
                    "audio_seconds_total": at.and_then(|a| a.total),
                    "progress": at.and_then(|a| a.fraction()),
                })
            })
            .collect()
    };
    let runs: Vec<Value> = runs
        .iter()
        .take(RUNS_SHOWN)
        .map(|r| {
            let dataset = shared.datasets.iter().find(|d| d.name == r.dataset);
            let (loss, eval) = match (dataset, &shared.api) {
                (Some(d), Some(api)) => api.run_files.get(d, &r.id),
                _ => Default::default(),
            };
            json!({
                "id": r.id,
                "dataset": r.dataset,
                "state": r.state.as_str(),
                "started_at": r.started_at / 1000,
                "ended_at": r.ended_at.map(|t| t / 1000),
                "detail": r.detail,
                "loss": loss,
                "wer_before": eval.as_ref().map(|e| e["baseline"]["wer"].clone()),
                "wer_after": eval.as_ref().map(|e| e["candidate"]["wer"].clone()),
            })
        })
        .collect();
    let model = shared.model.get();
    Ok(json!({
        "generated_at": now / 1000,
        "serving_model": {"path": model.path.display().to_string(), "sha256": model.sha256},
        "counts": counts,
        "queued": counts.get("queued").cloned().unwrap_or(json!(0)),
        "running": running,
        "recent": recent,
        "failures": failures,
        "throughput": throughput,
        "datasets": datasets,
        "runs": runs,
    }))
}

/// A run's loss curve (`[step, loss]` pairs) and its `eval` record.
type RunFiles = (Vec<Value>, Option<Value>);

/// What each run's files gave, kept while they do not change (a long run's metrics are
/// megabytes, and the page refetches on every job event).
#[derive(Default)]
pub(super) struct RunFileCache(std::sync::Mutex<HashMap<PathBuf, (Vec<Stamp>, RunFiles)>>);

/// A file's size and modification time (`None`: absent).
type Stamp = Option<(u64, std::time::SystemTime)>;

fn stamp(path: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

impl RunFileCache {
    /// A run's loss curve (evenly picked from its metrics) and its `eval` record.
    fn get(&self, d: &crate::dataset::Dataset, id: &str) -> RunFiles {
        use crate::training::run::{partial_dir, run_dir, RUN_JSON};
        let dir = [run_dir(d, id), partial_dir(d, id)]
            .into_iter()
            .find(|p| p.is_dir());
        let Some(dir) = dir else {
            return (Vec::new(), None);
        };
        let (metrics, run) = (dir.join("metrics.jsonl"), dir.join(RUN_JSON));
        let stamps = vec![stamp(&metrics), stamp(&run)];
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, files)) = cache.get(&dir) {
            if *seen == stamps {
                return files.clone();
            }
        }
        let files = read_run_files(&metrics, &run);
        // Runs are pruned and renamed: keep only the last few folders asked about.
        if cache.len() > 4 * RUNS_SHOWN {
            cache.clear();
        }
        cache.insert(dir, (stamps, files.clone()));
        files
    }
}

fn read_run_files(metrics: &std::path::Path, run: &std::path::Path) -> RunFiles {
    use crate::training::run::parse_metrics;
    let metrics = parse_metrics(&std::fs::read_to_string(metrics).unwrap_or_default());
    let points: Vec<Value> = metrics
        .iter()
        .filter_map(|m| Some(json!([m.get("step")?.as_f64()?, m.get("loss")?.as_f64()?])))
        .collect();
    let every = points.len().div_ceil(CURVE_POINTS).max(1);
    let curve = points.into_iter().step_by(every).collect();
    let eval = std::fs::read_to_string(run)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("eval").cloned());
    (curve, eval)
}

fn recent_json(r: &Recent) -> Value {
    let outputs: Vec<Value> = r
        .outputs
        .iter()
        .filter_map(|o| {
            let name = super::jobs::format_name(Format::of_path(o)?);
            // Local files are fetched through the journal; S3 ones are named.
            let href =
                (!o.starts_with("s3://")).then(|| format!("/v1/inputs/{}/outputs/{name}", r.id));
            Some(json!({"format": name, "href": href, "location": o}))
        })
        .collect();
    json!({
        "input": r.id,
        "source": r.source,
        "key": r.key,
        "job": (r.source == HTTP_SOURCE).then(|| r.key.clone()),
        "state": r.state.as_str(),
        "reason": r.reason,
        "updated_at": r.updated_at / 1000,
        "outputs": outputs,
    })
}

/// `GET /v1/inputs/{id}/outputs/{format}`: any input's local output, by the path the journal
/// lists for it.
pub(super) async fn input_output(
    State(shared): State<Arc<Shared>>,
    Path((id, format)): Path<(i64, String)>,
) -> Result<Response, ApiError> {
    let input = shared
        .journal()
        .get(id)?
        .ok_or_else(|| ApiError::not_found(format!("no input {id}")))?;
    let format: Format = serde_json::from_value(Value::String(format.clone()))
        .map_err(|_| ApiError::invalid("format", format!("{format:?} is not a format")))?;
    let body = super::reply::local_output(&format!("input {id}"), &input.outputs, format).await?;
    Ok((
        [(header::CONTENT_TYPE, super::jobs::content_type(format))],
        body,
    )
        .into_response())
}

/// `GET /v1/dashboard/events`: `changed` when a job moved (at most once a second), and at
/// least every few seconds; the page then fetches the snapshot again.
pub(super) async fn events(State(shared): State<Arc<Shared>>) -> Response {
    struct Watch {
        events: broadcast::Receiver<i64>,
        stopping: watch::Receiver<bool>,
        first: bool,
    }
    let w = Watch {
        events: shared.job_events.subscribe(),
        stopping: shared.stopping.clone(),
        first: true,
    };
    let changes = stream::unfold(w, |mut w| async move {
        if !w.first {
            tokio::select! {
                _ = w.events.recv() => tokio::time::sleep(EVENT_GAP).await,
                _ = w.stopping.changed() => {}
                _ = tokio::time::sleep(HEARTBEAT) => {}
            }
        }
        w.first = false;
        if *w.stopping.borrow() {
            return None;
        }
        // What piled up while waiting is one change.
        while w.events.try_recv().is_ok() {}
        Some((
            Ok::<_, Infallible>(Event::default().event("changed").data("{}")),
            w,
        ))
    });
    sse(changes)
}

fn sse(s: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(s).keep_alive(KeepAlive::default()).into_response()
}
