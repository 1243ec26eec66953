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
    token: Option<Arc<String>>,
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
    let token = match &config.token_file {
        Some(path) => {
            let t = std::fs::read_to_string(path)
                .map_err(|e| {
                    DaemonError::Setup(format!("http.token_file {}: {e}", path.display()))
                })?
                .trim()
                .to_string();
            if t.is_empty() {
                return Err(DaemonError::Setup(format!(
                    "http.token_file {} is empty",
                    path.display()
                )));
            }
            Some(Arc::new(t))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| DaemonError::Setup(format!("cannot listen on {addr}: {e}")))?;
    let app = App { shared, token };
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .layer(axum::middleware::from_fn_with_state(app.clone(), authorize))
        .with_state(app);
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
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
    if let Some(token) = &app.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let ok: bool = given.as_bytes().ct_eq(token.as_bytes()).into();
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required\n",
            )
                .into_response();
        }
    }
    next.run(req).await
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
