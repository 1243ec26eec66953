//! `hotfolderd run`: folder sources → intake (journal) → worker → outputs. The journal is the
//! queue: intake records each complete file and marks it queued; the worker takes the oldest
//! queued input. A restart requeues whatever was running, so nothing is lost and finished
//! work is never redone.

mod intake;
mod jobs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use crate::config::{Config, JobLimits, WatchConfig};
use crate::journal::{Journal, JournalError};
use crate::pipeline::cancel::Cancel;
use crate::pipeline::transcribe::{DecodeOptions, Transcriber, WhisperTranscriber};
use crate::sources::fs::{watch_folder, Candidate, FolderSpec};
use crate::worker::FolderJob;

/// After the grace period, how long stopped jobs get to record that they were stopped.
const STOP_SETTLE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Setup(String),
}

const WATCH_PREFIX: &str = "watch:";

/// The journal's `source` for a watched folder.
pub fn source_id(root: &Path) -> String {
    format!("{WATCH_PREFIX}{}", root.display())
}

/// The watched folder a journal `source` names, if it is one.
pub fn source_root(source: &str) -> Option<PathBuf> {
    source.strip_prefix(WATCH_PREFIX).map(PathBuf::from)
}

struct Shared {
    journal: Mutex<Journal>,
    folders: HashMap<String, FolderInfo>,
    /// Idle workers wait on this; intake wakes them.
    wake: Notify,
    workers: usize,
    asr_limits: JobLimits,
    /// Stop tokens of the jobs running now, by input id.
    running: Mutex<HashMap<i64, Cancel>>,
    stopping: watch::Receiver<bool>,
}

#[derive(Clone)]
struct FolderInfo {
    root: PathBuf,
    output: PathBuf,
    formats: Vec<crate::pipeline::render::Format>,
    after: crate::config::After,
}

impl FolderInfo {
    fn job(&self, rel: PathBuf) -> FolderJob {
        FolderJob {
            root: self.root.clone(),
            rel,
            output: self.output.clone(),
            formats: self.formats.clone(),
            after: self.after,
        }
    }
}

impl Shared {
    fn journal(&self) -> MutexGuard<'_, Journal> {
        // A panic while holding the lock cannot leave SQLite inconsistent; keep going.
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn running(&self) -> MutexGuard<'_, HashMap<i64, Cancel>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes up to `queued` idle workers (a wake-up with nobody waiting is kept for the next).
    fn wake_workers(&self, queued: usize) {
        for _ in 0..queued.min(self.workers) {
            self.wake.notify_one();
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Runs the daemon with the configured Whisper model until SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let transcriber: Arc<dyn Transcriber> = Arc::new(
        WhisperTranscriber::load(&config.asr.model)
            .map_err(|e| DaemonError::Setup(e.to_string()))?,
    );
    run_with(config, transcriber, wait_for_signal()).await
}

/// Runs the daemon with the given transcriber until `shutdown` completes (benchmarks of
/// intake use a stub transcriber and their own stop).
pub async fn run_with(
    config: Config,
    transcriber: Arc<dyn Transcriber>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let mut journal = Journal::open(&config.journal.path)?;
    let recovered = journal.recover()?;
    if recovered > 0 {
        tracing::info!(recovered, "requeued inputs interrupted by the last stop");
    }
    let opts = DecodeOptions {
        threads: *config.asr.threads.get_ref(),
        language: config.asr.language.clone(),
        vad_model: config.asr.vad_model.clone().filter(|p| p.is_file()),
        audio_ctx: config.asr.audio_ctx,
        ..DecodeOptions::default()
    };
    let folders: HashMap<String, FolderInfo> = config
        .watch
        .iter()
        .map(|w: &WatchConfig| {
            let root = absolute(w.path.get_ref());
            let info = FolderInfo {
                root: root.clone(),
                output: absolute(w.output.get_ref()),
                formats: w.formats.get_ref().clone(),
                after: w.after,
            };
            (source_id(&root), info)
        })
        .collect();
    for f in folders.values() {
        let n = crate::sinks::local::remove_stale_temps(&f.output);
        if n > 0 {
            tracing::info!(output = %f.output.display(), removed = n, "removed temporary files left by an interrupted write");
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = (*config.asr.workers.get_ref()).max(1);
    let shared = Arc::new(Shared {
        journal: Mutex::new(journal),
        folders,
        wake: Notify::new(),
        workers,
        asr_limits: config.asr.limits(),
        running: Mutex::new(HashMap::new()),
        stopping: stop_rx.clone(),
    });

    let (cand_tx, cand_rx) = mpsc::channel::<Candidate>(4096);
    let mut sources = Vec::new();
    for w in &config.watch {
        let spec = FolderSpec {
            root: absolute(w.path.get_ref()),
            stable_for: *w.stable_for.get_ref(),
            rescan_every: *w.rescan_every.get_ref(),
            marker: w.marker.clone().filter(|m| !m.is_empty()),
        };
        sources.push(tokio::spawn(watch_folder(
            spec,
            cand_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(cand_tx);
    let intake = tokio::spawn(intake::intake(shared.clone(), cand_rx));
    let mut pool = tokio::task::JoinSet::new();
    for _ in 0..workers {
        pool.spawn(jobs::work(
            shared.clone(),
            transcriber.clone(),
            opts.clone(),
            stop_rx.clone(),
        ));
    }
    tracing::info!(folders = config.watch.len(), workers, "hotfolderd running");

    shutdown.await;
    let grace = *config.daemon.shutdown_grace.get_ref();
    tracing::info!(
        ?grace,
        "stopping: no new files; letting running jobs finish"
    );
    let _ = stop_tx.send(true);
    for s in sources {
        let _ = s.await;
    }
    let _ = intake.await;
    let drained = tokio::time::timeout(grace, async { while pool.join_next().await.is_some() {} });
    if drained.await.is_err() {
        let stopped: Vec<i64> = shared
            .running()
            .iter()
            .map(|(id, c)| {
                c.cancel();
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
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
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
