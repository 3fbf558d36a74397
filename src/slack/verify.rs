//! Slack request signatures: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
//! Checked on the raw bytes, in constant time, before anything is parsed.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::Mac;

use crate::state::AppState;
use crate::workflow::ports::{Store, StoreError};
use crate::workflow::{Actor, Party, Source};

/// Requests older or newer than this are refused (replay protection).
pub const MAX_SKEW_SECS: i64 = 5 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    MissingHeaders,
    BadTimestamp,
    Stale,
    BadSignature,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::MissingHeaders => "missing X-Slack-Signature or X-Slack-Request-Timestamp",
            Rejection::BadTimestamp => "malformed X-Slack-Request-Timestamp",
            Rejection::Stale => "timestamp more than 5 minutes from now",
            Rejection::BadSignature => "signature mismatch",
        }
    }
}

use crate::signing::mac;
pub use crate::signing::sign;

/// Verifies a signature; `now` is Unix seconds.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Rejection> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Rejection::MissingHeaders);
    };
    let ts: i64 = timestamp.trim().parse().map_err(|_| Rejection::BadTimestamp)?;
    if now.abs_diff(ts) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(Rejection::Stale);
    }
    let hex_sig = signature.strip_prefix("v0=").ok_or(Rejection::BadSignature)?;
    let raw = hex::decode(hex_sig).map_err(|_| Rejection::BadSignature)?;
    mac(secret.as_bytes(), timestamp, body).verify_slice(&raw).map_err(|_| Rejection::BadSignature)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// At most `limit` events per minute (per process).
pub struct MinuteBudget {
    limit: u64,
    state: std::sync::Mutex<(i64, u64)>,
}

impl MinuteBudget {
    pub const fn new(limit: u64) -> MinuteBudget {
        MinuteBudget { limit, state: std::sync::Mutex::new((0, 0)) }
    }

    /// Whether one more event fits in the minute of `now` (Unix seconds).
    pub fn allow(&self, now: i64) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let minute = now.div_euclid(60);
        if s.0 != minute {
            *s = (minute, 0);
        }
        s.1 += 1;
        s.1 <= self.limit
    }
}

/// Signature rejections written to the system log per minute; the rest are counted in metrics.
static BLOCKED_LOG_BUDGET: MinuteBudget = MinuteBudget::new(600);

/// How long past its window a used signature is remembered (clock skew between replicas).
pub const REPLAY_MARGIN_SECS: i64 = 60;

/// A request body whose Slack signature checked out.
pub struct SignedBody {
    pub body: Bytes,
    pub retry_num: Option<u32>,
    /// The verified `X-Slack-Signature`: unique per request, so it names the request.
    pub signature: String,
    /// The verified `X-Slack-Request-Timestamp`, Unix seconds.
    pub timestamp: i64,
}

impl SignedBody {
    /// Claims this request: false when it was already handled (a replay).
    pub async fn first_use(&self, store: &dyn Store) -> Result<bool, StoreError> {
        let now = chrono::Utc::now();
        let until = self.timestamp.saturating_add(MAX_SKEW_SECS + REPLAY_MARGIN_SECS);
        let expires = chrono::DateTime::from_timestamp(until, 0).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        store.first_use(&self.signature, expires, now).await
    }
}

/// How a command with an effect knows it runs once.
pub enum Claim<'a> {
    /// Over HTTP: the request's verified signature, claimed when the command needs it.
    Signature(&'a SignedBody),
    /// The transport claimed the delivery already (Socket Mode claims every `envelope_id`).
    Held,
}

impl Claim<'_> {
    /// False when this delivery was already handled (a replay).
    pub async fn first_use(&self, store: &dyn Store) -> Result<bool, StoreError> {
        match self {
            Claim::Signature(signed) => signed.first_use(store).await,
            Claim::Held => Ok(true),
        }
    }
}

impl FromRequest<AppState> for SignedBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let path = req.uri().path().to_string();
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        let now = chrono::Utc::now().timestamp();
        let (timestamp, signature) =
            (header(&headers, "x-slack-request-timestamp"), header(&headers, "x-slack-signature"));
        if let Err(r) = verify(state.slack.signing_secret.expose(), timestamp, signature, &body, now) {
            return Err(reject(state, &path, r, now).await);
        }
        // Both checked by `verify`: present, and the timestamp a number.
        let timestamp = timestamp.and_then(|t| t.trim().parse().ok()).unwrap_or(now);
        let signature = signature.unwrap_or_default().to_string();
        let retry_num = header(&headers, "x-slack-retry-num").and_then(|v| v.parse().ok());
        Ok(SignedBody { body, retry_num, signature, timestamp })
    }
}

/// Logs (within budget) and answers a request whose signature did not check out.
async fn reject(state: &AppState, path: &str, r: Rejection, now: i64) -> Response {
    state.metrics.signature_rejected();
    tracing::warn!(%path, reason = r.reason(), "slack: request signature rejected");
    // A flood of forged requests must not flood the system log: past the budget they are only counted.
    if BLOCKED_LOG_BUDGET.allow(now) {
        let actor = Actor::user(Party::new("unknown", None), Source::Slack);
        if let Err(e) = state.workflow.refuse(&actor, &format!("POST {path}"), r.reason(), None).await {
            tracing::error!(error = %e, "could not log a blocked request");
        }
    }
    (StatusCode::UNAUTHORIZED, "invalid request signature").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_published_test_vector() {
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), EXPECTED);
        assert_eq!(verify(SECRET, Some(TS), Some(EXPECTED), BODY.as_bytes(), 1531420618 + 60), Ok(()));
    }

    #[test]
    fn the_blocked_log_budget_resets_each_minute() {
        let b = MinuteBudget::new(2);
        assert!(b.allow(60) && b.allow(61));
        assert!(!b.allow(119));
        assert!(b.allow(120));
    }

    #[test]
    fn rejections() {
        let now = 1531420618;
        let b = BODY.as_bytes();
        assert_eq!(verify(SECRET, None, Some(EXPECTED), b, now), Err(Rejection::MissingHeaders));
        assert_eq!(verify(SECRET, Some(TS), None, b, now), Err(Rejection::MissingHeaders));
        assert_eq!(verify(SECRET, Some("soon"), Some(EXPECTED), b, now), Err(Rejection::BadTimestamp));
        assert_eq!(verify(SECRET, Some(TS), Some(EXPECTED), b, now + 301), Err(Rejection::Stale));
        assert_eq!(verify(SECRET, Some(TS), Some(EXPECTED), b, now - 301), Err(Rejection::Stale));
        assert_eq!(verify("other", Some(TS), Some(EXPECTED), b, now), Err(Rejection::BadSignature));
        assert_eq!(verify(SECRET, Some(TS), Some("v0=zz"), b, now), Err(Rejection::BadSignature));
        assert_eq!(verify(SECRET, Some(TS), Some(&EXPECTED[3..]), b, now), Err(Rejection::BadSignature));
        let mut tampered = BODY.to_string();
        tampered.push('x');
        assert_eq!(verify(SECRET, Some(TS), Some(EXPECTED), tampered.as_bytes(), now), Err(Rejection::BadSignature));
    }
}
