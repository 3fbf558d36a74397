//! The stranded-request rule of config reloads (SPEC §2 rule 8), on catalogs
//! parsed from TOML as operators write them.
#![allow(clippy::unwrap_used)]

use accessbot::config::parse_catalog;
use accessbot::workflow::catalog::{Catalog, Person};
use accessbot::workflow::model::*;
use std::collections::HashMap;

use accessbot::workflow::reload::{admin_notices, canon, check, check_with};
use accessbot::workflow::Party;

const BASE: &str = r#"
[settings]
admins = ["U0ROOT"]

[groups.security]
name = "Security Team"
members = ["U0BOB", "carol@example.com"]

[apps.salesforce]
name = "Salesforce"
admins = ["U0SFADMIN"]
steps = [{ user = "U0ALICE" }, { group = "security" }, { user = "U0DAVE" }]

[apps.github]
name = "GitHub"
steps = [{ group = "security" }]
"#;

fn cat(text: &str) -> Catalog {
    parse_catalog("t.toml", text).unwrap()
}

fn step(kind: StepKind, approvers: &[&str], state: StepState) -> Step {
    Step {
        kind,
        approvers: approvers.iter().map(|a| Person::parse(a).unwrap()).collect(),
        routed_to: None,
        state,
        activated: None,
        decided_by: None,
        decided: None,
        comment: None,
        reminded: None,
        required: 1,
        approvals: vec![],
        escalation: None,
        delegates: vec![],
    }
}

fn security() -> StepKind {
    StepKind::Group { group_id: "security".into(), group_name: "Security Team".into() }
}

fn request(id: &str, app: &str, steps: Vec<Step>) -> Request {
    let now = chrono::Utc::now();
    Request {
        id: id.into(),
        app_id: app.into(),
        app_name: app.into(),
        requested_by: Party::new("U0REQ", None),
        requested_for: Party::new("U0REQ", None),
        justification: String::new(),
        field_values: vec![],
        status: Status::Pending,
        current_step: Some(0),
        steps,
        created: now,
        created_by: "U0REQ".into(),
        last_updated: now,
        last_updated_by: "U0REQ".into(),
        resolved: None,
        grant_status: None,
        granted: None,
        reason: None,
        flagged: None,
        access_until: None,
        access_duration: None,
        revocation_status: None,
        revoked: None,
        extension: None,
        due: None,
        version: 1,
    }
}

fn sf(first: StepState) -> Request {
    request(
        "reqSF",
        "salesforce",
        vec![
            step(StepKind::User, &["U0ALICE"], first),
            step(security(), &["U0BOB", "carol@example.com"], StepState::Waiting),
            step(StepKind::User, &["U0DAVE"], StepState::Waiting),
        ],
    )
}

fn gh() -> Request {
    request("reqGH", "github", vec![step(security(), &["U0BOB", "carol@example.com"], StepState::Pending)])
}

#[test]
fn an_unchanged_or_unrelated_config_strands_nothing() {
    let old = cat(BASE);
    assert!(check(&old, &old, &[sf(StepState::Pending), gh()]).is_empty());
    let new = cat(&BASE.replace("name = \"GitHub\"", "name = \"GitHub Enterprise\"\ndescription = \"code\""));
    assert!(check(&old, &new, &[sf(StepState::Pending), gh()]).is_empty());
}

#[test]
fn a_removed_app_strands_its_requests_only() {
    let old = cat(BASE);
    let new = cat(&BASE.replace("[apps.github]\nname = \"GitHub\"\nsteps = [{ group = \"security\" }]", ""));
    assert_eq!(check(&old, &new, &[sf(StepState::Pending), gh()]), [("reqGH".into(), "app github was removed".into())]);
}

#[test]
fn self_service_off_strands() {
    let old = cat(BASE);
    let new = cat(&BASE.replace("name = \"GitHub\"", "name = \"GitHub\"\nself_service = false"));
    assert_eq!(check(&old, &new, &[gh()]), [("reqGH".into(), "app github is no longer self-service".into())]);
}

#[test]
fn a_removed_approver_strands_only_while_their_step_is_open() {
    let old = cat(BASE);
    let new = cat(&BASE.replace("{ user = \"U0ALICE\" }", "{ user = \"U0ERIN\" }"));
    assert_eq!(
        check(&old, &new, &[sf(StepState::Pending)]),
        [("reqSF".into(), "approver U0ALICE of step 1 is no longer configured".into())]
    );
    assert!(check(&old, &new, &[sf(StepState::Approved)]).is_empty(), "step 1 was already decided");
    // Moving a person from a step to the app's admins keeps them where separation of duties routes.
    let moved = cat(&BASE
        .replace("admins = [\"U0SFADMIN\"]", "admins = [\"U0SFADMIN\", \"U0ALICE\"]")
        .replace("{ user = \"U0ALICE\" }", "{ user = \"U0ERIN\" }"));
    assert!(check(&old, &moved, &[sf(StepState::Pending)]).is_empty());
}

#[test]
fn a_removed_or_changed_group_strands_requests_waiting_on_it() {
    let old = cat(BASE);
    let without = cat(&BASE
        .replace("[groups.security]\nname = \"Security Team\"\nmembers = [\"U0BOB\", \"carol@example.com\"]", "")
        .replace("{ group = \"security\" }, ", "")
        .replace("steps = [{ group = \"security\" }]", "steps = [{ user = \"U0ERIN\" }]"));
    let found = check(&old, &without, &[sf(StepState::Pending), gh()]);
    assert_eq!(
        found,
        [("reqSF".into(), "group security was removed".into()), ("reqGH".into(), "group security was removed".into())]
    );
    let mut emptied = old.clone();
    emptied.groups.get_mut("security").unwrap().members.clear();
    assert_eq!(check(&old, &emptied, &[gh()]), [("reqGH".into(), "group security was emptied".into())]);
    let fewer = cat(&BASE.replace("members = [\"U0BOB\", \"carol@example.com\"]", "members = [\"U0BOB\"]"));
    assert_eq!(
        check(&old, &fewer, &[gh()]),
        [("reqGH".into(), "approver carol@example.com of step 1 is no longer configured".into())]
    );
}

#[test]
fn closed_requests_are_never_stranded_and_aliases_match_people() {
    let old = cat(BASE);
    let new = cat(&BASE.replace("\"carol@example.com\"", "\"U0CAROL\""));
    let mut done = gh();
    done.status = Status::Approved;
    assert!(check(&old, &cat(""), &[done]).is_empty());
    assert_eq!(check(&old, &new, &[gh()]).len(), 1, "without the identity cache the email is someone else");
    let aliases = HashMap::from([("carol@example.com".to_string(), "U0CAROL".to_string())]);
    assert!(check_with(&old, &new, &[gh()], &|p| canon(&aliases, p)).is_empty());
}

#[test]
fn admins_are_told_once_each() {
    let old = cat(BASE);
    let mut new = cat(&BASE.replace("[settings]", "[settings]\nadmin_channel = \"C0ADMINS\""));
    new.apps.remove("salesforce");
    let r = sf(StepState::Pending);
    let notices = admin_notices(&old, &new, &[(r.clone(), "app salesforce was removed".into())]);
    let to: Vec<String> = notices
        .iter()
        .map(|n| match n {
            Notice::Direct { to, message: DirectMessage::Flagged { items } } => {
                assert_eq!(items.len(), 1);
                assert_eq!(
                    (items[0].request_id.as_str(), items[0].reason.as_str()),
                    (r.id.as_str(), "app salesforce was removed")
                );
                to.to_string()
            }
            Notice::AdminFeed { channel, .. } => channel.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(to, ["U0ROOT", "U0SFADMIN", "C0ADMINS"]);
    assert!(admin_notices(&old, &new, &[]).is_empty());
}

/// BASE with `security` a Slack user group whose members are `members` (`None`: never read).
fn usergroup(members: Option<&[&str]>) -> Catalog {
    let mut c = cat(&BASE.replace("members = [\"U0BOB\", \"carol@example.com\"]", "slack_usergroup = \"S0SEC\""));
    let g = c.groups.get_mut("security").unwrap();
    g.usergroup_known = members.is_some();
    g.members = members.unwrap_or_default().iter().map(|m| Person::Slack(m.to_string())).collect();
    c
}

#[test]
fn a_slack_user_group_strands_a_step_when_too_few_of_those_asked_are_left() {
    let old = cat(BASE);
    let asked = || request("reqGH", "github", vec![step(security(), &["U0BOB", "U0CAROL"], StepState::Pending)]);
    // Members unknown (never read): nothing can be said.
    assert!(check(&old, &usergroup(None), &[asked()]).is_empty());
    // One of those asked is still a member, and a newcomer changes nothing.
    assert!(check(&old, &usergroup(Some(&["U0CAROL", "U0NEW"])), &[asked()]).is_empty());
    assert_eq!(
        check(&old, &usergroup(Some(&["U0NEW"])), &[asked()]),
        [("reqGH".into(), "none of the members asked at step 1 is still in Slack user group S0SEC (security)".into())]
    );
    assert_eq!(
        check(&old, &usergroup(Some(&[])), &[asked()]),
        [("reqGH".into(), "group security was emptied (Slack user group S0SEC has no members)".into())]
    );
    // A quorum of two with one member left.
    let mut quorum = asked();
    quorum.steps[0].required = 2;
    let found = check(&old, &usergroup(Some(&["U0BOB"])), &[quorum.clone()]);
    assert!(found[0].1.starts_with("too few of the members asked at step 1"), "{found:?}");
    // … unless Carol's approval is already counted.
    quorum.steps[0].approvals = vec![Approval {
        by: "U0CAROL".into(),
        at: chrono::Utc::now(),
        comment: None,
        on_behalf_of: None,
        counts_as: None,
    }];
    assert!(check(&old, &usergroup(Some(&["U0BOB"])), &[quorum]).is_empty());
    // A step the app's admins took is theirs, not the user group's.
    let mut rerouted = request("reqGH", "github", vec![step(security(), &["U0ROOT"], StepState::Pending)]);
    rerouted.steps[0].routed_to = Some(Routing::SuperAdmins);
    assert!(check(&old, &usergroup(Some(&[])), &[rerouted]).is_empty());
}
