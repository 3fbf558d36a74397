//! A small Slack Web API client. Sorts every failure into transient (retry)
//! or permanent, honouring HTTP 429 `Retry-After`.

use std::time::Duration;

use serde_json::Value;

use crate::config::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Transient { error: String, retry_after: Option<Duration>, rate_limited: bool },
    Permanent(String),
}

/// `ok:false` errors worth retrying; everything else is the caller's mistake.
const TRANSIENT: &[&str] =
    &["ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"];

#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl SlackClient {
    pub fn new(base: &str, token: Secret) -> SlackClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        SlackClient { http, base: base.trim_end_matches('/').to_string(), token }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A write method with a JSON body (`chat.postMessage`, `views.open`, …).
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ApiError> {
        let req = self.http.post(format!("{}/{method}", self.base)).bearer_auth(self.token.expose()).json(body);
        Self::finish(method, req.send().await).await
    }

    /// A read method with form parameters (`users.info`, `users.lookupByEmail`, …).
    pub async fn call_form(&self, method: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        let req = self.http.post(format!("{}/{method}", self.base)).bearer_auth(self.token.expose()).form(params);
        Self::finish(method, req.send().await).await
    }

    /// Posts to an interaction's `response_url` (no token: the URL is the credential).
    pub async fn respond(&self, url: &str, body: &Value) -> Result<(), ApiError> {
        let res = self.http.post(url).json(body).send().await;
        match res {
            Err(e) => {
                Err(ApiError::Transient { error: format!("response_url: {e}"), retry_after: None, rate_limited: false })
            }
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => Err(ApiError::Transient {
                error: format!("response_url: HTTP {}", r.status()),
                retry_after: retry_after(&r),
                rate_limited: r.status().as_u16() == 429,
            }),
            Ok(r) => Err(ApiError::Permanent(format!("response_url: HTTP {}", r.status()))),
        }
    }

    async fn finish(method: &str, res: Result<reqwest::Response, reqwest::Error>) -> Result<Value, ApiError> {
        let res = res.map_err(|e| ApiError::Transient {
            error: format!("{method}: {e}"),
            retry_after: None,
            rate_limited: false,
        })?;
        let status = res.status();
        if status.as_u16() == 429 {
            return Err(ApiError::Transient {
                error: format!("{method}: HTTP 429"),
                retry_after: retry_after(&res),
                rate_limited: true,
            });
        }
        if status.is_server_error() {
            return Err(ApiError::Transient {
                error: format!("{method}: HTTP {status}"),
                retry_after: None,
                rate_limited: false,
            });
        }
        if !status.is_success() {
            return Err(ApiError::Permanent(format!("{method}: HTTP {status}")));
        }
        let body: Value = res.json().await.map_err(|e| ApiError::Transient {
            error: format!("{method}: unreadable response: {e}"),
            retry_after: None,
            rate_limited: false,
        })?;
        if body.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(body);
        }
        let error = body.get("error").and_then(Value::as_str).unwrap_or("unknown_error").to_string();
        if TRANSIENT.contains(&error.as_str()) {
            Err(ApiError::Transient {
                error: format!("{method}: {error}"),
                retry_after: None,
                rate_limited: error == "ratelimited",
            })
        } else {
            Err(ApiError::Permanent(format!("{method}: {error}")))
        }
    }
}

fn retry_after(res: &reqwest::Response) -> Option<Duration> {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
