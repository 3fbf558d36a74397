//! The request state machine as pure functions: each takes what was read
//! and returns the [`Changeset`] to commit, or why the command is refused.

use rand::Rng;
use serde_json::json;

mod admin;
pub mod delegates;
mod fields;
pub mod timers;
pub mod webhooks;

pub use admin::*;
pub use fields::iso_duration;
use fields::validate_fields;
pub use fields::DURATION;

use super::catalog::{App, Catalog, EscalateTo, OktaTarget, Party, Person, StepDef, StepSpec, TaskAssignee};
use super::events::EventBuilder;
use super::model::ActorType;
use super::model::*;
use super::{Actor, WorkflowError};

/// `req` + 17 letters and digits, like Okta's request ids: 8 that sort by the
/// creation millisecond, then 9 random ones (53 bits). Ids made one after the
/// other land side by side in every index keyed by request id, so a commit
/// touches the last leaf of each instead of a random one.
pub fn new_request_id() -> String {
    // In ASCII order, so the text sorts as the number does.
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let base = ALPHABET.len() as u64;
    let mut ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let mut head = [b'0'; 8];
    for c in head.iter_mut().rev() {
        *c = ALPHABET[(ms % base) as usize];
        ms /= base;
    }
    let mut rng = rand::thread_rng();
    let tail = (0..9).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    format!("req{}{}", head.iter().map(|&c| c as char).collect::<String>(), tail.collect::<String>())
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
    /// Set to extend access the requester has.
    pub extension: Option<Extension>,
}

/// Admins of an app, and API tokens (trusted integrations), may administer its requests.
fn admin_of(catalog: &Catalog, actor: &Actor, app_id: &str) -> bool {
    actor.kind == ActorType::ApiToken || catalog.is_admin_of(&actor.party, app_id)
}

fn bad_field(field: &str, message: String) -> WorkflowError {
    WorkflowError::InvalidField { field: field.to_string(), message }
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

/// Approvers for a list of configured people once separation of duties is
/// applied, falling back to the app's admins, then the super admins, when too
/// few are left for the quorum (`required`); the fallback needs one approval.
fn route(
    catalog: &Catalog,
    app: &App,
    people: &[Person],
    required: u32,
    by: &Party,
    for_: &Party,
) -> Option<(Vec<Person>, Option<Routing>, u32)> {
    let direct = eligible(people, by, for_);
    if !direct.is_empty() && direct.len() >= required as usize {
        return Some((direct, None, required));
    }
    fallback(catalog, app, by, for_).map(|(people, routing)| (people, Some(routing), 1))
}

fn fallback(catalog: &Catalog, app: &App, by: &Party, for_: &Party) -> Option<(Vec<Person>, Routing)> {
    let admins = eligible(&app.admins, by, for_);
    if !admins.is_empty() {
        return Some((admins, Routing::AppAdmins));
    }
    let supers = eligible(&catalog.settings.admins, by, for_);
    (!supers.is_empty()).then_some((supers, Routing::SuperAdmins))
}

fn build_steps(
    catalog: &Catalog,
    app: &App,
    specs: &[StepSpec],
    by: &Party,
    for_: &Party,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for spec in specs {
        let def = &spec.def;
        let group = |gid: &str| catalog.groups.get(gid).ok_or_else(|| format!("group {gid} is not defined"));
        let mut required = 1;
        let (kind, people) = match def {
            StepDef::User(p) => (StepKind::User, vec![p.clone()]),
            StepDef::Group { group: gid, approvals } => {
                let g = group(gid)?;
                required = *approvals;
                (StepKind::Group { group_id: g.id.clone(), group_name: g.name.clone() }, g.members.clone())
            }
            StepDef::Action { url, secret_env, fields } => {
                (StepKind::Action { url: url.clone(), secret_env: secret_env.clone(), fields: fields.clone() }, vec![])
            }
            StepDef::Task(TaskAssignee::User(p)) => {
                (StepKind::Task { group_id: None, group_name: None }, vec![p.clone()])
            }
            StepDef::Task(TaskAssignee::Group(gid)) => {
                let g = group(gid)?;
                (StepKind::Task { group_id: Some(g.id.clone()), group_name: Some(g.name.clone()) }, g.members.clone())
            }
        };
        let (approvers, routed_to, required) = if matches!(kind, StepKind::Action { .. }) {
            (vec![], None, 1)
        } else {
            route(catalog, app, &people, required, by, for_).ok_or_else(|| {
                format!("step {} has no approver other than the requester, and no admin can take it", steps.len() + 1)
            })?
        };
        steps.push(Step {
            kind,
            approvers,
            routed_to,
            state: StepState::Waiting,
            activated: None,
            decided_by: None,
            decided: None,
            comment: None,
            reminded: None,
            required,
            approvals: Vec::new(),
            escalation: spec.escalation.as_ref().map(|e| StepEscalation {
                after_secs: e.after.as_secs(),
                to: e.to.clone(),
                escalated: None,
                asked: Vec::new(),
            }),
            delegates: Vec::new(),
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
    if step.required > 1 {
        m.insert("approvalsRequired".into(), json!(step.required));
    }
    m
}

fn ask_all(req: &Request, index: usize, kind: AskKind) -> Vec<Notice> {
    let Some(step) = req.steps.get(index) else { return Vec::new() };
    ask(req, index, kind, &step.approvers)
}

/// Asks these approvers of step `index` (people added to it: escalation, delegates).
fn ask(req: &Request, index: usize, kind: AskKind, people: &[Person]) -> Vec<Notice> {
    let Some(step) = req.steps.get(index) else { return Vec::new() };
    people
        .iter()
        .map(|p| Notice::Ask {
            request: req.view(),
            step: index,
            step_label: step.label(),
            routed_to: step.routed_to,
            recipient: p.clone(),
            kind,
            task: matches!(step.kind, StepKind::Task { .. }),
            on_behalf_of: step.delegates.iter().find(|d| &d.delegate == p).map(|d| d.for_person.to_string()),
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
        app_id: req.app_id.clone(),
        app_name: req.app_name.clone(),
        recipient: req.requested_for.id.clone(),
        event,
    }
}

fn feed(catalog: &Catalog, event: FeedEvent) -> Option<Notice> {
    catalog.settings.admin_channel.as_ref().map(|c| Notice::AdminFeed { channel: c.clone(), event })
}

/// The request's id, app and beneficiary, as the admin feed names them.
fn feed_ids(req: &Request) -> (String, String, String) {
    (req.id.clone(), req.app_name.clone(), req.requested_for.id.clone())
}

fn touch(req: &mut Request, actor: &Actor, now: Timestamp) {
    req.last_updated = now;
    req.last_updated_by = actor.party.id.clone();
}

/// Final approval: records the assignment (capped by `max_duration` and the
/// `end_date` field), fires the provisioning hook and Okta, logs the membership.
fn grant(
    catalog: &Catalog,
    req: &mut Request,
    source: AssignmentSource,
    actor: &Actor,
    now: Timestamp,
    cs: &mut Changeset,
) {
    let app = catalog.apps.get(&req.app_id);
    req.status = Status::Approved;
    req.resolved = Some(now);
    req.current_step = None;
    req.granted = Some(now);
    // An extension adds its time to the current end (or to now, when that has passed).
    let from = req.extension.map_or(now, |e| e.ends.max(now));
    let (until, duration) = fields::access_window(app, &req.field_values, from);
    req.access_until = until;
    req.access_duration = duration;
    let granted = req.extension.map_or(now, |e| e.granted);
    let pending = webhooks::provisioned(app);
    req.grant_status = Some(if pending { GrantStatus::Pending } else { GrantStatus::Granted });
    cs.assignment = Some(AssignmentChange::Grant(Assignment {
        user_id: req.requested_for.id.clone(),
        app_id: req.app_id.clone(),
        request_id: Some(req.id.clone()),
        source,
        granted,
        expires: until,
        warned_day: false,
        warned_hour: false,
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
        .data("expires", json!(until))
        .build(),
    );
    let grant = ProvisionAction::Grant;
    cs.notices.extend(webhooks::provisioning(app, grant, Some(&req.id), &req.requested_for, until, now));
}

/// Longest justification or text field answer, in characters.
pub const MAX_TEXT: usize = 2000;

/// Who may request `app_id` for whom: the app is in the catalog and
/// requestable, and on-behalf requests are allowed when it is one.
pub fn check_requestable<'c>(
    catalog: &'c Catalog,
    app_id: &str,
    requested_by: &Party,
    requested_for: &Party,
) -> Result<&'c App, WorkflowError> {
    let app = catalog.apps.get(app_id).ok_or_else(|| WorkflowError::UnknownApp { app_id: app_id.to_string() })?;
    if !app.self_service {
        return Err(WorkflowError::NotRequestable { app_id: app.id.clone(), app_name: app.name.clone() });
    }
    if !requested_by.is(requested_for) && !catalog.settings.allow_request_on_behalf {
        return Err(forbidden("requests on behalf of someone else are turned off"));
    }
    for who in [requested_by, requested_for] {
        if !catalog.may_request(app, who) {
            return Err(forbidden(format!(
                "{} is not open to {} (its requesters are set in the config)",
                app.name, who.id
            )));
        }
    }
    Ok(app)
}

/// A new request, validated, not yet routed (`SUBMITTED`, no steps).
pub fn new_request(
    catalog: &Catalog,
    input: NewRequest,
    actor: &Actor,
    now: Timestamp,
) -> Result<Request, WorkflowError> {
    let app = check_requestable(catalog, &input.app_id, &input.requested_by, &input.requested_for)?;
    let mut justification = clean(Some(input.justification)).unwrap_or_default();
    let field_values = validate_fields(app, input.fields, &mut justification, now)?;
    let given = justification.chars().count();
    if given > MAX_TEXT {
        return Err(WorkflowError::TooLong { field: "justification".into(), max: MAX_TEXT, given });
    }
    Ok(Request {
        id: new_request_id(),
        app_id: app.id.clone(),
        app_name: app.name.clone(),
        requested_by: input.requested_by,
        requested_for: input.requested_for,
        justification,
        field_values,
        status: Status::Submitted,
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
        flagged: None,
        access_until: None,
        access_duration: None,
        revocation_status: None,
        revoked: None,
        extension: input.extension,
        due: None,
        version: 0,
    })
}

/// Creates a request whose people are known: validated, routed and first step
/// asked, or granted at once when the app needs no approval.
pub fn submit(catalog: &Catalog, input: NewRequest, actor: &Actor, now: Timestamp) -> Result<Changeset, WorkflowError> {
    let req = new_request(catalog, input, actor, now)?;
    Ok(route_new(catalog, req, actor, now))
}

/// Routes a request [`new_request`] validated, whose people are known.
pub fn route_new(catalog: &Catalog, req: Request, actor: &Actor, now: Timestamp) -> Changeset {
    let created = created_event(&req, actor, now);
    start(catalog, req, created, actor, now)
}

fn created_event(req: &Request, actor: &Actor, now: Timestamp) -> EventBuilder {
    EventBuilder::new("app.access_request.request", actor, now, format!("Access request created for {}", req.app_name))
        .data("justification", req.justification.clone())
}

/// Creates a request that waits (`SUBMITTED`) until the directory says who
/// `waiting_for` are; nobody is asked before then.
pub fn submit_unresolved(req: Request, waiting_for: &[String], actor: &Actor, now: Timestamp) -> Changeset {
    let mut cs = Changeset::default();
    cs.events
        .push(created_event(&req, actor, now).data("waitingForIdentity", json!(waiting_for)).request(&req).build());
    cs.notices.extend(waiting_for.iter().map(|id| Notice::Resolve { person: Person::Slack(id.clone()) }));
    cs.request = Some(req);
    cs
}

/// Routes a `SUBMITTED` request once its people are known (`req` carries
/// them): the same routing as at creation, logged as `app.access_request.route`.
pub fn route_submitted(catalog: &Catalog, mut req: Request, now: Timestamp) -> Option<Changeset> {
    if req.status != Status::Submitted {
        return None;
    }
    let actor = Actor::system();
    touch(&mut req, &actor, now);
    let ev = EventBuilder::new("app.access_request.route", &actor, now, "Access request routed: requester identified");
    Some(start(catalog, req, ev, &actor, now))
}

/// Rejects a `SUBMITTED` request whose people could not be identified.
pub fn reject_unresolved(mut req: Request, reason: String, now: Timestamp) -> Option<Changeset> {
    if req.status != Status::Submitted {
        return None;
    }
    let actor = Actor::system();
    touch(&mut req, &actor, now);
    req.status = Status::Rejected;
    req.resolved = Some(now);
    req.reason = Some(reason.clone());
    let mut cs = Changeset::default();
    cs.events.push(
        EventBuilder::new("app.access_request.route", &actor, now, "Access request rejected: requester not identified")
            .outcome(OutcomeResult::Failure, Some(reason.clone()))
            .request(&req)
            .build(),
    );
    cs.notices.push(tell_requester(&req, RequesterEvent::Rejected { reason }));
    cs.request = Some(req);
    Some(cs)
}

/// An extension goes through the app's `extend_steps` when it has them.
fn steps_for<'a>(app: &'a App, req: &Request) -> &'a [StepSpec] {
    if req.extension.is_some() && !app.extend_steps.is_empty() {
        &app.extend_steps
    } else {
        &app.steps
    }
}

/// Builds the steps for the request's people (separation of duties applied)
/// and starts the workflow; `logged` is the event that records it.
fn start(catalog: &Catalog, mut req: Request, logged: EventBuilder, actor: &Actor, now: Timestamp) -> Changeset {
    let mut cs = Changeset::default();
    req.status = Status::Pending;
    let Some(app) = catalog.apps.get(&req.app_id) else {
        let reason = format!("app {} was removed", req.app_id);
        return rejected(req, logged, reason, now, cs);
    };
    let built = if app.approval {
        build_steps(catalog, app, steps_for(app, &req), &req.requested_by, &req.requested_for)
    } else {
        Ok(vec![])
    };
    match built {
        Err(reason) => return rejected(req, logged, reason, now, cs),
        Ok(steps) if steps.is_empty() => {
            cs.events.push(logged.data("approval", false).request(&req).build());
            grant(catalog, &mut req, AssignmentSource::Workflow, actor, now, &mut cs);
            cs.events.push(
                EventBuilder::new("app.access_request.grant", actor, now, "Access request granted")
                    .request(&req)
                    .data("approval", false)
                    .build(),
            );
            cs.notices
                .push(tell_requester(&req, RequesterEvent::Approved { source: AssignmentSource::Workflow, by: None }));
            let (request_id, app_name, user) = feed_ids(&req);
            cs.notices.extend(feed(catalog, FeedEvent::Granted { request_id, app_name, user, approval: false }));
        }
        Ok(steps) => {
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
            cs.events.push(logged.data("steps", plan).request(&req).build());
            advance(catalog, &mut req, 0, actor, now, &mut cs);
            if let Some(first) = req.current().map(Step::label) {
                cs.notices.push(tell_requester(&req, RequesterEvent::Submitted { first_step: first }));
            }
        }
    }
    cs.request = Some(req);
    cs
}

fn rejected(mut req: Request, logged: EventBuilder, reason: String, now: Timestamp, mut cs: Changeset) -> Changeset {
    req.status = Status::Rejected;
    req.resolved = Some(now);
    req.reason = Some(reason.clone());
    cs.events.push(logged.outcome(OutcomeResult::Failure, Some(reason.clone())).request(&req).build());
    cs.notices.push(tell_requester(&req, RequesterEvent::Rejected { reason }));
    cs.request = Some(req);
    cs
}

/// Whether `who`, asked at `step`, still belongs to the group they were
/// asked for: a member removed from a Slack user group since can no longer
/// decide for it. Someone asked by the step's escalation answers for the
/// escalation's group; a step rerouted to admins asks them, not the group.
fn still_member(catalog: &Catalog, step: &Step, who: &Party) -> bool {
    let escalation = step.escalation.as_ref().filter(|e| e.asked.iter().any(|p| p.matches(who)));
    if let Some(e) = escalation {
        return match &e.to {
            EscalateTo::Group(group) => catalog.membership_holds(group, who),
            EscalateTo::Person(_) => true,
        };
    }
    let group = match &step.kind {
        StepKind::Group { group_id, .. } | StepKind::Task { group_id: Some(group_id), .. } => group_id,
        _ => return true,
    };
    step.routed_to.is_some() || catalog.membership_holds(group, who)
}

/// A configured person as a party to match group members against.
fn party_of(p: &Person) -> Party {
    match p {
        Person::Slack(id) => Party::new(id.clone(), None),
        Person::Email(e) => Party::new(String::new(), Some(e.clone())),
    }
}

/// Whether `who` may still decide `step` as one it asks: in their own right
/// while still in its group, or as the delegate of someone who still is.
fn may_still_decide(catalog: &Catalog, step: &Step, who: &Party) -> bool {
    (step.asks_directly(who) && still_member(catalog, step, who))
        || step
            .delegates
            .iter()
            .any(|d| d.delegate.matches(who) && still_member(catalog, step, &party_of(&d.for_person)))
}

/// Whether the current step of `req` waits for `who` (the queue, the App Home).
pub fn awaits(catalog: &Catalog, req: &Request, who: &Party) -> bool {
    req.awaits(who) && req.current().is_some_and(|s| may_still_decide(catalog, s, who))
}

/// Whether `actor` may decide this step at `now`: an approver of it (or the
/// delegate of one, while the delegation lasts), still in the group it was
/// asked for, not the requester, and the step is the open current one.
/// Returns the approver a delegate decides for.
pub fn check_decider(
    catalog: &Catalog,
    req: &Request,
    step_index: usize,
    actor: &Actor,
    now: Timestamp,
) -> Result<Option<Person>, WorkflowError> {
    let step = req
        .steps
        .get(step_index)
        .ok_or_else(|| WorkflowError::Invalid(format!("{} has no step {}", req.id, step_index.saturating_add(1))))?;
    if req.involves_as_requester(&actor.party) {
        return Err(forbidden("you cannot decide on your own request"));
    }
    if !step.may_decide(&actor.party) {
        return Err(forbidden(format!("you are not an approver of step {} of {}", step_index + 1, req.id)));
    }
    let for_person = match step.delegated_to(&actor.party, now) {
        _ if step.asks_directly(&actor.party) => None,
        Some(d) => Some(d.for_person.clone()),
        None => return Err(forbidden(format!("your delegation for step {} of {} has ended", step_index + 1, req.id))),
    };
    // A delegate's right is the approver's: it ends when they leave the user group.
    let decides_for = for_person.as_ref().map_or_else(|| actor.party.clone(), party_of);
    if !still_member(catalog, step, &decides_for) {
        let who =
            for_person.as_ref().map_or_else(|| "you are".to_string(), |p| format!("{p}, whom you decide for, is"));
        return Err(forbidden(format!(
            "{who} no longer a member of {} (a Slack user group), so you cannot decide step {} of {}",
            step.label(),
            step_index + 1,
            req.id
        )));
    }
    if !req.status.is_open() || req.current_step != Some(step_index) {
        return Err(WorkflowError::AlreadyDecided {
            request: req.id.clone(),
            status: req.status,
            by: step.decided_by.clone(),
        });
    }
    if step.approved_by(&actor.party, for_person.as_ref()) {
        return Err(WorkflowError::AlreadyApproved {
            request: req.id.clone(),
            approvals: step.approvals.len(),
            required: step.required,
        });
    }
    Ok(for_person)
}

/// The approval record of `actor` on `step` (for the approver a delegate decides for).
fn approval(
    step: &Step,
    actor: &Actor,
    for_person: &Option<Person>,
    comment: &Option<String>,
    now: Timestamp,
) -> Approval {
    let direct = step.approvers.iter().find(|p| p.matches(&actor.party) && step.asks_directly(&actor.party));
    Approval {
        by: actor.party.id.clone(),
        at: now,
        comment: comment.clone(),
        on_behalf_of: for_person.as_ref().map(|p| p.key().to_string()),
        counts_as: for_person.as_ref().or(direct).map(|p| p.key().to_string()),
    }
}

/// An approval that does not reach the step's quorum yet: counted, logged,
/// and every approver's message shows the progress.
fn count_approval(
    mut req: Request,
    step_index: usize,
    comment: Option<String>,
    for_person: Option<Person>,
    actor: &Actor,
    now: Timestamp,
) -> Changeset {
    let mut cs = Changeset::default();
    touch(&mut req, actor, now);
    let step = &mut req.steps[step_index];
    let a = approval(step, actor, &for_person, &comment, now);
    step.approvals.push(a);
    let mut ev = EventBuilder::new(
        "app.access_request.approver.approve",
        actor,
        now,
        format!(
            "Approver approved step {} of the access request ({} of {})",
            step_index + 1,
            step.approvals.len(),
            step.required
        ),
    )
    .request(&req);
    for (k, v) in step_data(&req.steps[step_index], step_index) {
        ev = ev.data(&k, v);
    }
    ev = ev.data("approvals", req.steps[step_index].approvals.len());
    if let Some(p) = &for_person {
        ev = ev.data("onBehalfOf", p.to_string());
    }
    if let Some(c) = comment {
        ev = ev.data("comment", c);
    }
    cs.events.push(ev.build());
    cs.notices.extend(progress_all(&req, step_index));
    cs.request = Some(req);
    cs
}

fn progress_all(req: &Request, index: usize) -> Vec<Notice> {
    let Some(step) = req.steps.get(index) else { return Vec::new() };
    let approved: Vec<String> = step.approvals.iter().map(|a| a.by.clone()).collect();
    step.approvers
        .iter()
        .map(|p| Notice::Progress {
            request: req.view(),
            step: index,
            step_label: step.label(),
            routed_to: step.routed_to,
            recipient: p.clone(),
            approved: approved.clone(),
            required: step.required,
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// Moves the request to step `index` and on: an action step fires its webhook
/// and completes at once; the first step that needs a person is asked; past
/// the last step the request is granted.
fn advance(catalog: &Catalog, req: &mut Request, mut index: usize, actor: &Actor, now: Timestamp, cs: &mut Changeset) {
    loop {
        let Some(step) = req.steps.get(index).cloned() else {
            grant(catalog, req, AssignmentSource::Workflow, actor, now, cs);
            cs.events.push(
                EventBuilder::new(
                    "app.access_request.grant",
                    &Actor::system(),
                    now,
                    "Access request granted: all steps approved",
                )
                .request(req)
                .build(),
            );
            cs.notices
                .push(tell_requester(req, RequesterEvent::Approved { source: AssignmentSource::Workflow, by: None }));
            let (request_id, app_name, user) = feed_ids(req);
            cs.notices.extend(feed(catalog, FeedEvent::Granted { request_id, app_name, user, approval: true }));
            return;
        };
        if let StepKind::Action { url, secret_env, fields } = &step.kind {
            let body = webhooks::action_body(req, index, fields, now);
            cs.notices.push(Notice::Webhook {
                url: url.clone(),
                secret_env: secret_env.clone(),
                body,
                purpose: WebhookPurpose::Action { request_id: req.id.clone(), step: index },
            });
            let s = &mut req.steps[index];
            s.state = StepState::Approved;
            s.activated = Some(now);
            s.decided_by = Some("accessbot".into());
            s.decided = Some(now);
            let mut ev =
                EventBuilder::new("app.access_request.action", &Actor::system(), now, "Workflow action called")
                    .request(req)
                    .data("url", super::redact::redact_url(url));
            for (k, v) in step_data(&step, index) {
                ev = ev.data(&k, v);
            }
            cs.events.push(ev.build());
            index += 1;
            continue;
        }
        let s = &mut req.steps[index];
        s.state = StepState::Pending;
        s.activated = Some(now);
        req.current_step = Some(index);
        cs.notices.extend(ask_all(req, index, AskKind::New));
        return;
    }
}

/// Records one approver's decision on the current step (or a task marked done).
pub fn decide(
    catalog: &Catalog,
    mut req: Request,
    step_index: usize,
    decision: Decision,
    comment: Option<String>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Changeset, WorkflowError> {
    let for_person = check_decider(catalog, &req, step_index, actor, now)?;
    let task = matches!(req.steps[step_index].kind, StepKind::Task { .. });
    if task && decision == Decision::Deny {
        return Err(WorkflowError::Invalid("a task can only be marked done".into()));
    }
    let comment = clean(comment);
    let approve = decision == Decision::Approve;
    let step = &req.steps[step_index];
    if approve && !task && step.approvals.len() + 1 < step.required as usize {
        return Ok(count_approval(req, step_index, comment, for_person, actor, now));
    }
    let mut cs = Changeset::default();
    touch(&mut req, actor, now);
    let step = &mut req.steps[step_index];
    if approve && step.required > 1 {
        let a = approval(step, actor, &for_person, &comment, now);
        step.approvals.push(a);
    }
    step.state = if approve { StepState::Approved } else { StepState::Denied };
    step.decided_by = Some(actor.party.id.clone());
    step.decided = Some(now);
    step.comment = comment.clone();
    let data = step_data(step, step_index);
    let (etype, message) = match (task, approve) {
        (true, _) => ("app.access_request.task.complete", format!("Task of step {} marked done", step_index + 1)),
        (false, true) => (
            "app.access_request.approver.approve",
            format!("Approver approved step {} of the access request", step_index + 1),
        ),
        (false, false) => (
            "app.access_request.approver.deny",
            format!("Approver denied step {} of the access request", step_index + 1),
        ),
    };
    let mut ev = EventBuilder::new(etype, actor, now, message).request(&req);
    for (k, v) in data {
        ev = ev.data(&k, v);
    }
    if let Some(c) = &comment {
        ev = ev.data("comment", c.clone());
    }
    if let Some(p) = &for_person {
        ev = ev.data("onBehalfOf", p.to_string());
    }
    cs.events.push(ev.build());
    let outcome = if approve { CloseKind::Approved } else { CloseKind::Denied };
    cs.notices.extend(close_all(&req, step_index, outcome, Some(&actor.party.id)));

    if !approve {
        req.status = Status::Denied;
        req.resolved = Some(now);
        req.current_step = None;
        for s in req.steps.iter_mut().filter(|s| s.state == StepState::Waiting) {
            s.state = StepState::Closed;
        }
        cs.events.push(
            EventBuilder::new("app.access_request.deny", actor, now, "Access request denied")
                .request(&req)
                .outcome(OutcomeResult::Deny, Some(format!("denied at step {}", step_index + 1)))
                .build(),
        );
        cs.notices.push(tell_requester(&req, RequesterEvent::Denied { by: actor.party.id.clone() }));
        let (request_id, app_name, user) = feed_ids(&req);
        let by = actor.party.id.clone();
        cs.notices.extend(feed(catalog, FeedEvent::Denied { request_id, app_name, user, by }));
    } else {
        advance(catalog, &mut req, step_index + 1, actor, now, &mut cs);
        if let Some(next_step) = req.current().map(Step::label) {
            cs.notices.push(tell_requester(
                &req,
                RequesterEvent::StepApproved { step: step_index, by: actor.party.id.clone(), next_step },
            ));
        }
    }
    cs.request = Some(req);
    Ok(cs)
}

/// The notices every request change implies: the overviews (App Home) of the
/// people involved, and a reply in each approver message's thread for events
/// worth following. Comments stay in the system log.
pub fn derive_notices(before: Option<&Request>, cs: &mut Changeset) {
    let Some(req) = cs.request.as_ref() else { return };
    let mut users: Vec<Person> =
        vec![Person::Slack(req.requested_for.id.clone()), Person::Slack(req.requested_by.id.clone())];
    let steps = [before.and_then(Request::current), req.current()];
    for step in steps.into_iter().flatten() {
        users.extend(step.approvers.iter().cloned());
    }
    if let Some(b) = before {
        for (old, new) in b.steps.iter().zip(&req.steps) {
            if old.state != new.state {
                users.extend(new.approvers.iter().cloned());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    users.retain(|u| seen.insert(u.key().to_string()));
    let mut extra = vec![Notice::HomeChanged { users }];
    if !req.steps.is_empty() {
        for e in cs.events.iter().filter(|e| e.request_id.as_deref() == Some(req.id.as_str())) {
            if let Some(event) = thread_event(e) {
                extra.push(Notice::Thread { request_id: req.id.clone(), event });
            }
        }
    }
    cs.notices.extend(extra);
}

/// The thread reply a system-log event is worth, if any.
fn thread_event(e: &LogEvent) -> Option<ThreadEvent> {
    let by = (e.actor.kind == ActorType::User).then(|| e.actor.id.clone());
    let step = e.debug_context.debug_data.get("stepIndex").and_then(|v| v.as_u64()).unwrap_or(0);
    let step = usize::try_from(step).unwrap_or(0);
    Some(match e.event_type.as_str() {
        "app.access_request.approver.approve" => match counted(e) {
            Some((approvals, required)) if approvals < required => {
                ThreadEvent::ApprovalCounted { step, by, approvals, required }
            }
            _ => ThreadEvent::StepApproved { step, by },
        },
        "app.access_request.approver.deny" => ThreadEvent::StepDenied { step, by },
        "app.access_request.task.complete" => ThreadEvent::TaskDone { step, by },
        "app.access_request.grant" => ThreadEvent::Granted,
        "app.access_request.deny" => ThreadEvent::Denied,
        "app.access_request.delete" => ThreadEvent::Canceled { by },
        "app.access_request.expire" => ThreadEvent::Expired,
        "app.access_request.override" => ThreadEvent::Overridden { by },
        "app.access_request.escalate" => {
            let to = e.debug_context.debug_data.get("escalatedTo").and_then(|m| m.as_str()).unwrap_or_default();
            ThreadEvent::Escalated { step, to: to.to_string() }
        }
        "app.access_request.message" => {
            let text = e.debug_context.debug_data.get("message").and_then(|m| m.as_str()).unwrap_or_default();
            let from = e.actor.display_name.clone().unwrap_or_else(|| e.actor.id.clone());
            ThreadEvent::Message { from, text: text.to_string() }
        }
        _ => return None,
    })
}

/// `(approvals so far, required)` of an approval event on a step with a quorum.
fn counted(e: &LogEvent) -> Option<(usize, usize)> {
    let d = &e.debug_context.debug_data;
    let approvals = usize::try_from(d.get("approvals")?.as_u64()?).ok()?;
    let required = usize::try_from(d.get("approvalsRequired")?.as_u64()?).ok()?;
    Some((approvals, required))
}
