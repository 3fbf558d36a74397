//! A fake Slack Web API on loopback for the benches: answers at once, counts
//! calls per method, and on demand paces each method like Slack's tiers (at
//! most N calls per window; beyond that HTTP 429 with `Retry-After`, the whole
//! seconds left in the window, rounded up).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// Calls of one method.
#[derive(Clone, Debug, Default)]
pub struct MethodStats {
    pub ok: u64,
    pub limited: u64,
    pub first: Option<Instant>,
    pub last_ok: Option<Instant>,
    /// Pacing windows opened for this method while pacing was on.
    pub windows: u64,
    /// The most 429s answered within one window.
    pub max_limited_per_window: u64,
}

#[derive(Default)]
struct Window {
    start: Option<Instant>,
    calls: u32,
    limited: u64,
}

#[derive(Default)]
struct Inner {
    ts: AtomicU64,
    stats: Mutex<BTreeMap<String, MethodStats>>,
    pace: Mutex<Option<(u32, Duration)>>,
    windows: Mutex<HashMap<String, Window>>,
    /// Hold every Web API call this long before answering (longer than the server's
    /// client waits: its outbox then all but stops).
    stall: Mutex<Option<Duration>>,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    stop: tokio_util::sync::CancellationToken,
}

impl FakeSlack {
    pub async fn start() -> anyhow::Result<FakeSlack> {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/respond/{id}", post(respond))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move { stopped.cancelled().await });
            if let Err(e) = served.await {
                eprintln!("fake Slack stopped: {e}");
            }
        });
        Ok(FakeSlack { addr, inner, stop })
    }

    pub fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Where clicks' `response_url`s point (the server accepts its API origin).
    pub fn response_url(&self, id: &str) -> String {
        format!("http://{}/respond/{id}", self.addr)
    }

    /// Paces every method from now on (`None`: off); every method's window starts afresh.
    pub fn set_pace(&self, pace: Option<(u32, Duration)>) {
        *self.inner.pace.lock().unwrap_or_else(|p| p.into_inner()) = pace;
        self.inner.windows.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Holds every Web API call for `d` before answering (`None`: answer at once).
    pub fn set_stall(&self, d: Option<Duration>) {
        *self.inner.stall.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    pub fn stats(&self) -> BTreeMap<String, MethodStats> {
        self.inner.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn method(&self, m: &str) -> MethodStats {
        self.stats().get(m).cloned().unwrap_or_default()
    }

    /// Forgets the counts (the pacing setting stays).
    pub fn reset(&self) {
        self.inner.stats.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.inner.windows.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// `Some(retry_after_secs)` when this call is beyond the method's budget.
fn paced(inner: &Inner, method: &str, now: Instant) -> Option<u64> {
    let (n, window) = (*inner.pace.lock().unwrap_or_else(|p| p.into_inner()))?;
    let mut windows = inner.windows.lock().unwrap_or_else(|p| p.into_inner());
    let w = windows.entry(method.to_string()).or_default();
    let mut opened = false;
    if w.start.is_none_or(|s| now >= s + window) {
        *w = Window { start: Some(now), calls: 0, limited: 0 };
        opened = true;
    }
    let answer = if w.calls >= n {
        w.limited += 1;
        let left = (w.start.unwrap_or(now) + window).saturating_duration_since(now);
        Some(left.as_secs_f64().ceil().max(1.0) as u64)
    } else {
        w.calls += 1;
        None
    };
    let limited_here = w.limited;
    drop(windows);
    let mut stats = inner.stats.lock().unwrap_or_else(|p| p.into_inner());
    let s = stats.entry(method.to_string()).or_default();
    if opened {
        s.windows += 1;
    }
    s.max_limited_per_window = s.max_limited_per_window.max(limited_here);
    answer
}

fn count(inner: &Inner, method: &str, ok: bool, now: Instant) {
    let mut stats = inner.stats.lock().unwrap_or_else(|p| p.into_inner());
    let s = stats.entry(method.to_string()).or_default();
    s.first.get_or_insert(now);
    if ok {
        s.ok += 1;
        s.last_ok = Some(now);
    } else {
        s.limited += 1;
    }
}

/// A field of a JSON or form body.
fn field(headers: &HeaderMap, body: &[u8], name: &str) -> String {
    let is_json =
        headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get(name).and_then(|x| x.as_str()).map(str::to_string))
            .unwrap_or_default()
    } else {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }
}

async fn api(State(inner): State<Arc<Inner>>, Path(method): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let stall = *inner.stall.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    let now = Instant::now();
    if let Some(retry) = paced(&inner, &method, now) {
        count(&inner, &method, false, now);
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry.to_string())], "").into_response();
    }
    let answer = match method.as_str() {
        "conversations.open" => {
            let user = field(&headers, &body, "users");
            json!({"ok": true, "channel": {"id": format!("D{user}")}})
        }
        "chat.postMessage" => {
            let n = inner.ts.fetch_add(1, Ordering::Relaxed);
            json!({"ok": true, "channel": field(&headers, &body, "channel"), "ts": format!("1700000000.{n:06}")})
        }
        "chat.update" => {
            json!({"ok": true, "channel": field(&headers, &body, "channel"), "ts": field(&headers, &body, "ts")})
        }
        "users.info" => {
            let id = field(&headers, &body, "user");
            json!({"ok": true, "user": {"id": id, "name": id.to_lowercase(), "profile": {}}})
        }
        "users.lookupByEmail" => json!({"ok": false, "error": "users_not_found"}),
        "views.open" | "views.publish" => json!({"ok": true, "view": {"id": "V1"}}),
        _ => json!({"ok": true}),
    };
    count(&inner, &method, true, now);
    Json(answer).into_response()
}

async fn respond(State(inner): State<Arc<Inner>>, Path(_id): Path<String>) -> Response {
    count(&inner, "response_url", true, Instant::now());
    StatusCode::OK.into_response()
}
