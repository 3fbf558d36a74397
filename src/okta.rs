//! The Okta connector: on grant it assigns the user to the app's Okta app
//! (`POST /api/v1/apps/{appId}/users`) or adds them to its Okta group
//! (`PUT /api/v1/groups/{groupId}/users/{userId}`); on revoke it removes them
//! (`DELETE` on the same paths). Calls go through the outbox. [`OktaUsers`]
//! is the core's `OktaDirectory` port on Okta's Users API
//! (`GET /api/v1/users/{id or login}`, cached): the core decides when to ask
//! and remembers each person's Okta id on their identity.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::config::Secret;
use crate::outbox::{Deliverer, Delivery, MAX_RETRY_AFTER};
use crate::store::ClaimedJob;
use crate::workflow::catalog::{OktaOrg, OktaTarget, Party};
use crate::workflow::model::{Notice, ProvisionAction, Provisioner};
use crate::workflow::ports::{DirectoryError, OktaDirectory, OktaUser};
use crate::workflow::principals::OktaId;
use crate::workflow::Workflow;

/// The outbox kind of Okta calls.
pub use crate::workflow::ports::OKTA_KIND as OKTA;

/// Users remembered; past this the cache starts afresh.
const MAX_CACHED_USERS: usize = 10_000;

/// One Okta call of a notice, as the outbox row holds it.
struct Call {
    action: ProvisionAction,
    target: OktaTarget,
    user: Party,
    request_id: Option<String>,
    app_id: String,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

fn no_token() -> String {
    "OKTA_API_TOKEN is not set (or OKTA_API_TOKEN_FILE)".into()
}

/// Okta's Users API, for the core.
pub struct OktaUsers {
    http: reqwest::Client,
    /// `OKTA_API_TOKEN`; `None` fails every look-up (with a message naming it).
    token: Option<Secret>,
    /// (org URL, user id or lower-case login) → the user.
    cache: Mutex<HashMap<(String, String), OktaUser>>,
    /// One call at a time, so that a person asked for twice at once (the
    /// look-up after first contact and their first grant) costs one call.
    asking: tokio::sync::Mutex<()>,
}

impl OktaUsers {
    pub fn new(token: Option<Secret>) -> OktaUsers {
        OktaUsers { http: http_client(), token, cache: Mutex::new(HashMap::new()), asking: Default::default() }
    }

    fn cached(&self, org: &str, key: &str) -> Option<OktaUser> {
        self.cache.lock().ok()?.get(&(org.to_string(), key.to_string())).cloned()
    }

    /// Remembers the user under the key asked, its id and its login.
    fn remember(&self, org: &str, key: &str, user: &OktaUser) {
        let Ok(mut m) = self.cache.lock() else { return };
        if m.len() >= MAX_CACHED_USERS {
            m.clear();
        }
        for k in [key.to_string(), user.id.clone(), user.login.to_ascii_lowercase()] {
            m.insert((org.to_string(), k), user.clone());
        }
    }
}

/// A delivery failure as the directory's.
fn directory_error(d: Delivery) -> DirectoryError {
    match d {
        Delivery::Retry { after: Some(retry_after), error, .. } => DirectoryError::RateLimited { error, retry_after },
        Delivery::Retry { error, .. } => DirectoryError::Transient(error),
        Delivery::Failed(error) => DirectoryError::Permanent(error),
        Delivery::Done | Delivery::Sent(_) => DirectoryError::Transient("no answer".into()),
    }
}

/// The directory's failure as an outbox outcome.
fn delivery_error(e: DirectoryError) -> Delivery {
    match e {
        DirectoryError::Transient(error) => retry(error),
        DirectoryError::RateLimited { error, retry_after } => {
            Delivery::Retry { after: Some(retry_after), error, rate_limited: false }
        }
        DirectoryError::Permanent(error) => Delivery::Failed(error),
    }
}

#[async_trait]
impl OktaDirectory for OktaUsers {
    async fn user(&self, org: &OktaOrg, id_or_login: &str) -> Result<Option<OktaUser>, DirectoryError> {
        // Logins are compared ignoring case, as Okta does; ids are case-sensitive.
        let key = if id_or_login.contains('@') { id_or_login.to_ascii_lowercase() } else { id_or_login.to_string() };
        let org_url = org.org_url.as_str();
        if let Some(u) = self.cached(org_url, &key) {
            return Ok(Some(u));
        }
        let _one = self.asking.lock().await;
        if let Some(u) = self.cached(org_url, &key) {
            return Ok(Some(u));
        }
        let token = self.token.as_ref().ok_or_else(|| DirectoryError::Permanent(no_token()))?;
        let api = Api { http: &self.http, org: org_url, token };
        let found = find_user(&api, &key).await.map_err(directory_error)?;
        if let Some(u) = &found {
            self.remember(org_url, &key, u);
        }
        Ok(found)
    }
}

pub struct OktaDeliverer {
    http: reqwest::Client,
    /// `OKTA_API_TOKEN`; `None` fails every call (with a message naming it).
    token: Option<Secret>,
    /// Set after the workflow exists: the org URL comes from its current config.
    workflow: OnceLock<Arc<Workflow>>,
}

impl OktaDeliverer {
    pub fn new(token: Option<Secret>) -> OktaDeliverer {
        OktaDeliverer { http: http_client(), token, workflow: OnceLock::new() }
    }

    pub fn set_workflow(&self, wf: Arc<Workflow>) {
        let _ = self.workflow.set(wf);
    }

    fn parse(job: &ClaimedJob) -> Option<Call> {
        match Notice::deserialize(&job.item.payload).ok()? {
            Notice::Okta { action, target, user, request_id, app_id } => {
                Some(Call { action, target, user, request_id, app_id })
            }
            _ => None,
        }
    }

    fn workflow(&self) -> Result<&Arc<Workflow>, Delivery> {
        self.workflow.get().ok_or_else(|| retry("the workflow is not started yet".into()))
    }

    async fn run(&self, call: &Call) -> Result<(), Delivery> {
        let wf = self.workflow()?;
        let org = wf.catalog().okta.clone().ok_or_else(|| {
            Delivery::Failed("Okta call with no [okta] section in the config (was it removed?)".into())
        })?;
        let Some(token) = self.token.clone() else {
            return Err(Delivery::Failed(no_token()));
        };
        let api = Api { http: &self.http, org: &org.org_url, token: &token };
        let user_id = match wf.okta_id_of(&call.user).await.map_err(delivery_error)? {
            OktaId::Known(id) => id,
            // No such user in Okta: nothing to remove.
            OktaId::NoUser { .. } if call.action == ProvisionAction::Revoke => return Ok(()),
            OktaId::NoUser { login } => {
                return Err(Delivery::Failed(format!(
                    "Okta has no user with login {login} (GET /api/v1/users/{{login}} answered 404)"
                )))
            }
        };
        membership(&api, call.action, &call.target, &user_id).await
    }
}

/// What every Okta call needs.
struct Api<'a> {
    http: &'a reqwest::Client,
    org: &'a str,
    token: &'a Secret,
}

impl Api<'_> {
    /// Sends one call and maps Okta's answer; 404 is `Ok(None)` (the caller decides what it means).
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<Option<reqwest::Response>, Delivery> {
        let mut url = url::Url::parse(self.org).map_err(|e| Delivery::Failed(format!("okta.org_url: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| Delivery::Failed("okta.org_url cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        // Logs name the call without the host's credentials or the token.
        let call = format!("{method} {}", url.path());
        let mut req = self
            .http
            .request(method, url.as_str())
            .header("authorization", format!("SSWS {}", self.token.expose()))
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.map_err(|e| {
            let error = crate::redact::http_error(e);
            tracing::warn!(%call, %error, "okta: call failed");
            retry(format!("Okta {call}: {error}"))
        })?;
        tracing::info!(%call, status = res.status().as_u16(), "okta: call");
        answer(&call, res).await
    }
}

/// `GET /api/v1/users/{id or login}`: the user, `None` on 404.
async fn find_user(api: &Api<'_>, key: &str) -> Result<Option<OktaUser>, Delivery> {
    let Some(res) = api.send(Method::GET, &["api", "v1", "users", key], None).await? else { return Ok(None) };
    let user: serde_json::Value =
        res.json().await.map_err(|e| retry(format!("Okta GET /api/v1/users/{{id}}: unreadable answer: {e}")))?;
    let text = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let Some(id) = text(&user["id"]) else {
        return Err(Delivery::Failed("Okta GET /api/v1/users/{id}: the answer has no id".into()));
    };
    let login = text(&user["profile"]["login"]).unwrap_or_else(|| key.to_string());
    Ok(Some(OktaUser { id, login, email: text(&user["profile"]["email"]) }))
}

/// Adds or removes the membership; removing one already gone (404) is done.
async fn membership(
    api: &Api<'_>,
    action: ProvisionAction,
    target: &OktaTarget,
    user_id: &str,
) -> Result<(), Delivery> {
    let (method, segments, body) = match (action, target) {
        (ProvisionAction::Grant, OktaTarget::App(app)) => {
            (Method::POST, vec!["api", "v1", "apps", app, "users"], Some(json!({"id": user_id, "scope": "USER"})))
        }
        (ProvisionAction::Grant, OktaTarget::Group(group)) => {
            (Method::PUT, vec!["api", "v1", "groups", group, "users", user_id], None)
        }
        (ProvisionAction::Revoke, OktaTarget::App(app)) => {
            (Method::DELETE, vec!["api", "v1", "apps", app, "users", user_id], None)
        }
        (ProvisionAction::Revoke, OktaTarget::Group(group)) => {
            (Method::DELETE, vec!["api", "v1", "groups", group, "users", user_id], None)
        }
    };
    match (api.send(method, &segments, body).await?, action) {
        (Some(_), _) | (None, ProvisionAction::Revoke) => Ok(()),
        (None, ProvisionAction::Grant) => Err(Delivery::Failed(format!("Okta has no {} (404)", describe(target)))),
    }
}

fn describe(target: &OktaTarget) -> String {
    match target {
        OktaTarget::App(id) => format!("app {id}"),
        OktaTarget::Group(id) => format!("group {id}"),
    }
}

/// 2xx → the response; 404 → `None`; 429 → retry after `X-Rate-Limit-Reset`;
/// 5xx → retry; other 4xx → permanent, with Okta's `errorSummary`.
async fn answer(call: &str, res: reqwest::Response) -> Result<Option<reqwest::Response>, Delivery> {
    let status = res.status();
    if status.is_success() {
        return Ok(Some(res));
    }
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let after = reset_after(res.headers());
        let error = format!("Okta {call}: HTTP 429 (rate limited)");
        return Err(Delivery::Retry { after: Some(after), error, rate_limited: false });
    }
    let summary = error_summary(res).await;
    let error = format!("Okta {call}: HTTP {}{summary}", status.as_u16());
    Err(if status.is_server_error() { retry(error) } else { Delivery::Failed(error) })
}

/// How long until `X-Rate-Limit-Reset` (epoch seconds); at least a second, at most the outbox's cap.
fn reset_after(headers: &reqwest::header::HeaderMap) -> Duration {
    let reset =
        headers.get("x-rate-limit-reset").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    let secs = reset.map(|r| r - chrono::Utc::now().timestamp()).unwrap_or(60);
    Duration::from_secs(u64::try_from(secs.max(1)).unwrap_or(1)).min(MAX_RETRY_AFTER)
}

/// `": E0000001 <errorSummary>"` from Okta's error body, or nothing.
async fn error_summary(res: reqwest::Response) -> String {
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    match (body["errorCode"].as_str(), body["errorSummary"].as_str()) {
        (Some(code), Some(summary)) => format!(": {code} {}", clip(summary)),
        (None, Some(summary)) => format!(": {}", clip(summary)),
        _ => String::new(),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

fn retry(error: String) -> Delivery {
    Delivery::Retry { after: None, error, rate_limited: false }
}

#[async_trait]
impl Deliverer for OktaDeliverer {
    async fn deliver(&self, job: &ClaimedJob) -> Delivery {
        let done = match Notice::deserialize(&job.item.payload) {
            Ok(Notice::OktaUser { user_id }) => match self.workflow() {
                Ok(wf) => wf.learn_okta_id(&user_id).await.map_err(delivery_error),
                Err(d) => Err(d),
            },
            _ => match Self::parse(job) {
                Some(call) => self.run(&call).await,
                None => Err(Delivery::Failed("unreadable Okta payload".into())),
            },
        };
        match done {
            Ok(()) => Delivery::Done,
            Err(d) => d,
        }
    }

    async fn settled(&self, job: &ClaimedJob, error: Option<&str>) {
        let (Some(wf), Some(call)) = (self.workflow.get(), Self::parse(job)) else { return };
        let purpose = call.action.purpose(call.request_id, call.user.id, call.app_id);
        if let Err(e) = wf.provision_settled(&Provisioner::Okta(call.target), &purpose, error).await {
            tracing::error!(error = %e, job = job.id, "could not record an Okta call's outcome");
        }
    }
}
