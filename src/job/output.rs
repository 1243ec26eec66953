//! Where an input's outputs go. A local folder and an S3 prefix implement [`Output`].

use std::future::Future;

use super::failure::Failure;
use crate::pipeline::render::Format;

pub trait Output: Send + Sync {
    /// Writes the output in `format` so that it appears whole or not at all; returns where
    /// it went (a path, or an `s3://` URI) for the journal.
    fn put(
        &self,
        format: Format,
        bytes: Vec<u8>,
        input_sha256: &str,
    ) -> impl Future<Output = Result<String, Failure>> + Send;

    /// Makes this input's outputs in `formats` from those of an earlier input with the same
    /// content (`twin`), naming `input` as their source. `None` when that is not possible
    /// here (some of the twin's outputs are gone, or live elsewhere); then the input is
    /// transcribed. Outputs that no longer record `sha256` (overwritten since) are not
    /// reused.
    fn reuse(
        &self,
        formats: &[Format],
        twin: &[String],
        input: &str,
        sha256: &str,
    ) -> impl Future<Output = Option<Result<Vec<String>, Failure>>> + Send;
}
