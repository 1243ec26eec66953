//! The JSON document a notification carries: the same for a webhook and a queue. Receivers
//! should ignore fields they do not know; fields are added, never renamed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::journal::{Input, ModelRow, Notification, Run};

/// Where an input came from, as the document names it.
pub enum Origin {
    Folder {
        folder: String,
        path: String,
    },
    S3 {
        queue_url: String,
        bucket: Option<String>,
        key: String,
    },
    /// An upload to the HTTP API: its job id, and the file name the client gave.
    Http {
        job_id: String,
        filename: String,
    },
}

/// An output as the document lists it: a local path, or an S3 URI with a presigned link.
pub enum Output {
    Path(String),
    S3 {
        uri: String,
        url: Option<String>,
        expires_at: i64,
    },
}

/// Unix milliseconds as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What an input notification needs from the journal.
pub struct InputFacts<'a> {
    pub input: &'a Input,
    pub origin: Origin,
    pub outputs: Vec<Output>,
    pub result: Option<Value>,
    /// The input's trail: (unix ms, state, detail).
    pub history: &'a [(i64, String, Option<String>)],
    pub seen_at: Option<i64>,
}

/// The document for `done`, `failed` or `quarantined`.
pub fn input_document(n: &Notification, f: &InputFacts<'_>) -> Value {
    let origin = match &f.origin {
        Origin::Folder { folder, path } => {
            json!({"kind": "folder", "folder": folder, "path": path})
        }
        Origin::S3 {
            queue_url,
            bucket,
            key,
        } => json!({"kind": "s3", "queue_url": queue_url, "bucket": bucket, "key": key}),
        Origin::Http { job_id, filename } => {
            json!({"kind": "http", "job_id": job_id, "filename": filename})
        }
    };
    let outputs: Vec<Value> = f.outputs.iter().map(output_json).collect();
    // The attempt this notification closes: the last start before it.
    let started = f
        .history
        .iter()
        .filter(|(at, state, _)| state == "running" && *at <= n.created_at)
        .map(|(at, _, _)| *at)
        .next_back();
    let seconds = |from: Option<i64>| from.map(|t| (n.created_at - t) as f64 / 1000.0);
    let mut doc = json!({
        "event": n.event,
        "delivery": n.delivery,
        "job_id": f.input.id,
        "source": origin,
        "sha256": f.input.sha256,
        "attempts": f.input.attempts,
        "outputs": outputs,
        "timings": {
            "seen_at": f.seen_at.map(rfc3339),
            "started_at": started.map(rfc3339),
            "finished_at": rfc3339(n.created_at),
            "total_seconds": seconds(f.seen_at),
            "processing_seconds": seconds(started),
        },
    });
    if let Some(r) = &f.result {
        for key in ["audio_seconds", "language", "model"] {
            doc[key] = r.get(key).cloned().unwrap_or(Value::Null);
        }
        // Only where diarization ran: how many speakers it told apart.
        if let Some(n) = r.get("speakers") {
            doc["speakers"] = n.clone();
        }
    }
    if n.event != "done" {
        let reason = f
            .history
            .iter()
            .rev()
            .find(|(at, state, _)| state == &n.event && *at <= n.created_at)
            .and_then(|(_, _, d)| d.clone())
            .or_else(|| f.input.last_error.clone())
            .unwrap_or_default();
        let (stage, why) = reason.split_once(": ").unwrap_or(("", &reason));
        doc["error"] = json!({"stage": stage, "reason": why});
    }
    doc
}

/// An output or artifact: `{"path"}`, or `{"uri", "url", "url_expires_at"}` in S3.
pub fn output_json(o: &Output) -> Value {
    match o {
        Output::Path(p) => json!({"path": p}),
        Output::S3 {
            uri,
            url,
            expires_at,
        } => json!({"uri": uri, "url": url, "url_expires_at": rfc3339(*expires_at)}),
    }
}

/// Where a finished run's files are: its folder, and for an `s3://` dataset its copy there.
pub struct RunArtifacts {
    pub folder: String,
    /// `s3://bucket/prefix/runs/ID/` for an `s3://` dataset.
    pub uri: Option<String>,
    /// Each file: its name inside the folder, its size, and where to get it.
    pub files: Vec<(String, u64, Output)>,
    /// Files not listed (checkpoints first), to keep the document small.
    pub files_left_out: usize,
    /// The candidate model the run registered, if it got that far.
    pub candidate: Option<ModelRow>,
}

/// The document for `training_started` and `training_finished` (with `artifacts`).
pub fn run_document(n: &Notification, run: &Run, artifacts: Option<&RunArtifacts>) -> Value {
    let mut doc = json!({
        "event": n.event,
        "delivery": n.delivery,
        "run": {
            "id": run.id,
            "dataset": run.dataset,
            "state": run.state.as_str(),
            "hours": run.seconds / 3600.0,
            "started_at": rfc3339(run.started_at),
            "ended_at": run.ended_at.map(rfc3339),
            "detail": run.detail,
        },
    });
    if let Some(a) = artifacts {
        let files: Vec<Value> = a
            .files
            .iter()
            .map(|(name, bytes, o)| {
                let mut f = output_json(o);
                f["name"] = json!(name);
                f["bytes"] = json!(bytes);
                f
            })
            .collect();
        doc["artifacts"] = json!({
            "folder": a.folder,
            "uri": a.uri,
            "files": files,
            "files_left_out": a.files_left_out,
            "candidate_model": a.candidate.as_ref().map(model_json),
        });
    }
    doc
}

/// The document for `model_promoted`: the model that serves from now on, and its lineage.
pub fn model_document(n: &Notification, m: &ModelRow) -> Value {
    json!({
        "event": n.event,
        "delivery": n.delivery,
        "model": model_json(m),
    })
}

/// One registered model with its lineage, as `model_promoted` and `model list --json` say it.
pub fn model_json(m: &ModelRow) -> Value {
    let l = &m.lineage;
    json!({
        "id": m.id,
        "sha256": m.sha256,
        "path": m.path,
        "state": m.state.as_str(),
        "parent_sha256": l.parent_sha256,
        "run_id": l.run_id,
        "dataset": l.dataset,
        "manifest_sha256": l.manifest_sha256,
        "wer": l.wer,
        "baseline_wer": l.baseline_wer,
        "created_at": rfc3339(m.created_at),
        "served_at": m.served_at.map(rfc3339),
        "file_removed_at": m.removed_at.map(rfc3339),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::State;

    fn note(event: &str, at: i64) -> Notification {
        Notification {
            id: 1,
            delivery: "abc".into(),
            target: "t".into(),
            event: event.into(),
            input_id: Some(7),
            run_id: None,
            model_id: None,
            created_at: at,
            attempts: 0,
            state: "pending".into(),
            last_error: None,
        }
    }

    #[test]
    fn a_failure_names_its_stage_and_reason_and_times_its_attempt() {
        let input = Input {
            id: 7,
            source: "watch:/in".into(),
            key: "a.wav".into(),
            version: "v".into(),
            state: State::Quarantined,
            attempts: 2,
            sha256: Some("ff".into()),
            last_error: None,
            outputs: vec![],
        };
        let history = vec![
            (1_000, "seen".to_string(), None),
            (2_000, "running".to_string(), None),
            (
                2_500,
                "queued".to_string(),
                Some("write: disk full".to_string()),
            ),
            (4_000, "running".to_string(), None),
            (
                9_000,
                "quarantined".to_string(),
                Some("decode: not audio".to_string()),
            ),
        ];
        let facts = InputFacts {
            input: &input,
            origin: Origin::Folder {
                folder: "/in".into(),
                path: "/in/a.wav".into(),
            },
            outputs: vec![],
            result: None,
            history: &history,
            seen_at: Some(1_000),
        };
        let doc = input_document(&note("quarantined", 9_000), &facts);
        assert_eq!(doc["error"]["stage"], "decode");
        assert_eq!(doc["error"]["reason"], "not audio");
        assert_eq!(doc["timings"]["processing_seconds"], 5.0);
        assert_eq!(doc["timings"]["total_seconds"], 8.0);
        assert_eq!(doc["source"]["path"], "/in/a.wav");
        assert_eq!(doc["timings"]["finished_at"], "1970-01-01T00:00:09.000Z");
        assert!(doc.get("speakers").is_none());

        // A diarized job's result names how many speakers it told apart.
        let result = crate::job::JobResult {
            audio_seconds: 30.0,
            language: "en".into(),
            model: "tiny.en".into(),
            decode_seconds: 0.1,
            asr_seconds: 3.0,
            segments: 7,
            speakers: Some(3),
        };
        let done = InputFacts {
            result: result.to_json(),
            ..facts
        };
        let doc = input_document(&note("done", 9_000), &done);
        assert_eq!(doc["speakers"], 3);
        assert_eq!(doc["audio_seconds"], 30.0);
    }
}
