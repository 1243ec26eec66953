//! One training run, supervised: the trainer's argv (no shell) in its own process group,
//! with the run's frozen manifest and output folder in its environment; stdout and stderr
//! to `train.log`; stdout lines that are JSON objects kept as metrics; a timeout that sends
//! SIGTERM to the whole group, then SIGKILL. The run's folder is built as
//! `runs/<id>.partial` and renamed to `runs/<id>` with its `run.json` inside, so a run's
//! record appears whole or not at all.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::eval::{evaluate, Evaluation, Serving};
use super::promote::{self, Promotion, RunFacts};
use crate::dataset::{manifest, split, Dataset};
use crate::journal::{Journal, Run, RunState};
use crate::pipeline::cancel::Cancel;

pub const RUN_JSON: &str = "run.json";
const PARTIAL: &str = ".partial";

/// A run about to start.
pub struct Plan {
    pub id: String,
    pub dataset: Arc<Dataset>,
    /// The dataset's new seconds when it was planned.
    pub seconds: f64,
    /// The GPU the trainer is pinned to (the one that passed the memory check); `None`
    /// without a GPU.
    pub gpu: Option<GpuGrant>,
    /// The manifest to freeze instead of the dataset's own: an `s3://` dataset's lines from
    /// every box feeding it.
    pub input: Option<PathBuf>,
    /// What `input` holds, box by box.
    pub merged: Option<crate::dataset::shard::Merged>,
}

/// A GPU given to a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GpuGrant {
    /// NVML's (PCI bus) index: `CUDA_VISIBLE_DEVICES` for the trainer.
    pub index: u32,
    pub name: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Under `gpu_policy = "shared"`: what the trainer may take, leaving transcription on the
    /// same GPU its `[asr] min_free_gpu_memory` (`HOTFOLDERD_GPU_MEMORY_LIMIT`).
    pub memory_limit_bytes: Option<u64>,
}

impl GpuGrant {
    /// The trainer's environment: pinned to this GPU, numbered as NVML numbers it, and
    /// without a framework taking all of its memory up front.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CUDA_DEVICE_ORDER", "PCI_BUS_ID".to_string()),
            ("CUDA_VISIBLE_DEVICES", self.index.to_string()),
            ("HOTFOLDERD_GPU", self.index.to_string()),
        ];
        if let Some(limit) = self.memory_limit_bytes {
            env.push(("HOTFOLDERD_GPU_MEMORY_LIMIT", limit.to_string()));
            // PyTorch grows its cache as it needs; JAX and TensorFlow would otherwise take
            // most of the GPU at start-up.
            env.push(("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True".into()));
            env.push(("XLA_PYTHON_CLIENT_PREALLOCATE", "false".into()));
            env.push(("TF_FORCE_GPU_ALLOW_GROWTH", "true".into()));
        }
        env
    }
}

/// A new run id: dataset, UTC time, and a random tail.
pub fn new_id(dataset: &str) -> String {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stamp: String = now.chars().filter(char::is_ascii_alphanumeric).collect();
    let tail = std::process::id()
        ^ (SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()));
    format!("{dataset}-{stamp}-{:04x}", tail & 0xffff)
}

#[derive(Debug, Serialize)]
struct Artifact {
    path: String,
    bytes: u64,
    sha256: String,
}

#[derive(Debug, Serialize)]
struct BadManifestLine {
    line: usize,
    reason: String,
}

/// `run.json`.
#[derive(Debug, Serialize)]
struct RunRecord {
    run_id: String,
    dataset: String,
    state: &'static str,
    detail: String,
    command: Vec<String>,
    timeout_seconds: f64,
    started_at: String,
    ended_at: String,
    duration_seconds: f64,
    exit_code: Option<i32>,
    signal: Option<i32>,
    manifest: String,
    manifest_sha256: String,
    manifest_segments: usize,
    manifest_problems: Vec<BadManifestLine>,
    /// Training hours (the held-out inputs are not in them).
    hours: f64,
    eval_manifest: String,
    eval_manifest_sha256: String,
    eval_fraction: f64,
    eval_segments: usize,
    eval_hours: f64,
    metrics: Vec<serde_json::Value>,
    artifacts: Vec<Artifact>,
    /// The serving model, exported for the trainer to start from.
    #[serde(skip_serializing_if = "Option::is_none")]
    base_model: Option<BaseModel>,
    /// The GPU the trainer was pinned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu: Option<GpuGrant>,
    /// The serving model and the candidate scored on the held-out pieces.
    #[serde(skip_serializing_if = "Option::is_none")]
    eval: Option<Evaluation>,
    /// Whether the candidate now serves, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    promotion: Option<Promotion>,
    /// An `s3://` dataset's run: the lines it took from each box feeding the dataset.
    #[serde(skip_serializing_if = "Option::is_none")]
    boxes: Option<crate::dataset::shard::Merged>,
}

/// The serving model as a Hugging Face folder (`HOTFOLDERD_BASE_MODEL`).
#[derive(Debug, Clone, Serialize)]
struct BaseModel {
    path: PathBuf,
    /// The ggml file it was exported from.
    model_sha256: String,
}

pub fn run_dir(dataset: &Dataset, id: &str) -> PathBuf {
    dataset.runs_dir().join(id)
}

pub fn partial_dir(dataset: &Dataset, id: &str) -> PathBuf {
    dataset.runs_dir().join(format!("{id}{PARTIAL}"))
}

/// How the trainer process ended.
struct Exit {
    state: RunState,
    detail: String,
    code: Option<i32>,
    signal: Option<i32>,
}

/// Runs the trainer to its end (or the daemon's stop), scores a successful run against the
/// serving model (when there is one), records it and publishes its folder.
pub async fn supervise(
    plan: &Plan,
    journal: &Mutex<Journal>,
    serving: Option<Arc<Serving>>,
    stop: watch::Receiver<bool>,
) -> Result<RunState, String> {
    let d = &plan.dataset;
    let partial = partial_dir(d, &plan.id);
    let output = partial.join("output");
    tokio::fs::create_dir_all(&output)
        .await
        .map_err(|e| format!("cannot create {}: {e}", output.display()))?;
    let frozen = partial.join(manifest::FILE_NAME);
    let held_out = partial.join(split::EVAL_FILE_NAME);
    let sides = match &plan.input {
        Some(merged) => d.freeze_split_from(merged, &frozen, &held_out),
        None => d.freeze_split(&frozen, &held_out),
    };
    let sides =
        sides.map_err(|e| format!("cannot copy the manifest into {}: {e}", partial.display()))?;
    tracing::info!(run = %plan.id, train_lines = sides.train_lines, eval_lines = sides.eval_lines,
        eval_hours = sides.eval_seconds / 3600.0, eval_fraction = d.eval_fraction,
        "manifest frozen for the run, held-out inputs apart");
    let started = SystemTime::now();
    let clock = Instant::now();
    let base = match &serving {
        Some(s) => base_model(d, s).await,
        None => None,
    };
    let exit = run_trainer(
        plan,
        &partial,
        &output,
        base.as_ref(),
        journal,
        stop.clone(),
    )
    .await;
    let eval = match (&serving, exit.state) {
        (Some(s), RunState::Succeeded) => {
            Some(score_run(&plan.id, s.clone(), &partial, stop).await)
        }
        _ => None,
    };
    let mut record = record(d, &plan.id, &partial, &exit, started, clock.elapsed());
    if let (Some(s), Some(e)) = (&serving, &eval) {
        let facts = RunFacts {
            run_id: &plan.id,
            dataset: &d.name,
            manifest_sha256: &record.manifest_sha256,
            parent_sha256: &s.sha256,
        };
        let p = promote::settle(
            journal,
            &s.models_dir,
            &partial,
            &facts,
            e,
            d.promote,
            d.min_wer_gain,
        );
        if p.promoted {
            tracing::info!(run = %plan.id, model = ?p.model_id, reason = %p.reason, "candidate promoted: it serves the next jobs");
        } else {
            tracing::info!(run = %plan.id, model = ?p.model_id, reason = %p.reason, "candidate not promoted");
        }
        record.promotion = Some(p);
    }
    record.base_model = base;
    record.gpu = plan.gpu.clone();
    record.boxes = plan.merged.clone();
    record.eval = eval;
    publish(d, &plan.id, &record)?;
    lock(journal)
        .run_end_uploading(&plan.id, exit.state, &exit.detail, d.remote.is_some())
        .map_err(|e| e.to_string())?;
    Ok(exit.state)
}

async fn run_trainer(
    plan: &Plan,
    dir: &Path,
    output: &Path,
    base: Option<&BaseModel>,
    journal: &Mutex<Journal>,
    mut stop: watch::Receiver<bool>,
) -> Exit {
    let t = &plan.dataset.trainer;
    let failed = |detail: String| Exit {
        state: RunState::Failed,
        detail,
        code: None,
        signal: None,
    };
    let Some((program, args)) = t.command.split_first() else {
        return failed("trainer.command is empty".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    if let Some(b) = base {
        cmd.env("HOTFOLDERD_BASE_MODEL", &b.path);
    }
    for (k, v) in plan.gpu.iter().flat_map(GpuGrant::env) {
        // What the operator set for the trainer's framework stays.
        if k.starts_with("HOTFOLDERD_") || k.starts_with("CUDA_") || std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    cmd.args(args)
        .env("HOTFOLDERD_RUN_ID", &plan.id)
        .env("HOTFOLDERD_MANIFEST", dir.join(manifest::FILE_NAME))
        .env("HOTFOLDERD_EVAL_MANIFEST", dir.join(split::EVAL_FILE_NAME))
        .env("HOTFOLDERD_OUTPUT_DIR", output)
        .env("HOTFOLDERD_DATASET", &plan.dataset.name)
        .env("HOTFOLDERD_HOURS", format!("{:.6}", plan.seconds / 3600.0))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start {program:?}: {e}")),
    };
    let Some(pid) = child.id() else {
        return failed("the trainer exited before it could be watched".into());
    };
    if let Err(e) = lock(journal).run_set_pid(&plan.id, pid) {
        tracing::warn!(run = %plan.id, error = %e, "cannot journal the trainer's pid");
    }
    tracing::info!(run = %plan.id, dataset = %plan.dataset.name, pid, "training run started");
    let logs = tokio::spawn(capture(
        child.stdout.take(),
        child.stderr.take(),
        dir.to_path_buf(),
        plan.id.clone(),
    ));
    let pgid = pid as i32;
    let (ended, why) = tokio::select! {
        status = child.wait() => (status, None),
        _ = tokio::time::sleep(t.timeout) => {
            (terminate(&mut child, pgid, t.kill_after).await,
             Some((RunState::Failed, format!("timed out after {}", humantime::format_duration(t.timeout)))))
        }
        _ = stopped(&mut stop) => {
            (terminate(&mut child, pgid, t.kill_after).await,
             Some((RunState::Interrupted, "the daemon stopped while it ran".to_string())))
        }
    };
    // Whatever the trainer left running in its group goes with it.
    signal_group(pgid, libc::SIGKILL);
    let _ = logs.await;
    let (code, signal) = match &ended {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            (s.code(), s.signal())
        }
        Err(_) => (None, None),
    };
    let (state, detail) = match (why, &ended) {
        (Some(w), _) => w,
        (None, Ok(s)) if s.success() => (RunState::Succeeded, "exit status 0".into()),
        (None, Ok(_)) => match (code, signal) {
            (Some(c), _) => (RunState::Failed, format!("exit status {c}")),
            (None, Some(sig)) => (RunState::Failed, format!("killed by signal {sig}")),
            _ => (RunState::Failed, "ended abnormally".into()),
        },
        (None, Err(e)) => (
            RunState::Failed,
            format!("cannot wait for the trainer: {e}"),
        ),
    };
    tracing::info!(run = %plan.id, state = state.as_str(), %detail, "training run ended");
    Exit {
        state,
        detail,
        code,
        signal,
    }
}

/// The serving model exported as a Hugging Face folder, once per model, under the dataset's
/// `base/` (a later run of the same model reuses it). `None`, logged, when it cannot be:
/// the trainer then needs its own `--model`.
async fn base_model(d: &Dataset, s: &Serving) -> Option<BaseModel> {
    let dir = d
        .root
        .join("base")
        .join(&s.sha256[..s.sha256.len().min(16)]);
    let (model, to) = (s.model.clone(), dir.clone());
    let exported = tokio::task::spawn_blocking(move || {
        if to.join("config.json").is_file() {
            return Ok(());
        }
        crate::model::export_hf(&model, &to, None).map(|_| ())
    })
    .await;
    match exported {
        Ok(Ok(())) => Some(BaseModel {
            path: dir,
            model_sha256: s.sha256.clone(),
        }),
        Ok(Err(e)) => {
            tracing::warn!(dataset = %d.name, model = %s.model.display(), error = %e,
                "cannot export the serving model for the trainer to start from: HOTFOLDERD_BASE_MODEL is not set");
            None
        }
        Err(e) => {
            tracing::warn!(dataset = %d.name, error = %e, "exporting the serving model ended abnormally");
            None
        }
    }
}

/// Scores a finished run on its held-out pieces (blocking work; the daemon's stop ends it).
async fn score_run(
    id: &str,
    serving: Arc<Serving>,
    dir: &Path,
    mut stop: watch::Receiver<bool>,
) -> Evaluation {
    let cancel = Cancel::default();
    let (c, folder) = (cancel.clone(), dir.to_path_buf());
    let mut work = tokio::task::spawn_blocking(move || evaluate(&serving, &folder, &c));
    let ended = tokio::select! {
        e = &mut work => e,
        _ = stopped(&mut stop) => {
            cancel.cancel();
            work.await
        }
    };
    let eval = ended.unwrap_or_else(|e| Evaluation {
        utterances: 0,
        hours: 0.0,
        self_labelled: 0,
        baseline: None,
        candidate: None,
        candidate_model: None,
        error: Some(format!("the evaluation ended abnormally: {e}")),
    });
    let wer = |s: &Option<super::eval::Scored>| s.as_ref().map(|s| s.wer);
    tracing::info!(run = id, utterances = eval.utterances, baseline_wer = ?wer(&eval.baseline),
        candidate_wer = ?wer(&eval.candidate), error = ?eval.error, "run evaluated on its held-out pieces");
    eval
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            // The daemon is gone without saying stop: never resolve.
            std::future::pending::<()>().await;
        }
    }
}

fn signal_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// SIGTERM to the group, SIGKILL after `grace`.
async fn terminate(
    child: &mut tokio::process::Child,
    pgid: i32,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    signal_group(pgid, libc::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(pgid, libc::SIGKILL);
            child.wait().await
        }
    }
}

/// Copies the trainer's output into `train.log` (both streams) and `metrics.jsonl` (stdout
/// lines that are JSON objects), line by line as they come.
async fn capture(
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    dir: PathBuf,
    run: String,
) {
    let log = tokio::fs::File::create(dir.join("train.log")).await.ok();
    let metrics = tokio::fs::File::create(dir.join("metrics.jsonl"))
        .await
        .ok();
    let log = Arc::new(tokio::sync::Mutex::new(log));
    let out = {
        let (log, run) = (log.clone(), run.clone());
        async move {
            let Some(stdout) = stdout else { return };
            let mut metrics = metrics;
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                write_line(&log, &line).await;
                let is_metric =
                    serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|v| v.is_object());
                if is_metric {
                    if let Some(m) = &mut metrics {
                        let _ = m.write_all(format!("{line}\n").as_bytes()).await;
                    }
                } else {
                    tracing::info!(target: "trainer", %run, "{line}");
                }
            }
            if let Some(m) = &mut metrics {
                let _ = m.sync_data().await;
            }
        }
    };
    let err = {
        let log = log.clone();
        async move {
            let Some(stderr) = stderr else { return };
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                write_line(&log, &line).await;
                tracing::info!(target: "trainer", %run, "{line}");
            }
        }
    };
    tokio::join!(out, err);
    let mut guard = log.lock().await;
    if let Some(f) = guard.as_mut() {
        let _ = f.sync_data().await;
    }
}

async fn write_line(log: &tokio::sync::Mutex<Option<tokio::fs::File>>, line: &str) {
    if let Some(f) = log.lock().await.as_mut() {
        let _ = f.write_all(format!("{line}\n").as_bytes()).await;
    }
}

fn record(
    d: &Dataset,
    id: &str,
    dir: &Path,
    exit: &Exit,
    started: SystemTime,
    took: Duration,
) -> RunRecord {
    let frozen = dir.join(manifest::FILE_NAME);
    let contents = manifest::read(&frozen).unwrap_or_default();
    let held_out = dir.join(split::EVAL_FILE_NAME);
    let held = manifest::read(&held_out).unwrap_or_default();
    for bad in &contents.bad {
        tracing::warn!(run = %id, manifest = %frozen.display(), line = bad.line, reason = %bad.reason, "manifest line not used");
    }
    let metrics =
        parse_metrics(&std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default());
    RunRecord {
        run_id: id.to_string(),
        dataset: d.name.clone(),
        state: exit.state.as_str(),
        detail: exit.detail.clone(),
        command: d.trainer.command.clone(),
        timeout_seconds: d.trainer.timeout.as_secs_f64(),
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        ended_at: humantime::format_rfc3339_millis(started + took).to_string(),
        duration_seconds: took.as_secs_f64(),
        exit_code: exit.code,
        signal: exit.signal,
        manifest: manifest::FILE_NAME.into(),
        manifest_sha256: crate::hash::sha256_file(&frozen).unwrap_or_default(),
        manifest_segments: contents.lines.len(),
        manifest_problems: contents
            .bad
            .iter()
            .map(|b| BadManifestLine {
                line: b.line,
                reason: b.reason.clone(),
            })
            .collect(),
        hours: contents.seconds() / 3600.0,
        eval_manifest: split::EVAL_FILE_NAME.into(),
        eval_manifest_sha256: crate::hash::sha256_file(&held_out).unwrap_or_default(),
        eval_fraction: d.eval_fraction,
        eval_segments: held.lines.len(),
        eval_hours: held.seconds() / 3600.0,
        metrics,
        artifacts: artifacts(&dir.join("output")),
        base_model: None,
        gpu: None,
        eval: None,
        promotion: None,
        boxes: None,
    }
}

/// Every file the trainer wrote, with its size and sha256.
fn artifacts(output: &Path) -> Vec<Artifact> {
    files_under(output)
        .into_iter()
        .map(|path| Artifact {
            path: Path::new("output")
                .join(path.strip_prefix(output).unwrap_or(&path))
                .display()
                .to_string(),
            bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
            sha256: crate::hash::sha256_file(&path).unwrap_or_default(),
        })
        .collect()
}

/// The regular files below `dir` (symlinks not followed), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Writes `run.json` into the partial folder and renames it into place.
fn publish(d: &Dataset, id: &str, record: &RunRecord) -> Result<(), String> {
    let partial = partial_dir(d, id);
    let json = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
    crate::sinks::local::write_atomic(&partial.join(RUN_JSON), &json).map_err(|e| e.to_string())?;
    let done = run_dir(d, id);
    std::fs::rename(&partial, &done).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            partial.display(),
            done.display()
        )
    })?;
    tracing::info!(run = id, dir = %done.display(), "run recorded");
    Ok(())
}

/// Start-up: a run the journal still has as running was cut off by the daemon's end. Its
/// trainer, if still alive, is stopped; the run is recorded as interrupted.
pub fn reap(d: &Dataset, run: &Run, journal: &Mutex<Journal>) -> Result<RunState, String> {
    if let Some(pid) = run.pid.filter(|p| *p > 1) {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let marker = format!("HOTFOLDERD_RUN_ID={}", run.id);
        if environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            tracing::warn!(run = %run.id, pid, "the trainer of an interrupted run is still running; stopping it");
            signal_group(pid as i32, libc::SIGKILL);
        }
    }
    // Its candidate registered means the trainer succeeded and the run was scored: the
    // daemon ended between the promotion and the record. The run counts as succeeded (its
    // hours are used), and the registry keeps its scores.
    let registered = lock(journal)
        .models()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|m| m.lineage.run_id.as_deref() == Some(run.id.as_str()));
    let (state, detail) = match &registered {
        Some(m) => (
            RunState::Succeeded,
            format!(
                "the daemon ended after the run was scored and its candidate registered as model #{} ({}); its scores are in `hotfolderd model list`",
                m.id,
                m.state.as_str()
            ),
        ),
        None => (RunState::Interrupted, "the daemon ended while it ran".to_string()),
    };
    let partial = partial_dir(d, &run.id);
    // Published now, or by the crashed daemon after its publish and before its `run_end`.
    let published = partial.is_dir() || run_dir(d, &run.id).join(RUN_JSON).is_file();
    if partial.is_dir() {
        let exit = Exit {
            state,
            detail: detail.clone(),
            code: None,
            signal: None,
        };
        let started = SystemTime::UNIX_EPOCH + Duration::from_millis(run.started_at.max(0) as u64);
        let took = SystemTime::now()
            .duration_since(started)
            .unwrap_or_default();
        let record = record(d, &run.id, &partial, &exit, started, took);
        publish(d, &run.id, &record)?;
    }
    lock(journal)
        .run_end_uploading(&run.id, state, &detail, published && d.remote.is_some())
        .map_err(|e| e.to_string())?;
    Ok(state)
}

fn lock(journal: &Mutex<Journal>) -> std::sync::MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|p| p.into_inner())
}
/// The trainer's JSON-lines metrics: one object per line; lines that are not JSON objects
/// (progress bars, warnings a library printed) are skipped.
pub fn parse_metrics(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(serde_json::Value::is_object)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Lineage;

    #[test]
    fn a_run_whose_candidate_was_registered_before_a_crash_is_reaped_as_succeeded() {
        let dir = tempfile::tempdir().unwrap();
        let d = crate::dataset::feed::test_dataset(dir.path(), "");
        let journal = Mutex::new(Journal::open(&dir.path().join("j.sqlite")).unwrap());
        let lineage = Lineage {
            run_id: Some("scored".into()),
            ..Lineage::default()
        };
        // One run at a time per dataset: each is started, then reaped as a restart would.
        for id in ["scored", "cut-off"] {
            assert!(lock(&journal).run_start(id, "d", 3600.0).unwrap());
            std::fs::create_dir_all(partial_dir(&d, id)).unwrap();
            if id == "scored" {
                let (_, unpromoted) = lock(&journal)
                    .model_add("bb", "/m/bb.bin", &lineage, None)
                    .unwrap();
                unpromoted.unwrap();
            }
            let run = lock(&journal)
                .runs(Some("d"))
                .unwrap()
                .into_iter()
                .find(|r| r.id == id)
                .unwrap();
            reap(&d, &run, &journal).unwrap();
        }
        let states: std::collections::BTreeMap<String, RunState> = lock(&journal)
            .runs(Some("d"))
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.state))
            .collect();
        assert_eq!(states["scored"], RunState::Succeeded);
        assert_eq!(states["cut-off"], RunState::Interrupted);
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run_dir(&d, "scored").join(RUN_JSON)).unwrap())
                .unwrap();
        assert_eq!(record["state"], "succeeded");
        assert!(record["detail"].as_str().unwrap().contains("model #1"));
    }
}
