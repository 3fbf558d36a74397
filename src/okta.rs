//! The Okta connector: on grant it assigns the user to the app's Okta app
//! (`POST /api/v1/apps/{appId}/users`) or adds them to its Okta group
//! (`PUT /api/v1/groups/{groupId}/users/{userId}`); on revoke it removes them
//! (`DELETE` on the same paths). Users are found by email
//! (`GET /api/v1/users/{login}`), cached. Calls go through the outbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::config::Secret;
use crate::outbox::{Deliverer, Delivery, MAX_RETRY_AFTER};
use crate::store::ClaimedJob;
use crate::workflow::catalog::{OktaTarget, Party};
use crate::workflow::model::{Notice, ProvisionAction, Provisioner};
use crate::workflow::Workflow;

/// The outbox kind of Okta calls.
pub use crate::workflow::ports::OKTA_KIND as OKTA;

/// Emails whose Okta user id is remembered; past this the cache starts afresh.
const MAX_CACHED_USERS: usize = 10_000;

/// One Okta call of a notice, as the outbox row holds it.
struct Call {
    action: ProvisionAction,
    target: OktaTarget,
    user: Party,
    request_id: Option<String>,
    app_id: String,
}

pub struct OktaDeliverer {
    http: reqwest::Client,
    /// `OKTA_API_TOKEN`; `None` fails every call (with a message naming it).
    token: Option<Secret>,
    /// (org URL, lower-case email) → Okta user id.
    users: Mutex<HashMap<(String, String), String>>,
    /// Set after the workflow exists: the org URL comes from its current config.
    workflow: OnceLock<Arc<Workflow>>,
}

impl OktaDeliverer {
    pub fn new(token: Option<Secret>) -> OktaDeliverer {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        OktaDeliverer { http, token, users: Mutex::new(HashMap::new()), workflow: OnceLock::new() }
    }

    pub fn set_workflow(&self, wf: Arc<Workflow>) {
        let _ = self.workflow.set(wf);
    }

    fn parse(job: &ClaimedJob) -> Option<Call> {
        match serde_json::from_value::<Notice>(job.item.payload.clone()).ok()? {
            Notice::Okta { action, target, user, request_id, app_id } => {
                Some(Call { action, target, user, request_id, app_id })
            }
            _ => None,
        }
    }

    async fn run(&self, call: &Call) -> Result<(), Delivery> {
        let wf = self.workflow.get().ok_or_else(|| retry("the workflow is not started yet".into()))?;
        let org = wf.catalog().okta.clone().ok_or_else(|| {
            Delivery::Failed("Okta call with no [okta] section in the config (was it removed?)".into())
        })?;
        let Some(token) = self.token.clone() else {
            return Err(Delivery::Failed("OKTA_API_TOKEN is not set (or OKTA_API_TOKEN_FILE)".into()));
        };
        let api = Api { http: &self.http, org: &org.org_url, token: &token };
        let email = self.email_of(wf, &call.user).await?;
        let Some(user_id) = self.user_id(&api, &email).await? else {
            return match call.action {
                // No such user in Okta: nothing to remove.
                ProvisionAction::Revoke => Ok(()),
                ProvisionAction::Grant => Err(Delivery::Failed(format!(
                    "Okta has no user with login {email} (GET /api/v1/users/{{login}} answered 404)"
                ))),
            };
        };
        membership(&api, call.action, &call.target, &user_id).await
    }

    /// The user's email: from the notice, else from the identity cache.
    async fn email_of(&self, wf: &Workflow, user: &Party) -> Result<String, Delivery> {
        if let Some(e) = user.email.as_deref().filter(|e| !e.is_empty()) {
            return Ok(e.to_ascii_lowercase());
        }
        let known = wf.store().identity(&user.id).await.map_err(|e| retry(format!("reading {}: {e}", user.id)))?;
        // The chat user's email may still be on its way (users.info): try again later.
        known
            .and_then(|i| i.email)
            .map(|e| e.to_ascii_lowercase())
            .ok_or_else(|| retry(format!("no email known yet for {}", user.id)))
    }

    /// The Okta user id of `email` (cached); `None` when Okta has no such user.
    async fn user_id(&self, api: &Api<'_>, email: &str) -> Result<Option<String>, Delivery> {
        let key = (api.org.to_string(), email.to_string());
        if let Some(id) = self.users.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(Some(id));
        }
        let Some(id) = find_user(api, email).await? else { return Ok(None) };
        if let Ok(mut m) = self.users.lock() {
            if m.len() >= MAX_CACHED_USERS {
                m.clear();
            }
            m.insert(key, id.clone());
        }
        Ok(Some(id))
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

/// `GET /api/v1/users/{login}`: the user's id, `None` on 404.
async fn find_user(api: &Api<'_>, email: &str) -> Result<Option<String>, Delivery> {
    let Some(res) = api.send(Method::GET, &["api", "v1", "users", email], None).await? else { return Ok(None) };
    let user: serde_json::Value =
        res.json().await.map_err(|e| retry(format!("Okta GET /api/v1/users/{{login}}: unreadable answer: {e}")))?;
    match user["id"].as_str() {
        Some(id) if !id.is_empty() => Ok(Some(id.to_string())),
        _ => Err(Delivery::Failed("Okta GET /api/v1/users/{login}: the answer has no id".into())),
    }
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
        let Some(call) = Self::parse(job) else {
            return Delivery::Failed("unreadable Okta payload".into());
        };
        match self.run(&call).await {
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
