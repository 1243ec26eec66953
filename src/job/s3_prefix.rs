//! Outputs to an S3 prefix: each written with a conditional put (`sinks::s3::put_once`), so
//! of two daemons finishing the same input only one write lands. Reuse copies an earlier
//! twin's outputs (from S3 or a local folder) through the same put.

use super::failure::{Failure, Stage};
use super::output::{as_reused, twin_output, Output, Placed};
use super::s3_object::s3_outage;
use crate::aws::Breaker;
use crate::pipeline::render::Format;
use crate::sinks::s3::{put_once, OutputObject, Put, INPUT_SHA_META};

pub struct S3Prefix<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    /// The outputs' key without the format's extension.
    pub stem: String,
    pub multipart_threshold: u64,
    pub breaker: &'a Breaker,
    /// The input upload's place in its key's order: an older upload's job never replaces
    /// the outputs of a newer one.
    pub sequencer: Option<String>,
}

impl S3Prefix<'_> {
    pub fn key(&self, format: Format) -> String {
        format!("{}.{}", self.stem, format.extension())
    }

    /// A twin's output, in S3 (read with this client) or in a local folder. `None` when it
    /// cannot be read for any reason, or an S3 output no longer records `sha256` as its
    /// input's (a newer upload under the twin's key replaced it): the input is then
    /// transcribed instead.
    async fn read_twin(&self, from: &str, sha256: &str) -> Option<Vec<u8>> {
        let Some((bucket, key)) = from.strip_prefix("s3://").and_then(|r| r.split_once('/')) else {
            return tokio::fs::read(from).await.ok();
        };
        let resp = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        let made_from = resp.metadata().and_then(|m| m.get(INPUT_SHA_META));
        if made_from.map(String::as_str) != Some(sha256) {
            return None;
        }
        let body = resp.body.collect().await.ok()?;
        Some(body.into_bytes().to_vec())
    }
}

impl Output for S3Prefix<'_> {
    async fn put(
        &self,
        format: Format,
        bytes: Vec<u8>,
        placed: &Placed<'_>,
    ) -> Result<String, Failure> {
        self.write(format, bytes, placed.input_sha256).await
    }

    async fn reuse(
        &self,
        formats: &[Format],
        twin: &[String],
        input: &str,
        sha256: &str,
    ) -> Option<Result<Vec<String>, Failure>> {
        let mut planned = Vec::new();
        for &format in formats {
            let bytes = self.read_twin(twin_output(twin, format)?, sha256).await?;
            planned.push((format, as_reused(format, bytes, input, sha256)?));
        }
        let mut written = Vec::new();
        for (format, bytes) in planned {
            match self.write(format, bytes, sha256).await {
                Ok(uri) => written.push(uri),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(written))
    }
}

impl S3Prefix<'_> {
    /// One output, put once.
    async fn write(
        &self,
        format: Format,
        bytes: Vec<u8>,
        input_sha256: &str,
    ) -> Result<String, Failure> {
        let key = self.key(format);
        let target = OutputObject {
            bucket: self.bucket,
            key: &key,
            format,
            input_sha256,
            multipart_threshold: self.multipart_threshold,
            sequencer: self.sequencer.as_deref(),
        };
        match put_once(self.s3, &target, bytes).await {
            Ok(put) => {
                let uri = format!("s3://{}/{key}", self.bucket);
                if put == Put::AlreadyThere {
                    // A repeated delivery (SQS is at-least-once) ran on two daemons at once.
                    tracing::info!(%uri, "the same result is already there (another daemon made it from the same input); not written again");
                }
                Ok(uri)
            }
            Err(e) if e.outage => Err(s3_outage(Stage::Write, &e.reason, self.breaker)),
            Err(e) => Err(Failure::transient(Stage::Write, e.reason)),
        }
    }
}
