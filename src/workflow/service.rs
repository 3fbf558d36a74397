//! Runs workflow commands: read, decide with the pure engine, commit the
//! changeset in one transaction, retry when a concurrent command won the race.

use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use super::catalog::{Catalog, Party};
use super::engine::{self, Decision, NewRequest};
use super::events::EventBuilder;
use super::model::{Changeset, LogEvent, OutcomeResult, Request, Status, WebhookPurpose};
use super::ports::{OutboxItem, Store, StoreError};
use super::query::{Filter, Op, OrderBy, RequestAttr, RequestQuery, Value};
use super::{Actor, Clock, WorkflowError};

const MAX_RETRIES: usize = 16;

pub struct Workflow {
    store: Arc<dyn Store>,
    catalog: RwLock<Arc<Catalog>>,
    clock: Arc<dyn Clock>,
    /// Woken after every commit that wrote notifications, so delivery starts at once.
    wake: Arc<Notify>,
    on_commit: Option<CommitHook>,
}

/// Called after every successful commit (metrics count decisions with it).
pub type CommitHook = Arc<dyn Fn(&Changeset) + Send + Sync>;

/// What one run of the time-driven jobs did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobReport {
    pub reminded: usize,
    pub expired: usize,
    pub warned: usize,
    pub revoked: usize,
    /// Already done by another replica (the conditional commit lost).
    pub skipped: usize,
}

/// The result of a request command: the request, and whether it already existed.
pub struct Submitted {
    pub request: Request,
    pub existing: bool,
}

impl Workflow {
    pub fn new(store: Arc<dyn Store>, catalog: Catalog, clock: Arc<dyn Clock>, wake: Arc<Notify>) -> Workflow {
        Workflow { store, catalog: RwLock::new(Arc::new(catalog)), clock, wake, on_commit: None }
    }

    pub fn with_commit_hook(mut self, hook: CommitHook) -> Workflow {
        self.on_commit = Some(hook);
        self
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new catalog (config reload); commands already running keep the old one.
    pub fn replace_catalog(&self, catalog: Catalog) {
        match self.catalog.write() {
            Ok(mut c) => *c = Arc::new(catalog),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(catalog),
        }
    }

    /// Commits a changeset built outside the request commands (reload flags, jobs).
    pub async fn commit_changeset(&self, cs: &Changeset) -> Result<(), StoreError> {
        self.commit(cs).await
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> super::model::Timestamp {
        self.clock.now()
    }

    /// A chat user with the email the identity cache knows for them.
    pub async fn party(&self, user_id: &str) -> Result<Party, WorkflowError> {
        let email = self.store.identity(user_id).await?.and_then(|i| i.email);
        Ok(Party::new(user_id, email))
    }

    /// Commits a changeset with the notices it implies (App Home refreshes, thread
    /// replies); `before` is the request as it was read.
    async fn commit_from(&self, cs: &Changeset, before: Option<&Request>) -> Result<(), StoreError> {
        let mut cs = cs.clone();
        engine::derive_notices(before, &mut cs);
        self.store.commit(&cs).await?;
        if !cs.notices.is_empty() {
            self.wake.notify_one();
        }
        if let Some(hook) = &self.on_commit {
            hook(&cs);
        }
        Ok(())
    }

    async fn commit(&self, cs: &Changeset) -> Result<(), StoreError> {
        self.commit_from(cs, None).await
    }

    /// Records a refusal (`security.request.blocked`) and hands the error back.
    pub async fn refuse(
        &self,
        actor: &Actor,
        action: &str,
        reason: &str,
        request_id: Option<&str>,
    ) -> Result<(), WorkflowError> {
        let mut ev =
            EventBuilder::new("security.request.blocked", actor, self.clock.now(), format!("Blocked: {action}"))
                .outcome(OutcomeResult::Deny, Some(reason.to_string()))
                .data("action", action.to_string());
        if let Some(id) = request_id {
            ev = ev.request_id(id);
        }
        self.store.append_events(&[ev.build()]).await?;
        Ok(())
    }

    async fn guard<T>(
        &self,
        actor: &Actor,
        action: &str,
        request_id: Option<&str>,
        r: Result<T, WorkflowError>,
    ) -> Result<T, WorkflowError> {
        if let Err(WorkflowError::Forbidden(reason)) = &r {
            self.refuse(actor, action, reason, request_id).await?;
        }
        r
    }

    async fn load(&self, id: &str) -> Result<Request, WorkflowError> {
        if !engine::is_request_id(id) {
            return Err(WorkflowError::Invalid(format!(
                "`{id}` is not a request id (they look like req42kjDgk1EubTwo0g4)"
            )));
        }
        self.store.request(id).await?.ok_or_else(|| WorkflowError::NotFound(format!("request {id}")))
    }

    /// Read-modify-commit with optimistic concurrency: a lost race re-reads and re-decides.
    async fn update<F>(&self, actor: &Actor, action: &str, id: &str, f: F) -> Result<Request, WorkflowError>
    where
        F: Fn(&Catalog, Request) -> Result<Changeset, WorkflowError>,
    {
        for _ in 0..MAX_RETRIES {
            let req = self.load(id).await?;
            let before = req.clone();
            let catalog = self.catalog();
            let cs = self.guard(actor, action, Some(id), f(&catalog, req)).await?;
            match self.commit_from(&cs, Some(&before)).await {
                Ok(()) => return cs.request.ok_or_else(|| WorkflowError::NotFound(format!("request {id}"))),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(WorkflowError::Store(StoreError::Conflict))
    }

    pub async fn submit(&self, actor: &Actor, input: NewRequest) -> Result<Submitted, WorkflowError> {
        for _ in 0..MAX_RETRIES {
            if let Some(existing) = self.store.open_request(&input.requested_for.id, &input.app_id).await? {
                return Ok(Submitted { request: existing, existing: true });
            }
            let catalog = self.catalog();
            let created = engine::submit(&catalog, input.clone(), actor, self.clock.now());
            let cs = self.guard(actor, "request", None, created).await?;
            match self.commit(&cs).await {
                Ok(()) => {
                    let request = cs.request.ok_or_else(|| WorkflowError::Invalid("no request created".into()))?;
                    return Ok(Submitted { request, existing: false });
                }
                Err(StoreError::DuplicateOpen) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(WorkflowError::Store(StoreError::Conflict))
    }

    /// Runs what time makes due: reminders, expiry, access-ending warnings and
    /// revocations. Safe on several replicas: every change is a conditional
    /// commit, so a job another replica already did conflicts and is skipped.
    pub async fn run_jobs(&self) -> Result<JobReport, WorkflowError> {
        let mut report = JobReport::default();
        let catalog = self.catalog();
        let now = self.clock.now();
        let mut query = RequestQuery {
            filter: Some(Filter::Cmp { attr: RequestAttr::Status, op: Op::Eq, value: Value::Text("PENDING".into()) }),
            order_by: OrderBy::Created,
            descending: false,
            after: None,
            limit: 500,
        };
        loop {
            let page = self.store.list_requests(&query).await?;
            for r in &page {
                if let Some(cs) = engine::timers::remind_or_expire(&catalog, r.clone(), now) {
                    let expired = cs.request.as_ref().is_some_and(|x| x.status == Status::Expired);
                    match self.commit_from(&cs, Some(r)).await {
                        Ok(()) if expired => report.expired += 1,
                        Ok(()) => report.reminded += 1,
                        Err(StoreError::Conflict) => report.skipped += 1,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() as i64 == query.limit => query.after = Some(query.cursor_of(last)),
                _ => break,
            }
        }
        for a in self.store.expiring_assignments(now + chrono::Duration::days(1), 1000).await? {
            let request = match &a.request_id {
                Some(id) => self.store.request(id).await?,
                None => None,
            };
            let before = request.clone();
            if let Some(cs) = engine::timers::access_due(&catalog, &a, request, now) {
                let revoked = matches!(cs.assignment, Some(super::model::AssignmentChange::Revoke { .. }));
                match self.commit_from(&cs, before.as_ref()).await {
                    Ok(()) if revoked => report.revoked += 1,
                    Ok(()) => report.warned += 1,
                    Err(StoreError::Conflict) => report.skipped += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(report)
    }

    /// A webhook's final outcome (delivered, or given up on), from the outbox.
    pub async fn webhook_settled(&self, purpose: &WebhookPurpose, error: Option<&str>) -> Result<(), WorkflowError> {
        let request_id = match purpose {
            WebhookPurpose::Action { request_id, .. } => Some(request_id.clone()),
            WebhookPurpose::Grant { request_id, .. } | WebhookPurpose::Revoke { request_id, .. } => request_id.clone(),
        };
        for _ in 0..MAX_RETRIES {
            let request = match &request_id {
                Some(id) => self.store.request(id).await?,
                None => None,
            };
            let before = request.clone();
            let cs = engine::timers::webhook_settled(&self.catalog(), purpose, request, error, self.clock.now());
            match self.commit_from(&cs, before.as_ref()).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(WorkflowError::Store(StoreError::Conflict))
    }

    /// "Request an app" that is not in the catalog: sent to the technical contact.
    pub async fn suggest(&self, actor: &Actor, text: &str) -> Result<(), WorkflowError> {
        let catalog = self.catalog();
        let cs = engine::suggest(&catalog, text, actor, self.clock.now())?;
        self.commit(&cs).await?;
        Ok(())
    }

    /// Adds a message to a request; the requester sees it in chat.
    pub async fn post_message(&self, actor: &Actor, id: &str, text: &str) -> Result<Request, WorkflowError> {
        self.update(actor, "message", id, |_, r| engine::message(r, text, actor, self.clock.now())).await
    }

    pub async fn decide(
        &self,
        actor: &Actor,
        id: &str,
        step: usize,
        decision: Decision,
        comment: Option<String>,
    ) -> Result<Request, WorkflowError> {
        let action = match decision {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        };
        self.update(actor, action, id, |c, r| {
            engine::decide(c, r, step, decision, comment.clone(), actor, self.clock.now())
        })
        .await
    }

    /// Checks, before opening a comment form, that `actor` could decide this step.
    pub async fn check_decider(&self, actor: &Actor, id: &str, step: usize) -> Result<Request, WorkflowError> {
        let req = self.load(id).await?;
        let checked = engine::check_decider(&req, step, actor);
        self.guard(actor, "open decision form", Some(id), checked).await?;
        Ok(req)
    }

    /// Queues outbound work that belongs to no state change (modals, replies, look-ups).
    pub async fn enqueue(&self, items: &[OutboxItem]) -> Result<(), WorkflowError> {
        self.store.enqueue(items, self.clock.now()).await?;
        self.wake.notify_one();
        Ok(())
    }

    pub async fn cancel(
        &self,
        actor: &Actor,
        id: &str,
        reason: Option<String>,
        as_admin: bool,
    ) -> Result<Request, WorkflowError> {
        let action = if as_admin { "admin cancel" } else { "cancel" };
        self.update(actor, action, id, |c, r| engine::cancel(c, r, reason.clone(), as_admin, actor, self.clock.now()))
            .await
    }

    pub async fn override_assign(&self, actor: &Actor, id: &str) -> Result<Request, WorkflowError> {
        self.update(actor, "admin assign", id, |c, r| engine::override_assign(c, r, actor, self.clock.now())).await
    }

    pub async fn resend(&self, actor: &Actor, id: &str) -> Result<Request, WorkflowError> {
        self.update(actor, "admin resend", id, |c, r| engine::resend(c, r, actor, self.clock.now())).await
    }

    pub async fn grant(&self, actor: &Actor, app_id: &str, user: &Party) -> Result<(), WorkflowError> {
        let existing = self.store.assignment(&user.id, app_id).await?;
        let catalog = self.catalog();
        let cs = self
            .guard(
                actor,
                "admin grant",
                None,
                engine::grant_direct(&catalog, app_id, user, existing.as_ref(), actor, self.clock.now()),
            )
            .await?;
        self.commit(&cs).await?;
        Ok(())
    }

    pub async fn revoke(&self, actor: &Actor, app_id: &str, user: &Party) -> Result<(), WorkflowError> {
        for _ in 0..MAX_RETRIES {
            let existing = self.store.assignment(&user.id, app_id).await?;
            let request = match existing.as_ref().and_then(|a| a.request_id.clone()) {
                Some(id) => self.store.request(&id).await?,
                None => None,
            };
            let before = request.clone();
            let catalog = self.catalog();
            let now = self.clock.now();
            let revoked = engine::revoke(&catalog, app_id, user, existing.as_ref(), request, false, actor, now);
            let cs = self.guard(actor, "admin revoke", None, revoked).await?;
            match self.commit_from(&cs, before.as_ref()).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(WorkflowError::Store(StoreError::Conflict))
    }

    fn require_admin(&self, actor: &Actor, app_id: Option<&str>) -> Result<(), WorkflowError> {
        let catalog = self.catalog();
        let ok = match app_id {
            Some(app) => catalog.is_admin_of(&actor.party, app),
            None => catalog.is_any_admin(&actor.party),
        };
        if ok {
            Ok(())
        } else {
            Err(WorkflowError::Forbidden("only admins can do this".into()))
        }
    }

    /// A request with its system-log history; for admins of its app.
    pub async fn show(&self, actor: &Actor, id: &str) -> Result<(Request, Vec<LogEvent>), WorkflowError> {
        let req = self.load(id).await?;
        let allowed = self.require_admin(actor, Some(&req.app_id));
        self.guard(actor, "admin show", Some(id), allowed).await?;
        let events = self.store.request_events(id).await?;
        Ok((req, events))
    }

    /// Outstanding requests an admin may see, optionally for one app.
    pub async fn pending(
        &self,
        actor: &Actor,
        app_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Request>, WorkflowError> {
        let catalog = self.catalog();
        if let Some(app) = app_id {
            if !catalog.apps.contains_key(app) {
                return Err(WorkflowError::NotFound(format!("app `{app}`")));
            }
        }
        let allowed = self.require_admin(actor, app_id);
        self.guard(actor, "admin pending", None, allowed).await?;
        let apps: Option<Vec<String>> = match app_id {
            Some(app) => Some(vec![app.to_string()]),
            None if catalog.is_super_admin(&actor.party) => None,
            None => Some(catalog.administered_apps(&actor.party)),
        };
        Ok(self.store.pending_requests(apps.as_deref(), limit).await?)
    }

    pub async fn mine(&self, actor: &Actor, limit: i64) -> Result<Vec<Request>, WorkflowError> {
        Ok(self.store.requests_for_user(&actor.party.id, limit).await?)
    }

    /// Requests whose current step waits for this person.
    pub async fn tasks(&self, actor: &Actor, limit: i64) -> Result<Vec<Request>, WorkflowError> {
        let mut keys = vec![actor.party.id.clone()];
        keys.extend(actor.party.email.clone());
        let reqs = self.store.pending_for_approver(&keys, limit).await?;
        Ok(reqs.into_iter().filter(|r| !r.involves_as_requester(&actor.party)).collect())
    }
}
