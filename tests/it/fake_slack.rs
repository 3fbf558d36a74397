//! A fake Slack Web API: records every call, answers like Slack, and fails on
//! demand — scripted (`fail_next`, `set_down`, `set_delay`) or at random from a
//! seed (`set_chaos`: 429 with `Retry-After`, 500, transient `ok:false`, and slow
//! answers that come only after the client gave up).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
    /// What the fake answered: "ok", "429", "500", "timeout" (a slow answer), or an `ok:false` error.
    pub answer: String,
    /// The `ts` a successful `chat.postMessage` was given.
    pub ts: Option<String>,
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
    /// Recorded as `timeout` at once, answered (503) only after `after`: longer
    /// than the client waits, so the client has given up. A real Slack might have
    /// acted on such a call; this fake never does, so it is never counted delivered.
    Slow {
        after: Duration,
    },
}

/// Random faults, drawn per call from a seeded generator. Probabilities are per
/// call and exclusive (their sum must stay below 1); the rest answer normally.
#[derive(Clone, Debug)]
pub struct Chaos {
    pub seed: u64,
    /// HTTP 429; `Retry-After: 1` for `retry_after_one` of them, else `Retry-After: 0`.
    pub rate_limited: f64,
    pub retry_after_one: f64,
    /// HTTP 500.
    pub server_error: f64,
    /// `ok:false` with a transient error (`internal_error`, `service_unavailable`, `fatal_error`).
    pub not_ok: f64,
    /// Slow answers (see [`Fail::Slow`]), at most `max_slow` in a run.
    pub slow: f64,
    pub slow_after: Duration,
    pub max_slow: usize,
    /// Also fail `response_url` posts.
    pub response_urls: bool,
}

impl Chaos {
    /// Every kind of fault, about one call in eight; no slow answers.
    pub fn new(seed: u64) -> Chaos {
        Chaos {
            seed,
            rate_limited: 0.03,
            retry_after_one: 0.05,
            server_error: 0.04,
            not_ok: 0.04,
            slow: 0.0,
            // The server's Slack client gives up after 10 s.
            slow_after: Duration::from_secs(11),
            max_slow: 0,
            response_urls: true,
        }
    }

    /// Also slow answers: `max` of them at most, with probability `p` per call.
    pub fn with_slow(mut self, p: f64, max: usize) -> Chaos {
        self.slow = p;
        self.max_slow = max;
        self
    }
}

struct ChaosState {
    cfg: Chaos,
    rng: StdRng,
    slow_used: usize,
    /// How many faults of each kind were injected.
    injected: BTreeMap<String, usize>,
}

impl ChaosState {
    fn draw(&mut self) -> Option<Fail> {
        let c = &self.cfg;
        let x: f64 = self.rng.gen();
        let mut edge = c.rate_limited;
        let fail = if x < edge {
            let one = self.rng.gen::<f64>() < c.retry_after_one;
            Some(Fail::RateLimited { retry_after: u64::from(one) })
        } else if x < {
            edge += c.server_error;
            edge
        } {
            Some(Fail::ServerError)
        } else if x < {
            edge += c.not_ok;
            edge
        } {
            const TRANSIENT: [&str; 3] = ["internal_error", "service_unavailable", "fatal_error"];
            Some(Fail::NotOk(TRANSIENT[self.rng.gen_range(0..TRANSIENT.len())]))
        } else if x < edge + c.slow && self.slow_used < c.max_slow {
            self.slow_used += 1;
            Some(Fail::Slow { after: c.slow_after })
        } else {
            None
        };
        if let Some(f) = &fail {
            *self.injected.entry(label(f)).or_default() += 1;
        }
        fail
    }
}

fn label(f: &Fail) -> String {
    match f {
        Fail::RateLimited { retry_after } => format!("429 (Retry-After: {retry_after})"),
        Fail::ServerError => "500".into(),
        Fail::NotOk(e) => format!("ok:false {e}"),
        Fail::Status(code) => code.to_string(),
        Fail::Slow { .. } => "slow (client timed out)".into(),
    }
}

#[derive(Default)]
struct Inner {
    calls: Mutex<Vec<Call>>,
    script: Mutex<HashMap<String, VecDeque<Fail>>>,
    down: Mutex<bool>,
    users: Mutex<HashMap<String, String>>,
    /// What `usergroups.users.list` answers, by user group id.
    usergroups: Mutex<HashMap<String, Vec<String>>>,
    delay_ms: AtomicU64,
    /// Web API calls received, counted before any delay.
    arrived: AtomicU64,
    ts: AtomicU64,
    chaos: Mutex<Option<ChaosState>>,
    /// What `apps.connections.open` answers as the websocket URL.
    socket_url: Mutex<Option<String>>,
}

/// The app-level token `apps.connections.open` accepts.
pub const APP_TOKEN: &str = "xapp-1-A0TEST-1-test";

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

    /// The members `usergroups.users.list` lists for a user group from now on.
    pub fn set_usergroup(&self, id: &str, members: &[&str]) {
        let members = members.iter().map(|m| m.to_string()).collect();
        self.inner.usergroups.lock().unwrap().insert(id.to_string(), members);
    }

    /// The next calls of `method` fail like this, in order.
    pub fn fail_next(&self, method: &str, fails: Vec<Fail>) {
        self.inner.script.lock().unwrap().entry(method.to_string()).or_default().extend(fails);
    }

    /// Web API calls received so far, answered or still held by a delay.
    pub fn arrived(&self) -> u64 {
        self.inner.arrived.load(Ordering::SeqCst)
    }

    /// Every Web API call waits this long before it is handled (a slow Slack).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.inner.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// While down, every call answers 500.
    pub fn set_down(&self, down: bool) {
        *self.inner.down.lock().unwrap() = down;
    }

    /// Random faults from now on (`None`: off). Scripted failures and `set_down` still come first.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        *self.inner.chaos.lock().unwrap() = chaos.map(|cfg| ChaosState {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            slow_used: 0,
            injected: BTreeMap::new(),
        });
    }

    /// How many random faults of each kind were injected so far.
    pub fn chaos_injected(&self) -> BTreeMap<String, usize> {
        self.inner.chaos.lock().unwrap().as_ref().map(|c| c.injected.clone()).unwrap_or_default()
    }

    /// Takes the calls recorded so far, leaving the record empty (long runs fold them as they go).
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.inner.calls.lock().unwrap())
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

    /// `apps.connections.open` answers this URL (a fake Socket Mode server's).
    pub fn set_socket_url(&self, url: &str) {
        *self.inner.socket_url.lock().unwrap() = Some(url.to_string());
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
    record_ts(inner, method, body, answer, None)
}

fn record_ts(inner: &Inner, method: &str, body: Value, answer: &str, ts: Option<String>) {
    let call = Call { method: method.to_string(), body, raw: None, answer: answer.to_string(), ts };
    inner.calls.lock().unwrap().push(call);
}

/// A failure set up by the test (`set_down`, `fail_next`).
fn scripted_only(inner: &Inner, method: &str) -> Option<Fail> {
    if *inner.down.lock().unwrap() {
        return Some(Fail::ServerError);
    }
    inner.script.lock().unwrap().get_mut(method).and_then(|q| q.pop_front())
}

/// A scripted failure, else a random one when chaos is on (Web API and `response_url` only).
fn scripted(inner: &Inner, method: &str) -> Option<Fail> {
    if let Some(f) = scripted_only(inner, method) {
        return Some(f);
    }
    let mut chaos = inner.chaos.lock().unwrap();
    match chaos.as_mut() {
        Some(c) if method != "response_url" || c.cfg.response_urls => c.draw(),
        _ => None,
    }
}

/// Records a failed call and answers it (a slow one only after its delay).
async fn fail_with(inner: &Inner, method: &str, body: Value, f: &Fail) -> Response {
    let (answer, resp) = fail_response(f);
    record(inner, method, body, &answer);
    if let Fail::Slow { after } = f {
        tokio::time::sleep(*after).await;
    }
    resp
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
        Fail::Slow { .. } => ("timeout".into(), (StatusCode::SERVICE_UNAVAILABLE, "too late").into_response()),
    }
}

async fn api(State(inner): State<Arc<Inner>>, Path(method): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    inner.arrived.fetch_add(1, Ordering::SeqCst);
    let delay = inner.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let body = parse_body(&headers, &body);
    // Socket Mode's method takes the app-level token; every other method the bot token.
    let token = if method == "apps.connections.open" { APP_TOKEN } else { "xoxb-test-token" };
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {token}")) {
        record(&inner, &method, body, "not_authed");
        return Json(json!({"ok": false, "error": "not_authed"})).into_response();
    }
    if let Some(f) = scripted(&inner, &method) {
        return fail_with(&inner, &method, body, &f).await;
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
        "apps.connections.open" => match inner.socket_url.lock().unwrap().clone() {
            Some(url) => json!({"ok": true, "url": url}),
            None => json!({"ok": false, "error": "not_allowed_token_type"}),
        },
        "users.lookupByEmail" => {
            let email = body["email"].as_str().unwrap_or_default().to_string();
            match inner.users.lock().unwrap().get(&email) {
                Some(id) => {
                    json!({"ok": true, "user": {"id": id, "name": id.to_lowercase(), "profile": {"email": email}}})
                }
                None => json!({"ok": false, "error": "users_not_found"}),
            }
        }
        // Slack's shape: {"ok":true,"users":["U…",…]}; an unknown id is `no_such_subteam`.
        "usergroups.users.list" => {
            let id = body["usergroup"].as_str().unwrap_or_default().to_string();
            match inner.usergroups.lock().unwrap().get(&id) {
                Some(users) => json!({"ok": true, "users": users}),
                None => json!({"ok": false, "error": "no_such_subteam"}),
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
    let ts = if ok && method == "chat.postMessage" { answer["ts"].as_str().map(str::to_string) } else { None };
    record_ts(&inner, &method, body, &label, ts);
    Json(answer).into_response()
}

async fn respond(State(inner): State<Arc<Inner>>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let mut body = parse_body(&headers, &body);
    body["_response_url_id"] = json!(id);
    if let Some(f) = scripted(&inner, "response_url") {
        return fail_with(&inner, "response_url", body, &f).await;
    }
    record(&inner, "response_url", body, "ok");
    (StatusCode::OK, "").into_response()
}

async fn hook(State(inner): State<Arc<Inner>>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let method = format!("hook:{name}");
    let raw = String::from_utf8_lossy(&body).to_string();
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (answer, resp) = match scripted_only(&inner, &method) {
        Some(f) => fail_response(&f),
        None => ("ok".to_string(), (StatusCode::OK, "").into_response()),
    };
    inner.calls.lock().unwrap().push(Call {
        method,
        body: parsed,
        raw: Some((raw, h("x-accessbot-request-timestamp"), h("x-accessbot-signature"))),
        answer,
        ts: None,
    });
    resp
}
