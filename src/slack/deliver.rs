//! Delivers outbox rows through the Slack Web API: DMs to approvers and
//! requesters, updates of every message of a step, modals, ephemeral
//! responses and identity look-ups (cached in the store).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{ApiError, SlackClient};
use super::{blocks, home};
use crate::outbox::{Deliverer, Delivery, NOTICE};
use crate::store::{ClaimedJob, Identity, MessageRef, OutboxItem, Store};
use crate::workflow::model::{Notice, Request, StepKind};
use crate::workflow::{Catalog, Party, Person};

pub const VIEWS_OPEN: &str = "slack.views_open";
pub const RESPOND: &str = "slack.respond";
pub const RESOLVE_EMAIL: &str = "identity.email";
pub const RESOLVE_USER: &str = "identity.user";
/// One reply in one message's thread (a `Notice::Thread` fans out to these).
pub const THREAD_REPLY: &str = "slack.thread_reply";

#[derive(Serialize, Deserialize)]
struct ViewsOpen {
    trigger_id: String,
    view: Value,
}

#[derive(Serialize, Deserialize)]
struct Respond {
    url: String,
    body: Value,
}

#[derive(Serialize, Deserialize)]
struct ThreadReply {
    channel: String,
    thread_ts: String,
    text: String,
}

pub fn views_open_item(trigger_id: &str, view: Value, deadline: crate::workflow::model::Timestamp) -> OutboxItem {
    OutboxItem {
        ordering_key: format!("trigger:{trigger_id}"),
        kind: VIEWS_OPEN.into(),
        payload: json!(ViewsOpen { trigger_id: trigger_id.into(), view }),
        deadline: Some(deadline),
    }
}

pub fn respond_item(url: &str, text: &str) -> OutboxItem {
    let body = json!({"response_type": "ephemeral", "replace_original": false, "text": blocks::clip(text, 3000)});
    OutboxItem {
        ordering_key: format!("respond:{url}"),
        kind: RESPOND.into(),
        payload: json!(Respond { url: url.into(), body }),
        deadline: None,
    }
}

pub fn resolve_email_item(email: &str) -> OutboxItem {
    OutboxItem {
        ordering_key: format!("identity:{email}"),
        kind: RESOLVE_EMAIL.into(),
        payload: json!({"email": email}),
        deadline: None,
    }
}

pub fn resolve_user_item(user_id: &str) -> OutboxItem {
    OutboxItem {
        ordering_key: format!("identity:{user_id}"),
        kind: RESOLVE_USER.into(),
        payload: json!({"user_id": user_id}),
        deadline: None,
    }
}

/// Queues a `users.info` look-up the first time a Slack user is seen (their email
/// matches people configured by email).
pub async fn ensure_identity(
    workflow: &crate::workflow::Workflow,
    user_id: &str,
) -> Result<(), crate::workflow::WorkflowError> {
    let store = workflow.store();
    if store.identity(user_id).await?.is_none() {
        store.save_identity(&Identity { user_id: user_id.to_string(), ..Default::default() }).await?;
        workflow.enqueue(&[resolve_user_item(user_id)]).await?;
    }
    Ok(())
}

/// Reads the catalog as currently loaded (it can be reloaded while the deliverer runs).
pub type CatalogSource = Arc<dyn Fn() -> Arc<Catalog> + Send + Sync>;

pub struct SlackDeliverer {
    client: SlackClient,
    store: Arc<dyn Store>,
    /// For the admin part of the App Home; without it the App Home has no admin section.
    catalog: Option<CatalogSource>,
}

fn failed(e: ApiError) -> Delivery {
    match e {
        ApiError::Transient { error, retry_after, rate_limited } => {
            Delivery::Retry { after: retry_after, error, rate_limited }
        }
        ApiError::Permanent(error) => Delivery::Failed(error),
    }
}

fn db(e: crate::store::StoreError) -> ApiError {
    ApiError::Transient { error: format!("store: {e}"), retry_after: None, rate_limited: false }
}

fn bad_payload(e: serde_json::Error) -> Delivery {
    Delivery::Failed(format!("unreadable outbox payload: {e}"))
}

impl SlackDeliverer {
    pub fn new(client: SlackClient, store: Arc<dyn Store>) -> SlackDeliverer {
        SlackDeliverer { client, store, catalog: None }
    }

    /// Gives the deliverer the current catalog (who administers what, for the App Home).
    pub fn with_catalog(mut self, catalog: CatalogSource) -> SlackDeliverer {
        self.catalog = Some(catalog);
        self
    }

    /// Reads the catalog from the workflow (it follows config reloads).
    pub fn with_catalog_of(self, workflow: &Arc<crate::workflow::Workflow>) -> SlackDeliverer {
        let workflow = workflow.clone();
        self.with_catalog(Arc::new(move || workflow.catalog()))
    }

    /// The Slack id of a configured person (emails via `users.lookupByEmail`, cached).
    async fn user_id(&self, person: &Person) -> Result<String, ApiError> {
        match person {
            Person::Slack(id) => Ok(id.clone()),
            Person::Email(email) => {
                if let Some(i) = self.store.identity_by_email(email).await.map_err(db)? {
                    return Ok(i.user_id);
                }
                self.lookup_email(email).await
            }
        }
    }

    async fn lookup_email(&self, email: &str) -> Result<String, ApiError> {
        let res = self.client.call_form("users.lookupByEmail", &[("email", email)]).await?;
        let user = &res["user"];
        let id = user["id"].as_str().ok_or_else(|| ApiError::Permanent("users.lookupByEmail: no user id".into()))?;
        let identity = Identity {
            user_id: id.to_string(),
            email: Some(email.to_ascii_lowercase()),
            name: user["real_name"].as_str().or(user["name"].as_str()).map(str::to_string),
            dm_channel: None,
        };
        self.store.save_identity(&identity).await.map_err(db)?;
        Ok(id.to_string())
    }

    async fn lookup_user(&self, user_id: &str) -> Result<(), ApiError> {
        let res = self.client.call_form("users.info", &[("user", user_id)]).await?;
        let user = &res["user"];
        let identity = Identity {
            user_id: user_id.to_string(),
            email: user["profile"]["email"].as_str().map(str::to_string),
            name: user["real_name"].as_str().or(user["name"].as_str()).map(str::to_string),
            dm_channel: None,
        };
        self.store.save_identity(&identity).await.map_err(db)
    }

    /// The DM channel with a user (`conversations.open`, cached).
    async fn dm(&self, user_id: &str) -> Result<String, ApiError> {
        if let Some(ch) = self.store.identity(user_id).await.map_err(db)?.and_then(|i| i.dm_channel) {
            return Ok(ch);
        }
        let res = self.client.call("conversations.open", &json!({"users": user_id})).await?;
        let ch = res["channel"]["id"]
            .as_str()
            .ok_or_else(|| ApiError::Permanent("conversations.open: no channel id".into()))?;
        let identity =
            Identity { user_id: user_id.to_string(), dm_channel: Some(ch.to_string()), ..Identity::default() };
        self.store.save_identity(&identity).await.map_err(db)?;
        Ok(ch.to_string())
    }

    async fn post(&self, channel: &str, text: &str, blocks: &[Value]) -> Result<String, ApiError> {
        let res = self
            .client
            .call(
                "chat.postMessage",
                &json!({"channel": channel, "text": text, "blocks": blocks, "unfurl_links": false}),
            )
            .await?;
        Ok(res["ts"].as_str().unwrap_or_default().to_string())
    }

    /// `queued` is when the notice's row was created (the workflow's clock).
    async fn notice(&self, n: &Notice, queued: crate::workflow::model::Timestamp) -> Result<(), ApiError> {
        match n {
            Notice::Ask { request, step, step_label, routed_to, recipient, kind, task } => {
                let user = self.user_id(recipient).await?;
                let channel = self.dm(&user).await?;
                let (text, blocks) = if *task {
                    blocks::task(request, *step, step_label, *routed_to, *kind)
                } else {
                    blocks::ask(request, *step, step_label, *routed_to, *kind)
                };
                let ts = self.post(&channel, &text, &blocks).await?;
                let msg = MessageRef {
                    request_id: request.id.clone(),
                    step: i64::try_from(*step).unwrap_or(0),
                    recipient: recipient.key().to_string(),
                    channel,
                    ts,
                };
                self.store.record_message(&msg).await.map_err(db)
            }
            Notice::Close { request, step, recipient, outcome, by } => {
                // A task's messages close as "marked done", not "approved".
                let task = self
                    .store
                    .request(&request.id)
                    .await
                    .map_err(db)?
                    .and_then(|r| r.steps.get(*step).map(|s| matches!(s.kind, StepKind::Task { .. })))
                    .unwrap_or(false);
                let (text, blocks) = if task {
                    blocks::closed_task(request, *step, *outcome, by.as_deref())
                } else {
                    blocks::closed(request, *step, *outcome, by.as_deref())
                };
                let step = i64::try_from(*step).unwrap_or(0);
                for m in self.store.messages(&request.id, step, recipient.key()).await.map_err(db)? {
                    let body = json!({"channel": m.channel, "ts": m.ts, "text": text, "blocks": blocks});
                    match self.client.call("chat.update", &body).await {
                        // The message is gone or too old to edit: nothing left to update.
                        Err(ApiError::Permanent(e))
                            if e.contains("message_not_found") || e.contains("cant_update_message") =>
                        {
                            tracing::info!(error = %e, "chat.update skipped");
                        }
                        other => {
                            other?;
                        }
                    }
                }
                Ok(())
            }
            Notice::Requester { request, app_name, recipient, event } => {
                let channel = self.dm(recipient).await?;
                let (text, blocks) = blocks::requester(request.as_ref(), app_name, event);
                self.post(&channel, &text, &blocks).await.map(|_| ())
            }
            Notice::AdminFeed { channel, text } => {
                let blocks = [blocks::section(text)];
                self.post(channel, text, &blocks).await.map(|_| ())
            }
            // One row per message: posting every reply from this row would post the
            // first ones again whenever a later one failed and the row was retried.
            // Rows keyed per message keep each thread's replies in order.
            Notice::Thread { request_id, text } => {
                let replies: Vec<OutboxItem> = self
                    .store
                    .request_messages(request_id)
                    .await
                    .map_err(db)?
                    .into_iter()
                    .map(|m| OutboxItem {
                        ordering_key: format!("{request_id}:thread:{}:{}", m.channel, m.ts),
                        kind: THREAD_REPLY.into(),
                        payload: json!(ThreadReply { channel: m.channel, thread_ts: m.ts, text: text.clone() }),
                        deadline: None,
                    })
                    .collect();
                self.store.enqueue(&replies, queued).await.map_err(db)
            }
            Notice::Direct { to, text } => {
                let user = self.user_id(to).await?;
                let channel = self.dm(&user).await?;
                let (fallback, blocks) = blocks::direct(text);
                self.post(&channel, &fallback, &blocks).await.map(|_| ())
            }
            Notice::HomeChanged { users } => {
                for u in users {
                    self.publish_home(u).await?;
                }
                Ok(())
            }
            Notice::Webhook { .. } => Err(ApiError::Permanent("webhooks are not delivered through Slack".into())),
        }
    }

    /// Republishes the App Home of a user who has opened it (`views.publish`):
    /// their requests, the approvals waiting for them and, for admins, the
    /// outstanding requests of the apps they administer.
    async fn publish_home(&self, person: &Person) -> Result<(), ApiError> {
        // Someone who opened the App Home has their id cached; no look-up for the others.
        let user_id = match person {
            Person::Slack(id) => id.clone(),
            Person::Email(email) => match self.store.identity_by_email(email).await.map_err(db)? {
                Some(i) => i.user_id,
                None => return Ok(()),
            },
        };
        if !self.store.home_opened(&user_id).await.map_err(db)? {
            return Ok(());
        }
        let mut identity = self.store.identity(&user_id).await.map_err(db)?;
        // Approvers configured by email need the user's email; look it up once.
        if identity.as_ref().is_none_or(|i| i.email.is_none() && i.name.is_none()) {
            match self.lookup_user(&user_id).await {
                Ok(()) => identity = self.store.identity(&user_id).await.map_err(db)?,
                Err(e) => tracing::warn!(error = ?e, "users.info failed; App Home without email-based approvals"),
            }
        }
        let email = identity.and_then(|i| i.email).map(|e| e.to_ascii_lowercase());
        let party = Party::new(user_id.clone(), email.clone());

        let mine = self.store.requests_for_user(&user_id, home::MINE_LIMIT).await.map_err(db)?;
        let mut keys = vec![user_id.clone()];
        keys.extend(email);
        let approvals: Vec<Request> = self
            .store
            .pending_for_approver(&keys, home::APPROVALS_LIMIT)
            .await
            .map_err(db)?
            .into_iter()
            .filter(|r| !r.involves_as_requester(&party))
            .collect();
        let admin = match &self.catalog {
            Some(catalog) => {
                let catalog = catalog();
                if catalog.is_super_admin(&party) {
                    Some(self.store.pending_requests(None, home::ADMIN_LIMIT).await.map_err(db)?)
                } else {
                    let apps = catalog.administered_apps(&party);
                    if apps.is_empty() {
                        None
                    } else {
                        Some(self.store.pending_requests(Some(&apps), home::ADMIN_LIMIT).await.map_err(db)?)
                    }
                }
            }
            None => None,
        };
        let view =
            home::view(&home::Home { user_id: &user_id, mine: &mine, approvals: &approvals, admin: admin.as_deref() });
        match self.client.call("views.publish", &json!({"user_id": user_id, "view": view})).await {
            // One user's Home that cannot be published must not hold back the others' in the same notice.
            Err(ApiError::Permanent(e)) => {
                tracing::warn!(error = %e, user = %user_id, "views.publish failed");
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }
}

#[async_trait]
impl Deliverer for SlackDeliverer {
    async fn deliver(&self, job: &ClaimedJob) -> Delivery {
        let payload = job.item.payload.clone();
        let result = match job.item.kind.as_str() {
            NOTICE => match serde_json::from_value::<Notice>(payload) {
                Ok(n) => self.notice(&n, job.created).await,
                Err(e) => return bad_payload(e),
            },
            VIEWS_OPEN => match serde_json::from_value::<ViewsOpen>(payload) {
                Ok(v) => self
                    .client
                    .call("views.open", &json!({"trigger_id": v.trigger_id, "view": v.view}))
                    .await
                    .map(|_| ()),
                Err(e) => return bad_payload(e),
            },
            THREAD_REPLY => match serde_json::from_value::<ThreadReply>(payload) {
                Ok(r) => {
                    let blocks = [blocks::section(&r.text)];
                    let body =
                        json!({"channel": r.channel, "thread_ts": r.thread_ts, "text": r.text, "blocks": blocks});
                    self.client.call("chat.postMessage", &body).await.map(|_| ())
                }
                Err(e) => return bad_payload(e),
            },
            RESPOND => match serde_json::from_value::<Respond>(payload) {
                Ok(r) => self.client.respond(&r.url, &r.body).await,
                Err(e) => return bad_payload(e),
            },
            RESOLVE_EMAIL => match payload["email"].as_str() {
                Some(email) => self.lookup_email(email).await.map(|_| ()),
                None => return Delivery::Failed("identity.email without an email".into()),
            },
            RESOLVE_USER => match payload["user_id"].as_str() {
                Some(id) => self.lookup_user(id).await,
                None => return Delivery::Failed("identity.user without a user id".into()),
            },
            other => return Delivery::Failed(format!("unknown outbox kind `{other}`")),
        };
        match result {
            Ok(()) => Delivery::Done,
            Err(e) => failed(e),
        }
    }
}
