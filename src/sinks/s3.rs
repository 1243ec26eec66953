//! Outputs to S3, exactly once across any number of daemons: each object is written with
//! `If-None-Match: *`, so of two daemons finishing the same input only one write lands. The
//! loser finds the object already there; when it records the same input (its
//! `hotfolderd-input-sha256` metadata matches) that is success. An output left by an earlier
//! version of the input is replaced with `If-Match` on the etag it had when checked.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use crate::aws::{describe, is_outage};
use crate::pipeline::render::Format;

/// Metadata key carrying the sha256 of the input an output was made from.
pub const INPUT_SHA_META: &str = "hotfolderd-input-sha256";

/// A failed S3 call: `outage` when the service was unreachable or overloaded (wait and
/// retry without blaming the input), otherwise an answer about this request.
#[derive(Debug)]
pub struct S3Error {
    pub outage: bool,
    pub reason: String,
}

/// How a put ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    Written,
    /// Another daemon already wrote the same result.
    AlreadyThere,
}

pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json",
        Format::Srt => "application/x-subrip",
        Format::Vtt => "text/vtt; charset=utf-8",
        Format::Txt => "text/plain; charset=utf-8",
    }
}

fn precondition_failed<E: ProvideErrorMetadata>(e: &E) -> bool {
    matches!(
        e.code(),
        Some("PreconditionFailed") | Some("ConditionalRequestConflict")
    )
}

/// Writes `bytes` to `bucket/key` unless the same result is already there.
pub async fn put_once(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    format: Format,
    bytes: Vec<u8>,
    input_sha256: &str,
) -> Result<Put, S3Error> {
    let put = |if_match: Option<String>, bytes: Vec<u8>| {
        let mut req = s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type(format))
            .metadata(INPUT_SHA_META, input_sha256)
            .body(ByteStream::from(bytes));
        req = match if_match {
            None => req.if_none_match("*"),
            Some(etag) => req.if_match(etag),
        };
        req.send()
    };
    match put(None, bytes.clone()).await {
        Ok(_) => return Ok(Put::Written),
        Err(e) if e.as_service_error().is_some_and(precondition_failed) => {}
        Err(e) => {
            return Err(S3Error {
                outage: is_outage(&e),
                reason: format!("s3://{bucket}/{key}: {}", describe(&e)),
            })
        }
    }
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| S3Error {
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
    if theirs == Some(input_sha256) && head.content_length().unwrap_or(0) > 0 {
        return Ok(Put::AlreadyThere);
    }
    // An output of an earlier version of this input (or of something else): replace it,
    // but only if nobody changed it since we looked.
    let etag = head.e_tag().unwrap_or_default().to_string();
    match put(Some(etag), bytes).await {
        Ok(_) => Ok(Put::Written),
        Err(e) => Err(S3Error {
            outage: is_outage(&e),
            reason: format!(
                "s3://{bucket}/{key} changed while being replaced: {}",
                describe(&e)
            ),
        }),
    }
}
