//! One input from S3: check the key and size, download the object into a private spool file
//! (hashing it on the way), transcribe, write each output with a conditional put, record it,
//! then apply `after` and delete the SQS messages. Meanwhile the queue's heartbeat
//! (`daemon::heartbeat`) keeps its messages hidden from other daemons.
//!
//! WAV, FLAC, MP3 and Ogg are decoded straight from the response stream (their containers
//! are read front to back), hashed as the bytes pass. Other formats (MP4/M4A/MOV, CAF,
//! Matroska/WebM) may need to seek, so they are first copied to a spool file: unpredictably
//! named, 0600, under the journal's `spool/`, removed when the job ends.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{QueueInfo, Shared};
use crate::aws::{describe, is_outage};
use crate::config::S3After;
use crate::dataset::pcm::{pcm_tap, PcmSpool};
use crate::dataset::Feed;
use crate::journal::{Input, JournalError, State};
use crate::pipeline::decode::AudioDecoder16k;
use crate::pipeline::decode::Tap;
use crate::pipeline::transcribe::{DecodeOptions, Transcriber};
use crate::sinks::s3::{put_once, OutputObject};
use crate::sources::sqs::delete;
use crate::worker::{transcribe_decoder, transcribe_to_outputs, JobResult, Outcome, Transcribed};

/// Why a key cannot be processed, if it cannot.
pub fn unsafe_key(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.ends_with('/') {
        return Some("the key names a folder, not an object");
    }
    if key.split('/').any(|part| part == ".." || part == ".") {
        return Some("the key contains `.` or `..` path segments");
    }
    if key.chars().any(char::is_control) {
        return Some("the key contains control characters");
    }
    None
}

/// Where output `ext` of input `key` goes: the key less `input_prefix`, under
/// `output_prefix`, with its extension replaced.
pub fn output_key(q: &QueueInfo, key: &str, ext: &str) -> String {
    let rel = key.strip_prefix(&q.spec.input_prefix).unwrap_or(key);
    let stem = match rel.rfind('.') {
        Some(dot) if !rel[dot..].contains('/') => &rel[..dot],
        _ => rel,
    };
    format!("{}{stem}.{ext}", q.output_prefix)
}

/// How processing stopped short.
enum Stop {
    /// The job itself ended (bad input, time limit, write refused…).
    Job(Outcome),
    /// S3 is unreachable or overloaded: wait, without blaming the input.
    Unavailable(String),
}

impl From<Outcome> for Stop {
    fn from(o: Outcome) -> Self {
        Stop::Job(o)
    }
}

/// Sorts an S3 failure: an outage, or a transient failure of this job at `stage`.
fn s3_failure(stage: &'static str, outage: bool, reason: String) -> Stop {
    if outage {
        crate::metrics::metrics()
            .s3_errors
            .get_or_create(&crate::metrics::Op {
                operation: stage.to_string(),
            })
            .inc();
        Stop::Unavailable(reason)
    } else {
        Stop::Job(Outcome::Transient { stage, reason })
    }
}

pub(super) async fn run(
    shared: &Arc<Shared>,
    input: &Input,
    q: &QueueInfo,
    transcriber: &Arc<dyn Transcriber>,
    opts: DecodeOptions,
) -> Result<(), JournalError> {
    if let Err(wait) = q.breaker.admit() {
        // S3 was down a moment ago: do not call it, and do not count this as an attempt.
        return shared.journal().wait_later(
            input.id,
            "waiting for S3 to become reachable again",
            wait.as_millis() as i64,
        );
    }
    let outcome = process(shared, input, q, transcriber, opts).await;
    record(shared, input, q, outcome).await
}

async fn process(
    shared: &Arc<Shared>,
    input: &Input,
    q: &QueueInfo,
    transcriber: &Arc<dyn Transcriber>,
    opts: DecodeOptions,
) -> Result<(Vec<String>, JobResult), Stop> {
    let (bucket, key) = (q.spec.input_bucket.as_str(), input.key.as_str());
    let uri = format!("s3://{bucket}/{key}");
    if let Some(why) = unsafe_key(key) {
        return Err(Stop::Job(Outcome::Permanent {
            stage: "validate",
            reason: format!("{uri}: {why}"),
        }));
    }
    let head = q
        .clients
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await;
    let size = match head {
        Ok(h) => h.content_length().unwrap_or(0).max(0) as u64,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
            q.breaker.success();
            return Err(Stop::Job(Outcome::Permanent {
                stage: "fetch",
                reason: format!("{uri} does not exist (deleted before it was processed?)"),
            }));
        }
        Err(e) => {
            return Err(s3_failure(
                "fetch",
                is_outage(&e),
                format!("{uri}: {}", describe(&e)),
            ))
        }
    };
    q.breaker.success();
    if size > q.max_object_size {
        return Err(Stop::Job(Outcome::Permanent {
            stage: "validate",
            reason: format!(
                "{uri} is {size} bytes, over max_object_size {} (raise it in [[s3]] if this is expected)",
                q.max_object_size
            ),
        }));
    }
    let ext = Path::new(key)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    // Inputs that feed datasets keep their decoded audio while they are transcribed.
    let feeds = shared.feeds.get(&input.source).cloned();
    let keep = match feeds
        .as_ref()
        .map(|_| PcmSpool::create(&shared.spool))
        .transpose()
    {
        Ok(k) => k,
        Err(e) => {
            return Err(Stop::Job(Outcome::Transient {
                stage: "dataset",
                reason: format!("cannot create an audio spool file: {e}"),
            }))
        }
    };
    let tap = keep.as_ref().map(|(s, _)| pcm_tap(s.clone()));
    let (done, sha) = if ext.as_deref().is_some_and(|e| STREAMED.contains(&e)) {
        transcribe_streamed(shared, q, key, &uri, ext, transcriber, opts, tap).await?
    } else {
        transcribe_spooled(shared, q, key, &uri, transcriber, opts, tap).await?
    };
    let result = JobResult::of(&done.transcript, &transcriber.model_name());
    let mut outputs = Vec::with_capacity(done.outputs.len());
    for (format, bytes) in done.outputs {
        let out_key = output_key(q, key, format.extension());
        let target = OutputObject {
            bucket: &q.output_bucket,
            key: &out_key,
            format,
            input_sha256: &sha,
            multipart_threshold: q.multipart_threshold,
        };
        put_once(&q.clients.s3, &target, bytes)
            .await
            .map_err(|e| s3_failure("write", e.outage, e.reason))?;
        outputs.push(format!("s3://{}/{out_key}", q.output_bucket));
    }
    if let (Some(datasets), Some((spool, pcm))) = (feeds, keep) {
        let (s, transcript) = (shared.clone(), done.transcript);
        let added = tokio::task::spawn_blocking(move || {
            spool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish()
                .map_err(|e| format!("cannot keep the decoded audio: {e}"))?;
            let feed = Feed {
                datasets: &datasets,
                journal: &s.journal,
                spool_dir: &s.spool,
            };
            feed.add(&uri, &sha, &transcript, &pcm)
        })
        .await
        .unwrap_or_else(|e| Err(format!("dataset step ended abnormally: {e}")));
        if let Err(reason) = added {
            return Err(Stop::Job(Outcome::Transient {
                stage: "dataset",
                reason,
            }));
        }
        shared.train_wake.notify_one();
    }
    Ok((outputs, result))
}

/// Extensions decoded straight from the response stream: their containers are read front to
/// back. Everything else (MP4/M4A/MOV, CAF, Matroska/WebM, unknown) may need to seek and is
/// spooled to a file first.
const STREAMED: &[&str] = &["wav", "flac", "mp3", "ogg", "oga", "opus"];

fn worker_died(e: tokio::task::JoinError) -> Outcome {
    Outcome::Transient {
        stage: "transcribe",
        reason: format!("worker ended abnormally: {e}"),
    }
}

/// Decodes the object as it downloads; the hash is finished by the download task.
#[allow(clippy::too_many_arguments)]
async fn transcribe_streamed(
    shared: &Arc<Shared>,
    q: &QueueInfo,
    key: &str,
    uri: &str,
    ext: Option<String>,
    transcriber: &Arc<dyn Transcriber>,
    opts: DecodeOptions,
    tap: Option<Tap>,
) -> Result<(Transcribed, String), Stop> {
    let resp = q
        .clients
        .s3
        .get_object()
        .bucket(&q.spec.input_bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_failure("fetch", is_outage(&e), format!("{uri}: {}", describe(&e))))?;
    let (reader, download, hashed) = crate::sources::s3_body::stream(resp.body);
    let (t, formats, limits, source) = (
        transcriber.clone(),
        q.formats.clone(),
        shared.asr_limits,
        uri.to_string(),
    );
    let rendered =
        tokio::task::spawn_blocking(move || {
            let mut decoder = AudioDecoder16k::open_stream(Box::new(reader), ext.as_deref())
                .map_err(|e| Outcome::Permanent {
                    stage: "decode",
                    reason: e.to_string(),
                })?;
            decoder.set_tap(tap);
            let sha = move || match hashed.recv() {
                Ok(Ok(sha)) => Ok(sha),
                Ok(Err(why)) => Err(Outcome::Transient {
                    stage: "fetch",
                    reason: why,
                }),
                Err(_) => Err(Outcome::Transient {
                    stage: "fetch",
                    reason: "the download ended without a result".into(),
                }),
            };
            transcribe_decoder(decoder, source, &formats, &t, &opts, sha, &|secs| {
                limits.job_timeout(secs)
            })
            .map(|r| (r, ()))
        })
        .await
        .unwrap_or_else(|e| Err(worker_died(e)));
    match rendered {
        Ok((r, ())) => match download.await {
            Ok(Ok(sha)) => Ok((r, sha)),
            Ok(Err(why)) => Err(Stop::Unavailable(format!("{uri}: {why}"))),
            Err(e) => Err(Stop::Job(worker_died(e))),
        },
        Err(outcome) => {
            // A failed download shows up as bad audio to the decoder: blame the network.
            if download.is_finished() {
                if let Ok(Err(why)) = download.await {
                    return Err(Stop::Unavailable(format!("{uri}: {why}")));
                }
            } else {
                download.abort();
            }
            Err(Stop::Job(outcome))
        }
    }
}

/// Downloads the object into a spool file first (formats that may need to seek).
async fn transcribe_spooled(
    shared: &Arc<Shared>,
    q: &QueueInfo,
    key: &str,
    uri: &str,
    transcriber: &Arc<dyn Transcriber>,
    opts: DecodeOptions,
    tap: Option<Tap>,
) -> Result<(Transcribed, String), Stop> {
    let (spool, sha) = download(&q.clients.s3, &q.spec.input_bucket, key, &shared.spool).await?;
    let (t, formats, limits) = (transcriber.clone(), q.formats.clone(), shared.asr_limits);
    let path = spool.path().to_path_buf();
    let (source, sha_for_job) = (uri.to_string(), sha.clone());
    let rendered = tokio::task::spawn_blocking(move || {
        transcribe_to_outputs(
            &path,
            source,
            &formats,
            &t,
            &opts,
            Some(sha_for_job),
            &|secs| limits.job_timeout(secs),
            tap,
        )
    })
    .await
    .unwrap_or_else(|e| Err(worker_died(e)))
    .map_err(Stop::Job)?;
    drop(spool);
    Ok((rendered, sha))
}

/// Streams the object into a new spool file, hashing it on the way.
async fn download(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    spool_dir: &Path,
) -> Result<(tempfile::NamedTempFile, String), Stop> {
    let transient = |reason: String| {
        Stop::Job(Outcome::Transient {
            stage: "fetch",
            reason,
        })
    };
    let spool = tempfile::Builder::new()
        .prefix("s3-")
        .tempfile_in(spool_dir)
        .map_err(|e| {
            transient(format!(
                "cannot create a spool file in {}: {e}",
                spool_dir.display()
            ))
        })?;
    let file = spool
        .as_file()
        .try_clone()
        .map_err(|e| transient(format!("spool file: {e}")))?;
    let mut file = tokio::fs::File::from_std(file);
    let resp = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            s3_failure(
                "fetch",
                is_outage(&e),
                format!("s3://{bucket}/{key}: {}", describe(&e)),
            )
        })?;
    let mut body = resp.body;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| Stop::Unavailable(format!("s3://{bucket}/{key}: download interrupted: {e}")))?
    {
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| transient(format!("spool file: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| transient(format!("spool file: {e}")))?;
    Ok((spool, hex::encode(hasher.finalize())))
}

async fn record(
    shared: &Arc<Shared>,
    input: &Input,
    q: &QueueInfo,
    outcome: Result<(Vec<String>, JobResult), Stop>,
) -> Result<(), JournalError> {
    let id = input.id;
    let uri = format!("s3://{}/{}", q.spec.input_bucket, input.key);
    let outcome = match outcome {
        Ok((outputs, result)) => Outcome::Done {
            outputs,
            result: Some(result),
        },
        Err(Stop::Job(o)) => o,
        Err(Stop::Unavailable(reason)) => {
            let wait = q.breaker.failure();
            tracing::warn!(%uri, %reason, ?wait, "S3 unavailable; the job waits");
            crate::metrics::count_retry(&input.source, "s3_unavailable");
            return shared.journal().wait_later(
                id,
                &format!("S3 unavailable: {reason}"),
                wait.as_millis() as i64,
            );
        }
    };
    match super::jobs::decide(input, outcome) {
        super::jobs::Decision::Done(outputs, result) => {
            let result = result.and_then(|r| r.to_json());
            shared.journal().finish(id, &outputs, result.as_ref())?;
            after(q, &input.key).await;
            tracing::info!(%uri, "done");
        }
        super::jobs::Decision::Fail { stage, reason } => {
            let detail = format!("{stage}: {reason}");
            tracing::warn!(%uri, reason = %detail, "failed");
            shared
                .journal()
                .transition(id, State::Failed, Some(&detail))?;
        }
        super::jobs::Decision::GiveUp(detail) => {
            tracing::warn!(%uri, reason = %detail, "failed");
            shared
                .journal()
                .transition(id, State::Failed, Some(&detail))?;
        }
        super::jobs::Decision::Retry { why, delay } => {
            tracing::warn!(%uri, reason = %why, ?delay, "will retry");
            crate::metrics::count_retry(&input.source, super::jobs::retry_kind(&why));
            return shared
                .journal()
                .retry_later(id, &why, delay.as_millis() as i64);
        }
    }
    let messages = shared.receipts().finish(id);
    for m in messages {
        delete(&q.clients.sqs, &m).await;
    }
    Ok(())
}

async fn after(q: &QueueInfo, key: &str) {
    let s3 = &q.clients.s3;
    let result = match q.after {
        S3After::Keep => return,
        S3After::Delete => s3
            .delete_object()
            .bucket(&q.spec.input_bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| describe(&e)),
        S3After::Tag => {
            let tag = aws_sdk_s3::types::Tag::builder()
                .key("hotfolderd")
                .value("done")
                .build();
            let tagging =
                tag.and_then(|t| aws_sdk_s3::types::Tagging::builder().tag_set(t).build());
            match tagging {
                Ok(tagging) => s3
                    .put_object_tagging()
                    .bucket(&q.spec.input_bucket)
                    .key(key)
                    .tagging(tagging)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| describe(&e)),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    if let Err(e) = result {
        tracing::warn!(bucket = %q.spec.input_bucket, %key, error = %e, "outputs are done, but the input could not be deleted/tagged");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_keys_are_named() {
        assert!(unsafe_key("in/../etc/passwd.wav").is_some());
        assert!(unsafe_key("in/./a.wav").is_some());
        assert!(unsafe_key("in/dir/").is_some());
        assert!(unsafe_key("in/a\nb.wav").is_some());
        assert_eq!(unsafe_key("in/café + co/a..b.wav"), None);
    }
}
