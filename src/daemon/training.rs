//! The training trigger: after each input a dataset takes in (and every few seconds), a
//! dataset whose new hours reached `train_after_hours` gets a run, one at a time, unless
//! `min_interval` since the last start, `retry_after` since a failure, the free GPU memory
//! or the disk floor (`[daemon] min_free_disk`) says not yet. Runs left "running" by a
//! daemon that died are reaped at start-up; old run folders and candidates are pruned
//! (`keep_runs`, `keep_candidates`) at start-up, after each run and after each S3 copy.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{training_lease, Shared};
use crate::dataset::s3_sync::sync;
use crate::dataset::Dataset;
use crate::journal::RunState;
use crate::training::gpu::{self, GpuInfo};
use crate::training::run::{self, Plan};

const TICK: Duration = Duration::from_secs(5);
/// How long reading the other boxes' shards and the run lease may take in one pass.
const ACROSS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping daemon spends copying what is left to S3.
const FINAL_SYNC: Duration = Duration::from_secs(10);

pub(super) async fn trainer_loop(
    shared: Arc<Shared>,
    gpu: Arc<dyn GpuInfo>,
    stop: watch::Receiver<bool>,
) {
    reap_interrupted(&shared).await;
    release_abandoned_uploads(&shared);
    for d in &shared.datasets {
        prune(&shared, d).await;
    }
    let mut remotes = Vec::new();
    for d in &shared.datasets {
        if let Some(r) = &d.remote {
            let clients = crate::aws::clients(r.force_path_style).await;
            remotes.push((d.clone(), clients.s3, crate::aws::Breaker::default()));
        }
    }
    let client_of = |d: &Dataset| {
        remotes
            .iter()
            .find(|(r, _, _)| r.name == d.name)
            .map(|(_, s3, _)| s3.clone())
    };
    let mut waiting_for_lease = HashSet::new();
    let mut cannot_count = HashSet::new();
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut runs = tokio::task::JoinSet::new();
    let mut waiting_for_gpu = HashSet::new();
    let mut waiting_for_disk = HashSet::new();
    let mut stop_seen = stop.clone();
    loop {
        if *stop_seen.borrow() {
            break;
        }
        for (d, s3, breaker) in &remotes {
            // Behind a breaker: while S3 is out, a copy is tried a few times a minute, not
            // every pass, and a multipart upload resumes where it stopped.
            if breaker.admit().is_err() {
                continue;
            }
            match sync(d, s3, &shared.journal).await {
                Ok(n) => {
                    breaker.success();
                    if n > 0 {
                        tracing::info!(dataset = %d.name, objects = n, "dataset copied to S3");
                        // A run folder may only go once it is in the bucket.
                        prune(&shared, d).await;
                        // A run now complete in S3 released its `training_finished`.
                        shared.outbox_wake.notify_one();
                    }
                }
                Err(e) if e.outage => {
                    let wait = breaker.failure();
                    tracing::warn!(dataset = %d.name, error = %e, retry_in = ?wait, "S3 cannot be reached to copy the dataset; copies wait and resume where they stopped");
                }
                Err(e) => {
                    breaker.success();
                    tracing::warn!(dataset = %d.name, error = %e, "cannot copy all of the dataset to S3 now; will retry");
                    shared.outbox_wake.notify_one();
                }
            }
        }
        for d in &shared.datasets {
            if active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&d.name)
            {
                continue;
            }
            // An `s3://` dataset: its hours across every box feeding it, and its lease.
            let across = match (&d.remote, client_of(d)) {
                (Some(remote), Some(s3)) => {
                    // Bounded: a slow S3 must not hold up the copies and the other datasets.
                    let due = tokio::time::timeout(
                        ACROSS_TIMEOUT,
                        training_lease::due_across(&shared, d, &s3, remote, &mut waiting_for_lease),
                    )
                    .await
                    .unwrap_or_else(|_| Err("S3 answered too slowly".into()));
                    match due {
                        Ok(Some(due)) => {
                            cannot_count.remove(&d.name);
                            Some((due, s3, remote.clone()))
                        }
                        Ok(None) => continue,
                        Err(e) => {
                            if cannot_count.insert(d.name.clone()) {
                                tracing::warn!(dataset = %d.name, error = %e, "cannot read the dataset's shards or run lease in S3 now; no run starts until it can");
                            }
                            continue;
                        }
                    }
                }
                _ => None,
            };
            let due_now = match &across {
                Some((a, _, _)) => due_with(&shared, d, a.seconds),
                None => due(&shared, d),
            };
            let Some(seconds) = due_now else {
                continue;
            };
            let freed = d
                .trainer
                .exclusive_gpu
                .then(|| serving_model_memory(&shared))
                .flatten();
            let device = gpu::choose(
                gpu.as_ref(),
                d.trainer.min_free_gpu_memory,
                shared.cuda_visible.as_deref(),
                freed,
            )
            .and_then(|dev| dev.map(|dev| grant(&shared, d, dev)).transpose());
            let device = match device {
                Ok(device) => device,
                Err(why) => {
                    // Said once per wait, not every tick.
                    if waiting_for_gpu.insert(d.name.clone()) {
                        tracing::info!(dataset = %d.name, %why, "training is due but waits for GPU memory");
                    }
                    continue;
                }
            };
            waiting_for_gpu.remove(&d.name);
            if let Some(why) = super::disk::too_full_with(&shared, &[&d.root]) {
                // A run writes checkpoints: it waits for space as new jobs do.
                if waiting_for_disk.insert(d.name.clone()) {
                    tracing::warn!(dataset = %d.name, %why, "training is due but waits for disk space");
                }
                continue;
            }
            waiting_for_disk.remove(&d.name);
            let mut plan = Plan {
                id: run::new_id(&d.name),
                dataset: d.clone(),
                seconds,
                gpu: device,
                input: None,
                merged: None,
            };
            // One run across the boxes: the lease, taken over what was read.
            let across = match across {
                Some((due, s3, remote)) => {
                    let taken = crate::training::lease::take(
                        &s3,
                        &remote,
                        &due.token,
                        &due.seen,
                        &plan.id,
                        due.boxes,
                        now_ms(),
                    )
                    .await;
                    match taken {
                        Ok(Some(held)) => {
                            tracing::info!(dataset = %d.name, run = %plan.id, box_id = %remote.box_id,
                                boxes = due.peers.len() + 1, hours = seconds / 3600.0, "this box holds the dataset's run lease");
                            Some(training_lease::Across {
                                s3,
                                remote,
                                held,
                                peers: due.peers,
                            })
                        }
                        Ok(None) => {
                            tracing::info!(dataset = %d.name, "another box took the dataset's run lease first");
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(dataset = %d.name, error = %e, "cannot take the dataset's run lease now");
                            continue;
                        }
                    }
                }
                None => None,
            };
            let started = shared.journal().run_start(&plan.id, &d.name, seconds);
            match started {
                Ok(true) => {}
                other => {
                    if let Err(e) = other {
                        tracing::error!(dataset = %d.name, error = %e, "cannot journal a run start");
                    }
                    if let Some(a) = &across {
                        training_lease::give_back(a, Some(a.held.clone()), None).await;
                    }
                    continue;
                }
            }
            active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.name.clone());
            let s = shared.clone();
            let daemon_stop = stop.clone();
            // Whatever ends the task (a panic too), the dataset may have a run again.
            let still_active = Active {
                set: active.clone(),
                name: d.name.clone(),
            };
            runs.spawn(async move {
                let _active = still_active;
                // A shared dataset's run: its lease kept while it lasts (losing it stops the
                // run as the daemon's stop does), every box's lines.
                let (st, finished, keeper) = match &across {
                    Some(c) => {
                        let (run_stop, st) = watch::channel(*daemon_stop.borrow());
                        let (finished_tx, finished_rx) = watch::channel(false);
                        let keeper = tokio::spawn(training_lease::keep(
                            c.s3.clone(),
                            c.remote.clone(),
                            c.held.clone(),
                            daemon_stop.clone(),
                            run_stop,
                            finished_rx,
                            plan.dataset.trainer.kill_after,
                        ));
                        (st, Some(finished_tx), Some(keeper))
                    }
                    None => (daemon_stop.clone(), None, None),
                };
                let merged_file = match &across {
                    Some(c) => {
                        let into = plan.dataset.root.join(crate::dataset::shard::PEERS_DIR).join(format!("{}.jsonl", plan.id));
                        match training_lease::merge(c, &plan.dataset, into, &st).await {
                            Ok((path, merged)) => {
                                tracing::info!(run = %plan.id, lines = ?merged.lines, missing_audio = merged.missing_audio, duplicates = merged.duplicates, "every box's lines merged for the run");
                                plan.input = Some(path.clone());
                                plan.merged = Some(merged);
                                Some(path)
                            }
                            Err(e) => {
                                // Stopped (the daemon, or the lease lost): the run never
                                // trained, and the lease goes back as it was.
                                let (state, lease_state) = match *st.borrow() {
                                    true => (RunState::Interrupted, None),
                                    false => (RunState::Failed, Some("failed")),
                                };
                                tracing::error!(run = %plan.id, error = %e, "cannot merge the other boxes' lines; the run does not start");
                                let _ = s.journal().run_end(&plan.id, state, &e);
                                if let (Some(f), Some(k)) = (finished, keeper) {
                                    let _ = f.send(true);
                                    let held = k.await.ok().flatten();
                                    training_lease::give_back(c, held, lease_state).await;
                                }
                                return;
                            }
                        }
                    }
                    None => None,
                };
                // Held from here to the run's end, whatever ends it (a panic too): new jobs
                // wait meanwhile.
                let hold = plan
                    .dataset
                    .trainer
                    .exclusive_gpu
                    .then(|| GpuHold::take(s.clone()));
                let ended = match &hold {
                    Some(_) if !take_the_gpu(&s, &plan.id, st.clone()).await => {
                        // The daemon is stopping: the run never started.
                        let why = "the daemon stopped while the run waited for the GPU";
                        let _ = s.journal().run_end(&plan.id, RunState::Interrupted, why);
                        Ok(RunState::Interrupted)
                    }
                    _ => run::supervise(&plan, &s.journal, s.eval_serving(), st.clone()).await,
                };
                if let Some(hold) = hold {
                    // A run stopped by a lost lease still gives the model back; a stopping
                    // daemon does not need it.
                    if hold.release() && !*daemon_stop.borrow() {
                        give_the_gpu_back(&s).await;
                    }
                }
                let state = match &ended {
                    Ok(state) => *state,
                    Err(e) => {
                        tracing::error!(run = %plan.id, error = %e, "training run could not be completed");
                        let _ = s.journal().run_end(&plan.id, RunState::Failed, e);
                        RunState::Failed
                    }
                };
                if let (Some(c), Some(f), Some(k)) = (&across, finished, keeper) {
                    let _ = f.send(true);
                    let held = k.await.ok().flatten();
                    training_lease::give_back(c, held, Some(state.as_str())).await;
                }
                if let Some(f) = merged_file {
                    let _ = std::fs::remove_file(f);
                }
                prune(&s, &plan.dataset).await;
                // Inputs deleted while it ran leave the dataset now.
                let s2 = s.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    super::dataset_removal::forget_deleted(&s2)
                })
                .await;
            });
        }
        tokio::select! {
            _ = shared.train_wake.notified() => {}
            _ = stop_seen.changed() => {}
            _ = tokio::time::sleep(TICK) => {}
            Some(_) = runs.join_next(), if !runs.is_empty() => {}
        }
    }
    // Stopping: each run's supervisor stops its trainer and records it as interrupted.
    while runs.join_next().await.is_some() {}
    for (d, s3, _) in &remotes {
        let last = tokio::time::timeout(FINAL_SYNC, sync(d, s3, &shared.journal)).await;
        if !matches!(last, Ok(Ok(_))) {
            tracing::warn!(dataset = %d.name, "dataset not fully copied to S3; the next start continues");
        }
    }
}

/// The dataset's new seconds if a run should start now.
fn due(shared: &Shared, d: &Dataset) -> Option<f64> {
    let new_seconds = shared.journal().ledger(&d.name).ok()?.new_seconds;
    due_with(shared, d, new_seconds)
}

/// Whether a run with `new_seconds` should start now, by this box's journal.
fn due_with(shared: &Shared, d: &Dataset, new_seconds: f64) -> Option<f64> {
    let j = shared.journal();
    let ledger = j.ledger(&d.name).ok()?;
    if new_seconds < d.threshold_seconds {
        return None;
    }
    let now = now_ms();
    if let Some(last) = ledger.last_run_start {
        if now - last < d.min_interval.as_millis() as i64 {
            return None;
        }
    }
    if let Some(last) = j.runs(Some(&d.name)).ok()?.into_iter().next() {
        let unsuccessful = matches!(last.state, RunState::Failed | RunState::Interrupted);
        let ended = last.ended_at.unwrap_or(last.started_at);
        if unsuccessful && now - ended < d.trainer.retry_after.as_millis() as i64 {
            return None;
        }
        if last.state == RunState::Interrupted
            && !d.trainer.retry_interrupted
            && new_seconds <= last.seconds
        {
            return None;
        }
    }
    Some(new_seconds)
}

/// A dataset with a run in progress; it leaves the set when the run's task ends, however.
struct Active {
    set: Arc<Mutex<HashSet<String>>>,
    name: String,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

/// An exclusive run's hold on the GPU: new jobs wait while any is held. Released when the
/// run ends, or dropped (a panic), so jobs never wait for good.
struct GpuHold {
    shared: Arc<Shared>,
    held: bool,
}

impl GpuHold {
    fn take(shared: Arc<Shared>) -> GpuHold {
        shared.gpu_runs.fetch_add(1, Ordering::SeqCst);
        GpuHold { shared, held: true }
    }

    /// Lets jobs run again; whether no other exclusive run holds the GPU now.
    fn release(mut self) -> bool {
        self.held = false;
        let last = self.shared.gpu_runs.fetch_sub(1, Ordering::SeqCst) == 1;
        self.shared.wake.notify_waiters();
        last
    }
}

impl Drop for GpuHold {
    fn drop(&mut self) {
        if self.held {
            self.shared.gpu_runs.fetch_sub(1, Ordering::SeqCst);
            self.shared.wake.notify_waiters();
        }
    }
}

/// `gpu_policy = "exclusive"`: with new jobs held, waits for the running ones to finish,
/// then drops the serving model's weights for the run. `false`: the daemon stops first.
async fn take_the_gpu(shared: &Shared, run: &str, mut stop: watch::Receiver<bool>) -> bool {
    let mut said = false;
    loop {
        if *stop.borrow() {
            return false;
        }
        let running = shared.running().len();
        if running == 0 {
            break;
        }
        if !said {
            tracing::info!(%run, running, "the exclusive run waits for the transcriptions running now");
            said = true;
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    shared.models.unload_all();
    if !shared.model.get().transcriber.unload_now() {
        tracing::warn!(%run, "the serving model cannot be unloaded now; the run starts beside it");
    }
    true
}

/// The GPU and bytes the serving model's weights take there (its file's size, as loaded),
/// which an exclusive run frees before it starts; `None` without a GPU.
fn serving_model_memory(shared: &Shared) -> Option<(u32, u64)> {
    let devices = gpu::visible(shared.gpu.devices().ok()?, shared.cuda_visible.as_deref());
    let asr = devices.get(shared.model_options.gpu_device.max(0) as usize)?;
    let bytes = std::fs::metadata(&shared.model.get().path).ok()?.len();
    Some((asr.index, bytes))
}

/// After an exclusive run: the serving model is loaded again before the next job needs it.
async fn give_the_gpu_back(shared: &Arc<Shared>) {
    let model = shared.model.get();
    let started = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || model.transcriber.preload()).await {
        Ok(Ok(())) => {
            tracing::info!(took = ?started.elapsed(), "model loaded again after the exclusive run")
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot load the model again after the exclusive run; the next job tries")
        }
        Err(e) => tracing::error!(error = %e, "loading the model again ended abnormally"),
    }
}

/// The GPU a run gets. Sharing it with transcription (`gpu_policy = "shared"`), the trainer
/// may take what is free less what transcription needs there (`[asr] min_free_gpu_memory`,
/// when transcription runs on that GPU).
fn grant(shared: &Shared, d: &Dataset, dev: gpu::DeviceMemory) -> Result<run::GpuGrant, String> {
    let asr_device = gpu::visible(
        shared.gpu.devices().unwrap_or_default(),
        shared.cuda_visible.as_deref(),
    )
    .get(shared.model_options.gpu_device.max(0) as usize)
    .map(|a| a.index);
    let reserve = match asr_device == Some(dev.index) {
        true => shared.asr_min_free_gpu.unwrap_or(0),
        false => 0,
    };
    let limit = (!d.trainer.exclusive_gpu).then(|| dev.free.saturating_sub(reserve));
    if limit == Some(0) {
        return Err(format!(
            "{} MiB free on GPU {} ({}), all of which transcription keeps there ([asr] min_free_gpu_memory)",
            dev.free >> 20,
            dev.index,
            dev.name
        ));
    }
    Ok(run::GpuGrant {
        index: dev.index,
        name: dev.name,
        free_bytes: dev.free,
        total_bytes: dev.total,
        memory_limit_bytes: limit,
    })
}

/// A run whose folder waited for S3 while its dataset is no longer configured there (or at
/// all) never gets there: its held `training_finished` goes out.
fn release_abandoned_uploads(shared: &Shared) {
    let waiting = match shared.journal().runs_awaiting_upload() {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the runs waiting for S3");
            return;
        }
    };
    for (run, dataset) in waiting {
        let in_s3 = shared
            .datasets
            .iter()
            .any(|d| d.name == dataset && d.remote.is_some());
        if in_s3 {
            continue;
        }
        let why = format!(
            "dataset {dataset} is no longer configured in S3: the run's folder stays local"
        );
        match shared.journal().run_upload_abandoned(&run, &why) {
            Ok(()) => tracing::warn!(%run, %dataset, "{why}; its training_finished goes out now"),
            Err(e) => tracing::error!(%run, error = %e, "cannot release a held training_finished"),
        }
    }
}

/// `keep_runs` and `keep_candidates` for `d`, on a blocking thread.
async fn prune(shared: &Arc<Shared>, d: &Arc<Dataset>) {
    let (s, d) = (shared.clone(), d.clone());
    let pruned = tokio::task::spawn_blocking(move || {
        crate::training::prune::prune(&d, &s.journal, &s.models_dir)
            .map_err(|e| format!("dataset {}: {e}", d.name))
    })
    .await;
    match pruned {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot remove old runs or candidates; trying again later")
        }
        Err(e) => tracing::error!(error = %e, "removing old runs or candidates ended abnormally"),
    }
}

async fn reap_interrupted(shared: &Arc<Shared>) {
    let s = shared.clone();
    let reaped = tokio::task::spawn_blocking(move || {
        let running: Vec<_> = s
            .journal()
            .runs(None)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.state == RunState::Running)
            .collect();
        for r in running {
            let result = match s.datasets.iter().find(|d| d.name == r.dataset) {
                Some(d) => run::reap(d, &r, &s.journal),
                None => s
                    .journal()
                    .run_end(&r.id, RunState::Interrupted, "the daemon ended while it ran")
                    .map(|()| RunState::Interrupted)
                    .map_err(|e| e.to_string()),
            };
            match result {
                Ok(state) => tracing::warn!(run = %r.id, dataset = %r.dataset, state = state.as_str(), "training run cut off by the last stop; recorded"),
                Err(e) => tracing::error!(run = %r.id, error = %e, "cannot record an interrupted run"),
            }
        }
    })
    .await;
    if let Err(e) = reaped {
        tracing::error!(error = %e, "reaping interrupted runs failed");
    }
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
