//! The model that serves, swapped while the daemon runs. Each job takes the model as it is
//! when the job starts and keeps it to its end; the watcher loads the model the registry
//! says serves (promoted by a run, or by `hotfolderd model promote` / `rollback`) and swaps
//! it in for the jobs after. The new model is loaded and its file checked against its
//! sha256 before the swap, so no job waits for a load, and one that cannot be loaded leaves
//! the current model serving.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Shared;
use crate::pipeline::idle_model::IdleModel;
use crate::pipeline::transcribe::{DecodeOptions, ModelOptions, Transcriber, WhisperTranscriber};

/// How often the watcher reads the registry (a cheap query) and unloads an idle model.
const POLL: Duration = Duration::from_secs(2);
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(30);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(600);

/// One model as jobs use it.
pub struct ServingModel {
    pub transcriber: Arc<dyn Transcriber>,
    pub path: PathBuf,
    /// `None` for a transcriber without a file (benchmarks' stubs).
    pub sha256: Option<String>,
}

impl ServingModel {
    pub fn new(
        transcriber: Arc<dyn Transcriber>,
        path: PathBuf,
        sha256: Option<String>,
    ) -> ServingModel {
        ServingModel {
            transcriber,
            path,
            sha256,
        }
    }

    /// What content dedup matches on: this model and the options (`job::dedup_scope`).
    pub fn dedup_scope(&self, opts: &DecodeOptions) -> String {
        let model = self
            .sha256
            .clone()
            .unwrap_or_else(|| self.transcriber.model_name());
        crate::job::dedup_scope(&model, opts)
    }
}

/// The serving model, replaced whole.
pub struct Slot(RwLock<Arc<ServingModel>>);

impl Slot {
    pub fn new(model: ServingModel) -> Slot {
        Slot(RwLock::new(Arc::new(model)))
    }

    /// The model now: a job keeps this one to its end.
    pub fn get(&self) -> Arc<ServingModel> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, model: ServingModel) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(model);
    }
}

/// Follows the registry until the daemon stops.
pub async fn watch_loop(
    shared: Arc<Shared>,
    idle_unload: Duration,
    unloadable: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    // A model that failed to load is tried again after a wait that doubles (a full GPU, a
    // slow disk may pass), up to MAX_RETRY_WAIT, or at once if the registry names another.
    let mut failed: Option<(String, Instant, Duration)> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let current = shared.model.get();
        if !idle_unload.is_zero() {
            current.transcriber.unload_if_idle();
            shared.models.unload_idle();
        }
        let row = match shared.journal().serving_model() {
            Ok(Some(row)) => row,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the model registry");
                continue;
            }
        };
        if current.sha256.as_deref() == Some(row.sha256.as_str()) {
            failed = None;
            continue;
        }
        if shared.gpu_runs.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            // An exclusive training run holds the GPU: the swap waits for its end.
            continue;
        }
        let wait = match &failed {
            Some((sha, next, _)) if *sha == row.sha256 && Instant::now() < *next => continue,
            Some((sha, _, wait)) if *sha == row.sha256 => (*wait * 2).min(MAX_RETRY_WAIT),
            _ => FIRST_RETRY_WAIT,
        };
        tracing::info!(model = %row.path.display(), id = row.id, "the registry serves another model: loading it");
        let (path, sha) = (row.path.clone(), row.sha256.clone());
        let m = shared.model_options.clone();
        let loaded =
            tokio::task::spawn_blocking(move || load(path, Some(sha), &m, unloadable)).await;
        match loaded {
            Ok(Ok(model)) => {
                let was = current.sha256.clone().unwrap_or_default();
                shared.model.set(model);
                failed = None;
                tracing::info!(model = %row.path.display(), id = row.id, sha256 = %row.sha256, previous = %was,
                    "model swapped: jobs from now on use it; jobs already running finish on the one they started with");
            }
            Ok(Err(why)) => {
                tracing::error!(model = %row.path.display(), id = row.id, %why, retry_in = ?wait,
                    "cannot serve the model the registry names: the current one keeps serving (`hotfolderd model rollback` or promote another)");
                failed = Some((row.sha256.clone(), Instant::now() + wait, wait));
            }
            Err(e) => tracing::error!(error = %e, "loading a model ended abnormally"),
        }
    }
}

/// Loads the model at `path`, after checking that it is still the content `sha256` where
/// that is known (a registered model), else hashing it (a profile's).
pub fn load(
    path: PathBuf,
    sha256: Option<String>,
    model: &ModelOptions,
    unloadable: Option<Duration>,
) -> Result<ServingModel, String> {
    let actual = crate::hash::sha256_file(&path).map_err(|e| format!("cannot read it: {e}"))?;
    if let Some(sha256) = sha256.filter(|s| *s != actual) {
        return Err(format!(
            "its content changed since it was registered (sha256 {actual}, registered {sha256})"
        ));
    }
    let loaded = WhisperTranscriber::load_with(&path, model).map_err(|e| e.to_string())?;
    let transcriber: Arc<dyn Transcriber> = match unloadable {
        None => Arc::new(loaded),
        Some(after) => {
            Arc::new(IdleModel::new(loaded, path.clone(), after).with_options(model.clone()))
        }
    };
    Ok(ServingModel::new(transcriber, path, Some(actual)))
}
