//! `hotfolderd run`: folder and SQS sources → intake (journal) → workers → outputs (local
//! or S3). The journal is the queue: intake records each complete file or object event and
//! marks it queued; workers take the oldest queued input. A restart requeues whatever was running, so nothing is lost and finished
//! work is never redone.

pub use source_id::SourceId;

/// An HTTP upload's journaled request (for `hotfolderd retry`).
pub fn api_request(json: &str) -> Result<api::Request, serde_json::Error> {
    api::Request::parse(json)
}

mod api;
mod audit;
mod corrections;
mod dataset_removal;
mod disk;
mod http;
mod intake;
mod models;
mod notify;
mod progress;
mod receipts;
mod retention;
mod s3_removed;
mod serving;
mod source_id;
mod sources;
mod sqs_intake;
mod systemd;
mod training;
mod training_lease;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use crate::config::{Config, JobLimits, Malformed, S3After, S3Config};
use crate::dataset::Dataset;
use crate::journal::{Journal, JournalError};
use crate::pipeline::cancel::Cancel;
use crate::pipeline::idle_model::IdleModel;
use crate::pipeline::render::Format;
use crate::pipeline::transcribe::{DecodeOptions, Transcriber, WhisperTranscriber};
use crate::sources::fs::Candidate;
use crate::sources::sqs::{Delivery, QueueSpec};
use crate::training::gpu::GpuInfo;

/// After the grace period, how long stopped jobs get to record that they were stopped.
const STOP_SETTLE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Setup(String),
}

/// At the end of a stop, how long open HTTP requests get to finish.
const HTTP_SETTLE: Duration = Duration::from_secs(10);

/// A temporary output file untouched this long belongs to no running write.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// An `[[s3]]` source as the workers need it.
struct QueueInfo {
    clients: crate::aws::Clients,
    /// Queue, input bucket and prefix, visibility timeout.
    spec: QueueSpec,
    output_bucket: String,
    output_prefix: String,
    formats: Vec<Format>,
    after: S3After,
    max_object_size: u64,
    multipart_threshold: u64,
    malformed: Malformed,
    /// Trips when S3 is unreachable, so queued jobs wait instead of hammering it.
    breaker: crate::aws::Breaker,
    /// Whether SQS answered the latest receive.
    reach: Arc<crate::sources::sqs::Reachability>,
    /// What its inputs are decoded with.
    profile: Arc<crate::config::Resolved>,
}

impl QueueInfo {
    async fn new(c: &S3Config, profile: Arc<crate::config::Resolved>) -> QueueInfo {
        let spec = QueueSpec {
            queue_url: c.queue_url.get_ref().clone(),
            input_bucket: c.input_bucket.get_ref().clone(),
            input_prefix: c.input_prefix.clone(),
            max_messages: *c.max_messages.get_ref(),
            wait_time: *c.wait_time.get_ref(),
            visibility_timeout: *c.visibility_timeout.get_ref(),
            removals: c.on_removed == crate::config::OnRemoved::DeleteOutputs,
            foreign: c.foreign,
        };
        QueueInfo {
            clients: crate::aws::clients(c.force_path_style).await,
            spec,
            output_bucket: c.output_bucket.get_ref().clone(),
            output_prefix: c.output_prefix.get_ref().clone(),
            formats: (profile.formats.clone()).unwrap_or_else(|| c.formats.get_ref().clone()),
            after: c.after,
            max_object_size: *c.max_object_size.get_ref(),
            multipart_threshold: *c.multipart_threshold.get_ref(),
            malformed: c.malformed,
            breaker: crate::aws::Breaker::default(),
            reach: Arc::default(),
            profile,
        }
    }

    /// Where the outputs named `name` (`job::journaled_output_name`) go, less the format's
    /// extension: the name less `input_prefix`, under `output_prefix`.
    fn output_stem(&self, name: &str) -> String {
        let rel = name.strip_prefix(&self.spec.input_prefix).unwrap_or(name);
        format!("{}{rel}", self.output_prefix)
    }
}

struct Shared {
    /// Shared with blocking job steps (datasets) as well as the async tasks.
    journal: Arc<Mutex<Journal>>,
    /// The configured sources by source id; SIGHUP replaces them (`sources.rs`).
    folders: RwLock<HashMap<SourceId, FolderInfo>>,
    queues: RwLock<HashMap<SourceId, Arc<QueueInfo>>>,
    /// SQS messages of the inputs not yet final.
    receipts: Mutex<receipts::Receipts>,
    /// Where S3 objects are downloaded to, and decoded audio kept for datasets, while
    /// their jobs run.
    spool: PathBuf,
    /// The datasets each source (by source id) feeds.
    feeds: HashMap<SourceId, Vec<Arc<Dataset>>>,
    datasets: Vec<Arc<Dataset>>,
    /// Free GPU memory figures (NVML, or a fake in tests).
    gpu: Arc<dyn GpuInfo>,
    /// A transcription starts only with this much GPU memory free (`[asr]`), on its device.
    asr_min_free_gpu: Option<u64>,
    /// How models are loaded (`[asr] gpu_device`): at a swap, and again after an unload.
    model_options: crate::pipeline::transcribe::ModelOptions,
    /// The daemon's own `CUDA_VISIBLE_DEVICES`, which narrows the GPUs it and its runs use.
    cuda_visible: Option<String>,
    /// Trim the trails of inputs finished longer ago (`[journal] compact_after`).
    compact_after: Option<Duration>,
    /// New jobs wait while a disk the daemon writes to has less free (`[daemon]`).
    min_free_disk: Option<u64>,
    /// Why jobs wait for disk space now, if they do (a change is logged once).
    disk_low: Mutex<Option<String>>,
    /// Training runs holding the GPU exclusively (transcription waits while any do).
    gpu_runs: std::sync::atomic::AtomicUsize,
    /// Wakes the training trigger (a dataset took in new hours).
    train_wake: Notify,
    /// Idle workers wait on this; intake wakes them.
    wake: Notify,
    /// The notification sender waits on this; a finished job wakes it.
    outbox_wake: Notify,
    workers: usize,
    asr_limits: JobLimits,
    /// The jobs running now, by input id.
    running: Mutex<HashMap<i64, RunningJob>>,
    stopping: watch::Receiver<bool>,
    /// The model that serves now (swapped when the registry promotes another).
    model: serving::Slot,
    /// The other models profiles name, loaded as needed.
    models: models::ModelPool,
    /// The decoding options every job and evaluation uses.
    opts: DecodeOptions,
    /// Where registered models are kept.
    models_dir: PathBuf,
    /// The HTTP API (`[http] api = true`).
    api: Option<api::Api>,
    /// The id of each input whose job has just ended (requests waiting for a result).
    job_events: tokio::sync::broadcast::Sender<i64>,
}

/// A job running now: how to stop it, since when, and how far it is.
#[derive(Clone)]
struct RunningJob {
    cancel: Cancel,
    started: std::time::Instant,
    progress: crate::pipeline::progress::Progress,
}

#[derive(Clone)]
struct FolderInfo {
    root: PathBuf,
    output: PathBuf,
    /// `output = "beside"`: subtitles next to each media file, which stays where it is.
    beside: bool,
    formats: Vec<crate::pipeline::render::Format>,
    after: crate::config::After,
    /// Larger inputs are quarantined without being read.
    max_file_size: u64,
    keep: retention::Keep,
    /// What its inputs are decoded with.
    profile: Arc<crate::config::Resolved>,
}

impl Shared {
    /// The serving model as a training run starts from it and is scored against it (none
    /// for a transcriber without a model file).
    fn eval_serving(&self) -> Option<Arc<crate::training::eval::Serving>> {
        let m = self.model.get();
        let sha256 = m.sha256.clone()?;
        Some(Arc::new(crate::training::eval::Serving {
            transcriber: m.transcriber.clone(),
            opts: self.opts.clone(),
            model: m.path.clone(),
            sha256,
            models_dir: self.models_dir.clone(),
        }))
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        // A panic while holding the lock cannot leave SQLite inconsistent; keep going.
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn receipts(&self) -> MutexGuard<'_, receipts::Receipts> {
        self.receipts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn running(&self) -> MutexGuard<'_, HashMap<i64, RunningJob>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn folder(&self, source: &SourceId) -> Option<FolderInfo> {
        let folders = self.folders.read().unwrap_or_else(|p| p.into_inner());
        folders.get(source).cloned()
    }

    fn queue(&self, source: &SourceId) -> Option<Arc<QueueInfo>> {
        let queues = self.queues.read().unwrap_or_else(|p| p.into_inner());
        queues.get(source).cloned()
    }

    /// Wakes up to `queued` idle workers (a wake-up with nobody waiting is kept for the next).
    fn wake_workers(&self, queued: usize) {
        for _ in 0..queued.min(self.workers) {
            self.wake.notify_one();
        }
    }
}

/// The pool of the models profiles name, loaded as the serving model is (`[asr]`).
fn profile_models(config: &Config) -> models::ModelPool {
    let options = config.asr.model_options();
    // Unloaded when idle, as the serving model; an exclusive run empties the pool instead.
    let idle = *config.asr.idle_unload.get_ref();
    let unloadable = (!idle.is_zero()).then_some(idle);
    models::ModelPool::new(
        *config.asr.max_loaded_models.get_ref(),
        Arc::new(move |path: &std::path::Path| {
            serving::load(path.to_path_buf(), None, &options, unloadable)
        }),
    )
}

/// Source id → the datasets it feeds, from each dataset's `sources` as written.
fn dataset_feeds(
    config: &Config,
    datasets: &[Arc<Dataset>],
) -> HashMap<SourceId, Vec<Arc<Dataset>>> {
    let mut feeds: HashMap<SourceId, Vec<Arc<Dataset>>> = HashMap::new();
    for (c, d) in config.dataset.iter().zip(datasets) {
        for s in c.sources.get_ref() {
            let id = match config
                .watch
                .iter()
                .find(|w| w.path.get_ref().to_string_lossy() == *s)
            {
                Some(w) => SourceId::folder(&absolute(w.path.get_ref())),
                None => SourceId::queue(s),
            };
            feeds.entry(id).or_default().push(d.clone());
        }
    }
    feeds
}

/// Drops each dataset's teacher model after `idle` without work (none when zero).
fn teacher_unloader(shared: &Arc<Shared>, idle: Duration) -> Option<tokio::task::JoinHandle<()>> {
    if idle.is_zero() || shared.datasets.iter().all(|d| d.teacher.is_none()) {
        return None;
    }
    let shared = shared.clone();
    Some(tokio::spawn(async move {
        let every = (idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        loop {
            tokio::time::sleep(every).await;
            for t in shared.datasets.iter().filter_map(|d| d.teacher.as_ref()) {
                t.unload_if_idle();
            }
        }
    }))
}

/// The model to serve and its sha256: the registry's serving model, unless `[asr] model`
/// names a content it has never seen (then that one, registered as serving from now on).
/// Whether the serving model must be able to drop its weights: after `idle_unload`, or (never
/// idle, `Duration::MAX`) for an exclusive training run. `None`: it never drops them.
pub(crate) fn unloadable(config: &Config) -> Option<Duration> {
    let idle = *config.asr.idle_unload.get_ref();
    let exclusive = config
        .dataset
        .iter()
        .any(|d| d.trainer.gpu_policy == crate::config::GpuPolicy::Exclusive);
    match (idle.is_zero(), exclusive) {
        (false, _) => Some(idle),
        (true, true) => Some(Duration::MAX),
        (true, false) => None,
    }
}

async fn registered_model(config: &Config) -> Result<(PathBuf, String), DaemonError> {
    let (configured, journal_path) = (config.asr.model.clone(), config.journal.path.clone());
    let chosen = tokio::task::spawn_blocking(move || -> Result<(PathBuf, String), DaemonError> {
        let read = |p: &Path| {
            crate::hash::sha256_file(p).map_err(|e| {
                DaemonError::Setup(format!("model {}: cannot read it: {e}", p.display()))
            })
        };
        let sha256 = read(&configured)?;
        let mut journal = Journal::open(&journal_path)?;
        let serving = journal.models_start(&sha256, &absolute(&configured).display().to_string())?;
        if serving.sha256 == sha256 {
            return Ok((configured, sha256));
        }
        match read(&serving.path) {
            Ok(actual) if actual == serving.sha256 => {
                tracing::info!(model = %serving.path.display(), id = serving.id, configured = %configured.display(),
                    "serving the model the registry promoted, not [asr] model");
                Ok((serving.path, actual))
            }
            found => {
                let why = found.map_or_else(|e| e.to_string(), |_| "its content changed".into());
                tracing::error!(model = %serving.path.display(), id = serving.id, %why,
                    "cannot serve the registry's serving model: serving [asr] model instead; until `hotfolderd model promote` or `rollback` mends the registry, runs do not promote and the daemon keeps trying to load it");
                Ok((configured, sha256))
            }
        }
    })
    .await
    .map_err(|e| DaemonError::Setup(format!("choosing the model ended abnormally: {e}")))?;
    chosen
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The daemon as `hotfolderd run` starts it: the model loaded up front, SIGTERM/SIGINT to
/// stop, SIGHUP to re-read `path`.
pub async fn run(mut config: Config, path: PathBuf) -> Result<(), DaemonError> {
    // Listening before anything slow: a SIGTERM or SIGHUP while the model loads used to
    // kill the daemon by the signal's default action. A stop asked for then is carried out
    // once it is up, a reload re-reads the file then.
    let stop = stop_signals();
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let started = std::time::Instant::now();
    let (model, model_sha256) = registered_model(&config).await?;
    config.asr.model = model;
    tracing::info!(model = %config.asr.model.display(), "loading the model");
    let model_options = config.asr.model_options();
    let loaded = WhisperTranscriber::load_with(&config.asr.model, &model_options)
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    tracing::info!(model = %config.asr.model.display(), took = ?started.elapsed(), "model loaded");
    let idle = *config.asr.idle_unload.get_ref();
    let mut unloader = None;
    let transcriber: Arc<dyn Transcriber> = match unloadable(&config) {
        None => Arc::new(loaded),
        Some(after) => {
            let model = Arc::new(
                IdleModel::new(loaded, config.asr.model.clone(), after)
                    .with_options(model_options.clone()),
            );
            if !idle.is_zero() {
                let m = model.clone();
                unloader = Some(tokio::spawn(async move {
                    let every =
                        (idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
                    loop {
                        tokio::time::sleep(every).await;
                        m.unload_if_idle();
                    }
                }));
            }
            model
        }
    };
    let (tx, rx) = mpsc::channel(1);
    let hup = tokio::spawn(systemd::reload_on_sighup(path, hangups, tx));
    let gpu: Arc<dyn GpuInfo> = Arc::new(crate::training::gpu::Nvml::default());
    let result = run_reloading(config, transcriber, Some(model_sha256), gpu, stop, rx).await;
    hup.abort();
    if let Some(u) = unloader {
        u.abort();
    }
    result
}

/// Runs the daemon with the given transcriber until `shutdown` completes (benchmarks of
/// intake use a stub transcriber and their own stop).
pub async fn run_with(
    config: Config,
    transcriber: Arc<dyn Transcriber>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    run_with_gpu(
        config,
        transcriber,
        Arc::new(crate::training::gpu::Nvml::default()),
        shutdown,
    )
    .await
}

/// The same with GPU memory figures from `gpu` (tests give a fake one).
pub async fn run_with_gpu(
    config: Config,
    transcriber: Arc<dyn Transcriber>,
    gpu: Arc<dyn GpuInfo>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (_never, reloads) = mpsc::channel(1);
    run_reloading(config, transcriber, None, gpu, shutdown, reloads).await
}

/// The same, taking new configurations from `reloads` while it runs. `known_sha256`: the
/// model file's sha256 if `run` hashed it already (else it is hashed here).
async fn run_reloading(
    config: Config,
    transcriber: Arc<dyn Transcriber>,
    known_sha256: Option<String>,
    gpu: Arc<dyn GpuInfo>,
    shutdown: impl std::future::Future<Output = ()>,
    mut reloads: mpsc::Receiver<Config>,
) -> Result<(), DaemonError> {
    if gpu.free_memory().ok().flatten().is_none() {
        tracing::info!(
            "no NVIDIA GPU found (NVML absent or no devices): GPU memory checks are off"
        );
    }
    let mut journal = Journal::open(&config.journal.path)?;
    // Before any source starts, so every input that ends from now on is announced.
    let outbox = notify::Notifier::new(&config)?;
    let (audit_log, audit_seq) = audit::open(&config.journal).map_err(DaemonError::Setup)?;
    journal.set_subscriptions(&notify::subscriptions(&config))?;
    let recovered = journal.recover()?;
    if recovered > 0 {
        tracing::info!(recovered, "requeued inputs interrupted by the last stop");
    }
    // The options of sources without a profile, and of evaluations.
    let asr = config
        .resolve_profile(None, None)
        .map_err(DaemonError::Setup)?;
    match (&asr.opts.vad_model, &asr.vad_missing) {
        (Some(p), _) => tracing::info!(vad_model = %p.display(), "non-speech is skipped with VAD"),
        (None, Some(warning)) => tracing::warn!("{warning} ([asr] vad = false)"),
        (None, None) => tracing::info!("VAD is off ([asr] vad = false): all audio is decoded"),
    }
    let opts = asr.opts;
    let model_sha256 = match known_sha256 {
        Some(sha) => Some(sha),
        None => {
            let model = config.asr.model.clone();
            let hashed =
                tokio::task::spawn_blocking(move || crate::hash::sha256_file(&model)).await;
            hashed.ok().and_then(Result::ok)
        }
    };
    // `run` has loaded the model from this file; a transcriber handed to `run_with`
    // (benchmarks' stubs) may have none, and is known by its name.
    // Moved, not cloned: after a swap nothing else keeps the first model's weights.
    let model = serving::ServingModel::new(transcriber, config.asr.model.clone(), model_sha256);
    let beside_journal = |name: &str| {
        config
            .journal
            .path
            .parent()
            .map_or_else(|| PathBuf::from(name), |p| p.join(name))
    };
    let spool = beside_journal("spool");
    let work_dir = crate::dataset::feed::work_dir(&config.journal.path);
    let datasets: Vec<Arc<Dataset>> = config
        .dataset
        .iter()
        .map(|c| {
            let box_id = config.daemon.box_id.as_ref().map(|b| b.get_ref().as_str());
            let d = Dataset::from_config(c, &work_dir).with_box_id(box_id);
            let idle = *config.asr.idle_unload.get_ref();
            Arc::new(d.teacher_loading(idle, config.asr.model_options()))
        })
        .collect();
    let feeds = dataset_feeds(&config, &datasets);
    std::fs::create_dir_all(&spool)
        .map_err(|e| DaemonError::Setup(format!("cannot create {}: {e}", spool.display())))?;
    // Spool files of a job a crash interrupted: the job is redone from the journal.
    if let Ok(entries) = std::fs::read_dir(&spool) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let api = match config.http.as_ref().filter(|h| h.api) {
        Some(h) => {
            let state_dir = config
                .journal
                .path
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let api = api::Api::new(&config, h, &state_dir).map_err(DaemonError::Setup)?;
            // A journal that cannot be read counts as knowing the file: nothing is lost.
            let removed = api.sweep(|job| !matches!(journal.http_job(job), Ok(None)));
            if removed > 0 {
                tracing::info!(
                    removed,
                    "removed uploads an interrupted request left unjournaled"
                );
            }
            Some(api)
        }
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = (*config.asr.workers.get_ref()).max(1);
    let shared = Arc::new(Shared {
        journal: Arc::new(Mutex::new(journal)),
        folders: RwLock::new(HashMap::new()),
        queues: RwLock::new(HashMap::new()),
        receipts: Mutex::new(receipts::Receipts::default()),
        spool,
        feeds,
        datasets,
        gpu,
        asr_min_free_gpu: config.asr.min_free_gpu_memory,
        model_options: config.asr.model_options(),
        cuda_visible: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        min_free_disk: config.daemon.min_free_disk,
        compact_after: config.journal.compact_after,
        disk_low: Mutex::new(None),
        gpu_runs: std::sync::atomic::AtomicUsize::new(0),
        train_wake: Notify::new(),
        wake: Notify::new(),
        outbox_wake: Notify::new(),
        workers,
        asr_limits: config.asr.limits(),
        running: Mutex::new(HashMap::new()),
        stopping: stop_rx.clone(),
        model: serving::Slot::new(model),
        models: profile_models(&config),
        opts: opts.clone(),
        models_dir: beside_journal("models"),
        api,
        job_events: tokio::sync::broadcast::channel(256).0,
    });

    for d in &shared.datasets {
        d.recover(&shared.journal)
            .map_err(|e| DaemonError::Setup(e.to_string()))?;
    }

    // Temporaries of writes a crash cut short: nothing is writing yet, so all of them.
    for w in &config.watch {
        let out = absolute(w.output.get_ref());
        let n = crate::sinks::local::remove_stale_temps(&out, Duration::ZERO);
        if n > 0 {
            tracing::info!(output = %out.display(), removed = n, "removed temporary files left by an interrupted write");
        }
    }
    let (cand_tx, cand_rx) = mpsc::channel::<Candidate>(4096);
    let intake = tokio::spawn(intake::intake(shared.clone(), cand_rx));
    let (del_tx, del_rx) = mpsc::channel::<Delivery>(256);
    let sqs_intake = tokio::spawn(sqs_intake::sqs_intake(shared.clone(), del_rx));
    let mut sources = sources::Sources::new(shared.clone(), cand_tx, del_tx);
    sources.apply(&config).await;
    let serving_path = config.asr.model.clone();
    let running_dtw = config.asr.dtw;
    let mut pool = tokio::task::JoinSet::new();
    for _ in 0..workers {
        pool.spawn(worker::work(shared.clone(), stop_rx.clone()));
    }
    let http = match &config.http {
        Some(h) => Some(http::start(h, shared.clone(), stop_rx.clone()).await?),
        None => None,
    };
    // Everything is started (the model was loaded before `run_with`): tell systemd.
    let systemd_reporter = tokio::spawn(systemd::report(shared.clone(), stop_rx.clone()));
    let trainer = (!shared.datasets.is_empty()).then(|| {
        tokio::spawn(training::trainer_loop(
            shared.clone(),
            shared.gpu.clone(),
            stop_rx.clone(),
        ))
    });
    let corrector = (!shared.datasets.is_empty())
        .then(|| tokio::spawn(corrections::watch_loop(shared.clone(), stop_rx.clone())));
    let teacher_unloader = teacher_unloader(&shared, *config.asr.idle_unload.get_ref());
    let model_watch = tokio::spawn(serving::watch_loop(
        shared.clone(),
        *config.asr.idle_unload.get_ref(),
        unloadable(&config),
        stop_rx.clone(),
    ));
    let (notify_stop, notify_stop_rx) = watch::channel(false);
    let (audit_stop, audit_stop_rx) = watch::channel(false);
    let auditor = {
        let (s, stop) = (shared.clone(), audit_stop_rx);
        tokio::task::spawn_blocking(move || audit::audit_loop(s, audit_log, audit_seq, stop))
    };
    let sender = (!outbox.is_empty())
        .then(|| tokio::spawn(notify::send_loop(shared.clone(), outbox, notify_stop_rx)));
    let cleaner = tokio::spawn(retention::cleanup_loop(
        shared.clone(),
        *config.daemon.cleanup_every.get_ref(),
        stop_rx.clone(),
    ));
    let progress_reporter = tokio::spawn(progress::progress_loop(shared.clone(), stop_rx.clone()));
    let (folders, queues) = sources.counts();
    tracing::info!(folders, queues, workers, "hotfolderd running");

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(mut new) = reloads.recv() => {
                // The model serving now (the registry's, maybe) stays what profiles without
                // their own model compare with and find their VAD model beside: a reload that
                // changes nothing restarts no source.
                new.asr.model.clone_from(&serving_path);
                // Models are loaded with DTW or not at start: jobs must say what they get.
                if new.asr.dtw != running_dtw {
                    tracing::warn!(dtw = new.asr.dtw, "[asr] dtw changes at the next restart (the loaded models keep their setting)");
                    new.asr.dtw = running_dtw;
                }
                systemd::reload(&mut sources, &new).await
            }
        }
    }
    let grace = *config.daemon.shutdown_grace.get_ref();
    tracing::info!(
        ?grace,
        "stopping: no new files; letting running jobs finish"
    );
    let _ = stop_tx.send(true);
    sources.stop_all().await;
    let _ = intake.await;
    let _ = sqs_intake.await;
    let drained = tokio::time::timeout(grace, async { while pool.join_next().await.is_some() {} });
    if drained.await.is_err() {
        let stopped: Vec<i64> = shared
            .running()
            .iter()
            .map(|(id, job)| {
                job.cancel.cancel();
                *id
            })
            .collect();
        tracing::warn!(?stopped, "jobs still running after {grace:?}: stopping them; they are requeued for the next start");
        let settled = tokio::time::timeout(STOP_SETTLE, async {
            while pool.join_next().await.is_some() {}
        });
        if settled.await.is_err() {
            tracing::warn!(
                "stopped jobs did not settle; the journal requeues them on the next start"
            );
        }
    }
    if let Some(t) = trainer {
        // Its runs were told to stop with everything else; each records itself interrupted.
        let _ = t.await;
    }
    if let Some(c) = corrector {
        let _ = c.await;
    }
    if let Some(t) = teacher_unloader {
        t.abort();
    }
    let _ = model_watch.await;
    let _ = progress_reporter.await;
    // Last: jobs that finished during the drain have their notifications in the outbox; what
    // is not sent by now goes out after the next start.
    let _ = cleaner.await;
    let _ = notify_stop.send(true);
    if let Some(s) = sender {
        let _ = s.await;
    }
    // After the sender: its `notified` events go in the log too.
    let _ = audit_stop.send(true);
    let _ = auditor.await;
    let _ = systemd_reporter.await;
    if let Some(mut h) = http {
        // Requests still open (an upload arriving, an event stream) are cut after a while:
        // an upload cut so never got a success, and its file is removed at the next start.
        if tokio::time::timeout(HTTP_SETTLE, &mut h).await.is_err() {
            tracing::warn!("HTTP requests still open after {HTTP_SETTLE:?}: closing them");
            h.abort();
        }
    }
    Ok(())
}

/// Every third of the visibility timeout, extends every message held from one queue (its
/// inputs queued or running here), so none reappears for another daemon while this one
/// still has it. Once the source is stopped (a reload removed it, or the daemon is
/// stopping) only the messages of jobs still running are extended, until the last of them
/// has finished or been handed back: a job finishing in the shutdown grace period is never
/// delivered to another daemon meanwhile.
async fn heartbeat(shared: Arc<Shared>, queue_url: String, stop: watch::Receiver<bool>) {
    let Some(q) = shared.queue(&SourceId::queue(&queue_url)) else {
        return;
    };
    let every = q.spec.visibility_timeout / 3;
    // Once winding down: the jobs running at that moment, the only ones still extended (a
    // source restarted on the same queue has its own heartbeat for the jobs after them).
    let mut draining: Option<Vec<i64>> = None;
    loop {
        tokio::time::sleep(every).await;
        if draining.is_none() && (*stop.borrow() || *shared.stopping.borrow()) {
            draining = Some(shared.running().keys().copied().collect());
        }
        let held = match &mut draining {
            Some(ids) => {
                let running = shared.running();
                ids.retain(|id| running.contains_key(id));
                drop(running);
                let held = shared.receipts().held_from(&queue_url, Some(ids));
                if held.is_empty() {
                    return;
                }
                held
            }
            None => shared.receipts().held_from(&queue_url, None),
        };
        for m in held {
            use crate::sources::sqs::{extend, ExtendError};
            match extend(&q.clients.sqs, &m, q.spec.visibility_timeout).await {
                Ok(()) => {}
                Err(ExtendError::HandleGone(e)) => {
                    // Its input stays journaled here and is finished here; a later delivery
                    // of the same event is deleted when seen.
                    tracing::warn!(message = %m.message_id, error = %e, "the message is no longer held (its receipt handle is gone); no longer extending it");
                    shared.receipts().forget(&m);
                }
                Err(ExtendError::Failed(e)) => {
                    tracing::warn!(message = %m.message_id, error = %e, "cannot extend the message's visibility; another daemon may take it over (its result would be the same)");
                }
            }
        }
    }
}

/// Resolves at the first SIGTERM or SIGINT. The handlers are installed when this is called,
/// not when it is first polled, so a signal that arrives in between is kept.
fn stop_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listening = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match listening {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
