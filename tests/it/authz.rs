//! The authorization matrix: every role × every action, allowed or refused as
//! SPEC §2 rule 2 and §6 say, written out below as data ([`CHAT_MATRIX`],
//! [`API_MATRIX`]) and checked cell by cell.
//!
//! A refused chat action changes nothing (the request's version, status and
//! current step, the assignments), is answered privately with "Not allowed"
//! and logs one `security.request.blocked` event naming the actor. A refused
//! API call answers 401 (no valid token) or 403 and changes nothing. An allowed
//! action has its effect and logs no refusal.
//!
//! Roles are relative to the request the action is about. The request is
//! `salesforce`: step 1 Alice, step 2 the security group (Bob, Carol by email),
//! step 3 a task for the ops group (Ops1, Ops2); each one is requested by a
//! fresh user, so that role is never anyone else too.

use std::collections::HashMap;

use accessbot::workflow::model::{AssignmentSource, LogEvent, Status, StepState};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]

[groups.security]
name = "Security Team"
members = ["U0BOB", "carol@example.com"]

[groups.ops]
name = "IT Ops"
members = ["U0OPS1", "U0OPS2"]

[apps.salesforce]
name = "Salesforce"
admins = ["U0SFADMIN"]
steps = [{ user = "U0ALICE" }, { group = "security" }, { task = { group = "ops" } }]

[apps.github]
name = "GitHub"
admins = ["U0GHADMIN"]
steps = [{ group = "security" }]
"#;

const APP: &str = "salesforce";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Who asked (and for whom): a fresh user per request.
    Requester,
    /// Nobody in particular.
    Other,
    /// The approver the current step waits for: Alice at step 1; for a task, Ops1.
    CurrentApprover,
    /// An approver of a step that is not the current one: Bob (step 2) while step 1
    /// waits; for a task, Carol (step 2, already decided).
    OtherStepApprover,
    /// A member of the current group step: Carol (by email) at step 2; for a task, Ops2.
    GroupMember,
    /// An admin of salesforce.
    AppAdmin,
    /// An admin of github only.
    OtherAppAdmin,
    SuperAdmin,
}

const ROLES: [Role; 8] = [
    Role::Requester,
    Role::Other,
    Role::CurrentApprover,
    Role::OtherStepApprover,
    Role::GroupMember,
    Role::AppAdmin,
    Role::OtherAppAdmin,
    Role::SuperAdmin,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chat {
    /// The Approve button of the current step's DM.
    Approve,
    Deny,
    /// "Approve with comment": opens the comment modal.
    CommentOpen,
    /// The comment modal submitted (`view_submission`, approve).
    CommentSubmit,
    /// "Mark done" on the current task step.
    MarkDone,
    /// `/access cancel <id>`
    Cancel,
    /// `/access admin pending salesforce`
    AdminPending,
    AdminShow,
    AdminResend,
    AdminCancel,
    AdminAssign,
    /// `/access admin grant salesforce <@user>`
    AdminGrant,
    AdminRevoke,
}

const Y: bool = true;
const N: bool = false;

/// Who may do what from chat. Columns, in [`ROLES`] order: requester, other
/// user, current approver, approver of another step, group member of the
/// current group step, app admin of this app, app admin of another app, super admin.
///
/// API tokens have no chat identity: they act only through the REST API (see
/// [`API_MATRIX`]), where they administer every app but can decide no step.
#[rustfmt::skip]
const CHAT_MATRIX: [(Chat, [bool; 8]); 13] = [
    //                     req other cur  o.step group app  o.app super
    (Chat::Approve,       [N,  N,    Y,   N,     Y,    N,   N,    N]),
    (Chat::Deny,          [N,  N,    Y,   N,     Y,    N,   N,    N]),
    (Chat::CommentOpen,   [N,  N,    Y,   N,     Y,    N,   N,    N]),
    (Chat::CommentSubmit, [N,  N,    Y,   N,     Y,    N,   N,    N]),
    (Chat::MarkDone,      [N,  N,    Y,   N,     Y,    N,   N,    N]),
    (Chat::Cancel,        [Y,  N,    N,   N,     N,    N,   N,    N]),
    (Chat::AdminPending,  [N,  N,    N,   N,     N,    Y,   N,    Y]),
    (Chat::AdminShow,     [N,  N,    N,   N,     N,    Y,   N,    Y]),
    (Chat::AdminResend,   [N,  N,    N,   N,     N,    Y,   N,    Y]),
    (Chat::AdminCancel,   [N,  N,    N,   N,     N,    Y,   N,    Y]),
    (Chat::AdminAssign,   [N,  N,    N,   N,     N,    Y,   N,    Y]),
    (Chat::AdminGrant,    [N,  N,    N,   N,     N,    Y,   N,    Y]),
    (Chat::AdminRevoke,   [N,  N,    N,   N,     N,    Y,   N,    Y]),
];

/// Where a request waits: its current step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Stage {
    User = 0,
    Group = 1,
    Task = 2,
}

impl Stage {
    fn step(self) -> usize {
        self as usize
    }
}

/// Who plays `role` for `action`, and where the request waits when they act.
/// `None` is the request's own requester.
fn cast(role: Role, action: Chat) -> (Option<&'static str>, Stage) {
    let task = action == Chat::MarkDone;
    let stage = match role {
        _ if task => Stage::Task,
        Role::GroupMember => Stage::Group,
        _ => Stage::User,
    };
    let user = match role {
        Role::Requester => None,
        Role::Other => Some("U0EVE"),
        Role::CurrentApprover => Some(if task { "U0OPS1" } else { "U0ALICE" }),
        Role::OtherStepApprover => Some(if task { "U0CAROL" } else { "U0BOB" }),
        Role::GroupMember => Some(if task { "U0OPS2" } else { "U0CAROL" }),
        Role::AppAdmin => Some("U0SFADMIN"),
        Role::OtherAppAdmin => Some("U0GHADMIN"),
        Role::SuperAdmin => Some("U0ROOT"),
    };
    (user, stage)
}

/// Pending requests waiting at a given step, each by a fresh requester; reused
/// until an action moves or closes them.
struct Fixtures {
    made: usize,
    waiting: HashMap<Stage, (String, String)>,
}

impl Fixtures {
    fn new() -> Fixtures {
        Fixtures { made: 0, waiting: HashMap::new() }
    }

    /// `(request id, requester)` of a request waiting at `stage`.
    async fn at(&mut self, app: &TestApp, stage: Stage) -> (String, String) {
        if let Some((id, requester)) = self.waiting.get(&stage) {
            let r = app.request(id).await;
            if r.status == Status::Pending && r.current_step == Some(stage.step()) {
                return (id.clone(), requester.clone());
            }
        }
        self.made += 1;
        let requester = format!("U0R{}", self.made);
        let id = app.request_app(&requester, APP, "authorization matrix").await;
        if stage.step() >= 1 {
            assert_eq!(app.click("U0ALICE", "approve", &id, 0).await, StatusCode::OK);
        }
        if stage.step() >= 2 {
            assert_eq!(app.click("U0BOB", "approve", &id, 1).await, StatusCode::OK);
        }
        let r = app.request(&id).await;
        assert_eq!((r.status, r.current_step), (Status::Pending, Some(stage.step())), "fixture at {stage:?}");
        self.waiting.insert(stage, (id.clone(), requester.clone()));
        (id, requester)
    }
}

/// What an action could have changed.
#[derive(Debug, PartialEq)]
struct Snapshot {
    version: i64,
    status: Status,
    current_step: Option<usize>,
    steps: Vec<StepState>,
    requester_has_app: bool,
    target_has_app: bool,
}

async fn snapshot(app: &TestApp, id: &str, requester: &str, target: &str) -> Snapshot {
    let r = app.request(id).await;
    let store = app.store();
    Snapshot {
        version: r.version,
        status: r.status,
        current_step: r.current_step,
        steps: r.steps.iter().map(|s| s.state).collect(),
        requester_has_app: store.assignment(requester, APP).await.unwrap().is_some(),
        target_has_app: store.assignment(target, APP).await.unwrap().is_some(),
    }
}

async fn blocked(app: &TestApp) -> Vec<LogEvent> {
    app.events_of("security.request.blocked").await
}

/// The private replies sent through the `response_url` of `user`'s clicks on `action_id`.
fn click_replies(app: &TestApp, user: &str, action_id: &str) -> Vec<String> {
    let key = format!("{user}-{action_id}");
    app.slack
        .ok_calls("response_url")
        .into_iter()
        .filter(|c| c.body["_response_url_id"] == json!(key))
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn click_id(action: Chat) -> Option<&'static str> {
    match action {
        Chat::Approve => Some("approve"),
        Chat::Deny => Some("deny"),
        Chat::CommentOpen => Some("approve_comment"),
        Chat::MarkDone => Some("task_done"),
        _ => None,
    }
}

/// Does `action` as `user` on request `id`; returns the reply the user sees
/// when it is synchronous (commands, modal submissions).
async fn perform(app: &TestApp, action: Chat, user: &str, id: &str, stage: Stage, target: &str) -> Option<String> {
    if let Some(action_id) = click_id(action) {
        assert_eq!(app.click(user, action_id, id, stage.step()).await, StatusCode::OK);
        return None;
    }
    let command = match action {
        Chat::CommentSubmit => {
            let (status, body) =
                app.submit_comment(user, &format!("{id}:{}:approve", stage.step()), "checked the ticket").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            return Some(body.to_string());
        }
        Chat::Cancel => format!("cancel {id}"),
        Chat::AdminPending => format!("admin pending {APP}"),
        Chat::AdminShow => format!("admin show {id}"),
        Chat::AdminResend => format!("admin resend {id}"),
        Chat::AdminCancel => format!("admin cancel {id} no longer needed"),
        Chat::AdminAssign => format!("admin assign {id}"),
        Chat::AdminGrant => format!("admin grant {APP} <@{target}>"),
        Chat::AdminRevoke => format!("admin revoke {APP} <@{target}>"),
        _ => unreachable!("{action:?} is a click"),
    };
    // The whole reply: lists are in its blocks, not its text.
    let (status, body) = app.command(user, &command).await;
    assert_eq!(status, StatusCode::OK, "/access {command} → {body}");
    assert_eq!(body["response_type"], "ephemeral", "/access {command} → {body}");
    Some(body.to_string())
}

/// What an allowed action must have done.
async fn assert_effect(app: &TestApp, action: Chat, user: &str, id: &str, before: &Snapshot, reply: Option<&str>) {
    let r = app.request(id).await;
    let cell = format!("{action:?} by {user}");
    match action {
        Chat::Approve | Chat::CommentSubmit | Chat::MarkDone => {
            let step = before.current_step.unwrap();
            assert_eq!(r.steps[step].state, StepState::Approved, "{cell}");
            assert_eq!(r.steps[step].decided_by.as_deref(), Some(user), "{cell}");
            assert_eq!(r.current_step, Some(step + 1).filter(|s| *s < r.steps.len()), "{cell}");
            if action == Chat::CommentSubmit {
                assert_eq!(reply, Some(json!({"response_action": "clear"}).to_string().as_str()), "{cell}");
            }
        }
        Chat::Deny => {
            assert_eq!(r.status, Status::Denied, "{cell}");
            assert_eq!(r.steps[before.current_step.unwrap()].state, StepState::Denied, "{cell}");
        }
        Chat::CommentOpen => {
            assert_eq!(r.version, before.version, "{cell}: opening the form changes nothing");
            let opened = app.slack.ok_calls("views.open");
            let last = opened.last().unwrap_or_else(|| panic!("{cell}: no modal opened"));
            assert_eq!(last.body["trigger_id"], json!(format!("trigger-{user}-approve_comment")), "{cell}");
            assert_eq!(last.body["view"]["callback_id"], "decision_comment", "{cell}");
        }
        Chat::Cancel | Chat::AdminCancel => assert_eq!(r.status, Status::Canceled, "{cell}"),
        Chat::AdminPending | Chat::AdminShow => {
            assert!(reply.unwrap().contains(id), "{cell}: {reply:?}");
            assert_eq!(r.version, before.version, "{cell}: reading changes nothing");
        }
        Chat::AdminResend => {
            assert!(reply.unwrap().contains("Resent"), "{cell}: {reply:?}");
            let events = app.events(id).await;
            let resent = events.iter().rfind(|e| e.event_type == "app.access_request.resend").unwrap();
            assert_eq!(resent.actor.id, user, "{cell}");
        }
        Chat::AdminAssign => {
            assert_eq!(r.status, Status::Approved, "{cell}");
            let a = app.store().assignment(&r.requested_for.id, APP).await.unwrap().unwrap();
            assert_eq!(a.source, AssignmentSource::Override, "{cell}");
        }
        Chat::AdminGrant | Chat::AdminRevoke => {}
    }
}

/// Every cell of [`CHAT_MATRIX`].
async fn chat_actions_follow_the_authorization_matrix(b: Backend) {
    let app = spawn_with(Setup { config: CONFIG.to_string(), ..Setup::new(b) }).await;
    let mut fixtures = Fixtures::new();
    let mut targets = 0;
    let mut checked = 0;
    for (action, allowed_by) in CHAT_MATRIX {
        for (role, allowed) in ROLES.into_iter().zip(allowed_by) {
            let (user, stage) = cast(role, action);
            let (id, requester) = fixtures.at(&app, stage).await;
            let user = user.unwrap_or(&requester).to_string();
            let cell = format!("{action:?} by {role:?} ({user}) at step {}", stage.step() + 1);

            // Grant and revoke are about a user with (or without) the app.
            targets += 1;
            let target = format!("U0T{targets}");
            if action == Chat::AdminRevoke {
                assert!(app.say("U0ROOT", &format!("admin grant {APP} <@{target}>")).await.contains("Assigned"));
            }
            app.drain().await;
            let before = snapshot(&app, &id, &requester, &target).await;
            let blocked_before = blocked(&app).await.len();
            let replies_before = click_id(action).map(|a| click_replies(&app, &user, a).len()).unwrap_or(0);
            let opened_before = app.slack.ok_calls("views.open").len();

            let reply = perform(&app, action, &user, &id, stage, &target).await;
            app.drain().await;
            let after = snapshot(&app, &id, &requester, &target).await;
            let new_blocked: Vec<LogEvent> = blocked(&app).await.into_iter().skip(blocked_before).collect();

            if allowed {
                assert!(new_blocked.is_empty(), "{cell}: allowed, but refused: {:?}", new_blocked[0].outcome);
                if let Some(text) = &reply {
                    assert!(!text.contains("Not allowed"), "{cell}: {text}");
                }
                match action {
                    Chat::AdminGrant => assert!(!before.target_has_app && after.target_has_app, "{cell}"),
                    Chat::AdminRevoke => assert!(before.target_has_app && !after.target_has_app, "{cell}"),
                    _ => assert_effect(&app, action, &user, &id, &before, reply.as_deref()).await,
                }
            } else {
                assert_eq!(after, before, "{cell}: refused, yet something changed");
                assert!(!after.requester_has_app, "{cell}");
                assert_eq!(new_blocked.len(), 1, "{cell}: one security.request.blocked");
                let ev = &new_blocked[0];
                assert_eq!(ev.actor.id, user, "{cell}");
                assert_eq!(ev.outcome.result, accessbot::workflow::model::OutcomeResult::Deny, "{cell}");
                let about_request = !matches!(action, Chat::AdminPending | Chat::AdminGrant | Chat::AdminRevoke);
                if about_request {
                    assert_eq!(ev.request_id.as_deref(), Some(id.as_str()), "{cell}: the event names the request");
                }
                let text = match (click_id(action), reply) {
                    (Some(a), _) => {
                        let replies = click_replies(&app, &user, a);
                        assert_eq!(replies.len(), replies_before + 1, "{cell}: one private reply");
                        replies.last().cloned().unwrap()
                    }
                    (None, Some(text)) => text,
                    (None, None) => unreachable!(),
                };
                assert!(text.contains("Not allowed"), "{cell}: {text}");
                assert_eq!(app.slack.ok_calls("views.open").len(), opened_before, "{cell}: no form opened");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, CHAT_MATRIX.len() * ROLES.len());

    // `/access admin pending` without an app: any admin, each seeing only their own apps.
    let (id, _) = fixtures.at(&app, Stage::User).await;
    let pending = |user: &'static str| {
        let app = &app;
        async move { app.command(user, "admin pending").await.1.to_string() }
    };
    assert!(pending("U0SFADMIN").await.contains(&id));
    assert!(pending("U0ROOT").await.contains(&id));
    let other = pending("U0GHADMIN").await;
    assert!(!other.contains(&id) && !other.contains("Not allowed"), "{other}");
    assert!(app.say("U0ALICE", "admin pending").await.contains("Not allowed"));
}

// ---- the REST API ------------------------------------------------------------------------

/// How an API call authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cred {
    /// `Authorization: Bearer <token>`
    Bearer,
    /// `Authorization: SSWS <token>` (Okta's scheme)
    Ssws,
    /// Another configured token.
    SecondToken,
    Missing,
    WrongToken,
    /// `Authorization: Bearer ` and nothing else.
    EmptyBearer,
    /// The right token in another scheme.
    Basic,
    /// Slack's signature headers, as a chat user would send: not an API credential.
    SlackSigned,
}

const CREDS: [Cred; 8] = [
    Cred::Bearer,
    Cred::Ssws,
    Cred::SecondToken,
    Cred::Missing,
    Cred::WrongToken,
    Cred::EmptyBearer,
    Cred::Basic,
    Cred::SlackSigned,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ApiAction {
    List,
    Get,
    Create,
    /// `requestedBy` ≠ `requestedFor` while on-behalf requests are off.
    CreateOnBehalf,
    Message,
    /// `PATCH {"status":"CANCELED"}`: an admin cancel.
    Cancel,
    Logs,
    Catalog,
    Reload,
}

/// The status each call answers. Columns, in [`CREDS`] order: Bearer, SSWS,
/// second token, no Authorization, wrong token, empty Bearer, Basic, Slack signature.
#[rustfmt::skip]
const API_MATRIX: [(ApiAction, [u16; 8]); 9] = [
    //                        bearer ssws second none  wrong empty basic slack
    (ApiAction::List,           [200,  200, 200,   401,  401,  401,  401,  401]),
    (ApiAction::Get,            [200,  200, 200,   401,  401,  401,  401,  401]),
    (ApiAction::Create,         [202,  202, 202,   401,  401,  401,  401,  401]),
    (ApiAction::CreateOnBehalf, [403,  403, 403,   401,  401,  401,  401,  401]),
    (ApiAction::Message,        [201,  201, 201,   401,  401,  401,  401,  401]),
    (ApiAction::Cancel,         [200,  200, 200,   401,  401,  401,  401,  401]),
    (ApiAction::Logs,           [200,  200, 200,   401,  401,  401,  401,  401]),
    (ApiAction::Catalog,        [200,  200, 200,   401,  401,  401,  401,  401]),
    (ApiAction::Reload,         [200,  200, 200,   401,  401,  401,  401,  401]),
];

async fn api_call(
    app: &TestApp,
    cred: Cred,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, format!("{}{path}", app.base));
    let raw = body.map(|b| b.to_string()).unwrap_or_default();
    if !raw.is_empty() {
        req = req.header("content-type", "application/json").body(raw.clone());
    }
    req = match cred {
        Cred::Bearer => req.bearer_auth(API_TOKEN),
        Cred::Ssws => req.header("authorization", format!("SSWS {API_TOKEN}")),
        Cred::SecondToken => req.bearer_auth("second-token"),
        Cred::Missing => req,
        Cred::WrongToken => req.bearer_auth("not-a-configured-token"),
        Cred::EmptyBearer => req.header("authorization", "Bearer "),
        Cred::Basic => req.basic_auth("U0ROOT", Some(API_TOKEN)),
        Cred::SlackSigned => {
            let ts = chrono::Utc::now().timestamp().to_string();
            let sig = accessbot::slack::verify::sign(SECRET, &ts, raw.as_bytes());
            req.header("x-slack-request-timestamp", ts).header("x-slack-signature", sig)
        }
    };
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn create_body(by: Option<&str>, for_: &str) -> Value {
    let mut b = json!({"requested": {"type": "CATALOG_ENTRY", "entryId": APP},
                       "requestedFor": {"type": "SLACK_USER", "externalId": for_}});
    if let Some(by) = by {
        b["requestedBy"] = json!({"type": "SLACK_USER", "externalId": by});
    }
    b
}

/// Every cell of [`API_MATRIX`].
async fn api_calls_follow_the_authorization_matrix(b: Backend) {
    use reqwest::Method;
    let app = spawn_with(Setup { config: CONFIG.to_string(), ..Setup::new(b) }).await;
    let mut fixtures = Fixtures::new();
    let mut users = 0;
    for (action, statuses) in API_MATRIX {
        for (cred, want) in CREDS.into_iter().zip(statuses) {
            let cell = format!("{action:?} with {cred:?}");
            let (id, requester) = fixtures.at(&app, Stage::User).await;
            users += 1;
            let (new_by, new_for) = (format!("U0AB{users}"), format!("U0AF{users}"));
            app.drain().await;
            let before = snapshot(&app, &id, &requester, &new_for).await;
            let messages =
                |events: Vec<LogEvent>| events.iter().filter(|e| e.event_type == "app.access_request.message").count();
            let messages_before = messages(app.events(&id).await);
            let reloads_before = app.events_of("system.config.reload").await.len();
            let blocked_before = blocked(&app).await.len();

            let one = format!("/governance/api/v2/requests/{id}");
            let (status, body) = match action {
                ApiAction::List => {
                    api_call(&app, cred, Method::GET, "/governance/api/v2/requests?limit=200", None).await
                }
                ApiAction::Get => api_call(&app, cred, Method::GET, &one, None).await,
                ApiAction::Create => {
                    let body = create_body(None, &new_for);
                    api_call(&app, cred, Method::POST, "/governance/api/v2/requests", Some(body)).await
                }
                ApiAction::CreateOnBehalf => {
                    let body = create_body(Some(&new_by), &new_for);
                    api_call(&app, cred, Method::POST, "/governance/api/v2/requests", Some(body)).await
                }
                ApiAction::Message => {
                    let body = json!({"message": "Your laptop is on its way"});
                    api_call(&app, cred, Method::POST, &format!("{one}/messages"), Some(body)).await
                }
                ApiAction::Cancel => {
                    api_call(&app, cred, Method::PATCH, &one, Some(json!({"status": "CANCELED"}))).await
                }
                ApiAction::Logs => api_call(&app, cred, Method::GET, "/api/v1/logs", None).await,
                ApiAction::Catalog => {
                    api_call(&app, cred, Method::GET, "/governance/api/v2/catalog/entries", None).await
                }
                ApiAction::Reload => api_call(&app, cred, Method::POST, "/admin/reload", None).await,
            };
            assert_eq!(status.as_u16(), want, "{cell}: {body}");
            app.drain().await;
            let after = snapshot(&app, &id, &requester, &new_for).await;
            let created = app.open_request(&new_for, APP).await;
            let new_messages = messages(app.events(&id).await) - messages_before;
            let new_reloads = app.events_of("system.config.reload").await.len() - reloads_before;
            let new_blocked = blocked(&app).await.len() - blocked_before;

            match want {
                401 | 403 => {
                    let code = if want == 401 { "E0000004" } else { "E0000006" };
                    assert_eq!(body["errorCode"], code, "{cell}: {body}");
                    assert!(body.get("data").is_none() && body.get("id").is_none(), "{cell}: nothing leaks: {body}");
                    assert_eq!(after, before, "{cell}: refused, yet the request changed");
                    assert!(created.is_none(), "{cell}: refused, yet a request was created");
                    assert_eq!((new_messages, new_reloads), (0, 0), "{cell}");
                    // A 403 is a workflow refusal and is logged; a 401 never reached the workflow.
                    assert_eq!(new_blocked, usize::from(want == 403), "{cell}");
                }
                _ => {
                    assert_eq!(new_blocked, 0, "{cell}");
                    match action {
                        ApiAction::List => {
                            assert!(body["data"].as_array().unwrap().iter().any(|r| r["id"] == json!(id)))
                        }
                        ApiAction::Get => assert_eq!(body["id"], json!(id), "{cell}"),
                        ApiAction::Create => {
                            assert_eq!(created.map(|r| r.id), body["id"].as_str().map(str::to_string), "{cell}")
                        }
                        ApiAction::Message => assert_eq!(new_messages, 1, "{cell}"),
                        ApiAction::Cancel => assert_eq!(after.status, Status::Canceled, "{cell}"),
                        ApiAction::Logs => assert!(body.as_array().is_some_and(|a| !a.is_empty()), "{cell}"),
                        ApiAction::Catalog => assert!(body.to_string().contains(APP), "{cell}"),
                        ApiAction::Reload => assert_eq!(new_reloads, 1, "{cell}"),
                        ApiAction::CreateOnBehalf => unreachable!(),
                    }
                    if !matches!(action, ApiAction::Cancel | ApiAction::Message) {
                        assert_eq!(after, before, "{cell}: only cancel and messages touch the request");
                    }
                }
            }
        }
    }
}

crate::both!(chat_actions_follow_the_authorization_matrix, api_calls_follow_the_authorization_matrix);
