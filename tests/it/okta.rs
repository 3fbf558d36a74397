//! The Okta connector against a fake Okta on loopback that answers in the
//! Management API's shapes (User, AppUser, Okta errors), records every call,
//! and answers 429 (with `X-Rate-Limit-Reset`) or 500 on demand.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accessbot::workflow::model::{GrantStatus, OutcomeResult, RevocationStatus};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::fake_slack::FakeSlack;
use crate::helpers::*;

#[derive(Clone, Debug)]
pub struct OktaCall {
    pub method: String,
    /// Percent-decoded.
    pub path: String,
    pub auth: String,
    pub accept: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Clone, Copy, Debug)]
pub enum OktaFail {
    /// 429 with `X-Rate-Limit-Reset` this many seconds from now.
    RateLimited(i64),
    ServerError,
}

#[derive(Default)]
struct Inner {
    /// login (email) → user id
    users: HashMap<String, String>,
    /// "app:0oa…:00u…" / "group:00g…:00u…"
    members: BTreeSet<String>,
    calls: Vec<OktaCall>,
    /// By method ("POST", "GET", …): answers given before the real one.
    script: HashMap<String, VecDeque<OktaFail>>,
}

#[derive(Clone)]
pub struct FakeOkta {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeOkta {
    pub async fn start() -> FakeOkta {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeOkta { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_user(&self, email: &str, id: &str) {
        self.inner.lock().unwrap().users.insert(email.to_string(), id.to_string());
    }

    pub fn fail_next(&self, method: &str, fails: Vec<OktaFail>) {
        self.inner.lock().unwrap().script.entry(method.to_string()).or_default().extend(fails);
    }

    pub fn calls(&self) -> Vec<OktaCall> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, method: &str, path: &str) -> Vec<OktaCall> {
        self.calls().into_iter().filter(|c| c.method == method && c.path == path).collect()
    }

    pub fn is_member(&self, key: &str) -> bool {
        self.inner.lock().unwrap().members.contains(key)
    }
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%').then(|| s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())).flatten();
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    let body = json!({"errorCode": code, "errorSummary": summary, "errorLink": code,
                      "errorId": "oaeFakeOkta", "errorCauses": []});
    (status, axum::Json(body)).into_response()
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = percent_decode(uri.path());
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let call = OktaCall {
        method: method.to_string(),
        path: path.clone(),
        auth: header("authorization"),
        accept: header("accept"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    };
    let mut inner = inner.lock().unwrap();
    inner.calls.push(call.clone());
    if call.auth != format!("SSWS {OKTA_TOKEN}") {
        return okta_error(StatusCode::UNAUTHORIZED, "E0000011", "Invalid token provided");
    }
    if let Some(fail) = inner.script.get_mut(method.as_str()).and_then(VecDeque::pop_front) {
        return match fail {
            OktaFail::RateLimited(secs) => {
                let reset = (chrono::Utc::now().timestamp() + secs).to_string();
                let mut res = okta_error(StatusCode::TOO_MANY_REQUESTS, "E0000047", "API call exceeded rate limit");
                res.headers_mut().insert("x-rate-limit-reset", reset.parse().unwrap());
                res
            }
            OktaFail::ServerError => okta_error(StatusCode::INTERNAL_SERVER_ERROR, "E0000009", "Internal Server Error"),
        };
    }
    let parts: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        // Okta's one endpoint takes a user id or a login.
        ("GET", ["users", key]) => {
            let by_login = inner.users.get(*key).map(|id| (key.to_string(), id.clone()));
            let by_id = || inner.users.iter().find(|(_, id)| id == key).map(|(l, id)| (l.clone(), id.clone()));
            match by_login.or_else(by_id) {
                Some((login, id)) => axum::Json(json!({"id": id, "status": "ACTIVE",
                    "profile": {"login": login, "email": login, "firstName": "Test", "lastName": "User"}}))
                .into_response(),
                None => okta_error(
                    StatusCode::NOT_FOUND,
                    "E0000007",
                    &format!("Not found: Resource not found: {key} (User)"),
                ),
            }
        }
        ("POST", ["apps", app, "users"]) => {
            let id = call.body["id"].as_str().unwrap_or_default().to_string();
            inner.members.insert(format!("app:{app}:{id}"));
            axum::Json(json!({"id": id, "scope": "USER", "status": "ACTIVE", "syncState": "DISABLED"})).into_response()
        }
        ("PUT", ["groups", group, "users", user]) => {
            inner.members.insert(format!("group:{group}:{user}"));
            StatusCode::NO_CONTENT.into_response()
        }
        ("DELETE", [kind @ ("apps" | "groups"), target, "users", user]) => {
            let key = format!("{}:{target}:{user}", kind.trim_end_matches('s'));
            if inner.members.remove(&key) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                okta_error(StatusCode::NOT_FOUND, "E0000007", "Not found: Resource not found")
            }
        }
        _ => okta_error(StatusCode::NOT_FOUND, "E0000007", "Not found: Resource not found"),
    }
}

const OKTA_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]
admin_channel = "C0ADMINS"

[okta]
org_url = "{OKTA}"

[apps.crm]
name = "CRM"
approval = false
okta = { app_id = "0oa1crm" }

[apps.wiki]
name = "Wiki"
approval = false
okta = { group_id = "00g1wiki" }

[apps.vpn]
name = "VPN"
steps = [{ user = "U0ALICE" }]
okta = { app_id = "0oa1vpn" }
"#;

struct World {
    app: TestApp,
    okta: FakeOkta,
}

async fn world(b: Backend) -> World {
    let okta = FakeOkta::start().await;
    okta.add_user("zoe@example.com", "00u1zoe");
    okta.add_user("ben@example.com", "00u1ben");
    let slack = FakeSlack::start().await;
    slack.add_user("U0ZOE", "zoe@example.com");
    slack.add_user("U0BEN", "ben@example.com");
    slack.add_user("U0NOBODY", "nobody@example.com");
    let mut setup = Setup::new(b);
    setup.config = OKTA_CONFIG.replace("{OKTA}", &okta.url());
    World { app: spawn_on(setup, slack).await, okta }
}

/// Waits until the request's grant (or revocation) is no longer PENDING.
async fn settled(app: &TestApp, id: &str) -> accessbot::workflow::model::Request {
    let started = Instant::now();
    loop {
        app.drain().await;
        let r = app.request(id).await;
        let pending =
            r.grant_status == Some(GrantStatus::Pending) || r.revocation_status == Some(RevocationStatus::Pending);
        if !pending || started.elapsed() > Duration::from_secs(15) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn okta_assigns_and_removes(b: Backend) {
    let World { app, okta } = world(b).await;
    let crm = app.request_app("U0ZOE", "crm", "pipeline").await;
    let r = settled(&app, &crm).await;
    assert_eq!(r.grant_status, Some(GrantStatus::Granted));
    let posts = okta.calls_to("POST", "/api/v1/apps/0oa1crm/users");
    assert_eq!(posts.len(), 1, "{:?}", okta.calls());
    assert_eq!(posts[0].body, json!({"id": "00u1zoe", "scope": "USER"}));
    assert!(okta.calls().iter().all(|c| c.auth == format!("SSWS {OKTA_TOKEN}") && c.accept == "application/json"));

    // A group target uses PUT; the user's id is cached (one users call for both grants).
    let wiki = app.request_app("U0ZOE", "wiki", "docs").await;
    assert_eq!(settled(&app, &wiki).await.grant_status, Some(GrantStatus::Granted));
    assert_eq!(okta.calls_to("PUT", "/api/v1/groups/00g1wiki/users/00u1zoe").len(), 1);
    assert_eq!(okta.calls_to("GET", "/api/v1/users/zoe@example.com").len(), 1, "cached");
    assert!(okta.is_member("app:0oa1crm:00u1zoe") && okta.is_member("group:00g1wiki:00u1zoe"));

    // Admin revoke removes, for an app and a group.
    app.say("U0ROOT", "admin revoke crm <@U0ZOE|zoe>").await;
    app.say("U0ROOT", "admin revoke wiki <@U0ZOE|zoe>").await;
    let r = settled(&app, &crm).await;
    assert_eq!(r.revocation_status, Some(RevocationStatus::Revoked));
    assert_eq!(settled(&app, &wiki).await.revocation_status, Some(RevocationStatus::Revoked));
    assert_eq!(okta.calls_to("DELETE", "/api/v1/apps/0oa1crm/users/00u1zoe").len(), 1);
    assert_eq!(okta.calls_to("DELETE", "/api/v1/groups/00g1wiki/users/00u1zoe").len(), 1);
    assert!(!okta.is_member("app:0oa1crm:00u1zoe") && !okta.is_member("group:00g1wiki:00u1zoe"));

    let logged = app.events_of("app.access_request.provision").await;
    assert_eq!(logged.len(), 4, "two grants, two revokes");
    assert!(logged.iter().all(|e| e.outcome.result == OutcomeResult::Success));
}

async fn okta_on_override_and_direct_grant(b: Backend) {
    let World { app, okta } = world(b).await;
    let vpn = app.request_app("U0ZOE", "vpn", "remote work").await;
    app.drain().await;
    assert!(okta.calls_to("POST", "/api/v1/apps/0oa1vpn/users").is_empty(), "nothing before approval");
    app.say("U0ROOT", &format!("admin assign {vpn}")).await;
    assert_eq!(settled(&app, &vpn).await.grant_status, Some(GrantStatus::Granted));
    assert_eq!(okta.calls_to("POST", "/api/v1/apps/0oa1vpn/users")[0].body["id"], "00u1zoe");

    app.say("U0ROOT", "admin grant crm <@U0BEN|ben>").await;
    app.drain().await;
    let posts = okta.calls_to("POST", "/api/v1/apps/0oa1crm/users");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body["id"], "00u1ben");
    assert!(okta.is_member("app:0oa1crm:00u1ben"));
}

async fn okta_rate_limit_and_server_errors_are_retried(b: Backend) {
    let World { app, okta } = world(b).await;
    okta.fail_next("POST", vec![OktaFail::RateLimited(1)]);
    okta.fail_next("PUT", vec![OktaFail::ServerError]);
    let crm = app.request_app("U0ZOE", "crm", "pipeline").await;
    let wiki = app.request_app("U0ZOE", "wiki", "docs").await;
    assert_eq!(settled(&app, &crm).await.grant_status, Some(GrantStatus::Granted));
    assert_eq!(settled(&app, &wiki).await.grant_status, Some(GrantStatus::Granted));
    let posts = okta.calls_to("POST", "/api/v1/apps/0oa1crm/users");
    assert_eq!(posts.len(), 2, "429, then the retry");
    assert!(posts[1].at - posts[0].at >= Duration::from_millis(900), "waited until X-Rate-Limit-Reset");
    assert_eq!(okta.calls_to("PUT", "/api/v1/groups/00g1wiki/users/00u1zoe").len(), 2, "500, then the retry");
}

async fn okta_unknown_user_fails_the_grant(b: Backend) {
    let World { app, okta } = world(b).await;
    let crm = app.request_app("U0NOBODY", "crm", "pipeline").await;
    let r = settled(&app, &crm).await;
    assert_eq!(r.grant_status, Some(GrantStatus::Failed));
    // Asked once after first contact (to name them in the API) and once for the grant; a 404 is not retried.
    assert_eq!(okta.calls_to("GET", "/api/v1/users/nobody@example.com").len(), 2, "{:?}", okta.calls());
    assert!(okta.calls_to("POST", "/api/v1/apps/0oa1crm/users").is_empty());
    let failed: Vec<_> =
        app.events(&crm).await.into_iter().filter(|e| e.event_type == "app.access_request.provision").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].outcome.result, OutcomeResult::Failure);
    assert!(failed[0].outcome.reason.as_deref().unwrap_or_default().contains("no user with login nobody@example.com"));
    let feed: Vec<_> =
        app.slack.ok_calls("chat.postMessage").into_iter().filter(|c| c.body["channel"] == "C0ADMINS").collect();
    assert!(feed.iter().any(|c| c.text().contains("Okta grant (assign to app 0oa1crm) failed")), "{feed:?}");
}

both!(
    okta_assigns_and_removes,
    okta_on_override_and_direct_grant,
    okta_rate_limit_and_server_errors_are_retried,
    okta_unknown_user_fails_the_grant,
);
