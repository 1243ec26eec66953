//! Files to S3 that survive failures: a file of `MULTIPART_FROM` bytes or more goes up as a
//! multipart upload whose id is kept in a state file before any part is sent, with each
//! part's etag added as it is sent. When an attempt fails (an outage, a crash, `kill -9`),
//! the next one asks S3 which parts it already has (`ListParts`; where a store's answer
//! cannot be read, the state file's record) and sends only the others, so a large run is
//! never sent again whole. A
//! failed attempt is not aborted: its parts are what the next attempt resumes from. A state
//! that no longer matches the file (size or modification time) or an upload S3 no longer
//! knows (aborted, or removed by a lifecycle rule) starts over. Parts are read from disk one
//! at a time: memory stays at one part whatever the file's size.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde::{Deserialize, Serialize};

use super::Failed;
use crate::sinks::local::write_atomic;

/// Files this large or larger go up in parts.
pub const MULTIPART_FROM: u64 = 16 << 20;
/// Size of each part but the last (S3: at least 5 MiB), for files up to 10,000 of them.
pub const PART_SIZE: u64 = 8 << 20;
/// The most parts S3 takes in one upload.
const MAX_PARTS: u64 = 10_000;

/// The part size for a file of `size` bytes: 8 MiB, or whole MiBs enough to stay within
/// 10,000 parts.
fn part_size(size: u64) -> u64 {
    let mib = 1 << 20;
    PART_SIZE.max(size.div_ceil(MAX_PARTS).div_ceil(mib) * mib)
}

/// An upload in progress, as the state file keeps it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct State {
    bucket: String,
    key: String,
    upload_id: String,
    size: u64,
    modified_ns: u128,
    part_size: u64,
    /// Parts sent: number → (etag, size).
    #[serde(default)]
    sent: BTreeMap<i32, (String, u64)>,
}

/// How a file went up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub parts: u64,
    /// Parts an earlier attempt had already sent.
    pub resumed: u64,
}

/// Sends `file` to `bucket`/`key`, resuming the upload `state` (a file path) records.
pub async fn put_file(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    file: &Path,
    state: &Path,
) -> Result<Sent, Failed> {
    let at = format!("s3://{bucket}/{key}");
    let local = |what: &str, e: std::io::Error| -> Failed {
        format!("cannot {what} {}: {e}", file.display()).into()
    };
    let meta = std::fs::metadata(file).map_err(|e| local("read", e))?;
    let size = meta.len();
    if size < MULTIPART_FROM {
        let body = ByteStream::from_path(file)
            .await
            .map_err(|e| Failed::from(format!("cannot read {}: {e}", file.display())))?;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| Failed::call(&at, &e))?;
        return Ok(Sent {
            parts: 1,
            resumed: 0,
        });
    }
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let part = part_size(size);
    let wanted = |s: &State| {
        s.bucket == bucket
            && s.key == key
            && s.size == size
            && s.modified_ns == modified_ns
            && s.part_size == part
    };
    let kept = std::fs::read(state)
        .ok()
        .and_then(|b| serde_json::from_slice::<State>(&b).ok());
    // An upload of another version of the file: its parts are of no use.
    if let Some(old) = kept.as_ref().filter(|s| !wanted(s)) {
        abort(s3, old).await;
    }
    let mut have = BTreeMap::new();
    let mut upload = None;
    if let Some(s) = kept.filter(wanted) {
        match listed_parts(s3, &s).await {
            Ok(parts) => {
                have = parts;
                upload = Some(s);
            }
            Err(Listed::Gone) => {
                tracing::info!(%at, upload_id = %s.upload_id, "the unfinished upload is gone from S3; starting it again");
            }
            Err(Listed::Refused(why)) => {
                // No permission to list parts (s3:ListMultipartUploadParts): the record
                // has to do.
                tracing::debug!(%at, %why, "S3 does not list the upload's parts; resuming from the parts recorded as sent");
                have = s.sent.clone();
                upload = Some(s);
            }
            Err(Listed::Unreadable(why)) => {
                // Completing checks every part: a wrong record fails there and starts over.
                tracing::debug!(%at, %why, "S3's list of parts cannot be read; resuming from the parts recorded as sent");
                have = s.sent.clone();
                upload = Some(s);
            }
            Err(Listed::Failed(f)) => return Err(f),
        }
    }
    let mut upload = match upload {
        Some(u) => u,
        None => {
            let created = s3
                .create_multipart_upload()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| Failed::call(&at, &e))?;
            let upload_id = created
                .upload_id()
                .ok_or_else(|| Failed::from(format!("{at}: S3 returned no upload id")))?
                .to_string();
            let s = State {
                bucket: bucket.into(),
                key: key.into(),
                upload_id,
                size,
                modified_ns,
                part_size: part,
                sent: BTreeMap::new(),
            };
            if let Some(dir) = state.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Failed::from(format!("cannot create {}: {e}", dir.display())))?;
            }
            save(state, &s)?;
            s
        }
    };
    let count = size.div_ceil(part);
    let mut reader = std::fs::File::open(file).map_err(|e| local("open", e))?;
    let mut parts = Vec::with_capacity(count as usize);
    let mut resumed = 0;
    for number in 1..=count {
        let offset = (number - 1) * part;
        let len = part.min(size - offset);
        if let Some((etag, there)) = have.get(&(number as i32)) {
            if *there == len {
                resumed += 1;
                parts.push(completed(number, etag.clone()));
                continue;
            }
        }
        let mut chunk = vec![0; len as usize];
        reader
            .seek(SeekFrom::Start(offset))
            .and_then(|_| reader.read_exact(&mut chunk))
            .map_err(|e| local("read", e))?;
        let sent = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload.upload_id)
            .part_number(number as i32)
            .body(ByteStream::from(chunk))
            .send()
            .await
            .map_err(|e| Failed::call(&at, &e))?;
        let Some(etag) = sent.e_tag().map(str::to_string) else {
            return Err(Failed::from(format!(
                "{at}: S3 returned no etag for part {number}"
            )));
        };
        upload.sent.insert(number as i32, (etag.clone(), len));
        save(state, &upload)?;
        parts.push(completed(number, etag));
    }
    if resumed > 0 {
        tracing::info!(%at, parts = count, already_there = resumed, "multipart upload resumed: only the missing parts were sent");
    }
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload.upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await;
    if let Err(e) = done {
        let code = e
            .as_service_error()
            .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
            .map(str::to_string);
        match code.as_deref() {
            // A completion the SDK retried after it had landed: the object is there.
            Some("NoSuchUpload") if landed(s3, bucket, key, size).await => {}
            // Gone, or a part is not what was recorded: the next attempt starts over
            // rather than failing the same way for good.
            Some("NoSuchUpload" | "InvalidPart" | "InvalidPartOrder") => {
                abort(s3, &upload).await;
                let _ = std::fs::remove_file(state);
                return Err(Failed::call(&at, &e));
            }
            // Anything else (an outage, a permission): the parts stay for the next try.
            _ => return Err(Failed::call(&at, &e)),
        }
    }
    let _ = std::fs::remove_file(state);
    Ok(Sent {
        parts: count,
        resumed,
    })
}

/// Whether `key` holds an object of `size` bytes.
async fn landed(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, size: u64) -> bool {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok_and(|h| h.content_length() == Some(size as i64))
}

/// Gives up an upload (its parts would otherwise stay, billed, until a lifecycle rule).
async fn abort(s3: &aws_sdk_s3::Client, s: &State) {
    let aborted = s3
        .abort_multipart_upload()
        .bucket(&s.bucket)
        .key(&s.key)
        .upload_id(&s.upload_id)
        .send()
        .await;
    if let Err(e) = aborted {
        tracing::debug!(key = %s.key, upload_id = %s.upload_id, error = %super::describe(&e), "cannot abort an upload that is no longer needed");
    }
}

fn save(path: &Path, s: &State) -> Result<(), Failed> {
    let record = serde_json::to_vec(s).map_err(|e| Failed::from(e.to_string()))?;
    write_atomic(path, &record).map_err(|e| Failed::from(e.to_string()))
}

fn completed(number: u64, etag: String) -> CompletedPart {
    CompletedPart::builder()
        .part_number(number as i32)
        .e_tag(etag)
        .build()
}

enum Listed {
    /// S3 no longer knows the upload.
    Gone,
    /// An answer that cannot be read (some S3-compatible stores answer in another shape).
    Unreadable(String),
    /// Listing refused (a permission missing).
    Refused(String),
    Failed(Failed),
}

/// The parts S3 holds of an upload: number → (etag, size).
async fn listed_parts(
    s3: &aws_sdk_s3::Client,
    s: &State,
) -> Result<BTreeMap<i32, (String, u64)>, Listed> {
    let at = format!("s3://{}/{}", s.bucket, s.key);
    let mut out = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = s3
            .list_parts()
            .bucket(&s.bucket)
            .key(&s.key)
            .upload_id(&s.upload_id)
            .set_part_number_marker(marker.clone())
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    aws_sdk_s3::error::ProvideErrorMetadata::code(s) == Some("NoSuchUpload")
                }) =>
            {
                return Err(Listed::Gone)
            }
            Err(e) => {
                let f = Failed::call(&at, &e);
                return Err(match (f.outage, &e) {
                    (false, aws_sdk_s3::error::SdkError::ServiceError(s))
                        if aws_sdk_s3::error::ProvideErrorMetadata::code(s.err()).is_none() =>
                    {
                        Listed::Unreadable(f.reason)
                    }
                    (false, aws_sdk_s3::error::SdkError::ServiceError(_)) => {
                        Listed::Refused(f.reason)
                    }
                    _ => Listed::Failed(f),
                });
            }
        };
        for p in page.parts() {
            if let (Some(n), Some(etag)) = (p.part_number(), p.e_tag()) {
                out.insert(n, (etag.to_string(), p.size().unwrap_or(0).max(0) as u64));
            }
        }
        match (page.is_truncated(), page.next_part_number_marker()) {
            (Some(true), Some(next)) => marker = Some(next.to_string()),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_s3s_limit_whatever_the_size() {
        assert_eq!(part_size(64 << 20), PART_SIZE);
        assert_eq!(part_size(PART_SIZE * MAX_PARTS), PART_SIZE);
        let huge = 200u64 << 30;
        let p = part_size(huge);
        assert!(huge.div_ceil(p) <= MAX_PARTS, "{p}");
        assert_eq!(p % (1 << 20), 0);
    }
}
