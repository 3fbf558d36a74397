//! A fake Slack Web API: records every call, answers like Slack, and fails on demand.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub body: Value,
    /// For webhook calls: the raw body and the (timestamp, signature) headers.
    pub raw: Option<(String, Option<String>, Option<String>)>,
    /// What the fake answered: "ok", "429", "500", or an `ok:false` error.
    pub answer: String,
}

impl Call {
    pub fn ok(&self) -> bool {
        self.answer == "ok"
    }
    pub fn text(&self) -> String {
        self.body.to_string()
    }
}

#[derive(Clone, Debug)]
pub enum Fail {
    RateLimited {
        retry_after: u64,
    },
    ServerError,
    NotOk(&'static str),
    /// Any HTTP status with an empty body.
    Status(u16),
}

#[derive(Default)]
struct Inner {
    calls: Mutex<Vec<Call>>,
    script: Mutex<HashMap<String, VecDeque<Fail>>>,
    down: Mutex<bool>,
    users: Mutex<HashMap<String, String>>,
    delay_ms: AtomicU64,
    ts: AtomicU64,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/respond/{id}", post(respond))
            .route("/hooks/{name}", post(hook))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeSlack { addr, inner }
    }

    pub fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// A person `users.lookupByEmail` and `users.info` know.
    pub fn add_user(&self, id: &str, email: &str) {
        self.inner.users.lock().unwrap().insert(email.to_string(), id.to_string());
    }

    /// The next calls of `method` fail like this, in order.
    pub fn fail_next(&self, method: &str, fails: Vec<Fail>) {
        self.inner.script.lock().unwrap().entry(method.to_string()).or_default().extend(fails);
    }

    /// Every Web API call waits this long before it is handled (a slow Slack).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.inner.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// While down, every call answers 500.
    pub fn set_down(&self, down: bool) {
        *self.inner.down.lock().unwrap() = down;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// Successful calls of one method.
    pub fn ok_calls(&self, method: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.method == method && c.ok()).collect()
    }

    /// Successful top-level messages posted to a DM channel of the user (the fake names it `D` + user id).
    pub fn dms_to(&self, user: &str) -> Vec<Call> {
        let ch = format!("D{user}");
        self.ok_calls("chat.postMessage")
            .into_iter()
            .filter(|c| c.body["channel"] == json!(ch) && c.body.get("thread_ts").is_none())
            .collect()
    }

    /// Successful thread replies in a user's DM channel.
    pub fn thread_replies_to(&self, user: &str) -> Vec<Call> {
        let ch = format!("D{user}");
        self.ok_calls("chat.postMessage")
            .into_iter()
            .filter(|c| c.body["channel"] == json!(ch) && c.body.get("thread_ts").is_some())
            .collect()
    }

    /// Successful updates of messages in a user's DM channel.
    pub fn updates_for(&self, user: &str) -> Vec<Call> {
        let ch = format!("D{user}");
        self.ok_calls("chat.update").into_iter().filter(|c| c.body["channel"] == json!(ch)).collect()
    }

    pub fn clear(&self) {
        self.inner.calls.lock().unwrap().clear();
    }
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Value {
    let is_json =
        headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    } else {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    }
}

fn record(inner: &Inner, method: &str, body: Value, answer: &str) {
    inner.calls.lock().unwrap().push(Call { method: method.to_string(), body, raw: None, answer: answer.to_string() });
}

fn scripted(inner: &Inner, method: &str) -> Option<Fail> {
    if *inner.down.lock().unwrap() {
        return Some(Fail::ServerError);
    }
    inner.script.lock().unwrap().get_mut(method).and_then(|q| q.pop_front())
}

fn fail_response(f: &Fail) -> (String, Response) {
    match f {
        Fail::RateLimited { retry_after } => (
            "429".into(),
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after.to_string())], "rate limited").into_response(),
        ),
        Fail::ServerError => ("500".into(), (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()),
        Fail::NotOk(e) => (e.to_string(), Json(json!({"ok": false, "error": e})).into_response()),
        Fail::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::IM_A_TEAPOT);
            (code.to_string(), (status, "").into_response())
        }
    }
}

async fn api(State(inner): State<Arc<Inner>>, Path(method): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let delay = inner.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let body = parse_body(&headers, &body);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer xoxb-test-token") {
        record(&inner, &method, body, "not_authed");
        return Json(json!({"ok": false, "error": "not_authed"})).into_response();
    }
    if let Some(f) = scripted(&inner, &method) {
        let (answer, resp) = fail_response(&f);
        record(&inner, &method, body, &answer);
        return resp;
    }
    let answer = match method.as_str() {
        "conversations.open" => {
            let user = body["users"].as_str().unwrap_or_default().to_string();
            json!({"ok": true, "channel": {"id": format!("D{user}")}})
        }
        "chat.postMessage" => {
            let n = inner.ts.fetch_add(1, Ordering::SeqCst);
            json!({"ok": true, "channel": body["channel"], "ts": format!("1700000000.{n:06}")})
        }
        "chat.update" => json!({"ok": true, "channel": body["channel"], "ts": body["ts"]}),
        "views.open" | "views.publish" => json!({"ok": true, "view": {"id": "V1"}}),
        "users.lookupByEmail" => {
            let email = body["email"].as_str().unwrap_or_default().to_string();
            match inner.users.lock().unwrap().get(&email) {
                Some(id) => {
                    json!({"ok": true, "user": {"id": id, "name": id.to_lowercase(), "profile": {"email": email}}})
                }
                None => json!({"ok": false, "error": "users_not_found"}),
            }
        }
        "users.info" => {
            let id = body["user"].as_str().unwrap_or_default().to_string();
            let email = inner.users.lock().unwrap().iter().find(|(_, v)| **v == id).map(|(k, _)| k.clone());
            json!({"ok": true, "user": {"id": id, "name": id.to_lowercase(), "profile": {"email": email}}})
        }
        _ => json!({"ok": false, "error": "unknown_method"}),
    };
    let ok = answer["ok"] == json!(true);
    let label = if ok { "ok".to_string() } else { answer["error"].as_str().unwrap_or("error").to_string() };
    record(&inner, &method, body, &label);
    Json(answer).into_response()
}

async fn respond(State(inner): State<Arc<Inner>>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let mut body = parse_body(&headers, &body);
    body["_response_url_id"] = json!(id);
    if let Some(f) = scripted(&inner, "response_url") {
        let (answer, resp) = fail_response(&f);
        record(&inner, "response_url", body, &answer);
        return resp;
    }
    record(&inner, "response_url", body, "ok");
    (StatusCode::OK, "").into_response()
}

async fn hook(State(inner): State<Arc<Inner>>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let method = format!("hook:{name}");
    let raw = String::from_utf8_lossy(&body).to_string();
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (answer, resp) = match scripted(&inner, &method) {
        Some(f) => fail_response(&f),
        None => ("ok".to_string(), (StatusCode::OK, "").into_response()),
    };
    inner.calls.lock().unwrap().push(Call {
        method,
        body: parsed,
        raw: Some((raw, h("x-accessbot-request-timestamp"), h("x-accessbot-signature"))),
        answer,
    });
    resp
}
