//! Config reload and the stranded-request rule (SPEC §2 rule 8): a new catalog
//! that would strand pending requests (app removed or no longer self-service,
//! approver removed, group removed or emptied, too few of those asked left in
//! a Slack user group) flags those requests, tells the admins once with the
//! full list, logs everything, and only then takes effect. A Slack user group's
//! new members are checked the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::json;

use super::catalog::{Catalog, EscalateTo, Group, Person, StepDef, TaskAssignee};
use super::events::EventBuilder;
use super::model::{
    Changeset, DirectMessage, FeedEvent, FlaggedItem, Notice, OutcomeResult, Request, Step, StepKind, StepState,
};
use super::query::{Filter, Op, OrderBy, RequestAttr, RequestQuery, Value};
use super::{Actor, Workflow, WorkflowError};

/// Event type of a request stranded by a config change (Okta's name).
pub const FLAGGED_EVENT: &str = "app.access_request.flagged";
/// Event type of a config reload, successful or refused (not an Okta name).
pub const RELOAD_EVENT: &str = "system.config.reload";

const PAGE: i64 = 200;

/// One request a reload found stranded, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flagged {
    pub request_id: String,
    pub reason: String,
}

/// What a reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadReport {
    /// Apps and groups in the catalog now in effect.
    pub apps: usize,
    pub groups: usize,
    /// Requests this reload flagged (or flagged again with a new reason); admins were told.
    pub flagged: Vec<Flagged>,
    /// Stranded requests already flagged for the same reason earlier: not told again.
    pub already_flagged: Vec<Flagged>,
    /// Requests an earlier reload flagged that this config no longer strands.
    /// They stay flagged (the flag records what happened); an admin resolves them.
    pub no_longer_stranded: Vec<String>,
}

/// The pending requests in `pending` that `new` would strand, with a reason
/// each. `old` is the catalog in effect until now, but whether and why a
/// request is stranded is decided on `new` alone: a request pending since
/// before an earlier change, or across a restart, is caught too, and loading
/// the same file twice gives the same reasons (nothing is flagged twice).
pub fn check(old: &Catalog, new: &Catalog, pending: &[Request]) -> Vec<(String, String)> {
    check_with(old, new, pending, &|p: &Person| p.key().to_string())
}

/// [`check`], comparing people by `canon` (so `U0CAROL` and `carol@example.com`
/// are the same person when the identity cache says so).
pub fn check_with(
    _old: &Catalog,
    new: &Catalog,
    pending: &[Request],
    canon: &dyn Fn(&Person) -> String,
) -> Vec<(String, String)> {
    pending
        .iter()
        .filter(|r| r.status.is_open())
        .filter_map(|r| stranded(new, r, canon).map(|reason| (r.id.clone(), reason)))
        .collect()
}

/// Everyone `new` would put on `app_id`'s steps: step users, members of the
/// groups its steps name, its admins and the super admins (where separation of
/// duties routes a step).
fn configured_people(new: &Catalog, app_id: &str, canon: &dyn Fn(&Person) -> String) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(app) = new.apps.get(app_id) else { return out };
    for spec in &app.steps {
        match &spec.def {
            StepDef::User(p) | StepDef::Task(TaskAssignee::User(p)) => {
                out.insert(canon(p));
            }
            StepDef::Group { group: g, .. } | StepDef::Task(TaskAssignee::Group(g)) => {
                if let Some(g) = new.groups.get(g) {
                    out.extend(g.members.iter().map(canon));
                }
            }
            StepDef::Action { .. } => {}
        }
    }
    out.extend(app.admins.iter().map(canon));
    out.extend(new.settings.admins.iter().map(canon));
    out
}

/// The reason depends only on `new` and the request, so reloading the same file
/// twice finds the same reason and flags (and tells) nothing new.
fn stranded(new: &Catalog, req: &Request, canon: &dyn Fn(&Person) -> String) -> Option<String> {
    let Some(app) = new.apps.get(&req.app_id) else {
        return Some(format!("app {} was removed", req.app_id));
    };
    let mut reasons: Vec<String> = Vec::new();
    let mut push = |r: String| {
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    };
    if !app.self_service {
        push(format!("app {} is no longer self-service", app.id));
    }
    let allowed = configured_people(new, &app.id, canon);
    let open = req.steps.iter().enumerate().filter(|(_, s)| matches!(s.state, StepState::Waiting | StepState::Pending));
    for (i, step) in open {
        let group = match &step.kind {
            StepKind::Group { group_id, .. } => Some(group_id),
            StepKind::Task { group_id: Some(g), .. } => Some(g),
            _ => None,
        };
        if let Some(gid) = group {
            match new.groups.get(gid) {
                None => {
                    push(format!("group {gid} was removed"));
                    continue;
                }
                // Whoever is asked for a Slack user group decides only while a member.
                Some(g) if g.slack_usergroup.is_some() && step.routed_to.is_none() => {
                    if let Some(reason) = usergroup_stranded(new, g, step, i, canon) {
                        push(reason);
                    }
                    continue;
                }
                Some(g) if g.members.is_empty() && g.slack_usergroup.is_none() => {
                    push(format!("group {gid} was emptied"));
                    continue;
                }
                Some(_) => {}
            }
        }
        // Delegates and the people an escalation asked were never configured on the step: they do not strand it.
        let extra = |p: &Person| {
            step.delegates.iter().any(|d| &d.delegate == p)
                || step.escalation.as_ref().is_some_and(|e| e.asked.contains(p))
        };
        let gone: Vec<String> = step
            .approvers
            .iter()
            .filter(|p| !extra(p) && !allowed.contains(&canon(p)))
            .map(|p| p.to_string())
            .collect();
        match gone.as_slice() {
            [] => {}
            [one] => push(format!("approver {one} of step {} is no longer configured", i + 1)),
            many => push(format!("approvers {} of step {} are no longer configured", many.join(", "), i + 1)),
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Why a step asking Slack user group `g` can no longer be decided: the
/// group is empty, or fewer of the members asked are still in it than the
/// approvals the step still needs (people its escalation asked count for
/// their own group). Nothing while its members are unknown.
fn usergroup_stranded(
    new: &Catalog,
    g: &Group,
    step: &Step,
    index: usize,
    canon: &dyn Fn(&Person) -> String,
) -> Option<String> {
    let usergroup = g.slack_usergroup.as_deref().filter(|_| g.usergroup_known)?;
    let (gid, n) = (&g.id, index + 1);
    let escalated = step.escalation.as_ref().map(|e| e.asked.as_slice()).unwrap_or_default();
    if g.members.is_empty() && escalated.is_empty() {
        return Some(format!("group {gid} was emptied (Slack user group {usergroup} has no members)"));
    }
    let members: BTreeSet<String> = g.members.iter().map(canon).collect();
    let escalation_group = step.escalation.as_ref().and_then(|e| match &e.to {
        EscalateTo::Group(eg) => new.groups.get(eg).filter(|eg| eg.is_known_usergroup()),
        EscalateTo::Person(_) => None,
    });
    let may_decide = |p: &Person| {
        if escalated.contains(p) {
            escalation_group.is_none_or(|eg| eg.members.iter().any(|m| canon(m) == canon(p)))
        } else {
            members.contains(&canon(p))
        }
    };
    let left = step
        .approvers
        .iter()
        .filter(|p| may_decide(p))
        .filter(|p| !step.approvals.iter().any(|a| a.by == canon(p) || a.counts_as.as_deref() == Some(p.key())))
        .count();
    let needed = (step.required as usize).saturating_sub(step.approvals.len()).max(1);
    match left {
        0 => Some(format!("none of the members asked at step {n} is still in Slack user group {usergroup} ({gid})")),
        l if l < needed => Some(format!(
            "too few of the members asked at step {n} are still in Slack user group {usergroup} ({gid}) for its approvals"
        )),
        _ => None,
    }
}

/// One reload at a time per process (SIGHUP and the API may race).
static RELOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_status() -> Filter<RequestAttr> {
    let status = |s: &str| Filter::Cmp { attr: RequestAttr::Status, op: Op::Eq, value: Value::Text(s.to_string()) };
    Filter::Or(Box::new(status("PENDING")), Box::new(status("SUBMITTED")))
}

/// What the flagging passes found.
#[derive(Default)]
struct Found {
    /// Newly flagged: (request as committed, reason).
    flagged: Vec<(Request, String)>,
    already: Vec<Flagged>,
    stale: Vec<String>,
    seen: BTreeSet<String>,
}

impl Workflow {
    /// Applies a new catalog: flags the pending requests it strands (each in its
    /// own transaction with its `app.access_request.flagged` event), swaps the
    /// catalog in, then tells the admins once and logs `system.config.reload`
    /// (one transaction). `trigger` names what asked for it (`SIGHUP`, `API`).
    pub async fn reload(&self, actor: &Actor, trigger: &str, new: Catalog) -> Result<ReloadReport, WorkflowError> {
        // A Slack user group the new config names for the first time is read now, so its members are checked too.
        self.read_new_usergroups(&new).await?;
        let _one_at_a_time = RELOADING.lock().await;
        let old = self.catalog();
        // The new groups' Slack user groups have the members known now.
        let new = self.with_usergroups(&new);
        let mut aliases: HashMap<String, String> = HashMap::new();
        let mut found = Found::default();
        self.flag_pass(&old, &new, trigger, &mut aliases, &mut found).await?;
        let (apps, groups) = (new.apps.len(), new.groups.len());
        self.replace_catalog(new);
        let new = self.catalog();
        // A command that read the old catalog may have committed a request since the
        // first pass read its page; a second pass (idempotent) catches it.
        self.flag_pass(&new, &new, trigger, &mut aliases, &mut found).await?;

        let now = self.now();
        let mut cs = Changeset { notices: admin_notices(&old, &new, &found.flagged), ..Changeset::default() };
        let ids: Vec<&str> = found.flagged.iter().map(|(r, _)| r.id.as_str()).collect();
        cs.events.push(
            EventBuilder::new(RELOAD_EVENT, actor, now, "Config reloaded")
                .data("trigger", trigger)
                .data("apps", apps)
                .data("groups", groups)
                .data("flagged", json!(ids))
                .data("alreadyFlagged", found.already.len())
                .data("noLongerStranded", json!(found.stale))
                .build(),
        );
        self.commit_changeset(&cs).await?;
        // Reminders, escalation and expiry are timed by the catalog: the next pass retimes them.
        self.store.reschedule_open(now).await?;
        tracing::info!(trigger, apps, groups, flagged = ids.len(), "config reloaded");
        Ok(ReloadReport {
            apps,
            groups,
            flagged: found.flagged.into_iter().map(|(r, reason)| Flagged { request_id: r.id, reason }).collect(),
            already_flagged: found.already,
            no_longer_stranded: found.stale,
        })
    }

    /// Flags what `new` strands among every open request, page by page.
    async fn flag_pass(
        &self,
        old: &Catalog,
        new: &Catalog,
        trigger: &str,
        aliases: &mut HashMap<String, String>,
        found: &mut Found,
    ) -> Result<(), WorkflowError> {
        let mut q = RequestQuery {
            filter: Some(open_status()),
            order_by: OrderBy::Created,
            descending: false,
            after: None,
            limit: PAGE,
        };
        loop {
            let page = self.store().list_requests(&q).await?;
            let Some(last) = page.last() else { break };
            q.after = Some(q.cursor_of(last));
            for req in &page {
                if !found.seen.insert(req.id.clone()) {
                    continue;
                }
                self.learn_aliases(new, req, aliases).await?;
                let stranded = check_with(old, new, std::slice::from_ref(req), &|p| canon(aliases, p));
                match stranded.into_iter().next() {
                    Some((_, reason)) => self.flag(req.clone(), reason, old, new, trigger, aliases, found).await?,
                    None if req.flagged.is_some() => found.stale.push(req.id.clone()),
                    None => {}
                }
            }
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        Ok(())
    }

    /// Sets `flagged` with its event; a concurrent change re-reads and re-checks.
    #[allow(clippy::too_many_arguments)]
    async fn flag(
        &self,
        req: Request,
        reason: String,
        old: &Catalog,
        new: &Catalog,
        trigger: &str,
        aliases: &HashMap<String, String>,
        found: &mut Found,
    ) -> Result<(), WorkflowError> {
        // A lost race reads again and checks again whether and why it is stranded.
        let first = std::sync::Mutex::new(Some((req.clone(), reason)));
        let (first, id) = (&first, req.id.as_str());
        let outcome = self
            .retrying(|| async move {
                let taken = first.lock().map(|mut read| read.take()).unwrap_or_default();
                let (req, reason) = match taken {
                    Some(read) => read,
                    None => {
                        let Some(fresh) = self.store().request(id).await? else { return Ok(None) };
                        match check_with(old, new, std::slice::from_ref(&fresh), &|p| canon(aliases, p)).pop() {
                            Some((_, r)) => (fresh, r),
                            // Decided, canceled or no longer stranded meanwhile.
                            None => return Ok(None),
                        }
                    }
                };
                if req.flagged.as_deref() == Some(reason.as_str()) {
                    return Ok(Some(Err(Flagged { request_id: req.id.clone(), reason })));
                }
                let now = self.now();
                let system = Actor::system();
                let mut updated = req.clone();
                updated.flagged = Some(reason.clone());
                updated.last_updated = now;
                updated.last_updated_by = system.party.id.clone();
                let event = EventBuilder::new(FLAGGED_EVENT, &system, now, format!("Access request flagged: {reason}"))
                    .request(&updated)
                    .outcome(OutcomeResult::Success, Some(reason.clone()))
                    .data("reason", reason.clone())
                    .data("trigger", trigger)
                    .build();
                let cs = Changeset { request: Some(updated.clone()), events: vec![event], ..Changeset::default() };
                self.commit_changeset(&cs).await?;
                tracing::warn!(request = %req.id, %reason, "pending request stranded by the config: flagged");
                Ok(Some(Ok((updated, reason))))
            })
            .await?;
        match outcome {
            Some(Ok(flagged)) => found.flagged.push(flagged),
            Some(Err(already)) => found.already.push(already),
            None => {}
        }
        Ok(())
    }

    /// Learns the Slack ids of the emails this request and `new` name (from the identity cache).
    async fn learn_aliases(
        &self,
        new: &Catalog,
        req: &Request,
        aliases: &mut HashMap<String, String>,
    ) -> Result<(), WorkflowError> {
        let mut emails: Vec<String> = Vec::new();
        if aliases.is_empty() {
            emails.extend(new.emails());
        }
        for s in &req.steps {
            for p in &s.approvers {
                if let Person::Email(e) = p {
                    emails.push(e.clone());
                }
            }
        }
        for e in emails {
            if aliases.contains_key(&e) {
                continue;
            }
            let id = self.store().identity_by_email(&e).await?.map(|i| i.user_id).unwrap_or_else(|| e.clone());
            aliases.insert(e, id);
        }
        Ok(())
    }
}

pub fn canon(aliases: &HashMap<String, String>, p: &Person) -> String {
    match p {
        Person::Slack(id) => id.clone(),
        Person::Email(e) => aliases.get(e).cloned().unwrap_or_else(|| e.clone()),
    }
}

/// One DM per admin (super admins get the full list, app admins their apps'
/// requests), and the admin channel feed when configured.
pub fn admin_notices(old: &Catalog, new: &Catalog, flagged: &[(Request, String)]) -> Vec<Notice> {
    if flagged.is_empty() {
        return Vec::new();
    }
    let items = |list: &[&(Request, String)]| -> Vec<FlaggedItem> {
        list.iter()
            .map(|(r, reason)| FlaggedItem {
                request_id: r.id.clone(),
                app_name: r.app_name.clone(),
                user: r.requested_for.id.clone(),
                reason: reason.clone(),
            })
            .collect()
    };
    let supers = if new.settings.admins.is_empty() { &old.settings.admins } else { &new.settings.admins };
    let mut per_admin: BTreeMap<Person, Vec<&(Request, String)>> = BTreeMap::new();
    for item in flagged {
        let app_admins = new.apps.get(&item.0.app_id).or_else(|| old.apps.get(&item.0.app_id)).map(|a| &a.admins);
        for p in app_admins.into_iter().flatten().filter(|p| !supers.contains(p)) {
            per_admin.entry(p.clone()).or_default().push(item);
        }
    }
    let all: Vec<&(Request, String)> = flagged.iter().collect();
    let direct = |to: Person, list: &[&(Request, String)]| Notice::Direct {
        to,
        message: DirectMessage::Flagged { items: items(list) },
    };
    let mut notices: Vec<Notice> = supers.iter().map(|p| direct(p.clone(), &all)).collect();
    notices.extend(per_admin.into_iter().map(|(p, list)| direct(p, &list)));
    if let Some(channel) = &new.settings.admin_channel {
        let event = FeedEvent::Flagged { items: items(&all) };
        notices.push(Notice::AdminFeed { channel: channel.clone(), event });
    }
    notices
}

/// Records a reload that did not take effect because the file is invalid:
/// a FAILURE `system.config.reload` event naming every problem.
pub async fn refused(
    workflow: &Workflow,
    actor: &Actor,
    trigger: &str,
    file: &str,
    problems: &[(String, String)],
) -> Result<(), WorkflowError> {
    let listed: Vec<serde_json::Value> = problems.iter().map(|(k, m)| json!({"key": k, "problem": m})).collect();
    let event = EventBuilder::new(RELOAD_EVENT, actor, workflow.now(), "Config reload refused: invalid file")
        .outcome(OutcomeResult::Failure, Some(format!("{} problem(s) in {file}", problems.len())))
        .data("trigger", trigger)
        .data("problems", listed)
        .build();
    workflow.store().append_events(&[event]).await?;
    Ok(())
}

/// Flags what the loaded catalog strands among requests left pending while the
/// server was down (the config may have been edited meanwhile). Writes
/// nothing when nothing is stranded.
pub async fn check_on_start(workflow: &Workflow) -> Result<Vec<Flagged>, WorkflowError> {
    workflow.flag_current("STARTUP").await
}

impl Workflow {
    /// Flags what the catalog in effect strands (at start; after a Slack user
    /// group's members changed) and tells the admins once; `trigger` says why.
    pub(super) async fn flag_current(&self, trigger: &str) -> Result<Vec<Flagged>, WorkflowError> {
        let _one_at_a_time = RELOADING.lock().await;
        let catalog = self.catalog();
        let mut aliases = HashMap::new();
        let mut found = Found::default();
        self.flag_pass(&catalog, &catalog, trigger, &mut aliases, &mut found).await?;
        if !found.flagged.is_empty() {
            let cs = Changeset { notices: admin_notices(&catalog, &catalog, &found.flagged), ..Changeset::default() };
            self.commit_changeset(&cs).await?;
        }
        Ok(found.flagged.into_iter().map(|(r, reason)| Flagged { request_id: r.id, reason }).collect())
    }
}
