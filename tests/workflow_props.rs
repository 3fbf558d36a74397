#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests for the pure workflow state machine (no database).
//!
//! A random request (random catalog, app, requester and beneficiary) is
//! submitted with `engine::submit`, then up to 30 random commands from random
//! actors are applied to it: decisions on any step, requester and admin
//! cancels, overrides, resends, messages and time passing (reminders and
//! expiry). The request returned by each successful changeset is kept, its
//! version bumped as the store would. After every command:
//!
//! - the outcome matches an independent oracle of who may do what, and a
//!   refusal is `Forbidden` exactly when the actor lacks the right (what the
//!   service logs as `security.request.blocked`);
//! - a successful decision is by an approver of that step who is not the
//!   requester, and no step is ever decided twice;
//! - a final request (APPROVED, DENIED, CANCELED, EXPIRED, REJECTED) never
//!   changes status or steps again;
//! - the changeset's events match the state change: DENIED ⇔ one
//!   `app.access_request.deny`, APPROVED by the workflow ⇔ one
//!   `app.access_request.grant`, by override ⇔ one `app.access_request.override`
//!   (never both), CANCELED ⇔ `delete`, EXPIRED ⇔ `expire`; a grant records one
//!   assignment and one `application.user_membership.add`; every decision and
//!   action event's `stepIndex` names the step that changed, and every step
//!   that changed is explained by an event;
//! - nobody who requested (or benefits from) the request is ever asked.
//!
//! At the end, replaying the accumulated system log reproduces the request's
//! status, its step states and who decided each step.

use std::collections::BTreeMap;

use accessbot::config::parse_catalog;
use accessbot::workflow::catalog::{StepDef, TaskAssignee};
use accessbot::workflow::engine::{self, timers, Decision, NewRequest};
use accessbot::workflow::model::{
    AssignmentChange, AssignmentSource, Changeset, LogEvent, Notice, OutcomeResult, Request, Routing, Status, StepKind,
    StepState, Timestamp,
};
use accessbot::workflow::{Actor, ActorType, Catalog, Party, Person, Source, WorkflowError};
use chrono::{TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// Separate actions, an on-behalf setting, every kind of step, people by id and by email.
const CATALOG_A: &str = r#"
[settings]
admins = ["U0ROOT", "root2@example.com"]
allow_request_on_behalf = true
admin_channel = "C0FEED"
request_ttl = "14d"
reminder_after = "1d"

[groups.security]
name = "Security Team"
members = ["U0BOB", "carol@example.com"]

[groups.ops]
name = "IT Ops"
members = ["U0OPS1", "U0OPS2"]

[apps.mixed]
name = "Mixed"
admins = ["U0APPADMIN", "dave@example.com"]
max_duration = "30d"
provisioning = { url = "https://hooks.example.com/grant", secret_env = "GRANT_SECRET" }
steps = [
  { user = "U0ALICE" },
  { group = "security" },
  { action = { url = "https://hooks.example.com/flow", fields = { email = "requester.email", why = "justification" } } },
  { task = { group = "ops" } },
  { task = { user = "U0TASK" } },
]

[apps.grouped]
name = "Grouped"
admins = ["U0GHADMIN"]
steps = [{ group = "security" }]

[apps.taskfirst]
name = "Task first"
admins = ["U0APPADMIN"]
steps = [{ task = { user = "U0TASK" } }, { action = { url = "https://hooks.example.com/a" } }, { user = "U0ALICE" }]

[apps.actions]
name = "Only actions"
steps = [{ action = { url = "https://hooks.example.com/a" } }, { action = { url = "https://hooks.example.com/b" } }]

[apps.instant]
name = "Instant"
approval = false

[apps.solo]
name = "Solo"
steps = [{ user = "U0ALICE" }]
"#;

/// No on-behalf requests; Alice is the only super admin, so her own `solo`
/// request has nobody left to approve it (REJECTED).
const CATALOG_B: &str = r#"
[settings]
admins = ["U0ALICE"]
request_ttl = "2d"
reminder_after = "6h"

[groups.security]
members = ["U0BOB", "carol@example.com", "U0ALICE"]

[apps.solo]
steps = [{ user = "U0ALICE" }]

[apps.pair]
admins = ["U0APPADMIN"]
steps = [{ group = "security" }, { user = "U0ALICE" }, { task = { group = "security" } }]

[apps.other]
admins = ["U0GHADMIN"]
steps = [{ user = "U0BOB" }]
"#;

/// Who has which email (the identity cache).
const DIRECTORY: [(&str, &str); 4] = [
    ("U0CAROL", "carol@example.com"),
    ("U0DAVE", "dave@example.com"),
    ("U0ROOT2", "root2@example.com"),
    ("U0REQ", "req@example.com"),
];

/// People who may submit requests.
const REQUESTERS: [&str; 9] =
    ["U0REQ", "U0ALICE", "U0BOB", "U0CAROL", "U0APPADMIN", "U0ROOT", "U0TASK", "U0OPS1", "U0GHADMIN"];

const TOKEN_ID: &str = "tok_0123456789ab";

fn party(id: &str) -> Party {
    let email = DIRECTORY.iter().find(|(i, _)| *i == id).map(|(_, e)| e.to_string());
    Party::new(id, email)
}

fn person_party(p: &Person) -> Party {
    match p {
        Person::Slack(id) => party(id),
        Person::Email(e) => {
            let id = DIRECTORY.iter().find(|(_, m)| m == e).map(|(i, _)| *i).expect("email in the directory");
            party(id)
        }
    }
}

/// The oracle's own notion of "this configured person is this chat user".
fn same(p: &Person, who: &Party) -> bool {
    match p {
        Person::Slack(id) => *id == who.id,
        Person::Email(e) => who.email.as_deref() == Some(e.as_str()),
    }
}

fn same_party(a: &Party, b: &Party) -> bool {
    a.id == b.id || (a.email.is_some() && a.email == b.email)
}

fn user(id: &str) -> Actor {
    Actor::user(party(id), Source::Slack)
}

fn token() -> Actor {
    Actor {
        party: Party::new(TOKEN_ID, None),
        kind: ActorType::ApiToken,
        name: Some(TOKEN_ID.into()),
        source: Source::Api,
    }
}

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

// ---- scenarios -------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Role {
    Requester,
    Beneficiary,
    Other,
    /// One of the current step's approvers (`Other` when there is no current step).
    CurrentApprover(u8),
    /// An approver of any step.
    StepApprover(u8, u8),
    /// A member of any configured group.
    GroupMember(u8),
    /// An admin of the request's app.
    AppAdmin(u8),
    /// An admin of another app only.
    OtherAppAdmin(u8),
    SuperAdmin(u8),
    ApiToken,
    /// Carol before her email is known: configured by email, so she is nobody yet.
    Unresolved,
}

#[derive(Clone, Debug)]
enum Act {
    /// `None`: the current step.
    Decide {
        step: Option<u8>,
        approve: bool,
        comment: Option<String>,
    },
    Cancel {
        as_admin: bool,
        reason: Option<String>,
    },
    Override,
    Resend,
    Message(String),
    /// Time passes, then the reminder/expiry job looks at the request.
    Tick {
        hours: u16,
    },
}

#[derive(Clone, Debug)]
struct Scenario {
    catalog: usize,
    app: u8,
    by: u8,
    /// `Some`: on behalf of another requester.
    for_: Option<u8>,
    justification: String,
    cmds: Vec<(Role, Act)>,
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z ]{1,24}",
        1 => Just(String::new()),
        1 => Just("  \t ".to_string()),
        1 => Just("with\0nul <@U0ROOT> & *bold*".to_string()),
        1 => Just("é".repeat(5001)),
    ]
    .boxed()
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        2 => Just(Role::Requester),
        1 => Just(Role::Beneficiary),
        1 => Just(Role::Other),
        8 => any::<u8>().prop_map(Role::CurrentApprover),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(s, p)| Role::StepApprover(s, p)),
        2 => any::<u8>().prop_map(Role::GroupMember),
        2 => any::<u8>().prop_map(Role::AppAdmin),
        1 => any::<u8>().prop_map(Role::OtherAppAdmin),
        1 => any::<u8>().prop_map(Role::SuperAdmin),
        2 => Just(Role::ApiToken),
        1 => Just(Role::Unresolved),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        10 => (prop_oneof![4 => Just(None), 1 => (0u8..7).prop_map(Some)], proptest::bool::weighted(0.8),
               proptest::option::of(text()))
            .prop_map(|(step, approve, comment)| Act::Decide { step, approve, comment }),
        2 => (any::<bool>(), proptest::option::of(text())).prop_map(|(as_admin, reason)| Act::Cancel { as_admin, reason }),
        1 => Just(Act::Override),
        1 => Just(Act::Resend),
        1 => text().prop_map(Act::Message),
        2 => prop_oneof![0u16..30, 20u16..400].prop_map(|hours| Act::Tick { hours }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        0usize..2,
        any::<u8>(),
        any::<u8>(),
        proptest::option::weighted(0.2, any::<u8>()),
        "[a-z ]{0,12}",
        proptest::collection::vec((role(), act()), 0..=30),
    )
        .prop_map(|(catalog, app, by, for_, justification, cmds)| Scenario {
            catalog,
            app,
            by,
            for_,
            justification,
            cmds,
        })
}

fn pick<T: Clone>(items: &[T], i: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[i as usize % items.len()].clone())
}

fn admins_of(catalog: &Catalog, app_id: &str) -> Vec<Person> {
    catalog.apps.get(app_id).map(|a| a.admins.clone()).unwrap_or_default()
}

fn actor_for(catalog: &Catalog, req: &Request, role: &Role) -> Actor {
    let other = || user("U0OTHER");
    let from = |people: Vec<Person>, i: u8| pick(&people, i).map(|p| Actor::user(person_party(&p), Source::Slack));
    match role {
        Role::Requester => Some(Actor::user(req.requested_by.clone(), Source::Slack)),
        Role::Beneficiary => Some(Actor::user(req.requested_for.clone(), Source::Slack)),
        Role::Other => None,
        Role::CurrentApprover(i) => from(req.current().map(|s| s.approvers.clone()).unwrap_or_default(), *i),
        Role::StepApprover(s, i) => pick(&req.steps, *s).and_then(|st| from(st.approvers, *i)),
        Role::GroupMember(i) => from(catalog.groups.values().flat_map(|g| g.members.clone()).collect(), *i),
        Role::AppAdmin(i) => from(admins_of(catalog, &req.app_id), *i),
        Role::OtherAppAdmin(i) => {
            let mine = admins_of(catalog, &req.app_id);
            let others: Vec<Person> = catalog
                .apps
                .values()
                .filter(|a| a.id != req.app_id)
                .flat_map(|a| a.admins.clone())
                .filter(|p| !mine.contains(p) && !catalog.settings.admins.contains(p))
                .collect();
            from(others, *i)
        }
        Role::SuperAdmin(i) => from(catalog.settings.admins.clone(), *i),
        Role::ApiToken => Some(token()),
        Role::Unresolved => Some(Actor::user(Party::new("U0CAROL", None), Source::Slack)),
    }
    .unwrap_or_else(other)
}

// ---- the oracle ----------------------------------------------------------------------

fn is_requester(req: &Request, who: &Party) -> bool {
    same_party(&req.requested_by, who) || same_party(&req.requested_for, who)
}

fn is_admin(catalog: &Catalog, app_id: &str, actor: &Actor) -> bool {
    actor.kind == ActorType::ApiToken
        || catalog.settings.admins.iter().chain(admins_of(catalog, app_id).iter()).any(|p| same(p, &actor.party))
}

fn is_final(s: Status) -> bool {
    matches!(s, Status::Approved | Status::Denied | Status::Canceled | Status::Expired | Status::Rejected)
}

/// Who a step asks, and whether it was routed to admins.
type Routed = (Vec<Person>, Option<Routing>);

/// The people configured for each step, after separation of duties and its
/// fallbacks (app admins, then super admins); `Err` when a step has nobody.
fn expected_routing(catalog: &Catalog, app_id: &str, by: &Party, for_: &Party) -> Result<Vec<Routed>, usize> {
    let app = &catalog.apps[app_id];
    if !app.approval {
        return Ok(Vec::new());
    }
    let keep = |people: &[Person]| -> Vec<Person> {
        people.iter().filter(|p| !same(p, by) && !same(p, for_)).cloned().collect()
    };
    let mut out = Vec::new();
    for (i, def) in app.steps.iter().enumerate() {
        let people = match &def.def {
            StepDef::User(p) | StepDef::Task(TaskAssignee::User(p)) => vec![p.clone()],
            StepDef::Group { group: g, .. } | StepDef::Task(TaskAssignee::Group(g)) => {
                catalog.groups[g].members.clone()
            }
            StepDef::Action { .. } => {
                out.push((Vec::new(), None));
                continue;
            }
        };
        let routed = [(keep(&people), None), (keep(&app.admins), Some(Routing::AppAdmins))]
            .into_iter()
            .chain([(keep(&catalog.settings.admins), Some(Routing::SuperAdmins))])
            .find(|(p, _)| !p.is_empty());
        match routed {
            Some(r) => out.push(r),
            None => return Err(i),
        }
    }
    Ok(out)
}

/// What the oracle expects of a command: success, or which kind of refusal.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Ok,
    Forbidden,
    /// Any other error (not pending, already decided, invalid input).
    Refused,
    /// A timer with nothing due.
    Nothing,
}

fn expect(catalog: &Catalog, req: &Request, actor: &Actor, act: &Act, now: Timestamp) -> Expect {
    let open = req.status.is_open();
    let admin = is_admin(catalog, &req.app_id, actor);
    let requester = is_requester(req, &actor.party);
    match act {
        Act::Decide { step, approve, .. } => {
            let k = step.map(usize::from).or(req.current_step).unwrap_or(usize::MAX);
            let Some(s) = req.steps.get(k) else { return Expect::Refused };
            let approver = s.approvers.iter().any(|p| same(p, &actor.party));
            if requester || !approver {
                Expect::Forbidden
            } else if !open || req.current_step != Some(k) || matches!(s.kind, StepKind::Task { .. }) && !approve {
                // Not this step's turn, or a task denied (a task can only be marked done).
                Expect::Refused
            } else {
                Expect::Ok
            }
        }
        Act::Cancel { as_admin: true, .. } if !admin => Expect::Forbidden,
        Act::Cancel { as_admin: false, .. } if !requester => Expect::Forbidden,
        Act::Cancel { .. } if open => Expect::Ok,
        Act::Cancel { .. } => Expect::Refused,
        Act::Override if !admin || requester => Expect::Forbidden,
        Act::Override if open => Expect::Ok,
        Act::Override => Expect::Refused,
        Act::Resend if !admin => Expect::Forbidden,
        Act::Resend if open && req.current_step.is_some() => Expect::Ok,
        Act::Resend => Expect::Refused,
        Act::Message(m) => {
            let n = m.replace('\0', "").trim().chars().count();
            if (1..=5000).contains(&n) {
                Expect::Ok
            } else {
                Expect::Refused
            }
        }
        Act::Tick { .. } => {
            if req.status != Status::Pending {
                return Expect::Nothing;
            }
            let ttl = TimeDelta::from_std(catalog.settings.request_ttl).unwrap();
            let every = TimeDelta::from_std(catalog.settings.reminder_after).unwrap();
            let step = req.current().unwrap();
            let last = step.reminded.or(step.activated).unwrap();
            if now - req.created >= ttl || now - last >= every {
                Expect::Ok
            } else {
                Expect::Nothing
            }
        }
    }
}

fn run(
    catalog: &Catalog,
    req: &Request,
    actor: &Actor,
    act: &Act,
    now: Timestamp,
) -> Result<Option<Changeset>, WorkflowError> {
    let r = req.clone();
    match act {
        Act::Decide { step, approve, comment } => {
            let k = step.map(usize::from).or(req.current_step).unwrap_or(usize::MAX);
            let d = if *approve { Decision::Approve } else { Decision::Deny };
            engine::decide(catalog, r, k, d, comment.clone(), actor, now).map(Some)
        }
        Act::Cancel { as_admin, reason } => engine::cancel(catalog, r, reason.clone(), *as_admin, actor, now).map(Some),
        Act::Override => engine::override_assign(catalog, r, actor, now).map(Some),
        Act::Resend => engine::resend(catalog, r, actor, now).map(Some),
        Act::Message(m) => engine::message(r, m, actor, now).map(Some),
        Act::Tick { .. } => Ok(timers::due_work(catalog, r, now)),
    }
}

// ---- invariants ------------------------------------------------------------------------

fn count(cs: &Changeset, t: &str) -> usize {
    cs.events.iter().filter(|e| e.event_type == t).count()
}

fn step_index(e: &LogEvent) -> Option<usize> {
    e.debug_context.debug_data.get("stepIndex").and_then(|v| v.as_u64()).map(|i| i as usize - 1)
}

const DECISIONS: [&str; 3] =
    ["app.access_request.approver.approve", "app.access_request.approver.deny", "app.access_request.task.complete"];

/// Open requests wait on exactly one step, everything before it approved and after it waiting;
/// final ones wait on nothing.
fn check_shape(req: &Request) -> Result<(), TestCaseError> {
    if req.status.is_open() {
        let i = req.current_step.ok_or_else(|| TestCaseError::fail("open without a current step"))?;
        for (k, s) in req.steps.iter().enumerate() {
            let want = match k.cmp(&i) {
                std::cmp::Ordering::Less => StepState::Approved,
                std::cmp::Ordering::Equal => StepState::Pending,
                std::cmp::Ordering::Greater => StepState::Waiting,
            };
            prop_assert_eq!(s.state, want, "step {} of an open request", k);
        }
    } else {
        prop_assert_eq!(req.current_step, None);
        // Every outcome closes or deletes what was left: no step of a final request is open.
        prop_assert!(
            req.steps.iter().all(|s| !matches!(s.state, StepState::Pending | StepState::Waiting)),
            "a final request has no open step: {:?}",
            req.steps.iter().map(|s| s.state).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Events and notices of one successful changeset against the change it made.
fn check_changeset(
    before: Option<&Request>,
    after: &Request,
    cs: &Changeset,
    actor: &Actor,
    act: Option<&Act>,
) -> Result<(), TestCaseError> {
    let from = before.map(|b| b.status);
    let changed_to = |s: Status| after.status == s && from != Some(s);
    for e in &cs.events {
        prop_assert_eq!(e.request_id.as_deref(), Some(after.id.as_str()), "{} names the request", e.event_type);
    }
    // Outcomes ⇔ their events.
    prop_assert_eq!(count(cs, "app.access_request.deny"), usize::from(changed_to(Status::Denied)));
    prop_assert_eq!(count(cs, "app.access_request.delete"), usize::from(changed_to(Status::Canceled)));
    prop_assert_eq!(count(cs, "app.access_request.expire"), usize::from(changed_to(Status::Expired)));
    let (grants, overrides) = (count(cs, "app.access_request.grant"), count(cs, "app.access_request.override"));
    prop_assert!(
        grants + overrides == usize::from(changed_to(Status::Approved)),
        "grant {} override {}",
        grants,
        overrides
    );
    prop_assert_eq!(count(cs, "application.user_membership.add"), grants + overrides);
    match &cs.assignment {
        None => prop_assert_eq!(grants + overrides, 0),
        Some(AssignmentChange::Grant(a)) => {
            let want = if overrides == 1 { AssignmentSource::Override } else { AssignmentSource::Workflow };
            prop_assert_eq!(a.source, want);
            prop_assert_eq!(&a.user_id, &after.requested_for.id);
            prop_assert_eq!(a.request_id.as_deref(), Some(after.id.as_str()));
        }
        Some(other) => prop_assert!(false, "unexpected assignment change {:?}", other),
    }
    if overrides == 1 {
        prop_assert!(matches!(act, Some(Act::Override)), "an override only from an admin override");
    }
    if changed_to(Status::Approved) {
        prop_assert!(after.granted.is_some() && after.grant_status.is_some());
    }
    if is_final(after.status) {
        prop_assert!(after.resolved.is_some(), "a final request is resolved");
    }

    // Every step that changed is explained by an event of this changeset.
    let old_states: Vec<StepState> = match before {
        Some(b) => b.steps.iter().map(|s| s.state).collect(),
        None => vec![StepState::Waiting; after.steps.len()],
    };
    prop_assert_eq!(old_states.len(), after.steps.len());
    let decisions: Vec<&LogEvent> = cs.events.iter().filter(|e| DECISIONS.contains(&e.event_type.as_str())).collect();
    prop_assert_eq!(decisions.len(), usize::from(matches!(act, Some(Act::Decide { .. }))));
    for e in &decisions {
        let k = step_index(e).ok_or_else(|| TestCaseError::fail("decision without stepIndex"))?;
        let want = if e.event_type.ends_with(".deny") { StepState::Denied } else { StepState::Approved };
        prop_assert_eq!(old_states[k], StepState::Pending, "the decided step {} was the open one", k);
        prop_assert_eq!(after.steps[k].state, want);
        prop_assert_eq!(&e.actor.id, &actor.party.id);
        prop_assert_eq!(after.steps[k].decided_by.as_deref(), Some(actor.party.id.as_str()));
        let task = matches!(after.steps[k].kind, StepKind::Task { .. });
        prop_assert_eq!(task, e.event_type == "app.access_request.task.complete");
    }
    let actions: Vec<usize> =
        cs.events.iter().filter(|e| e.event_type == "app.access_request.action").filter_map(step_index).collect();
    let deleted: Vec<usize> = cs
        .events
        .iter()
        .filter(|e| e.event_type == "app.access_request.override")
        .flat_map(|e| e.debug_context.debug_data["deletedSteps"].as_array().cloned().unwrap_or_default().into_iter())
        .map(|v| v.as_u64().unwrap() as usize - 1)
        .collect();
    for (k, (old, s)) in old_states.iter().zip(&after.steps).enumerate() {
        let new = s.state;
        if *old == new {
            prop_assert!(!actions.contains(&k) && !deleted.contains(&k));
            continue;
        }
        let explained = match (old, new) {
            (StepState::Waiting, StepState::Pending) => after.current_step == Some(k),
            (StepState::Pending, StepState::Approved | StepState::Denied) => {
                decisions.iter().any(|e| step_index(e) == Some(k))
            }
            (StepState::Waiting, StepState::Approved) => {
                matches!(s.kind, StepKind::Action { .. }) && actions.contains(&k)
            }
            (StepState::Waiting | StepState::Pending, StepState::Closed) => {
                matches!(after.status, Status::Canceled | Status::Expired | Status::Denied)
                    && from.is_some_and(|f| f.is_open())
            }
            (StepState::Waiting | StepState::Pending, StepState::Deleted) => deleted.contains(&k),
            _ => false,
        };
        prop_assert!(explained, "step {} went {:?} → {:?} without a matching event ({:?})", k, old, new, act);
    }
    for k in &actions {
        prop_assert!(matches!(after.steps[*k].kind, StepKind::Action { .. }), "action event on a non-action step");
        prop_assert_eq!(old_states[*k], StepState::Waiting);
    }

    // The requester (and the beneficiary) is never asked to decide.
    for n in &cs.notices {
        if let Notice::Ask { recipient, .. } = n {
            prop_assert!(
                !same(recipient, &after.requested_by) && !same(recipient, &after.requested_for),
                "{:?} asked on their own request",
                recipient
            );
        }
    }
    Ok(())
}

/// Status, step states and deciders, from the system log alone.
struct Replayed {
    status: Option<Status>,
    steps: Vec<StepState>,
    decided_by: BTreeMap<usize, String>,
}

fn replay(events: &[LogEvent]) -> Replayed {
    let mut r = Replayed { status: None, steps: Vec::new(), decided_by: BTreeMap::new() };
    let close = |steps: &mut Vec<StepState>, to: StepState| {
        for s in steps.iter_mut().filter(|s| matches!(s, StepState::Waiting)) {
            *s = to;
        }
    };
    for e in events {
        let k = step_index(e);
        match e.event_type.as_str() {
            "app.access_request.request" => {
                let plan = e.debug_context.debug_data.get("steps").and_then(|s| s.as_array()).map_or(0, Vec::len);
                r.steps = vec![StepState::Waiting; plan];
                r.status =
                    Some(if e.outcome.result == OutcomeResult::Failure { Status::Rejected } else { Status::Pending });
            }
            "app.access_request.approver.approve" | "app.access_request.task.complete" => {
                r.steps[k.unwrap()] = StepState::Approved;
                r.decided_by.insert(k.unwrap(), e.actor.id.clone());
            }
            "app.access_request.approver.deny" => {
                r.steps[k.unwrap()] = StepState::Denied;
                r.decided_by.insert(k.unwrap(), e.actor.id.clone());
            }
            "app.access_request.action" => {
                r.steps[k.unwrap()] = StepState::Approved;
                r.decided_by.insert(k.unwrap(), "accessbot".into());
            }
            "app.access_request.grant" => r.status = Some(Status::Approved),
            "app.access_request.deny" => {
                r.status = Some(Status::Denied);
                close(&mut r.steps, StepState::Closed);
            }
            "app.access_request.override" => {
                r.status = Some(Status::Approved);
                close(&mut r.steps, StepState::Deleted);
            }
            "app.access_request.delete" => {
                r.status = Some(Status::Canceled);
                close(&mut r.steps, StepState::Closed);
            }
            "app.access_request.expire" => {
                r.status = Some(Status::Expired);
                close(&mut r.steps, StepState::Closed);
            }
            _ => {}
        }
    }
    // The first step not yet decided is the one waiting for a decision.
    if r.status.is_some_and(|s| s.is_open()) {
        if let Some(s) = r.steps.iter_mut().find(|s| **s == StepState::Waiting) {
            *s = StepState::Pending;
        }
    }
    r
}

// ---- the property -------------------------------------------------------------------------

struct Stats {
    cases: usize,
    commands: usize,
    ok: BTreeMap<String, usize>,
    finals: BTreeMap<&'static str, usize>,
}

fn act_name(a: &Act) -> String {
    match a {
        Act::Decide { approve: true, .. } => "approve",
        Act::Decide { approve: false, .. } => "deny",
        Act::Cancel { as_admin: true, .. } => "admin cancel",
        Act::Cancel { as_admin: false, .. } => "cancel",
        Act::Override => "override",
        Act::Resend => "resend",
        Act::Message(_) => "message",
        Act::Tick { .. } => "tick",
    }
    .to_string()
}

fn check_scenario(catalogs: &[Catalog], sc: &Scenario, stats: &mut Stats) -> Result<(), TestCaseError> {
    let catalog = &catalogs[sc.catalog];
    let apps: Vec<&String> = catalog.apps.keys().collect();
    let app_id = apps[sc.app as usize % apps.len()].clone();
    let by = party(REQUESTERS[sc.by as usize % REQUESTERS.len()]);
    let for_ = sc.for_.map(|i| party(REQUESTERS[i as usize % REQUESTERS.len()])).unwrap_or_else(|| by.clone());
    let mut now = t0();
    let input = NewRequest {
        app_id: app_id.clone(),
        requested_by: by.clone(),
        requested_for: for_.clone(),
        justification: sc.justification.clone(),
        fields: Vec::new(),
        extension: None,
    };
    let submitter = Actor::user(by.clone(), Source::Slack);
    let submitted = engine::submit(catalog, input, &submitter, now);
    stats.cases += 1;
    if !same_party(&by, &for_) && !catalog.settings.allow_request_on_behalf {
        prop_assert!(matches!(submitted, Err(WorkflowError::Forbidden(_))), "on-behalf is off: {:?}", submitted.err());
        return Ok(());
    }
    let cs = submitted.map_err(|e| TestCaseError::fail(format!("submit failed: {e}")))?;
    let mut req = cs.request.clone().unwrap();
    prop_assert_eq!(req.version, 0);
    prop_assert_eq!(count(&cs, "app.access_request.request"), 1);
    prop_assert_eq!(&cs.events[0].event_type, "app.access_request.request");
    match expected_routing(catalog, &app_id, &by, &for_) {
        Err(_) => prop_assert_eq!(req.status, Status::Rejected),
        Ok(plan) => {
            prop_assert_eq!(req.steps.len(), plan.len());
            for (s, (people, routed)) in req.steps.iter().zip(plan) {
                prop_assert_eq!(&s.approvers, &people);
                prop_assert_eq!(s.routed_to, routed);
            }
        }
    }
    check_shape(&req)?;
    check_changeset(None, &req, &cs, &submitter, None)?;
    let mut log: Vec<LogEvent> = cs.events.clone();
    req.version = 1;

    let mut decided: BTreeMap<usize, usize> = BTreeMap::new();
    for (role, act) in &sc.cmds {
        stats.commands += 1;
        now += match act {
            Act::Tick { hours } => TimeDelta::hours(i64::from(*hours)),
            _ => TimeDelta::minutes(1),
        };
        let actor = actor_for(catalog, &req, role);
        let want = expect(catalog, &req, &actor, act, now);
        let got = run(catalog, &req, &actor, act, now);
        let ctx = || {
            format!("{} by {} ({:?}) on {:?} {:?}", act_name(act), actor.party.id, role, req.status, req.current_step)
        };
        let cs = match (&want, got) {
            (Expect::Ok, Ok(Some(cs))) => cs,
            (Expect::Nothing, Ok(None)) => continue,
            (Expect::Forbidden, Err(WorkflowError::Forbidden(_))) => continue,
            (Expect::Refused, Err(e)) if !matches!(e, WorkflowError::Forbidden(_)) => continue,
            (want, got) => {
                return Err(TestCaseError::fail(format!(
                    "{}: expected {want:?}, got {:?}",
                    ctx(),
                    got.map(|c| c.is_some())
                )))
            }
        };
        *stats.ok.entry(act_name(act)).or_default() += 1;
        let after = cs.request.clone().ok_or_else(|| TestCaseError::fail(format!("{}: no request", ctx())))?;
        prop_assert_eq!(after.version, req.version, "the changeset names the version it read");
        prop_assert_eq!(&after.id, &req.id);
        if is_final(req.status) {
            prop_assert_eq!(after.status, req.status, "{}: a final request changed status", ctx());
            prop_assert_eq!(&after.steps, &req.steps, "{}: a final request's steps changed", ctx());
        }
        if let Act::Decide { .. } = act {
            let k = step_index(
                cs.events.iter().find(|e| DECISIONS.contains(&e.event_type.as_str())).expect("a decision event"),
            )
            .unwrap();
            let step = &req.steps[k];
            prop_assert!(
                step.approvers.iter().any(|p| same(p, &actor.party)),
                "{}: not an approver of step {}",
                ctx(),
                k
            );
            prop_assert!(!is_requester(&req, &actor.party), "{}: the requester decided", ctx());
            prop_assert_ne!(actor.kind, ActorType::ApiToken);
        }
        check_changeset(Some(&req), &after, &cs, &actor, Some(act))?;
        check_shape(&after)?;
        for e in cs.events.iter().filter(|e| DECISIONS.contains(&e.event_type.as_str())) {
            let n = decided.entry(step_index(e).unwrap()).or_default();
            *n += 1;
            prop_assert!(*n <= 1, "{}: step decided twice", ctx());
        }
        log.extend(cs.events.iter().cloned());
        req = after;
        req.version += 1;
    }

    let replayed = replay(&log);
    prop_assert_eq!(replayed.status, Some(req.status), "replaying the log gives the status");
    prop_assert_eq!(&replayed.steps, &req.steps.iter().map(|s| s.state).collect::<Vec<_>>(), "replayed steps");
    for (k, s) in req.steps.iter().enumerate() {
        prop_assert_eq!(replayed.decided_by.get(&k).map(String::as_str), s.decided_by.as_deref(), "decider of {}", k);
    }
    *stats.finals.entry(req.status.as_str()).or_default() += 1;
    Ok(())
}

fn catalogs() -> [Catalog; 2] {
    [parse_catalog("a.toml", CATALOG_A).expect("catalog A"), parse_catalog("b.toml", CATALOG_B).expect("catalog B")]
}

/// Runs the property over `cases` scenarios and says what the generator reached.
fn run_property(mut runner: TestRunner) -> Stats {
    let catalogs = catalogs();
    let stats = std::cell::RefCell::new(Stats { cases: 0, commands: 0, ok: BTreeMap::new(), finals: BTreeMap::new() });
    let result = runner.run(&scenario(), |sc| check_scenario(&catalogs, &sc, &mut stats.borrow_mut()));
    let stats = stats.into_inner();
    eprintln!(
        "{} scenarios, {} commands; successful commands {:?}; final statuses {:?}",
        stats.cases, stats.commands, stats.ok, stats.finals
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    stats
}

fn config() -> Config {
    // `PROPTEST_CASES=5000 cargo test --test workflow_props` for a longer run. No
    // regression files: a failure prints its minimal scenario, which becomes a test.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// New random scenarios on every run.
#[test]
fn random_command_sequences_keep_the_workflow_invariants() {
    run_property(TestRunner::new(config()));
}

/// The same property on a fixed seed, which also shows the generator reaches every
/// outcome and every command (so no invariant above holds vacuously).
#[test]
fn seeded_command_sequences_reach_every_outcome() {
    let stats = run_property(TestRunner::new_with_rng(config(), TestRng::deterministic_rng(RngAlgorithm::ChaCha)));
    for s in ["APPROVED", "DENIED", "CANCELED", "EXPIRED", "REJECTED", "PENDING"] {
        assert!(stats.finals.get(s).copied().unwrap_or(0) > 0, "no scenario ended {s}: {:?}", stats.finals);
    }
    for a in ["approve", "deny", "cancel", "admin cancel", "override", "resend", "message", "tick"] {
        assert!(stats.ok.get(a).copied().unwrap_or(0) > 0, "no successful {a}: {:?}", stats.ok);
    }
}

/// Found by the property above: a step index far past the end (a click value
/// `req…:18446744073709551615`) overflowed while building the refusal message.
#[test]
fn a_step_index_past_the_end_is_refused_without_overflow() {
    let catalog = parse_catalog("a.toml", CATALOG_A).unwrap();
    let input = NewRequest {
        app_id: "grouped".into(),
        requested_by: party("U0REQ"),
        requested_for: party("U0REQ"),
        justification: String::new(),
        fields: Vec::new(),
        extension: None,
    };
    let req = engine::submit(&catalog, input, &user("U0REQ"), t0()).unwrap().request.unwrap();
    for step in [1, usize::MAX] {
        let got = engine::decide(&catalog, req.clone(), step, Decision::Approve, None, &user("U0BOB"), t0());
        assert!(matches!(got, Err(WorkflowError::Invalid(_))), "{step}: {:?}", got.map(|_| ()));
    }
}

/// A hand-made walk through every kind of step, as a readable anchor for the properties above.
#[test]
fn a_walk_through_every_step_kind_replays_from_the_log() {
    let catalog = parse_catalog("a.toml", CATALOG_A).unwrap();
    let now = t0();
    let input = NewRequest {
        app_id: "mixed".into(),
        requested_by: party("U0REQ"),
        requested_for: party("U0REQ"),
        justification: "walk".into(),
        fields: Vec::new(),
        extension: None,
    };
    let cs = engine::submit(&catalog, input, &user("U0REQ"), now).unwrap();
    let mut log = cs.events.clone();
    let mut req = cs.request.unwrap();
    for (step, who) in [(0, "U0ALICE"), (1, "U0CAROL"), (3, "U0OPS2"), (4, "U0TASK")] {
        req.version += 1;
        let cs = engine::decide(&catalog, req, step, Decision::Approve, None, &user(who), now).unwrap();
        log.extend(cs.events.clone());
        req = cs.request.unwrap();
    }
    assert_eq!(req.status, Status::Approved);
    assert_eq!(req.steps[2].state, StepState::Approved, "the action step ran on its own");
    let replayed = replay(&log);
    assert_eq!(replayed.status, Some(Status::Approved));
    assert!(replayed.steps.iter().all(|s| *s == StepState::Approved));
    assert_eq!(replayed.decided_by[&1], "U0CAROL");
    assert_eq!(log.iter().filter(|e| e.event_type == "app.access_request.grant").count(), 1);
}
