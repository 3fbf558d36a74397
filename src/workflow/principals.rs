//! One person across systems: a chat user id, an email and, with the Okta
//! connector on, an Okta user id (`00u…`). This module decides how the API
//! names people (their Okta id whenever it is known, else their Slack id:
//! accessbot's extension), which chat user an Okta id names, and when Okta
//! ids are learned through the [`OktaDirectory`](super::ports::OktaDirectory)
//! port: when a person is first identified, at start and reload for people
//! known before, when the connector provisions them, and when an API client
//! names them by their Okta id.

use std::collections::{BTreeSet, HashMap};

use super::catalog::Party;
use super::model::{Notice, Request};
use super::ports::{notice_item, DirectoryError, Identity, OktaUser};
use super::query::{Filter, RequestAttr, Value};
use super::{Workflow, WorkflowError};

/// People whose Okta id is looked up at start and on reload, at most.
const OKTA_SWEEP: i64 = 10_000;
/// Distinct Okta ids one list filter may name (each may cost a call to Okta).
pub const MAX_FILTER_OKTA_IDS: usize = 20;

/// How the API names a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// An Okta user id (`OKTA_USER`).
    Okta(String),
    /// A Slack user id (`SLACK_USER`, accessbot's extension).
    Slack(String),
}

/// Whether `s` is shaped like an Okta user id: `00u` then letters and digits.
pub fn is_okta_user_id(s: &str) -> bool {
    s.len() > 3 && s.len() <= 64 && s.starts_with("00u") && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The Okta ids of the people of some requests, by chat user id.
#[derive(Clone, Debug, Default)]
pub struct Principals {
    okta: HashMap<String, String>,
}

impl Principals {
    /// The person's Okta id when it is known, else their chat user id.
    pub fn of(&self, user_id: &str) -> Principal {
        match self.okta.get(user_id) {
            Some(id) => Principal::Okta(id.clone()),
            None => Principal::Slack(user_id.to_string()),
        }
    }
}

/// What the connector needs of Okta before assigning someone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OktaId {
    Known(String),
    /// Okta has no user with this login (their email).
    NoUser {
        login: String,
    },
}

/// Where looking up an Okta id ended.
enum Found {
    Chat(String),
    NoOktaUser,
    NoEmail,
    NoChatUser,
}

fn transient(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Transient(e.to_string())
}

/// The email Okta knows the user by: `profile.email`, else a login that is one.
fn okta_email(user: &OktaUser) -> Option<String> {
    let login = Some(user.login.as_str()).filter(|l| l.contains('@'));
    user.email.as_deref().filter(|e| e.contains('@')).or(login).map(str::to_ascii_lowercase)
}

/// Everyone a request names by id: its people, who created and last changed it, its deciders.
fn people_of(r: &Request) -> impl Iterator<Item = String> + '_ {
    [&r.requested_by.id, &r.requested_for.id, &r.created_by, &r.last_updated_by]
        .into_iter()
        .cloned()
        .chain(r.steps.iter().filter_map(|s| s.decided_by.clone()))
}

impl Workflow {
    fn okta_on(&self) -> bool {
        self.okta.is_some() && self.catalog().okta.is_some()
    }

    /// How the API names the people of these requests (requester, beneficiary,
    /// creator, deciders): one read of the identities, none without `[okta]`.
    pub async fn principals(&self, requests: &[Request]) -> Result<Principals, WorkflowError> {
        if self.catalog().okta.is_none() {
            return Ok(Principals::default());
        }
        let people: BTreeSet<String> = requests.iter().flat_map(people_of).collect();
        let ids: Vec<String> = people.into_iter().collect();
        let known = self.store.identities_of(&ids).await?;
        Ok(Principals { okta: known.into_iter().filter_map(|i| Some((i.user_id, i.okta_id?))).collect() })
    }

    /// The chat user a principal names. An Okta id is one a person here is
    /// known by, else Okta's Users API says whose it is (their email) and the
    /// chat user with that email is found (and the Okta id remembered).
    /// `NotFound` when Okta or the chat workspace has no such person.
    pub async fn chat_user(&self, principal: &Principal) -> Result<String, WorkflowError> {
        let okta_id = match principal {
            Principal::Slack(id) => return Ok(id.clone()),
            Principal::Okta(id) => id,
        };
        if !is_okta_user_id(okta_id) {
            return Err(WorkflowError::Invalid(format!("{okta_id} is not an Okta user id (00u, letters and digits)")));
        }
        match self.by_okta_id(okta_id, true).await? {
            Found::Chat(user) => Ok(user),
            Found::NoOktaUser if !self.okta_on() => Err(WorkflowError::Invalid(
                "Okta user ids need the Okta connector: add an [okta] section to the config".into(),
            )),
            Found::NoOktaUser => Err(WorkflowError::NotFound(format!("Okta user {okta_id}"))),
            Found::NoEmail => Err(WorkflowError::NotFound(format!("an email in the profile of Okta user {okta_id}"))),
            Found::NoChatUser => {
                Err(WorkflowError::NotFound(format!("a Slack user with the email of Okta user {okta_id}")))
            }
        }
    }

    /// Who has this Okta id: the identities, else Okta (by id) and the chat
    /// user with that email (asking the chat directory when `ask_chat`).
    async fn by_okta_id(&self, okta_id: &str, ask_chat: bool) -> Result<Found, WorkflowError> {
        if let Some(i) = self.store.identity_by_okta_id(okta_id).await? {
            return Ok(Found::Chat(i.user_id));
        }
        if !self.okta_on() {
            return Ok(Found::NoOktaUser);
        }
        let Some(user) = self.okta_user(okta_id).await?.filter(|u| u.id == okta_id) else {
            return Ok(Found::NoOktaUser);
        };
        let Some(email) = okta_email(&user) else { return Ok(Found::NoEmail) };
        let found = match self.store.identity_by_email(&email).await? {
            Some(i) => Some(i),
            None if ask_chat => self.chat_user_by_email(&email).await?,
            None => None,
        };
        let Some(found) = found else { return Ok(Found::NoChatUser) };
        let learned = Identity { user_id: found.user_id.clone(), okta_id: Some(user.id), ..Identity::default() };
        self.store.save_identity(&learned).await?;
        Ok(Found::Chat(found.user_id))
    }

    /// Okta's user by id or login; its failures are logged, the caller told to retry.
    async fn okta_user(&self, id_or_login: &str) -> Result<Option<OktaUser>, WorkflowError> {
        let (Some(org), Some(okta)) = (self.catalog().okta.clone(), &self.okta) else { return Ok(None) };
        okta.user(&org, id_or_login).await.map_err(|e| {
            tracing::warn!(error = %e, "okta: users API failed");
            WorkflowError::Unavailable("Okta's Users API did not answer; try again later".into())
        })
    }

    /// The chat user with this email, asked of the chat directory (and remembered).
    async fn chat_user_by_email(&self, email: &str) -> Result<Option<Identity>, WorkflowError> {
        let Some(directory) = &self.directory else { return Ok(None) };
        let found = directory.by_email(email).await.map_err(|e| {
            tracing::warn!(error = %e, "directory: look-up by email failed");
            WorkflowError::Unavailable("the chat directory did not answer; try again later".into())
        })?;
        if let Some(i) = &found {
            self.store.save_identity(&Identity { resolved: true, ..i.clone() }).await?;
        }
        Ok(found)
    }

    /// The filter with every Okta id compared to `requestedFor` or
    /// `requestedBy` replaced by the chat user who has it. An id nobody here
    /// has stays as it is: no request is for or by it.
    pub async fn chat_filter(&self, filter: Filter<RequestAttr>) -> Result<Filter<RequestAttr>, WorkflowError> {
        let mut ids = BTreeSet::new();
        okta_ids_in(&filter, &mut ids);
        if ids.len() > MAX_FILTER_OKTA_IDS {
            return Err(WorkflowError::InvalidField {
                field: "filter".into(),
                message: format!("at most {MAX_FILTER_OKTA_IDS} Okta user ids in one filter ({} given)", ids.len()),
            });
        }
        let mut chat = HashMap::new();
        for id in ids {
            if let Found::Chat(user) = self.by_okta_id(&id, false).await? {
                chat.insert(id, user);
            }
        }
        Ok(rewrite(filter, &chat))
    }

    /// The person's Okta id for a call of the connector: the one learned, else
    /// Okta's user whose login is their email (then remembered).
    pub async fn okta_id_of(&self, party: &Party) -> Result<OktaId, DirectoryError> {
        let known = self.store.identity(&party.id).await.map_err(transient)?;
        if let Some(id) = known.as_ref().and_then(|i| i.okta_id.clone()) {
            return Ok(OktaId::Known(id));
        }
        let email =
            party.email.clone().filter(|e| !e.is_empty()).or_else(|| known.as_ref().and_then(|i| i.email.clone()));
        // The chat user's email may still be on its way (the directory): try again later.
        let Some(email) = email.map(|e| e.to_ascii_lowercase()) else {
            return Err(transient(format!("no email known yet for {}", party.id)));
        };
        self.okta_by_login(&party.id, &email, known.is_some()).await
    }

    /// Okta's user with this login; its id is remembered on the identity when
    /// there is one (the connector's look-ups create none).
    async fn okta_by_login(&self, user_id: &str, login: &str, remember: bool) -> Result<OktaId, DirectoryError> {
        let (Some(org), Some(okta)) = (self.catalog().okta.clone(), &self.okta) else {
            return Err(DirectoryError::Permanent("no [okta] section in the config (was it removed?)".into()));
        };
        let Some(user) = okta.user(&org, login).await? else {
            return Ok(OktaId::NoUser { login: login.to_string() });
        };
        if remember {
            let learned =
                Identity { user_id: user_id.to_string(), okta_id: Some(user.id.clone()), ..Identity::default() };
            self.store.save_identity(&learned).await.map_err(transient)?;
        }
        Ok(OktaId::Known(user.id))
    }

    /// Learns a chat user's Okta id by their email (the outbox runs this for
    /// `Notice::OktaUser`). Without an email, or a user in Okta, there is
    /// nothing to learn: the API names them by their Slack id.
    pub async fn learn_okta_id(&self, user_id: &str) -> Result<(), DirectoryError> {
        if !self.okta_on() {
            return Ok(());
        }
        let known = self.store.identity(user_id).await.map_err(transient)?;
        let Some(email) = known.filter(|i| i.okta_id.is_none()).and_then(|i| i.email) else { return Ok(()) };
        if let OktaId::NoUser { .. } = self.okta_by_login(user_id, &email, true).await? {
            tracing::info!(user = user_id, "okta: no user has their email as login; the API names them by Slack id");
        }
        Ok(())
    }

    /// Queues learning this person's Okta id, with the connector on and an email to ask by.
    pub(super) async fn learn_okta_later(&self, person: &Identity) -> Result<(), WorkflowError> {
        if !self.okta_on() || person.email.is_none() || person.okta_id.is_some() {
            return Ok(());
        }
        self.enqueue(&[notice_item(&Notice::OktaUser { user_id: person.user_id.clone() })?]).await
    }

    /// Queues learning the Okta id of everyone known by email but not yet by
    /// Okta id (people seen before the connector was on), at start and reload.
    pub(super) async fn learn_okta_ids(&self) -> Result<(), WorkflowError> {
        if !self.okta_on() {
            return Ok(());
        }
        let people = self.store.identities_without_okta_id(OKTA_SWEEP).await?;
        let items = people
            .into_iter()
            .map(|i| notice_item(&Notice::OktaUser { user_id: i.user_id }))
            .collect::<Result<Vec<_>, _>>()?;
        if !items.is_empty() {
            self.enqueue(&items).await?;
        }
        Ok(())
    }
}

fn is_person(attr: RequestAttr) -> bool {
    matches!(attr, RequestAttr::RequestedFor | RequestAttr::RequestedBy)
}

fn okta_ids_in(f: &Filter<RequestAttr>, out: &mut BTreeSet<String>) {
    match f {
        Filter::Cmp { attr, value: Value::Text(v), .. } if is_person(*attr) && is_okta_user_id(v) => {
            out.insert(v.clone());
        }
        Filter::Cmp { .. } => {}
        Filter::And(a, b) | Filter::Or(a, b) => {
            okta_ids_in(a, out);
            okta_ids_in(b, out);
        }
        Filter::Not(a) => okta_ids_in(a, out),
    }
}

fn rewrite(f: Filter<RequestAttr>, chat: &HashMap<String, String>) -> Filter<RequestAttr> {
    match f {
        Filter::Cmp { attr, op, value: Value::Text(v) } if is_person(attr) => {
            let v = chat.get(&v).cloned().unwrap_or(v);
            Filter::Cmp { attr, op, value: Value::Text(v) }
        }
        Filter::And(a, b) => Filter::And(Box::new(rewrite(*a, chat)), Box::new(rewrite(*b, chat))),
        Filter::Or(a, b) => Filter::Or(Box::new(rewrite(*a, chat)), Box::new(rewrite(*b, chat))),
        Filter::Not(a) => Filter::Not(Box::new(rewrite(*a, chat))),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::query::Op;

    fn cmp(attr: RequestAttr, v: &str) -> Filter<RequestAttr> {
        Filter::Cmp { attr, op: Op::Eq, value: Value::Text(v.into()) }
    }

    #[test]
    fn okta_ids_are_00u_then_letters_and_digits() {
        assert!(is_okta_user_id("00ub0oNGTSWTBKOLGLNR"));
        assert!(!is_okta_user_id("00u"));
        assert!(!is_okta_user_id("U0ALICE"));
        assert!(!is_okta_user_id("00u/../apps"));
        assert!(!is_okta_user_id("0oa1crm0000000000000"));
    }

    #[test]
    fn only_people_compared_to_okta_ids_are_rewritten() {
        let f = Filter::Or(
            Box::new(cmp(RequestAttr::RequestedFor, "00u1zoe")),
            Box::new(Filter::Not(Box::new(Filter::And(
                Box::new(cmp(RequestAttr::RequestedBy, "00u1ben")),
                Box::new(cmp(RequestAttr::ResourceId, "00u1zoe")),
            )))),
        );
        let mut ids = BTreeSet::new();
        okta_ids_in(&f, &mut ids);
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), vec!["00u1ben".to_string(), "00u1zoe".to_string()]);
        let chat = HashMap::from([("00u1zoe".to_string(), "U0ZOE".to_string())]);
        let want = Filter::Or(
            Box::new(cmp(RequestAttr::RequestedFor, "U0ZOE")),
            Box::new(Filter::Not(Box::new(Filter::And(
                Box::new(cmp(RequestAttr::RequestedBy, "00u1ben")),
                Box::new(cmp(RequestAttr::ResourceId, "00u1zoe")),
            )))),
        );
        assert_eq!(rewrite(f, &chat), want);
    }

    #[test]
    fn the_api_names_people_by_okta_id_when_known() {
        let p = Principals { okta: HashMap::from([("U0ZOE".to_string(), "00u1zoe".to_string())]) };
        assert_eq!(p.of("U0ZOE"), Principal::Okta("00u1zoe".into()));
        assert_eq!(p.of("U0BEN"), Principal::Slack("U0BEN".into()));
        let user = |email: Option<&str>, login: &str| OktaUser {
            id: "00u1".into(),
            login: login.into(),
            email: email.map(Into::into),
        };
        assert_eq!(okta_email(&user(Some("Zoe@Example.com"), "zoe")).as_deref(), Some("zoe@example.com"));
        assert_eq!(okta_email(&user(None, "zoe@example.com")).as_deref(), Some("zoe@example.com"));
        assert_eq!(okta_email(&user(None, "zoe")), None);
    }
}
