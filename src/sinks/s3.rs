//! Outputs to S3, exactly once across any number of daemons: each object is written with
//! `If-None-Match: *`, so of two daemons finishing the same input only one write lands. The
//! loser finds the object already there; when it records the same input (its
//! `hotfolderd-input-sha256` metadata matches) that is success. An output left by an earlier
//! version of the input is replaced with `If-Match` on the etag it had when checked.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use crate::aws::{describe, is_outage, precondition_failed, Failed};
use crate::pipeline::render::Format;

/// Metadata key carrying the sha256 of the input an output was made from.
pub const INPUT_SHA_META: &str = "hotfolderd-input-sha256";
/// Metadata key carrying the S3 event sequencer of the input upload an output was made from.
pub const INPUT_SEQUENCER_META: &str = "hotfolderd-input-sequencer";

/// How a put ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    Written,
    /// Another daemon already wrote the same result.
    AlreadyThere,
    /// The object holds the output of a newer upload of the input: left as it is.
    Newer,
}

pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json",
        Format::Srt => "application/x-subrip",
        Format::Vtt => "text/vtt; charset=utf-8",
        Format::Txt => "text/plain; charset=utf-8",
        Format::Lrc | Format::Rttm => "text/plain; charset=utf-8",
        Format::Csv => "text/csv; charset=utf-8",
        Format::JsonFull => "application/json",
    }
}

/// What an output records about its input: its sha256, and its upload's sequencer.
fn metadata(o: &OutputObject<'_>) -> Option<std::collections::HashMap<String, String>> {
    let mut m =
        std::collections::HashMap::from([(INPUT_SHA_META.to_string(), o.input_sha256.to_string())]);
    if let Some(s) = o.sequencer {
        m.insert(INPUT_SEQUENCER_META.to_string(), s.to_string());
    }
    Some(m)
}

/// Outputs at least this large by default go up in parts.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 << 20;
/// Part size of a multipart upload (S3 wants at least 5 MiB for all parts but the last;
/// 10,000 parts of 8 MiB allow outputs up to 78 GiB).
const PART_SIZE: usize = 8 << 20;

/// Where an output goes and what it was made from.
pub struct OutputObject<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub format: Format,
    pub input_sha256: &'a str,
    /// Bodies this large or larger are sent as a multipart upload.
    pub multipart_threshold: u64,
    /// The input upload's S3 event sequencer, when known.
    pub sequencer: Option<&'a str>,
}

/// S3's order of a key's event sequencers: hex strings, the shorter padded on the right
/// with zeros before comparing.
pub fn sequencer_order(a: &str, b: &str) -> std::cmp::Ordering {
    let width = a.len().max(b.len());
    let pad = |s: &str| format!("{:0<width$}", s.to_ascii_uppercase());
    pad(a).cmp(&pad(b))
}

/// The condition a write is made under.
#[derive(Clone)]
enum Condition {
    /// `If-None-Match: *`: only if there is no object yet.
    Absent,
    /// `If-Match`: only if the object is still the one with this etag.
    Etag(String),
}

/// Writes `bytes` to the object unless the same result is already there.
pub async fn put_once(
    s3: &aws_sdk_s3::Client,
    o: &OutputObject<'_>,
    bytes: Vec<u8>,
) -> Result<Put, Failed> {
    let (bucket, key) = (o.bucket, o.key);
    match write(s3, o, Condition::Absent, &bytes).await {
        Ok(()) => return Ok(Put::Written),
        Err(Failure::Precondition) => {}
        Err(Failure::Other(e)) => return Err(e),
    }
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| Failed {
            outage: is_outage(&e),
            reason: format!(
                "s3://{bucket}/{key} exists but cannot be checked: {}",
                describe(&e)
            ),
        })?;
    let theirs = head
        .metadata()
        .and_then(|m| m.get(INPUT_SHA_META))
        .map(String::as_str);
    if theirs == Some(o.input_sha256) && head.content_length().unwrap_or(0) > 0 {
        return Ok(Put::AlreadyThere);
    }
    let their_sequencer = head
        .metadata()
        .and_then(|m| m.get(INPUT_SEQUENCER_META))
        .map(String::as_str);
    if let (Some(theirs), Some(ours)) = (their_sequencer, o.sequencer) {
        if sequencer_order(theirs, ours) == std::cmp::Ordering::Greater {
            tracing::info!(
                bucket,
                key,
                ours,
                theirs,
                "the output of a newer upload of the input is there; left as it is"
            );
            return Ok(Put::Newer);
        }
    }
    // An output of an earlier version of this input (or of something else): replace it,
    // but only if nobody changed it since we looked.
    let etag = head.e_tag().unwrap_or_default().to_string();
    match write(s3, o, Condition::Etag(etag), &bytes).await {
        Ok(()) => Ok(Put::Written),
        Err(Failure::Precondition) => Err(Failed {
            outage: false,
            reason: format!("s3://{bucket}/{key} changed while being replaced"),
        }),
        Err(Failure::Other(e)) => Err(e),
    }
}

enum Failure {
    /// The write's condition did not hold.
    Precondition,
    Other(Failed),
}

fn failure<E>(o: &OutputObject<'_>, e: &aws_sdk_s3::error::SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if e.as_service_error().is_some_and(precondition_failed) {
        return Failure::Precondition;
    }
    Failure::Other(Failed::call(&format!("s3://{}/{}", o.bucket, o.key), e))
}

async fn write(
    s3: &aws_sdk_s3::Client,
    o: &OutputObject<'_>,
    condition: Condition,
    bytes: &[u8],
) -> Result<(), Failure> {
    if bytes.len() as u64 >= o.multipart_threshold {
        return write_in_parts(s3, o, condition, bytes).await;
    }
    let req = s3
        .put_object()
        .bucket(o.bucket)
        .key(o.key)
        .content_type(content_type(o.format))
        .set_metadata(metadata(o))
        .body(ByteStream::from(bytes.to_vec()));
    let req = match condition {
        Condition::Absent => req.if_none_match("*"),
        Condition::Etag(etag) => req.if_match(etag),
    };
    req.send().await.map(|_| ()).map_err(|e| failure(o, &e))
}

/// A multipart upload whose completion carries the condition, so the object appears whole
/// or not at all. An upload that fails is aborted, leaving no parts behind to pay for.
async fn write_in_parts(
    s3: &aws_sdk_s3::Client,
    o: &OutputObject<'_>,
    condition: Condition,
    bytes: &[u8],
) -> Result<(), Failure> {
    let created = s3
        .create_multipart_upload()
        .bucket(o.bucket)
        .key(o.key)
        .content_type(content_type(o.format))
        .set_metadata(metadata(o))
        .send()
        .await
        .map_err(|e| failure(o, &e))?;
    let Some(upload_id) = created.upload_id() else {
        return Err(Failure::Other(Failed {
            outage: false,
            reason: format!(
                "s3://{}/{}: CreateMultipartUpload returned no upload id",
                o.bucket, o.key
            ),
        }));
    };
    let result = upload_parts(s3, o, upload_id, condition, bytes).await;
    if result.is_err() {
        let aborted = s3
            .abort_multipart_upload()
            .bucket(o.bucket)
            .key(o.key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(bucket = o.bucket, key = o.key, upload_id, error = %describe(&e), "cannot abort a failed multipart upload; a bucket lifecycle rule for incomplete uploads will remove its parts");
        }
    }
    result
}

async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    o: &OutputObject<'_>,
    upload_id: &str,
    condition: Condition,
    bytes: &[u8],
) -> Result<(), Failure> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let mut parts = Vec::new();
    for (i, chunk) in bytes.chunks(PART_SIZE).enumerate() {
        let number = i as i32 + 1;
        let uploaded = s3
            .upload_part()
            .bucket(o.bucket)
            .key(o.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| failure(o, &e))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_string))
                .build(),
        );
    }
    let req = s3
        .complete_multipart_upload()
        .bucket(o.bucket)
        .key(o.key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        );
    let req = match condition {
        Condition::Absent => req.if_none_match("*"),
        Condition::Etag(etag) => req.if_match(etag),
    };
    req.send().await.map(|_| ()).map_err(|e| failure(o, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn sequencers_compare_padded_on_the_right() {
        assert_eq!(
            sequencer_order("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
            Ordering::Less
        );
        // Shorter: padded with zeros, so "0A" is "0A00".
        assert_eq!(sequencer_order("0A", "0A00"), Ordering::Equal);
        assert_eq!(sequencer_order("0B", "0A99"), Ordering::Greater);
        assert_eq!(sequencer_order("0a", "0A"), Ordering::Equal);
    }
}
