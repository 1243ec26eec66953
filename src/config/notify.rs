//! `[[notify]]`: where to announce finished inputs and training runs (a webhook, an SQS
//! queue, an SNS topic), for which events and sources, and how hard to try.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration;

/// The events a target may subscribe to.
pub const EVENTS: &[&str] = &[
    "done",
    "failed",
    "quarantined",
    "cancelled",
    "training_started",
    "training_finished",
    "model_promoted",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    Webhook,
    Sqs,
    Sns,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub kind: Spanned<NotifyKind>,
    /// webhook: where to POST (https; plain http only to a loopback address).
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// webhook: a file holding the HMAC-SHA256 key that signs each body.
    #[serde(default)]
    pub secret_file: Option<Spanned<PathBuf>>,
    /// sqs: the queue to send the documents to.
    #[serde(default)]
    pub queue_url: Option<Spanned<String>>,
    /// sns: the topic to publish the documents to.
    #[serde(default)]
    pub topic_arn: Option<Spanned<String>>,
    /// Path-style addressing for presigned S3 links and an S3-compatible endpoint.
    #[serde(default)]
    pub force_path_style: bool,
    pub events: Spanned<Vec<String>>,
    /// `[[watch]]` paths and/or `[[s3]]` queue URLs; absent: every source.
    #[serde(default)]
    pub sources: Option<Spanned<Vec<String>>>,
    /// Each delivery attempt's limit.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Spanned<Duration>,
    /// Attempts before a notification is given up as undeliverable (then resend it with
    /// `hotfolderd notify resend`).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: Spanned<u32>,
    /// The longest wait between two attempts (the backoff doubles up to this).
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Spanned<Duration>,
    /// How long the presigned links to S3 outputs work (at most 7 days).
    #[serde(default = "default_link_expiry", deserialize_with = "duration")]
    pub link_expiry: Spanned<Duration>,
}

fn default_timeout() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(10))
}
fn default_max_attempts() -> Spanned<u32> {
    Spanned::new(0..0, 15)
}
fn default_max_backoff() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(600))
}
fn default_link_expiry() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(24 * 3600))
}

/// SigV4 presigned URLs cannot live longer.
const MAX_LINK_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

impl NotifyConfig {
    /// The target's name in the journal and in logs: its URL or queue URL.
    pub fn target(&self) -> String {
        let dest = match self.kind.get_ref() {
            NotifyKind::Webhook => self.url.as_ref(),
            NotifyKind::Sqs => self.queue_url.as_ref(),
            NotifyKind::Sns => self.topic_arn.as_ref(),
        };
        dest.map(|d| d.get_ref().clone()).unwrap_or_default()
    }

    /// Problems that parse but cannot work, as (span, message).
    pub fn problems(
        &self,
        i: usize,
        known_sources: &[String],
    ) -> Vec<(std::ops::Range<usize>, String)> {
        let mut out = Vec::new();
        let kind = self.kind.span();
        match self.kind.get_ref() {
            NotifyKind::Webhook => {
                match &self.url {
                    None => out.push((kind.clone(), format!("notify[{i}]: a webhook needs url"))),
                    Some(url) => {
                        if let Some(why) = webhook_url_problem(url.get_ref()) {
                            out.push((url.span(), format!("notify[{i}].url: {why}")));
                        }
                    }
                }
                if self.secret_file.is_none() {
                    out.push((
                        kind.clone(),
                        format!("notify[{i}]: a webhook needs secret_file (the key that signs each body, so receivers can trust it)"),
                    ));
                }
            }
            NotifyKind::Sqs => {
                if self.queue_url.is_none() {
                    out.push((kind.clone(), format!("notify[{i}]: sqs needs queue_url")));
                }
            }
            NotifyKind::Sns => {
                if !self
                    .topic_arn
                    .as_ref()
                    .is_some_and(|a| a.get_ref().starts_with("arn:"))
                {
                    out.push((
                        kind.clone(),
                        format!(
                            "notify[{i}]: sns needs topic_arn (arn:aws:sns:REGION:ACCOUNT:NAME)"
                        ),
                    ));
                }
            }
        }
        if self.events.get_ref().is_empty() {
            out.push((
                self.events.span(),
                format!("notify[{i}].events is empty: nothing would be sent"),
            ));
        }
        for e in self.events.get_ref() {
            if !EVENTS.contains(&e.as_str()) {
                out.push((
                    self.events.span(),
                    format!(
                        "notify[{i}].events: {e:?} is not one of {}",
                        EVENTS.join(", ")
                    ),
                ));
            }
        }
        for s in self.sources.iter().flat_map(|s| s.get_ref()) {
            if !known_sources.contains(s) {
                out.push((
                    self.sources.as_ref().map(|s| s.span()).unwrap_or_default(),
                    format!("notify[{i}].sources names {s:?}, which is neither a [[watch]] path nor an [[s3]] queue_url in this file"),
                ));
            }
        }
        if *self.max_attempts.get_ref() < 1 {
            out.push((
                self.max_attempts.span(),
                format!("notify[{i}].max_attempts must be at least 1"),
            ));
        }
        for (d, name) in [
            (&self.timeout, "timeout"),
            (&self.max_backoff, "max_backoff"),
        ] {
            if d.get_ref().is_zero() {
                out.push((d.span(), format!("notify[{i}].{name} must be more than 0")));
            }
        }
        if *self.link_expiry.get_ref() > MAX_LINK_EXPIRY || self.link_expiry.get_ref().is_zero() {
            out.push((
                self.link_expiry.span(),
                format!("notify[{i}].link_expiry must be more than 0 and at most 7d (S3's limit for presigned links)"),
            ));
        }
        out
    }
}

/// Why `url` cannot be a webhook: not http(s), or plain http to a machine other than this
/// one (the signature proves who sent a body, but not that nobody read it on the way).
/// What is wrong with a webhook (or callback) URL: https, or plain http only to loopback.
pub fn webhook_url_problem(url: &str) -> Option<String> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Some(format!(
                "{url:?} is plain http to another machine: use https"
            ));
        }
        rest
    } else {
        return Some(format!("{url:?} is not an http(s) URL"));
    };
    rest.split(['/', '?'])
        .next()
        .is_none_or(str::is_empty)
        .then(|| format!("{url:?} names no host"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_need_https_except_on_this_machine() {
        assert!(webhook_url_problem("https://example.org/hook").is_none());
        assert!(webhook_url_problem("http://127.0.0.1:8080/hook").is_none());
        assert!(webhook_url_problem("http://localhost/hook").is_none());
        assert!(webhook_url_problem("http://[::1]:9/h").is_none());
        assert!(webhook_url_problem("http://example.org/hook")
            .unwrap()
            .contains("use https"));
        assert!(webhook_url_problem("ftp://x/y").is_some());
        assert!(webhook_url_problem("https:///path").is_some());
    }
}
