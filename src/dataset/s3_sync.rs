//! Copies an `s3://` dataset's working copy to its bucket: each added input's segment audio,
//! then the manifest as this box's shard (`manifests/<box_id>.jsonl`, with `audio_filepath`
//! rewritten to `s3://` URIs; see `shard`), then each finished
//! run's folder with its `run.json` last, so a run whose `run.json` is in S3 is complete
//! there; the journal then releases the run's held `training_finished`. The audio of a
//! content taken out of the dataset (its inputs deleted) is deleted there. What fails is retried on the next pass; nothing is uploaded twice needlessly.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use sha2::Digest;

use super::feed::{Dataset, Remote};
use super::manifest::Line;
use super::shard;
use crate::aws::{resumable, Failed};
use crate::journal::Journal;
use crate::training::run::{files_under, RUN_JSON};

/// Marks a run folder that is fully in S3.
pub const UPLOADED: &str = ".uploaded";
/// The states of unfinished multipart uploads, in the working copy.
const UPLOADS_DIR: &str = ".uploads";
/// Marks a working copy whose audio goes under `audio/<box_id>/`.
const AUDIO_LAYOUT: &str = ".audio-layout";

pub async fn sync(
    d: &Dataset,
    s3: &aws_sdk_s3::Client,
    journal: &Mutex<Journal>,
) -> Result<usize, Failed> {
    let Some(remote) = &d.remote else {
        return Ok(0);
    };
    // One thing that fails (a missing permission, a file too big) does not hold back the
    // others: each is tried, the failures are reported together and tried again next pass.
    let mut failed = Vec::new();
    let mut sent = 0;
    // Nothing goes up while another daemon writes under this box id: its audio would be
    // overwritten too.
    if !d.shard_checked.load(Ordering::SeqCst) || d.shard_refused.load(Ordering::SeqCst) {
        match shard::owner(s3, remote, &d.root).await? {
            shard::Owner::Ours => {
                d.shard_refused.store(false, Ordering::SeqCst);
                d.shard_checked.store(true, Ordering::SeqCst);
            }
            shard::Owner::Theirs(why) => {
                d.shard_refused.store(true, Ordering::SeqCst);
                return Err(Failed::from(why));
            }
        }
    }
    // The box id the audio went under. Audio copied by an earlier version (under `audio/`
    // without the box) or under another box id is sent again once under this one, so the
    // shard's paths all hold; this daemon's shard under the old id goes.
    let layout = d.root.join(AUDIO_LAYOUT);
    let was = std::fs::read_to_string(&layout).unwrap_or_default();
    let was = was.trim();
    if was != remote.box_id {
        lock(journal).dataset_resync(&d.name).map_err(local)?;
        if shard::check_box_id(was).is_ok() {
            shard::drop_old(s3, remote, &d.root, was).await?;
        }
        crate::sinks::local::write_atomic(&layout, remote.box_id.as_bytes())
            .map_err(|e| local(e.to_string()))?;
        d.manifest_dirty.store(true, Ordering::SeqCst);
    }
    let unsynced = lock(journal)
        .dataset_unsynced(&d.name, false)
        .map_err(local)?;
    'contents: for sha in unsynced {
        let dir = d.root.join("audio").join(&sha[..sha.len().min(2)]);
        for file in files_starting(&dir, &sha) {
            let rel = file.strip_prefix(&d.root).unwrap_or(&file);
            match put_file(s3, remote, &d.root, rel, &file).await {
                Ok(()) => sent += 1,
                // S3 is out: the rest would only wait for the same timeouts.
                Err(e) if e.outage => return Err(e),
                Err(e) => {
                    failed.push(e);
                    continue 'contents;
                }
            }
        }
        lock(journal)
            .dataset_mark_synced(&d.name, &sha, false)
            .map_err(local)?;
    }
    // Contents taken out of the dataset (their inputs deleted): their audio goes from the
    // bucket too (s3:ListBucket and s3:DeleteObject), and the manifest below without them.
    let removed = lock(journal)
        .dataset_unsynced(&d.name, true)
        .map_err(local)?;
    for sha in removed {
        let rel = format!("audio/{}/{}/{sha}", remote.box_id, &sha[..sha.len().min(2)]);
        match delete_prefix(s3, remote, &rel).await {
            Ok(n) => {
                sent += n;
                lock(journal)
                    .dataset_mark_synced(&d.name, &sha, true)
                    .map_err(local)?;
            }
            Err(e) => failed.push(e),
        }
    }
    // The shard names only audio that is in the bucket: it waits for the audio that failed.
    let audio_missing = !failed.is_empty();
    if !audio_missing && d.manifest_dirty.swap(false, Ordering::SeqCst) {
        match put_manifest(d, s3, remote, journal).await {
            Ok(shard::Owner::Ours) => sent += 1,
            Ok(shard::Owner::Theirs(why)) => {
                d.shard_refused.store(true, Ordering::SeqCst);
                d.manifest_dirty.store(true, Ordering::SeqCst);
                return Err(Failed::from(why));
            }
            Err(e) => {
                d.manifest_dirty.store(true, Ordering::SeqCst);
                failed.push(e);
            }
        }
    }
    for run in finished_runs(&d.runs_dir()) {
        match put_run(s3, remote, &d.root, &run, journal).await {
            Ok(n) => sent += n,
            Err(e) => failed.push(e),
        }
    }
    // An outage among the failures is what the caller's breaker needs to know.
    let outage = failed.iter().any(|f| f.outage);
    match failed.len() {
        0 => Ok(sent),
        1 => Err(failed.remove(0)),
        n => Err(Failed {
            outage,
            reason: format!("{n} failures, the first: {}", failed.remove(0)),
        }),
    }
}

fn local(e: impl std::fmt::Display) -> Failed {
    Failed::from(e.to_string())
}

/// Where the state of `key`'s unfinished multipart upload is kept (`resumable`).
fn upload_state(root: &Path, key: &str) -> PathBuf {
    root.join(UPLOADS_DIR)
        .join(format!("{}.json", hex::encode(sha2::Sha256::digest(key))))
}

fn lock(journal: &Mutex<Journal>) -> std::sync::MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn uri(remote: &Remote, rel: &Path) -> String {
    format!(
        "s3://{}/{}{}",
        remote.bucket,
        remote.prefix,
        shard::remote_rel(remote, rel)
    )
}

async fn put_file(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    root: &Path,
    rel: &Path,
    file: &Path,
) -> Result<(), Failed> {
    let key = format!("{}{}", remote.prefix, shard::remote_rel(remote, rel));
    resumable::put_file(s3, &remote.bucket, &key, file, &upload_state(root, &key)).await?;
    Ok(())
}

/// Deletes every object under `remote`'s prefix + `rel`; returns how many.
async fn delete_prefix(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    rel: &str,
) -> Result<usize, Failed> {
    let prefix = format!("{}{rel}", remote.prefix);
    let keys: Vec<String> = crate::aws::list_keys(s3, &remote.bucket, &prefix)
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    for key in &keys {
        s3.delete_object()
            .bucket(&remote.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Failed::call(&format!("s3://{}/{key}", remote.bucket), &e))?;
    }
    Ok(keys.len())
}

/// This box's manifest, `audio_filepath` rewritten to `s3://` URIs, as its shard.
async fn put_manifest(
    d: &Dataset,
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    journal: &Mutex<Journal>,
) -> Result<shard::Owner, Failed> {
    let path = d.manifest();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(local(format!("cannot read {}: {e}", path.display()))),
    };
    let mut out = String::with_capacity(text.len());
    for raw in text.split_inclusive('\n') {
        match serde_json::from_str::<Line>(raw.trim_end()) {
            Ok(mut line) => {
                if let Ok(rel) = Path::new(&line.audio_filepath).strip_prefix(&d.root) {
                    line.audio_filepath = uri(remote, rel);
                }
                out.push_str(&serde_json::to_string(&line).map_err(local)?);
                out.push('\n');
            }
            // Reported where the manifest is read; copied as it is.
            Err(_) => out.push_str(raw),
        }
    }
    let seconds = lock(journal).ledger(&d.name).map_err(local)?.total_seconds;
    shard::put_own(s3, remote, &d.root, out.into_bytes(), seconds).await
}

/// Published runs not yet marked as uploaded.
fn finished_runs(runs: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && !p.to_string_lossy().ends_with(".partial")
                && p.join(RUN_JSON).is_file()
                && !p.join(UPLOADED).exists()
        })
        .collect();
    out.sort();
    out
}

async fn put_run(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    root: &Path,
    run: &Path,
    journal: &Mutex<Journal>,
) -> Result<usize, Failed> {
    let record = run.join(RUN_JSON);
    let mut files = files_under(run);
    files.retain(|f| *f != record && f.file_name().is_some_and(|n| n != UPLOADED));
    files.push(record);
    // Files an earlier pass finished are not sent again.
    let done_list = run.file_name().map(|n| {
        root.join(UPLOADS_DIR)
            .join(format!("{}.done", n.to_string_lossy()))
    });
    let done: std::collections::HashSet<String> = done_list
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
    for f in &files {
        let rel = f.strip_prefix(root).unwrap_or(f);
        let entry = rel.display().to_string();
        if done.contains(&entry) {
            continue;
        }
        put_file(s3, remote, root, rel, f).await?;
        if let Some(p) = &done_list {
            append_line(p, &entry)
                .map_err(|e| local(format!("cannot write {}: {e}", p.display())))?;
        }
    }
    // The journal first: it releases the run's `training_finished`. A crash before the mark
    // below copies the folder again, and the journal already knows.
    if let Some(id) = run.file_name().and_then(|n| n.to_str()) {
        lock(journal).run_uploaded(id).map_err(local)?;
    }
    std::fs::write(run.join(UPLOADED), b"")
        .map_err(|e| local(format!("cannot mark {} uploaded: {e}", run.display())))?;
    if let Some(p) = &done_list {
        let _ = std::fs::remove_file(p);
    }
    tracing::info!(run = %run.display(), to = %uri(remote, run.strip_prefix(root).unwrap_or(run)), files = files.len(), "run copied to S3");
    Ok(files.len())
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")?;
    f.sync_all()
}

/// Files in `dir` whose names start with `prefix`.
pub(super) fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".wav"))
        })
        .collect();
    out.sort();
    out
}
