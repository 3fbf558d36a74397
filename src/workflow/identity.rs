//! Who a chat user is (id ↔ email), decided before anyone is asked to
//! approve. People come from the identity cache (the store) or the
//! [`Directory`]; a request whose requester is not known yet waits as
//! `SUBMITTED` and is routed once the directory answers, or rejected after
//! [`IDENTITY_DEADLINE`]. Okta user ids are `principals`' business.

use std::time::Duration;

use super::catalog::{Party, Person};
use super::engine;
use super::model::{Notice, Request, Status};
use super::ports::{notice_item, DirectoryError, Identity};
use super::query::{Filter, Op, OrderBy, RequestAttr, RequestQuery, Value};
use super::{Workflow, WorkflowError};

/// How long a request may wait for the directory before it is rejected.
pub const IDENTITY_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// How long a new request waits for the directory before it is saved as `SUBMITTED`.
pub const IDENTIFY_WAIT: Duration = Duration::from_millis(1000);

fn transient(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Transient(e.to_string())
}

impl Workflow {
    /// A chat user as the identity cache knows them; the first time one is
    /// seen, the directory is asked (briefly, then in the background).
    pub async fn party(&self, user_id: &str) -> Result<Party, WorkflowError> {
        Ok(self.known(user_id).await?.0)
    }

    /// Who a chat user is, asking the directory (briefly) when the cache does
    /// not know; without an answer, just their id.
    pub async fn person(&self, user_id: &str) -> Result<Party, WorkflowError> {
        let (party, known) = self.known(user_id).await?;
        Ok(if known { party } else { Party::new(user_id, None) })
    }

    /// A chat user as far as known, and whether the directory has answered for
    /// them: one read of the cache (and a brief look-up the first time).
    pub(super) async fn known(&self, user_id: &str) -> Result<(Party, bool), WorkflowError> {
        // Without a directory, people are who the cache says; else only its answer counts.
        let trusted = self.directory.is_none();
        match self.store.identity(user_id).await? {
            Some(i) => Ok((Party::new(user_id, i.email), i.resolved || trusted)),
            None => {
                let (party, resolved) = self.first_sight(user_id).await?;
                Ok((party, resolved || trusted))
            }
        }
    }

    /// Asks the directory within [`IDENTIFY_WAIT`]; without an answer the user
    /// is remembered as unresolved and asked again in the background.
    async fn first_sight(&self, user_id: &str) -> Result<(Party, bool), WorkflowError> {
        if let Some(directory) = &self.directory {
            match tokio::time::timeout(IDENTIFY_WAIT, directory.user(user_id)).await {
                Ok(Ok(found)) => {
                    self.store.save_identity(&Identity { resolved: true, ..found.clone() }).await?;
                    self.learn_okta_later(&found).await?;
                    return Ok((Party::new(user_id, found.email), true));
                }
                Ok(Err(e)) => tracing::warn!(user = user_id, error = %e, "directory: user not identified yet"),
                Err(_) => tracing::warn!(user = user_id, "directory: no answer in time; asking in the background"),
            }
        }
        self.store.save_identity(&Identity { user_id: user_id.to_string(), ..Identity::default() }).await?;
        if self.directory.is_some() {
            self.enqueue(&[notice_item(&Notice::Resolve { person: Person::Slack(user_id.to_string()) })?]).await?;
        }
        Ok((Party::new(user_id, None), false))
    }

    /// Asks the directory who `person` is (the outbox runs this for
    /// `Notice::Resolve`), then routes the requests that waited for them.
    /// A permanent failure rejects those requests with the reason.
    pub async fn resolve(&self, person: &Person) -> Result<(), DirectoryError> {
        let Some(directory) = &self.directory else { return Ok(()) };
        match person {
            Person::Email(email) => match directory.by_email(email).await? {
                Some(found) => self.identified(found).await.map_err(transient),
                None => Err(DirectoryError::Permanent(format!("no chat user has the email {email}"))),
            },
            Person::Slack(id) if self.cached_resolved(id).await.map_err(transient)? => {
                self.route_waiting(id).await.map_err(transient)
            }
            Person::Slack(id) => match directory.user(id).await {
                Ok(found) => {
                    self.identified(found).await.map_err(transient)?;
                    self.route_waiting(id).await.map_err(transient)
                }
                Err(DirectoryError::Permanent(e)) => {
                    let reason = format!("could not find out who {id} is: {e}");
                    self.reject_waiting(id, &reason).await.map_err(transient)?;
                    Err(DirectoryError::Permanent(e))
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Remembers what the directory answered, and queues learning their Okta id.
    async fn identified(&self, found: Identity) -> Result<(), WorkflowError> {
        self.store.save_identity(&Identity { resolved: true, ..found.clone() }).await?;
        self.learn_okta_later(&found).await
    }

    async fn cached_resolved(&self, user_id: &str) -> Result<bool, WorkflowError> {
        Ok(self.store.identity(user_id).await?.is_some_and(|i| i.resolved))
    }

    /// Queues a look-up of every person the catalog names by email and the
    /// cache does not know (at start and after a reload), and, with the Okta
    /// connector on, of the Okta id of everyone known by email but not by it.
    pub async fn resolve_catalog_people(&self) -> Result<(), WorkflowError> {
        self.learn_okta_ids().await?;
        if self.directory.is_none() {
            return Ok(());
        }
        let mut items = Vec::new();
        for email in self.catalog().emails() {
            if self.store.identity_by_email(&email).await?.is_none() {
                items.push(notice_item(&Notice::Resolve { person: Person::Email(email) })?);
            }
        }
        if !items.is_empty() {
            self.enqueue(&items).await?;
        }
        Ok(())
    }

    /// `SUBMITTED` requests by or for this user (all of them when `None`).
    async fn waiting(&self, user_id: Option<&str>) -> Result<Vec<Request>, WorkflowError> {
        let text = |s: &str| Value::Text(s.to_string());
        let cmp = |attr, v: &str| Filter::Cmp { attr, op: Op::Eq, value: text(v) };
        let mut filter = cmp(RequestAttr::Status, Status::Submitted.as_str());
        if let Some(id) = user_id {
            let who =
                Filter::Or(Box::new(cmp(RequestAttr::RequestedBy, id)), Box::new(cmp(RequestAttr::RequestedFor, id)));
            filter = Filter::And(Box::new(filter), Box::new(who));
        }
        let query = RequestQuery {
            filter: Some(filter),
            order_by: OrderBy::Created,
            descending: false,
            after: None,
            limit: 500,
        };
        Ok(self.store.list_requests(&query).await?)
    }

    /// Routes the waiting requests of this user whose people are all known now.
    async fn route_waiting(&self, user_id: &str) -> Result<(), WorkflowError> {
        for req in self.waiting(Some(user_id)).await? {
            let id = req.id.as_str();
            self.retrying(|| async move {
                let Some(mut req) = self.store.request(id).await? else { return Ok(()) };
                let before = req.clone();
                for party in [&mut req.requested_by, &mut req.requested_for] {
                    match self.store.identity(&party.id).await?.filter(|i| i.resolved) {
                        Some(i) => *party = Party::new(party.id.clone(), i.email),
                        None => return Ok(()),
                    }
                }
                let Some(cs) = engine::route_submitted(&self.catalog(), req, self.clock.now()) else { return Ok(()) };
                Ok(self.commit_from(&cs, Some(&before)).await?)
            })
            .await?;
        }
        Ok(())
    }

    async fn reject_waiting(&self, user_id: &str, reason: &str) -> Result<(), WorkflowError> {
        for req in self.waiting(Some(user_id)).await? {
            self.reject_unidentified(&req.id, reason).await?;
        }
        Ok(())
    }

    async fn reject_unidentified(&self, id: &str, reason: &str) -> Result<(), WorkflowError> {
        self.retrying(|| async move {
            let Some(req) = self.store.request(id).await? else { return Ok(()) };
            let before = req.clone();
            let Some(cs) = engine::reject_unresolved(req, reason.to_string(), self.clock.now()) else { return Ok(()) };
            Ok(self.commit_from(&cs, Some(&before)).await?)
        })
        .await
    }

    /// Rejects requests that waited past [`IDENTITY_DEADLINE`]; how many.
    pub(super) async fn reject_overdue(&self) -> Result<usize, WorkflowError> {
        let deadline = chrono::Duration::from_std(IDENTITY_DEADLINE).unwrap_or(chrono::Duration::MAX);
        let now = self.clock.now();
        let mut rejected = 0;
        for req in self.waiting(None).await?.into_iter().filter(|r| now - r.created >= deadline) {
            let minutes = IDENTITY_DEADLINE.as_secs() / 60;
            let reason = format!("the requester could not be identified within {minutes} minutes");
            self.reject_unidentified(&req.id, &reason).await?;
            rejected += 1;
        }
        Ok(rejected)
    }
}
