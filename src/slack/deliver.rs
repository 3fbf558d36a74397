//! Delivers outbox rows through the Slack Web API: DMs to approvers and
//! requesters, updates of every message of a step, modals, ephemeral
//! responses; identity look-ups are the workflow's (`Notice::Resolve`).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{ApiError, SlackClient};
use super::directory::SlackDirectory;
use super::{blocks, home, notices};
use crate::outbox::{Deliverer, Delivery, NOTICE};
use crate::store::{ClaimedJob, Identity, MessageRef, OutboxItem, Store};
use crate::workflow::model::{CloseKind, Notice, Request, RequestView, StepKind, Timestamp};
use crate::workflow::ports::{Directory, DirectoryError};
use crate::workflow::{engine, Party, Person, Workflow};

pub const VIEWS_OPEN: &str = "slack.views_open";
pub const RESPOND: &str = "slack.respond";
/// One reply in one message's thread (a `Notice::Thread` fans out to these).
pub const THREAD_REPLY: &str = "slack.thread_reply";
/// A private reply as a DM, where a click has no `response_url` (the App Home).
pub const DM: &str = "slack.dm";

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

pub fn views_open_item(trigger_id: &str, view: Value, deadline: Timestamp) -> OutboxItem {
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

pub fn dm_item(user_id: &str, text: &str) -> OutboxItem {
    OutboxItem {
        ordering_key: format!("direct:{user_id}"),
        kind: DM.into(),
        payload: json!({"user_id": user_id, "text": text}),
        deadline: None,
    }
}

pub struct SlackDeliverer {
    client: SlackClient,
    directory: SlackDirectory,
    store: Arc<dyn Store>,
    /// Resolves identities and gives the catalog (the admin part of the App Home).
    workflow: Arc<Workflow>,
}

fn failed(e: ApiError) -> Delivery {
    match e {
        ApiError::Transient { error, retry_after, rate_limited } => {
            Delivery::Retry { after: retry_after, error, rate_limited }
        }
        ApiError::Permanent(error) => Delivery::Failed(error),
    }
}

fn from_directory(e: DirectoryError) -> ApiError {
    match e {
        DirectoryError::Transient(error) => ApiError::Transient { error, retry_after: None, rate_limited: false },
        DirectoryError::RateLimited { error, retry_after } => {
            ApiError::Transient { error, retry_after: Some(retry_after), rate_limited: false }
        }
        DirectoryError::Permanent(error) => ApiError::Permanent(error),
    }
}

fn db(e: crate::store::StoreError) -> ApiError {
    ApiError::Transient { error: format!("store: {e}"), retry_after: None, rate_limited: false }
}

fn bad_payload(e: serde_json::Error) -> Delivery {
    Delivery::Failed(format!("unreadable outbox payload: {e}"))
}

impl SlackDeliverer {
    pub fn new(client: SlackClient, workflow: Arc<Workflow>) -> SlackDeliverer {
        let store = workflow.store().clone();
        SlackDeliverer { directory: SlackDirectory::new(client.clone()), client, store, workflow }
    }

    /// The Slack id of a configured person (emails via `users.lookupByEmail`, cached).
    async fn user_id(&self, person: &Person) -> Result<String, ApiError> {
        let email = match person {
            Person::Slack(id) => return Ok(id.clone()),
            Person::Email(email) => email,
        };
        if let Some(i) = self.store.identity_by_email(email).await.map_err(db)? {
            return Ok(i.user_id);
        }
        match self.directory.by_email(email).await {
            Ok(Some(found)) => {
                self.store.save_identity(&found).await.map_err(db)?;
                Ok(found.user_id)
            }
            Ok(None) => Err(ApiError::Permanent(format!("users.lookupByEmail: no user has the email {email}"))),
            Err(e) => Err(from_directory(e)),
        }
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
    /// The message to record with the outcome, for a step's ask.
    async fn notice(&self, n: &Notice, queued: Timestamp) -> Result<Option<MessageRef>, ApiError> {
        let done = match n {
            Notice::Ask { request, step, step_label, routed_to, recipient, kind, task, on_behalf_of } => {
                let compose = if *task { blocks::task } else { blocks::ask };
                let (mut text, mut blocks) = compose(request, *step, step_label, *routed_to, *kind);
                if let Some(principal) = on_behalf_of {
                    blocks::for_delegate(principal, &mut text, &mut blocks);
                }
                return self.ask(request, *step, recipient, &text, &blocks).await.map(Some);
            }
            Notice::Progress { request, step, step_label, routed_to, recipient, approved, required } => {
                let (text, blocks) = blocks::progress(request, *step, step_label, *routed_to, approved, *required);
                self.update_messages(&request.id, *step, recipient, &text, &blocks).await
            }
            Notice::Close { request, step, recipient, outcome, by } => {
                self.close(request, *step, recipient, *outcome, by.as_deref()).await
            }
            Notice::Requester { request, app_id, app_name, recipient, event } => {
                let (text, blocks) = blocks::requester(request.as_ref(), app_id, app_name, event);
                self.post_dm(recipient, &text, &blocks).await
            }
            Notice::AdminFeed { channel, event } => self.admin_feed(channel, &notices::feed(event)).await,
            Notice::Thread { request_id, event } => self.thread(request_id, &notices::thread(event), queued).await,
            Notice::Direct { to, message } => {
                let user = self.user_id(to).await?;
                self.direct(&user, &notices::direct_text(message)).await
            }
            Notice::HomeChanged { users } => {
                for u in users {
                    self.publish_home(u).await?;
                }
                Ok(())
            }
            Notice::Resolve { person } => self.workflow.resolve(person).await.map_err(from_directory),
            Notice::Webhook { .. } | Notice::Okta { .. } | Notice::OktaUser { .. } => {
                Err(ApiError::Permanent("webhooks and Okta calls are not delivered through Slack".into()))
            }
        };
        done.map(|()| None)
    }

    /// DMs one approver a step's message; the outcome records it, so that it can be closed later.
    async fn ask(
        &self,
        request: &RequestView,
        step: usize,
        recipient: &Person,
        text: &str,
        blocks: &[Value],
    ) -> Result<MessageRef, ApiError> {
        let user = self.user_id(recipient).await?;
        let channel = self.dm(&user).await?;
        let ts = self.post(&channel, text, blocks).await?;
        Ok(MessageRef {
            request_id: request.id.clone(),
            step: i64::try_from(step).unwrap_or(0),
            recipient: recipient.key().to_string(),
            channel,
            ts,
        })
    }

    /// Updates every message sent to `recipient` for the step to its outcome.
    async fn close(
        &self,
        request: &RequestView,
        step: usize,
        recipient: &Person,
        outcome: CloseKind,
        by: Option<&str>,
    ) -> Result<(), ApiError> {
        // A task's messages close as "marked done", not "approved".
        let task = self
            .store
            .request(&request.id)
            .await
            .map_err(db)?
            .and_then(|r| r.steps.get(step).map(|s| matches!(s.kind, StepKind::Task { .. })))
            .unwrap_or(false);
        let (text, blocks) = if task {
            blocks::closed_task(request, step, outcome, by)
        } else {
            blocks::closed(request, step, outcome, by)
        };
        self.update_messages(&request.id, step, recipient, &text, &blocks).await
    }

    /// Edits every message sent to `recipient` for the step.
    async fn update_messages(
        &self,
        request_id: &str,
        step: usize,
        recipient: &Person,
        text: &str,
        blocks: &[Value],
    ) -> Result<(), ApiError> {
        let step = i64::try_from(step).unwrap_or(0);
        for m in self.store.messages(request_id, step, recipient.key()).await.map_err(db)? {
            let body = json!({"channel": m.channel, "ts": m.ts, "text": text, "blocks": blocks});
            match self.client.call("chat.update", &body).await {
                // The message is gone or too old to edit: nothing left to update.
                Err(ApiError::Permanent(e)) if e.contains("message_not_found") || e.contains("cant_update_message") => {
                    tracing::info!(error = %e, "chat.update skipped");
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    async fn admin_feed(&self, channel: &str, text: &str) -> Result<(), ApiError> {
        let blocks = [blocks::section(text)];
        self.post(channel, text, &blocks).await.map(|_| ())
    }

    /// One row per message: posting every reply from this row would post the
    /// first ones again whenever a later one failed and the row was retried.
    /// Rows keyed per message keep each thread's replies in order.
    async fn thread(&self, request_id: &str, text: &str, queued: Timestamp) -> Result<(), ApiError> {
        let replies: Vec<OutboxItem> = self
            .store
            .request_messages(request_id)
            .await
            .map_err(db)?
            .into_iter()
            .map(|m| OutboxItem {
                ordering_key: format!("{request_id}:thread:{}:{}", m.channel, m.ts),
                kind: THREAD_REPLY.into(),
                payload: json!(ThreadReply { channel: m.channel, thread_ts: m.ts, text: text.to_string() }),
                deadline: None,
            })
            .collect();
        self.store.enqueue(&replies, queued).await.map_err(db)
    }

    /// Posts to a user's DM channel.
    async fn post_dm(&self, user_id: &str, text: &str, blocks: &[Value]) -> Result<(), ApiError> {
        let channel = self.dm(user_id).await?;
        self.post(&channel, text, blocks).await.map(|_| ())
    }

    /// A direct message of mrkdwn text (escaped by whoever built it).
    async fn direct(&self, user_id: &str, text: &str) -> Result<(), ApiError> {
        let (fallback, blocks) = blocks::direct(text);
        self.post_dm(user_id, &fallback, &blocks).await
    }

    /// Republishes the App Home of a user who has opened it (`views.publish`):
    /// their requests, the approvals waiting for them and, for admins, the
    /// outstanding requests of the apps they administer.
    async fn publish_home(&self, person: &Person) -> Result<(), ApiError> {
        let Some(user_id) = self.workflow.kept_home(person).await.map_err(db)? else { return Ok(()) };
        // Approvers configured by email need the user's email.
        let email = match self.workflow.person(&user_id).await {
            Ok(p) => p.email,
            Err(e) => {
                tracing::warn!(error = %e, "App Home without email-based approvals: user not identified");
                None
            }
        };
        let party = Party::new(user_id.clone(), email.clone());

        let mine = self.store.requests_for_user(&user_id, home::MINE_LIMIT).await.map_err(db)?;
        let mut keys = vec![user_id.clone()];
        keys.extend(email);
        let catalog = self.workflow.catalog();
        let approvals: Vec<Request> = self
            .store
            .pending_for_approver(&keys, home::APPROVALS_LIMIT)
            .await
            .map_err(db)?
            .into_iter()
            .filter(|r| engine::awaits(&catalog, r, &party))
            .collect();
        let admin = if catalog.is_super_admin(&party) {
            Some(self.store.pending_requests(None, home::ADMIN_LIMIT).await.map_err(db)?)
        } else {
            let apps = catalog.administered_apps(&party);
            if apps.is_empty() {
                None
            } else {
                Some(self.store.pending_requests(Some(&apps), home::ADMIN_LIMIT).await.map_err(db)?)
            }
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

/// Rows queued before notices were typed: their text was built with mrkdwn
/// around unescaped user text, so it is delivered escaped whole (shown literally).
#[derive(Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
enum Legacy {
    AdminFeed { channel: String, text: String },
    Thread { request_id: String, text: String },
    Direct { to: Person, text: String },
}

/// Identity look-ups as rows queued before the workflow owned identity.
const LEGACY_RESOLVE_EMAIL: &str = "identity.email";
const LEGACY_RESOLVE_USER: &str = "identity.user";

impl SlackDeliverer {
    async fn legacy(&self, old: Legacy, queued: Timestamp) -> Result<(), ApiError> {
        match old {
            Legacy::AdminFeed { channel, text } => self.admin_feed(&channel, &blocks::esc(&text)).await,
            Legacy::Thread { request_id, text } => self.thread(&request_id, &blocks::esc(&text), queued).await,
            Legacy::Direct { to, text } => {
                let user = self.user_id(&to).await?;
                self.direct(&user, &blocks::esc(&text)).await
            }
        }
    }
}

#[async_trait]
impl Deliverer for SlackDeliverer {
    async fn deliver(&self, job: &ClaimedJob) -> Delivery {
        // Read in place: copying the payload's tree first cost some 12,000 instructions a message (callgrind).
        let payload = &job.item.payload;
        let result = match job.item.kind.as_str() {
            NOTICE => match Notice::deserialize(payload) {
                Ok(n) => match self.notice(&n, job.created).await {
                    Ok(Some(sent)) => return Delivery::Sent(sent),
                    other => other.map(drop),
                },
                Err(e) => match Legacy::deserialize(payload) {
                    Ok(old) => self.legacy(old, job.created).await,
                    Err(_) => return bad_payload(e),
                },
            },
            LEGACY_RESOLVE_EMAIL | LEGACY_RESOLVE_USER => {
                let person = match (payload["email"].as_str(), payload["user_id"].as_str()) {
                    (Some(email), _) => Person::Email(email.to_string()),
                    (None, Some(id)) => Person::Slack(id.to_string()),
                    _ => return Delivery::Failed("identity look-up without a person".into()),
                };
                self.workflow.resolve(&person).await.map_err(from_directory)
            }
            VIEWS_OPEN => match ViewsOpen::deserialize(payload) {
                Ok(v) => self
                    .client
                    .call("views.open", &json!({"trigger_id": v.trigger_id, "view": v.view}))
                    .await
                    .map(|_| ()),
                Err(e) => return bad_payload(e),
            },
            THREAD_REPLY => match ThreadReply::deserialize(payload) {
                Ok(r) => {
                    let blocks = [blocks::section(&r.text)];
                    let body =
                        json!({"channel": r.channel, "thread_ts": r.thread_ts, "text": r.text, "blocks": blocks});
                    self.client.call("chat.postMessage", &body).await.map(|_| ())
                }
                Err(e) => return bad_payload(e),
            },
            DM => match (payload["user_id"].as_str(), payload["text"].as_str()) {
                (Some(user), Some(text)) => self.direct(user, text).await,
                _ => return Delivery::Failed("slack.dm without a user or text".into()),
            },
            RESPOND => match Respond::deserialize(payload) {
                Ok(r) => self.client.respond(&r.url, &r.body).await,
                Err(e) => return bad_payload(e),
            },
            other => return Delivery::Failed(format!("unknown outbox kind `{other}`")),
        };
        match result {
            Ok(()) => Delivery::Done,
            Err(e) => failed(e),
        }
    }
}
