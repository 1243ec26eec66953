//! Webhook delivery: an HTTP POST of the JSON document, signed so that receivers can check
//! it came from this daemon unaltered.
//!
//! - `X-Hotfolderd-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>`
//! - `X-Hotfolderd-Delivery: <idempotency key>`: the same for every attempt of one
//!   notification, across restarts; receivers drop a key they have seen.
//! - `X-Hotfolderd-Event: done | failed | quarantined | cancelled | training_started | training_finished`

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::Sent;

/// The signature header's value for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length; this cannot fail.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// POSTs `body` and sorts the answer: 2xx delivered; 408, 429 and 5xx (and any network
/// error or timeout) retried; any other status refused for good.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    body: String,
    delivery: &str,
    event: &str,
    timeout: std::time::Duration,
) -> Sent {
    let answer = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Hotfolderd-Signature", signature(secret, body.as_bytes()))
        .header("X-Hotfolderd-Delivery", delivery)
        .header("X-Hotfolderd-Event", event)
        .body(body)
        .send()
        .await;
    match answer {
        Err(e) => Sent::Retry(describe(&e)),
        Ok(r) => {
            let status = r.status();
            if status.is_success() {
                Sent::Delivered
            } else if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
                Sent::Retry(format!("HTTP {status}"))
            } else {
                Sent::Refused(format!("HTTP {status}"))
            }
        }
    }
}

/// An error with its causes ("error sending request: connection refused").
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
