//! A small Slack Web API client. Sorts every failure into transient (retry)
//! or permanent, honouring HTTP 429 `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    pacing: Arc<Pacing>,
}

/// How long after its last 429 a method's calls go one at a time.
const SERIAL_AFTER_429: Duration = Duration::from_secs(60);

/// The longest one paced call keeps its method's turn.
const TURN_MAX: Duration = Duration::from_secs(1);

/// Slack limits each method per workspace. Once a method answers 429, its calls
/// go out one at a time for a while, and none before its `Retry-After` is up:
/// when its budget runs out again, one call learns it, instead of every worker
/// that had a call in flight (or queued behind the one that learnt it).
#[derive(Default)]
struct Pacing {
    methods: Mutex<HashMap<String, Gate>>,
}

struct Gate {
    turn: Arc<tokio::sync::Mutex<()>>,
    /// No call before this (the last `Retry-After`).
    retry_at: Instant,
    /// One call at a time until this.
    serial_until: Instant,
}

impl Pacing {
    /// The method's turn lock while it is rate limited.
    fn gate(&self, method: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let mut methods = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        match methods.get(method) {
            Some(g) if g.serial_until > Instant::now() => Some(g.turn.clone()),
            Some(_) => {
                methods.remove(method);
                None
            }
            None => None,
        }
    }

    /// How long until the method may be called again, if it may not be yet.
    fn wait(&self, method: &str) -> Option<Duration> {
        let methods = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        let left = methods.get(method)?.retry_at.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn limited(&self, method: &str, retry_after: Option<Duration>) {
        let retry_at =
            Instant::now() + retry_after.unwrap_or(Duration::from_secs(1)).min(crate::outbox::MAX_RETRY_AFTER);
        let serial_until = retry_at + SERIAL_AFTER_429;
        let mut methods = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        let gate = methods.entry(method.to_string()).or_insert_with(|| Gate {
            turn: Arc::new(tokio::sync::Mutex::new(())),
            retry_at,
            serial_until,
        });
        gate.retry_at = gate.retry_at.max(retry_at);
        gate.serial_until = gate.serial_until.max(serial_until);
    }
}

impl SlackClient {
    pub fn new(base: &str, token: Secret) -> SlackClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        SlackClient { http, base: base.trim_end_matches('/').to_string(), token, pacing: Arc::default() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A write method with a JSON body (`chat.postMessage`, `views.open`, …).
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ApiError> {
        let req = self.http.post(format!("{}/{method}", self.base)).bearer_auth(self.token.expose()).json(body);
        self.send(method, req).await
    }

    /// A read method with form parameters (`users.info`, `users.lookupByEmail`, …).
    pub async fn call_form(&self, method: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        let req = self.http.post(format!("{}/{method}", self.base)).bearer_auth(self.token.expose()).form(params);
        self.send(method, req).await
    }

    async fn send(&self, method: &str, req: reqwest::RequestBuilder) -> Result<Value, ApiError> {
        let mut turn = match self.pacing.gate(method) {
            Some(g) => Some(g.lock_owned().await),
            None => None,
        };
        // Only a paced method can be inside its Retry-After (the map is not locked twice per call otherwise).
        if let Some(left) = turn.as_ref().and_then(|_| self.pacing.wait(method)) {
            // Rate limited while this call waited for its turn: answer as Slack would.
            return Err(ApiError::Transient {
                error: format!("{method}: rate limited (waiting out Retry-After)"),
                retry_after: Some(left),
                rate_limited: true,
            });
        }
        // A 429 comes back at once: a call still unanswered after TURN_MAX gives up
        // its turn, so one hung call does not hold up every call of its method.
        let call = Self::finish(method, req.send());
        tokio::pin!(call);
        let res = match turn {
            Some(_) => tokio::select! {
                res = &mut call => res,
                _ = tokio::time::sleep(TURN_MAX) => {
                    turn = None;
                    call.await
                }
            },
            None => call.await,
        };
        drop(turn);
        if let Err(ApiError::Transient { rate_limited: true, retry_after, .. }) = &res {
            self.pacing.limited(method, *retry_after);
        }
        res
    }

    /// Posts to an interaction's `response_url` (no token: the URL is the credential).
    pub async fn respond(&self, url: &str, body: &Value) -> Result<(), ApiError> {
        let res = self.http.post(url).json(body).send().await;
        match res {
            Err(e) => Err(ApiError::Transient {
                error: format!("response_url: {}", crate::redact::http_error(e)),
                retry_after: None,
                rate_limited: false,
            }),
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => Err(ApiError::Transient {
                error: format!("response_url: HTTP {}", r.status()),
                retry_after: retry_after(&r),
                rate_limited: r.status().as_u16() == 429,
            }),
            Ok(r) => Err(ApiError::Permanent(format!("response_url: HTTP {}", r.status()))),
        }
    }

    async fn finish(
        method: &str,
        sent: impl std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>,
    ) -> Result<Value, ApiError> {
        let res = sent.await.map_err(|e| ApiError::Transient {
            error: format!("{method}: {}", crate::redact::http_error(e)),
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
            error: format!("{method}: unreadable response: {}", crate::redact::http_error(e)),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use serde_json::json;

    use super::*;

    /// A method allowing two calls per second, counting its 429s.
    async fn paced_slack() -> (String, Arc<AtomicUsize>) {
        let limited = Arc::new(AtomicUsize::new(0));
        let window = Arc::new(Mutex::new((Instant::now(), 0u32)));
        let count = limited.clone();
        let app = axum::Router::new().route(
            "/chat.update",
            post(move || {
                let (window, count) = (window.clone(), count.clone());
                async move {
                    let mut w = window.lock().unwrap();
                    if w.0.elapsed() >= Duration::from_secs(1) {
                        *w = (Instant::now(), 0);
                    }
                    if w.1 >= 2 {
                        count.fetch_add(1, Ordering::SeqCst);
                        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
                    }
                    w.1 += 1;
                    axum::Json(json!({"ok": true})).into_response()
                }
            }),
        );
        (serve(app).await, limited)
    }

    /// Serves `app` on a random port; its base URL.
    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    async fn burst(client: &SlackClient, n: usize) -> (usize, usize) {
        let body = json!({});
        let calls = (0..n).map(|_| client.call("chat.update", &body));
        let results = futures::future::join_all(calls).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let limited =
            results.iter().filter(|r| matches!(r, Err(ApiError::Transient { rate_limited: true, .. }))).count();
        (ok, limited)
    }

    #[tokio::test]
    async fn after_a_429_one_call_learns_the_budget_is_spent() {
        let (base, server_429s) = paced_slack().await;
        let client = SlackClient::new(&base, Secret::new("xoxb-test"));
        // Unpaced at first: every call in flight beyond the budget draws a 429.
        assert_eq!(burst(&client, 4).await, (2, 2));
        assert_eq!(server_429s.load(Ordering::SeqCst), 2);
        // Within Retry-After nothing is sent.
        assert_eq!(burst(&client, 4).await, (0, 4));
        assert_eq!(server_429s.load(Ordering::SeqCst), 2);
        // Next window: one call at a time; the third learns the budget is spent, the fourth waits.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(burst(&client, 4).await, (2, 2));
        assert_eq!(server_429s.load(Ordering::SeqCst), 3, "one 429 in the window");
    }

    #[tokio::test]
    async fn a_hung_call_gives_up_its_turn() {
        let n = Arc::new(AtomicUsize::new(0));
        let calls = n.clone();
        let app = axum::Router::new().route(
            "/views.publish",
            post(move || {
                let calls = calls.clone();
                async move {
                    match calls.fetch_add(1, Ordering::SeqCst) {
                        0 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")]).into_response(),
                        1 => {
                            tokio::time::sleep(Duration::from_secs(4)).await;
                            axum::Json(json!({"ok": true})).into_response()
                        }
                        _ => axum::Json(json!({"ok": true})).into_response(),
                    }
                }
            }),
        );
        let client = SlackClient::new(&serve(app).await, Secret::new("xoxb-test"));
        let body = json!({});
        assert!(client.call("views.publish", &body).await.is_err(), "the 429 paces the method");
        let hung = {
            let client = client.clone();
            tokio::spawn(async move { client.call("views.publish", &json!({})).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        assert!(client.call("views.publish", &body).await.is_ok());
        assert!(started.elapsed() < Duration::from_secs(3), "waited {:?} behind a hung call", started.elapsed());
        assert!(!hung.is_finished(), "the hung call is still out");
        assert!(hung.await.unwrap().is_ok());
    }
}
