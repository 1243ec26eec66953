//! Per-box manifest shards of an `s3://` dataset, so several daemons can feed one dataset
//! without overwriting each other's lines: each writes only `manifests/<box_id>.jsonl`, and
//! with a conditional write (`If-None-Match: *` the first time, then `If-Match` on the etag
//! it wrote last). A write whose condition fails is someone else's object: a shard carrying
//! this daemon's box token (a crash between its write and the etag being kept) is taken up
//! again; any other is another daemon using the same `box_id`, reported and never
//! overwritten. The other boxes' shards are read back (only those whose etag changed) for
//! counting the dataset's hours and for a run's merged manifest (`merge`).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use super::feed::Remote;
use super::manifest::Line;
use crate::aws::{describe, precondition_failed, Failed};
use crate::sinks::local::write_atomic;

/// Where the shards live, under the dataset's prefix.
pub const SHARDS: &str = "manifests/";
/// Metadata: the random token of the daemon (its working copy) that writes the shard.
const TOKEN_META: &str = "hotfolderd-box-token";
/// Metadata: the seconds of audio the shard's box holds in the dataset.
const SECONDS_META: &str = "hotfolderd-seconds";
/// This daemon's token, kept in the working copy.
const TOKEN_FILE: &str = ".box-token";
/// The box id made when none is configured, kept in the working copy.
const BOX_ID_FILE: &str = ".box-id";
/// The etag of this daemon's last shard write.
const ETAG_FILE: &str = ".shard-etag";
/// The other boxes' shards, as last read, and the audio their runs needed.
pub const PEERS_DIR: &str = "peers";

/// The box id when `[daemon] box_id` is not set: made once per working copy from the host
/// name and the start of its token, and kept there (`.box-id`), so a host renamed (a
/// container restarted) is still the same box and two daemons on one host are not. Just
/// the host name where the working copy cannot be written.
pub fn default_box_id(root: &Path) -> String {
    let kept = root.join(BOX_ID_FILE);
    if let Ok(id) = std::fs::read_to_string(&kept) {
        if check_box_id(id.trim()).is_ok() {
            return id.trim().to_string();
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| if valid_char(c) { c } else { '-' })
        .take(48)
        .collect();
    let host = match host.trim_start_matches('.') {
        "" => "box".to_string(),
        h => h.to_string(),
    };
    match token(root) {
        Ok(t) => {
            let id = format!("{host}-{}", &t[..t.len().min(8)]);
            match write_atomic(&kept, id.as_bytes()) {
                Ok(()) => id,
                Err(_) => host,
            }
        }
        Err(_) => host,
    }
}

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Whether `id` can name a shard: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn check_box_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(valid_char) || id.starts_with('.') {
        return Err(format!(
            "{id:?} cannot name a box: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"
        ));
    }
    Ok(())
}

/// The shard's key for `box_id`.
pub fn key(remote: &Remote, box_id: &str) -> String {
    format!("{}{SHARDS}{box_id}.jsonl", remote.prefix)
}

/// Where a file of the working copy goes under the dataset's prefix: segment audio under
/// `audio/<box_id>/`, since two boxes that add the same content cut it into pieces of the
/// same names; everything else (run folders, named uniquely) as it is.
pub fn remote_rel(remote: &Remote, rel: &Path) -> String {
    match rel.strip_prefix("audio") {
        Ok(rest) => format!("audio/{}/{}", remote.box_id, rest.display()),
        Err(_) => rel.display().to_string(),
    }
}

/// This daemon's box token, made once per working copy.
pub fn token(root: &Path) -> Result<String, String> {
    let path = root.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let t = uuid::Uuid::new_v4().simple().to_string();
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    write_atomic(&path, t.as_bytes()).map_err(|e| e.to_string())?;
    Ok(t)
}

/// Whose the shard named by this daemon's box id is.
pub enum Owner {
    /// This daemon's, or nobody's yet.
    Ours,
    /// Another daemon's: why, for the log.
    Theirs(String),
}

fn refusal(at: &str, box_id: &str) -> String {
    format!(
        "{at} is written by another daemon (a different box token): each daemon feeding this dataset needs its own [daemon] box_id, and this one uses {box_id:?}; it copies nothing to the dataset and starts no run until that is fixed"
    )
}

/// A shard as it is in the bucket: the box token it carries and its etag; `None` when
/// there is none.
struct Held {
    token: Option<String>,
    etag: String,
}

async fn held(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<Held>, Failed> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(h) => Ok(Some(Held {
            token: h.metadata().and_then(|m| m.get(TOKEN_META)).cloned(),
            etag: h.e_tag().unwrap_or_default().to_string(),
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
        Err(e) => Err(Failed::call(&format!("s3://{bucket}/{key}"), &e)),
    }
}

/// Checks, before anything is copied, that the shard is not another daemon's.
pub async fn owner(s3: &aws_sdk_s3::Client, remote: &Remote, root: &Path) -> Result<Owner, Failed> {
    let key = key(remote, &remote.box_id);
    let token = token(root)?;
    Ok(match held(s3, &remote.bucket, &key).await? {
        Some(h) if h.token.as_ref() != Some(&token) => Owner::Theirs(refusal(
            &format!("s3://{}/{key}", remote.bucket),
            &remote.box_id,
        )),
        _ => Owner::Ours,
    })
}

/// Deletes the shard of `old_id` (this daemon's earlier box id) if it carries this
/// daemon's token: its lines are in the new shard now and must not count twice.
pub async fn drop_old(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    root: &Path,
    old_id: &str,
) -> Result<(), Failed> {
    let key = key(remote, old_id);
    let at = format!("s3://{}/{key}", remote.bucket);
    let token = token(root)?;
    let ours = held(s3, &remote.bucket, &key)
        .await?
        .is_some_and(|h| h.token == Some(token));
    if ours {
        s3.delete_object()
            .bucket(&remote.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| Failed::call(&at, &e))?;
        tracing::info!(shard = %at, "this daemon's shard under its former box id removed");
    }
    Ok(())
}

/// A write's outcome when its condition held or not.
enum Wrote {
    Etag(String),
    ConditionFailed,
}

/// Writes this box's shard: `body` (the manifest with `s3://` audio paths) and the
/// seconds it holds; `Theirs` when another daemon writes it.
pub async fn put_own(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    root: &Path,
    body: Vec<u8>,
    seconds: f64,
) -> Result<Owner, Failed> {
    let key = key(remote, &remote.box_id);
    let at = format!("s3://{}/{key}", remote.bucket);
    let token = token(root)?;
    let etag_file = root.join(ETAG_FILE);
    let known = std::fs::read_to_string(&etag_file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let put = |condition: Option<String>| {
        let req = s3
            .put_object()
            .bucket(&remote.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .metadata(TOKEN_META, &token)
            .metadata(SECONDS_META, format!("{seconds:.3}"))
            .body(ByteStream::from(body.clone()));
        let req = match condition {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        async {
            match req.send().await {
                Ok(out) => Ok(Wrote::Etag(out.e_tag().unwrap_or_default().to_string())),
                Err(e) if e.as_service_error().is_some_and(precondition_failed) => {
                    Ok(Wrote::ConditionFailed)
                }
                Err(e) => Err(Failed::call(&at, &e)),
            }
        }
    };
    let mut wrote = put(known).await?;
    if matches!(wrote, Wrote::ConditionFailed) {
        // Ours (written, but the etag not kept), or another daemon's with our box id.
        wrote = match held(s3, &remote.bucket, &key).await? {
            // Gone since (deleted by hand): written afresh.
            None => put(None).await?,
            Some(h) if h.token.as_ref() == Some(&token) => put(Some(h.etag)).await?,
            Some(_) => return Ok(Owner::Theirs(refusal(&at, &remote.box_id))),
        };
    }
    match wrote {
        Wrote::Etag(etag) => {
            write_atomic(&etag_file, etag.as_bytes()).map_err(|e| Failed::from(e.to_string()))?;
            Ok(Owner::Ours)
        }
        Wrote::ConditionFailed => Err(Failed::from(format!(
            "{at} changed while being written; will retry"
        ))),
    }
}

/// Another box's shard, as last read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peer {
    pub box_id: String,
    pub etag: String,
    /// The seconds its box holds in the dataset (its shard's metadata).
    pub seconds: f64,
}

impl Peer {
    pub fn lines(&self, root: &Path) -> PathBuf {
        root.join(PEERS_DIR).join(format!("{}.jsonl", self.box_id))
    }
}

/// Reads the other boxes' shards that changed since the last call into `peers/`, forgets
/// those gone from the bucket, and returns them all.
pub async fn refresh_peers(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    root: &Path,
) -> Result<Vec<Peer>, String> {
    let prefix = format!("{}{SHARDS}", remote.prefix);
    let mut listed = BTreeMap::new();
    let keys = crate::aws::list_keys(s3, &remote.bucket, &prefix)
        .await
        .map_err(|e| e.reason)?;
    for (key, etag) in keys {
        let box_id = key
            .strip_prefix(prefix.as_str())
            .and_then(|n| n.strip_suffix(".jsonl"));
        if let Some(box_id) = box_id.filter(|b| *b != remote.box_id && check_box_id(b).is_ok()) {
            listed.insert(box_id.to_string(), etag);
        }
    }
    let dir = root.join(PEERS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut peers = Vec::new();
    for (box_id, etag) in &listed {
        let meta = dir.join(format!("{box_id}.json"));
        let cached = std::fs::read(&meta)
            .ok()
            .and_then(|b| serde_json::from_slice::<Peer>(&b).ok())
            .filter(|p| &p.etag == etag);
        if let Some(p) = cached {
            peers.push(p);
            continue;
        }
        let key = format!("{prefix}{box_id}.jsonl");
        let got = s3
            .get_object()
            .bucket(&remote.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| format!("s3://{}/{key}: {}", remote.bucket, describe(&e)))?;
        let seconds = got
            .metadata()
            .and_then(|m| m.get(SECONDS_META))
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(0.0);
        let etag = got.e_tag().unwrap_or(etag).to_string();
        let body = got
            .body
            .collect()
            .await
            .map_err(|e| format!("s3://{}/{key}: {e}", remote.bucket))?
            .into_bytes();
        let peer = Peer {
            box_id: box_id.clone(),
            etag,
            seconds,
        };
        write_atomic(&peer.lines(root), &body).map_err(|e| e.to_string())?;
        let record = serde_json::to_vec(&peer).map_err(|e| e.to_string())?;
        write_atomic(&meta, &record).map_err(|e| e.to_string())?;
        peers.push(peer);
    }
    // Shards gone from the bucket: their boxes no longer count.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let stem = name
                .strip_suffix(".jsonl")
                .or_else(|| name.strip_suffix(".json"));
            if stem.is_some_and(|s| !listed.contains_key(s)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(peers)
}

/// What a merged manifest holds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Merged {
    /// Lines taken from each box (this one included).
    pub lines: BTreeMap<String, usize>,
    /// Lines of other boxes left out because their audio is not in the bucket (their
    /// input was deleted since the shard was written).
    pub missing_audio: usize,
    /// Lines of other boxes left out because this box has the same content.
    pub duplicates: usize,
}

/// Writes `out`: this box's manifest, then each peer's lines whose content (sha256) no
/// box before it had, with their audio fetched into `peers/audio/` so the trainer reads
/// local files like its own.
pub async fn merge(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    root: &Path,
    own: &Path,
    peers: &[Peer],
    out: &Path,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Merged, String> {
    let io =
        |what: &str, p: &Path, e: std::io::Error| format!("cannot {what} {}: {e}", p.display());
    let mut merged = Merged::default();
    let mut seen = HashSet::new();
    let mut w =
        std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| io("create", out, e))?);
    let mut own_lines = 0;
    for raw in read_lines(own).map_err(|e| io("read", own, e))? {
        if let Ok(l) = serde_json::from_str::<Line>(&raw) {
            seen.insert(l.sha256);
        }
        own_lines += 1;
        writeln!(w, "{raw}").map_err(|e| io("write", out, e))?;
    }
    merged.lines.insert(remote.box_id.clone(), own_lines);
    let ours = format!("s3://{}/{}", remote.bucket, remote.prefix);
    let mut kept = HashSet::new();
    for peer in peers {
        let mut taken = 0;
        let mut theirs = HashSet::new();
        for raw in read_lines(&peer.lines(root)).map_err(|e| io("read", &peer.lines(root), e))? {
            let Ok(mut l) = serde_json::from_str::<Line>(&raw) else {
                continue;
            };
            if seen.contains(&l.sha256) {
                merged.duplicates += 1;
                continue;
            }
            theirs.insert(l.sha256.clone());
            // Only audio under this dataset's prefix, and no way out of `peers/`.
            let rel = l
                .audio_filepath
                .strip_prefix(&ours)
                .map(PathBuf::from)
                .filter(|r| r.starts_with("audio") && is_plain(r));
            let Some(rel) = rel else {
                merged.missing_audio += 1;
                continue;
            };
            let local = root.join(PEERS_DIR).join(&rel);
            if !local.is_file() {
                if *stop.borrow() {
                    return Err(
                        "the run was stopped while the other boxes' audio was fetched".into(),
                    );
                }
                let rel = rel.display();
                let key = format!("{}{rel}", remote.prefix);
                match fetch(s3, &remote.bucket, &key, &local).await {
                    Ok(true) => {}
                    Ok(false) => {
                        merged.missing_audio += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            l.audio_filepath = local.display().to_string();
            kept.insert(local);
            let text = serde_json::to_string(&l).map_err(|e| e.to_string())?;
            writeln!(w, "{text}").map_err(|e| io("write", out, e))?;
            taken += 1;
        }
        seen.extend(theirs);
        merged.lines.insert(peer.box_id.clone(), taken);
    }
    w.flush().map_err(|e| io("write", out, e))?;
    // Audio of lines no shard holds any more (their inputs deleted on another box) goes.
    for f in crate::training::run::files_under(&root.join(PEERS_DIR).join("audio")) {
        if !kept.contains(&f) {
            let _ = std::fs::remove_file(f);
        }
    }
    Ok(merged)
}

/// Only plain names: no `..`, no root.
fn is_plain(rel: &Path) -> bool {
    rel.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
}

fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::File::open(path) {
        Ok(f) => std::io::BufReader::new(f)
            .lines()
            .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Downloads one object to `to`; `false` when there is none.
async fn fetch(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    to: &Path,
) -> Result<bool, String> {
    let got = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(g) => g,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(false),
        Err(e) => return Err(format!("s3://{bucket}/{key}: {}", describe(&e))),
    };
    let bytes = got
        .body
        .collect()
        .await
        .map_err(|e| format!("s3://{bucket}/{key}: {e}"))?
        .into_bytes();
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_atomic(to, &bytes).map_err(|e| e.to_string())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_ids_are_checked_and_the_default_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let id = default_box_id(dir.path());
        assert!(check_box_id(&id).is_ok(), "{id}");
        assert_eq!(
            default_box_id(dir.path()),
            id,
            "the same working copy, the same box"
        );
        assert!(!is_plain(Path::new("audio/../../etc/passwd")));
        assert!(is_plain(Path::new("audio/b/ab/x.wav")));
        assert!(check_box_id("gpu-box.eu_1").is_ok());
        for bad in ["", ".hidden", "a/b", "with space", &"x".repeat(65)] {
            assert!(check_box_id(bad).is_err(), "{bad:?}");
        }
    }
}
