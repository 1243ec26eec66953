//! `[http] api = true`: files submitted over HTTP, on the same journal and the same job path
//! as a dropped file.
//!
//! - `POST /v1/audio/transcriptions` and `/v1/audio/translations` (OpenAI's API; also
//!   `POST /inference`, whisper.cpp's server) wait up to `sync_timeout` for the result, then
//!   answer 202 with the job;
//! - `POST /v1/jobs` answers 202 at once; `GET /v1/jobs[/{id}[/outputs/{format}]]` reads
//!   them back; `GET /v1/models` lists what `model` may name.
//!
//! An upload is streamed to a file in the uploads folder named by its job id (never by
//! anything the client sent), hashed as it arrives, synced and renamed, and only then
//! journaled as a queued input of source `http:api`, with its request, in one transaction:
//! a crash before that commit leaves no job (the client got no success either, and a stray
//! file is removed at the next start), a crash after it leaves a queued job that runs once.

mod dashboard;
mod error;
mod events;
mod jobs;
mod receive;
mod reply;
mod request;
mod submit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Semaphore;

pub use request::Request;

use super::Shared;
use crate::config::{Config, HttpConfig, Resolved};
use crate::pipeline::render::Format;

/// What `model` means when a client sends the name OpenAI's clients default to.
pub const OPENAI_DEFAULT_MODEL: &str = "whisper-1";

/// The API's settings and what it resolved at start.
pub(super) struct Api {
    /// Where uploads wait for their jobs (named by job id).
    pub uploads: PathBuf,
    /// Where HTTP jobs' outputs go (`<job id>.<format>`).
    pub outputs: PathBuf,
    /// `[asr]`'s own options: what `whisper-1` and the serving model's name mean.
    default_profile: Arc<Resolved>,
    /// Each `[profiles.NAME]`, resolved.
    profiles: BTreeMap<String, Arc<Resolved>>,
    /// The serving model's file name and stem, which mean the default too.
    model_names: Vec<String>,
    max_upload_size: u64,
    sync_timeout: Duration,
    upload_idle: Duration,
    /// The longest an upload may take in all (a client trickling bytes holds a place).
    upload_timeout: Duration,
    uploads_at_once: Arc<Semaphore>,
    /// Whether jobs may ask for a callback (`callback_secret_file` is set).
    callbacks: bool,
    /// For jobs that name an S3 object (made when first needed).
    s3: tokio::sync::OnceCell<crate::aws::Clients>,
    force_path_style: bool,
    /// `[http] keep_failed` / `keep_outputs` (`done` is not used: a finished upload goes).
    pub(super) keep: super::retention::Keep,
    /// The dashboard's reading of training runs' files.
    run_files: dashboard::RunFileCache,
}

impl Api {
    pub(super) fn new(config: &Config, http: &HttpConfig, state_dir: &Path) -> Result<Api, String> {
        let default_profile = Arc::new(config.resolve_profile(None, None)?);
        let mut profiles = BTreeMap::new();
        for name in config.profiles.keys() {
            profiles.insert(
                name.clone(),
                Arc::new(config.resolve_profile(Some(name), None)?),
            );
        }
        let mut model_names = Vec::new();
        if let Some(file) = config.asr.model.file_name() {
            let file = file.to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".bin") {
                model_names.push(stem.to_string());
            }
            model_names.push(file);
        }
        let uploads = state_dir.join("uploads");
        let outputs = state_dir.join("http-outputs");
        for dir in [&uploads, &outputs] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // Outputs a crash cut short (nothing is writing yet).
        crate::sinks::local::remove_stale_temps(&outputs, Duration::ZERO);
        Ok(Api {
            uploads,
            outputs,
            default_profile,
            profiles,
            model_names,
            max_upload_size: *http.max_upload_size.get_ref(),
            sync_timeout: *http.sync_timeout.get_ref(),
            upload_idle: *http.upload_idle_timeout.get_ref(),
            upload_timeout: *http.upload_timeout.get_ref(),
            uploads_at_once: Arc::new(Semaphore::new(*http.max_concurrent_uploads.get_ref())),
            callbacks: http.callback_secret_file.is_some(),
            s3: tokio::sync::OnceCell::new(),
            force_path_style: http.force_path_style,
            keep: super::retention::Keep {
                done: None,
                failed: http.keep_failed,
                outputs: http.keep_outputs,
            },
            run_files: dashboard::RunFileCache::default(),
        })
    }

    async fn s3(&self) -> &crate::aws::Clients {
        self.s3
            .get_or_init(|| crate::aws::clients(self.force_path_style))
            .await
    }

    /// Every name `model` may take.
    fn model_ids(&self) -> Vec<String> {
        std::iter::once(OPENAI_DEFAULT_MODEL.to_string())
            .chain(self.model_names.iter().cloned())
            .chain(self.profiles.keys().cloned())
            .collect()
    }

    /// The profile `model` names: `None` for the default; `Err` with the known names.
    fn profile_named(&self, model: &str) -> Result<Option<String>, Vec<String>> {
        if model.is_empty()
            || model == OPENAI_DEFAULT_MODEL
            || self.model_names.iter().any(|m| m == model)
        {
            return Ok(None);
        }
        if self.profiles.contains_key(model) {
            return Ok(Some(model.to_string()));
        }
        Err(self.model_ids())
    }

    /// The options a journaled request runs with: its profile's, changed as it asked.
    pub(super) fn resolved(&self, request: &Request) -> Arc<Resolved> {
        let base = request
            .profile
            .as_ref()
            .and_then(|p| self.profiles.get(p))
            .unwrap_or(&self.default_profile);
        let mut resolved = Resolved::clone(base);
        request.apply(&mut resolved.opts);
        Arc::new(resolved)
    }

    /// The formats an HTTP job writes: every one a client may fetch, and its profile's.
    pub(super) fn formats(&self, resolved: &Resolved) -> Vec<Format> {
        let mut formats = Format::DEFAULT.to_vec();
        for f in resolved.formats.iter().flatten() {
            if !formats.contains(f) {
                formats.push(*f);
            }
        }
        formats
    }

    /// The outputs' stem of job `job_id` (a name the daemon made).
    pub(super) fn output_stem(&self, job_id: &str) -> PathBuf {
        self.outputs.join(job_id)
    }

    /// The upload of job `job_id` where it is kept: in the uploads folder (given up, for
    /// `retry`) or in its quarantine (`<job id>` or `<job id>.<ext>`, names the daemon made).
    pub(super) fn kept_uploads(&self, job_id: &str) -> Vec<PathBuf> {
        let dotted = format!("{job_id}.");
        [
            self.uploads.clone(),
            self.uploads.join(crate::job::QUARANTINE_DIR),
        ]
        .into_iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == job_id || name.starts_with(&dotted)
        })
        .map(|e| e.path())
        .collect()
    }

    /// Removes uploads no journaled job names: a crash came between their rename and their
    /// journaling (the client got no success), or during their arrival (temporary files).
    pub(super) fn sweep(&self, known: impl Fn(&str) -> bool) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.uploads) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let job = name.split('.').next().unwrap_or_default();
            let stray = name.starts_with('.') || !known(job);
            if stray && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Resolves when input `id` has moved (its job ended, or its progress changed), or when
/// news may have been missed (the receiver lagged); events about other inputs are skipped,
/// so a waiter does not read the journal for every job's progress.
async fn moved(events: &mut tokio::sync::broadcast::Receiver<i64>, id: i64) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(i) if i != id => {}
            Ok(_) | Err(RecvError::Lagged(_)) => return,
            // The daemon is going away: the caller's other arms (stop, a timer) decide.
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// The API's routes, for `http::start` to serve beside the health routes.
pub(super) fn routes(shared: Arc<Shared>) -> Router {
    // The body is read as it streams, never buffered; this bounds what multer takes in
    // besides the file (part headers, preambles), whatever Content-Length says.
    let body_limit = shared
        .api
        .as_ref()
        .map_or(0, |a| a.max_upload_size)
        .saturating_add(1 << 20);
    Router::new()
        .route("/v1/audio/transcriptions", post(submit::transcriptions))
        .route("/v1/audio/translations", post(submit::translations))
        .route("/inference", post(submit::transcriptions))
        .route("/v1/jobs", post(submit::jobs).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::show).delete(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(events::follow))
        .route("/v1/jobs/{id}/outputs/{format}", get(jobs::output))
        .route("/v1/models", get(jobs::models))
        .route(
            "/v1/inputs/{id}/outputs/{format}",
            get(dashboard::input_output),
        )
        .route("/v1/dashboard", get(dashboard::snapshot))
        .route("/v1/dashboard/events", get(dashboard::events))
        .route("/", get(dashboard::page))
        .route("/dashboard.js", get(dashboard::script))
        .layer(axum::extract::DefaultBodyLimit::max(
            usize::try_from(body_limit).unwrap_or(usize::MAX),
        ))
        .with_state(shared)
}
