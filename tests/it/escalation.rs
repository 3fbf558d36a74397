//! Escalation: a step still undecided `escalate_after` it was asked is also
//! offered to `escalate_to` (DMs, the approver queue), logged
//! `app.access_request.escalate`, still one decision; due work is found by its
//! due time, on two replicas exactly once.

use std::sync::Arc;

use accessbot::workflow::model::OutcomeResult;
use accessbot::workflow::{Clock, ManualClock};
use chrono::{Duration, Utc};
use reqwest::StatusCode;

use crate::helpers::*;

const ESCALATION_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]

[groups.security]
name = "Security Team"
members = ["U0BOB", "U0CAROL"]

[groups.leads]
name = "Leads"
members = ["U0LEAD", "U0EVE"]

[apps.vault]
name = "Vault"
steps = [{ group = "security", escalate_after = "2h", escalate_to = "leads" }]

[apps.db]
name = "Database"
steps = [{ user = "U0BOB", escalate_after = "1h", escalate_to = "U0CAROL" }, { user = "U0DAN" }]
"#;

fn escalation_setup(b: Backend, clock: &Arc<ManualClock>) -> Setup {
    let mut s = Setup::new(b);
    s.config = ESCALATION_CONFIG.to_string();
    s.clock = Some(clock.clone());
    s
}

fn has_buttons(call: &crate::fake_slack::Call) -> bool {
    call.body.to_string().contains("\"approve\"")
}

async fn an_undecided_step_escalates_once_and_stays_one_decision(b: Backend) {
    let clock = ManualClock::new(Utc::now());
    let app = spawn_with(escalation_setup(b, &clock)).await;
    let wf = app.running.as_ref().unwrap().workflow.clone();
    // Eve is in the escalation group and is the requester: she is never asked.
    let id = app.request_app("U0EVE", "vault", "rotate the root key").await;
    app.drain().await;
    clock.advance(Duration::minutes(119));
    assert_eq!(wf.run_jobs().await.unwrap().escalated, 0, "not yet");
    clock.advance(Duration::minutes(2));
    assert_eq!(wf.run_jobs().await.unwrap().escalated, 1);
    assert_eq!(wf.run_jobs().await.unwrap().escalated, 0, "once");
    app.drain().await;

    let lead = app.slack.dms_to("U0LEAD");
    assert_eq!(lead.len(), 1);
    assert!(lead[0].text().contains("Escalated to you") && has_buttons(&lead[0]), "{:?}", lead[0].body);
    assert!(app.slack.dms_to("U0EVE").iter().all(|c| !has_buttons(c)), "the requester is never asked");
    let escalated = app.events_of("app.access_request.escalate").await;
    assert_eq!(escalated.len(), 1);
    let data = &escalated[0].debug_context.debug_data;
    assert_eq!(data["escalatedTo"], "Leads");
    assert_eq!(data["asked"], serde_json::json!(["U0LEAD"]));
    assert_eq!(data["escalateAfter"], "2h");
    assert_eq!(escalated[0].outcome.result, OutcomeResult::Success);
    // The first approvers' threads say so; the lead's queue lists it.
    for member in ["U0BOB", "U0CAROL"] {
        let replies = app.slack.thread_replies_to(member);
        assert!(replies.iter().any(|c| c.text().contains("escalated to Leads")), "{member}: {replies:?}");
    }
    assert!(app.command("U0LEAD", "tasks").await.1.to_string().contains(&id));

    // One decision: the lead approves, every message of the step closes, Bob's click is refused.
    assert_eq!(app.click("U0LEAD", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert_eq!(r.steps[0].decided_by.as_deref(), Some("U0LEAD"));
    for person in ["U0BOB", "U0CAROL", "U0LEAD"] {
        let last = app.slack.updates_for(person).last().cloned().unwrap_or_else(|| panic!("{person} updated"));
        assert!(!has_buttons(&last), "{person}'s message closed: {:?}", last.body);
    }
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.events_of("app.access_request.approver.approve").await.len(), 1);
}

async fn a_step_decided_in_time_does_not_escalate(b: Backend) {
    let clock = ManualClock::new(Utc::now());
    let app = spawn_with(escalation_setup(b, &clock)).await;
    let wf = app.running.as_ref().unwrap().workflow.clone();
    let id = app.request_app("U0EVE", "db", "schema migration").await;
    app.drain().await;
    clock.advance(Duration::minutes(30));
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    // The second step has no escalation; the first was decided before its time.
    clock.advance(Duration::hours(3));
    assert_eq!(wf.run_jobs().await.unwrap(), Default::default());
    assert!(app.events_of("app.access_request.escalate").await.is_empty());
    assert!(app.slack.dms_to("U0CAROL").is_empty());
    assert_eq!(app.request(&id).await.current_step, Some(1));
}

async fn escalation_to_a_person_who_then_decides(b: Backend) {
    let clock = ManualClock::new(Utc::now());
    let app = spawn_with(escalation_setup(b, &clock)).await;
    let wf = app.running.as_ref().unwrap().workflow.clone();
    let id = app.request_app("U0EVE", "db", "schema migration").await;
    app.drain().await;
    assert_eq!(app.click("U0CAROL", "approve", &id, 0).await, StatusCode::OK, "refused with a reply");
    assert_eq!(app.request(&id).await.steps[0].decided_by, None, "not hers before it escalates");
    clock.advance(Duration::minutes(61));
    assert_eq!(wf.run_jobs().await.unwrap().escalated, 1);
    app.drain().await;
    assert_eq!(app.click("U0CAROL", "deny", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "DENIED");
    assert_eq!(r.steps[0].decided_by.as_deref(), Some("U0CAROL"));
    assert!(app.slack.dms_to("U0DAN").is_empty(), "denied before the second step");
}

/// Due work is read by its due time: nothing before it, the request at it,
/// and a reload that shortens the reminder interval retimes what is open.
async fn due_work_is_found_by_its_due_time(b: Backend) {
    let clock = ManualClock::new(Utc::now());
    let app = spawn_with(escalation_setup(b, &clock)).await;
    let store = app.store();
    let created = clock.now();
    let id = app.request_app("U0EVE", "vault", "rotate the root key").await;
    app.drain().await;
    let due_ids = |rs: Vec<accessbot::workflow::model::Request>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert!(store.due_requests(created + Duration::minutes(119), 10).await.unwrap().is_empty());
    assert_eq!(due_ids(store.due_requests(created + Duration::minutes(121), 10).await.unwrap()), vec![id.clone()]);

    let wf = app.running.as_ref().unwrap().workflow.clone();
    clock.advance(Duration::minutes(121));
    assert_eq!(wf.run_jobs().await.unwrap().escalated, 1);
    // Next: the reminder, a day after the step was asked.
    assert!(store.due_requests(created + Duration::hours(23), 10).await.unwrap().is_empty());
    assert_eq!(due_ids(store.due_requests(created + Duration::hours(25), 10).await.unwrap()), vec![id.clone()]);

    app.write_config(&ESCALATION_CONFIG.replace("[settings]\n", "[settings]\nreminder_after = \"3h\"\n"));
    let report = app.running.as_ref().unwrap().reloader().reload(&accessbot::workflow::Actor::system(), "API").await;
    assert!(report.as_ref().is_ok_and(|r| r.flagged.is_empty()), "the escalation strands nothing: {report:?}");
    assert_eq!(app.request(&id).await.flagged, None);
    assert_eq!(due_ids(store.due_requests(clock.now(), 10).await.unwrap()), vec![id.clone()], "retimed on reload");
    assert_eq!(wf.run_jobs().await.unwrap(), Default::default(), "nothing to do yet under the new rules");
    assert!(store.due_requests(created + Duration::hours(2) + Duration::minutes(59), 10).await.unwrap().is_empty());
    clock.advance(Duration::hours(1));
    assert_eq!(wf.run_jobs().await.unwrap().reminded, 1, "three hours after it was asked");
    // Closed requests are never due.
    app.drain().await;
    assert_eq!(app.click("U0LEAD", "approve", &id, 0).await, StatusCode::OK);
    assert!(store.due_requests(created + Duration::days(30), 10).await.unwrap().is_empty());
}

/// On PostgreSQL two servers on one database; on SQLite two passes in one.
async fn two_replicas_escalate_exactly_once(b: Backend) {
    let clock = ManualClock::new(Utc::now());
    let app = spawn_with(escalation_setup(b.clone(), &clock)).await;
    let other = match b {
        Backend::Postgres(_) => Some(app.replica(escalation_setup(b, &clock)).await),
        Backend::Sqlite => None,
    };
    let mut ids = Vec::new();
    for user in ["U0R1", "U0R2", "U0R3", "U0R4", "U0R5"] {
        ids.push(app.request_app(user, "vault", "drill").await);
    }
    app.drain().await;
    clock.advance(Duration::hours(3));
    let a = app.running.as_ref().unwrap().workflow.clone();
    let b2 = other.as_ref().unwrap_or(&app).running.as_ref().unwrap().workflow.clone();
    let (ra, rb) = tokio::join!(a.run_jobs(), b2.run_jobs());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.escalated + rb.escalated, 5, "{ra:?} {rb:?}");
    app.drain().await;
    assert_eq!(app.events_of("app.access_request.escalate").await.len(), 5);
    assert_eq!(app.slack.dms_to("U0LEAD").len(), 5, "one DM per request");
    assert_eq!(app.slack.dms_to("U0EVE").len(), 5, "Eve is asked: she requested none of them");
}

crate::both!(
    an_undecided_step_escalates_once_and_stays_one_decision,
    a_step_decided_in_time_does_not_escalate,
    escalation_to_a_person_who_then_decides,
    due_work_is_found_by_its_due_time,
    two_replicas_escalate_exactly_once,
);
