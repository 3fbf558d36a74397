//! `v0` signatures: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`. Slack
//! signs its requests this way, and accessbot signs its webhooks the same way.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub type HmacSha256 = Hmac<Sha256>;

pub fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m =
        <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    m
}

/// The signature of `body` at `timestamp` (what Slack sends as `X-Slack-Signature`).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!("v0={}", hex::encode(mac(secret.as_bytes(), timestamp, body).finalize().into_bytes()))
}
