//! Delegation on a request: while a person's delegation lasts, the current
//! step that asks them also asks their delegate, who decides for them. No
//! chains: only the step's own approvers' delegations count. Separation of
//! duties holds: a delegate who is the requester (or the beneficiary) is not asked.

use super::*;

/// The most days ahead a delegation may end.
pub const MAX_DELEGATION_DAYS: i64 = 90;

/// The end (exclusive) of a delegation whose last day is `last_day` (UTC), or
/// why it cannot be set at `now`.
pub fn delegation_end(last_day: chrono::NaiveDate, now: Timestamp) -> Result<Timestamp, WorkflowError> {
    let today = now.date_naive();
    if last_day < today {
        return Err(WorkflowError::Invalid(format!("{last_day} has passed: give today or a later day")));
    }
    if last_day > today + chrono::Duration::days(MAX_DELEGATION_DAYS) {
        return Err(WorkflowError::Invalid(format!(
            "a delegation lasts at most {MAX_DELEGATION_DAYS} days: give a day until {}",
            today + chrono::Duration::days(MAX_DELEGATION_DAYS)
        )));
    }
    let next = last_day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0));
    next.map(|d| d.and_utc()).ok_or_else(|| WorkflowError::Invalid(format!("{last_day} is out of range")))
}

/// A person may delegate to someone else, never to themselves.
pub fn check_delegate(actor: &Actor, to: &Party) -> Result<(), WorkflowError> {
    if to.is(&actor.party) {
        return Err(WorkflowError::Invalid("you cannot delegate to yourself".into()));
    }
    Ok(())
}

/// Asks the delegates of the current step's approvers among `found` (those
/// not asked yet; one already asked gets the delegation's new end); `None`
/// when nothing changes.
pub fn ask_delegates(mut req: Request, found: &[Delegation], now: Timestamp) -> Option<Changeset> {
    let index = req.current_step.filter(|_| req.status == Status::Pending)?;
    let renewed = renew(&mut req.steps[index], found);
    let step = req.steps.get(index)?;
    let mut added = Vec::new();
    for approver in step.approvers.iter().filter(|p| !step.delegates.iter().any(|d| &d.delegate == *p)) {
        for d in found.iter().filter(|d| approver.matches(&Party::new(d.user_id.clone(), d.email.clone()))) {
            let delegate = Person::Slack(d.delegate.clone());
            let taken =
                step.approvers.contains(&delegate) || added.iter().any(|a: &StepDelegate| a.delegate == delegate);
            if taken || req.involves_as_requester(&Party::new(d.delegate.clone(), None)) {
                continue;
            }
            added.push(StepDelegate { delegate, for_person: approver.clone(), until: d.until });
        }
    }
    if added.is_empty() {
        return renewed.then(|| {
            req.last_updated = now;
            Changeset { request: Some(req), ..Changeset::default() }
        });
    }
    let actor = Actor::system();
    let mut cs = Changeset::default();
    for a in &added {
        let mut ev = EventBuilder::new(
            "app.access_request.delegate",
            &actor,
            now,
            format!("Step {} also asks {}, deciding for {}", index + 1, a.delegate, a.for_person),
        )
        .request(&req)
        .data("delegate", a.delegate.to_string())
        .data("onBehalfOf", a.for_person.to_string())
        .data("until", a.until.to_rfc3339());
        for (k, v) in step_data(&req.steps[index], index) {
            ev = ev.data(&k, v);
        }
        cs.events.push(ev.build());
    }
    let step = &mut req.steps[index];
    step.approvers.extend(added.iter().map(|a| a.delegate.clone()));
    step.delegates.extend(added.iter().cloned());
    let new: Vec<Person> = added.into_iter().map(|a| a.delegate).collect();
    cs.notices.extend(ask(&req, index, AskKind::New, &new));
    req.last_updated = now;
    cs.request = Some(req);
    Some(cs)
}

/// Moves the end of delegates already asked to their delegation's end; whether any moved.
fn renew(step: &mut Step, found: &[Delegation]) -> bool {
    let mut moved = false;
    for sd in step.delegates.iter_mut() {
        let same = |d: &&Delegation| {
            sd.delegate == Person::Slack(d.delegate.clone())
                && sd.for_person.matches(&Party::new(d.user_id.clone(), d.email.clone()))
        };
        if let Some(d) = found.iter().find(same).filter(|d| d.until != sd.until) {
            sd.until = d.until;
            moved = true;
        }
    }
    moved
}

/// The delegation of `principal` ended: their delegate no longer decides the
/// current step (unless asked in their own right); their messages close.
pub fn withdraw_delegate(req: Request, principal: &Party, now: Timestamp) -> Option<Changeset> {
    withdraw_where(req, now, |d| d.for_person.matches(principal))
}

/// Delegations past their last day: those delegates leave the current step.
pub fn withdraw_expired(req: Request, now: Timestamp) -> Option<Changeset> {
    withdraw_where(req, now, |d| d.until <= now)
}

fn withdraw_where(mut req: Request, now: Timestamp, ended: impl Fn(&StepDelegate) -> bool) -> Option<Changeset> {
    let index = req.current_step.filter(|_| req.status.is_open())?;
    let step = req.steps.get_mut(index)?;
    let (gone, kept): (Vec<StepDelegate>, Vec<StepDelegate>) = step.delegates.drain(..).partition(|d| ended(d));
    step.delegates = kept;
    if gone.is_empty() {
        return None;
    }
    let still_asked = |p: &Person| step.delegates.iter().any(|d| &d.delegate == p);
    let removed: Vec<Person> = gone.iter().map(|d| d.delegate.clone()).filter(|p| !still_asked(p)).collect();
    step.approvers.retain(|p| !removed.contains(p));
    let mut cs = Changeset::default();
    for p in removed {
        cs.notices.push(Notice::Close {
            request: req.view(),
            step: index,
            recipient: p,
            outcome: CloseKind::Withdrawn,
            by: None,
        });
    }
    req.last_updated = now;
    cs.request = Some(req);
    Some(cs)
}
