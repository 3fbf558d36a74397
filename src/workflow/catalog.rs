//! The catalog as the workflow sees it: apps, groups, people and settings.
//! `config` builds it from the TOML file; nothing here knows about files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A person as written in the config: a Slack user id or an email.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Person {
    Slack(String),
    Email(String),
}

impl Person {
    /// Parses `U…`/`W…` ids and emails; emails are lower-cased.
    pub fn parse(s: &str) -> Result<Person, String> {
        let s = s.trim();
        if s.contains('@') {
            let (local, domain) = s.split_once('@').unwrap_or(("", ""));
            if local.is_empty() || !domain.contains('.') || domain.starts_with('.') || s.contains(' ') {
                return Err(format!("\"{s}\" is not a valid email address"));
            }
            return Ok(Person::Email(s.to_ascii_lowercase()));
        }
        let ok = s.len() >= 3
            && (s.starts_with('U') || s.starts_with('W'))
            && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if ok {
            Ok(Person::Slack(s.to_string()))
        } else {
            Err(format!("\"{s}\" is neither a Slack user id (U… or W…, upper-case letters and digits) nor an email"))
        }
    }

    /// The key used in indexes and outbox ordering: the id, or the lower-cased email.
    pub fn key(&self) -> &str {
        match self {
            Person::Slack(id) => id,
            Person::Email(e) => e,
        }
    }

    pub fn matches(&self, party: &Party) -> bool {
        match self {
            Person::Slack(id) => *id == party.id,
            Person::Email(e) => party.email.as_deref().is_some_and(|pe| pe.eq_ignore_ascii_case(e)),
        }
    }
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A chat user as known at the time of a command: id plus email when the
/// identity cache has it (needed to match people configured by email).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub id: String,
    pub email: Option<String>,
}

impl Party {
    pub fn new(id: impl Into<String>, email: Option<String>) -> Party {
        Party { id: id.into(), email: email.map(|e| e.to_ascii_lowercase()) }
    }
    pub fn is(&self, other: &Party) -> bool {
        self.id == other.id || matches!((&self.email, &other.email), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub name: String,
    /// The configured people, or a Slack user group's members as last read.
    pub members: Vec<Person>,
    /// The Slack user group (`S…`) whose members these are.
    pub slack_usergroup: Option<String>,
    /// For a Slack user group: whether its members were ever read (else
    /// `members` is empty because they are unknown, not because there are none).
    pub usergroup_known: bool,
}

impl Group {
    /// A Slack user group whose members are known: only current members may act for it.
    pub fn is_known_usergroup(&self) -> bool {
        self.slack_usergroup.is_some() && self.usergroup_known
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepDef {
    User(Person),
    /// A group step: `approvals` distinct members must approve (one deny denies).
    Group {
        group: String,
        approvals: u32,
    },
    /// Call a webhook with mapped fields, then continue.
    Action {
        url: String,
        secret_env: Option<String>,
        fields: BTreeMap<String, String>,
    },
    /// A manual task for a person or a group.
    Task(TaskAssignee),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskAssignee {
    User(Person),
    Group(String),
}

/// A step as configured: what it is, and whom it escalates to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepSpec {
    pub def: StepDef,
    pub escalation: Option<Escalation>,
}

/// A step still undecided `after` it was asked is also offered to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escalation {
    pub after: Duration,
    pub to: EscalateTo,
}

/// Whom a step escalates to: the members of a group (as they are when it escalates), or a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum EscalateTo {
    Group(String),
    Person(Person),
}

/// An outbound webhook, signed with the secret in the environment variable `secret_env`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub secret_env: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Select,
    Date,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDef {
    pub id: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    pub options: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub name: String,
    pub description: String,
    pub self_service: bool,
    pub approval: bool,
    pub admins: Vec<Person>,
    pub max_duration: Option<Duration>,
    pub steps: Vec<StepSpec>,
    pub fields: Vec<FieldDef>,
    pub provisioning: Option<Webhook>,
    /// Who may request it; `None`: everyone.
    pub requesters: Option<Vec<Requester>>,
    /// Access durations a requester may choose (each within `max_duration`).
    pub durations: Vec<Duration>,
    /// Steps of an extension request; empty: the app's `steps`.
    pub extend_steps: Vec<StepSpec>,
    /// How many times one grant may be extended; `None`: no limit.
    pub max_extensions: Option<u32>,
    /// Where a grant assigns the user in Okta (the `[okta]` connector).
    pub okta: Option<OktaTarget>,
}

/// An Okta app (`0oa…`) to assign the user to, or an Okta group (`00g…`) to add them to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum OktaTarget {
    App(String),
    Group(String),
}

/// The `[okta]` section: which Okta org the connector calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaOrg {
    /// Absolute, without a trailing slash.
    pub org_url: String,
}

/// One entry of an app's `requesters`: the members of a group, or a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    Group(String),
    Person(Person),
}

impl App {
    /// Whether a request must carry a justification text.
    pub fn justification_required(&self) -> bool {
        self.fields.iter().any(|f| f.id == "justification" && f.required)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub admins: Vec<Person>,
    pub technical_contact: Option<Person>,
    pub allow_request_on_behalf: bool,
    pub admin_channel: Option<String>,
    pub request_ttl: Duration,
    pub reminder_after: Duration,
    /// How often the members of Slack user groups are read again.
    pub usergroup_refresh: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            admins: Vec::new(),
            technical_contact: None,
            allow_request_on_behalf: false,
            admin_channel: None,
            request_ttl: Duration::from_secs(14 * 86_400),
            reminder_after: Duration::from_secs(86_400),
            usergroup_refresh: Duration::from_secs(600),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    pub settings: Settings,
    pub groups: BTreeMap<String, Group>,
    pub apps: BTreeMap<String, App>,
    /// The `[okta]` section, when the Okta connector is set up.
    pub okta: Option<OktaOrg>,
}

impl Catalog {
    /// Whether `who` may request `app` (its `requesters`, when it has them).
    pub fn may_request(&self, app: &App, who: &Party) -> bool {
        let Some(list) = &app.requesters else { return true };
        list.iter().any(|r| match r {
            Requester::Person(p) => p.matches(who),
            Requester::Group(g) => self.groups.get(g).is_some_and(|g| g.members.iter().any(|m| m.matches(who))),
        })
    }

    /// The apps `who` can request now: self-service and open to them.
    pub fn requestable_by<'a>(&'a self, who: &'a Party) -> impl Iterator<Item = &'a App> + 'a {
        self.apps.values().filter(move |a| a.self_service && self.may_request(a, who))
    }

    /// The Slack user groups the groups name.
    pub fn usergroup_ids(&self) -> BTreeSet<String> {
        self.groups.values().filter_map(|g| g.slack_usergroup.clone()).collect()
    }

    /// False only when `group_id` is a Slack user group with known members and
    /// `who` is not one of them any more (a removed member loses what the group gave).
    pub fn membership_holds(&self, group_id: &str, who: &Party) -> bool {
        match self.groups.get(group_id) {
            Some(g) if g.is_known_usergroup() => g.members.iter().any(|m| m.matches(who)),
            _ => true,
        }
    }

    pub fn is_super_admin(&self, who: &Party) -> bool {
        self.settings.admins.iter().any(|p| p.matches(who))
    }

    /// Super admins administer every app; app admins their own.
    pub fn is_admin_of(&self, who: &Party, app_id: &str) -> bool {
        self.is_super_admin(who) || self.apps.get(app_id).is_some_and(|a| a.admins.iter().any(|p| p.matches(who)))
    }

    pub fn is_any_admin(&self, who: &Party) -> bool {
        self.is_super_admin(who) || self.apps.values().any(|a| a.admins.iter().any(|p| p.matches(who)))
    }

    /// Apps this person administers (all of them for a super admin).
    pub fn administered_apps(&self, who: &Party) -> Vec<String> {
        self.apps.keys().filter(|id| self.is_admin_of(who, id)).cloned().collect()
    }

    /// Every email the catalog names, for the identity resolver.
    pub fn emails(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |p: &Person| {
            if let Person::Email(e) = p {
                if !out.contains(e) {
                    out.push(e.clone());
                }
            }
        };
        self.settings.admins.iter().for_each(&mut push);
        self.settings.technical_contact.iter().for_each(&mut push);
        for g in self.groups.values() {
            g.members.iter().for_each(&mut push);
        }
        for a in self.apps.values() {
            a.admins.iter().for_each(&mut push);
            for s in &a.steps {
                if let StepDef::User(p) | StepDef::Task(TaskAssignee::User(p)) = &s.def {
                    push(p);
                }
            }
        }
        out
    }
}

/// A duration as people write it in the config: `90m`, `8h`, `7d`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => "0s".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_parse() {
        assert_eq!(Person::parse("U0ALICE"), Ok(Person::Slack("U0ALICE".into())));
        assert_eq!(Person::parse("W123"), Ok(Person::Slack("W123".into())));
        assert_eq!(Person::parse("Carol@Example.com"), Ok(Person::Email("carol@example.com".into())));
        assert!(Person::parse("alice").is_err());
        assert!(Person::parse("u0alice").is_err());
        assert!(Person::parse("@example.com").is_err());
        assert!(Person::parse("x@localhost").is_err());
    }

    #[test]
    fn email_people_match_parties_with_that_email() {
        let p = Person::Email("carol@example.com".into());
        assert!(p.matches(&Party::new("U9", Some("CAROL@example.com".into()))));
        assert!(!p.matches(&Party::new("U9", None)));
        assert!(Person::Slack("U9".into()).matches(&Party::new("U9", None)));
    }
}
