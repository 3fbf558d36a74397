//! `X-Rate-Limit-Limit`, `-Remaining` and `-Reset` on every REST API response,
//! as Okta sends them, from a token bucket per token: [`API_BURST`] calls at
//! once, refilled at that many per minute, per replica. Over it: 429 `E0000047`
//! with `Retry-After` and `X-Rate-Limit-Reset` (epoch seconds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::token_id;
use super::error::{ApiError, Kind};
use crate::workflow::{retry_secs, RateLimiter};

/// Calls per token at once, and per [`API_PERIOD`].
pub const API_BURST: u32 = 600;
pub const API_PERIOD: Duration = Duration::from_secs(60);

/// The limiter shared by the API routes.
pub fn limiter() -> Arc<RateLimiter> {
    Arc::new(RateLimiter::new(API_BURST, API_PERIOD))
}

/// Callers are told apart by their token (hashed); calls without one share a bucket.
fn key(headers: &HeaderMap) -> String {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("SSWS ")).map(str::trim) {
        Some(t) if !t.is_empty() => token_id(t),
        _ => "anonymous".into(),
    }
}

/// Epoch seconds `wait` from now, rounded up.
pub fn reset_at(wait: Duration) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now + wait).as_secs() + u64::from(!wait.is_zero())
}

/// Sets a header unless the handler already did (the request-creation limit sets its own).
fn set(headers: &mut HeaderMap, name: &'static str, value: u64) {
    headers.entry(name).or_insert_with(|| HeaderValue::from(value));
}

pub async fn rate_headers(State(limiter): State<Arc<RateLimiter>>, req: Request, next: Next) -> Response {
    let taken = limiter.take_at(&key(req.headers()), Instant::now());
    let (mut res, remaining, reset) = match taken {
        Ok(left) => (next.run(req).await, left.remaining.min(API_BURST), reset_at(left.full_in)),
        Err(wait) => (too_many(wait), 0, reset_at(wait)),
    };
    let h = res.headers_mut();
    set(h, "x-rate-limit-limit", u64::from(API_BURST));
    set(h, "x-rate-limit-remaining", u64::from(remaining));
    set(h, "x-rate-limit-reset", reset);
    res
}

fn too_many(wait: Duration) -> Response {
    let secs = retry_secs(wait);
    let mut res = ApiError::new(Kind::RateLimit)
        .cause(
            format!("over {API_BURST} calls per minute with this token; try again in {secs} s"),
            "Authorization",
            "header",
        )
        .into_response();
    res.headers_mut().insert("retry-after", HeaderValue::from(secs));
    res
}
