//! Slack user groups as approver groups: `groups.<id>.slack_usergroup` takes
//! its members from `usergroups.users.list`, read at start, every
//! `settings.usergroup_refresh` and when Slack sends `subteam_members_changed`
//! or `subteam_updated`; a member removed since a step was asked can no longer
//! decide it; a failed read keeps the last members; an emptied user group flags
//! the requests it strands.

use std::future::Future;
use std::time::Duration;

use accessbot::workflow::model::Routing;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_slack::{Fail, FakeSlack};
use crate::helpers::*;

const USERGROUP_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]

[groups.security]
name = "Security Team"
slack_usergroup = "S0SEC"

[apps.vault]
name = "Vault"
admins = ["U0VAULTADMIN"]
steps = [{ group = "security" }]

[apps.safe]
name = "Safe"
admins = ["U0SAFEADMIN"]
steps = [{ group = "security", approvals = 2 }]
"#;

const SEC: &str = "S0SEC";

fn setup(b: Backend) -> Setup {
    Setup { config: USERGROUP_CONFIG.to_string(), ..Setup::new(b) }
}

/// A server whose fake Slack lists `members` in S0SEC from the start.
async fn spawn_with_members(setup: Setup, members: &[&str]) -> TestApp {
    let slack = FakeSlack::start().await;
    slack.set_usergroup(SEC, members);
    spawn_on(setup, slack).await
}

/// Waits (up to 15 s) until `check` holds.
async fn until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The members the store holds for a user group.
async fn saved_members(app: &TestApp, id: &str) -> Option<Vec<String>> {
    app.store().usergroups().await.unwrap().into_iter().find(|g| g.id == id).map(|g| g.members)
}

async fn until_saved(app: &TestApp, id: &str, members: &[&str]) {
    let want: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    until(&format!("{id} holds {members:?}"), || async { saved_members(app, id).await.as_ref() == Some(&want) }).await;
}

/// Sends the event Slack sends when a user group's members change, signed as Slack signs it.
async fn members_changed(app: &TestApp, id: &str, added: &[&str], removed: &[&str]) {
    let ev = json!({"type": "event_callback", "team_id": TEAM, "event_id": format!("Ev{}", uuid::Uuid::new_v4().simple()),
                    "event": {"type": "subteam_members_changed", "subteam_id": id, "team_id": TEAM,
                              "date_previous_update": 1_700_000_000, "date_update": 1_700_000_100,
                              "added_users": added, "added_users_count": added.len().to_string(),
                              "removed_users": removed, "removed_users_count": removed.len().to_string()},
                    "event_time": 1_700_000_100});
    let res = app.signed("/slack/events", &ev.to_string(), "application/json").await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// `subteam_updated`, as Slack sends it when a user group is edited.
async fn subteam_updated(app: &TestApp, id: &str, users: &[&str]) {
    let ev = json!({"type": "event_callback", "team_id": TEAM, "event_id": format!("Ev{}", uuid::Uuid::new_v4().simple()),
                    "event": {"type": "subteam_updated", "subteam": {"id": id, "team_id": TEAM, "is_usergroup": true,
                              "name": "Security", "handle": "security", "users": users,
                              "user_count": users.len().to_string()}},
                    "event_time": 1_700_000_100});
    let res = app.signed("/slack/events", &ev.to_string(), "application/json").await;
    assert_eq!(res.status(), StatusCode::OK);
}

fn asked(r: &accessbot::workflow::model::Request) -> Vec<String> {
    r.steps[0].approvers.iter().map(|p| p.to_string()).collect()
}

fn list_calls(app: &TestApp) -> Vec<crate::fake_slack::Call> {
    app.slack.calls().into_iter().filter(|c| c.method == "usergroups.users.list").collect()
}

/// The private replies to `user`'s clicks on `action_id`.
fn click_replies(app: &TestApp, user: &str, action_id: &str) -> Vec<String> {
    let key = format!("{user}-{action_id}");
    app.slack
        .ok_calls("response_url")
        .into_iter()
        .filter(|c| c.body["_response_url_id"] == json!(key))
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn metric(app: &TestApp, line_start: &str) -> Option<String> {
    let text = reqwest::get(format!("{}/metrics", app.base)).await.unwrap().text().await.unwrap();
    text.lines().find(|l| l.starts_with(line_start)).map(str::to_string)
}

async fn routing_asks_the_user_groups_members(b: Backend) {
    let app = spawn_with_members(setup(b), &["U0CAROL", "U0BOB", "U0DAN"]).await;
    // Read at start, with Slack's parameter.
    let calls = list_calls(&app);
    assert!(!calls.is_empty() && calls[0].body["usergroup"] == json!(SEC), "{calls:?}");
    assert_eq!(saved_members(&app, SEC).await.unwrap(), ["U0BOB", "U0CAROL", "U0DAN"]);
    let joined = app.events_of("group.user_membership.add").await;
    assert_eq!(joined.len(), 3, "the first read logs who is in it");
    assert_eq!(joined[0].target[1].kind, "UserGroup");
    assert_eq!(joined[0].debug_context.debug_data["groups"], json!(["security"]));

    let id = app.request_app("U0EVE", "vault", "read a secret").await;
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(asked(&r), ["U0BOB", "U0CAROL", "U0DAN"]);
    assert_eq!(r.steps[0].routed_to, None);
    for member in ["U0BOB", "U0CAROL", "U0DAN"] {
        assert!(app.slack.dms_to(member).iter().any(|c| c.text().contains(&id)), "{member} asked");
    }
    // Separation of duties: a member's own request asks the others.
    let own = app.request_app("U0BOB", "vault", "mine").await;
    assert_eq!(asked(&app.request(&own).await), ["U0CAROL", "U0DAN"]);
    assert_eq!(app.click("U0CAROL", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "APPROVED");
}

async fn a_member_removed_from_the_user_group_can_no_longer_decide(b: Backend) {
    let app = spawn_with_members(setup(b.clone()), &["U0BOB", "U0CAROL"]).await;
    // On PostgreSQL the event reaches one replica and the click the other.
    let other = match b {
        Backend::Postgres(_) => Some(app.replica(setup(b)).await),
        Backend::Sqlite => None,
    };
    let clicks = other.as_ref().unwrap_or(&app);
    let id = app.request_app("U0EVE", "vault", "read a secret").await;
    app.drain().await;
    assert_eq!(asked(&app.request(&id).await), ["U0BOB", "U0CAROL"]);

    app.slack.set_usergroup(SEC, &["U0CAROL"]);
    members_changed(&app, SEC, &[], &["U0BOB"]).await;
    until_saved(&app, SEC, &["U0CAROL"]).await;
    let left = app.events_of("group.user_membership.remove").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].target[0].id, "U0BOB");
    assert_eq!(left[0].debug_context.debug_data["trigger"], "EVENT");

    let before = app.request(&id).await;
    let blocked_before = app.events_of("security.request.blocked").await.len();
    assert_eq!(clicks.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    clicks.drain().await;
    // Refused: nothing changed, the refusal is logged and told to Bob.
    assert_eq!(app.request(&id).await, before);
    assert!(app.events(&id).await.iter().all(|e| e.event_type != "app.access_request.approver.approve"));
    let blocked = app.events_of("security.request.blocked").await;
    assert_eq!(blocked.len(), blocked_before + 1);
    let ev = blocked.last().unwrap();
    assert_eq!(ev.actor.id, "U0BOB");
    let reason = ev.outcome.reason.clone().unwrap_or_default();
    assert!(reason.contains("no longer a member of Security Team"), "{reason}");
    let replies = click_replies(&app, "U0BOB", "approve");
    assert!(replies.iter().any(|t| t.contains("Not allowed") && t.contains("no longer a member")), "{replies:?}");
    // Bob's queue no longer lists it; one member is left, so it is not stranded.
    assert!(clicks.say("U0BOB", "tasks").await.contains("Nothing is waiting"));
    assert_eq!(app.request(&id).await.flagged, None);
    // Carol, still a member, decides.
    assert_eq!(clicks.click("U0CAROL", "approve", &id, 0).await, StatusCode::OK);
    clicks.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "APPROVED");
}

async fn an_event_brings_in_a_new_member(b: Backend) {
    let app = spawn_with_members(setup(b), &["U0BOB"]).await;
    let early = app.request_app("U0EVE", "vault", "before Frank joined").await;
    app.slack.set_usergroup(SEC, &["U0BOB", "U0FRANK"]);
    members_changed(&app, SEC, &["U0FRANK"], &[]).await;
    until_saved(&app, SEC, &["U0BOB", "U0FRANK"]).await;
    let joined = app.events_of("group.user_membership.add").await;
    assert!(joined.iter().any(|e| e.target[0].id == "U0FRANK"), "Frank's joining is logged");
    // New requests ask Frank too.
    let later = app.request_app("U0EVE", "safe", "after").await;
    app.drain().await;
    let r = app.request(&later).await;
    assert_eq!(asked(&r), ["U0BOB", "U0FRANK"]);
    assert_eq!(r.steps[0].required, 2);
    assert!(app.slack.dms_to("U0FRANK").iter().any(|c| c.text().contains(&later)));
    // A step asked before Frank joined waits for those it asked.
    assert_eq!(app.click("U0FRANK", "approve", &early, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&early).await.status.as_str(), "PENDING");
    // `subteam_updated` reads the group again too.
    app.slack.set_usergroup(SEC, &["U0BOB", "U0FRANK", "U0GINA"]);
    subteam_updated(&app, SEC, &["U0BOB", "U0FRANK", "U0GINA"]).await;
    until_saved(&app, SEC, &["U0BOB", "U0FRANK", "U0GINA"]).await;
    // An event about a user group no group uses reads nothing.
    let calls = list_calls(&app).len();
    members_changed(&app, "S0OTHER", &["U0X"], &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(list_calls(&app).len(), calls);
}

async fn members_are_read_again_every_usergroup_refresh(b: Backend) {
    let config = USERGROUP_CONFIG.replace("[settings]\n", "[settings]\nusergroup_refresh = \"1s\"\n");
    let app = spawn_with_members(Setup { config, ..setup(b) }, &["U0BOB"]).await;
    app.slack.set_usergroup(SEC, &["U0HANK"]);
    // No event: the next refresh finds Hank.
    until_saved(&app, SEC, &["U0HANK"]).await;
    let left = app.events_of("group.user_membership.remove").await;
    assert_eq!(left[0].debug_context.debug_data["trigger"], "REFRESH");
    let id = app.request_app("U0EVE", "vault", "x").await;
    assert_eq!(asked(&app.request(&id).await), ["U0HANK"]);
}

async fn slack_failing_keeps_the_last_members(b: Backend) {
    let app = spawn_with_members(setup(b), &["U0BOB", "U0CAROL"]).await;
    let id = app.request_app("U0EVE", "vault", "x").await;
    // Slack would now say the group is empty, but it fails first: 500, then ok:false.
    app.slack.set_usergroup(SEC, &[]);
    app.slack.fail_next("usergroups.users.list", vec![Fail::ServerError]);
    members_changed(&app, SEC, &[], &["U0BOB", "U0CAROL"]).await;
    until("the read failed", || async { list_calls(&app).iter().any(|c| c.answer == "500") }).await;
    until("the failure is counted", || async {
        metric(&app, "accessbot_usergroup_reads_total{result=\"failed\"}").await.is_some_and(|l| l.ends_with(" 1"))
    })
    .await;
    assert_eq!(saved_members(&app, SEC).await.unwrap(), ["U0BOB", "U0CAROL"]);
    assert!(app.events_of("group.user_membership.remove").await.is_empty());
    assert_eq!(app.request(&id).await.flagged, None, "a failed read strands nothing");
    // Routing and deciding still use the last members.
    let other = app.request_app("U0FRED", "vault", "y").await;
    assert_eq!(asked(&app.request(&other).await), ["U0BOB", "U0CAROL"]);
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "APPROVED");
    // An answer without a list is a failure too, not an empty group.
    app.slack.fail_next("usergroups.users.list", vec![Fail::NotOk("missing_scope")]);
    members_changed(&app, SEC, &[], &["U0BOB"]).await;
    until("the read failed again", || async { list_calls(&app).iter().any(|c| c.answer == "missing_scope") }).await;
    until("the failure is counted", || async {
        metric(&app, "accessbot_usergroup_reads_total{result=\"failed\"}").await.is_some_and(|l| l.ends_with(" 2"))
    })
    .await;
    assert_eq!(saved_members(&app, SEC).await.unwrap(), ["U0BOB", "U0CAROL"]);
}

async fn an_emptied_user_group_flags_stranded_requests(b: Backend) {
    let app = spawn_with_members(setup(b), &["U0BOB", "U0CAROL", "U0DAN"]).await;
    let vault = app.request_app("U0EVE", "vault", "one approval").await;
    let safe = app.request_app("U0EVE", "safe", "two approvals").await;
    app.drain().await;

    // Two left of three: the quorum of two still holds for both.
    app.slack.set_usergroup(SEC, &["U0BOB", "U0CAROL"]);
    members_changed(&app, SEC, &[], &["U0DAN"]).await;
    until_saved(&app, SEC, &["U0BOB", "U0CAROL"]).await;
    // One left: the quorum of two is out of reach.
    app.slack.set_usergroup(SEC, &["U0BOB"]);
    members_changed(&app, SEC, &[], &["U0CAROL"]).await;
    until("safe is flagged", || async { app.request(&safe).await.flagged.is_some() }).await;
    let reason = app.request(&safe).await.flagged.unwrap();
    assert!(reason.contains("too few of the members asked at step 1") && reason.contains("S0SEC"), "{reason}");
    assert_eq!(app.request(&vault).await.flagged, None, "Bob can still decide vault's step");

    // Nobody left: every request waiting on it is flagged, and the admins are told.
    app.slack.set_usergroup(SEC, &[]);
    members_changed(&app, SEC, &[], &["U0BOB"]).await;
    until("vault is flagged", || async { app.request(&vault).await.flagged.is_some() }).await;
    app.drain().await;
    let reason = app.request(&vault).await.flagged.unwrap();
    assert_eq!(reason, "group security was emptied (Slack user group S0SEC has no members)");
    assert_eq!(app.request(&vault).await.status.as_str(), "PENDING", "flagging decides nothing");
    let flagged = app.events_of("app.access_request.flagged").await;
    let about_vault: Vec<_> = flagged.iter().filter(|e| e.request_id.as_deref() == Some(vault.as_str())).collect();
    assert_eq!(about_vault.len(), 1);
    assert_eq!(about_vault[0].debug_context.debug_data["trigger"], "USERGROUP");
    // The admins are told once the flags are in (a separate commit: wait for it).
    let told = |user: &'static str| {
        let (app, vault) = (&app, &vault);
        async move { app.slack.dms_to(user).iter().any(|c| c.text().contains(vault.as_str())) }
    };
    until("the super admin is told", || told("U0ROOT")).await;
    until("the app's admin is told", || told("U0VAULTADMIN")).await;
    let root: Vec<String> = app.slack.dms_to("U0ROOT").iter().map(|c| c.text()).collect();
    let about = root.iter().find(|t| t.contains(&vault)).unwrap();
    assert!(about.contains("was emptied") && about.contains("Slack user group"), "{about}");
    // A new request falls back to the app's admins, as for any group with nobody to ask.
    let id = app.request_app("U0FRED", "vault", "z").await;
    let r = app.request(&id).await;
    assert_eq!(r.steps[0].routed_to, Some(Routing::AppAdmins));
    assert_eq!(asked(&r), ["U0VAULTADMIN"]);
}

async fn a_reload_to_an_empty_user_group_flags_stranded_requests(b: Backend) {
    let slack = FakeSlack::start().await;
    slack.set_usergroup(SEC, &["U0BOB"]);
    slack.set_usergroup("S0NEW", &[]);
    let app = spawn_on(setup(b), slack).await;
    let id = app.request_app("U0EVE", "vault", "x").await;
    app.write_config(&USERGROUP_CONFIG.replace("S0SEC", "S0NEW"));
    let res =
        reqwest::Client::new().post(format!("{}/admin/reload", app.base)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // S0NEW is read before the pending requests are checked: it is empty, so the request is stranded.
    let report: Value = res.json().await.unwrap();
    let reason = "group security was emptied (Slack user group S0NEW has no members)";
    assert_eq!(report["flagged"], json!([{"requestId": id, "reason": reason}]), "{report}");
    assert_eq!(app.request(&id).await.flagged.as_deref(), Some(reason));
    let flagged = app.events_of("app.access_request.flagged").await;
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].debug_context.debug_data["trigger"], "API");
    assert!(list_calls(&app).iter().any(|c| c.body["usergroup"] == json!("S0NEW")));
    // Reloading the same file again flags nothing new.
    let res =
        reqwest::Client::new().post(format!("{}/admin/reload", app.base)).bearer_auth(API_TOKEN).send().await.unwrap();
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["flagged"], json!([]), "{again}");
    assert_eq!(app.events_of("app.access_request.flagged").await.len(), 1);
}

async fn saving_members_is_guarded_across_replicas(b: Backend) {
    use accessbot::store::{StoreError, Usergroup};
    let app = spawn_with_members(setup(b), &["U0BOB"]).await;
    let store = app.store();
    let saved = store.usergroups().await.unwrap().into_iter().find(|g| g.id == SEC).unwrap();
    assert_eq!(saved.version, 1);
    let next = Usergroup { members: vec!["U0NEW".into()], ..saved.clone() };
    store.save_usergroup(&next, &[]).await.unwrap();
    // A second save of the version read loses: another replica saved first.
    let stale = store.save_usergroup(&next, &[]).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    let fresh = Usergroup { id: SEC.into(), version: 0, ..next };
    assert!(matches!(store.save_usergroup(&fresh, &[]).await, Err(StoreError::Conflict)));
    let now = store.usergroups().await.unwrap().into_iter().find(|g| g.id == SEC).unwrap();
    assert_eq!((now.members, now.version), (vec!["U0NEW".to_string()], 2));
}

/// Vault's security step escalating after 2h to the leads' user group (`S0LEADS`, with these
/// members, or not answered by Slack), on a hand-moved clock.
async fn escalating_to_leads(
    b: Backend,
    leads: Option<&[&str]>,
) -> (TestApp, std::sync::Arc<accessbot::workflow::ManualClock>) {
    let config = USERGROUP_CONFIG.replace(
        "steps = [{ group = \"security\" }]",
        "steps = [{ group = \"security\", escalate_after = \"2h\", escalate_to = \"leads\" }]",
    ) + "\n[groups.leads]\nname = \"Leads\"\nslack_usergroup = \"S0LEADS\"\n";
    let clock = accessbot::workflow::ManualClock::new(chrono::Utc::now());
    let slack = FakeSlack::start().await;
    slack.set_usergroup(SEC, &["U0BOB"]);
    if let Some(members) = leads {
        slack.set_usergroup("S0LEADS", members);
    }
    (spawn_on(Setup { config, clock: Some(clock.clone()), ..setup(b) }, slack).await, clock)
}

/// A user group step escalating to another user group: those the escalation asked decide for
/// the escalation's group (not the step's), and only while they are in it.
async fn an_escalation_to_a_user_group_follows_its_members(b: Backend) {
    let (app, clock) = escalating_to_leads(b, Some(&["U0LEAD1", "U0LEAD2"])).await;
    let wf = app.running.as_ref().unwrap().workflow.clone();
    let id = app.request_app("U0EVE", "vault", "rotate").await;
    clock.advance(chrono::Duration::hours(3));
    assert_eq!(wf.run_jobs().await.unwrap().escalated, 1);
    app.drain().await;
    assert_eq!(asked(&app.request(&id).await), ["U0BOB", "U0LEAD1", "U0LEAD2"]);
    // Lead 1 leaves the leads' user group: refused. Lead 2, never in security, decides.
    app.slack.set_usergroup("S0LEADS", &["U0LEAD2"]);
    members_changed(&app, "S0LEADS", &[], &["U0LEAD1"]).await;
    until_saved(&app, "S0LEADS", &["U0LEAD2"]).await;
    assert_eq!(app.click("U0LEAD1", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    let blocked = app.events_of("security.request.blocked").await;
    assert!(blocked.iter().any(|e| e.actor.id == "U0LEAD1"), "{blocked:?}");
    // Security emptied: not stranded while Lead 2 can still decide.
    app.slack.set_usergroup(SEC, &[]);
    members_changed(&app, SEC, &[], &["U0BOB"]).await;
    until_saved(&app, SEC, &[]).await;
    assert_eq!(app.request(&id).await.flagged, None);
    assert_eq!(app.click("U0LEAD2", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "APPROVED");
}

/// An escalation to a user group Slack has not answered for yet waits for its
/// members instead of escalating to no one.
async fn an_escalation_waits_for_an_unread_user_group(b: Backend) {
    let (app, clock) = escalating_to_leads(b, None).await;
    let wf = app.running.as_ref().unwrap().workflow.clone();
    let id = app.request_app("U0EVE", "vault", "rotate").await;
    clock.advance(chrono::Duration::hours(3));
    assert_eq!(wf.run_jobs().await.unwrap().escalated, 0, "the leads' members are not known yet");
    assert!(app.events_of("app.access_request.escalate").await.is_empty());
    app.slack.set_usergroup("S0LEADS", &["U0LEAD1"]);
    members_changed(&app, "S0LEADS", &["U0LEAD1"], &[]).await;
    until_saved(&app, "S0LEADS", &["U0LEAD1"]).await;
    // Retried on a later pass (due again a second later), once this replica's catalog has the members.
    until("the escalation, once the catalog knows the leads", || async {
        clock.advance(chrono::Duration::seconds(1));
        wf.run_jobs().await.unwrap().escalated == 1
    })
    .await;
    app.drain().await;
    assert_eq!(asked(&app.request(&id).await), ["U0BOB", "U0LEAD1"]);
}

/// A member's delegate decides for them while they are in the user group, and no longer after.
async fn a_delegate_decides_only_while_the_member_is_in_the_user_group(b: Backend) {
    let app = spawn_with_members(setup(b), &["U0BOB", "U0CAROL"]).await;
    let until = (chrono::Utc::now() + chrono::Duration::days(7)).format("%Y-%m-%d").to_string();
    app.say("U0BOB", &format!("delegate <@U0DAN> until {until}")).await;
    let vault = app.request_app("U0EVE", "vault", "one").await;
    let safe = app.request_app("U0EVE", "safe", "two").await;
    app.drain().await;
    assert!(asked(&app.request(&vault).await).contains(&"U0DAN".to_string()), "Bob's delegate is asked");
    // Dan, not in the user group, decides for Bob.
    assert_eq!(app.click("U0DAN", "approve", &vault, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&vault).await.status.as_str(), "APPROVED");
    // Bob leaves: his delegate's right goes with his.
    app.slack.set_usergroup(SEC, &["U0CAROL"]);
    members_changed(&app, SEC, &[], &["U0BOB"]).await;
    until_saved(&app, SEC, &["U0CAROL"]).await;
    assert!(app.say("U0DAN", "tasks").await.contains("Nothing is waiting"));
    assert_eq!(app.click("U0DAN", "approve", &safe, 0).await, StatusCode::OK);
    app.drain().await;
    assert!(app.request(&safe).await.steps[0].approvals.is_empty(), "Dan's click did not count");
    let blocked = app.events_of("security.request.blocked").await;
    let reason = blocked.iter().rev().find(|e| e.actor.id == "U0DAN").and_then(|e| e.outcome.reason.clone());
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("U0BOB, whom you decide for, is no longer a member")),
        "{reason:?}"
    );
}

crate::both!(
    a_delegate_decides_only_while_the_member_is_in_the_user_group,
    an_escalation_to_a_user_group_follows_its_members,
    an_escalation_waits_for_an_unread_user_group,
    routing_asks_the_user_groups_members,
    a_member_removed_from_the_user_group_can_no_longer_decide,
    an_event_brings_in_a_new_member,
    members_are_read_again_every_usergroup_refresh,
    slack_failing_keeps_the_last_members,
    an_emptied_user_group_flags_stranded_requests,
    a_reload_to_an_empty_user_group_flags_stranded_requests,
    saving_members_is_guarded_across_replicas,
);
