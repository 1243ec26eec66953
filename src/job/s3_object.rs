//! An input that is an S3 object: its key and size checked (HEAD), then read. WAV, FLAC, MP3
//! and Ogg are decoded straight from the response stream (their containers are read front
//! to back), hashed as the bytes pass. Other formats (MP4/M4A/MOV, CAF, Matroska/WebM) may
//! need to seek, so they are first copied to a spool file: unpredictably named, 0600, in the
//! spool folder, removed when the job ends. Finishing keeps, deletes or tags the object; the
//! SQS messages that announced it are deleted by the daemon once it is final.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256 as Hasher};
use tokio::io::AsyncWriteExt;

use super::failure::{Failure, Stage};
use super::input::{Body, FinishError, Finished, Input, Opened, Sha256};
use crate::aws::{describe, is_outage, Breaker};
use crate::config::S3After;
use crate::journal::State;
use crate::sources::s3_body::Downloaded;

/// Extensions decoded straight from the response stream. Everything else may need to seek
/// and is spooled to a file first.
const STREAMED: &[&str] = &["wav", "flac", "mp3", "ogg", "oga", "opus"];

/// After a decode error, how long to wait for the download to say whether it broke (the
/// decoder may see the broken stream a moment before the download task has ended).
const DOWNLOAD_VERDICT: Duration = Duration::from_secs(5);

pub struct S3Object<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    pub key: &'a str,
    pub max_size: u64,
    pub after: S3After,
    /// Trips when S3 is unreachable, so queued jobs wait instead of hammering it.
    pub breaker: &'a Breaker,
    /// The upload that was journaled: nothing else is read.
    pub pin: Pin,
    uri: String,
    /// The content's sha256 (hex) from the upload's full-object SHA-256 checksum, which S3
    /// checked on upload; from HEAD.
    checksum_sha256: Option<String>,
    /// The sha256 of the spool file made early by `sha256_first`, for `open`.
    spooled: Option<String>,
    download: Option<tokio::task::JoinHandle<Downloaded>>,
    spool: Option<tempfile::NamedTempFile>,
}

impl<'a> S3Object<'a> {
    pub fn new(
        s3: &'a aws_sdk_s3::Client,
        bucket: &'a str,
        key: &'a str,
        max_size: u64,
        after: S3After,
        breaker: &'a Breaker,
        pin: Pin,
    ) -> S3Object<'a> {
        S3Object {
            s3,
            bucket,
            key,
            max_size,
            after,
            breaker,
            pin,
            uri: format!("s3://{bucket}/{key}"),
            checksum_sha256: None,
            spooled: None,
            download: None,
            spool: None,
        }
    }

    /// An S3 failure: an outage (wait, trip the breaker) or a transient failure of this job.
    fn failed(&self, stage: Stage, outage: bool, reason: String) -> Failure {
        if outage {
            s3_outage(stage, &reason, self.breaker)
        } else {
            Failure::transient(stage, reason)
        }
    }

    /// Whether the key's current object is still the upload this input is (checked before
    /// deleting or tagging it, so a newer upload is never deleted in its place).
    async fn still_current(&self) -> Result<bool, FinishError> {
        let head = self
            .s3
            .head_object()
            .bucket(self.bucket)
            .key(self.key)
            .set_if_match(self.pin.if_match())
            .send()
            .await;
        match head {
            Ok(h) => {
                Ok(self.pin.version_id.is_none()
                    || h.version_id() == self.pin.version_id.as_deref())
            }
            Err(e) if changed(&e) => Ok(false),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(FinishError::S3 {
                uri: self.uri.clone(),
                reason: describe(&e),
            }),
        }
    }

    /// The object is no longer the upload this input is.
    fn replaced(&self) -> Failure {
        Failure::permanent(
            Stage::Fetch,
            format!(
                "{} changed since the upload this input is (ETag {}): a newer upload replaced it, and is an input of its own",
                self.uri,
                self.pin.etag.as_deref().unwrap_or("?")
            ),
        )
    }

    /// The download broke after S3 had answered (the HEAD, then the GET's headers): S3 is
    /// up, so this uses an attempt. A break that repeats on every attempt (a connection
    /// dropped mid-stream, a checksum mismatch) then ends as a failure with its reason,
    /// instead of waiting forever; a real outage shows at the next attempt's HEAD.
    fn interrupted(&self, why: String) -> Failure {
        Failure::transient(Stage::Fetch, format!("{}: {why}", self.uri))
    }

    async fn get(&self) -> Result<aws_sdk_s3::primitives::ByteStream, Failure> {
        let resp = self
            .s3
            .get_object()
            .bucket(self.bucket)
            .key(self.key)
            .set_version_id(self.pin.version_id.clone())
            .set_if_match(self.pin.if_match())
            .send()
            .await
            .map_err(|e| {
                if changed(&e) {
                    return self.replaced();
                }
                self.failed(
                    Stage::Fetch,
                    is_outage(&e),
                    format!("{}: {}", self.uri, describe(&e)),
                )
            })?;
        Ok(resp.body)
    }

    /// Whether the object's format is decoded straight from the response stream.
    fn streamed(&self) -> bool {
        self.extension()
            .as_deref()
            .is_some_and(|e| STREAMED.contains(&e))
    }

    fn extension(&self) -> Option<String> {
        Path::new(self.key)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
    }

    /// Streams the object into a new spool file, hashing it on the way.
    async fn spool(&mut self, spool_dir: &Path) -> Result<Opened, Failure> {
        let local = |reason: String| Failure::transient(Stage::Fetch, reason);
        let spool = tempfile::Builder::new()
            .prefix("s3-")
            .tempfile_in(spool_dir)
            .map_err(|e| {
                local(format!(
                    "cannot create a spool file in {}: {e}",
                    spool_dir.display()
                ))
            })?;
        let file = spool
            .as_file()
            .try_clone()
            .map_err(|e| local(format!("spool file: {e}")))?;
        let mut file = tokio::fs::File::from_std(file);
        let mut body = self.get().await?;
        let mut hasher = Hasher::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| self.interrupted(format!("download interrupted: {e}")))?
        {
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| local(format!("spool file: {e}")))?;
        }
        file.flush()
            .await
            .map_err(|e| local(format!("spool file: {e}")))?;
        let opened = Opened {
            body: Body::File(spool.path().to_path_buf()),
            sha256: Sha256::Known(hex::encode(hasher.finalize())),
        };
        self.spool = Some(spool);
        Ok(opened)
    }
}

/// S3 is unreachable or overloaded: counted, and the breaker says how long to wait.
pub(super) fn s3_outage(stage: Stage, reason: &str, breaker: &Breaker) -> Failure {
    crate::metrics::metrics()
        .s3_errors
        .get_or_create(&crate::metrics::Op {
            operation: stage.as_str().to_string(),
        })
        .inc();
    Failure::Unavailable {
        stage,
        reason: format!("S3 unavailable: {reason}"),
        wait: breaker.failure(),
    }
}

/// Which upload of a key a journaled S3 input is, parsed from its journal version
/// (`daemon::sqs_intake::object_version`): HEAD and GET ask for exactly it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pin {
    pub version_id: Option<String>,
    pub etag: Option<String>,
    /// Orders the uploads of one key (compared as `sequencer_order` does).
    pub sequencer: Option<String>,
}

impl Pin {
    pub fn parse(version: &str) -> Pin {
        let (id, sequencer) = match version.split_once("@seq:") {
            Some((id, s)) => (id, Some(s.to_string())),
            None => (version, version.strip_prefix("seq:").map(str::to_string)),
        };
        Pin {
            version_id: id.strip_prefix("v:").map(str::to_string),
            etag: id.strip_prefix("etag:").map(str::to_string),
            sequencer,
        }
    }

    /// `If-Match` for an unversioned object: the ETag, quoted as S3 sends it.
    fn if_match(&self) -> Option<String> {
        match (&self.version_id, &self.etag) {
            (None, Some(e)) => Some(format!("\"{e}\"")),
            _ => None,
        }
    }
}

/// The content's sha256 in hex, from a HEAD's SHA-256 checksum when it covers the whole
/// object. A multipart upload's composite checksum ("…-N", type COMPOSITE) is a checksum of
/// the parts' checksums, not of the content.
fn full_object_sha256(h: &aws_sdk_s3::operation::head_object::HeadObjectOutput) -> Option<String> {
    use base64::Engine;
    if h.checksum_type() == Some(&aws_sdk_s3::types::ChecksumType::Composite) {
        return None;
    }
    let value = h.checksum_sha256().filter(|v| !v.contains('-'))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    (bytes.len() == 32).then(|| hex::encode(bytes))
}

/// Whether S3 answered 412: the object is no longer the upload asked for.
fn changed<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
}

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

impl Input for S3Object<'_> {
    fn name(&self) -> &str {
        &self.uri
    }

    async fn admit(&mut self) -> Result<(), Failure> {
        if let Err(wait) = self.breaker.admit() {
            // S3 was down a moment ago: do not call it, and do not count an attempt.
            return Err(Failure::Deferred {
                reason: "waiting for S3 to become reachable again".into(),
                wait,
            });
        }
        if let Some(why) = unsafe_key(self.key) {
            return Err(Failure::permanent(
                Stage::Validate,
                format!("{}: {why}", self.uri),
            ));
        }
        let head = self
            .s3
            .head_object()
            .bucket(self.bucket)
            .key(self.key)
            .set_version_id(self.pin.version_id.clone())
            .set_if_match(self.pin.if_match())
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await;
        let size = match head {
            Ok(h) => {
                self.checksum_sha256 = full_object_sha256(&h);
                h.content_length().unwrap_or(0).max(0) as u64
            }
            Err(e) if changed(&e) => {
                self.breaker.success();
                return Err(self.replaced());
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                self.breaker.success();
                return Err(Failure::permanent(
                    Stage::Fetch,
                    format!(
                        "{} does not exist (deleted before it was processed?)",
                        self.uri
                    ),
                ));
            }
            Err(e) => {
                return Err(self.failed(
                    Stage::Fetch,
                    is_outage(&e),
                    format!("{}: {}", self.uri, describe(&e)),
                ))
            }
        };
        self.breaker.success();
        if size > self.max_size {
            return Err(Failure::permanent(
                Stage::Validate,
                format!(
                    "{} is {size} bytes, over max_object_size {} (raise it in [[s3]] if this is expected)",
                    self.uri, self.max_size
                ),
            ));
        }
        Ok(())
    }

    async fn sha256_first(&mut self, spool_dir: &Path) -> Result<Option<String>, Failure> {
        if let Some(sha) = &self.checksum_sha256 {
            return Ok(Some(sha.clone()));
        }
        if self.streamed() {
            // Known only once the object has been read: hashing it first would read it twice.
            return Ok(None);
        }
        let Opened {
            sha256: Sha256::Known(sha),
            ..
        } = self.spool(spool_dir).await?
        else {
            return Ok(None);
        };
        self.spooled = Some(sha.clone());
        Ok(Some(sha))
    }

    async fn open(&mut self, spool_dir: &Path) -> Result<Opened, Failure> {
        if let (Some(sha), Some(spool)) = (self.spooled.take(), &self.spool) {
            return Ok(Opened {
                body: Body::File(spool.path().to_path_buf()),
                sha256: Sha256::Known(sha),
            });
        }
        let extension = self.extension();
        if !self.streamed() {
            return self.spool(spool_dir).await;
        }
        let body = self.get().await?;
        let (reader, download, hashed) = crate::sources::s3_body::stream(body);
        self.download = Some(download);
        Ok(Opened {
            body: Body::Stream {
                reader: Box::new(reader),
                extension,
            },
            sha256: Sha256::WhenRead(hashed),
        })
    }

    async fn close(&mut self, decode_failed: bool) -> Result<(), Failure> {
        self.spool = None;
        let Some(mut download) = self.download.take() else {
            return Ok(());
        };
        let verdict = if decode_failed {
            // A broken download looks like bad audio to the decoder: ask the download first.
            match tokio::time::timeout(DOWNLOAD_VERDICT, &mut download).await {
                Ok(v) => v,
                Err(_) => {
                    // Still reading (for the hash): the bytes were fine so far, the audio not.
                    download.abort();
                    return Ok(());
                }
            }
        } else {
            download.await
        };
        match verdict {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(why)) => Err(self.interrupted(why.to_string())),
            Err(e) => Err(Failure::transient(
                Stage::Fetch,
                format!("the download ended abnormally: {e}"),
            )),
        }
    }

    async fn finish(&self) -> Result<Finished, FinishError> {
        let s3 = self.s3;
        let failed = |reason: String| FinishError::S3 {
            uri: self.uri.clone(),
            reason,
        };
        if self.after != S3After::Keep && !self.still_current().await? {
            return Ok(Some((
                "left",
                "the object is no longer the upload transcribed (a newer one replaced it); left as it is".into(),
            )));
        }
        match self.after {
            S3After::Keep => Ok(None),
            S3After::Delete => s3
                .delete_object()
                .bucket(self.bucket)
                .key(self.key)
                .send()
                .await
                .map(|_| {
                    Some((
                        "removed",
                        "the input object, as after = \"delete\" asks".into(),
                    ))
                })
                .map_err(|e| failed(describe(&e))),
            S3After::Tag => {
                let tagging = aws_sdk_s3::types::Tag::builder()
                    .key("hotfolderd")
                    .value("done")
                    .build()
                    .and_then(|t| aws_sdk_s3::types::Tagging::builder().tag_set(t).build())
                    .map_err(|e| failed(e.to_string()))?;
                s3.put_object_tagging()
                    .bucket(self.bucket)
                    .key(self.key)
                    .set_version_id(self.pin.version_id.clone())
                    .tagging(tagging)
                    .send()
                    .await
                    .map(|_| Some(("tagged", "hotfolderd=done".into())))
                    .map_err(|e| failed(describe(&e)))
            }
        }
    }

    async fn reject(&self, stage: Stage, reason: &str, _attempts: i64) -> State {
        tracing::warn!(uri = %self.uri, %stage, %reason, "failed");
        State::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_from_journal_versions() {
        let p = Pin::parse("v:3HL4kqtJ@seq:0055AED6");
        assert_eq!(p.version_id.as_deref(), Some("3HL4kqtJ"));
        assert_eq!((p.etag, p.sequencer.as_deref()), (None, Some("0055AED6")));
        let p = Pin::parse("etag:b194@seq:0A");
        assert_eq!(p.if_match().as_deref(), Some("\"b194\""));
        assert_eq!(p.sequencer.as_deref(), Some("0A"));
        assert_eq!(Pin::parse("etag:b194").sequencer, None);
        assert_eq!(Pin::parse("seq:0B").sequencer.as_deref(), Some("0B"));
        assert_eq!(Pin::parse("size:10"), Pin::default());
    }

    #[test]
    fn unsafe_keys_are_named() {
        assert!(unsafe_key("in/../etc/passwd.wav").is_some());
        assert!(unsafe_key("in/./a.wav").is_some());
        assert!(unsafe_key("in/dir/").is_some());
        assert!(unsafe_key("in/a\nb.wav").is_some());
        assert_eq!(unsafe_key("in/café + co/a..b.wav"), None);
    }
}
