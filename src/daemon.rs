//! `hotfolderd run`: folder sources → intake (journal) → worker → outputs. The journal is the
//! queue: intake records each complete file and marks it queued; the worker takes the oldest
//! queued input. A restart requeues whatever was running, so nothing is lost and finished
//! work is never redone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use crate::config::{Config, WatchConfig};
use crate::journal::{Journal, JournalError, State};
use crate::pipeline::transcribe::{DecodeOptions, Transcriber, WhisperTranscriber};
use crate::sources::fs::{watch_folder, Candidate, FolderSpec};
use crate::worker::{after_done, outputs_from_twin, process, quarantine, FolderJob, Outcome};

/// How long a running job may take to finish after SIGTERM before the daemon exits anyway
/// (the job stays `running` in the journal and is redone on the next start).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Transient failures are retried this many times before the input is marked failed.
const MAX_ATTEMPTS: i64 = 5;

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
    wake: Notify,
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
    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        // A panic while holding the lock cannot leave SQLite inconsistent; keep going.
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub async fn run(config: Config) -> Result<(), DaemonError> {
    let mut journal = Journal::open(&config.journal.path)?;
    let recovered = journal.recover()?;
    if recovered > 0 {
        tracing::info!(recovered, "requeued inputs interrupted by the last stop");
    }
    let transcriber: Arc<dyn Transcriber> = Arc::new(
        WhisperTranscriber::load(&config.asr.model)
            .map_err(|e| DaemonError::Setup(e.to_string()))?,
    );
    let opts = DecodeOptions {
        threads: *config.asr.threads.get_ref(),
        language: config.asr.language.clone(),
        vad_model: config.asr.vad_model.clone().filter(|p| p.is_file()),
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
    let shared = Arc::new(Shared {
        journal: Mutex::new(journal),
        folders,
        wake: Notify::new(),
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let (cand_tx, cand_rx) = mpsc::channel::<Candidate>(1024);
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
    let intake = tokio::spawn(intake(shared.clone(), cand_rx));
    let worker = tokio::spawn(work(shared.clone(), transcriber, opts, stop_rx.clone()));
    tracing::info!(folders = config.watch.len(), "hotfolderd running");

    wait_for_signal().await;
    tracing::info!("stopping: no new files; letting the running job finish");
    let _ = stop_tx.send(true);
    shared.wake.notify_waiters();
    for s in sources {
        let _ = s.await;
    }
    let _ = intake.await;
    if tokio::time::timeout(SHUTDOWN_GRACE, worker).await.is_err() {
        tracing::warn!("running job did not finish within {SHUTDOWN_GRACE:?}; it will be redone on the next start");
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

/// Records every complete file the sources hand over and queues new ones. A version seen
/// before is brought forward instead: a crash may have stopped it between intake steps
/// (still `seen`/`stable`), or after its outputs were journaled but before the input was
/// moved (`done`, yet still in the folder).
async fn intake(shared: Arc<Shared>, mut rx: mpsc::Receiver<Candidate>) {
    while let Some(c) = rx.recv().await {
        let source = source_id(&c.root);
        let key = c.rel.to_string_lossy().into_owned();
        let version = format!("{}:{}:{}", c.meta.len, c.meta.mtime_ns, c.meta.inode);
        let result = {
            let mut j = shared.journal();
            j.record_seen(&source, &key, &version, c.meta.len)
                .and_then(|(id, _)| {
                    let state = j.get(id)?.map(|i| i.state);
                    if state == Some(State::Seen) {
                        j.transition(id, State::Stable, None)?;
                    }
                    if matches!(state, Some(State::Seen | State::Stable)) {
                        j.transition(id, State::Queued, None)?;
                        return Ok(None);
                    }
                    Ok(state)
                })
        };
        match result {
            Ok(None) => shared.wake.notify_one(),
            Ok(Some(State::Done)) => finish_after(&shared, &source, &c.rel),
            Ok(Some(_)) => {}
            Err(e) => {
                tracing::error!(file = %c.root.join(&c.rel).display(), error = %e, "cannot journal input")
            }
        }
    }
}

/// Completes the after-action of an input whose outputs are already journaled.
fn finish_after(shared: &Shared, source: &str, rel: &Path) {
    let Some(folder) = shared
        .folders
        .get(source)
        .filter(|f| f.after != crate::config::After::Keep)
    else {
        return;
    };
    let job = folder.job(rel.to_path_buf());
    match after_done(&job) {
        Ok(()) => {
            tracing::info!(file = %job.input().display(), "finished the move interrupted by the last stop")
        }
        Err(e) => {
            tracing::warn!(file = %job.input().display(), error = %e, "could not move/delete a finished input")
        }
    }
}

/// Takes queued inputs one at a time until told to stop.
async fn work(
    shared: Arc<Shared>,
    transcriber: Arc<dyn Transcriber>,
    opts: DecodeOptions,
    stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let next = shared
            .journal()
            .in_state(State::Queued)
            .map(|ids| ids.first().copied());
        let id = match next {
            Ok(Some(id)) => id,
            Ok(None) => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "journal unreadable; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if let Err(e) = run_one(&shared, id, &transcriber, &opts).await {
            tracing::error!(id, error = %e, "journal update failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn run_one(
    shared: &Arc<Shared>,
    id: i64,
    transcriber: &Arc<dyn Transcriber>,
    opts: &DecodeOptions,
) -> Result<(), JournalError> {
    let input = shared.journal().get(id)?.ok_or(JournalError::Missing(id))?;
    let Some(folder) = shared.folders.get(&input.source) else {
        // A folder removed from the config: leave its inputs queued for when it returns.
        tracing::warn!(id, source = %input.source, "input from a folder no longer configured; skipped");
        tokio::time::sleep(Duration::from_secs(5)).await;
        return Ok(());
    };
    let job = folder.job(PathBuf::from(&input.key));
    shared.journal().transition(id, State::Running, None)?;
    let attempts = input.attempts + 1;
    if !job.input().is_file() {
        return shared.journal().transition(
            id,
            State::Failed,
            Some("input vanished before it was processed"),
        );
    }
    // The same content finished before (under any name): reuse its result.
    let path = job.input();
    let sha = tokio::task::spawn_blocking(move || crate::hash::sha256_file(&path))
        .await
        .ok()
        .and_then(Result::ok);
    if let Some(sha) = &sha {
        let twin = {
            let mut j = shared.journal();
            j.set_sha256(id, sha)?;
            j.done_with_sha256(sha)?
        };
        if let Some(twin) = twin.filter(|t| t.id != id) {
            let (jb, outs) = (job.clone(), twin.outputs.clone());
            let copied = tokio::task::spawn_blocking(move || outputs_from_twin(&jb, &outs))
                .await
                .ok()
                .flatten();
            match copied {
                Some(Ok(outputs)) => {
                    shared.journal().finish(id, &outputs)?;
                    if let Err(e) = after_done(&job) {
                        tracing::warn!(file = %job.input().display(), error = %e, "outputs are done, but the input could not be moved/deleted");
                    }
                    tracing::info!(file = %job.input().display(), twin = twin.id, "done (same content as an earlier input; outputs reused)");
                    return Ok(());
                }
                Some(Err(reason)) => {
                    tracing::warn!(file = %job.input().display(), %reason, "could not reuse outputs; transcribing")
                }
                None => {}
            }
        }
    }
    let (t, o, j) = (transcriber.clone(), opts.clone(), job.clone());
    let outcome = tokio::task::spawn_blocking(move || process(&j, &t, &o, sha))
        .await
        .unwrap_or_else(|e| Outcome::Transient {
            stage: "transcribe",
            reason: format!("worker ended abnormally: {e}"),
        });
    match outcome {
        Outcome::Done { outputs } => {
            shared.journal().finish(id, &outputs)?;
            if let Err(e) = after_done(&job) {
                tracing::warn!(file = %job.input().display(), error = %e, "outputs are done, but the input could not be moved/deleted");
            }
            tracing::info!(file = %job.input().display(), "done");
        }
        Outcome::Permanent { stage, reason } => {
            let detail = format!("{stage}: {reason}");
            match quarantine(&job, stage, &reason, attempts) {
                Ok(to) => {
                    tracing::warn!(file = %job.input().display(), moved_to = %to.display(), reason = %detail, "failed")
                }
                Err(e) => {
                    tracing::error!(file = %job.input().display(), error = %e, reason = %detail, "failed, and could not be moved to failed/")
                }
            }
            shared
                .journal()
                .transition(id, State::Failed, Some(&detail))?;
        }
        Outcome::Transient { stage, reason } => {
            let detail = format!("{stage}: {reason} (attempt {attempts} of {MAX_ATTEMPTS})");
            if attempts >= MAX_ATTEMPTS {
                shared
                    .journal()
                    .transition(id, State::Failed, Some(&detail))?;
            } else {
                shared
                    .journal()
                    .transition(id, State::Queued, Some(&detail))?;
                let backoff = Duration::from_secs(1 << attempts.clamp(0, 6));
                tracing::warn!(file = %job.input().display(), reason = %detail, ?backoff, "will retry");
                tokio::time::sleep(backoff).await;
            }
        }
    }
    Ok(())
}
