//! `/access delegate <@user> until <YYYY-MM-DD>` and `/access delegate off`:
//! the delegation is stored with its log event in one transaction; steps
//! waiting for the person now also ask the delegate (and stop asking them when
//! it ends); every step asked later does too, at the commit that asks it.

use chrono::NaiveDate;

use super::engine::delegates;
use super::events::EventBuilder;
use super::model::{Changeset, Delegation, DelegationChange, Notice, Request};
use super::ports::StoreError;
use super::{Actor, Party, Workflow, WorkflowError};

/// How many waiting requests a delegation change reaches at once (the rest as they are asked again).
const OPEN_REQUESTS: i64 = 500;

impl Workflow {
    /// The actor's delegation, if one lasts now.
    pub async fn delegation(&self, actor: &Actor) -> Result<Option<Delegation>, WorkflowError> {
        let found = self.store.delegations(std::slice::from_ref(&actor.party.id), self.clock.now()).await?;
        Ok(found.into_iter().find(|d| d.user_id == actor.party.id))
    }

    /// Delegates the actor's approvals to `to` through `last_day` (UTC), and
    /// asks `to` on every step waiting for the actor now.
    pub async fn delegate(&self, actor: &Actor, to: &Party, last_day: NaiveDate) -> Result<Delegation, WorkflowError> {
        let now = self.clock.now();
        delegates::check_delegate(actor, to)?;
        let until = delegates::delegation_end(last_day, now)?;
        let d = Delegation {
            user_id: actor.party.id.clone(),
            email: actor.party.email.clone(),
            delegate: to.id.clone(),
            until,
            created: now,
        };
        let ev = EventBuilder::new("app.access_request.delegation.set", actor, now, "Approvals delegated")
            .user(&to.id, to.email.as_deref())
            .data("delegate", to.id.clone())
            .data("until", until.to_rfc3339())
            .data("lastDay", last_day.to_string())
            .build();
        let before = self.delegation(actor).await?;
        let cs =
            Changeset { delegation: Some(DelegationChange::Set(d.clone())), events: vec![ev], ..Changeset::default() };
        self.commit(&cs).await?;
        // A delegation replaced: the previous delegate stops deciding for me.
        if let Some(old) = before.filter(|old| old.delegate != d.delegate) {
            for req in self.waiting_for(&Party::new(old.delegate, None), OPEN_REQUESTS).await? {
                self.on_request(&req.id, |r| delegates::withdraw_delegate(r, &actor.party, now)).await?;
            }
        }
        for req in self.waiting_for(&actor.party, OPEN_REQUESTS).await? {
            let found = [d.clone()];
            self.on_request(&req.id, |r| delegates::ask_delegates(r, &found, now)).await?;
        }
        Ok(d)
    }

    /// Ends the actor's delegation: their delegate stops deciding for them.
    pub async fn delegate_off(&self, actor: &Actor) -> Result<Option<Delegation>, WorkflowError> {
        let Some(d) = self.delegation(actor).await? else { return Ok(None) };
        let now = self.clock.now();
        let ev = EventBuilder::new("app.access_request.delegation.remove", actor, now, "Delegation ended")
            .user(&d.delegate, None)
            .data("delegate", d.delegate.clone())
            .build();
        let remove = DelegationChange::Remove { user_id: actor.party.id.clone() };
        self.commit(&Changeset { delegation: Some(remove), events: vec![ev], ..Changeset::default() }).await?;
        let delegate = Party::new(d.delegate.clone(), None);
        for req in self.waiting_for(&delegate, OPEN_REQUESTS).await? {
            self.on_request(&req.id, |r| delegates::withdraw_delegate(r, &actor.party, now)).await?;
        }
        Ok(Some(d))
    }

    /// Open requests whose current step lists this person (id or email).
    pub(super) async fn waiting_for(&self, who: &Party, limit: i64) -> Result<Vec<Request>, WorkflowError> {
        let mut keys = vec![who.id.clone()];
        keys.extend(who.email.clone());
        Ok(self.store.pending_for_approver(&keys, limit).await?)
    }

    /// Read, change (when `f` has a change) and commit one request, again on a lost race.
    async fn on_request<F>(&self, id: &str, f: F) -> Result<(), WorkflowError>
    where
        F: Fn(Request) -> Option<Changeset>,
    {
        let f = &f;
        self.retrying(|| async move {
            let Some(req) = self.store.request(id).await? else { return Ok(()) };
            let before = req.clone();
            match f(req) {
                Some(cs) => Ok(self.commit_from(&cs, Some(&before)).await?),
                None => Ok(()),
            }
        })
        .await
    }

    /// A commit that asks people to decide (new, escalated, reminded, resent)
    /// also asks their delegates not asked yet (one look-up, only when someone is asked).
    pub(super) async fn ask_delegates(&self, cs: &mut Changeset) -> Result<(), StoreError> {
        let Some(req) = cs.request.as_ref() else { return Ok(()) };
        let asked: Vec<String> = cs
            .notices
            .iter()
            .filter_map(|n| match n {
                Notice::Ask { recipient, on_behalf_of: None, .. } => Some(recipient.key().to_string()),
                _ => None,
            })
            .collect();
        if asked.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let found = self.store.delegations(&asked, now).await?;
        if let Some(more) = (!found.is_empty()).then(|| delegates::ask_delegates(req.clone(), &found, now)).flatten() {
            cs.request = more.request;
            cs.events.extend(more.events);
            cs.notices.extend(more.notices);
        }
        Ok(())
    }
}
