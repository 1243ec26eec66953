//! Training an `s3://` dataset that several daemons feed: the hours that make a run due are
//! counted over every box's shard, one run at a time is elected through the dataset's lease
//! in the bucket, and the run trains on every box's lines (`shard::merge`), not on the
//! part this box happened to transcribe.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::dataset::feed::Remote;
use crate::dataset::shard::{self, Merged, Peer};
use crate::dataset::Dataset;
use crate::training::lease::{self, Held, Seen};

/// A run of a shared dataset: where to reach the bucket, the lease it holds, and the other
/// boxes' shards when it was found due.
pub(super) struct Across {
    pub s3: aws_sdk_s3::Client,
    pub remote: Remote,
    pub held: Held,
    pub peers: Vec<Peer>,
}

/// What `due` found for a shared dataset.
pub(super) struct DueAcross {
    pub seconds: f64,
    pub seen: Seen,
    /// This daemon's box token.
    pub token: String,
    /// Each box's seconds now: the watermark the run records.
    pub boxes: BTreeMap<String, f64>,
    pub peers: Vec<Peer>,
}

/// The new seconds across every box if a run of `d` may start now, by the lease's record
/// of the last run (from any box); `waiting` keeps the lease holders already reported.
pub(super) async fn due_across(
    shared: &Shared,
    d: &Dataset,
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    waiting: &mut HashSet<String>,
) -> Result<Option<DueAcross>, String> {
    if d.shard_refused.load(std::sync::atomic::Ordering::SeqCst) {
        // Said by the copy; a daemon that cannot write its shard trains nothing.
        return Ok(None);
    }
    let token = shard::token(&d.root)?;
    let peers = shard::refresh_peers(s3, remote, &d.root).await?;
    let own = shared
        .journal()
        .ledger(&d.name)
        .map_err(|e| e.to_string())?;
    let mut boxes: BTreeMap<String, f64> = peers
        .iter()
        .map(|p| (p.box_id.clone(), p.seconds))
        .collect();
    boxes.insert(remote.box_id.clone(), own.total_seconds);
    let mut seen = lease::read(s3, remote).await?;
    if seen.etag.is_none() {
        // No lease yet (a new dataset, or one an earlier version fed): this box's hours
        // count from its own last run, as its journal has them.
        let trained = (own.total_seconds - own.new_seconds).max(0.0);
        seen.lease.watermark.insert(remote.box_id.clone(), trained);
    }
    let now = super::training::now_ms();
    if seen.lease.busy(&token, now) {
        if waiting.insert(d.name.clone()) {
            tracing::info!(dataset = %d.name, holder = %seen.lease.holder, run = ?seen.lease.run_id,
                "box {} holds the dataset's run lease; this box starts none meanwhile", seen.lease.holder);
        }
        return Ok(None);
    }
    waiting.remove(&d.name);
    let seconds = seen.lease.new_seconds(&boxes);
    if seconds < d.threshold_seconds {
        return Ok(None);
    }
    if let Some(last) = &seen.lease.last_run {
        if now - last.started_at < d.min_interval.as_millis() as i64 {
            return Ok(None);
        }
        let unsuccessful = matches!(last.state.as_str(), "failed" | "interrupted");
        let ended = last.ended_at.unwrap_or(last.started_at);
        if unsuccessful && now - ended < d.trainer.retry_after.as_millis() as i64 {
            return Ok(None);
        }
    }
    Ok(Some(DueAcross {
        seconds,
        seen,
        token,
        boxes,
        peers,
    }))
}

/// The run's manifest: this box's and the other boxes' lines, in the run's folder-to-be.
pub(super) async fn merge(
    c: &Across,
    d: &Dataset,
    into: PathBuf,
    stop: &watch::Receiver<bool>,
) -> Result<(PathBuf, Merged), String> {
    let snapshot = into.with_extension("own.jsonl");
    d.copy_manifest(&snapshot)
        .map_err(|e| format!("cannot copy {}: {e}", d.manifest().display()))?;
    let merged = shard::merge(&c.s3, &c.remote, &d.root, &snapshot, &c.peers, &into, stop).await;
    let _ = std::fs::remove_file(&snapshot);
    Ok((into, merged?))
}

/// What a renewal must leave before the lease expires: the trainer's `kill_after` to stop,
/// and this much for clocks that differ between boxes.
pub(super) const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// Renews the run's lease every third of `lease_ttl` until `finished`; stops the run
/// (`run_stop`) when the daemon stops or when the lease is lost: taken by another box, or
/// not renewed while there is still time for the trainer to stop (`stop_within`) before it
/// expires. Returns it while it is held.
pub(super) async fn keep(
    s3: aws_sdk_s3::Client,
    remote: Remote,
    mut held: Held,
    mut daemon_stop: watch::Receiver<bool>,
    run_stop: watch::Sender<bool>,
    mut finished: watch::Receiver<bool>,
    stop_within: Duration,
) -> Option<Held> {
    let every = remote.lease_ttl / 3;
    let margin = (stop_within + CLOCK_SKEW).as_millis() as i64;
    let mut daemon_running = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = daemon_stop.changed(), if daemon_running => {
                // A dropped sender is a stop too.
                if changed.is_err() || *daemon_stop.borrow() {
                    daemon_running = false;
                    let _ = run_stop.send(true);
                }
                continue;
            }
            _ = finished.changed() => return Some(held),
        }
        let now = super::training::now_ms();
        let left = held.lease.expires_at - now - margin;
        let renewed = match u64::try_from(left) {
            Ok(ms) if ms > 0 => tokio::time::timeout(
                Duration::from_millis(ms),
                lease::renew(&s3, &remote, &mut held, now),
            )
            .await
            .unwrap_or_else(|_| Err("the renewal took too long".into())),
            _ => Err("no time left to renew".into()),
        };
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(run = ?held.lease.run_id, "the run lost the dataset's lease to another box; the run stops");
                let _ = run_stop.send(true);
                return None;
            }
            Err(e)
                if super::training::now_ms() + every.as_millis() as i64 + margin
                    >= held.lease.expires_at =>
            {
                tracing::error!(run = ?held.lease.run_id, error = %e, "the run's lease cannot be renewed before it expires; the run stops so that no two boxes train at once");
                let _ = run_stop.send(true);
                return None;
            }
            Err(e) => {
                tracing::warn!(run = ?held.lease.run_id, error = %e, "cannot renew the run's lease now; trying again")
            }
        }
    }
}

/// Gives the lease back with how the run ended.
/// (`None`: the run never started.)
pub(super) async fn give_back(c: &Across, held: Option<Held>, state: Option<&str>) {
    let Some(held) = held else {
        return;
    };
    let now = super::training::now_ms();
    for attempt in 0..3 {
        match lease::release(&c.s3, &c.remote, &held, state, now).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!(run = ?held.lease.run_id, "the run's lease was taken by another box before it was given back");
                return;
            }
            Err(e) => {
                tracing::warn!(run = ?held.lease.run_id, attempt, error = %e, "cannot give the run's lease back; it expires by itself");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
