//! Admin and requester commands on existing requests and assignments:
//! cancel, override, resend, direct grant, revoke, messages, suggestions.

use serde_json::json;

use super::*;

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
    let (request_id, app_name, user) = feed_ids(&req);
    cs.notices.extend(feed(catalog, FeedEvent::Canceled { request_id, app_name, user, by: actor.party.id.clone() }));
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
    grant(catalog, &mut req, AssignmentSource::Override, actor, now, &mut cs);
    cs.notices.push(tell_requester(
        &req,
        RequesterEvent::Approved { source: AssignmentSource::Override, by: Some(actor.party.id.clone()) },
    ));
    let (request_id, app_name, user) = feed_ids(&req);
    let by = actor.party.id.clone();
    cs.notices.extend(feed(catalog, FeedEvent::Overridden { request_id, app_name, user, by }));
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
    let app = catalog.apps.get(app_id).ok_or_else(|| WorkflowError::NotFound(format!("app {app_id}")))?;
    if !admin_of(catalog, actor, app_id) {
        return Err(forbidden(format!("only admins of {} can assign it", app.name)));
    }
    if user.is(&actor.party) {
        return Err(forbidden("you cannot assign an app to yourself; request it instead"));
    }
    if existing.is_some() {
        return Err(WorkflowError::Invalid(format!("{} already has {}", user.id, app.name)));
    }
    let (expires, _) = fields::access_window(Some(app), &[], now);
    let mut cs = Changeset {
        assignment: Some(AssignmentChange::Grant(Assignment {
            user_id: user.id.clone(),
            app_id: app.id.clone(),
            request_id: None,
            source: AssignmentSource::Direct,
            granted: now,
            expires,
            warned_day: false,
            warned_hour: false,
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
        .data("expires", json!(expires))
        .build(),
    );
    cs.notices.extend(webhooks::provisioning(Some(app), ProvisionAction::Grant, None, user, expires, now));
    cs.notices.push(Notice::Requester {
        request: None,
        app_id: app.id.clone(),
        app_name: app.name.clone(),
        recipient: user.id.clone(),
        event: RequesterEvent::Approved { source: AssignmentSource::Direct, by: Some(actor.party.id.clone()) },
    });
    let (app_name, by) = (app.name.clone(), actor.party.id.clone());
    cs.notices.extend(feed(catalog, FeedEvent::Assigned { app_name, user: user.id.clone(), by }));
    Ok(cs)
}

/// Why an assignment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// An admin of the app removed it.
    Admin,
    /// Time-bound access ran out (the system).
    AccessEnded,
    /// The user gave it back ("I'm done").
    Relinquished,
}

impl Revocation {
    fn reason(self) -> &'static str {
        match self {
            Revocation::Admin => "ADMIN",
            Revocation::AccessEnded => "ACCESS_ENDED",
            Revocation::Relinquished => "RELINQUISHED",
        }
    }
}

/// Removes an assignment: by an admin, by the system when time-bound access
/// ends, or by the user giving it back. The request that granted it records
/// the revocation.
#[allow(clippy::too_many_arguments)]
pub fn revoke(
    catalog: &Catalog,
    app_id: &str,
    user: &Party,
    existing: Option<&Assignment>,
    request: Option<Request>,
    why: Revocation,
    actor: &Actor,
    now: Timestamp,
) -> Result<Changeset, WorkflowError> {
    let app = catalog.apps.get(app_id);
    let app_name = app.map(|a| a.name.clone()).unwrap_or_else(|| app_id.to_string());
    match why {
        Revocation::Admin if !admin_of(catalog, actor, app_id) => {
            return Err(forbidden(format!("only admins of {app_name} can revoke it")));
        }
        Revocation::Relinquished if !user.is(&actor.party) => {
            return Err(forbidden("only the user who has access can give it back"));
        }
        _ => {}
    }
    if why != Revocation::AccessEnded && app.is_none() {
        return Err(WorkflowError::NotFound(format!("app {app_id}")));
    }
    let Some(existing) = existing else {
        return Err(WorkflowError::Invalid(format!("{} does not have {app_name}", user.id)));
    };
    let pending = webhooks::provisioned(app);
    let mut cs = Changeset {
        assignment: Some(AssignmentChange::Revoke { user_id: user.id.clone(), app_id: app_id.to_string() }),
        ..Changeset::default()
    };
    let message = format!("Remove user from application membership: {app_name}");
    let mut ev =
        EventBuilder::new("application.user_membership.remove", actor, now, message).data("reason", why.reason());
    if let Some(r) = &existing.request_id {
        ev = ev.request_id(r);
    }
    cs.events.push(ev.app(app_id, &app_name).user(&user.id, user.email.as_deref()).build());
    if let Some(mut req) = request {
        touch(&mut req, actor, now);
        req.revoked = Some(now);
        req.revocation_status = Some(if pending { RevocationStatus::Pending } else { RevocationStatus::Revoked });
        cs.request = Some(req);
    }
    let request_id = existing.request_id.as_deref();
    let revoke = ProvisionAction::Revoke;
    cs.notices.extend(webhooks::provisioning(app, revoke, request_id, user, existing.expires, now));
    let (event, fed) = match why {
        Revocation::AccessEnded => (
            RequesterEvent::AccessEnded,
            FeedEvent::Revoked { app_name: app_name.clone(), user: user.id.clone(), by: None },
        ),
        Revocation::Admin => (
            RequesterEvent::Revoked { by: actor.party.id.clone() },
            FeedEvent::Revoked { app_name: app_name.clone(), user: user.id.clone(), by: Some(actor.party.id.clone()) },
        ),
        Revocation::Relinquished => {
            (RequesterEvent::GivenBack, FeedEvent::GivenBack { app_name: app_name.clone(), user: user.id.clone() })
        }
    };
    cs.notices.push(Notice::Requester {
        request: None,
        app_id: app_id.to_string(),
        app_name,
        recipient: user.id.clone(),
        event,
    });
    cs.notices.extend(feed(catalog, fed));
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

/// A suggestion for an app that is not in the catalog, for the technical contact.
pub fn suggest(catalog: &Catalog, text: &str, actor: &Actor, now: Timestamp) -> Result<Changeset, WorkflowError> {
    let Some(contact) = catalog.settings.technical_contact.clone() else {
        return Err(WorkflowError::Invalid("Suggestions are turned off: no technical contact is configured.".into()));
    };
    let text = clean(Some(text.to_string())).unwrap_or_default();
    if text.is_empty() || text.chars().count() > 2000 {
        return Err(bad_field("suggestion", "say which app you need and why (at most 2000 characters)".into()));
    }
    let mut cs = Changeset::default();
    cs.events.push(
        EventBuilder::new("app.access_request.suggest", actor, now, "App suggested for the catalog")
            .user(&contact.to_string(), None)
            .data("suggestion", text.clone())
            .build(),
    );
    cs.notices.push(Notice::Direct {
        to: contact,
        message: DirectMessage::Suggestion { from: actor.party.id.clone(), text },
    });
    Ok(cs)
}
