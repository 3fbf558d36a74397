//! What time does to requests and assignments: reminders, expiry, warnings
//! before time-bound access ends, its revocation — and what a webhook's final
//! outcome changes. Each returns `None` when nothing is due.

use super::*;

/// When the jobs loop next has work on a request: its expiry, the current
/// step's escalation or its next reminder, whichever comes first.
pub fn next_due(catalog: &Catalog, req: &Request) -> Option<Timestamp> {
    if req.status != Status::Pending {
        return None;
    }
    let ttl = chrono::Duration::from_std(catalog.settings.request_ttl).ok()?;
    let every = chrono::Duration::from_std(catalog.settings.reminder_after).ok();
    let step = req.current();
    let remind = step.and_then(|s| Some(s.reminded.or(s.activated)? + every?));
    let escalate = step.and_then(|s| s.escalation.as_ref()?.due(s.activated));
    let delegation_ends = step.and_then(|s| s.delegates.iter().map(|d| d.until).min());
    [Some(req.created + ttl), remind, escalate, delegation_ends].into_iter().flatten().min()
}

/// What time makes due on a pending request: expiry after `request_ttl`,
/// else delegates whose delegation ended leave the current step, else its
/// escalation, else a reminder to its approvers after `reminder_after` (again
/// every interval).
pub fn due_work(catalog: &Catalog, req: Request, now: Timestamp) -> Option<Changeset> {
    if req.status != Status::Pending {
        return None;
    }
    let delegation_ended = req.current().is_some_and(|s| s.delegates.iter().any(|d| d.until <= now));
    if delegation_ended && !expires(catalog, &req, now) {
        return super::delegates::withdraw_expired(req, now);
    }
    let index = req.current_step;
    let escalates = index.and_then(|i| {
        let s = req.steps.get(i)?;
        s.escalation.as_ref()?.due(s.activated)
    });
    match escalates {
        Some(at) if at <= now && !expires(catalog, &req, now) && target_known(catalog, &req) => {
            escalate(catalog, req, now)
        }
        _ => remind_or_expire(catalog, req, now),
    }
}

/// An escalation to a Slack user group waits until its members have been read
/// (the pass after they are tries again), rather than finding no one.
fn target_known(catalog: &Catalog, req: &Request) -> bool {
    let to = req.current().and_then(|s| s.escalation.as_ref()).map(|e| &e.to);
    match to {
        Some(EscalateTo::Group(g)) => {
            catalog.groups.get(g).is_none_or(|g| g.slack_usergroup.is_none() || g.is_known_usergroup())
        }
        _ => true,
    }
}

fn expires(catalog: &Catalog, req: &Request, now: Timestamp) -> bool {
    chrono::Duration::from_std(catalog.settings.request_ttl).is_ok_and(|ttl| now - req.created >= ttl)
}

/// Offers the current step to its `escalate_to` people too (separation of
/// duties applied; people already asked are not asked twice). Still one decision.
fn escalate(catalog: &Catalog, mut req: Request, now: Timestamp) -> Option<Changeset> {
    let index = req.current_step?;
    let step = req.steps.get(index)?;
    let esc = step.escalation.clone()?;
    let (label, people) = match &esc.to {
        EscalateTo::Group(g) => match catalog.groups.get(g) {
            Some(group) => (group.name.clone(), group.members.clone()),
            None => (g.clone(), Vec::new()),
        },
        EscalateTo::Person(p) => (p.to_string(), vec![p.clone()]),
    };
    let asked: Vec<Person> = eligible(&people, &req.requested_by, &req.requested_for)
        .into_iter()
        .filter(|p| !step.approvers.contains(p))
        .collect();
    let actor = Actor::system();
    let after = std::time::Duration::from_secs(esc.after_secs);
    let mut ev = EventBuilder::new(
        "app.access_request.escalate",
        &actor,
        now,
        format!("Step {} undecided after {}: offered to {label}", index + 1, humantime::format_duration(after)),
    )
    .request(&req)
    .data("escalateAfter", humantime::format_duration(after).to_string())
    .data("escalatedTo", label.clone())
    .data("asked", json!(asked.iter().map(|p| p.to_string()).collect::<Vec<_>>()));
    for (k, v) in step_data(step, index) {
        ev = ev.data(&k, v);
    }
    if asked.is_empty() {
        ev = ev.outcome(OutcomeResult::Failure, Some(format!("no one in {label} can decide this request")));
    }
    let mut cs = Changeset::default();
    cs.events.push(ev.build());
    touch(&mut req, &actor, now);
    let step = &mut req.steps[index];
    step.approvers.extend(asked.iter().cloned());
    if let Some(e) = step.escalation.as_mut() {
        e.escalated = Some(now);
        e.asked = asked.clone();
    }
    cs.notices.extend(ask(&req, index, AskKind::Escalated, &asked));
    cs.request = Some(req);
    Some(cs)
}

/// A reminder to the current approvers after `reminder_after` (again every
/// interval), or expiry after `request_ttl`.
fn remind_or_expire(catalog: &Catalog, mut req: Request, now: Timestamp) -> Option<Changeset> {
    let actor = Actor::system();
    let mut cs = Changeset::default();
    if expires(catalog, &req, now) {
        touch(&mut req, &actor, now);
        req.status = Status::Expired;
        req.resolved = Some(now);
        let current = req.current_step.take();
        for s in req.steps.iter_mut().filter(|s| matches!(s.state, StepState::Waiting | StepState::Pending)) {
            s.state = StepState::Closed;
        }
        cs.events.push(
            EventBuilder::new("app.access_request.expire", &actor, now, "Access request expired before a decision")
                .request(&req)
                .data("requestTtl", humantime::format_duration(catalog.settings.request_ttl).to_string())
                .build(),
        );
        if let Some(i) = current {
            cs.notices.extend(close_all(&req, i, CloseKind::Expired, None));
        }
        cs.notices.push(tell_requester(&req, RequesterEvent::Expired));
        let (request_id, app_name, user) = feed_ids(&req);
        cs.notices.extend(feed(catalog, FeedEvent::Expired { request_id, app_name, user }));
        cs.request = Some(req);
        return Some(cs);
    }
    let every = chrono::Duration::from_std(catalog.settings.reminder_after).ok()?;
    let index = req.current_step?;
    let step = req.steps.get(index)?;
    let last = step.reminded.or(step.activated)?;
    if now - last < every {
        return None;
    }
    let mut ev =
        EventBuilder::new("app.access_request.remind", &actor, now, "Current approvers reminded").request(&req);
    for (k, v) in step_data(step, index) {
        ev = ev.data(&k, v);
    }
    cs.events.push(ev.build());
    cs.notices.extend(ask_all(&req, index, AskKind::Reminder));
    req.steps[index].reminded = Some(now);
    req.last_updated = now;
    cs.request = Some(req);
    Some(cs)
}

/// For an assignment that ends: the one-day or one-hour warning, or the revocation once it has ended.
pub fn access_due(catalog: &Catalog, a: &Assignment, request: Option<Request>, now: Timestamp) -> Option<Changeset> {
    let ends = a.expires?;
    let actor = Actor::system();
    let app_name = catalog.apps.get(&a.app_id).map(|x| x.name.clone()).unwrap_or_else(|| a.app_id.clone());
    if ends <= now {
        let user =
            request.as_ref().map(|r| r.requested_for.clone()).unwrap_or_else(|| Party::new(a.user_id.clone(), None));
        return revoke(catalog, &a.app_id, &user, Some(a), request, Revocation::AccessEnded, &actor, now).ok();
    }
    let hour = ends - now <= chrono::Duration::hours(1);
    let day = ends - now <= chrono::Duration::days(1);
    if (hour && a.warned_hour) || (!hour && (!day || a.warned_day)) {
        return None;
    }
    let warned =
        if hour { Assignment { warned_hour: true, ..a.clone() } } else { Assignment { warned_day: true, ..a.clone() } };
    let mut cs = Changeset {
        assignment: Some(AssignmentChange::Warned {
            user_id: a.user_id.clone(),
            app_id: a.app_id.clone(),
            hour,
            due: warned.due(),
        }),
        ..Changeset::default()
    };
    cs.notices.push(Notice::Requester {
        request: None,
        app_id: a.app_id.clone(),
        app_name,
        recipient: a.user_id.clone(),
        event: RequesterEvent::AccessEnding { ends },
    });
    Some(cs)
}

/// A provisioning call's or an action webhook's final outcome: provisioning
/// sets grant/revocation status (a failure sticks, so with a hook and Okta both
/// one failure is never hidden by the other's success); each provisioning
/// outcome and every failure is logged, and failures are told to admins.
pub fn provision_settled(
    catalog: &Catalog,
    via: &Provisioner,
    purpose: &ProvisionPurpose,
    request: Option<Request>,
    error: Option<&str>,
    now: Timestamp,
) -> Changeset {
    let mut cs = Changeset::default();
    let ok = error.is_none();
    let action = matches!(purpose, ProvisionPurpose::Action { .. });
    if let Some(mut req) = request {
        set_status(&mut req, purpose, ok);
        if !action || !ok {
            touch(&mut req, &Actor::system(), now);
            cs.request = Some(req);
        }
    }
    if ok && action {
        return cs;
    }
    let what = describe(via, purpose);
    let mut ev = settled_event(via, &what, now);
    if let Some(r) = &cs.request {
        ev = ev.request(r);
    } else if let ProvisionPurpose::Grant { app_id, user_id, .. } | ProvisionPurpose::Revoke { app_id, user_id, .. } =
        purpose
    {
        ev = ev.app(app_id, app_id).user(user_id, None);
    }
    if let Some(e) = error {
        ev = ev.outcome(OutcomeResult::Failure, Some(e.to_string()));
        let request_id = cs.request.as_ref().map(|r| r.id.clone());
        let event = FeedEvent::WebhookFailed { request_id, what, error: e.to_string() };
        cs.notices.extend(feed(catalog, event));
    }
    cs.events.push(ev.build());
    cs
}

fn set_status(req: &mut Request, purpose: &ProvisionPurpose, ok: bool) {
    match purpose {
        ProvisionPurpose::Grant { .. } if req.grant_status != Some(GrantStatus::Failed) => {
            req.grant_status = Some(if ok { GrantStatus::Granted } else { GrantStatus::Failed });
        }
        ProvisionPurpose::Revoke { .. } if req.revocation_status != Some(RevocationStatus::Failed) => {
            req.revocation_status = Some(if ok { RevocationStatus::Revoked } else { RevocationStatus::Failed });
        }
        _ => {}
    }
}

/// What was called, in words: "webhook action of step 2", "Okta grant (assign to app 0oa1)".
fn describe(via: &Provisioner, purpose: &ProvisionPurpose) -> String {
    match (via, purpose) {
        (_, ProvisionPurpose::Action { step, .. }) => format!("webhook action of step {}", step + 1),
        (Provisioner::Webhook, ProvisionPurpose::Grant { .. }) => "webhook provisioning (grant)".into(),
        (Provisioner::Webhook, ProvisionPurpose::Revoke { .. }) => "webhook provisioning (revoke)".into(),
        (Provisioner::Okta(t), ProvisionPurpose::Grant { .. }) => match t {
            OktaTarget::App(id) => format!("Okta grant (assign to app {id})"),
            OktaTarget::Group(id) => format!("Okta grant (add to group {id})"),
        },
        (Provisioner::Okta(t), ProvisionPurpose::Revoke { .. }) => match t {
            OktaTarget::App(id) => format!("Okta revoke (remove from app {id})"),
            OktaTarget::Group(id) => format!("Okta revoke (remove from group {id})"),
        },
    }
}

/// Webhooks keep their event type; the Okta connector's calls are `app.access_request.provision`.
fn settled_event(via: &Provisioner, what: &str, now: Timestamp) -> EventBuilder {
    let actor = Actor::system();
    match via {
        Provisioner::Webhook => EventBuilder::new("app.access_request.webhook", &actor, now, format!("Webhook {what}")),
        Provisioner::Okta(target) => {
            EventBuilder::new("app.access_request.provision", &actor, now, format!("Provisioning: {what}"))
                .data("provisioner", "OKTA")
                .data("oktaTarget", json!(target))
        }
    }
}
