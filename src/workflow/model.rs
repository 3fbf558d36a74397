//! What the workflow keeps and produces: requests and their steps,
//! assignments, system-log events and notification intents.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::catalog::{EscalateTo, FieldKind, OktaTarget, Party, Person};

pub type Timestamp = DateTime<Utc>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Submitted,
    Pending,
    Approved,
    Denied,
    Canceled,
    Expired,
    Rejected,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Submitted,
        Status::Pending,
        Status::Approved,
        Status::Denied,
        Status::Canceled,
        Status::Expired,
        Status::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "SUBMITTED",
            Status::Pending => "PENDING",
            Status::Approved => "APPROVED",
            Status::Denied => "DENIED",
            Status::Canceled => "CANCELED",
            Status::Expired => "EXPIRED",
            Status::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_open(self) -> bool {
        matches!(self, Status::Submitted | Status::Pending)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrantStatus {
    Pending,
    Granted,
    Failed,
    ManualRequired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RevocationStatus {
    Pending,
    Revoked,
    Failed,
}

impl RevocationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationStatus::Pending => "PENDING",
            RevocationStatus::Revoked => "REVOKED",
            RevocationStatus::Failed => "FAILED",
        }
    }
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "PENDING",
            GrantStatus::Granted => "GRANTED",
            GrantStatus::Failed => "FAILED",
            GrantStatus::ManualRequired => "MANUAL_REQUIRED",
        }
    }
}

/// What a step does: ask a user or a group, call a webhook, or wait for a manual task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    User,
    Group {
        group_id: String,
        group_name: String,
    },
    /// Calls `url` with the mapped fields, then the workflow continues (one-way).
    Action {
        url: String,
        secret_env: Option<String>,
        /// Output key → source (`requester.email`, `field.<id>`, …).
        fields: std::collections::BTreeMap<String, String>,
    },
    /// A manual task: the assignee presses "Mark done".
    Task {
        group_id: Option<String>,
        group_name: Option<String>,
    },
}

/// Where a step went when the requester was its only approver (separation of duties).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Routing {
    AppAdmins,
    SuperAdmins,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not reached yet.
    Waiting,
    /// Current step, approvers asked.
    Pending,
    Approved,
    Denied,
    /// The request was canceled or expired while this step was open or waiting.
    Closed,
    /// Removed by an admin override.
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub kind: StepKind,
    /// The people asked, after separation of duties was applied.
    pub approvers: Vec<Person>,
    pub routed_to: Option<Routing>,
    pub state: StepState,
    pub activated: Option<Timestamp>,
    pub decided_by: Option<String>,
    pub decided: Option<Timestamp>,
    pub comment: Option<String>,
    /// When the current approvers were last reminded.
    #[serde(default)]
    pub reminded: Option<Timestamp>,
    /// How many distinct approvers must approve (a group step's quorum).
    #[serde(default = "one")]
    pub required: u32,
    /// Approvals so far, while fewer than `required`; the last one decides.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// Whom the step is also offered to when it stays undecided.
    #[serde(default)]
    pub escalation: Option<StepEscalation>,
    /// Delegates asked for an approver who delegated; each is also in `approvers`.
    #[serde(default)]
    pub delegates: Vec<StepDelegate>,
}

/// A delegate asked on a step for the approver who delegated to them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDelegate {
    pub delegate: Person,
    /// The approver they decide for (as the step names them).
    pub for_person: Person,
    /// The delegation's end: after it, the delegate can no longer decide.
    pub until: Timestamp,
}

/// A step's escalation, as configured when the request was routed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEscalation {
    /// Seconds after the step was asked.
    pub after_secs: u64,
    pub to: EscalateTo,
    /// When it escalated; the people it asked then are among the step's approvers.
    pub escalated: Option<Timestamp>,
    #[serde(default)]
    pub asked: Vec<Person>,
}

impl StepEscalation {
    /// When the step escalates, if it has not yet.
    pub fn due(&self, activated: Option<Timestamp>) -> Option<Timestamp> {
        let after = chrono::Duration::seconds(i64::try_from(self.after_secs).ok()?);
        self.escalated.is_none().then_some(activated? + after)
    }
}

fn one() -> u32 {
    1
}

/// One approver's approval of a step that needs several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub at: Timestamp,
    pub comment: Option<String>,
    /// The approver a delegate approved for: it counts as theirs.
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    /// The step's approver (as configured: id or email) this approval counts as.
    #[serde(default)]
    pub counts_as: Option<String>,
}

impl Step {
    pub fn label(&self) -> String {
        match (&self.kind, self.routed_to) {
            (_, Some(Routing::AppAdmins)) => "the app's admins".to_string(),
            (_, Some(Routing::SuperAdmins)) => "the super admins".to_string(),
            (StepKind::Group { group_name, .. }, None) => group_name.clone(),
            (StepKind::User, None) => self.approvers.first().map(|p| p.to_string()).unwrap_or_default(),
            (StepKind::Action { .. }, None) => "an automated action".to_string(),
            (StepKind::Task { group_name: Some(g), .. }, None) => format!("a task for {g}"),
            (StepKind::Task { .. }, None) => {
                format!("a task for {}", self.approvers.first().map(|p| p.to_string()).unwrap_or_default())
            }
        }
    }

    pub fn approver_type(&self) -> &'static str {
        match &self.kind {
            StepKind::User if self.routed_to.is_none() => "USER",
            StepKind::Task { group_id: None, .. } if self.routed_to.is_none() => "USER",
            StepKind::Action { .. } => "SYSTEM",
            _ => "GROUP",
        }
    }

    pub fn may_decide(&self, who: &Party) -> bool {
        self.approvers.iter().any(|p| p.matches(who))
    }

    /// Whether `who` is asked as an approver in their own right (not only as someone's delegate).
    pub fn asks_directly(&self, who: &Party) -> bool {
        self.approvers.iter().any(|p| p.matches(who) && !self.delegates.iter().any(|d| &d.delegate == p))
    }

    /// The delegate entry `who` may decide by at `now`, if any.
    pub fn delegated_to(&self, who: &Party, now: Timestamp) -> Option<&StepDelegate> {
        self.delegates.iter().find(|d| d.delegate.matches(who) && d.until > now)
    }

    /// Whether the approval of `who` (or, for a delegate, of the approver `for_person`) is already counted.
    pub fn approved_by(&self, who: &Party, for_person: Option<&Person>) -> bool {
        let voter = |key: &str| match for_person {
            Some(p) => p.key() == key,
            None => key == who.id || who.email.as_deref() == Some(key),
        };
        self.approvals.iter().any(|a| voter(&a.by) || a.counts_as.as_deref().is_some_and(voter))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub app_id: String,
    pub app_name: String,
    pub requested_by: Party,
    pub requested_for: Party,
    pub justification: String,
    /// Answers to the app's request fields.
    #[serde(default)]
    pub field_values: Vec<FieldValue>,
    pub status: Status,
    pub current_step: Option<usize>,
    pub steps: Vec<Step>,
    pub created: Timestamp,
    pub created_by: String,
    pub last_updated: Timestamp,
    pub last_updated_by: String,
    pub resolved: Option<Timestamp>,
    pub grant_status: Option<GrantStatus>,
    pub granted: Option<Timestamp>,
    /// Why the workflow could not start, for REJECTED requests.
    pub reason: Option<String>,
    /// Set when a config change stranded this pending request (why).
    #[serde(default)]
    pub flagged: Option<String>,
    /// When access granted by this request ends (max_duration or the end-date field).
    #[serde(default)]
    pub access_until: Option<Timestamp>,
    /// ISO 8601 duration of time-bound access, e.g. `P30D`.
    #[serde(default)]
    pub access_duration: Option<String>,
    #[serde(default)]
    pub revocation_status: Option<RevocationStatus>,
    #[serde(default)]
    pub revoked: Option<Timestamp>,
    /// Set when this request extends access the user has (`/access extend`).
    #[serde(default)]
    pub extension: Option<Extension>,
    /// When the jobs loop next has work on this request (a reminder, an
    /// escalation, expiry); set by the workflow on every commit, kept in its own column.
    #[serde(skip)]
    pub due: Option<Timestamp>,
    /// Optimistic-concurrency version: every commit must name the version it read.
    pub version: i64,
}

/// The access an extension request extends, as it was when asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// When the access was first granted (the assignment keeps it).
    pub granted: Timestamp,
    /// When it would end without the extension.
    pub ends: Timestamp,
}

impl Request {
    pub fn current(&self) -> Option<&Step> {
        self.current_step.and_then(|i| self.steps.get(i))
    }

    /// The requester in the separation-of-duties sense: whoever asked and whoever benefits.
    pub fn involves_as_requester(&self, who: &Party) -> bool {
        self.requested_by.is(who) || self.requested_for.is(who)
    }

    /// Whether the current step waits for this person's decision.
    pub fn awaits(&self, who: &Party) -> bool {
        self.status.is_open()
            && !self.involves_as_requester(who)
            && self.current().is_some_and(|s| s.may_decide(who) && !s.approved_by(who, None))
    }

    pub fn view(&self) -> RequestView {
        RequestView {
            id: self.id.clone(),
            app_id: self.app_id.clone(),
            app_name: self.app_name.clone(),
            requested_by: self.requested_by.id.clone(),
            requested_for: self.requested_for.id.clone(),
            justification: self.justification.clone(),
            status: self.status,
            step_count: self.steps.len(),
            extends: self.extension.map(|e| e.ends),
            fields: self
                .field_values
                .iter()
                .filter(|f| f.id != "justification")
                .map(|f| (f.label.clone(), f.value.clone()))
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    pub id: String,
    pub label: String,
    pub kind: FieldKind,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentSource {
    Workflow,
    Override,
    Direct,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub user_id: String,
    pub app_id: String,
    pub request_id: Option<String>,
    pub source: AssignmentSource,
    pub granted: Timestamp,
    pub expires: Option<Timestamp>,
    /// Time-bound access: the one-day and one-hour warnings went out.
    #[serde(default)]
    pub warned_day: bool,
    #[serde(default)]
    pub warned_hour: bool,
}

impl Assignment {
    /// When time-bound access next needs the jobs loop: the one-day warning,
    /// the one-hour warning, then the end.
    pub fn due(&self) -> Option<Timestamp> {
        let ends = self.expires?;
        Some(match (self.warned_day, self.warned_hour) {
            (_, true) => ends,
            (true, false) => ends - chrono::Duration::hours(1),
            (false, false) => ends - chrono::Duration::days(1),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssignmentChange {
    Grant(Assignment),
    /// Fails with a conflict when the assignment is already gone (each revocation happens once).
    Revoke {
        user_id: String,
        app_id: String,
    },
    /// Records that a time-bound access warning went out; conflicts when it already had.
    Warned {
        user_id: String,
        app_id: String,
        hour: bool,
        /// When the assignment is next due once this warning is recorded.
        due: Option<Timestamp>,
    },
}

// ---- system log -----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActorType {
    User,
    Group,
    System,
    ApiToken,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogActor {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ActorType,
    pub alternate_id: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogTarget {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub alternate_id: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutcomeResult {
    Success,
    Failure,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOutcome {
    pub result: OutcomeResult,
    pub reason: Option<String>,
}

/// One system-log row, in Okta's LogEvent shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    pub uuid: String,
    pub published: Timestamp,
    pub event_type: String,
    pub severity: String,
    pub display_message: String,
    pub actor: LogActor,
    pub target: Vec<LogTarget>,
    pub outcome: LogOutcome,
    pub debug_context: DebugContext,
    /// Not part of Okta's shape; indexes the event by request.
    #[serde(skip)]
    pub request_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugContext {
    pub debug_data: Map<String, Value>,
}

// ---- notifications --------------------------------------------------------

/// The part of a request a notification shows, frozen when the intent is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    pub id: String,
    pub app_id: String,
    pub app_name: String,
    pub requested_by: String,
    pub requested_for: String,
    pub justification: String,
    pub status: Status,
    pub step_count: usize,
    /// For an extension: when the current access ends.
    #[serde(default)]
    pub extends: Option<Timestamp>,
    /// Answers to request fields other than the justification: (label, value).
    #[serde(default)]
    pub fields: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AskKind {
    New,
    Resend,
    Reminder,
    /// The step stayed undecided and escalated to this person.
    Escalated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseKind {
    Approved,
    Denied,
    Canceled,
    Overridden,
    Expired,
    /// A delegation ended: the delegate no longer decides this step.
    Withdrawn,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RequesterEvent {
    Submitted {
        first_step: String,
    },
    StepApproved {
        step: usize,
        by: String,
        next_step: String,
    },
    Approved {
        source: AssignmentSource,
        by: Option<String>,
    },
    Denied {
        by: String,
    },
    Canceled {
        by: String,
        reason: Option<String>,
    },
    Rejected {
        reason: String,
    },
    Revoked {
        by: String,
    },
    Message {
        from: String,
        text: String,
    },
    Expired,
    /// Time-bound access ends soon.
    AccessEnding {
        ends: Timestamp,
    },
    /// Time-bound access ended and was removed.
    AccessEnded,
    /// The user gave their access back.
    GivenBack,
}

/// What the admin channel is told. User ids, app names and texts are plain
/// data: the chat adapter renders and escapes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FeedEvent {
    /// Granted at the end of the workflow, or at once (`approval` false).
    Granted {
        request_id: String,
        app_name: String,
        user: String,
        approval: bool,
    },
    Denied {
        request_id: String,
        app_name: String,
        user: String,
        by: String,
    },
    Canceled {
        request_id: String,
        app_name: String,
        user: String,
        by: String,
    },
    Overridden {
        request_id: String,
        app_name: String,
        user: String,
        by: String,
    },
    Expired {
        request_id: String,
        app_name: String,
        user: String,
    },
    /// An admin assigned the app directly, without a request.
    Assigned {
        app_name: String,
        user: String,
        by: String,
    },
    /// `by` is `None` when time-bound access ended.
    Revoked {
        app_name: String,
        user: String,
        by: Option<String>,
    },
    /// The user gave their access back.
    GivenBack {
        app_name: String,
        user: String,
    },
    WebhookFailed {
        request_id: Option<String>,
        what: String,
        error: String,
    },
    /// A config reload (or a Slack user group's new members) stranded these pending requests.
    Flagged {
        items: Vec<FlaggedItem>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlaggedItem {
    pub request_id: String,
    pub app_name: String,
    pub user: String,
    pub reason: String,
}

/// A reply in the threads of a request's approver messages. `by` is the
/// deciding user, `None` when it was the system or an API token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ThreadEvent {
    StepApproved {
        step: usize,
        by: Option<String>,
    },
    /// An approval of a step that needs more: `approvals` of `required` so far.
    ApprovalCounted {
        step: usize,
        by: Option<String>,
        approvals: usize,
        required: usize,
    },
    StepDenied {
        step: usize,
        by: Option<String>,
    },
    TaskDone {
        step: usize,
        by: Option<String>,
    },
    Granted,
    Denied,
    Canceled {
        by: Option<String>,
    },
    Expired,
    Overridden {
        by: Option<String>,
    },
    /// The step stayed undecided and was offered to more people.
    Escalated {
        step: usize,
        to: String,
    },
    Message {
        from: String,
        text: String,
    },
}

/// A direct message from accessbot to one person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum DirectMessage {
    /// An app suggested for the catalog, for the technical contact.
    Suggestion { from: String, text: String },
    /// Requests a config reload stranded, for an admin.
    Flagged { items: Vec<FlaggedItem> },
}

/// What an outbound call was for (a webhook or a connector); its final outcome
/// feeds back into the workflow through `Workflow::provision_settled`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "purpose", rename_all = "snake_case")]
pub enum ProvisionPurpose {
    /// An action step of a request.
    Action { request_id: String, step: usize },
    /// Provisioning on grant.
    Grant { request_id: Option<String>, user_id: String, app_id: String },
    /// Provisioning on revoke.
    Revoke { request_id: Option<String>, user_id: String, app_id: String },
}

/// The name webhooks' notices have always used (their stored JSON is the same).
pub type WebhookPurpose = ProvisionPurpose;

/// Whether a provisioning call adds access or removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisionAction {
    Grant,
    Revoke,
}

impl ProvisionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisionAction::Grant => "grant",
            ProvisionAction::Revoke => "revoke",
        }
    }

    pub fn purpose(self, request_id: Option<String>, user_id: String, app_id: String) -> ProvisionPurpose {
        match self {
            ProvisionAction::Grant => ProvisionPurpose::Grant { request_id, user_id, app_id },
            ProvisionAction::Revoke => ProvisionPurpose::Revoke { request_id, user_id, app_id },
        }
    }
}

/// Who carried out a provisioning call, for its log event and the admin feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provisioner {
    Webhook,
    Okta(OktaTarget),
}

/// A platform-neutral notification intent, written to the outbox in the
/// same transaction as the state change that causes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    /// Ask one approver to decide a step (a DM with buttons).
    Ask {
        request: RequestView,
        step: usize,
        step_label: String,
        routed_to: Option<Routing>,
        recipient: Person,
        kind: AskKind,
        /// A manual task ("Mark done") rather than a decision.
        #[serde(default)]
        task: bool,
        /// The approver this delegate is asked for.
        #[serde(default)]
        on_behalf_of: Option<String>,
    },
    /// A step that needs several approvals got one (not the last): show the progress.
    Progress {
        request: RequestView,
        step: usize,
        step_label: String,
        routed_to: Option<Routing>,
        recipient: Person,
        /// Who approved so far, in order.
        approved: Vec<String>,
        required: u32,
    },
    /// Bring every message sent to `recipient` for this step to its final state.
    Close { request: RequestView, step: usize, recipient: Person, outcome: CloseKind, by: Option<String> },
    /// Tell the requester (or the user granted/revoked) what happened.
    Requester {
        request: Option<RequestView>,
        /// The app the event is about (its id: for a "give back" action).
        #[serde(default)]
        app_id: String,
        app_name: String,
        recipient: String,
        event: RequesterEvent,
    },
    /// The optional admin channel feed of outcomes.
    AdminFeed { channel: String, event: FeedEvent },
    /// A reply in the thread of every approver message of the request.
    Thread { request_id: String, event: ThreadEvent },
    /// These users' overviews (App Home) changed; republish for those who use it.
    HomeChanged { users: Vec<Person> },
    /// A direct message to a person (admins told about flagged requests, suggestions).
    Direct { to: Person, message: DirectMessage },
    /// Find out who a person is (a chat user's email, an email's chat user);
    /// requests waiting on it are routed then.
    Resolve { person: Person },
    /// A signed outbound webhook (action steps, provisioning).
    Webhook { url: String, secret_env: Option<String>, body: serde_json::Value, purpose: WebhookPurpose },
    /// Assign the user to (or remove them from) an Okta app or group.
    Okta { action: ProvisionAction, target: OktaTarget, user: Party, request_id: Option<String>, app_id: String },
    /// Learn a chat user's Okta user id from Okta's Users API (by their email).
    OktaUser { user_id: String },
}

impl Notice {
    /// Notices with the same key are delivered in the order they were written.
    pub fn ordering_key(&self) -> String {
        match self {
            Notice::Ask { request, recipient, .. }
            | Notice::Progress { request, recipient, .. }
            | Notice::Close { request, recipient, .. } => {
                format!("{}:{}", request.id, recipient.key())
            }
            Notice::Requester { request, recipient, .. } => match request {
                Some(r) => format!("{}:{}", r.id, recipient),
                None => format!("user:{recipient}"),
            },
            Notice::AdminFeed { channel, .. } => format!("channel:{channel}"),
            Notice::Thread { request_id, .. } => format!("{request_id}:thread"),
            Notice::HomeChanged { users } => format!("home:{}", users.first().map(|u| u.key()).unwrap_or_default()),
            Notice::Direct { to, .. } => format!("direct:{}", to.key()),
            Notice::Resolve { person } => format!("identity:{}", person.key()),
            Notice::Webhook { purpose, url, .. } => match purpose {
                WebhookPurpose::Action { request_id, .. } => format!("{request_id}:webhook"),
                WebhookPurpose::Grant { user_id, app_id, .. } | WebhookPurpose::Revoke { user_id, app_id, .. } => {
                    format!("provisioning:{app_id}:{user_id}:{url}")
                }
            },
            // A grant and its revoke for one user and app go out in order.
            Notice::Okta { user, app_id, .. } => format!("okta:{app_id}:{}", user.id),
            Notice::OktaUser { user_id } => format!("okta-user:{user_id}"),
        }
    }
}

/// A person's delegation: until it ends, every step that asks them also asks `delegate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegation {
    /// Who delegates (their chat id), and their email when known (people configured by email).
    pub user_id: String,
    pub email: Option<String>,
    /// The chat id of the person who decides for them.
    pub delegate: String,
    /// The end (exclusive): the day after the last day given.
    pub until: Timestamp,
    pub created: Timestamp,
}

/// A delegation set (or replaced) or ended, with the command that did it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DelegationChange {
    Set(Delegation),
    Remove { user_id: String },
}

/// Everything one command changes, written by the store in one transaction.
#[derive(Clone, Debug, Default)]
pub struct Changeset {
    /// The request's new state; `version` is the one that was read (0 = insert).
    pub request: Option<Request>,
    pub assignment: Option<AssignmentChange>,
    pub delegation: Option<DelegationChange>,
    pub events: Vec<LogEvent>,
    pub notices: Vec<Notice>,
}
