//! The request state machine as pure functions: each takes what was read
//! and returns the [`Changeset`] to commit, or why the command is refused.

use rand::Rng;
use serde_json::json;

use super::catalog::{App, Catalog, FieldKind, Party, Person, StepDef};
use super::events::EventBuilder;
use super::model::ActorType;
use super::model::*;
use super::{Actor, WorkflowError};

/// `req` + 17 letters and digits, like Okta's request ids.
pub fn new_request_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..17).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("req{tail}")
}

pub fn is_request_id(s: &str) -> bool {
    s.len() == 20 && s.starts_with("req") && s[3..].chars().all(|c| c.is_ascii_alphanumeric())
}

#[derive(Clone, Debug)]
pub struct NewRequest {
    pub app_id: String,
    /// Who asks; the actor may be an integration acting for them.
    pub requested_by: Party,
    pub requested_for: Party,
    pub justification: String,
    /// Answers to the app's request fields, by field id.
    pub fields: Vec<(String, String)>,
}

/// Admins of an app, and API tokens (trusted integrations), may administer its requests.
fn admin_of(catalog: &Catalog, actor: &Actor, app_id: &str) -> bool {
    actor.kind == ActorType::ApiToken || catalog.is_admin_of(&actor.party, app_id)
}

fn bad_field(field: &str, message: String) -> WorkflowError {
    WorkflowError::InvalidField { field: field.to_string(), message }
}

/// Checks answers against the app's fields; a `justification` answer is the justification.
fn validate_fields(
    app: &App,
    given: Vec<(String, String)>,
    justification: &mut String,
    now: Timestamp,
) -> Result<Vec<FieldValue>, WorkflowError> {
    let mut out: Vec<FieldValue> = Vec::new();
    for (id, value) in given {
        // Every request may carry a justification, whether or not the app asks for it as a field.
        if id == "justification" && !app.fields.iter().any(|f| f.id == id) {
            *justification = clean(Some(value)).unwrap_or_default();
            continue;
        }
        let def = app.fields.iter().find(|f| f.id == id).ok_or_else(|| {
            let known: Vec<&str> = app.fields.iter().map(|f| f.id.as_str()).collect();
            bad_field(
                &id,
                format!(
                    "{} has no field `{id}` (fields: {})",
                    app.name,
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ),
            )
        })?;
        if out.iter().any(|f| f.id == id) {
            return Err(bad_field(&id, format!("field `{id}` is given twice")));
        }
        let value = clean(Some(value)).unwrap_or_default();
        if value.is_empty() {
            continue;
        }
        if value.chars().count() > 2000 {
            return Err(bad_field(&id, format!("{} is longer than 2000 characters", def.label)));
        }
        match def.kind {
            FieldKind::Select if !def.options.contains(&value) => {
                return Err(bad_field(&id, format!("{} must be one of: {}", def.label, def.options.join(", "))));
            }
            FieldKind::Date => {
                let date = chrono::NaiveDate::parse_from_str(&value, "%Y-%m-%d")
                    .map_err(|_| bad_field(&id, format!("{} must be a date like 2026-12-31", def.label)))?;
                if date < now.date_naive() {
                    return Err(bad_field(&id, format!("{} is in the past", def.label)));
                }
            }
            _ => {}
        }
        if id == "justification" && def.kind == FieldKind::Text {
            *justification = value.clone();
        }
        out.push(FieldValue { id: def.id.clone(), label: def.label.clone(), kind: def.kind, value });
    }
    if !justification.is_empty() && !out.iter().any(|f| f.id == "justification") {
        if let Some(def) = app.fields.iter().find(|f| f.id == "justification") {
            out.push(FieldValue {
                id: def.id.clone(),
                label: def.label.clone(),
                kind: def.kind,
                value: justification.clone(),
            });
        }
    }
    for def in app.fields.iter().filter(|f| f.required) {
        if !out.iter().any(|f| f.id == def.id) {
            return Err(bad_field(&def.id, format!("{} needs a value for \"{}\"", app.name, def.label)));
        }
    }
    Ok(out)
}

/// User text as stored: trimmed, without NUL (which PostgreSQL text cannot hold), empty = none.
fn clean(s: Option<String>) -> Option<String> {
    s.map(|t| t.replace('\0', "").trim().to_string()).filter(|t| !t.is_empty())
}

fn forbidden(reason: impl Into<String>) -> WorkflowError {
    WorkflowError::Forbidden(reason.into())
}

/// Who may decide a step once separation of duties is applied.
fn eligible(people: &[Person], req_by: &Party, req_for: &Party) -> Vec<Person> {
    people.iter().filter(|p| !p.matches(req_by) && !p.matches(req_for)).cloned().collect()
}

fn build_steps(catalog: &Catalog, app: &App, by: &Party, for_: &Party) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for def in &app.steps {
        let (kind, people) = match def {
            StepDef::User(p) => (StepKind::User, vec![p.clone()]),
            StepDef::Group(gid) => {
                let g = catalog.groups.get(gid).ok_or_else(|| format!("group {gid} is not defined"))?;
                (StepKind::Group { group_id: g.id.clone(), group_name: g.name.clone() }, g.members.clone())
            }
        };
        let mut approvers = eligible(&people, by, for_);
        let mut routed_to = None;
        if approvers.is_empty() {
            approvers = eligible(&app.admins, by, for_);
            routed_to = Some(Routing::AppAdmins);
            if approvers.is_empty() {
                approvers = eligible(&catalog.settings.admins, by, for_);
                routed_to = Some(Routing::SuperAdmins);
            }
            if approvers.is_empty() {
                return Err(format!(
                    "step {} has no approver other than the requester, and no admin can take it",
                    steps.len() + 1
                ));
            }
        }
        steps.push(Step {
            kind,
            approvers,
            routed_to,
            state: StepState::Waiting,
            activated: None,
            decided_by: None,
            decided: None,
            comment: None,
        });
    }
    Ok(steps)
}

fn step_data(step: &Step, index: usize) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("stepIndex".into(), json!(index + 1));
    m.insert("approverType".into(), json!(step.approver_type()));
    if let StepKind::Group { group_id, group_name } = &step.kind {
        m.insert("groupId".into(), json!(group_id));
        m.insert("groupName".into(), json!(group_name));
    }
    if let Some(r) = step.routed_to {
        m.insert("routedTo".into(), json!(r));
    }
    m
}

fn ask_all(req: &Request, index: usize, kind: AskKind) -> Vec<Notice> {
    let Some(step) = req.steps.get(index) else { return Vec::new() };
    step.approvers
        .iter()
        .map(|p| Notice::Ask {
            request: req.view(),
            step: index,
            step_label: step.label(),
            routed_to: step.routed_to,
            recipient: p.clone(),
            kind,
        })
        .collect()
}

fn close_all(req: &Request, index: usize, outcome: CloseKind, by: Option<&str>) -> Vec<Notice> {
    let Some(step) = req.steps.get(index) else { return Vec::new() };
    step.approvers
        .iter()
        .map(|p| Notice::Close {
            request: req.view(),
            step: index,
            recipient: p.clone(),
            outcome,
            by: by.map(str::to_string),
        })
        .collect()
}

fn tell_requester(req: &Request, event: RequesterEvent) -> Notice {
    Notice::Requester {
        request: Some(req.view()),
        app_name: req.app_name.clone(),
        recipient: req.requested_for.id.clone(),
        event,
    }
}

fn feed(catalog: &Catalog, text: String) -> Option<Notice> {
    catalog.settings.admin_channel.as_ref().map(|c| Notice::AdminFeed { channel: c.clone(), text })
}

fn touch(req: &mut Request, actor: &Actor, now: Timestamp) {
    req.last_updated = now;
    req.last_updated_by = actor.party.id.clone();
}

fn grant(req: &mut Request, source: AssignmentSource, actor: &Actor, now: Timestamp, cs: &mut Changeset) {
    req.status = Status::Approved;
    req.resolved = Some(now);
    req.current_step = None;
    req.grant_status = Some(GrantStatus::Granted);
    req.granted = Some(now);
    cs.assignment = Some(AssignmentChange::Grant(Assignment {
        user_id: req.requested_for.id.clone(),
        app_id: req.app_id.clone(),
        request_id: Some(req.id.clone()),
        source,
        granted: now,
        expires: None,
    }));
    cs.events.push(
        EventBuilder::new(
            "application.user_membership.add",
            actor,
            now,
            format!("Add user to application membership: {}", req.app_name),
        )
        .request(req)
        .data("assignmentSource", json!(source))
        .build(),
    );
}

/// Creates a request: validated, first step asked, or granted at once when
/// the app needs no approval.
pub fn submit(catalog: &Catalog, input: NewRequest, actor: &Actor, now: Timestamp) -> Result<Changeset, WorkflowError> {
    let app =
        catalog.apps.get(&input.app_id).ok_or_else(|| WorkflowError::NotFound(format!("app `{}`", input.app_id)))?;
    if !app.self_service {
        return Err(WorkflowError::Invalid(format!("{} is not requestable; ask an admin", app.name)));
    }
    if !input.requested_by.is(&input.requested_for) && !catalog.settings.allow_request_on_behalf {
        return Err(forbidden("requests on behalf of someone else are turned off"));
    }
    let mut justification = clean(Some(input.justification)).unwrap_or_default();
    let field_values = validate_fields(app, input.fields, &mut justification, now)?;
    let mut req = Request {
        id: new_request_id(),
        app_id: app.id.clone(),
        app_name: app.name.clone(),
        requested_by: input.requested_by,
        requested_for: input.requested_for,
        justification,
        field_values,
        status: Status::Pending,
        current_step: None,
        steps: Vec::new(),
        created: now,
        created_by: actor.party.id.clone(),
        last_updated: now,
        last_updated_by: actor.party.id.clone(),
        resolved: None,
        grant_status: None,
        granted: None,
        reason: None,
        version: 0,
    };
    let mut cs = Changeset::default();
    let built =
        if app.approval { build_steps(catalog, app, &req.requested_by, &req.requested_for) } else { Ok(vec![]) };
    let mut created =
        EventBuilder::new("app.access_request.request", actor, now, format!("Access request created for {}", app.name))
            .data("justification", req.justification.clone());
    match built {
        Err(reason) => {
            req.status = Status::Rejected;
            req.resolved = Some(now);
            req.reason = Some(reason.clone());
            created = created.outcome(OutcomeResult::Failure, Some(reason.clone()));
            cs.events.push(created.request(&req).build());
            cs.notices.push(tell_requester(&req, RequesterEvent::Rejected { reason }));
        }
        Ok(steps) if steps.is_empty() => {
            cs.events.push(created.data("approval", false).request(&req).build());
            grant(&mut req, AssignmentSource::Workflow, actor, now, &mut cs);
            cs.events.push(
                EventBuilder::new("app.access_request.grant", actor, now, "Access request granted")
                    .request(&req)
                    .data("approval", false)
                    .build(),
            );
            cs.notices
                .push(tell_requester(&req, RequesterEvent::Approved { source: AssignmentSource::Workflow, by: None }));
            cs.notices.extend(feed(
                catalog,
                format!("{}: {} was granted {} (no approval needed)", req.id, req.requested_for.id, req.app_name),
            ));
        }
        Ok(mut steps) => {
            steps[0].state = StepState::Pending;
            steps[0].activated = Some(now);
            let plan: Vec<_> = steps
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut m = step_data(s, i);
                    m.insert("approvers".into(), json!(s.approvers.iter().map(|p| p.to_string()).collect::<Vec<_>>()));
                    serde_json::Value::Object(m)
                })
                .collect();
            req.steps = steps;
            req.current_step = Some(0);
            cs.events.push(created.data("steps", plan).request(&req).build());
            cs.notices.extend(ask_all(&req, 0, AskKind::New));
            let first = req.steps[0].label();
            cs.notices.push(tell_requester(&req, RequesterEvent::Submitted { first_step: first }));
        }
    }
    cs.request = Some(req);
    Ok(cs)
}

/// Whether `actor` may decide this step now: an approver of it, not the
/// requester, and the step is the open current one.
pub fn check_decider(req: &Request, step_index: usize, actor: &Actor) -> Result<(), WorkflowError> {
    let step = req
        .steps
        .get(step_index)
        .ok_or_else(|| WorkflowError::Invalid(format!("{} has no step {}", req.id, step_index + 1)))?;
    if req.involves_as_requester(&actor.party) {
        return Err(forbidden("you cannot decide on your own request"));
    }
    if !step.may_decide(&actor.party) {
        return Err(forbidden(format!("you are not an approver of step {} of {}", step_index + 1, req.id)));
    }
    if !req.status.is_open() || req.current_step != Some(step_index) {
        return Err(WorkflowError::AlreadyDecided {
            request: req.id.clone(),
            status: req.status,
            by: step.decided_by.clone(),
        });
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// Records one approver's decision on the current step.
pub fn decide(
    catalog: &Catalog,
    mut req: Request,
    step_index: usize,
    decision: Decision,
    comment: Option<String>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Changeset, WorkflowError> {
    check_decider(&req, step_index, actor)?;
    let comment = clean(comment);
    let approve = matches!(decision, Decision::Approve);
    let mut cs = Changeset::default();
    touch(&mut req, actor, now);
    let step = &mut req.steps[step_index];
    step.state = if approve { StepState::Approved } else { StepState::Denied };
    step.decided_by = Some(actor.party.id.clone());
    step.decided = Some(now);
    step.comment = comment.clone();
    let data = step_data(step, step_index);
    let (etype, verb) = if approve {
        ("app.access_request.approver.approve", "approved")
    } else {
        ("app.access_request.approver.deny", "denied")
    };
    let mut ev =
        EventBuilder::new(etype, actor, now, format!("Approver {verb} step {} of the access request", step_index + 1))
            .request(&req);
    for (k, v) in data {
        ev = ev.data(&k, v);
    }
    if let Some(c) = &comment {
        ev = ev.data("comment", c.clone());
    }
    cs.events.push(ev.build());
    let outcome = if approve { CloseKind::Approved } else { CloseKind::Denied };
    cs.notices.extend(close_all(&req, step_index, outcome, Some(&actor.party.id)));

    if !approve {
        req.status = Status::Denied;
        req.resolved = Some(now);
        req.current_step = None;
        cs.events.push(
            EventBuilder::new("app.access_request.deny", actor, now, "Access request denied")
                .request(&req)
                .outcome(OutcomeResult::Deny, Some(format!("denied at step {}", step_index + 1)))
                .build(),
        );
        cs.notices.push(tell_requester(&req, RequesterEvent::Denied { by: actor.party.id.clone() }));
        cs.notices.extend(feed(
            catalog,
            format!("{}: {} for {} was denied by <@{}>", req.id, req.app_name, req.requested_for.id, actor.party.id),
        ));
    } else if step_index + 1 < req.steps.len() {
        let next = step_index + 1;
        req.current_step = Some(next);
        req.steps[next].state = StepState::Pending;
        req.steps[next].activated = Some(now);
        cs.notices.extend(ask_all(&req, next, AskKind::New));
        let next_step = req.steps[next].label();
        cs.notices.push(tell_requester(
            &req,
            RequesterEvent::StepApproved { step: step_index, by: actor.party.id.clone(), next_step },
        ));
    } else {
        grant(&mut req, AssignmentSource::Workflow, actor, now, &mut cs);
        cs.events.push(
            EventBuilder::new(
                "app.access_request.grant",
                &super::Actor::system(),
                now,
                "Access request granted: all steps approved",
            )
            .request(&req)
            .build(),
        );
        cs.notices
            .push(tell_requester(&req, RequesterEvent::Approved { source: AssignmentSource::Workflow, by: None }));
        cs.notices
            .extend(feed(catalog, format!("{}: {} for {} was approved", req.id, req.app_name, req.requested_for.id)));
    }
    cs.request = Some(req);
    Ok(cs)
}

fn ensure_open(req: &Request) -> Result<(), WorkflowError> {
    if req.status.is_open() {
        Ok(())
    } else {
        Err(WorkflowError::NotPending { request: req.id.clone(), status: req.status })
    }
}

fn close_remaining(req: &mut Request, to: StepState) -> Option<usize> {
    let current = req.current_step.take();
    for s in req.steps.iter_mut().filter(|s| matches!(s.state, StepState::Waiting | StepState::Pending)) {
        s.state = to;
    }
    current
}

/// Cancels a pending request: by its requester, or by an admin (`as_admin`).
pub fn cancel(
    catalog: &Catalog,
    mut req: Request,
    reason: Option<String>,
    as_admin: bool,
    actor: &Actor,
    now: Timestamp,
) -> Result<Changeset, WorkflowError> {
    if as_admin {
        if !admin_of(catalog, actor, &req.app_id) {
            return Err(forbidden(format!("only admins of {} can cancel its requests", req.app_name)));
        }
    } else if !req.involves_as_requester(&actor.party) {
        return Err(forbidden("only the requester can cancel this request"));
    }
    ensure_open(&req)?;
    let mut cs = Changeset::default();
    touch(&mut req, actor, now);
    req.status = Status::Canceled;
    req.resolved = Some(now);
    let current = close_remaining(&mut req, StepState::Closed);
    let reason = clean(reason);
    let mut ev = EventBuilder::new("app.access_request.delete", actor, now, "Access request canceled")
        .request(&req)
        .data("canceledBy", if as_admin { "ADMIN" } else { "REQUESTER" });
    if let Some(r) = &reason {
        ev = ev.data("reason", r.clone());
    }
    cs.events.push(ev.build());
    if let Some(i) = current {
        cs.notices.extend(close_all(&req, i, CloseKind::Canceled, Some(&actor.party.id)));
    }
    if as_admin {
        cs.notices.push(tell_requester(&req, RequesterEvent::Canceled { by: actor.party.id.clone(), reason }));
    }
    cs.notices.extend(feed(
        catalog,
        format!("{}: {} for {} was canceled by <@{}>", req.id, req.app_name, req.requested_for.id, actor.party.id),
    ));
    cs.request = Some(req);
    Ok(cs)
}

/// Admin override: approve now, delete the remaining steps, grant.
pub fn override_assign(
    catalog: &Catalog,
    mut req: Request,
    actor: &Actor,
    now: Timestamp,
) -> Result<Changeset, WorkflowError> {
    if !admin_of(catalog, actor, &req.app_id) {
        return Err(forbidden(format!("only admins of {} can override its requests", req.app_name)));
    }
    if req.involves_as_requester(&actor.party) {
        return Err(forbidden("you cannot override your own request"));
    }
    ensure_open(&req)?;
    let mut cs = Changeset::default();
    touch(&mut req, actor, now);
    let deleted: Vec<usize> = req
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.state, StepState::Waiting | StepState::Pending))
        .map(|(i, _)| i + 1)
        .collect();
    let current = close_remaining(&mut req, StepState::Deleted);
    cs.events.push(
        EventBuilder::new("app.access_request.override", actor, now, "Admin assigned the app; remaining steps deleted")
            .request(&req)
            .data("deletedSteps", deleted)
            .build(),
    );
    if let Some(i) = current {
        cs.notices.extend(close_all(&req, i, CloseKind::Overridden, Some(&actor.party.id)));
    }
    grant(&mut req, AssignmentSource::Override, actor, now, &mut cs);
    cs.notices.push(tell_requester(
        &req,
        RequesterEvent::Approved { source: AssignmentSource::Override, by: Some(actor.party.id.clone()) },
    ));
    cs.notices.extend(feed(
        catalog,
        format!(
            "{}: {} for {} was assigned by override by <@{}>",
            req.id, req.app_name, req.requested_for.id, actor.party.id
        ),
    ));
    cs.request = Some(req);
    Ok(cs)
}

/// Admin resend: ask the current step's approvers again.
pub fn resend(catalog: &Catalog, mut req: Request, actor: &Actor, now: Timestamp) -> Result<Changeset, WorkflowError> {
    if !admin_of(catalog, actor, &req.app_id) {
        return Err(forbidden(format!("only admins of {} can resend its requests", req.app_name)));
    }
    ensure_open(&req)?;
    let index = req.current_step.ok_or_else(|| WorkflowError::Invalid(format!("{} has no current step", req.id)))?;
    let mut cs = Changeset::default();
    touch(&mut req, actor, now);
    let step = &req.steps[index];
    let mut ev =
        EventBuilder::new("app.access_request.resend", actor, now, "Approval request resent to the current approvers")
            .request(&req);
    for (k, v) in step_data(step, index) {
        ev = ev.data(&k, v);
    }
    cs.events.push(ev.build());
    cs.notices.extend(ask_all(&req, index, AskKind::Resend));
    cs.request = Some(req);
    Ok(cs)
}

/// Admin direct assignment, no request.
pub fn grant_direct(
    catalog: &Catalog,
    app_id: &str,
    user: &Party,
    existing: Option<&Assignment>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Changeset, WorkflowError> {
    let app = catalog.apps.get(app_id).ok_or_else(|| WorkflowError::NotFound(format!("app `{app_id}`")))?;
    if !admin_of(catalog, actor, app_id) {
        return Err(forbidden(format!("only admins of {} can assign it", app.name)));
    }
    if user.is(&actor.party) {
        return Err(forbidden("you cannot assign an app to yourself; request it instead"));
    }
    if existing.is_some() {
        return Err(WorkflowError::Invalid(format!("<@{}> already has {}", user.id, app.name)));
    }
    let mut cs = Changeset {
        assignment: Some(AssignmentChange::Grant(Assignment {
            user_id: user.id.clone(),
            app_id: app.id.clone(),
            request_id: None,
            source: AssignmentSource::Direct,
            granted: now,
            expires: None,
        })),
        ..Changeset::default()
    };
    cs.events.push(
        EventBuilder::new(
            "application.user_membership.add",
            actor,
            now,
            format!("Add user to application membership: {}", app.name),
        )
        .app(&app.id, &app.name)
        .user(&user.id, user.email.as_deref())
        .data("assignmentSource", json!(AssignmentSource::Direct))
        .build(),
    );
    cs.notices.push(Notice::Requester {
        request: None,
        app_name: app.name.clone(),
        recipient: user.id.clone(),
        event: RequesterEvent::Approved { source: AssignmentSource::Direct, by: Some(actor.party.id.clone()) },
    });
    cs.notices.extend(feed(
        catalog,
        format!("{} was assigned to <@{}> directly by <@{}>", app.name, user.id, actor.party.id),
    ));
    Ok(cs)
}

/// Admin removal of an assignment.
pub fn revoke(
    catalog: &Catalog,
    app_id: &str,
    user: &Party,
    existing: Option<&Assignment>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Changeset, WorkflowError> {
    let app = catalog.apps.get(app_id).ok_or_else(|| WorkflowError::NotFound(format!("app `{app_id}`")))?;
    if !admin_of(catalog, actor, app_id) {
        return Err(forbidden(format!("only admins of {} can revoke it", app.name)));
    }
    let Some(existing) = existing else {
        return Err(WorkflowError::Invalid(format!("<@{}> does not have {}", user.id, app.name)));
    };
    let mut cs = Changeset {
        assignment: Some(AssignmentChange::Revoke { user_id: user.id.clone(), app_id: app.id.clone() }),
        ..Changeset::default()
    };
    let mut ev = EventBuilder::new(
        "application.user_membership.remove",
        actor,
        now,
        format!("Remove user from application membership: {}", app.name),
    );
    if let Some(r) = &existing.request_id {
        ev = ev.request_id(r);
    }
    cs.events.push(ev.app(&app.id, &app.name).user(&user.id, user.email.as_deref()).build());
    cs.notices.push(Notice::Requester {
        request: None,
        app_name: app.name.clone(),
        recipient: user.id.clone(),
        event: RequesterEvent::Revoked { by: actor.party.id.clone() },
    });
    cs.notices.extend(feed(catalog, format!("{} was revoked from <@{}> by <@{}>", app.name, user.id, actor.party.id)));
    Ok(cs)
}

/// A message on a request (from an integration or an admin), shown to the requester.
pub fn message(mut req: Request, text: &str, actor: &Actor, now: Timestamp) -> Result<Changeset, WorkflowError> {
    let text = clean(Some(text.to_string())).unwrap_or_default();
    if text.is_empty() || text.chars().count() > 5000 {
        return Err(bad_field("message", "a message is 1 to 5000 characters".into()));
    }
    let mut cs = Changeset::default();
    touch(&mut req, actor, now);
    cs.events.push(
        EventBuilder::new("app.access_request.message", actor, now, "Message added to the access request")
            .request(&req)
            .data("message", text.clone())
            .build(),
    );
    cs.notices.push(tell_requester(&req, RequesterEvent::Message { from: actor.party.id.clone(), text }));
    cs.request = Some(req);
    Ok(cs)
}
