//! The one way in for a new request. The slash command, the request forms and
//! the API all call [`Workflow::request`], which decides everything: the
//! catalog, who may request for whom, field answers and text bounds, one open
//! request per user and app, the per-person rate limit, and who the people
//! are before anyone is asked.

use super::engine::{self, NewRequest};
use super::model::{Extension, Request, Status};
use super::{Actor, RateLimited, Submitted, Workflow, WorkflowError};

/// A new request as an edge receives it: people by chat user id.
#[derive(Clone, Debug)]
pub struct RequestInput {
    pub app_id: String,
    /// Who asks (the actor may be an integration acting for them).
    pub requested_by: String,
    pub requested_for: String,
    pub justification: String,
    /// Answers to the app's request fields, by field id.
    pub fields: Vec<(String, String)>,
}

impl RequestInput {
    /// A user asking for themselves.
    pub fn own(actor: &Actor, app_id: &str, justification: &str) -> RequestInput {
        RequestInput {
            app_id: app_id.to_string(),
            requested_by: actor.party.id.clone(),
            requested_for: actor.party.id.clone(),
            justification: justification.to_string(),
            fields: Vec::new(),
        }
    }
}

impl Workflow {
    /// Whether `requested_by` may ask for `app_id` for `requested_for` (before
    /// a form is shown): the open request when there is one already. Refusals
    /// are logged like those of [`Workflow::request`].
    pub async fn check_request(
        &self,
        actor: &Actor,
        app_id: &str,
        requested_by: &str,
        requested_for: &str,
    ) -> Result<Option<Request>, WorkflowError> {
        let (by, for_) = (self.party(requested_by).await?, self.party(requested_for).await?);
        let catalog = self.catalog();
        let checked = engine::check_requestable(&catalog, app_id, &by, &for_).map(|_| ());
        self.guard(actor, "request", None, checked).await?;
        Ok(self.store.open_request(&for_.id, app_id).await?)
    }

    /// Creates a request, or returns the open one for this user and app.
    pub async fn request(&self, actor: &Actor, input: RequestInput) -> Result<Submitted, WorkflowError> {
        let (new, waiting) = self.new_of(input).await?;
        self.submit_new(actor, new, waiting).await
    }

    /// Asks to extend time-bound access the beneficiary has: a request through
    /// the app's `extend_steps` (else its steps) that moves the end of access.
    pub async fn extend(&self, actor: &Actor, input: RequestInput) -> Result<Submitted, WorkflowError> {
        let (mut new, waiting) = self.new_of(input).await?;
        let extension = self.extension_of(&new).await;
        new.extension = Some(self.guard(actor, "extend", None, extension).await?);
        self.submit_new(actor, new, waiting).await
    }

    /// The request with its people as far as known, and the ids the directory
    /// has not answered for yet (nobody is asked before it has).
    async fn new_of(&self, input: RequestInput) -> Result<(NewRequest, Vec<String>), WorkflowError> {
        let (by, by_known) = self.known(&input.requested_by).await?;
        let (for_, for_known) = if input.requested_for == input.requested_by {
            (by.clone(), by_known)
        } else {
            self.known(&input.requested_for).await?
        };
        let mut waiting = Vec::new();
        if !by_known {
            waiting.push(by.id.clone());
        }
        if !for_known && for_.id != by.id {
            waiting.push(for_.id.clone());
        }
        let new = NewRequest {
            app_id: input.app_id,
            requested_by: by,
            requested_for: for_,
            justification: input.justification,
            fields: input.fields,
            extension: None,
        };
        Ok((new, waiting))
    }
    /// The access an extension would extend, within the app's `max_extensions`.
    async fn extension_of(&self, new: &NewRequest) -> Result<Extension, WorkflowError> {
        let (user, app_id) = (&new.requested_for.id, &new.app_id);
        let current = self.store.assignment(user, app_id).await?;
        let Some((granted, ends)) = current.and_then(|a| Some((a.granted, a.expires?))) else {
            return Err(WorkflowError::Invalid(format!("{user} has no time-bound access to {app_id} to extend")));
        };
        let max = self.catalog().apps.get(app_id).and_then(|a| a.max_extensions);
        if let Some(max) = max {
            let used = self
                .store
                .requests_for_user(user, 500)
                .await?
                .into_iter()
                .filter(|r| r.app_id == *app_id && r.status == Status::Approved)
                .filter(|r| r.extension.is_some_and(|e| e.granted == granted))
                .count();
            if used >= max as usize {
                return Err(WorkflowError::Invalid(format!(
                    "{app_id} allows {max} extension(s) of one grant, and this one has had them"
                )));
            }
        }
        Ok(Extension { granted, ends })
    }

    async fn submit_new(
        &self,
        actor: &Actor,
        new: NewRequest,
        waiting: Vec<String>,
    ) -> Result<Submitted, WorkflowError> {
        let validated = engine::new_request(&self.catalog(), new, actor, self.clock.now());
        let req = self.guard(actor, "request", None, validated).await?;
        if let Some(existing) = self.store.open_request(&req.requested_for.id, &req.app_id).await? {
            return Ok(Submitted { request: existing, existing: true });
        }
        if let Err(retry_after) = self.limits.requests.check(&req.requested_by.id) {
            tracing::warn!(user = %req.requested_by.id, "request rate limit reached");
            return Err(WorkflowError::RateLimited { what: RateLimited::Requests, retry_after });
        }
        let (req, waiting) = (&req, &waiting);
        // The first attempt follows the read above; a retry (a duplicate open) looks again.
        let first = &std::sync::atomic::AtomicBool::new(true);
        self.retrying(|| async move {
            if !first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                if let Some(existing) = self.store.open_request(&req.requested_for.id, &req.app_id).await? {
                    return Ok(Submitted { request: existing, existing: true });
                }
            }
            let now = self.clock.now();
            let cs = match waiting.is_empty() {
                true => engine::route_new(&self.catalog(), req.clone(), actor, now),
                false => engine::submit_unresolved(req.clone(), waiting, actor, now),
            };
            self.commit(&cs).await?;
            let request = cs.request.ok_or_else(|| WorkflowError::Invalid("no request created".into()))?;
            Ok(Submitted { request, existing: false })
        })
        .await
    }
}
