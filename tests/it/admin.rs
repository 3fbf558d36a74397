//! Admin commands and who may run them.

use accessbot::workflow::model::{AssignmentSource, StepState};
use reqwest::StatusCode;

use crate::helpers::*;

async fn pending_and_show_respect_app_admin_scope(b: Backend) {
    let app = spawn_app(b).await;
    let sf = app.request_app("U0REQ", "salesforce", "forecasts").await;
    let gh = app.request_app("U0REQ", "github", "code").await;

    let (_, all) = app.command("U0ROOT", "admin pending").await;
    let all = all.to_string();
    assert!(all.contains(&sf) && all.contains(&gh), "super admin sees everything: {all}");
    assert!(all.contains("step 1 of 3: <@U0ALICE>"), "{all}");

    let (_, scoped) = app.command("U0GHADMIN", "admin pending").await;
    let scoped = scoped.to_string();
    assert!(scoped.contains(&gh) && !scoped.contains(&sf), "app admin sees their apps only: {scoped}");
    let (_, one) = app.command("U0ROOT", "admin pending github").await;
    assert!(one.to_string().contains(&gh) && !one.to_string().contains(&sf));

    assert!(app.say("U0GHADMIN", "admin pending salesforce").await.contains("Not allowed"));
    assert!(app.say("U0EVE", "admin pending").await.contains("Not allowed"));
    assert!(app.say("U0ROOT", "admin pending nosuch").await.contains("not found"));

    let (_, show) = app.command("U0SFADMIN", &format!("admin show {sf}")).await;
    let show = show.to_string();
    assert!(
        show.contains("app.access_request.request")
            && show.contains("forecasts")
            && show.contains("Step 2 (Security Team)"),
        "{show}"
    );
    assert!(app.say("U0GHADMIN", &format!("admin show {sf}")).await.contains("Not allowed"));
    assert!(app.say("U0ROOT", "admin show reqAAAAAAAAAAAAAAAAA").await.contains("not found"));

    let blocked = app.events_of("security.request.blocked").await;
    assert_eq!(blocked.len(), 3);
    assert!(blocked.iter().all(|e| e.outcome.result == accessbot::workflow::model::OutcomeResult::Deny));
}

async fn resend_then_decision_updates_every_message(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "github", "code").await;
    app.drain().await;
    assert!(app.say("U0EVE", &format!("admin resend {id}")).await.contains("Not allowed"));
    let reply = app.say("U0GHADMIN", &format!("admin resend {id}")).await;
    assert!(reply.contains("Resent") && reply.contains("Security Team"), "{reply}");
    app.drain().await;
    let bob = app.slack.dms_to("U0BOB");
    assert_eq!(bob.len(), 2);
    assert!(bob[1].text().contains("Resent"));

    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let updates = app.slack.updates_for("U0BOB");
    let mut ts: Vec<String> = updates.iter().map(|u| u.body["ts"].as_str().unwrap().to_string()).collect();
    ts.sort();
    let mut posted: Vec<String> =
        app.store().messages(&id, 0, "U0BOB").await.unwrap().into_iter().map(|m| m.ts).collect();
    posted.sort();
    assert_eq!(posted.len(), 2);
    assert_eq!(ts, posted, "both the first and the resent message are updated");
    assert_eq!(app.slack.updates_for("U0CAROL").len(), 2);
    let t = types(&app.events(&id).await);
    assert!(t.contains(&"app.access_request.resend".to_string()));
}

async fn admin_cancel_with_reason(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "salesforce", "x").await;
    app.drain().await;
    assert!(app.say("U0GHADMIN", &format!("admin cancel {id} wrong app")).await.contains("Not allowed"));
    let reply = app.say("U0SFADMIN", &format!("admin cancel {id} duplicate of an older ticket")).await;
    assert!(reply.contains("Canceled"), "{reply}");
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "CANCELED");
    assert!(r.steps.iter().all(|s| s.state == StepState::Closed));
    let ev = app.events(&id).await;
    let del = ev.iter().find(|e| e.event_type == "app.access_request.delete").unwrap();
    assert_eq!(del.debug_context.debug_data["reason"], "duplicate of an older ticket");
    assert_eq!(del.debug_context.debug_data["canceledBy"], "ADMIN");
    assert!(app.slack.dms_to("U0REQ").last().unwrap().text().contains("canceled by <@U0SFADMIN>"));
    assert!(app.slack.updates_for("U0ALICE")[0].text().contains("Canceled by <@U0SFADMIN>"));
}

async fn override_assigns_now_and_deletes_remaining_steps(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "salesforce", "urgent").await;
    assert_eq!(app.click("U0ALICE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;

    assert!(app.say("U0EVE", &format!("admin assign {id}")).await.contains("Not allowed"));
    let reply = app.say("U0ROOT", &format!("admin assign {id}")).await;
    assert!(reply.contains("by override"), "{reply}");
    app.drain().await;

    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert_eq!(
        r.steps.iter().map(|s| s.state).collect::<Vec<_>>(),
        [StepState::Approved, StepState::Deleted, StepState::Deleted]
    );
    let a = app.store().assignment("U0REQ", "salesforce").await.unwrap().unwrap();
    assert_eq!(a.source, AssignmentSource::Override);
    let t = types(&app.events(&id).await);
    assert_eq!(
        t.iter().filter(|t| *t == "app.access_request.approver.approve").count(),
        1,
        "override is not an approval"
    );
    assert!(
        t.contains(&"app.access_request.override".to_string())
            && t.contains(&"application.user_membership.add".to_string())
    );
    assert!(!t.contains(&"app.access_request.grant".to_string()));
    assert!(app.slack.updates_for("U0BOB")[0].text().contains("admin override"));
    assert!(app.slack.dms_to("U0DAVE").is_empty(), "deleted steps are never asked");

    // An admin cannot push their own request through.
    let own = app.request_app("U0ROOT", "github", "me").await;
    assert!(app.say("U0ROOT", &format!("admin assign {own}")).await.contains("your own request"));
}

async fn direct_grant_and_revoke(b: Backend) {
    let app = spawn_app(b).await;
    assert!(app.say("U0EVE", "admin grant github <@U0FRANK|frank>").await.contains("Not allowed"));
    assert!(app.say("U0SFADMIN", "admin grant github <@U0FRANK|frank>").await.contains("Not allowed"));
    assert!(app.say("U0GHADMIN", "admin grant github frank").await.contains("mention them"));
    assert!(app.say("U0GHADMIN", "admin grant nosuch <@U0FRANK>").await.contains("not found"));
    assert!(app.say("U0GHADMIN", "admin grant github <@U0GHADMIN>").await.contains("yourself"));

    let reply = app.say("U0GHADMIN", "admin grant github <@U0FRANK|frank>").await;
    assert!(reply.contains("Assigned"), "{reply}");
    let a = app.store().assignment("U0FRANK", "github").await.unwrap().unwrap();
    assert_eq!(a.source, AssignmentSource::Direct);
    assert!(app.say("U0GHADMIN", "admin grant github <@U0FRANK>").await.contains("already has"));

    let reply = app.say("U0ROOT", "admin revoke github <@U0FRANK>").await;
    assert!(reply.contains("Removed"), "{reply}");
    assert!(app.store().assignment("U0FRANK", "github").await.unwrap().is_none());
    assert!(app.say("U0ROOT", "admin revoke github <@U0FRANK>").await.contains("does not have"));
    app.drain().await;

    let dms = app.slack.dms_to("U0FRANK");
    assert_eq!(dms.len(), 2);
    assert!(
        dms[0].text().contains("given access to *GitHub*") && dms[1].text().contains("access to *GitHub* was removed")
    );
    assert_eq!(app.events_of("application.user_membership.add").await.len(), 1);
    assert_eq!(app.events_of("application.user_membership.remove").await.len(), 1);
    assert_eq!(app.events_of("security.request.blocked").await.len(), 3);
}

crate::both!(
    pending_and_show_respect_app_admin_scope,
    resend_then_decision_updates_every_message,
    admin_cancel_with_reason,
    override_assigns_now_and_deletes_remaining_steps,
    direct_grant_and_revoke
);
