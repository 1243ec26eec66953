//! `[http]`: `/healthz` (the process answers), `/readyz` (the journal takes a write, the
//! model is loaded, every folder exists, every queue answered its latest receive and no S3
//! circuit breaker is open; 503 with the reasons otherwise) and
//! `/metrics` (Prometheus text). Off loopback every request needs the bearer token from
//! `token_file`, compared in constant time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use super::{DaemonError, Shared};
use crate::config::HttpConfig;
use crate::metrics::{metrics, Dataset, DatasetState, Device, Queue, SourceState};

/// How long a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    /// `token_file`'s: every request needs it.
    token: Option<Arc<String>>,
    /// `api_token_file`'s: the API's requests need it (or `token`), even on loopback.
    api_token: Option<Arc<String>>,
}

fn read_token(path: &std::path::Path) -> Result<Arc<String>, DaemonError> {
    let token = crate::notify::read_secret(path)
        .map_err(|e| DaemonError::Setup(format!("http token file {e}")))?;
    String::from_utf8(token)
        .map(Arc::new)
        .map_err(|_| DaemonError::Setup(format!("http token file {} is not UTF-8", path.display())))
}

/// Whether `path` is the API's (its token rules, its JSON errors).
fn is_api_path(path: &str) -> bool {
    path.starts_with("/v1/") || path == "/v1" || path == "/inference"
}

/// Binds now (so a taken port fails the start) and serves until `stop`.
pub(super) async fn start(
    config: &HttpConfig,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    let addr: SocketAddr = config
        .listen
        .get_ref()
        .parse()
        .map_err(|e| DaemonError::Setup(format!("http.listen: {e}")))?;
    let token = config.token_file.as_deref().map(read_token).transpose()?;
    let api_token = config
        .api_token_file
        .as_deref()
        .map(read_token)
        .transpose()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| DaemonError::Setup(format!("cannot listen on {addr}: {e}")))?;
    let serves_api = shared.api.is_some();
    let app = App {
        shared: shared.clone(),
        token,
        api_token,
    };
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(app.clone());
    if serves_api {
        router = router.merge(super::api::routes(shared));
    }
    let router = router.layer(axum::middleware::from_fn_with_state(app, authorize));
    if serves_api {
        tracing::info!(%addr, "serving /healthz, /readyz, /metrics and the API (/v1/...)");
    } else {
        tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    }
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    }))
}

async fn authorize(State(app): State<App>, req: Request, next: Next) -> Response {
    let api = is_api_path(req.uri().path());
    let accepted: Vec<&Arc<String>> = match (&app.api_token, api) {
        (Some(api_token), true) => [Some(api_token), app.token.as_ref()]
            .into_iter()
            .flatten()
            .collect(),
        _ => app.token.iter().collect(),
    };
    if accepted.is_empty() {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Every token is compared, in constant time, whichever matches.
    let ok = accepted.iter().fold(false, |ok, t| {
        ok | bool::from(given.as_bytes().ct_eq(t.as_bytes()))
    });
    if ok {
        return next.run(req).await;
    }
    if api {
        let body = serde_json::json!({"error": {
            "message": "a bearer token is required (Authorization: Bearer …)",
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key",
        }});
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(body),
        )
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required\n",
    )
        .into_response()
}

async fn readyz(State(app): State<App>) -> Response {
    let problems = readiness(&app.shared).await;
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n").into_response()
    }
}

/// What keeps the daemon from doing its work now; empty when ready.
async fn readiness(shared: &Arc<Shared>) -> Vec<String> {
    let mut problems = Vec::new();
    let s = shared.clone();
    let journal = tokio::time::timeout(
        CHECK_TIMEOUT,
        tokio::task::spawn_blocking(move || journal_writable(&s)),
    )
    .await;
    match journal {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(why))) => problems.push(format!("journal: {why}")),
        _ => problems.push("journal: does not answer (locked or stuck)".into()),
    }
    // The model is loaded before the server starts (no lazy loading), so it is ready.
    for (id, f) in shared
        .folders
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        if !f.root.is_dir() {
            problems.push(format!("{id}: the folder is missing"));
        }
    }
    if let Some(why) = super::disk::too_full(shared) {
        problems.push(format!("disk: {why}"));
    }
    for (id, q) in shared
        .queues
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        if q.breaker.is_open() {
            problems.push(format!("{id}: S3 unreachable (circuit breaker open)"));
        }
        if let Some(why) = q.reach.problem() {
            problems.push(format!("{id}: {why}"));
        }
    }
    problems
}

/// The journal takes a write, and its folder takes a new file (a full or read-only disk
/// shows here before the next job fails).
fn journal_writable(shared: &Shared) -> Result<(), String> {
    let dir = shared.journal().path().parent().map(|p| p.to_path_buf());
    if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
        let probe = dir.join(".hotfolderd-ready-probe");
        std::fs::write(&probe, b"ready\n")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
    }
    shared.journal().probe().map_err(|e| e.to_string())
}

async fn render_metrics(State(app): State<App>) -> Response {
    let s = app.shared.clone();
    let refreshed = tokio::time::timeout(
        CHECK_TIMEOUT,
        tokio::task::spawn_blocking(move || refresh(&s)),
    )
    .await;
    if !matches!(refreshed, Ok(Ok(Ok(())))) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the journal does not answer\n",
        )
            .into_response();
    }
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &metrics().registry).is_err() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Fills the gauges that describe state rather than events.
fn refresh(shared: &Shared) -> Result<(), String> {
    let m = metrics();
    let j = shared.journal();
    m.inputs.clear();
    let mut queued = 0;
    for (source, state, n) in j.counts_by_source().map_err(|e| e.to_string())? {
        if state == "queued" {
            queued += n;
        }
        m.inputs
            .get_or_create(&SourceState { source, state })
            .set(n);
    }
    m.queue_depth.set(queued);
    m.running.set(shared.running().len() as i64);
    m.job_audio_done.clear();
    m.job_audio_total.clear();
    for (id, job) in shared.running().iter() {
        let label = crate::metrics::Job {
            input: id.to_string(),
        };
        let at = job.progress.get();
        m.job_audio_done.get_or_create(&label).set(at.done);
        if let Some(total) = at.total {
            m.job_audio_total.get_or_create(&label).set(total);
        }
    }
    m.breaker_open.clear();
    for (id, q) in shared
        .queues
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        m.breaker_open
            .get_or_create(&Queue {
                queue: id.to_string(),
            })
            .set(i64::from(q.breaker.is_open()));
    }
    m.training_runs.clear();
    for d in &shared.datasets {
        let ledger = j.ledger(&d.name).map_err(|e| e.to_string())?;
        let label = Dataset {
            dataset: d.name.clone(),
        };
        m.dataset_hours
            .get_or_create(&label)
            .set(ledger.total_seconds / 3600.0);
        m.dataset_new_hours
            .get_or_create(&label)
            .set(ledger.new_seconds / 3600.0);
        for r in j.runs(Some(&d.name)).map_err(|e| e.to_string())? {
            m.training_runs
                .get_or_create(&DatasetState {
                    dataset: d.name.clone(),
                    state: r.state.as_str().into(),
                })
                .inc();
        }
    }
    drop(j);
    for family in [&m.gpu_free_bytes, &m.gpu_used_bytes, &m.gpu_total_bytes] {
        family.clear();
    }
    // A GPU that NVML cannot read now drops out of the scrape rather than failing it.
    for d in shared.gpu.devices().unwrap_or_default() {
        let label = Device {
            gpu: d.index.to_string(),
            name: d.name,
        };
        let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        m.gpu_free_bytes.get_or_create(&label).set(bytes(d.free));
        m.gpu_used_bytes.get_or_create(&label).set(bytes(d.used));
        m.gpu_total_bytes.get_or_create(&label).set(bytes(d.total));
    }
    Ok(())
}
