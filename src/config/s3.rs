//! `[[s3]]`: an SQS queue that receives S3 event notifications, the bucket and prefix it
//! watches, and where results go. Credentials and region come only from the standard AWS
//! chain (environment, profile files, web identity, instance roles), never from this file.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{default_formats, duration};
use crate::pipeline::render::Format;

/// The longest SQS keeps a received message hidden (its visibility timeout, however often
/// it is extended, counts from the receive).
pub const SQS_MAX_HIDDEN: Duration = Duration::from_secs(12 * 3600);

/// What happens to the input object once its outputs are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum S3After {
    Keep,
    Delete,
    /// Tag it `hotfolderd=done`.
    Tag,
}

/// What happens to a message whose body is not an S3 event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Malformed {
    /// Journal it as failed (with the raw body) and delete it from the queue.
    Delete,
    /// Journal it and leave it: after `maxReceiveCount` the queue's redrive policy moves it
    /// to the dead-letter queue.
    Keep,
}

/// What happens to a message this source does not want: an event for another bucket, a key
/// outside `input_prefix`, or an event type it does not act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Foreign {
    /// Delete it (the queue is this source's alone).
    Delete,
    /// Leave it: it becomes visible again for its own consumer, or the queue's redrive
    /// policy moves it to the dead-letter queue.
    Keep,
}

/// What an `ObjectRemoved` event for an input does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRemoved {
    /// Nothing: the outputs stay (the message is deleted).
    Ignore,
    /// Delete the input's outputs, unless the input exists again by then.
    DeleteOutputs,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub queue_url: Spanned<String>,
    /// Events for other buckets are ignored (and logged).
    pub input_bucket: Spanned<String>,
    #[serde(default)]
    pub input_prefix: String,
    pub output_bucket: Spanned<String>,
    /// Outputs mirror the input key (less `input_prefix`) under this prefix.
    #[serde(default = "empty")]
    pub output_prefix: Spanned<String>,
    #[serde(default = "default_formats")]
    pub formats: Spanned<Vec<Format>>,
    #[serde(default = "default_after")]
    pub after: S3After,
    /// How long a received message stays hidden from other daemons; a running job's
    /// messages are extended by a heartbeat every third of it.
    #[serde(default = "default_visibility", deserialize_with = "duration")]
    pub visibility_timeout: Spanned<Duration>,
    /// Messages per receive call (SQS allows 1–10).
    #[serde(default = "default_max_messages")]
    pub max_messages: Spanned<i32>,
    /// Long-poll wait per receive call (SQS allows up to 20 s).
    #[serde(default = "default_wait_time", deserialize_with = "duration")]
    pub wait_time: Spanned<Duration>,
    /// Larger objects are failed without being downloaded: "2GiB", "500MB", or bytes.
    #[serde(default = "default_max_object_size", deserialize_with = "size")]
    pub max_object_size: Spanned<u64>,
    /// Outputs this large or larger are written as multipart uploads (8 MiB parts).
    #[serde(default = "default_multipart_threshold", deserialize_with = "size")]
    pub multipart_threshold: Spanned<u64>,
    /// Path-style addressing (`endpoint/bucket/key`), for S3-compatible stores and emulators.
    #[serde(default)]
    pub force_path_style: bool,
    #[serde(default = "default_malformed")]
    pub malformed: Malformed,
    /// `ObjectRemoved` events: "ignore" (the default) or "delete_outputs".
    #[serde(default = "default_on_removed")]
    pub on_removed: OnRemoved,
    #[serde(default = "default_foreign")]
    pub foreign: Foreign,
    /// A named profile (`[profiles.NAME]`) this queue's inputs decode with.
    #[serde(default)]
    pub profile: Option<Spanned<String>>,
    /// This queue's own overrides of `[asr]` (and of its profile).
    #[serde(default)]
    pub asr: Option<super::Profile>,
}

impl S3Config {
    /// Its profile resolved against `[asr]`; the queue's own `formats` win when set.
    pub fn resolved(&self, config: &super::Config) -> Result<super::Resolved, String> {
        let named = self.profile.as_ref().map(|p| p.get_ref().as_str());
        let mut r = config.resolve_profile(named, self.asr.as_ref())?;
        r.formats = super::own_formats(&self.formats).or(r.formats);
        Ok(r)
    }
}

fn empty() -> Spanned<String> {
    Spanned::new(0..0, String::new())
}
fn default_after() -> S3After {
    S3After::Keep
}
fn default_visibility() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(60))
}
fn default_max_messages() -> Spanned<i32> {
    Spanned::new(0..0, 10)
}
fn default_wait_time() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(20))
}
fn default_max_object_size() -> Spanned<u64> {
    Spanned::new(0..0, 4 << 30)
}
fn default_multipart_threshold() -> Spanned<u64> {
    Spanned::new(0..0, crate::sinks::s3::DEFAULT_MULTIPART_THRESHOLD)
}
fn default_foreign() -> Foreign {
    Foreign::Delete
}
fn default_on_removed() -> OnRemoved {
    OnRemoved::Ignore
}
fn default_malformed() -> Malformed {
    Malformed::Delete
}

/// Sizes as humans write them: "2GiB", "500MB", "1048576".
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like \"2GiB\" or \"500MB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        u => {
            return Err(format!(
                "unknown size unit {u:?} in {s:?} (use B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

pub(super) fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Spanned<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    let raw = Spanned::<Raw>::deserialize(d)?;
    let span = raw.span();
    match raw.into_inner() {
        Raw::Int(n) => Ok(Spanned::new(span, n)),
        Raw::Text(t) => parse_size(&t)
            .map(|n| Spanned::new(span, n))
            .map_err(serde::de::Error::custom),
    }
}

impl S3Config {
    /// Problems that parse but cannot work, as (span, message).
    pub fn problems(&self, i: usize) -> Vec<(std::ops::Range<usize>, String)> {
        let mut out = Vec::new();
        if self.queue_url.get_ref().trim().is_empty() {
            out.push((self.queue_url.span(), format!("s3[{i}].queue_url is empty")));
        }
        if !(1..=10).contains(self.max_messages.get_ref()) {
            out.push((
                self.max_messages.span(),
                format!("s3[{i}].max_messages must be 1 to 10 (an SQS limit)"),
            ));
        }
        if *self.wait_time.get_ref() > Duration::from_secs(20) {
            out.push((
                self.wait_time.span(),
                format!("s3[{i}].wait_time must be at most 20s (an SQS limit)"),
            ));
        }
        let vis = *self.visibility_timeout.get_ref();
        if vis < Duration::from_secs(10) || vis > SQS_MAX_HIDDEN {
            out.push((
                self.visibility_timeout.span(),
                format!("s3[{i}].visibility_timeout must be between 10s and 12h"),
            ));
        }
        if !(1..=5 << 30).contains(self.multipart_threshold.get_ref()) {
            out.push((
                self.multipart_threshold.span(),
                format!("s3[{i}].multipart_threshold must be between 1 byte and 5GiB (the largest single PUT S3 accepts)"),
            ));
        }
        if self.formats.get_ref().is_empty() {
            out.push((
                self.formats.span(),
                format!("s3[{i}].formats is empty: no outputs would be written"),
            ));
        }
        if self.after == S3After::Delete && self.on_removed == OnRemoved::DeleteOutputs {
            out.push((
                self.queue_url.span(),
                format!("s3[{i}] has after = \"delete\" with on_removed = \"delete_outputs\": the daemon's own deletion of each finished input would delete the transcripts it just wrote; use after = \"keep\" or \"tag\", or on_removed = \"ignore\""),
            ));
        }
        if self.output_bucket.get_ref() == self.input_bucket.get_ref()
            && self.output_prefix.get_ref().starts_with(&self.input_prefix)
        {
            out.push((
                self.output_prefix.span(),
                format!(
                    "s3[{i}].output_prefix {:?} is inside input_prefix {:?} of the same bucket: every output would trigger a new event",
                    self.output_prefix.get_ref(),
                    self.input_prefix
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("2 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
