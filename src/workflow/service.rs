//! Runs workflow commands: read, decide with the pure engine, commit the
//! changeset in one transaction, retry when a concurrent command won the race.

use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use super::catalog::{Catalog, Party, Person};
use super::engine::{self, Decision};
use super::events::EventBuilder;
use super::model::{Changeset, LogEvent, Notice, OutcomeResult, ProvisionPurpose, Provisioner, Request, Status};
use super::ports::{Directory, OutboxItem, Store, StoreError};
use super::ratelimit::RateLimiter;
use super::{Actor, Clock, RateLimited, WorkflowError};

const MAX_RETRIES: usize = 16;

pub struct Workflow {
    pub(super) store: Arc<dyn Store>,
    /// The catalog, and when it was loaded.
    catalog: RwLock<(Arc<Catalog>, super::model::Timestamp)>,
    pub(super) clock: Arc<dyn Clock>,
    /// Woken after every commit that wrote notifications, so delivery starts at once.
    wake: Arc<Notify>,
    /// Who chat users are; without one, people are who the identity cache says.
    pub(super) directory: Option<Arc<dyn Directory>>,
    /// Who people are in Okta; asked only while the catalog has an `[okta]` section.
    pub(super) okta: Option<Arc<dyn super::ports::OktaDirectory>>,
    pub(super) limits: Limits,
    on_commit: Option<CommitHook>,
    on_refusal: Option<RefusalHook>,
    /// Slack user groups' members as last read, and which to read again.
    pub(super) usergroups: super::usergroups::Memberships,
}

/// Called after every successful commit (metrics count decisions with it).
pub type CommitHook = Arc<dyn Fn(&Changeset) + Send + Sync>;
/// Called for every refusal, logged or over the log budget (metrics count them).
pub type RefusalHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Per-person limits, each a token bucket per key.
pub struct Limits {
    /// New requests per `requestedBy` (every entry point).
    pub requests: RateLimiter,
    /// Suggestions per user.
    pub suggestions: RateLimiter,
    /// Refusals per actor written to the system log (the rest are only counted).
    pub refusal_log: RateLimiter,
}

/// Suggestions a user may send at once, and per hour.
pub const DEFAULT_SUGGESTIONS: (u32, std::time::Duration) = (5, std::time::Duration::from_secs(3600));
/// Refusals of one actor logged at once, and per minute.
pub const DEFAULT_REFUSAL_LOG: (u32, std::time::Duration) = (30, std::time::Duration::from_secs(60));

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            requests: RateLimiter::default(),
            suggestions: RateLimiter::new(DEFAULT_SUGGESTIONS.0, DEFAULT_SUGGESTIONS.1),
            refusal_log: RateLimiter::new(DEFAULT_REFUSAL_LOG.0, DEFAULT_REFUSAL_LOG.1),
        }
    }
}

/// At most this many requests and assignments per pass; the rest on the next.
const JOBS_BATCH: i64 = 500;

/// What one run of the time-driven jobs did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobReport {
    pub reminded: usize,
    pub escalated: usize,
    /// Delegates taken off steps when their delegation ended.
    pub withdrawn: usize,
    pub expired: usize,
    pub warned: usize,
    pub revoked: usize,
    /// Already done by another replica (the conditional commit lost).
    pub skipped: usize,
    /// Requests rejected because their requester could not be identified in time.
    pub rejected: usize,
}

/// The result of a request command: the request, and whether it already existed.
pub struct Submitted {
    pub request: Request,
    pub existing: bool,
}

impl Workflow {
    pub fn new(store: Arc<dyn Store>, catalog: Catalog, clock: Arc<dyn Clock>, wake: Arc<Notify>) -> Workflow {
        Workflow {
            store,
            catalog: RwLock::new((Arc::new(catalog), clock.now())),
            clock,
            wake,
            directory: None,
            okta: None,
            limits: Limits::default(),
            on_commit: None,
            on_refusal: None,
            usergroups: Default::default(),
        }
    }

    pub fn with_commit_hook(mut self, hook: CommitHook) -> Workflow {
        self.on_commit = Some(hook);
        self
    }

    pub fn with_refusal_hook(mut self, hook: RefusalHook) -> Workflow {
        self.on_refusal = Some(hook);
        self
    }

    pub fn with_directory(mut self, directory: Arc<dyn Directory>) -> Workflow {
        self.directory = Some(directory);
        self
    }

    pub fn with_okta(mut self, okta: Arc<dyn super::ports::OktaDirectory>) -> Workflow {
        self.okta = Some(okta);
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Workflow {
        self.limits = limits;
        self
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(c) => c.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// When the running catalog was loaded (start or last reload).
    pub fn catalog_loaded_at(&self) -> super::model::Timestamp {
        match self.catalog.read() {
            Ok(c) => c.1,
            Err(poisoned) => poisoned.into_inner().1,
        }
    }

    /// Swaps in a new catalog (config reload), its Slack user groups' members
    /// filled in; commands already running keep the old one.
    pub fn replace_catalog(&self, catalog: Catalog) {
        let mut c = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        *c = (Arc::new(self.with_usergroups(&catalog)), self.clock.now());
    }

    /// Replaces the running catalog with `change` of it (under the lock, so a
    /// concurrent reload is not lost); when it was loaded stays.
    pub(super) fn update_catalog(&self, change: impl FnOnce(&Catalog) -> Catalog) {
        let mut c = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        c.0 = Arc::new(change(&c.0));
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

    /// Commits a changeset with the notices it implies (App Home refreshes, thread
    /// replies); `before` is the request as it was read.
    pub(super) async fn commit_from(&self, cs: &Changeset, before: Option<&Request>) -> Result<(), StoreError> {
        let mut cs = cs.clone();
        self.ask_delegates(&mut cs).await?;
        engine::derive_notices(before, &mut cs);
        self.only_homes_kept(&mut cs.notices).await?;
        if let Some(req) = cs.request.as_mut() {
            req.due = engine::timers::next_due(&self.catalog(), req);
        }
        self.store.commit(&cs).await?;
        if !cs.notices.is_empty() {
            self.wake.notify_one();
        }
        if let Some(hook) = &self.on_commit {
            hook(&cs);
        }
        Ok(())
    }

    /// App Home refreshes only for people whose Home is kept up to date (they
    /// opened it, as far as this replica knows): most people never open it, and
    /// each refresh for them was an outbox row delivered as a no-op. Whoever
    /// opens it later is shown it fresh then.
    async fn only_homes_kept(&self, notices: &mut Vec<Notice>) -> Result<(), StoreError> {
        for notice in notices.iter_mut() {
            if let Notice::HomeChanged { users } = notice {
                let mut kept = Vec::with_capacity(users.len());
                for person in std::mem::take(users) {
                    if self.kept_home(&person).await?.is_some() {
                        kept.push(person);
                    }
                }
                *users = kept;
            }
        }
        notices.retain(|n| !matches!(n, Notice::HomeChanged { users } if users.is_empty()));
        Ok(())
    }

    /// The chat user whose App Home is kept up to date, when this person's is
    /// (they opened it); cached reads.
    pub async fn kept_home(&self, person: &Person) -> Result<Option<String>, StoreError> {
        let user_id = match person {
            Person::Slack(id) => id.clone(),
            Person::Email(email) => match self.store.identity_by_email(email).await? {
                Some(i) => i.user_id,
                None => return Ok(None),
            },
        };
        Ok(self.store.home_opened(&user_id).await?.then_some(user_id))
    }

    pub(super) async fn commit(&self, cs: &Changeset) -> Result<(), StoreError> {
        self.commit_from(cs, None).await
    }

    /// Records a refusal (`security.request.blocked`), within the actor's log
    /// budget; every refusal is counted by the refusal hook.
    pub async fn refuse(
        &self,
        actor: &Actor,
        action: &str,
        reason: &str,
        request_id: Option<&str>,
    ) -> Result<(), WorkflowError> {
        if let Some(hook) = &self.on_refusal {
            hook(action);
        }
        if self.limits.refusal_log.check(&actor.party.id).is_err() {
            tracing::warn!(actor = %actor.party.id, action, "refusal not logged: over the actor's log budget");
            return Ok(());
        }
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

    pub(super) async fn guard<T>(
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
                "{id} is not a request id (they look like req42kjDgk1EubTwo0g4)"
            )));
        }
        self.store.request(id).await?.ok_or_else(|| WorkflowError::NotFound(format!("request {id}")))
    }

    /// Runs `attempt` (read, decide, commit) until it commits: a lost race
    /// (`Conflict`, `DuplicateOpen`) reads again and decides again.
    pub(super) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, WorkflowError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, WorkflowError>>,
    {
        for _ in 0..MAX_RETRIES {
            match attempt().await {
                Err(WorkflowError::Store(StoreError::Conflict | StoreError::DuplicateOpen)) => continue,
                other => return other,
            }
        }
        Err(WorkflowError::Store(StoreError::Conflict))
    }

    /// Read-modify-commit of one request with optimistic concurrency.
    async fn update<F>(&self, actor: &Actor, action: &str, id: &str, f: F) -> Result<Request, WorkflowError>
    where
        F: Fn(&Catalog, Request) -> Result<Changeset, WorkflowError>,
    {
        let f = &f;
        self.retrying(|| async move {
            let req = self.load(id).await?;
            let before = req.clone();
            let catalog = self.catalog();
            let cs = self.guard(actor, action, Some(id), f(&catalog, req)).await?;
            self.commit_from(&cs, Some(&before)).await?;
            cs.request.ok_or_else(|| WorkflowError::NotFound(format!("request {id}")))
        })
        .await
    }

    /// Runs what time makes due: reminders, escalation, expiry, access-ending
    /// warnings and revocations, each found by its due time. Safe on several
    /// replicas: every change is a conditional commit, so a job another replica
    /// already did conflicts and is skipped.
    pub async fn run_jobs(&self) -> Result<JobReport, WorkflowError> {
        let mut report = JobReport { rejected: self.reject_overdue().await?, ..JobReport::default() };
        let catalog = self.catalog();
        let now = self.clock.now();
        for r in self.store.due_requests(now, JOBS_BATCH).await? {
            let Some(cs) = engine::timers::due_work(&catalog, r.clone(), now) else {
                // Timed by rules that changed since: due again when they say, never in a loop.
                let due = engine::timers::next_due(&catalog, &r).map(|d| d.max(now + chrono::Duration::seconds(1)));
                self.store.set_due(&r.id, r.version, due).await?;
                continue;
            };
            let counter = match cs.request.as_ref().map(|x| x.status) {
                Some(Status::Expired) => &mut report.expired,
                _ if cs.events.is_empty() => &mut report.withdrawn,
                _ if cs.events.iter().any(|e| e.event_type == "app.access_request.escalate") => &mut report.escalated,
                _ => &mut report.reminded,
            };
            match self.commit_from(&cs, Some(&r)).await {
                Ok(()) => *counter += 1,
                Err(StoreError::Conflict) => report.skipped += 1,
                Err(e) => return Err(e.into()),
            }
        }
        for a in self.store.due_assignments(now, JOBS_BATCH).await? {
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
    pub async fn webhook_settled(&self, purpose: &ProvisionPurpose, error: Option<&str>) -> Result<(), WorkflowError> {
        self.provision_settled(&Provisioner::Webhook, purpose, error).await
    }

    /// A provisioning call's final outcome (a webhook, Okta), from the outbox.
    pub async fn provision_settled(
        &self,
        via: &Provisioner,
        purpose: &ProvisionPurpose,
        error: Option<&str>,
    ) -> Result<(), WorkflowError> {
        let request_id = match purpose {
            ProvisionPurpose::Action { request_id, .. } => Some(request_id.clone()),
            ProvisionPurpose::Grant { request_id, .. } | ProvisionPurpose::Revoke { request_id, .. } => {
                request_id.clone()
            }
        };
        let request_id = &request_id;
        self.retrying(|| async move {
            let request = match request_id {
                Some(id) => self.store.request(id).await?,
                None => None,
            };
            let before = request.clone();
            let now = self.clock.now();
            let cs = engine::timers::provision_settled(&self.catalog(), via, purpose, request, error, now);
            Ok(self.commit_from(&cs, before.as_ref()).await?)
        })
        .await
    }

    /// "Request an app" that is not in the catalog: sent to the technical contact.
    pub async fn suggest(&self, actor: &Actor, text: &str) -> Result<(), WorkflowError> {
        let catalog = self.catalog();
        let cs = engine::suggest(&catalog, text, actor, self.clock.now())?;
        if let Err(retry_after) = self.limits.suggestions.check(&actor.party.id) {
            return Err(WorkflowError::RateLimited { what: RateLimited::Suggestions, retry_after });
        }
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
        // Another replica may have read a user group's new members.
        self.sync_usergroups().await?;
        self.update(actor, action, id, |c, r| {
            engine::decide(c, r, step, decision, comment.clone(), actor, self.clock.now())
        })
        .await
    }

    /// Checks, before opening a comment form, that `actor` could decide this step.
    pub async fn check_decider(&self, actor: &Actor, id: &str, step: usize) -> Result<Request, WorkflowError> {
        let req = self.load(id).await?;
        self.sync_usergroups().await?;
        let checked = engine::check_decider(&self.catalog(), &req, step, actor, self.clock.now()).map(|_| ());
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
        self.end_access(actor, app_id, user, engine::Revocation::Admin, "admin revoke").await
    }

    /// The user gives their own access back ("I'm done").
    pub async fn give_back(&self, actor: &Actor, app_id: &str) -> Result<(), WorkflowError> {
        self.end_access(actor, app_id, &actor.party, engine::Revocation::Relinquished, "give back").await
    }

    async fn end_access(
        &self,
        actor: &Actor,
        app_id: &str,
        user: &Party,
        why: engine::Revocation,
        action: &str,
    ) -> Result<(), WorkflowError> {
        self.retrying(|| async move {
            let existing = self.store.assignment(&user.id, app_id).await?;
            let request = match existing.as_ref().and_then(|a| a.request_id.clone()) {
                Some(id) => self.store.request(&id).await?,
                None => None,
            };
            let before = request.clone();
            let catalog = self.catalog();
            let now = self.clock.now();
            let revoked = engine::revoke(&catalog, app_id, user, existing.as_ref(), request, why, actor, now);
            let cs = self.guard(actor, action, None, revoked).await?;
            Ok(self.commit_from(&cs, before.as_ref()).await?)
        })
        .await
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
                return Err(WorkflowError::NotFound(format!("app {app}")));
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
        let reqs = self.waiting_for(&actor.party, limit).await?;
        self.sync_usergroups().await?;
        let catalog = self.catalog();
        Ok(reqs.into_iter().filter(|r| engine::awaits(&catalog, r, &actor.party)).collect())
    }
}
