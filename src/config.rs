//! The config file (`accessbot.toml`) and the environment. Every problem is
//! reported with the file, the key and what is wrong, all at once.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::workflow::catalog::{
    App, Catalog, EscalateTo, Escalation, FieldDef, FieldKind, Group, OktaOrg, OktaTarget, Person, Requester, Settings,
    StepDef, StepSpec, TaskAssignee, Webhook,
};
use crate::workflow::{ratelimit, Limits, RateLimiter, DEFAULT_REFUSAL_LOG, DEFAULT_SUGGESTIONS};

/// One problem in the config: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.key.is_empty() {
                write!(f, "{}: {}", self.file, p.message)?;
            } else {
                write!(f, "{}: {}: {}", self.file, p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    settings: RawSettings,
    #[serde(default)]
    groups: BTreeMap<String, RawGroup>,
    #[serde(default)]
    apps: BTreeMap<String, RawApp>,
    okta: Option<RawOkta>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOkta {
    org_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOktaTarget {
    app_id: Option<String>,
    group_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    admins: Vec<String>,
    technical_contact: Option<String>,
    #[serde(default)]
    allow_request_on_behalf: bool,
    admin_channel: Option<String>,
    request_ttl: Option<String>,
    reminder_after: Option<String>,
    /// How often Slack user groups' members are read again (default 10m).
    usergroup_refresh: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Option<String>,
    members: Option<Vec<String>>,
    slack_usergroup: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Option<String>,
    #[serde(default)]
    description: String,
    self_service: Option<bool>,
    approval: Option<bool>,
    #[serde(default)]
    admins: Vec<String>,
    max_duration: Option<String>,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    fields: Vec<RawField>,
    provisioning: Option<RawWebhook>,
    /// Groups and people who may request the app (default: everyone).
    requesters: Option<Vec<String>>,
    /// Durations a requester may choose (`["1h", "8h", "1d"]`).
    durations: Option<Vec<String>>,
    /// Steps of an extension request (default: `steps`).
    #[serde(default)]
    extend_steps: Vec<RawStep>,
    /// How many times one grant may be extended.
    max_extensions: Option<i64>,
    okta: Option<RawOktaTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    url: String,
    secret_env: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    user: Option<String>,
    group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    user: Option<String>,
    group: Option<String>,
    /// With `group`: how many distinct members must approve.
    approvals: Option<i64>,
    action: Option<RawAction>,
    task: Option<RawTask>,
    /// Offer the step to `escalate_to` too when still undecided this long after it was asked.
    escalate_after: Option<String>,
    escalate_to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    id: String,
    label: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    options: Vec<String>,
}

struct Checker {
    problems: Vec<Problem>,
    /// `settings.request_ttl` as parsed: an escalation must come before it.
    request_ttl: Duration,
}

/// What an action step may send: request facts, or `field.<id>`.
pub const ACTION_SOURCES: &[&str] = &[
    "request.id",
    "app.id",
    "app.name",
    "requester.id",
    "requester.email",
    "requestedFor.id",
    "requestedFor.email",
    "justification",
    "access.until",
];

impl Checker {
    fn url(&mut self, key: &str, url: &str) {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() > 10
            && !url.contains(char::is_whitespace);
        if !ok {
            // Credentials ride in userinfo and query: never echo those parts.
            let shown = if url.contains(['@', '?', '#']) { crate::redact::redact_url(url) } else { url.to_string() };
            self.bad(key, format!("\"{shown}\" is not an http(s) URL"));
        }
    }

    fn secret_env(&mut self, key: &str, name: Option<&str>) {
        let Some(name) = name else { return };
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            self.bad(key, format!("\"{name}\" is not an environment variable name (e.g. GRANT_SECRET)"));
        }
    }

    fn bad(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { key: key.into(), message: message.into() });
    }

    fn person(&mut self, key: String, s: &str) -> Option<Person> {
        match Person::parse(s) {
            Ok(p) => Some(p),
            Err(e) => {
                self.bad(key, e);
                None
            }
        }
    }

    /// Each entry names a group of this config, or else a person.
    fn requesters(&mut self, key: &str, list: &[String], groups: &BTreeMap<String, RawGroup>) -> Vec<Requester> {
        if list.is_empty() {
            self.bad(key, "an empty list lets nobody request the app: remove the key to let everyone request it");
        }
        let mut out = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let entry = if groups.contains_key(s) {
                Some(Requester::Group(s.clone()))
            } else {
                Person::parse(s).ok().map(Requester::Person)
            };
            match entry {
                Some(r) if !out.contains(&r) => out.push(r),
                Some(_) => self.bad(format!("{key}[{i}]"), format!("duplicate entry \"{s}\"")),
                None => self.bad(
                    format!("{key}[{i}]"),
                    format!("\"{s}\" is neither a group of this config nor a Slack user id or email"),
                ),
            }
        }
        out
    }

    fn people(&mut self, key: &str, list: &[String]) -> Vec<Person> {
        let mut out: Vec<Person> = Vec::new();
        for (i, s) in list.iter().enumerate() {
            if let Some(p) = self.person(format!("{key}[{i}]"), s) {
                if out.contains(&p) {
                    self.bad(format!("{key}[{i}]"), format!("duplicate entry \"{s}\""));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Choices of access duration: at least one, none above `max`.
    fn durations(&mut self, key: &str, list: Option<&[String]>, max: Option<Duration>) -> Vec<Duration> {
        let Some(list) = list else { return Vec::new() };
        if list.is_empty() {
            self.bad(key, "an empty list offers no choice: remove the key, or list durations like \"8h\"");
        }
        let mut out = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let Some(d) = self.duration(&format!("{key}[{i}]"), Some(s), None) else { continue };
            match max {
                Some(m) if d > m => self.bad(
                    format!("{key}[{i}]"),
                    format!("\"{s}\" is longer than max_duration ({})", humantime::format_duration(m)),
                ),
                _ if out.contains(&d) => self.bad(format!("{key}[{i}]"), format!("duplicate entry \"{s}\"")),
                _ => out.push(d),
            }
        }
        out
    }

    /// A duration that times the jobs loop: at most [`MAX_TIMER`], so due times stay in range.
    fn timer(&mut self, key: &str, s: Option<&str>, default: Option<Duration>) -> Option<Duration> {
        match self.duration(key, s, default) {
            Some(d) if d > MAX_TIMER => {
                self.bad(key, format!("\"{}\" is longer than 100 years", s.unwrap_or_default()));
                default
            }
            d => d,
        }
    }

    fn duration(&mut self, key: &str, s: Option<&str>, default: Option<Duration>) -> Option<Duration> {
        let Some(s) = s else { return default };
        match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() => {
                self.bad(key, "must be longer than zero");
                default
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.bad(key, format!("\"{s}\" is not a duration: write e.g. \"90m\", \"1d\" or \"14d\" ({e})"));
                default
            }
        }
    }
}

/// The longest a reminder, expiry, escalation or refresh interval may be: 100 years.
const MAX_TIMER: Duration = Duration::from_secs(100 * 365 * 86_400);

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Okta object ids are letters and digits (`0oa…`, `00g…`); the exact prefix is not checked.
fn is_okta_id(s: &str) -> bool {
    (3..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn okta_org_url(value: &str) -> Result<(), String> {
    let shown = crate::redact::redact_url(value);
    let example = "write e.g. https://acme.okta.com";
    let u = url::Url::parse(value.trim()).map_err(|e| format!("is not an absolute URL ({e}): {example}"))?;
    let loopback = u
        .host_str()
        .is_some_and(|h| h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) || h == "[::1]");
    let scheme_ok = u.scheme() == "https" || (u.scheme() == "http" && loopback);
    if !scheme_ok || u.host_str().is_none_or(str::is_empty) {
        return Err(format!("\"{shown}\" is not an https URL with a host (http only for 127.0.0.1): {example}"));
    }
    if !u.username().is_empty() || u.password().is_some() || u.query().is_some() || u.fragment().is_some() {
        return Err(format!("\"{shown}\" must not contain a user name, password, query or fragment: {example}"));
    }
    if u.path() != "/" {
        return Err(format!("\"{shown}\" must be the org's address without a path: {example}"));
    }
    Ok(())
}

/// A Slack user group id as Slack writes it: `S` and upper-case letters and digits.
fn is_usergroup(s: &str) -> bool {
    s.len() >= 3 && s.starts_with('S') && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn is_channel(s: &str) -> bool {
    s.len() >= 3
        && (s.starts_with('C') || s.starts_with('G'))
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Parses and validates config text; `file` names it in errors.
pub fn parse_catalog(file: &str, text: &str) -> Result<Catalog, ConfigError> {
    let raw = deserialize(file, text)?;
    let mut c = Checker { problems: Vec::new(), request_ttl: Duration::MAX };
    let settings = c.settings(&raw.settings);
    c.request_ttl = settings.request_ttl;
    let groups = raw.groups.iter().map(|(id, g)| (id.clone(), c.group(id, g))).collect();
    let okta = raw.okta.as_ref().map(|o| c.okta(o));
    let apps = raw.apps.iter().map(|(id, a)| (id.clone(), c.app(id, a, &raw.groups, okta.is_some()))).collect();
    if c.problems.is_empty() {
        Ok(Catalog { settings, groups, apps, okta })
    } else {
        Err(ConfigError { file: file.to_string(), problems: c.problems })
    }
}

/// A file that does not parse as the config's shape has one problem: the first.
fn deserialize(file: &str, text: &str) -> Result<RawConfig, ConfigError> {
    let fail = |key: String, e: &toml::de::Error| ConfigError {
        file: file.to_string(),
        problems: vec![Problem { key, message: describe(text, e) }],
    };
    let de = toml::Deserializer::parse(text).map_err(|e| fail(String::new(), &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { String::new() } else { path };
        fail(key, &e.into_inner())
    })
}

fn describe(text: &str, e: &toml::de::Error) -> String {
    let mut msg = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(": ");
    if let Some(span) = e.span() {
        let line = text.get(..span.start.min(text.len())).unwrap_or_default().matches('\n').count() + 1;
        // The line itself, since some parser messages do not name the key.
        let src: String = text.lines().nth(line - 1).unwrap_or_default().trim().chars().take(80).collect();
        msg = if src.is_empty() { format!("{msg} (line {line})") } else { format!("{msg} (line {line}: `{src}`)") };
    }
    msg
}

/// The catalog's parts, each checked where it is built; problems are
/// collected in file order so one run reports them all.
impl Checker {
    fn settings(&mut self, s: &RawSettings) -> Settings {
        let defaults = Settings::default();
        let settings = Settings {
            admins: self.people("settings.admins", &s.admins),
            technical_contact: s
                .technical_contact
                .as_deref()
                .and_then(|t| self.person("settings.technical_contact".into(), t)),
            allow_request_on_behalf: s.allow_request_on_behalf,
            admin_channel: s.admin_channel.clone(),
            request_ttl: self
                .timer("settings.request_ttl", s.request_ttl.as_deref(), Some(defaults.request_ttl))
                .unwrap_or(defaults.request_ttl),
            reminder_after: self
                .timer("settings.reminder_after", s.reminder_after.as_deref(), Some(defaults.reminder_after))
                .unwrap_or(defaults.reminder_after),
            usergroup_refresh: self
                .timer("settings.usergroup_refresh", s.usergroup_refresh.as_deref(), Some(defaults.usergroup_refresh))
                .unwrap_or(defaults.usergroup_refresh),
        };
        if let Some(ch) = &s.admin_channel {
            if !is_channel(ch) {
                self.bad("settings.admin_channel", format!("\"{ch}\" is not a Slack channel id (C… or G…)"));
            }
        }
        settings
    }

    fn group(&mut self, id: &str, g: &RawGroup) -> Group {
        let key = format!("groups.{id}");
        if !is_slug(id) {
            self.bad(&key, "group ids use lower-case letters, digits, '-' and '_'");
        }
        let members = self.people(&format!("{key}.members"), g.members.as_deref().unwrap_or_default());
        match (&g.members, &g.slack_usergroup) {
            (Some(_), Some(_)) => self.bad(&key, "give either members or slack_usergroup, not both"),
            (None, None) => self.bad(&key, "has no members: give members = [...] or slack_usergroup = \"S…\""),
            (Some(m), None) if m.is_empty() => {
                self.bad(format!("{key}.members"), "is empty: a group needs at least one member")
            }
            (None, Some(ug)) if !is_usergroup(ug) => self.bad(
                format!("{key}.slack_usergroup"),
                format!("\"{ug}\" is not a Slack user group id (S…, upper-case letters and digits, e.g. S0614TZR7)"),
            ),
            _ => {}
        }
        Group {
            id: id.to_string(),
            name: g.name.clone().unwrap_or_else(|| id.to_string()),
            members,
            slack_usergroup: g.slack_usergroup.clone(),
            usergroup_known: false,
        }
    }

    fn app(&mut self, id: &str, a: &RawApp, groups: &BTreeMap<String, RawGroup>, has_okta: bool) -> App {
        let key = format!("apps.{id}");
        if !is_slug(id) {
            self.bad(&key, "app ids use lower-case letters, digits, '-' and '_' (at most 64)");
        }
        let approval = a.approval.unwrap_or(true);
        let steps =
            a.steps.iter().enumerate().filter_map(|(i, st)| self.step(&format!("{key}.steps[{i}]"), st, a, groups));
        let steps: Vec<StepSpec> = steps.collect();
        if approval && a.steps.is_empty() {
            self.bad(
                format!("{key}.steps"),
                "approval is on but there are no steps: add steps or set approval = false",
            );
        }
        let provisioning = a.provisioning.as_ref().map(|w| {
            self.endpoint(&format!("{key}.provisioning"), &w.url, w.secret_env.as_deref());
            Webhook { url: w.url.clone(), secret_env: w.secret_env.clone() }
        });
        let okta = a.okta.as_ref().and_then(|t| self.okta_target(&format!("{key}.okta"), t, has_okta));
        let fields = self.fields(&key, &a.fields);
        let requesters = a.requesters.as_ref().map(|list| self.requesters(&format!("{key}.requesters"), list, groups));
        let max_duration = self.duration(&format!("{key}.max_duration"), a.max_duration.as_deref(), None);
        let durations = self.durations(&format!("{key}.durations"), a.durations.as_deref(), max_duration);
        let extend_steps: Vec<StepSpec> = a
            .extend_steps
            .iter()
            .enumerate()
            .filter_map(|(i, st)| self.step(&format!("{key}.extend_steps[{i}]"), st, a, groups))
            .collect();
        let max_extensions = a.max_extensions.and_then(|n| match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.bad(format!("{key}.max_extensions"), format!("must be 0 or more, not {n}"));
                None
            }
        });
        App {
            id: id.to_string(),
            name: a.name.clone().unwrap_or_else(|| id.to_string()),
            description: a.description.clone(),
            self_service: a.self_service.unwrap_or(true),
            approval,
            admins: self.people(&format!("{key}.admins"), &a.admins),
            max_duration,
            steps,
            fields,
            provisioning,
            requesters,
            durations,
            extend_steps,
            max_extensions,
            okta,
        }
    }

    /// `[okta] org_url`: https (http only for a loopback test server), a host, no path, query or credentials.
    fn okta(&mut self, o: &RawOkta) -> OktaOrg {
        if let Err(e) = okta_org_url(&o.org_url) {
            self.bad("okta.org_url", e);
        }
        OktaOrg { org_url: o.org_url.trim().trim_end_matches('/').to_string() }
    }

    /// `apps.<id>.okta`: exactly one of `app_id` (`0oa…`) or `group_id` (`00g…`).
    fn okta_target(&mut self, key: &str, t: &RawOktaTarget, has_okta: bool) -> Option<OktaTarget> {
        if !has_okta {
            self.bad(key, "names an Okta target but there is no [okta] section: add [okta] org_url = \"https://…\"");
        }
        let (name, id, target): (&str, &str, fn(String) -> OktaTarget) = match (&t.app_id, &t.group_id) {
            (Some(a), None) => ("app_id", a, OktaTarget::App),
            (None, Some(g)) => ("group_id", g, OktaTarget::Group),
            _ => {
                self.bad(key, "give exactly one of app_id = \"0oa…\" (assign to the Okta app) or group_id = \"00g…\" (add to the Okta group)");
                return None;
            }
        };
        let id = id.trim();
        if !is_okta_id(id) {
            self.bad(
                format!("{key}.{name}"),
                format!("\"{id}\" is not an Okta id (letters and digits, e.g. 0oa1b2c3d4 or 00g1b2c3d4)"),
            );
            return None;
        }
        Some(target(id.to_string()))
    }

    /// `None` when the step is invalid (its problem is recorded).
    fn step(
        &mut self,
        skey: &str,
        st: &RawStep,
        app: &RawApp,
        groups: &BTreeMap<String, RawGroup>,
    ) -> Option<StepSpec> {
        let escalation = self.escalation(skey, st, groups);
        let def = self.step_def(skey, st, app, groups)?;
        Some(StepSpec { def, escalation })
    }

    /// `escalate_after` and `escalate_to` come together, on a step people decide, before the request expires.
    fn escalation(&mut self, skey: &str, st: &RawStep, groups: &BTreeMap<String, RawGroup>) -> Option<Escalation> {
        let (after, to) = match (&st.escalate_after, &st.escalate_to) {
            (None, None) => return None,
            (Some(_), None) => {
                self.bad(format!("{skey}.escalate_to"), "escalate_after needs escalate_to: a group or a person");
                return None;
            }
            (None, Some(_)) => {
                self.bad(format!("{skey}.escalate_after"), "escalate_to needs escalate_after: a duration like \"2d\"");
                return None;
            }
            (Some(a), Some(t)) => (a, t),
        };
        if st.action.is_some() {
            self.bad(format!("{skey}.escalate_after"), "an action step is decided by no one: it cannot escalate");
            return None;
        }
        let after = self.timer(&format!("{skey}.escalate_after"), Some(after), None)?;
        if after >= self.request_ttl {
            self.bad(
                format!("{skey}.escalate_after"),
                format!(
                    "{} is not before settings.request_ttl ({}): the request would expire first",
                    humantime::format_duration(after),
                    humantime::format_duration(self.request_ttl)
                ),
            );
            return None;
        }
        let to = if groups.contains_key(to) {
            EscalateTo::Group(to.clone())
        } else {
            match Person::parse(to) {
                Ok(p) => EscalateTo::Person(p),
                Err(_) => {
                    self.bad(
                        format!("{skey}.escalate_to"),
                        format!("\"{to}\" is neither a group of this config nor a Slack user id or email"),
                    );
                    return None;
                }
            }
        };
        Some(Escalation { after, to })
    }

    fn step_def(
        &mut self,
        skey: &str,
        st: &RawStep,
        app: &RawApp,
        groups: &BTreeMap<String, RawGroup>,
    ) -> Option<StepDef> {
        let set = [st.user.is_some(), st.group.is_some(), st.action.is_some(), st.task.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set != 1 {
            self.bad(
                skey,
                "a step is exactly one of { user = \"…\" }, { group = \"…\" }, { action = { url = \"…\" } } or { task = { user = \"…\" } } / { task = { group = \"…\" } }",
            );
            return None;
        }
        if st.approvals.is_some() && st.group.is_none() {
            self.bad(format!("{skey}.approvals"), "approvals applies only to a { group = \"…\" } step");
        }
        if let Some(u) = &st.user {
            self.person(format!("{skey}.user"), u).map(StepDef::User)
        } else if let Some(g) = &st.group {
            if let Some(group) = groups.get(g) {
                let approvals = self.approvals(skey, st.approvals, g, group)?;
                return Some(StepDef::Group { group: g.clone(), approvals });
            }
            let known: Vec<&str> = groups.keys().map(String::as_str).collect();
            self.bad(
                format!("{skey}.group"),
                format!(
                    "unknown group \"{g}\" (defined groups: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            );
            None
        } else if let Some(action) = &st.action {
            Some(self.action(&format!("{skey}.action"), action, app))
        } else {
            st.task.as_ref().and_then(|task| self.task(&format!("{skey}.task"), task, groups))
        }
    }

    /// A quorum is at least one and at most the group's members. A Slack user
    /// group's size is Slack's to say: routing falls back to the app's admins
    /// when too few members are left.
    fn approvals(&mut self, skey: &str, given: Option<i64>, gid: &str, group: &RawGroup) -> Option<u32> {
        let Some(n) = given else { return Some(1) };
        let members = group.members.as_ref().map_or(0, Vec::len);
        let usergroup = group.members.is_none() && group.slack_usergroup.is_some();
        match u32::try_from(n) {
            Ok(q) if q >= 1 && (usergroup || q as usize <= members.max(1)) => Some(q),
            _ if usergroup => {
                self.bad(format!("{skey}.approvals"), format!("approvals must be 1 or more, not {n}"));
                None
            }
            _ => {
                self.bad(
                    format!("{skey}.approvals"),
                    format!("approvals must be from 1 to the {members} member(s) of group \"{gid}\", not {n}"),
                );
                None
            }
        }
    }

    fn action(&mut self, akey: &str, action: &RawAction, app: &RawApp) -> StepDef {
        self.endpoint(akey, &action.url, action.secret_env.as_deref());
        for (out, source) in &action.fields {
            let ok = ACTION_SOURCES.contains(&source.as_str())
                || source
                    .strip_prefix("field.")
                    .is_some_and(|f| f == "justification" || app.fields.iter().any(|x| x.id == f));
            if !ok {
                self.bad(
                    format!("{akey}.fields.{out}"),
                    format!(
                        "unknown source \"{source}\" (use {}, or field.<id> of this app's fields)",
                        ACTION_SOURCES.join(", ")
                    ),
                );
            }
        }
        StepDef::Action {
            url: action.url.clone(),
            secret_env: action.secret_env.clone(),
            fields: action.fields.clone(),
        }
    }

    fn task(&mut self, tkey: &str, task: &RawTask, groups: &BTreeMap<String, RawGroup>) -> Option<StepDef> {
        match (&task.user, &task.group) {
            (Some(u), None) => self.person(format!("{tkey}.user"), u).map(|p| StepDef::Task(TaskAssignee::User(p))),
            (None, Some(g)) if groups.contains_key(g) => Some(StepDef::Task(TaskAssignee::Group(g.clone()))),
            (None, Some(g)) => {
                self.bad(format!("{tkey}.group"), format!("unknown group \"{g}\""));
                None
            }
            _ => {
                self.bad(tkey, "a task names exactly one assignee: { user = \"…\" } or { group = \"…\" }");
                None
            }
        }
    }

    /// The `url` and `secret_env` below `key`, as action steps and provisioning give them.
    fn endpoint(&mut self, key: &str, url: &str, secret_env: Option<&str>) {
        self.url(&format!("{key}.url"), url);
        self.secret_env(&format!("{key}.secret_env"), secret_env);
    }

    fn fields(&mut self, key: &str, raw: &[RawField]) -> Vec<FieldDef> {
        let mut fields: Vec<FieldDef> = Vec::new();
        for (i, f) in raw.iter().enumerate() {
            let fkey = format!("{key}.fields[{i}]");
            if !is_slug(&f.id) {
                self.bad(format!("{fkey}.id"), "field ids use lower-case letters, digits, '-' and '_'");
            }
            if fields.iter().any(|x| x.id == f.id) {
                self.bad(format!("{fkey}.id"), format!("duplicate field id \"{}\"", f.id));
            }
            let field = self.field(&fkey, f);
            fields.push(field);
        }
        fields
    }

    fn field(&mut self, fkey: &str, f: &RawField) -> FieldDef {
        let kind = match f.kind.as_str() {
            "text" => FieldKind::Text,
            "select" => FieldKind::Select,
            "date" => FieldKind::Date,
            other => {
                self.bad(format!("{fkey}.type"), format!("unknown field type \"{other}\" (use text, select or date)"));
                FieldKind::Text
            }
        };
        if kind == FieldKind::Select && f.options.is_empty() {
            self.bad(format!("{fkey}.options"), "a select field needs options");
        }
        if f.id == "end_date" && kind != FieldKind::Date {
            self.bad(format!("{fkey}.type"), "the `end_date` field caps access and must have type = \"date\"");
        }
        FieldDef {
            id: f.id.clone(),
            label: f.label.clone().unwrap_or_else(|| f.id.clone()),
            kind,
            required: f.required,
            options: f.options.clone(),
        }
    }
}

pub fn load_catalog(path: &Path) -> Result<Catalog, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        problems: vec![Problem { key: String::new(), message: format!("cannot read the file: {e}") }],
    })?;
    parse_catalog(&file, &text)
}

/// A secret value: `Debug` prints `Secret(***)`, and there is no `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything the server takes from the environment.
#[derive(Clone, Debug)]
pub struct Env {
    pub config_path: PathBuf,
    pub port: u16,
    pub database_url: String,
    pub signing_secret: Secret,
    pub bot_token: Secret,
    /// `xapp-…` app-level token: when set, Slack traffic also arrives over Socket Mode.
    pub slack_app_token: Option<Secret>,
    pub slack_api_base_url: String,
    pub api_tokens: Vec<Secret>,
    /// Tokens that may only read (GET requests, catalog, system log).
    pub api_read_tokens: Vec<Secret>,
    /// Where clients reach the server, for the API's links (no trailing slash);
    /// `None`: the listen address.
    pub public_url: Option<String>,
    /// Peers whose `X-Forwarded-Host`/`-Proto` and `Host` are believed for links.
    pub trusted_proxies: Vec<IpRange>,
    /// `None`: any workspace that can sign with the secret.
    pub team_ids: Option<Vec<String>>,
    /// How long an outbox claim holds before another replica may take the row.
    pub outbox_lease: Duration,
    /// How long a graceful stop may take after SIGTERM.
    pub shutdown_timeout: Duration,
    /// `OKTA_API_TOKEN`: the Okta connector's API token (sent as `SSWS <token>`).
    pub okta_token: Option<Secret>,
}

/// An IP address or CIDR range (`10.0.0.0/8`, `::1`), as in `ACCESSBOT_TRUSTED_PROXIES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn parse(s: &str) -> Option<IpRange> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpRange { net: addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // A v4 peer may arrive on a dual-stack socket as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let keep = |bits: u32| if self.prefix == 0 { 0 } else { u128::MAX << (bits - u32::from(self.prefix)) };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = keep(32);
                (u128::from(u32::from(n)) & mask) == (u128::from(u32::from(a)) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = keep(128);
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

/// `ACCESSBOT_PUBLIC_URL`: an absolute http(s) URL without credentials or query, trailing slash trimmed.
fn public_url(value: &str) -> Result<String, String> {
    // Errors show the redacted form: a pasted URL may carry a password.
    let shown = crate::redact::redact_url(value);
    let example = "write e.g. https://accessbot.example.com";
    let u = url::Url::parse(value.trim()).map_err(|e| format!("is not an absolute URL ({e}): {example}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return Err(format!("\"{shown}\" is not an http(s) URL with a host: {example}"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("\"{shown}\" must not contain a user name or password"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("\"{shown}\" must not contain a query string or fragment"));
    }
    Ok(u.as_str().trim_end_matches('/').to_string())
}

/// A webhook secret by variable name: `NAME`, or the file named by `NAME_FILE`.
/// The per-person limits: `ACCESSBOT_REQUEST_RATE` (new requests per
/// `requestedBy`), `ACCESSBOT_SUGGEST_RATE` (suggestions per user) and
/// `ACCESSBOT_REFUSAL_LOG_RATE` (refusals per actor written to the system
/// log), each `N/DURATION` or `off`.
pub fn limits_from_env() -> Result<Limits, String> {
    let rate = |name: &str, default: Option<(u32, Duration)>| -> Result<RateLimiter, String> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => {
                Ok(RateLimiter::from_rate(ratelimit::parse(&v).map_err(|e| format!("{name}: {e}"))?))
            }
            _ => Ok(RateLimiter::from_rate(default)),
        }
    };
    Ok(Limits {
        requests: rate("ACCESSBOT_REQUEST_RATE", Some((ratelimit::DEFAULT_BURST, ratelimit::DEFAULT_PERIOD)))?,
        suggestions: rate("ACCESSBOT_SUGGEST_RATE", Some(DEFAULT_SUGGESTIONS))?,
        refusal_log: rate("ACCESSBOT_REFUSAL_LOG_RATE", Some(DEFAULT_REFUSAL_LOG))?,
    })
}

pub fn secret_from_env(name: &str) -> Option<String> {
    let mut problems = Vec::new();
    let s = secret_var(&|k| std::env::var(k).ok(), name, &mut problems);
    (!s.is_empty()).then_some(s.0)
}

/// Reads `NAME`, or the file named by `NAME_FILE` (trailing newline trimmed).
fn secret_var(get: &dyn Fn(&str) -> Option<String>, name: &str, problems: &mut Vec<Problem>) -> Secret {
    if let Some(v) = get(name).filter(|v| !v.is_empty()) {
        return Secret(v);
    }
    let file_var = format!("{name}_FILE");
    if let Some(path) = get(&file_var).filter(|v| !v.is_empty()) {
        match std::fs::read_to_string(&path) {
            Ok(v) => return Secret(v.trim_end_matches(['\n', '\r']).to_string()),
            Err(e) => problems.push(Problem { key: file_var, message: format!("cannot read {path}: {e}") }),
        }
    }
    Secret::default()
}

/// `SLACK_APP_TOKEN`: unset turns Socket Mode off; anything but an app-level token is a mistake.
fn app_token(token: Secret, problems: &mut Vec<Problem>) -> Option<Secret> {
    if token.is_empty() {
        return None;
    }
    if !token.0.starts_with("xapp-") {
        let message = "does not start with xapp-: use an app-level token with the connections:write scope \
                       (Basic Information → App-Level Tokens), not the bot or user token";
        problems.push(Problem { key: "SLACK_APP_TOKEN".into(), message: message.into() });
        return None;
    }
    Some(token)
}

fn trusted_proxies(get: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<Problem>) -> Vec<IpRange> {
    let mut trusted_proxies = Vec::new();
    for item in get("ACCESSBOT_TRUSTED_PROXIES").unwrap_or_default().split(',').map(str::trim) {
        match IpRange::parse(item) {
            Some(r) => trusted_proxies.push(r),
            None if item.is_empty() => {}
            None => problems.push(Problem {
                key: "ACCESSBOT_TRUSTED_PROXIES".into(),
                message: format!(
                    "\"{item}\" is not an IP address or CIDR range: write e.g. 10.0.0.0/8, 127.0.0.1 (comma-separated)"
                ),
            }),
        }
    }
    trusted_proxies
}

fn duration_var(
    get: &dyn Fn(&str) -> Option<String>,
    key: &str,
    default_secs: u64,
    problems: &mut Vec<Problem>,
) -> Duration {
    match get(key) {
        None => Duration::from_secs(default_secs),
        Some(v) => humantime::parse_duration(&v).unwrap_or_else(|_| {
            problems.push(Problem {
                key: key.into(),
                message: format!("\"{v}\" is not a duration: write e.g. \"30s\" or \"1m\""),
            });
            Duration::from_secs(default_secs)
        }),
    }
}

impl Env {
    /// Reads the environment through `get` (so tests need not touch the process env).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Env, ConfigError> {
        let mut problems = Vec::new();
        let port = match get("PORT") {
            None => 3000,
            Some(p) => p.parse().unwrap_or_else(|_| {
                problems.push(Problem { key: "PORT".into(), message: format!("\"{p}\" is not a port number") });
                3000
            }),
        };
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://accessbot.db".into());
        let signing_secret = secret_var(get, "SLACK_SIGNING_SECRET", &mut problems);
        let bot_token = secret_var(get, "SLACK_BOT_TOKEN", &mut problems);
        let slack_app_token = app_token(secret_var(get, "SLACK_APP_TOKEN", &mut problems), &mut problems);
        let tokens = secret_var(get, "ACCESSBOT_API_TOKENS", &mut problems);
        let split = |s: &Secret| -> Vec<Secret> {
            s.0.split(',').map(str::trim).filter(|t| !t.is_empty()).map(Secret::new).collect()
        };
        let api_tokens = split(&tokens);
        let api_read_tokens = split(&secret_var(get, "ACCESSBOT_API_READ_TOKENS", &mut problems));
        let public_url = get("ACCESSBOT_PUBLIC_URL").filter(|v| !v.trim().is_empty()).and_then(|v| {
            public_url(&v)
                .map_err(|message| problems.push(Problem { key: "ACCESSBOT_PUBLIC_URL".into(), message }))
                .ok()
        });
        let trusted_proxies = trusted_proxies(get, &mut problems);
        let team_ids: Option<Vec<String>> = get("SLACK_TEAM_IDS")
            .map(|v| v.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect())
            .filter(|v: &Vec<String>| !v.is_empty());
        let outbox_lease = duration_var(get, "ACCESSBOT_OUTBOX_LEASE", 60, &mut problems);
        let shutdown_timeout = duration_var(get, "ACCESSBOT_SHUTDOWN_TIMEOUT", 10, &mut problems);
        let okta_token = Some(secret_var(get, "OKTA_API_TOKEN", &mut problems)).filter(|t| !t.is_empty());
        let env = Env {
            okta_token,
            outbox_lease,
            shutdown_timeout,
            config_path: PathBuf::from(get("ACCESSBOT_CONFIG").unwrap_or_else(|| "accessbot.toml".into())),
            port,
            database_url,
            signing_secret,
            bot_token,
            slack_app_token,
            slack_api_base_url: get("SLACK_API_BASE_URL")
                .unwrap_or_else(|| "https://slack.com/api".into())
                .trim_end_matches('/')
                .to_string(),
            api_tokens,
            api_read_tokens,
            public_url,
            trusted_proxies,
            team_ids,
        };
        if problems.is_empty() {
            Ok(env)
        } else {
            Err(ConfigError { file: "environment".into(), problems })
        }
    }

    /// An `[okta]` section needs the connector's token.
    pub fn require_okta(&self, catalog: &Catalog) -> Result<(), ConfigError> {
        if catalog.okta.is_none() || self.okta_token.is_some() {
            return Ok(());
        }
        let message = "is not set (or OKTA_API_TOKEN_FILE), and the config has an [okta] section: \
                       create an API token in Okta (Security → API → Tokens)";
        let problems = vec![Problem { key: "OKTA_API_TOKEN".into(), message: message.into() }];
        Err(ConfigError { file: "environment".into(), problems })
    }

    pub fn from_process() -> Result<Env, ConfigError> {
        Env::from_lookup(&|k| std::env::var(k).ok())
    }

    /// What `serve` cannot run without.
    pub fn require_secrets(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.signing_secret.is_empty() {
            problems.push(Problem {
                key: "SLACK_SIGNING_SECRET".into(),
                message: "is not set (or SLACK_SIGNING_SECRET_FILE)".into(),
            });
        }
        if self.bot_token.is_empty() {
            problems.push(Problem {
                key: "SLACK_BOT_TOKEN".into(),
                message: "is not set (or SLACK_BOT_TOKEN_FILE)".into(),
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { file: "environment".into(), problems })
        }
    }
}
