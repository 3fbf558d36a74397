//! Slack user groups as approver groups (`groups.<id>.slack_usergroup`). Their
//! members come from the [`Directory`](super::ports::Directory), are saved in
//! the store (so every replica sees what one of them read, an event reaching
//! only one) and fill the catalog's groups, where routing and deciding read
//! them. A read that fails keeps the last known members. A change logs who
//! joined and who left, and flags the pending requests it strands, as a reload
//! does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, RwLock};

use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;

use super::catalog::{Catalog, Person};
use super::events::EventBuilder;
use super::model::{LogEvent, Notice, Timestamp};
use super::ports::{notice_item, Usergroup};
use super::reload::Flagged;
use super::{Actor, Workflow, WorkflowError};

/// Someone joined a Slack user group (Okta's event name for a group membership).
pub const MEMBER_ADDED: &str = "group.user_membership.add";
/// Someone left a Slack user group.
pub const MEMBER_REMOVED: &str = "group.user_membership.remove";
/// The `trigger` of requests flagged because a user group's members changed.
pub const USERGROUP_TRIGGER: &str = "USERGROUP";
/// After a failed read, how long until the user group is read again.
const RETRY_AFTER_FAILURE: chrono::Duration = chrono::Duration::seconds(60);

/// What this process knows of the user groups, and which to read again.
#[derive(Default)]
pub(super) struct Memberships {
    /// Members as last saved (by any replica), by user group id.
    known: RwLock<BTreeMap<String, Usergroup>>,
    /// User groups a chat event said changed.
    asked: Mutex<BTreeSet<String>>,
    /// When each user group is next due to be read by this process.
    due: Mutex<HashMap<String, Timestamp>>,
    wake: Notify,
}

/// What one refresh did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsergroupReport {
    /// User groups read from the directory.
    pub read: Vec<String>,
    /// Those whose members changed (saved and logged).
    pub changed: Vec<String>,
    /// Those the directory could not read, with why: their last known members stay.
    pub failed: Vec<(String, String)>,
    /// Pending requests the changes stranded, now flagged.
    pub flagged: Vec<Flagged>,
}

/// `catalog` with every Slack user group's members as `known` has them (none,
/// and not known, for a user group never read).
fn fill(catalog: &Catalog, known: &BTreeMap<String, Usergroup>) -> Catalog {
    let mut filled = catalog.clone();
    for g in filled.groups.values_mut() {
        let Some(id) = &g.slack_usergroup else { continue };
        let members = known.get(id);
        g.members = members.map(|k| k.members.iter().cloned().map(Person::Slack).collect()).unwrap_or_default();
        g.usergroup_known = members.is_some();
    }
    filled
}

/// One event per member who joined or left `usergroup`, naming the groups of the config it backs.
fn membership_events(
    catalog: &Catalog,
    usergroup: &str,
    before: &[String],
    after: &[String],
    trigger: &str,
    now: Timestamp,
) -> Vec<LogEvent> {
    let groups: Vec<_> = catalog.groups.values().filter(|g| g.slack_usergroup.as_deref() == Some(usergroup)).collect();
    let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    let names = groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join(", ");
    let system = Actor::system();
    let joined = after.iter().filter(|u| !before.contains(u)).map(|u| (MEMBER_ADDED, "added to", u));
    let left = before.iter().filter(|u| !after.contains(u)).map(|u| (MEMBER_REMOVED, "removed from", u));
    joined
        .chain(left)
        .map(|(event_type, how, user)| {
            EventBuilder::new(event_type, &system, now, format!("User {how} Slack user group {usergroup} ({names})"))
                .user(user, None)
                .group(usergroup, &names)
                .data("slackUsergroup", usergroup)
                .data("groups", json!(ids))
                .data("trigger", trigger)
                .build()
        })
        .collect()
}

impl Workflow {
    /// `catalog` with its Slack user groups' members as last known.
    pub(super) fn with_usergroups(&self, catalog: &Catalog) -> Catalog {
        fill(catalog, &self.usergroups.known.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes in saved user groups newer than those known; the catalog follows.
    fn learn(&self, saved: Vec<Usergroup>) {
        let newer =
            |known: &BTreeMap<String, Usergroup>, g: &Usergroup| known.get(&g.id).is_none_or(|k| k.version < g.version);
        let known = self.usergroups.known.read().unwrap_or_else(|p| p.into_inner());
        if !saved.iter().any(|g| newer(&known, g)) {
            return;
        }
        drop(known);
        // The catalog's lock first, then the members': the order replace_catalog takes them in.
        self.update_catalog(|catalog| {
            let mut known = self.usergroups.known.write().unwrap_or_else(|p| p.into_inner());
            for g in saved {
                if newer(&known, &g) {
                    known.insert(g.id.clone(), g);
                }
            }
            fill(catalog, &known)
        });
    }

    /// Loads the members any replica saved, when the catalog has user groups.
    pub async fn sync_usergroups(&self) -> Result<(), WorkflowError> {
        if self.catalog().usergroup_ids().is_empty() {
            return Ok(());
        }
        let saved = self.store.usergroups().await?;
        self.learn(saved);
        Ok(())
    }

    /// A chat event said `usergroup` changed: read it soon. False when no group uses it.
    pub fn usergroup_changed(&self, usergroup: &str) -> bool {
        if !self.catalog().usergroup_ids().contains(usergroup) {
            return false;
        }
        self.usergroups.asked.lock().unwrap_or_else(|p| p.into_inner()).insert(usergroup.to_string());
        self.usergroups.wake.notify_one();
        true
    }

    /// Returns once a chat event asked for a user group to be read (see [`Workflow::usergroup_changed`]).
    pub async fn usergroup_asked(&self) {
        self.usergroups.wake.notified().await
    }

    /// The user groups to read now: those an event asked for, and those due
    /// (`settings.usergroup_refresh` after their last read), with why.
    fn due_usergroups(&self, ids: &BTreeSet<String>, now: Timestamp) -> Vec<(String, &'static str)> {
        let asked = std::mem::take(&mut *self.usergroups.asked.lock().unwrap_or_else(|p| p.into_inner()));
        let due = self.usergroups.due.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .filter_map(|id| match (asked.contains(id), due.get(id)) {
                (true, _) => Some((id.clone(), "EVENT")),
                (false, Some(at)) if *at > now => None,
                (false, _) => Some((id.clone(), "REFRESH")),
            })
            .collect()
    }

    fn read_again_at(&self, usergroup: &str, at: Timestamp) {
        self.usergroups.due.lock().unwrap_or_else(|p| p.into_inner()).insert(usergroup.to_string(), at);
    }

    /// Loads what other replicas saved, then reads from the directory every
    /// user group that is due or that an event asked for. A failed read keeps
    /// the last known members (and is tried again a minute later); changed
    /// members are saved, logged, and the pending requests they strand flagged.
    pub async fn refresh_usergroups(&self) -> Result<UsergroupReport, WorkflowError> {
        let ids = self.catalog().usergroup_ids();
        let mut report = UsergroupReport::default();
        if ids.is_empty() {
            return Ok(report);
        }
        self.sync_usergroups().await?;
        for (id, trigger) in self.due_usergroups(&ids, self.clock.now()) {
            self.read_usergroup(&id, trigger, &mut report).await?;
        }
        if !report.changed.is_empty() {
            report.flagged = self.flag_current(USERGROUP_TRIGGER).await?;
        }
        Ok(report)
    }

    /// Reads the user groups `new` names whose members are not known yet, so
    /// that a reload checks pending requests against their members.
    pub(super) async fn read_new_usergroups(&self, new: &Catalog) -> Result<(), WorkflowError> {
        let unknown: Vec<String> = {
            let known = self.usergroups.known.read().unwrap_or_else(|p| p.into_inner());
            new.usergroup_ids().into_iter().filter(|id| !known.contains_key(id)).collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        self.sync_usergroups().await?;
        let mut report = UsergroupReport::default();
        for id in unknown {
            self.read_usergroup(&id, "RELOAD", &mut report).await?;
        }
        Ok(())
    }

    /// Reads one user group from the directory and saves what changed; a
    /// failure keeps the last known members. When it is next due follows.
    async fn read_usergroup(&self, id: &str, trigger: &str, report: &mut UsergroupReport) -> Result<(), WorkflowError> {
        let Some(directory) = self.directory.clone() else { return Ok(()) };
        let now = self.clock.now();
        match directory.usergroup_members(id).await {
            Ok(users) => {
                let every = self.catalog().settings.usergroup_refresh;
                let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
                self.read_again_at(id, now.checked_add_signed(every).unwrap_or(Timestamp::MAX_UTC));
                report.read.push(id.to_string());
                if self.save_members(id, users, trigger).await? {
                    report.changed.push(id.to_string());
                }
            }
            Err(e) => {
                tracing::warn!(usergroup = %id, error = %e, "usergroups.users.list failed: keeping the last known members");
                self.read_again_at(id, now + RETRY_AFTER_FAILURE);
                report.failed.push((id.to_string(), e.to_string()));
            }
        }
        Ok(())
    }

    /// Saves the members read when they differ from the saved ones, with an
    /// event per member who joined or left; a replica that saved first is read
    /// again. True when this call changed them.
    async fn save_members(&self, id: &str, mut users: Vec<String>, trigger: &str) -> Result<bool, WorkflowError> {
        users.sort();
        users.dedup();
        let users = &users;
        self.retrying(|| async move {
            let saved = self.store.usergroups().await?.into_iter().find(|g| g.id == id);
            if let Some(same) = saved.as_ref().filter(|g| &g.members == users) {
                self.learn(vec![same.clone()]);
                return Ok(false);
            }
            let now = self.clock.now();
            let before = saved.as_ref().map(|g| g.members.as_slice()).unwrap_or_default();
            let events = membership_events(&self.catalog(), id, before, users, trigger, now);
            let version = saved.as_ref().map_or(0, |g| g.version);
            let group = Usergroup { id: id.to_string(), members: users.clone(), version, updated: now };
            self.store.save_usergroup(&group, &events).await?;
            tracing::info!(usergroup = id, members = users.len(), trigger, "Slack user group members changed");
            self.learn(vec![Usergroup { version: version + 1, ..group }]);
            // Their App Home lists (or no longer lists) the approvals the group gives them.
            let users = before.iter().chain(users).filter(|u| !(before.contains(u) && users.contains(u)));
            let users: Vec<Person> = users.cloned().map(Person::Slack).collect();
            if !users.is_empty() {
                self.enqueue(&[notice_item(&Notice::HomeChanged { users })?]).await?;
            }
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::catalog::Group;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        for (id, ug) in [("sec", Some("S0SEC")), ("ops", None)] {
            let members = if ug.is_none() { vec![Person::Slack("U0OPS".into())] } else { vec![] };
            let group = Group {
                id: id.into(),
                name: id.to_uppercase(),
                members,
                slack_usergroup: ug.map(str::to_string),
                usergroup_known: false,
            };
            c.groups.insert(id.into(), group);
        }
        c
    }

    #[test]
    fn fill_sets_user_group_members_and_leaves_config_groups() {
        let mut known = BTreeMap::new();
        let filled = fill(&catalog(), &known);
        assert!(filled.groups["sec"].members.is_empty() && !filled.groups["sec"].usergroup_known);
        let updated = Timestamp::default();
        known
            .insert("S0SEC".into(), Usergroup { id: "S0SEC".into(), members: vec!["U0A".into()], version: 1, updated });
        let filled = fill(&catalog(), &known);
        assert_eq!(filled.groups["sec"].members, vec![Person::Slack("U0A".into())]);
        assert!(filled.groups["sec"].usergroup_known);
        assert_eq!(filled.groups["ops"].members, vec![Person::Slack("U0OPS".into())]);
    }

    #[test]
    fn events_name_who_joined_and_who_left() {
        let before = vec!["U0A".to_string(), "U0B".to_string()];
        let after = vec!["U0B".to_string(), "U0C".to_string()];
        let events = membership_events(&catalog(), "S0SEC", &before, &after, "EVENT", Timestamp::default());
        let got: Vec<(&str, &str)> = events.iter().map(|e| (e.event_type.as_str(), e.target[0].id.as_str())).collect();
        assert_eq!(got, [(MEMBER_ADDED, "U0C"), (MEMBER_REMOVED, "U0A")]);
        assert_eq!(events[0].target[1].kind, "UserGroup");
        assert_eq!(events[0].debug_context.debug_data["groups"], json!(["sec"]));
    }
}
