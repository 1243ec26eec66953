//! Workers: each takes the oldest due input from the journal (claimed atomically, so
//! `[asr] workers` of them never share one), runs it under its time limit, and records how
//! it ended. Transient failures go back to the queue with a backoff instead of holding a
//! worker asleep.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::dataset::Feed;
use crate::journal::{Input, JournalError, State};
use crate::pipeline::cancel::{Cancel, Stopped};
use crate::pipeline::transcribe::{DecodeOptions, Transcriber};
use crate::worker::{
    after_done, outputs_from_twin, process, quarantine, FolderJob, JobResult, Outcome,
};

/// Transient failures are retried this many times before the input is marked failed.
const MAX_ATTEMPTS: i64 = 5;
/// A job that ran past its time limit is tried this many times in all.
const MAX_TIMEOUT_ATTEMPTS: i64 = 2;
/// How often an idle worker looks at the journal even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How often a worker waiting for GPU memory looks again.
const GPU_POLL: Duration = Duration::from_secs(1);

/// Takes queued inputs until told to stop.
pub(super) async fn work(
    shared: Arc<Shared>,
    transcriber: Arc<dyn Transcriber>,
    opts: DecodeOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut waiting_for_gpu = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let gpu_busy = shared.gpu_runs.load(std::sync::atomic::Ordering::SeqCst) > 0;
        if gpu_busy
            || !gpu_memory_free(&shared, &mut waiting_for_gpu)
            || !super::disk::room_to_work(&shared)
        {
            // gpu_policy = "exclusive" with a run going, too little GPU memory free, or a
            // disk below min_free_disk.
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = stop.changed() => {}
                _ = tokio::time::sleep(GPU_POLL) => {}
            }
            continue;
        }
        let claimed = shared.journal().claim_next();
        match claimed {
            Ok(Some(input)) => {
                let id = input.id;
                if let Err(e) = run_one(&shared, input, &transcriber, &opts).await {
                    tracing::error!(id, error = %e, "journal update failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                // Its notifications (if it ended) are in the outbox now.
                shared.outbox_wake.notify_one();
            }
            Ok(None) => {
                let due = shared.journal().next_due_in_ms().ok().flatten();
                let nap = due.map_or(IDLE_POLL, |ms| {
                    Duration::from_millis(ms.max(10) as u64).min(IDLE_POLL)
                });
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(nap) => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "journal unreadable; retrying");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

/// Whether `[asr] min_free_gpu_memory` is free (or not asked for, or there is no GPU).
/// Says so once when a worker starts waiting, and once when it stops.
fn gpu_memory_free(shared: &Shared, waiting: &mut bool) -> bool {
    if shared.asr_min_free_gpu.is_none() {
        return true;
    }
    let verdict = crate::training::gpu::check(shared.gpu.as_ref(), shared.asr_min_free_gpu);
    match (&verdict, *waiting) {
        (Err(why), false) => tracing::info!(%why, "transcription waits for GPU memory"),
        (Ok(()), true) => tracing::info!("GPU memory free again; transcribing"),
        _ => {}
    }
    *waiting = verdict.is_err();
    verdict.is_ok()
}

/// Removes the job's stop token from the shared table however the job ends.
struct Running<'a> {
    shared: &'a Shared,
    id: i64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.shared.running().remove(&self.id);
    }
}

async fn run_one(
    shared: &Arc<Shared>,
    input: Input,
    transcriber: &Arc<dyn Transcriber>,
    opts: &DecodeOptions,
) -> Result<(), JournalError> {
    let id = input.id;
    let cancel = Cancel::default();
    shared
        .running()
        .insert(id, (cancel.clone(), std::time::Instant::now()));
    let _running = Running { shared, id };
    if *shared.stopping.borrow() {
        // Claimed just as the shutdown began: leave it for the next start.
        return shared.journal().retry_later(id, "daemon stopping", 0);
    }
    let opts = DecodeOptions {
        cancel,
        ..opts.clone()
    };
    if let Some(folder) = shared.folder(&input.source) {
        let job = folder.job(PathBuf::from(&input.key));
        return run_folder_job(shared, &input, job, transcriber, opts).await;
    }
    if let Some(q) = shared.queue(&input.source) {
        return super::s3_job::run(shared, &input, &q, transcriber, opts).await;
    }
    // A source removed from the config: its inputs wait for it to come back.
    tracing::warn!(id, source = %input.source, "input from a source no longer configured; left queued");
    shared
        .journal()
        .retry_later(id, "its source is not in the configuration", 60_000)
}

async fn run_folder_job(
    shared: &Arc<Shared>,
    input: &Input,
    job: FolderJob,
    transcriber: &Arc<dyn Transcriber>,
    opts: DecodeOptions,
) -> Result<(), JournalError> {
    let id = input.id;
    if !job.input().is_file() {
        return shared.journal().transition(
            id,
            State::Failed,
            Some("input vanished before it was processed"),
        );
    }
    let path = job.input();
    let sha = tokio::task::spawn_blocking(move || crate::hash::sha256_file(&path))
        .await
        .ok()
        .and_then(Result::ok);
    if let Some(sha) = &sha {
        if reuse_twin(shared, id, &job, sha).await? {
            return Ok(());
        }
    }
    let limits = shared.asr_limits;
    let (t, j, s, source) = (
        transcriber.clone(),
        job.clone(),
        shared.clone(),
        input.source.clone(),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        let feed = s.feeds.get(&source).map(|datasets| Feed {
            datasets,
            journal: &s.journal,
            spool_dir: &s.spool,
        });
        process(
            &j,
            &t,
            &opts,
            sha,
            &|secs| limits.job_timeout(secs),
            feed.as_ref(),
        )
    })
    .await
    .unwrap_or_else(|e| Outcome::Transient {
        stage: "transcribe",
        reason: format!("worker ended abnormally: {e}"),
    });
    let fed = matches!(outcome, Outcome::Done { .. }) && shared.feeds.contains_key(&input.source);
    record_outcome(shared, input, &job, outcome)?;
    if fed {
        shared.train_wake.notify_one();
    }
    Ok(())
}

/// The same content finished before (under any name): its outputs are copied for this input.
/// `Ok(true)` when that finished the job.
async fn reuse_twin(
    shared: &Shared,
    id: i64,
    job: &FolderJob,
    sha: &str,
) -> Result<bool, JournalError> {
    let (twin, result) = {
        let mut j = shared.journal();
        j.set_sha256(id, sha)?;
        let twin = j.done_with_sha256(sha)?.filter(|t| t.id != id);
        let result = match &twin {
            Some(t) => j.result(t.id)?,
            None => None,
        };
        (twin, result)
    };
    let Some(twin) = twin else {
        return Ok(false);
    };
    let (jb, outs) = (job.clone(), twin.outputs.clone());
    let copied = tokio::task::spawn_blocking(move || outputs_from_twin(&jb, &outs))
        .await
        .ok()
        .flatten();
    match copied {
        Some(Ok(outputs)) => {
            shared.journal().finish(id, &outputs, result.as_ref())?;
            move_finished(shared, id, job);
            tracing::info!(file = %job.input().display(), twin = twin.id, "done (same content as an earlier input; outputs reused)");
            Ok(true)
        }
        Some(Err(reason)) => {
            tracing::warn!(file = %job.input().display(), %reason, "could not reuse outputs; transcribing");
            Ok(false)
        }
        None => Ok(false),
    }
}

fn move_finished(shared: &Shared, id: i64, job: &FolderJob) {
    if let Err(e) = after_done_noted(shared, id, job) {
        tracing::warn!(file = %job.input().display(), error = %e, "outputs are done, but the input could not be moved/deleted");
    }
}

/// The folder's `after` action for a finished input, recorded in its trail.
pub(super) fn after_done_noted(shared: &Shared, id: i64, job: &FolderJob) -> std::io::Result<()> {
    after_done(job)?;
    let note = match job.after {
        crate::config::After::Keep => None,
        crate::config::After::Move => Some((
            "moved",
            format!(
                "to {}",
                job.root
                    .join(crate::sources::names::DONE_DIR)
                    .join(&job.rel)
                    .display()
            ),
        )),
        crate::config::After::Delete => Some((
            "removed",
            "the input, as after = \"delete\" asks".to_string(),
        )),
    };
    if let Some((event, detail)) = note {
        if let Err(e) = shared.journal().note(id, event, &detail) {
            tracing::warn!(id, error = %e, "cannot record the input's move in the journal");
        }
    }
    Ok(())
}

/// What the journal should do with a job that ended with an [`Outcome`].
pub(super) enum Decision {
    /// The outputs, and what the transcription found.
    Done(Vec<String>, Option<JobResult>),
    /// The input is bad: fail it (quarantine where the source has a place for that).
    Fail { stage: String, reason: String },
    /// Transient failures exhausted: fail it, but the input itself may be fine.
    GiveUp(String),
    /// Back to the queue, not before `delay`.
    Retry { why: String, delay: Duration },
}

pub(super) fn decide(input: &Input, outcome: Outcome) -> Decision {
    let attempts = input.attempts;
    match outcome {
        Outcome::Done { outputs, result } => Decision::Done(outputs, result),
        Outcome::Permanent { stage, reason } => Decision::Fail {
            stage: stage.into(),
            reason,
        },
        Outcome::Stopped(Stopped::Cancelled) => Decision::Retry {
            why: "interrupted by shutdown; requeued".into(),
            delay: Duration::ZERO,
        },
        Outcome::Stopped(why @ Stopped::TimedOut(_)) => {
            if attempts >= MAX_TIMEOUT_ATTEMPTS {
                Decision::Fail {
                    stage: "timeout".into(),
                    reason: format!(
                        "{why} on each of {attempts} attempts; raise [asr] job_timeout_factor/job_timeout_max if the hardware is slow"
                    ),
                }
            } else {
                Decision::Retry {
                    why: format!("timeout: {why} (attempt {attempts} of {MAX_TIMEOUT_ATTEMPTS})"),
                    delay: backoff(attempts),
                }
            }
        }
        Outcome::Transient { stage, reason } => {
            if attempts >= MAX_ATTEMPTS {
                Decision::GiveUp(format!(
                    "{stage}: {reason} (gave up after {attempts} attempts)"
                ))
            } else {
                Decision::Retry {
                    why: format!("{stage}: {reason} (attempt {attempts} of {MAX_ATTEMPTS})"),
                    delay: backoff(attempts),
                }
            }
        }
    }
}

/// The `kind` label of a retry: its reason starts "timeout: …" for a job past its limit.
pub(super) fn retry_kind(why: &str) -> &'static str {
    if why.starts_with("timeout:") {
        "timeout"
    } else if why.starts_with("interrupted") {
        "shutdown"
    } else {
        "transient"
    }
}

/// 2^attempts seconds, at most about a minute.
fn backoff(attempts: i64) -> Duration {
    Duration::from_secs(1 << attempts.clamp(0, 6))
}

fn record_outcome(
    shared: &Shared,
    input: &Input,
    job: &FolderJob,
    outcome: Outcome,
) -> Result<(), JournalError> {
    let id = input.id;
    match decide(input, outcome) {
        Decision::Done(outputs, result) => {
            let result = result.and_then(|r| r.to_json());
            shared.journal().finish(id, &outputs, result.as_ref())?;
            move_finished(shared, id, job);
            tracing::info!(file = %job.input().display(), "done");
            Ok(())
        }
        Decision::Fail { stage, reason } => fail(shared, id, job, &stage, &reason, input.attempts),
        Decision::GiveUp(detail) => {
            tracing::warn!(file = %job.input().display(), reason = %detail, "failed; the file stays where it is");
            shared
                .journal()
                .transition(id, State::Failed, Some(&detail))
        }
        Decision::Retry { why, delay } => {
            tracing::warn!(file = %job.input().display(), reason = %why, ?delay, "will retry");
            crate::metrics::count_retry(&input.source, retry_kind(&why));
            shared
                .journal()
                .retry_later(id, &why, delay.as_millis() as i64)
        }
    }
}

/// A permanent failure: the input goes to `failed/` with its report and is `quarantined`
/// (`failed` if it could not be moved), the journal says why.
fn fail(
    shared: &Shared,
    id: i64,
    job: &FolderJob,
    stage: &str,
    reason: &str,
    attempts: i64,
) -> Result<(), JournalError> {
    let detail = format!("{stage}: {reason}");
    let state = match quarantine(job, stage, reason, attempts) {
        Ok(to) => {
            tracing::warn!(file = %job.input().display(), moved_to = %to.display(), reason = %detail, "failed; quarantined");
            State::Quarantined
        }
        Err(e) => {
            tracing::error!(file = %job.input().display(), error = %e, reason = %detail, "failed, and could not be moved to failed/");
            State::Failed
        }
    };
    shared.journal().transition(id, state, Some(&detail))
}
