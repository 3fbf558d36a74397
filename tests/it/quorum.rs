//! Group steps with a quorum: `{ group = "…", approvals = N }` needs N distinct
//! members; one deny denies; the requester never counts; exactly N under
//! concurrent clicks, on two replicas too.

use reqwest::StatusCode;

use crate::helpers::*;

const QUORUM_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]

[groups.security]
name = "Security Team"
members = ["U0BOB", "U0CAROL", "U0DAN"]

[groups.pair]
name = "Pair"
members = ["U0BOB", "U0CAROL"]

[apps.vault]
name = "Vault"
admins = ["U0VAULTADMIN"]
steps = [{ group = "security", approvals = 2 }]

[apps.safe]
name = "Safe"
admins = ["U0SAFEADMIN"]
steps = [{ group = "pair", approvals = 2 }]
"#;

fn quorum_setup(b: Backend) -> Setup {
    let mut s = Setup::new(b);
    s.config = QUORUM_CONFIG.to_string();
    s
}

fn approvals(events: &[accessbot::workflow::model::LogEvent]) -> usize {
    events.iter().filter(|e| e.event_type == "app.access_request.approver.approve").count()
}

async fn a_quorum_step_needs_that_many_distinct_approvals(b: Backend) {
    let app = spawn_with(quorum_setup(b)).await;
    let id = app.request_app("U0EVE", "vault", "rotate the root key").await;
    app.drain().await;
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "PENDING", "one of two approvals");
    assert_eq!(r.steps[0].approvals.iter().map(|a| a.by.as_str()).collect::<Vec<_>>(), ["U0BOB"]);
    // Every member's message shows the progress and keeps its buttons.
    for member in ["U0BOB", "U0CAROL", "U0DAN"] {
        let updates = app.slack.updates_for(member);
        let last = updates.last().unwrap_or_else(|| panic!("{member}'s message updated"));
        let body = last.body.to_string();
        assert!(body.contains("1 of 2 approvals: <@U0BOB>"), "{member}: {body}");
        assert!(body.contains("\"approve\""), "{member}'s buttons stay: {body}");
    }
    // A second click by the same member does not count twice.
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.steps[0].approvals.len(), 1);
    assert_eq!(approvals(&app.events(&id).await), 1);
    // Bob's queue no longer lists it; Dan's still does.
    assert!(app.say("U0BOB", "tasks").await.contains("Nothing is waiting"));
    let dan = app.command("U0DAN", "tasks").await.1.to_string();
    assert!(dan.contains(&id), "{dan}");
    assert_eq!(app.click("U0CAROL", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert_eq!(approvals(&app.events(&id).await), 2);
    assert!(app.slack.dms_to("U0EVE").iter().any(|c| c.text().contains("access is granted")));
    for member in ["U0BOB", "U0CAROL", "U0DAN"] {
        let last = app.slack.updates_for(member).last().map(|c| c.body.to_string()).unwrap_or_default();
        assert!(!last.contains("\"approve\""), "{member}'s message closed: {last}");
    }
}

async fn one_deny_denies_a_quorum_step(b: Backend) {
    let app = spawn_with(quorum_setup(b)).await;
    let id = app.request_app("U0EVE", "vault", "x").await;
    app.drain().await;
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    assert_eq!(app.click("U0CAROL", "deny", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "DENIED");
}

async fn the_requester_never_counts_toward_a_quorum(b: Backend) {
    let app = spawn_with(quorum_setup(b)).await;
    // Bob is a member: Carol and Dan must both approve, Bob is never asked.
    let id = app.request_app("U0BOB", "vault", "mine").await;
    app.drain().await;
    let r = app.request(&id).await;
    let asked: Vec<String> = r.steps[0].approvers.iter().map(|p| p.to_string()).collect();
    assert_eq!(asked, ["U0CAROL", "U0DAN"]);
    assert_eq!(r.steps[0].required, 2);
    assert!(app.slack.dms_to("U0BOB").iter().all(|c| !c.text().contains("\"approve\"")));
    // Too few members left for the quorum: the app's admins take the step.
    let id = app.request_app("U0BOB", "safe", "mine too").await;
    let r = app.request(&id).await;
    assert_eq!(r.steps[0].routed_to, Some(accessbot::workflow::model::Routing::AppAdmins));
    assert_eq!(r.steps[0].required, 1);
}

async fn concurrent_clicks_make_exactly_the_quorum(b: Backend) {
    let app = spawn_with(quorum_setup(b.clone())).await;
    // On PostgreSQL the clicks are split across two servers on one database.
    let second = match b {
        Backend::Postgres(_) => Some(app.replica(quorum_setup(b)).await),
        Backend::Sqlite => None,
    };
    let id = app.request_app("U0EVE", "vault", "race").await;
    app.drain().await;
    let mut clicks = Vec::new();
    for i in 0..12 {
        let chat = match (&second, i % 2) {
            (Some(s), 1) => s.chat.clone(),
            _ => app.chat.clone(),
        };
        let member = ["U0BOB", "U0CAROL", "U0DAN"][i % 3];
        let id = id.clone();
        clicks.push(tokio::spawn(async move { chat.click(member, "approve", &id, 0).await }));
    }
    for c in clicks {
        assert_eq!(c.await.unwrap(), StatusCode::OK);
    }
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert_eq!(r.steps[0].approvals.len(), 2, "{:?}", r.steps[0].approvals);
    assert_eq!(approvals(&app.events(&id).await), 2);
    assert_eq!(app.events_of("application.user_membership.add").await.len(), 1);
}

crate::both!(
    a_quorum_step_needs_that_many_distinct_approvals,
    one_deny_denies_a_quorum_step,
    the_requester_never_counts_toward_a_quorum,
    concurrent_clicks_make_exactly_the_quorum,
);
