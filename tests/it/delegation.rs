//! Delegation: `/access delegate <@user> until <YYYY-MM-DD>` and `off`. While
//! set, every step that asks me also asks my delegate (shown as deciding for
//! me; both may decide; logged); separation of duties holds.

use std::sync::Arc;

use accessbot::workflow::{Clock, ManualClock};
use chrono::{Duration, Utc};
use reqwest::StatusCode;

use crate::helpers::*;

const DELEGATION_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]

[groups.pair]
name = "Pair"
members = ["U0BOB", "U0CAROL"]

[apps.vault]
name = "Vault"
steps = [{ user = "U0ALICE" }]

[apps.safe]
name = "Safe"
steps = [{ group = "pair", approvals = 2 }]

[groups.mailpair]
name = "Mail pair"
members = ["bob@example.com", "U0CAROL"]

[apps.mailsafe]
name = "Mail safe"
steps = [{ group = "mailpair", approvals = 2 }]
"#;

fn delegation_setup(b: Backend, clock: Option<Arc<ManualClock>>) -> Setup {
    let mut s = Setup::new(b);
    s.config = DELEGATION_CONFIG.to_string();
    s.clock = clock;
    s
}

fn day(days: i64) -> String {
    (Utc::now() + Duration::days(days)).format("%Y-%m-%d").to_string()
}

fn asks(call: &crate::fake_slack::Call) -> bool {
    call.body.to_string().contains("\"approve\"")
}

async fn a_delegate_is_asked_and_decides_for_me(b: Backend) {
    let app = spawn_with(delegation_setup(b, None)).await;
    let said = app.say("U0ALICE", &format!("delegate <@U0DAVE|dave> until {}", day(7))).await;
    assert!(said.contains("<@U0DAVE>, who decides for you") && said.contains(&day(7)), "{said}");
    assert!(app
        .say("U0ALICE", "delegate")
        .await
        .contains(&format!("<@U0DAVE> decides your approvals until {}", day(7))));
    let set = app.events_of("app.access_request.delegation.set").await;
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].actor.id, "U0ALICE");
    assert_eq!(set[0].debug_context.debug_data["delegate"], "U0DAVE");

    let id = app.request_app("U0EVE", "vault", "rotate keys").await;
    app.drain().await;
    let dave = app.slack.dms_to("U0DAVE");
    assert_eq!(dave.len(), 1);
    assert!(asks(&dave[0]) && dave[0].body.to_string().contains("You are asked for <@U0ALICE>"), "{:?}", dave[0].body);
    assert!(app.slack.dms_to("U0ALICE").iter().any(asks), "I am still asked too");
    let asked = app.events_of("app.access_request.delegate").await;
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].debug_context.debug_data["onBehalfOf"], "U0ALICE");
    assert!(app.command("U0DAVE", "tasks").await.1.to_string().contains(&id), "in the delegate's queue");
    // A reload does not take the delegate for an approver who is no longer configured.
    let report = app.running.as_ref().unwrap().reloader().reload(&accessbot::workflow::Actor::system(), "API").await;
    assert!(report.as_ref().is_ok_and(|r| r.flagged.is_empty()), "{report:?}");

    assert_eq!(app.click("U0DAVE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert_eq!(r.steps[0].decided_by.as_deref(), Some("U0DAVE"));
    let approved = app.events_of("app.access_request.approver.approve").await;
    assert_eq!(approved[0].debug_context.debug_data["onBehalfOf"], "U0ALICE");
    let alice = app.slack.updates_for("U0ALICE");
    assert!(alice.last().is_some_and(|c| !asks(c) && c.text().contains("Approved by")), "{alice:?}");
}

async fn a_delegation_reaches_waiting_steps_and_ends_with_off(b: Backend) {
    let app = spawn_with(delegation_setup(b, None)).await;
    let id = app.request_app("U0EVE", "vault", "rotate keys").await;
    app.drain().await;
    assert!(app.slack.dms_to("U0DAVE").is_empty());
    app.say("U0ALICE", &format!("delegate <@U0DAVE> until {}", day(3))).await;
    app.drain().await;
    assert!(app.slack.dms_to("U0DAVE").iter().any(asks), "the waiting step now asks Dave");

    let said = app.say("U0ALICE", "delegate off").await;
    assert!(said.contains("has ended"), "{said}");
    app.drain().await;
    let dave = app.slack.updates_for("U0DAVE");
    assert!(dave.last().is_some_and(|c| !asks(c) && c.text().contains("No longer yours")), "{dave:?}");
    assert_eq!(app.events_of("app.access_request.delegation.remove").await.len(), 1);
    assert_eq!(app.click("U0DAVE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING", "Dave no longer decides");
    assert!(!app.command("U0DAVE", "tasks").await.1.to_string().contains(&id));
    // A request made now asks only me.
    let id2 = app.request_app("U0FRANK", "vault", "audit").await;
    app.drain().await;
    assert_eq!(app.slack.dms_to("U0DAVE").len(), 1);
    assert!(app.request(&id2).await.steps[0].delegates.is_empty());
    assert!(app.say("U0ALICE", "delegate off").await.contains("no delegation to end"));
}

async fn separation_of_duties_holds_for_delegates(b: Backend) {
    let app = spawn_with(delegation_setup(b, None)).await;
    app.say("U0ALICE", &format!("delegate <@U0EVE> until {}", day(3))).await;
    let id = app.request_app("U0EVE", "vault", "mine").await;
    app.drain().await;
    assert!(app.slack.dms_to("U0EVE").iter().all(|c| !asks(c)), "the requester is not asked as a delegate");
    assert!(app.request(&id).await.steps[0].delegates.is_empty());
    assert!(app.events_of("app.access_request.delegate").await.is_empty());
    assert_eq!(app.click("U0EVE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    assert!(!app.events_of("security.request.blocked").await.is_empty());

    // Bad commands get a helpful reply and change nothing.
    for (text, reply) in [
        (format!("delegate <@U0BOB> until {}", day(3)), "cannot delegate to yourself"),
        (format!("delegate <@U0DAVE> until {}", day(-1)), "has passed"),
        (format!("delegate <@U0DAVE> until {}", day(120)), "at most 90 days"),
        ("delegate <@U0DAVE> tomorrow".to_string(), "Usage: `/access delegate @someone until <YYYY-MM-DD>`"),
        (format!("delegate dave until {}", day(3)), "is not a user"),
    ] {
        let said = app.say("U0BOB", &text).await;
        assert!(said.contains(reply), "{text}: {said}");
    }
    assert!(app.say("U0BOB", "delegate").await.contains("no delegation"));
}

async fn a_delegate_and_their_approver_count_once(b: Backend) {
    let app = spawn_with(delegation_setup(b, None)).await;
    app.say("U0BOB", &format!("delegate <@U0DAVE> until {}", day(3))).await;
    let id = app.request_app("U0EVE", "safe", "two keys").await;
    app.drain().await;
    assert_eq!(app.click("U0DAVE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "PENDING", "Bob's approval was already given by his delegate");
    assert_eq!(r.steps[0].approvals.len(), 1);
    assert_eq!(r.steps[0].approvals[0].on_behalf_of.as_deref(), Some("U0BOB"));
    assert_eq!(app.click("U0CAROL", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "APPROVED");
}

/// The same with the approver configured by email: their own approval and their delegate's still count once.
async fn an_approver_configured_by_email_and_their_delegate_count_once(b: Backend) {
    let slack = crate::fake_slack::FakeSlack::start().await;
    slack.add_user("U0BOB", "bob@example.com");
    let app = spawn_on(delegation_setup(b, None), slack).await;
    app.say("U0BOB", &format!("delegate <@U0DAVE> until {}", day(3))).await;
    let id = app.request_app("U0EVE", "mailsafe", "two keys").await;
    app.drain().await;
    assert!(app.slack.dms_to("U0DAVE").iter().any(asks), "Bob's delegate is asked");
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.click("U0DAVE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "PENDING", "Dave's approval for Bob is Bob's, already given");
    assert_eq!(r.steps[0].approvals.len(), 1);
    assert_eq!(app.click("U0CAROL", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "APPROVED");
}

async fn a_delegation_past_its_last_day_no_longer_decides(b: Backend) {
    let clock = ManualClock::new(Utc::now());
    let app = spawn_with(delegation_setup(b, Some(clock.clone()))).await;
    let today = clock.now().format("%Y-%m-%d").to_string();
    app.say("U0ALICE", &format!("delegate <@U0DAVE> until {today}")).await;
    let id = app.request_app("U0EVE", "vault", "rotate keys").await;
    app.drain().await;
    assert!(app.slack.dms_to("U0DAVE").iter().any(asks));
    clock.advance(Duration::days(1));
    // The jobs take Dave off the step: his message closes, it leaves his queue, he gets no reminders.
    let wf = app.running.as_ref().unwrap().workflow.clone();
    assert_eq!(wf.run_jobs().await.unwrap().withdrawn, 1);
    assert_eq!(wf.run_jobs().await.unwrap().withdrawn, 0, "once");
    app.drain().await;
    let dave = app.slack.updates_for("U0DAVE");
    assert!(dave.last().is_some_and(|c| !asks(c) && c.text().contains("No longer yours")), "{dave:?}");
    assert!(!app.command("U0DAVE", "tasks").await.1.to_string().contains(&id));
    assert!(app.request(&id).await.steps[0].delegates.is_empty());
    assert_eq!(app.click("U0DAVE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    assert!(!app.events_of("security.request.blocked").await.is_empty(), "the click is refused");
    assert!(app.say("U0ALICE", "delegate").await.contains("no delegation"));
    // A request made now does not ask Dave.
    let id2 = app.request_app("U0FRANK", "vault", "audit").await;
    assert!(app.request(&id2).await.steps[0].delegates.is_empty());
}

crate::both!(
    a_delegate_is_asked_and_decides_for_me,
    a_delegation_reaches_waiting_steps_and_ends_with_off,
    separation_of_duties_holds_for_delegates,
    a_delegate_and_their_approver_count_once,
    an_approver_configured_by_email_and_their_delegate_count_once,
    a_delegation_past_its_last_day_no_longer_decides,
);

async fn replacing_a_delegation_withdraws_the_previous_delegate(b: Backend) {
    let app = spawn_with(delegation_setup(b, None)).await;
    let id = app.request_app("U0EVE", "vault", "rotate keys").await;
    app.say("U0ALICE", &format!("delegate <@U0DAVE> until {}", day(3))).await;
    app.drain().await;
    assert!(app.slack.dms_to("U0DAVE").iter().any(asks));
    let said = app.say("U0ALICE", &format!("delegate <@U0GINA> until {}", day(5))).await;
    assert!(said.contains("<@U0GINA>"), "{said}");
    app.drain().await;
    let dave = app.slack.updates_for("U0DAVE");
    assert!(dave.last().is_some_and(|c| !asks(c) && c.text().contains("No longer yours")), "{dave:?}");
    assert!(app.slack.dms_to("U0GINA").iter().any(asks), "the new delegate is asked");
    let step = &app.request(&id).await.steps[0];
    assert_eq!(step.delegates.len(), 1);
    assert_eq!(step.delegates[0].delegate, accessbot::workflow::Person::Slack("U0GINA".into()));
    assert_eq!(app.click("U0DAVE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING", "the previous delegate no longer decides");
    // The same delegate again, a later day: the waiting step keeps them, with the new end.
    app.say("U0ALICE", &format!("delegate <@U0GINA> until {}", day(9))).await;
    app.drain().await;
    let step = &app.request(&id).await.steps[0];
    assert_eq!(step.delegates.len(), 1);
    assert_eq!(step.delegates[0].until.format("%Y-%m-%d").to_string(), day(10));
    assert_eq!(app.slack.dms_to("U0GINA").len(), 1, "not asked twice");
    assert_eq!(app.click("U0GINA", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "APPROVED");
}

crate::both!(replacing_a_delegation_withdraws_the_previous_delegate);
