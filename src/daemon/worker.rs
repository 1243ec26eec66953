//! The worker loop: each worker takes the oldest due input from the journal (claimed
//! atomically, so `[asr] workers` of them never share one), routes it to the one job path
//! (`job::run`) with the input and output its source has, journals how it ended
//! (`job::decide`), then finishes the input and deletes the SQS messages of a final one.
//! Transient failures go back to the queue with a backoff instead of holding a worker asleep.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::api::Request;
use super::{QueueInfo, Shared, SourceId};
use crate::job::{
    self, BesideMedia, Decision, Done, Failure, InFolder, Input, LocalDir, LocalFile, Upload,
};
use crate::journal::{JournalError, State};
use crate::pipeline::cancel::Cancel;
use crate::pipeline::progress::Progress;
use crate::pipeline::transcribe::DecodeOptions;

/// How often an idle worker looks at the journal even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How often a worker waiting for GPU memory looks again.
const GPU_POLL: Duration = Duration::from_secs(1);

/// Takes queued inputs until told to stop.
pub(super) async fn work(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
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
                if let Err(e) = run_one(&shared, input).await {
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

/// Whether `[asr] min_free_gpu_memory` is free on `[asr] gpu_device` (or not asked for, or
/// there is no GPU).
/// Says so once when a worker starts waiting, and once when it stops.
fn gpu_memory_free(shared: &Shared, waiting: &mut bool) -> bool {
    if shared.asr_min_free_gpu.is_none() {
        return true;
    }
    // The device whisper runs on, not the freest one: another GPU's free memory does not help.
    let verdict = crate::training::gpu::check_device(
        shared.gpu.as_ref(),
        shared.model_options.gpu_device.max(0) as u32,
        shared.asr_min_free_gpu,
        shared.cuda_visible.as_deref(),
    );
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

/// Routes a claimed input to the job path with its source's input and output.
async fn run_one(shared: &Arc<Shared>, row: crate::journal::Input) -> Result<(), JournalError> {
    let id = row.id;
    let cancel = Cancel::default();
    let progress = Progress::default();
    shared.running().insert(
        id,
        super::RunningJob {
            cancel: cancel.clone(),
            started: std::time::Instant::now(),
            progress: progress.clone(),
        },
    );
    let _running = Running { shared, id };
    if *shared.stopping.borrow() {
        // Claimed just as the shutdown began: leave it for the next start.
        return shared.journal().retry_later(id, "daemon stopping", 0);
    }
    if shared.gpu_runs.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        // Claimed just as an exclusive run took the GPU (it saw no job running, as this one
        // was not in the table yet): it waits for the run's end.
        return shared
            .journal()
            .retry_later(id, "an exclusive training run holds the GPU", 0);
    }
    let source = SourceId::parse(&row.source);
    let folder = source.as_ref().and_then(|s| shared.folder(s));
    let queue = source.as_ref().and_then(|s| shared.queue(s));
    let upload = match source {
        Some(SourceId::Http) => match http_request(shared, id) {
            Ok(found) => found,
            Err(RequestError::Journal(e)) => {
                tracing::error!(id, error = %e, "cannot read the upload's request from the journal; retrying");
                return shared
                    .journal()
                    .retry_later(id, &format!("journal: {e}"), 5_000);
            }
            Err(RequestError::Unreadable(why)) => {
                tracing::error!(id, %why, "the upload's journaled request cannot be read; failed");
                return shared.journal().transition(
                    id,
                    State::Failed,
                    Some(&format!(
                        "validate: the journaled request cannot be read: {why}"
                    )),
                );
            }
        },
        _ => None,
    };
    let Some(profile) = (folder.as_ref().map(|f| f.profile.clone()))
        .or_else(|| queue.as_ref().map(|q| q.profile.clone()))
        .or_else(|| upload.as_ref().map(|u| u.2.clone()))
    else {
        return source_gone(shared, &row);
    };
    // The model as it is now: a swap while this job runs does not change it.
    let model = match &profile.model {
        None => shared.model.get(),
        Some(path) => match shared.models.get(path).await {
            Ok(m) => m,
            Err(why) => {
                let why = format!("cannot load the profile's model {}: {why}", path.display());
                tracing::error!(id, "{why}; retrying in a minute");
                return shared.journal().retry_later(id, &why, 60_000);
            }
        },
    };
    let dedup_scope = model.dedup_scope(&profile.opts);
    let opts = DecodeOptions {
        cancel,
        progress,
        ..profile.opts.clone()
    };
    let no_datasets = Vec::new();
    let cx = job::Context {
        transcriber: &model.transcriber,
        opts,
        limits: Some(shared.asr_limits),
        formats: &[],
        journal: Some((&shared.journal, id)),
        spool_dir: &shared.spool,
        datasets: source
            .as_ref()
            .and_then(|s| shared.feeds.get(s))
            .unwrap_or(&no_datasets),
        dedup_scope: Some(&dedup_scope),
        model_sha256: model.sha256.as_deref(),
    };
    // The outputs' names, and the device a folder input was journaled on.
    let journaled = {
        let j = shared.journal();
        job::journaled_output_name(&j, &row.source, &row.key)
            .and_then(|name| Ok((name, j.device(id)?)))
    };
    let (name, device) = match journaled {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(id, error = %e, "cannot read the journal to name the outputs; retrying");
            return shared
                .journal()
                .retry_later(id, &format!("journal: {e}"), 5_000);
        }
    };
    if let Some(folder) = folder {
        let mut place = folder.place(PathBuf::from(&row.key));
        // The version is "len:mtime_ns:inode" (`FileMeta::version`).
        let mut parts = row.version.splitn(3, ':');
        let (len, mtime, inode) = (parts.next(), parts.next(), parts.next());
        place.inode = inode.and_then(|i| i.parse().ok());
        place.len_mtime = len
            .and_then(|l| l.parse().ok())
            .zip(mtime.and_then(|m| m.parse().ok()));
        place.device = device;
        let media = place.root.join(&place.rel);
        let mut input = LocalFile::in_folder(place);
        let cx = job::Context {
            formats: &folder.formats,
            ..cx
        };
        let outcome = if folder.beside {
            let own = shared.journal().outputs_of_key(&row.source, &row.key);
            let own = match own {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(id, error = %e, "cannot read the journal for earlier outputs; retrying");
                    return shared
                        .journal()
                        .retry_later(id, &format!("journal: {e}"), 5_000);
                }
            };
            let output = BesideMedia::new(folder.output.join(&name), media, own);
            job::run(&cx, &mut input, &output).await
        } else {
            let output = LocalDir::new(folder.output.join(&name));
            job::run(&cx, &mut input, &output).await
        };
        return settle(shared, &row, &input, outcome, None).await;
    }
    if let (Some((job_id, request, resolved)), Some(api)) = (&upload, &shared.api) {
        let formats = api.formats(resolved);
        let cx = job::Context {
            formats: &formats,
            ..cx
        };
        let mut input = Upload::new(
            api.uploads.join(&request.stored_as),
            job_id,
            &request.filename,
            Some(request.sha256.clone()),
        );
        let output = LocalDir::new(api.output_stem(job_id));
        let outcome = job::run(&cx, &mut input, &output).await;
        return settle(shared, &row, &input, outcome, None).await;
    }
    if let Some(q) = queue {
        let (mut input, output) = s3_job(&q, &row.key, &row.version, &name);
        let cx = job::Context {
            formats: &q.formats,
            ..cx
        };
        let outcome = job::run(&cx, &mut input, &output).await;
        return settle(shared, &row, &input, outcome, Some(&q)).await;
    }
    source_gone(shared, &row)
}

/// Why an upload's request could not be had.
enum RequestError {
    /// The journal did not answer (try again).
    Journal(String),
    /// What it holds cannot be read (it never will be).
    Unreadable(String),
}

/// An upload's job id, request and options; `None` while the API is off (then its input
/// waits, as one of a source removed from the configuration).
fn http_request(
    shared: &Shared,
    id: i64,
) -> Result<Option<(String, Request, Arc<crate::config::Resolved>)>, RequestError> {
    let Some(api) = &shared.api else {
        return Ok(None);
    };
    let job = shared
        .journal()
        .http_job_of_input(id)
        .map_err(|e| RequestError::Journal(e.to_string()))?
        .ok_or_else(|| {
            RequestError::Unreadable("the upload has no request in the journal".into())
        })?;
    let request =
        Request::parse(&job.request).map_err(|e| RequestError::Unreadable(e.to_string()))?;
    let resolved = api.resolved(&request);
    Ok(Some((job.job_id, request, resolved)))
}

/// A source removed from the config: its inputs wait for it to come back.
fn source_gone(shared: &Shared, row: &crate::journal::Input) -> Result<(), JournalError> {
    tracing::warn!(id = row.id, source = %row.source, "input from a source no longer configured; left queued");
    shared
        .journal()
        .retry_later(row.id, "its source is not in the configuration", 60_000)
}

/// The object `key` of an `[[s3]]` source, and where its outputs (`name`) go.
fn s3_job<'a>(
    q: &'a QueueInfo,
    key: &'a str,
    version: &str,
    name: &str,
) -> (job::S3Object<'a>, job::S3Prefix<'a>) {
    let pin = job::Pin::parse(version);
    let input = job::S3Object::new(
        &q.clients.s3,
        &q.spec.input_bucket,
        key,
        q.max_object_size,
        q.after,
        &q.breaker,
        pin.clone(),
    );
    let output = job::S3Prefix {
        s3: &q.clients.s3,
        bucket: &q.output_bucket,
        stem: q.output_stem(name),
        multipart_threshold: q.multipart_threshold,
        breaker: &q.breaker,
        sequencer: pin.sequencer,
    };
    (input, output)
}

/// Journals how a job ended; a finished input is then moved, deleted or tagged, and once an
/// input is final the SQS messages that announced it are deleted (through `queue`, the
/// source the job ran with: a reload may have removed it from the configuration since).
async fn settle(
    shared: &Shared,
    row: &crate::journal::Input,
    input: &impl Input,
    outcome: Result<Done, Failure>,
    queue: Option<&QueueInfo>,
) -> Result<(), JournalError> {
    let (id, name) = (row.id, input.name());
    match job::decide(row.attempts, outcome) {
        Decision::Done(done) => {
            let result = done.result.as_ref().and_then(|r| r.to_json());
            match &done.skipped {
                Some(why) => shared.journal().finish_skipped(id, why, result.as_ref())?,
                None => shared
                    .journal()
                    .finish(id, &done.outputs, result.as_ref())?,
            }
            match (&done.reused_from, &done.skipped) {
                (_, Some(why)) => tracing::info!(file = %name, reason = %why, "skipped"),
                (Some(twin), None) => {
                    tracing::info!(file = %name, twin, "done (same content as an earlier input; outputs reused)")
                }
                (None, None) => tracing::info!(file = %name, "done"),
            }
            finish(shared, id, input).await;
            if done.fed {
                shared.train_wake.notify_one();
            }
        }
        Decision::Reject { stage, reason } => {
            let state = input.reject(stage, &reason, row.attempts).await;
            shared
                .journal()
                .transition(id, state, Some(&format!("{stage}: {reason}")))?;
        }
        Decision::GiveUp(detail) => {
            tracing::warn!(file = %name, reason = %detail, "failed; the input stays where it is");
            shared
                .journal()
                .transition(id, State::Failed, Some(&detail))?;
        }
        Decision::Cancelled => {
            tracing::info!(file = %name, "cancelled by request");
            shared
                .journal()
                .transition(id, State::Cancelled, Some("cancelled by request"))?;
            // Only uploads can be cancelled: theirs is not wanted any more.
            if let Err(e) = input.finish().await {
                tracing::warn!(file = %name, error = %e, "cannot remove the cancelled upload");
            }
        }
        Decision::Retry { why, delay, kind } => {
            tracing::warn!(file = %name, reason = %why, ?delay, "will retry");
            crate::metrics::count_retry(&row.source, kind.as_str());
            return shared
                .journal()
                .retry_later(id, &why, delay.as_millis() as i64);
        }
        Decision::Wait { why, delay, tried } => {
            if tried {
                tracing::warn!(file = %name, reason = %why, ?delay, "unavailable; the job waits");
                // S3 is the only service a job waits for.
                crate::metrics::count_retry(&row.source, "s3_unavailable");
            }
            return shared
                .journal()
                .wait_later(id, &why, delay.as_millis() as i64);
        }
    }
    delete_messages(shared, row, queue).await;
    // Requests waiting on this input look at the journal again (none may be listening).
    let _ = shared.job_events.send(id);
    Ok(())
}

/// The input's `after` action once its outputs are journaled, recorded in its trail.
async fn finish(shared: &Shared, id: i64, input: &impl Input) {
    match input.finish().await {
        Ok(Some((event, detail))) => {
            if let Err(e) = shared.journal().note(id, event, &detail) {
                tracing::warn!(id, error = %e, "cannot record the input's after-action in the journal");
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(file = %input.name(), error = %e, "outputs are done, but the input could not be moved/deleted/tagged")
        }
    }
}

/// Deletes a final input's SQS messages (those that announced nothing else still pending).
async fn delete_messages(shared: &Shared, row: &crate::journal::Input, queue: Option<&QueueInfo>) {
    let messages = shared.receipts().finish(row.id);
    if messages.is_empty() {
        return;
    }
    let current = SourceId::parse(&row.source).and_then(|s| shared.queue(&s));
    let Some(q) = queue.or(current.as_deref()) else {
        tracing::warn!(id = row.id, "no queue to delete the messages of a final input from; they come back and are deleted on sight");
        return;
    };
    for m in messages {
        crate::sources::sqs::delete(&q.clients.sqs, &m).await;
    }
}

impl super::FolderInfo {
    /// Where a folder input lies and what happens to it once finished.
    pub(super) fn place(&self, rel: PathBuf) -> InFolder {
        InFolder {
            root: self.root.clone(),
            rel,
            after: self.after,
            in_place: self.beside,
            max_size: self.max_file_size,
            inode: None,
            device: None,
            len_mtime: None,
        }
    }
}
