//! Where an input's outputs go. A local folder and an S3 prefix implement [`Output`].

use std::future::Future;

use super::failure::Failure;
use crate::pipeline::render::Format;

/// What an output is written for.
pub struct Placed<'a> {
    pub input_sha256: &'a str,
    /// The transcript's language (English when translated).
    pub language: &'a str,
}

pub trait Output: Send + Sync {
    /// Writes the output in `format` so that it appears whole or not at all; returns where
    /// it went (a path, or an `s3://` URI) for the journal.
    fn put(
        &self,
        format: Format,
        bytes: Vec<u8>,
        placed: &Placed<'_>,
    ) -> impl Future<Output = Result<String, Failure>> + Send;

    /// Why this output writes nothing for a transcript in `language`, if it does not (media
    /// that already has subtitles in it). Asked before decoding when the language is known
    /// from the options, and again once the transcript is.
    fn declines(&self, _language: &str) -> Option<String> {
        None
    }

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

/// The twin's output in `format`, if it has one (a path or an `s3://` URI).
pub(super) fn twin_output(twin: &[String], format: Format) -> Option<&str> {
    let by_stem = crate::pipeline::render::common_stem(twin).and_then(|stem| {
        let wanted = format!("{stem}.{}", format.extension());
        twin.iter().map(String::as_str).find(|o| *o == wanted)
    });
    // A lone output is read under its longest extension (a json-full-only twin).
    by_stem.or_else(|| match twin {
        [only] if Format::of_path(only) == Some(format) => Some(only.as_str()),
        _ => None,
    })
}

/// A twin's output made this input's: the json names `input` as its source and the twin's
/// source as `deduplicated_from`. `None` when the json no longer records `sha256`
/// (overwritten since) or cannot be read.
pub(super) fn as_reused(
    format: Format,
    bytes: Vec<u8>,
    input: &str,
    sha256: &str,
) -> Option<Vec<u8>> {
    if format != Format::Json {
        return Some(bytes);
    }
    let mut doc = serde_json::from_slice::<serde_json::Value>(&bytes).ok()?;
    if doc["sha256"].as_str() != Some(sha256) {
        return None;
    }
    doc["deduplicated_from"] = doc["source"].clone();
    doc["source"] = serde_json::Value::String(input.to_string());
    let mut v = serde_json::to_vec_pretty(&doc).ok()?;
    v.push(b'\n');
    Some(v)
}
