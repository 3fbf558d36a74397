//! Action and task steps, provisioning hooks, reminders, expiry and
//! time-bound access (time moved by hand, never slept).

use std::sync::Arc;

use accessbot::workflow::model::{GrantStatus, RevocationStatus, StepState};
use accessbot::workflow::ManualClock;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;

use crate::fake_slack::Fail;
use crate::helpers::*;

/// The hooks sign with the value of CARGO_PKG_NAME, which cargo sets for every test process.
const SECRET_ENV: &str = "CARGO_PKG_NAME";

const FLOW_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]
admin_channel = "C0ADMINS"
request_ttl = "3d"
reminder_after = "1d"

[groups.it]
name = "IT Ops"
members = ["U0IT1", "U0IT2"]

[apps.vpn]
name = "VPN"
max_duration = "30d"
steps = [
  { user = "U0ALICE" },
  { action = { url = "{HOOKS}/flow", secret_env = "CARGO_PKG_NAME", fields = { requesterEmail = "requester.email", why = "field.justification", region = "field.region", app = "app.id" } } },
  { task = { group = "it" } },
]
fields = [
  { id = "justification", label = "Business justification", type = "text", required = true },
  { id = "region", label = "Region", type = "select", options = ["EU", "US"], required = true },
  { id = "end_date", label = "Access until", type = "date" },
]
provisioning = { url = "{HOOKS}/grant", secret_env = "CARGO_PKG_NAME" }

[apps.wiki]
name = "Wiki"
approval = false
max_duration = "2d"
provisioning = { url = "{HOOKS}/wiki" }
"#;

fn setup(b: Backend, clock: Option<Arc<ManualClock>>) -> Setup {
    let mut s = Setup::new(b);
    s.config = FLOW_CONFIG.to_string();
    s.clock = clock;
    s
}

fn verify_signature(call: &crate::fake_slack::Call) {
    let (raw, ts, sig) = call.raw.clone().unwrap();
    let secret = std::env::var(SECRET_ENV).unwrap();
    let (ts, sig) = (ts.expect("timestamp header"), sig.expect("signature header"));
    assert_eq!(
        accessbot::slack::verify::verify(&secret, Some(&ts), Some(&sig), raw.as_bytes(), Utc::now().timestamp()),
        Ok(())
    );
}

async fn create_vpn(app: &TestApp, end_date: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("{}/governance/api/v2/requests", app.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "vpn"},
                      "requestedFor": {"type": "SLACK_USER", "externalId": "U0REQ"},
                      "requesterFieldValues": [{"id": "justification", "value": "travel"}, {"id": "region", "value": "EU"},
                                               {"id": "end_date", "value": end_date}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn action_task_and_provisioning(b: Backend) {
    let app = spawn_with(setup(b, None)).await;
    let end = (Utc::now() + Duration::days(10)).format("%Y-%m-%d").to_string();
    let id = create_vpn(&app, &end).await;
    app.drain().await;
    assert!(app.slack.ok_calls("hook:flow").is_empty(), "the action waits for step 1");
    let asked = app.slack.dms_to("U0ALICE")[0].text();
    assert!(asked.contains("*Region*: EU") && asked.contains(&format!("*Access until*: {end}")), "{asked}");
    assert_eq!(app.click("U0ALICE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;

    // The action step called its webhook, signed, with the mapped fields, and the workflow went on.
    let flow = app.slack.ok_calls("hook:flow");
    assert_eq!(flow.len(), 1);
    verify_signature(&flow[0]);
    assert_eq!(flow[0].body["fields"], json!({"app": "vpn", "region": "EU", "requesterEmail": null, "why": "travel"}));
    assert_eq!(flow[0].body["requestId"], id.as_str());
    let r = app.request(&id).await;
    assert_eq!(r.steps[1].state, StepState::Approved);
    assert_eq!(r.current_step, Some(2));

    // The task went to both IT members with a single Mark done button.
    for u in ["U0IT1", "U0IT2"] {
        let dm = app.slack.dms_to(u);
        assert_eq!(dm.len(), 1, "{u}");
        assert!(dm[0].text().contains("task_done") && !dm[0].text().contains("\"approve\""), "{}", dm[0].text());
    }
    assert_eq!(app.click("U0IT2", "task_done", &id, 2).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert_eq!(r.grant_status, Some(GrantStatus::Granted), "the grant hook answered 200");
    let grant = app.slack.ok_calls("hook:grant");
    assert_eq!(grant.len(), 1);
    verify_signature(&grant[0]);
    assert_eq!(grant[0].body["event"], "grant");
    assert_eq!(grant[0].body["user"]["id"], "U0REQ");
    assert_eq!(grant[0].body["requestId"], id.as_str());
    // Access ends at the end of the requested end date (earlier than max_duration).
    let a = app.store().assignment("U0REQ", "vpn").await.unwrap().unwrap();
    assert_eq!(a.expires.unwrap().format("%Y-%m-%d %H:%M:%S").to_string(), format!("{end} 23:59:59"));
    assert_eq!(r.access_until, a.expires);
    assert!(app.slack.updates_for("U0IT1")[0].text().contains("Marked done by <@U0IT2>"));

    let t = types(&app.events(&id).await);
    for want in [
        "app.access_request.action",
        "app.access_request.task.complete",
        "app.access_request.grant",
        "application.user_membership.add",
    ] {
        assert!(t.contains(&want.to_string()), "{want} in {t:?}");
    }
    // Later events were replied into Alice's message thread.
    let alice_ts = app.slack.dms_to("U0ALICE")[0].clone();
    let replies = app.slack.thread_replies_to("U0ALICE");
    assert!(replies.iter().any(|c| c.text().contains("marked done by <@U0IT2>")), "{replies:?}");
    assert!(replies.iter().any(|c| c.text().contains("access granted")));
    let _ = alice_ts;

    // An admin revoke fires the revoke hook and records the revocation.
    assert!(app.say("U0ROOT", "admin revoke vpn <@U0REQ>").await.contains("Removed"));
    app.drain().await;
    let revoke = app.slack.ok_calls("hook:grant");
    assert_eq!(revoke.len(), 2);
    assert_eq!(revoke[1].body["event"], "revoke");
    let r = app.request(&id).await;
    assert_eq!(r.revocation_status, Some(RevocationStatus::Revoked));
    assert!(r.revoked.is_some());
}

async fn failing_hooks_are_reported(b: Backend) {
    let app = spawn_with(setup(b, None)).await;
    app.slack.fail_next("hook:grant", vec![Fail::Status(404)]);
    app.slack.fail_next("hook:flow", vec![Fail::ServerError; 10]);
    let end = (Utc::now() + Duration::days(3)).format("%Y-%m-%d").to_string();
    let id = create_vpn(&app, &end).await;
    assert_eq!(app.click("U0ALICE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    // The action failed for good (retries exhausted), but the workflow went on to the task.
    assert_eq!(app.slack.calls().iter().filter(|c| c.method == "hook:flow").count(), 6, "max_attempts tries");
    assert_eq!(app.slack.dms_to("U0IT1").len(), 1);
    let feed: Vec<_> =
        app.slack.ok_calls("chat.postMessage").into_iter().filter(|c| c.body["channel"] == "C0ADMINS").collect();
    assert!(feed.iter().any(|c| c.text().contains("webhook action of step 2 failed")), "{feed:?}");

    assert_eq!(app.click("U0IT1", "task_done", &id, 2).await, StatusCode::OK);
    app.drain().await;
    // The grant hook answered a non-retryable error: FAILED, logged, admins told.
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert_eq!(r.grant_status, Some(GrantStatus::Failed));
    let hooks: Vec<_> =
        app.events(&id).await.into_iter().filter(|e| e.event_type == "app.access_request.webhook").collect();
    assert_eq!(hooks.len(), 2);
    assert!(hooks.iter().all(|e| e.outcome.result == accessbot::workflow::model::OutcomeResult::Failure));
    let feed: Vec<_> =
        app.slack.ok_calls("chat.postMessage").into_iter().filter(|c| c.body["channel"] == "C0ADMINS").collect();
    assert!(feed.iter().any(|c| c.text().contains("provisioning (grant) failed")), "{feed:?}");
}

async fn reminders_then_expiry(b: Backend) {
    let clock = ManualClock::new(Utc::now());
    let app = spawn_with(setup(b, Some(clock.clone()))).await;
    let wf = app.running.as_ref().unwrap().workflow.clone();
    let end = (Utc::now() + Duration::days(20)).format("%Y-%m-%d").to_string();
    let id = create_vpn(&app, &end).await;
    app.drain().await;

    assert_eq!(wf.run_jobs().await.unwrap(), Default::default(), "nothing due yet");
    clock.advance(Duration::hours(25));
    let r = wf.run_jobs().await.unwrap();
    assert_eq!((r.reminded, r.expired), (1, 0));
    assert_eq!(wf.run_jobs().await.unwrap().reminded, 0, "once per interval");
    app.drain().await;
    let dms = app.slack.dms_to("U0ALICE");
    assert_eq!(dms.len(), 2);
    assert!(dms[1].text().contains("Reminder"));
    clock.advance(Duration::hours(25));
    assert_eq!(wf.run_jobs().await.unwrap().reminded, 1, "again after another interval");
    // Deliver before moving the clock again: a jump past the outbox lease would re-claim rows in flight.
    app.drain().await;

    clock.advance(Duration::hours(23));
    let r = wf.run_jobs().await.unwrap();
    assert_eq!(r.expired, 1);
    app.drain().await;
    let req = app.request(&id).await;
    assert_eq!(req.status.as_str(), "EXPIRED");
    let t = types(&app.events(&id).await);
    assert_eq!(t.iter().filter(|t| *t == "app.access_request.remind").count(), 2);
    assert!(t.contains(&"app.access_request.expire".to_string()));
    // Every message of the open step (the first and both reminders) shows the final state.
    let updates = app.slack.updates_for("U0ALICE");
    assert_eq!(updates.len(), 3);
    assert!(updates.iter().all(|u| u.text().contains("Expired") && !u.text().contains("\"actions\"")));
    assert!(app.slack.dms_to("U0REQ").last().unwrap().text().contains("expired"));
    assert_eq!(wf.run_jobs().await.unwrap(), Default::default());
}

async fn time_bound_access_warns_and_ends(b: Backend) {
    let clock = ManualClock::new(Utc::now());
    let app = spawn_with(setup(b, Some(clock.clone()))).await;
    let wf = app.running.as_ref().unwrap().workflow.clone();
    assert!(app.say("U0REQ", "request wiki").await.contains("you now have"));
    app.drain().await;
    let a = app.store().assignment("U0REQ", "wiki").await.unwrap().unwrap();
    assert_eq!(a.expires, Some(clock_now(&clock) + Duration::days(2)));
    let id = a.request_id.clone().unwrap();
    assert_eq!(app.request(&id).await.access_duration.as_deref(), Some("P2D"));
    assert_eq!(app.slack.ok_calls("hook:wiki").len(), 1, "unsigned hook (no secret_env) still called");
    assert!(app.slack.ok_calls("hook:wiki")[0].raw.as_ref().unwrap().2.is_none());

    clock.advance(Duration::hours(23));
    assert_eq!(wf.run_jobs().await.unwrap(), Default::default());
    clock.advance(Duration::hours(2));
    assert_eq!(wf.run_jobs().await.unwrap().warned, 1, "one day before");
    assert_eq!(wf.run_jobs().await.unwrap().warned, 0);
    app.drain().await;
    clock.advance(Duration::hours(22) + Duration::minutes(30));
    assert_eq!(wf.run_jobs().await.unwrap().warned, 1, "one hour before");
    app.drain().await;
    clock.advance(Duration::hours(1));
    assert_eq!(wf.run_jobs().await.unwrap().revoked, 1);
    assert_eq!(wf.run_jobs().await.unwrap(), Default::default());
    app.drain().await;

    assert!(app.store().assignment("U0REQ", "wiki").await.unwrap().is_none());
    let dms: Vec<String> = app.slack.dms_to("U0REQ").iter().map(|c| c.text()).collect();
    assert_eq!(dms.iter().filter(|t| t.contains("ends on")).count(), 2, "{dms:?}");
    assert!(dms.last().unwrap().contains("has ended"));
    let hooks = app.slack.ok_calls("hook:wiki");
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[1].body["event"], "revoke");
    let removed = app.events_of("application.user_membership.remove").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].debug_context.debug_data["reason"], "ACCESS_ENDED");
    assert_eq!(removed[0].actor.kind.as_str(), "SYSTEM");
    assert_eq!(app.request(&id).await.revocation_status, Some(RevocationStatus::Revoked));
}

fn clock_now(c: &ManualClock) -> chrono::DateTime<Utc> {
    use accessbot::workflow::Clock;
    c.now()
}

crate::both!(
    action_task_and_provisioning,
    failing_hooks_are_reported,
    reminders_then_expiry,
    time_bound_access_warns_and_ends
);
