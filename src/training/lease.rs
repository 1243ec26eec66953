//! The run lease of an `s3://` dataset fed by several daemons: one object,
//! `training-lease.json` under the dataset's prefix, written only with conditions
//! (`If-None-Match: *` when there is none, `If-Match` on the etag read), so of two daemons
//! that find the dataset due at once only one starts a run. The holder renews it while the
//! run lasts; a holder that dies leaves it to expire (`lease_ttl`). It also carries what
//! the next decision needs: the seconds each box held when the last run started (the
//! watermark new hours are counted from) and how that run ended.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use crate::aws::describe;
use crate::dataset::feed::Remote;

/// The lease's key under the dataset's prefix.
pub const KEY: &str = "training-lease.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The box that holds it, or held it last.
    pub holder: String,
    /// That daemon's box token (its working copy's): two daemons given the same box id by
    /// mistake are still told apart.
    #[serde(default)]
    pub holder_token: String,
    /// Whether a run holds it now (until `expires_at`).
    pub running: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Unix milliseconds.
    pub expires_at: i64,
    /// Each box's seconds when the last successful run started: new hours count from these.
    #[serde(default)]
    pub watermark: BTreeMap<String, f64>,
    /// The running run's watermark: it becomes `watermark` only if that run succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// Unique per write: how a write that landed is recognised when read back.
    #[serde(default)]
    pub write_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    pub id: String,
    pub holder: String,
    /// Unix milliseconds.
    pub started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// `running`, `succeeded`, `failed` or `interrupted`.
    pub state: String,
}

impl Lease {
    /// Held by a live run of another daemon (`token`: this daemon's) at `now`.
    pub fn busy(&self, token: &str, now: i64) -> bool {
        self.running && self.expires_at > now && self.holder_token != token
    }

    /// The seconds added since the last run started, over every box in `seconds`.
    pub fn new_seconds(&self, seconds: &BTreeMap<String, f64>) -> f64 {
        seconds
            .iter()
            .map(|(b, s)| (s - self.watermark.get(b).copied().unwrap_or(0.0)).max(0.0))
            .sum()
    }
}

/// The lease as read, with its etag (`None`: there is none yet).
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub lease: Lease,
    pub etag: Option<String>,
}

/// A lease this box holds: the etag of its last write.
#[derive(Debug, Clone)]
pub struct Held {
    pub lease: Lease,
    etag: String,
    /// The lease as it was before this box took it.
    before: Lease,
}

fn key(remote: &Remote) -> String {
    format!("{}{KEY}", remote.prefix)
}

fn at(remote: &Remote) -> String {
    format!("s3://{}/{}", remote.bucket, key(remote))
}

pub async fn read(s3: &aws_sdk_s3::Client, remote: &Remote) -> Result<Seen, String> {
    let got = match s3
        .get_object()
        .bucket(&remote.bucket)
        .key(key(remote))
        .send()
        .await
    {
        Ok(g) => g,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            return Ok(Seen::default())
        }
        Err(e) => return Err(format!("{}: {}", at(remote), describe(&e))),
    };
    let etag = got.e_tag().map(str::to_string);
    let bytes = got
        .body
        .collect()
        .await
        .map_err(|e| format!("{}: {e}", at(remote)))?
        .into_bytes();
    // A lease that does not parse (written by hand?) is replaced, conditionally, as if
    // expired: it must not stop training for good.
    let lease = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        tracing::warn!(lease = %at(remote), error = %e, "the run lease does not parse; it is treated as expired");
        Lease::default()
    });
    Ok(Seen { lease, etag })
}

/// Writes `lease` if the object is still what `seen` read; `None` when another box wrote
/// it first. A condition that fails because the SDK retried a write whose first answer was
/// lost finds this very lease there: that is a success.
async fn write(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    etag: Option<&str>,
    lease: &Lease,
) -> Result<Option<String>, String> {
    let mut lease = lease.clone();
    lease.write_id = uuid::Uuid::new_v4().simple().to_string();
    match write_once(s3, remote, etag, &lease).await? {
        Some(etag) => Ok(Some(etag)),
        None => {
            let now = read(s3, remote).await?;
            Ok(now.etag.filter(|_| now.lease.write_id == lease.write_id))
        }
    }
}

async fn write_once(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    etag: Option<&str>,
    lease: &Lease,
) -> Result<Option<String>, String> {
    let body = serde_json::to_vec_pretty(lease).map_err(|e| e.to_string())?;
    let req = s3
        .put_object()
        .bucket(&remote.bucket)
        .key(key(remote))
        .content_type("application/json")
        .body(ByteStream::from(body));
    let req = match etag {
        Some(etag) => req.if_match(etag),
        None => req.if_none_match("*"),
    };
    match req.send().await {
        Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
        Err(e)
            if e.as_service_error()
                .is_some_and(crate::aws::precondition_failed) =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("{}: {}", at(remote), describe(&e))),
    }
}

/// Takes the lease for run `run_id` over what `seen` read (free, expired or released),
/// with `pending`, the seconds the run starts from; `None` when another box took it first.
pub async fn take(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    token: &str,
    seen: &Seen,
    run_id: &str,
    pending: BTreeMap<String, f64>,
    now: i64,
) -> Result<Option<Held>, String> {
    let lease = Lease {
        holder: remote.box_id.clone(),
        holder_token: token.to_string(),
        running: true,
        run_id: Some(run_id.to_string()),
        expires_at: now + remote.lease_ttl.as_millis() as i64,
        watermark: seen.lease.watermark.clone(),
        pending: Some(pending),
        last_run: Some(LastRun {
            id: run_id.to_string(),
            holder: remote.box_id.clone(),
            started_at: now,
            ended_at: None,
            state: "running".into(),
        }),
        write_id: String::new(),
    };
    Ok(write(s3, remote, seen.etag.as_deref(), &lease)
        .await?
        .map(|etag| Held {
            lease,
            etag,
            before: seen.lease.clone(),
        }))
}

/// Extends the lease by `lease_ttl` from `now`; `false` when it is no longer this box's
/// (it expired and another box took it).
pub async fn renew(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    held: &mut Held,
    now: i64,
) -> Result<bool, String> {
    let mut lease = held.lease.clone();
    lease.expires_at = now + remote.lease_ttl.as_millis() as i64;
    match write(s3, remote, Some(&held.etag), &lease).await? {
        Some(etag) => {
            held.lease = lease;
            held.etag = etag;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Gives the lease back, recording how the run ended (`None`: it never started, and the
/// lease goes back to what it was); `false` when it was no longer this box's. Only a
/// successful run moves the watermark: after any other, the same hours are still new.
pub async fn release(
    s3: &aws_sdk_s3::Client,
    remote: &Remote,
    held: &Held,
    state: Option<&str>,
    now: i64,
) -> Result<bool, String> {
    let lease = released(held, state, now);
    Ok(write(s3, remote, Some(&held.etag), &lease).await?.is_some())
}

/// The lease as `release` writes it.
fn released(held: &Held, state: Option<&str>, now: i64) -> Lease {
    match state {
        None => Lease {
            expires_at: now,
            running: false,
            pending: None,
            ..held.before.clone()
        },
        Some(state) => {
            let mut lease = held.lease.clone();
            lease.running = false;
            lease.expires_at = now;
            let pending = lease.pending.take();
            if state == "succeeded" {
                lease.watermark = pending.unwrap_or_default();
            }
            if let Some(last) = &mut lease.last_run {
                last.ended_at = Some(now);
                last.state = state.to_string();
            }
            lease
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_seconds_count_each_boxs_growth_since_the_last_run() {
        let lease = Lease {
            watermark: BTreeMap::from([("a".into(), 100.0), ("b".into(), 50.0)]),
            ..Lease::default()
        };
        let now = BTreeMap::from([
            ("a".to_string(), 130.0),
            // Shrank (inputs deleted): counts as nothing, not as less.
            ("b".to_string(), 40.0),
            // A box that joined since.
            ("c".to_string(), 5.0),
        ]);
        assert_eq!(lease.new_seconds(&now), 35.0);
    }

    #[test]
    fn only_a_successful_run_moves_the_watermark() {
        let before = Lease {
            watermark: BTreeMap::from([("a".into(), 10.0)]),
            ..Lease::default()
        };
        let pending = BTreeMap::from([("a".to_string(), 50.0), ("b".to_string(), 5.0)]);
        let held = Held {
            lease: Lease {
                holder: "a".into(),
                running: true,
                watermark: before.watermark.clone(),
                pending: Some(pending.clone()),
                last_run: Some(LastRun {
                    id: "r".into(),
                    holder: "a".into(),
                    started_at: 1,
                    ended_at: None,
                    state: "running".into(),
                }),
                ..Lease::default()
            },
            etag: "e".into(),
            before: before.clone(),
        };
        let ok = released(&held, Some("succeeded"), 9);
        assert_eq!(
            (ok.watermark, ok.pending, ok.running),
            (pending, None, false)
        );
        assert_eq!(ok.last_run.unwrap().state, "succeeded");
        let failed = released(&held, Some("failed"), 9);
        assert_eq!(failed.watermark, before.watermark);
        assert_eq!(failed.pending, None);
        assert_eq!(failed.last_run.unwrap().ended_at, Some(9));
        // A run that never started leaves the lease as it was, released.
        let undone = released(&held, None, 9);
        assert_eq!(undone.last_run, None);
        assert_eq!(undone.watermark, before.watermark);
    }

    #[test]
    fn a_lease_is_busy_only_while_another_daemons_run_holds_it() {
        let l = Lease {
            holder: "a".into(),
            holder_token: "token-a".into(),
            running: true,
            expires_at: 1_000,
            ..Lease::default()
        };
        assert!(l.busy("token-b", 999));
        assert!(!l.busy("token-b", 1_000), "expired");
        assert!(
            !l.busy("token-a", 999),
            "this daemon's own, left by a crash"
        );
        let released = Lease {
            running: false,
            ..l
        };
        assert!(!released.busy("token-b", 999));
    }
}
