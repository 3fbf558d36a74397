//! The ports the core needs, owned by the core: persistence ([`Store`]) with
//! its row types, the directory that tells who a chat user is
//! ([`Directory`]), and Okta's Users API ([`OktaDirectory`]). `crate::store`
//! implements the first, the chat adapter the second, the Okta connector the
//! third; the core never sees SQL or HTTP.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::catalog::OktaOrg;
use super::model::{Assignment, Changeset, Delegation, LogEvent, Notice, Request, Status, Timestamp};
use super::query::{LogQuery, RequestQuery};

/// The outbox kind of chat notifications.
pub const NOTICE_KIND: &str = "notice";
/// The outbox kind of signed outbound webhooks.
pub const WEBHOOK_KIND: &str = "webhook";
/// The outbox kind of Okta connector calls.
pub const OKTA_KIND: &str = "okta";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row changed since it was read (optimistic concurrency).
    #[error("the request changed concurrently")]
    Conflict,
    /// An open request for this user and app already exists.
    #[error("an open request for this user and app exists")]
    DuplicateOpen,
    /// The backend failed (connection, SQL); the text is the backend's.
    #[error("database error: {0}")]
    Database(String),
    /// The database aborted the transaction to break a deadlock or a
    /// serialization conflict: nothing of it was written, so it may be retried.
    #[error("database busy: {0}")]
    Busy(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Unsupported(String),
}

/// A unit of outbound work. `kind` names the deliverer's handler; rows with the
/// same `ordering_key` are delivered strictly in insertion order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub ordering_key: String,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Give up (mark failed) when not delivered by then; e.g. a modal's trigger_id.
    pub deadline: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub id: i64,
    pub item: OutboxItem,
    pub attempts: i64,
    pub created: Timestamp,
}

/// How a commit hands the outbox rows it queues straight to this process's
/// outbox, claimed in the commit's own transaction: no claim statement, no
/// commit of its own. A store that does so ([`Store::hand_over`]) claims, of
/// each commit's new rows, the first of each ordering key that waits behind
/// no pending row, while `room` lasts, and sends them once committed; the
/// rows it leaves it reports in `left`, for the outbox to claim as before.
#[derive(Clone)]
pub struct Handoff {
    pub jobs: tokio::sync::mpsc::UnboundedSender<Handed>,
    /// Rows the outbox takes before it has started some: the store takes one
    /// per row it claims, the outbox gives it back when it starts the row.
    pub room: Arc<AtomicI64>,
    pub left: Arc<LeftRows>,
    pub lease: Duration,
}

/// A row claimed by the commit that queued it, and until when.
#[derive(Debug)]
pub struct Handed {
    pub job: ClaimedJob,
    pub lease_until: Timestamp,
}

/// What commits left in the store for the outbox's claims.
#[derive(Debug, Default)]
pub struct LeftRows {
    /// A row was left for want of room: claimable now.
    pub unclaimed: AtomicBool,
    /// Notified once a commit that left such a row is written.
    pub wake: tokio::sync::Notify,
    /// Ordering keys with rows left behind an older pending row, and how many:
    /// when a row of such a key is finished, the next may be claimed.
    pub behind: Mutex<HashMap<String, usize>>,
}

impl LeftRows {
    /// Most keys remembered; past it they are forgotten (the outbox's poll finds their rows).
    const MAX_KEYS: usize = 10_000;

    /// A row of this key waits behind an older pending one.
    pub fn hold_back(&self, key: &str) {
        if let Ok(mut keys) = self.behind.lock() {
            if keys.len() >= Self::MAX_KEYS {
                keys.clear();
            }
            *keys.entry(key.to_string()).or_default() += 1;
        }
    }

    /// True when rows wait behind this key.
    pub fn waits_on(&self, key: &str) -> bool {
        self.behind.lock().map(|keys| keys.contains_key(key)).unwrap_or(false)
    }

    /// One row of this key was claimed.
    pub fn claimed(&self, key: &str) {
        if let Ok(mut keys) = self.behind.lock() {
            if let Some(n) = keys.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    keys.remove(key);
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
pub enum JobOutcome {
    Done,
    /// Delivered, and the message it posted is recorded with the outcome (one transaction).
    Sent(MessageRef),
    Retry {
        at: Timestamp,
        error: String,
    },
    Failed {
        error: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
}

/// A chat message the product posted about a request step, so it can be updated later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRef {
    pub request_id: String,
    pub step: i64,
    pub recipient: String,
    pub channel: String,
    pub ts: String,
}

/// One person: their chat id, email, the DM channel once opened, and their
/// Okta user id once learned (with the Okta connector on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub dm_channel: Option<String>,
    /// The directory answered for this user (their email, or that they have none).
    pub resolved: bool,
    /// Their Okta user id (`00u…`), as Okta's Users API answered for their email or id.
    pub okta_id: Option<String>,
}

/// A chat user group's members as last read from the directory, saved so
/// that every replica sees what one of them read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usergroup {
    pub id: String,
    /// Chat user ids, sorted, without duplicates.
    pub members: Vec<String>,
    /// Optimistic-concurrency version: a save names the version it read (0 = new).
    pub version: i64,
    /// When the members last changed.
    pub updated: Timestamp,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn ping(&self) -> Result<(), StoreError>;
    /// SQL statements sent to the database so far (round trips; the budget test reads it).
    fn statements(&self) -> u64;

    /// Writes a command's request state, assignment change, log events and
    /// notification intents in one transaction. Fails with `Conflict` when the
    /// request's version moved since it was read, `DuplicateOpen` when a new
    /// request collides with an open one.
    async fn commit(&self, cs: &Changeset) -> Result<(), StoreError>;
    async fn request(&self, id: &str) -> Result<Option<Request>, StoreError>;
    async fn open_request(&self, user_id: &str, app_id: &str) -> Result<Option<Request>, StoreError>;
    /// Requests for or by the user (on-behalf ones included), newest first.
    async fn requests_for_user(&self, user_id: &str, limit: i64) -> Result<Vec<Request>, StoreError>;
    /// Open requests whose current step lists any of `people` (ids or emails).
    async fn pending_for_approver(&self, people: &[String], limit: i64) -> Result<Vec<Request>, StoreError>;
    /// Open requests, oldest first; only these apps when given.
    async fn pending_requests(&self, apps: Option<&[String]>, limit: i64) -> Result<Vec<Request>, StoreError>;
    /// A filtered, keyset-paginated page of requests.
    async fn list_requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError>;
    /// A filtered page of system-log events with their sequence numbers (the paging key).
    async fn list_events(&self, q: &LogQuery) -> Result<Vec<(i64, LogEvent)>, StoreError>;
    async fn assignment(&self, user_id: &str, app_id: &str) -> Result<Option<Assignment>, StoreError>;
    /// Time-bound assignments with a warning or their end due by `now`, soonest first.
    async fn due_assignments(&self, now: Timestamp, limit: i64) -> Result<Vec<Assignment>, StoreError>;
    /// Open requests the jobs loop has work on by `now` ([`Request::due`]), soonest first.
    async fn due_requests(&self, now: Timestamp, limit: i64) -> Result<Vec<Request>, StoreError>;
    /// Moves a request's due time without a new version; a no-op when its version moved.
    async fn set_due(&self, id: &str, version: i64, due: Option<Timestamp>) -> Result<(), StoreError>;
    /// Makes every pending request due at `at` (the rules that time them changed).
    async fn reschedule_open(&self, at: Timestamp) -> Result<u64, StoreError>;

    async fn append_events(&self, events: &[LogEvent]) -> Result<(), StoreError>;
    /// A request's events, oldest first.
    async fn request_events(&self, request_id: &str) -> Result<Vec<LogEvent>, StoreError>;
    /// Events of a type, oldest first (tests and operators).
    async fn events_of_type(&self, event_type: &str, limit: i64) -> Result<Vec<LogEvent>, StoreError>;

    /// Queues work due at `now` (the workflow's clock).
    async fn enqueue(&self, items: &[OutboxItem], now: Timestamp) -> Result<(), StoreError>;
    /// Claims up to `limit` due rows for `lease`; a row whose lease lapsed can be
    /// claimed again. Never returns a row while an older row with its key is undelivered.
    async fn claim_jobs(&self, now: Timestamp, lease: Duration, limit: i64) -> Result<Vec<ClaimedJob>, StoreError>;
    async fn finish_job(&self, id: i64, outcome: JobOutcome, now: Timestamp) -> Result<(), StoreError>;
    /// Hands rows to this process's outbox as commits queue them (see
    /// [`Handoff`]); false when this store does not, and every row waits for a claim.
    fn hand_over(&self, _to: Handoff) -> bool {
        false
    }
    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError>;
    /// How many requests there are in each status.
    async fn request_counts(&self) -> Result<Vec<(Status, i64)>, StoreError>;

    async fn messages(&self, request_id: &str, step: i64, recipient: &str) -> Result<Vec<MessageRef>, StoreError>;
    /// Every message posted about a request (all steps, all recipients), oldest first.
    async fn request_messages(&self, request_id: &str) -> Result<Vec<MessageRef>, StoreError>;

    async fn identity(&self, user_id: &str) -> Result<Option<Identity>, StoreError>;
    async fn identity_by_email(&self, email: &str) -> Result<Option<Identity>, StoreError>;
    /// The person with this Okta user id, if one is known.
    async fn identity_by_okta_id(&self, okta_id: &str) -> Result<Option<Identity>, StoreError>;
    /// The identities of these chat users that are known (any order; one read).
    async fn identities_of(&self, user_ids: &[String]) -> Result<Vec<Identity>, StoreError>;
    /// Up to `limit` people with an email whose Okta user id is not known.
    async fn identities_without_okta_id(&self, limit: i64) -> Result<Vec<Identity>, StoreError>;
    /// Inserts or merges (fields given as `None` keep their stored value).
    async fn save_identity(&self, identity: &Identity) -> Result<(), StoreError>;
    /// Remembers that a user opened the App Home (so it is kept up to date).
    async fn mark_home_opened(&self, user_id: &str) -> Result<(), StoreError>;
    async fn home_opened(&self, user_id: &str) -> Result<bool, StoreError>;

    /// Every saved chat user group.
    async fn usergroups(&self) -> Result<Vec<Usergroup>, StoreError>;
    /// Saves a user group's members and the events logging the change in one
    /// transaction: inserted when `group.version` is 0, else replacing that
    /// version. `Conflict` when another replica saved it first.
    async fn save_usergroup(&self, group: &Usergroup, events: &[LogEvent]) -> Result<(), StoreError>;

    /// The delegations of any of `people` (chat ids or emails) that last past `now`.
    async fn delegations(&self, people: &[String], now: Timestamp) -> Result<Vec<Delegation>, StoreError>;

    /// Records `key` as used until `expires`: true when it was not in use at
    /// `now` (uses that expired by then do not count). Atomic across replicas.
    async fn first_use(&self, key: &str, expires: Timestamp, now: Timestamp) -> Result<bool, StoreError>;
}

/// The outbox row of a notice: webhooks go to the webhook sender, Okta
/// calls and look-ups to the Okta connector, the rest to chat.
pub fn notice_item(n: &Notice) -> Result<OutboxItem, StoreError> {
    let kind = match n {
        Notice::Webhook { .. } => WEBHOOK_KIND,
        Notice::Okta { .. } | Notice::OktaUser { .. } => OKTA_KIND,
        _ => NOTICE_KIND,
    };
    Ok(OutboxItem {
        ordering_key: n.ordering_key(),
        kind: kind.to_string(),
        payload: serde_json::to_value(n).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        deadline: None,
    })
}

/// Why the directory could not say who someone is.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Try again later (rate limited, down, timed out).
    #[error("{0}")]
    Transient(String),
    /// Try again after `retry_after`, as the directory said (HTTP 429).
    #[error("{error}")]
    RateLimited { error: String, retry_after: Duration },
    /// Asking again will not help (no such user, no permission).
    #[error("{0}")]
    Permanent(String),
}

/// Who people are in the chat workspace.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// A chat user by id: their email and name (resolved, even without an email).
    async fn user(&self, user_id: &str) -> Result<Identity, DirectoryError>;
    /// The chat user with this email, if any.
    async fn by_email(&self, email: &str) -> Result<Option<Identity>, DirectoryError>;
    /// The chat user ids in a chat user group (an error, never an empty list, when unreadable).
    async fn usergroup_members(&self, usergroup: &str) -> Result<Vec<String>, DirectoryError>;
}

/// An Okta user as the Users API answers (`GET /api/v1/users/{id or login}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaUser {
    /// `00u…`
    pub id: String,
    pub login: String,
    /// `profile.email`
    pub email: Option<String>,
}

/// Who people are in Okta (the connector's org).
#[async_trait]
pub trait OktaDirectory: Send + Sync + 'static {
    /// The user with this Okta user id or login (Okta's one endpoint takes
    /// either); `None` when Okta has no such user.
    async fn user(&self, org: &OktaOrg, id_or_login: &str) -> Result<Option<OktaUser>, DirectoryError>;
}
