//! Outputs to an S3 prefix: each written with a conditional put (`sinks::s3::put_once`), so
//! of two daemons finishing the same input only one write lands.

use super::failure::{Failure, Stage};
use super::output::Output;
use super::s3_object::s3_outage;
use crate::aws::Breaker;
use crate::pipeline::render::Format;
use crate::sinks::s3::{put_once, OutputObject};

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
}

impl Output for S3Prefix<'_> {
    async fn put(
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
            Ok(_) => Ok(format!("s3://{}/{key}", self.bucket)),
            Err(e) if e.outage => Err(s3_outage(Stage::Write, &e.reason, self.breaker)),
            Err(e) => Err(Failure::transient(Stage::Write, e.reason)),
        }
    }

    async fn reuse(
        &self,
        _formats: &[Format],
        _twin: &[String],
        _input: &str,
        _sha256: &str,
    ) -> Option<Result<Vec<String>, Failure>> {
        // The hash of an S3 input is known only once it has been read: no dedup yet.
        None
    }
}
