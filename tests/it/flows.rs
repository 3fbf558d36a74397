//! End-to-end request flows, as users click through them.

use reqwest::StatusCode;

use crate::helpers::*;

async fn app_without_approval_is_granted_at_once(b: Backend) {
    let app = spawn_app(b).await;
    let reply = app.say("U0EVE", "request zoom").await;
    assert!(reply.contains("you now have *Zoom*"), "{reply}");
    let a = app.store().assignment("U0EVE", "zoom").await.unwrap().expect("assigned");
    assert_eq!(a.source, accessbot::workflow::model::AssignmentSource::Workflow);
    let id = a.request_id.unwrap();
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert_eq!(r.grant_status.unwrap().as_str(), "GRANTED");
    assert_eq!(
        types(&app.events(&id).await),
        ["app.access_request.request", "application.user_membership.add", "app.access_request.grant"]
    );
    app.drain().await;
    let dms = app.slack.dms_to("U0EVE");
    assert_eq!(dms.len(), 1);
    assert!(dms[0].body["text"].as_str().unwrap().contains("approved and access is granted"));
}

async fn user_then_group_then_user_steps(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "salesforce", "need it for Q3 forecasts").await;
    app.drain().await;

    // Step 1: only Alice is asked; the requester is told it was submitted.
    let alice = app.slack.dms_to("U0ALICE");
    assert_eq!(alice.len(), 1);
    let text = alice[0].text();
    for want in [
        "Salesforce",
        "U0REQ",
        "need it for Q3 forecasts",
        "1 of 3",
        &id,
        "\"approve\"",
        "\"deny\"",
        "approve_comment",
        "deny_comment",
    ] {
        assert!(text.contains(want), "approver DM lacks {want}: {text}");
    }
    assert!(alice[0].body["text"].as_str().is_some_and(|t| !t.is_empty()), "fallback text");
    assert!(
        app.slack.dms_to("U0BOB").is_empty()
            && app.slack.dms_to("U0CAROL").is_empty()
            && app.slack.dms_to("U0DAVE").is_empty()
    );
    assert_eq!(app.slack.dms_to("U0REQ").len(), 1);

    // Alice approves: her message loses its buttons; the security group is asked.
    assert_eq!(app.click("U0ALICE", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let upd = app.slack.updates_for("U0ALICE");
    assert_eq!(upd.len(), 1);
    assert_eq!(upd[0].body["ts"], alice[0].body.get("ts").cloned().unwrap_or(upd[0].body["ts"].clone()));
    assert!(!upd[0].text().contains("\"actions\"") && upd[0].text().contains("Approved by <@U0ALICE>"));
    assert_eq!(app.slack.dms_to("U0BOB").len(), 1);
    assert_eq!(app.slack.dms_to("U0CAROL").len(), 1);
    assert!(app.slack.dms_to("U0BOB")[0].text().contains("2 of 3"));
    assert!(app.slack.dms_to("U0DAVE").is_empty());
    assert!(app.slack.dms_to("U0REQ")[1].text().contains("Step 1 of 3"));

    // Carol (configured by email) decides for the group; Bob's message names her, no buttons.
    assert_eq!(app.click("U0CAROL", "approve", &id, 1).await, StatusCode::OK);
    app.drain().await;
    let bob = app.slack.updates_for("U0BOB");
    assert_eq!(bob.len(), 1);
    assert!(
        bob[0].text().contains("Approved by <@U0CAROL>") && !bob[0].text().contains("\"actions\""),
        "{}",
        bob[0].text()
    );
    assert_eq!(app.slack.updates_for("U0CAROL").len(), 1);
    // Bob clicking late changes nothing.
    assert_eq!(app.click("U0BOB", "deny", &id, 1).await, StatusCode::OK);
    assert_eq!(app.slack.dms_to("U0DAVE").len(), 1);

    // Dave approves the last step: assigned, requester told.
    assert_eq!(app.click("U0DAVE", "approve", &id, 2).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert!(app.store().assignment("U0REQ", "salesforce").await.unwrap().is_some());
    let last = app.slack.dms_to("U0REQ");
    assert!(last.last().unwrap().text().contains("approved and access is granted"));

    let t = types(&app.events(&id).await);
    assert_eq!(
        t,
        [
            "app.access_request.request",
            "app.access_request.approver.approve",
            "app.access_request.approver.approve",
            "app.access_request.approver.approve",
            "application.user_membership.add",
            "app.access_request.grant",
        ]
    );
    let ev = app.events(&id).await;
    let group = &ev[2].debug_context.debug_data;
    assert_eq!(group["approverType"], "GROUP");
    assert_eq!(group["groupId"], "security");
    assert_eq!(group["groupName"], "Security Team");
    assert_eq!(group["source"], "SLACK");
    assert_eq!(ev[1].debug_context.debug_data["approverType"], "USER");
    assert_eq!(ev[2].actor.id, "U0CAROL");
    let late = app.slack.ok_calls("response_url");
    assert!(late.iter().any(|c| c.body["text"].as_str().unwrap().contains("already decided by <@U0CAROL>")));
}

async fn deny_with_comment_through_the_modal(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "salesforce", "please").await;
    app.drain().await;

    assert_eq!(app.click("U0ALICE", "deny_comment", &id, 0).await, StatusCode::OK);
    app.drain().await;
    let opened = app.slack.ok_calls("views.open");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].body["trigger_id"], "trigger-U0ALICE-deny_comment");
    let meta = opened[0].body["view"]["private_metadata"].as_str().unwrap().to_string();
    assert_eq!(meta, format!("{id}:0:deny"));
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING", "opening the form decides nothing");

    let secret_comment = "Vendor contract under legal review";
    let (status, body) = app.submit_comment("U0ALICE", &meta, secret_comment).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response_action"], "clear");
    app.drain().await;

    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "DENIED");
    assert_eq!(r.steps[0].comment.as_deref(), Some(secret_comment));
    let ev = app.events(&id).await;
    assert_eq!(
        types(&ev),
        ["app.access_request.request", "app.access_request.approver.deny", "app.access_request.deny"]
    );
    assert_eq!(ev[1].debug_context.debug_data["comment"], secret_comment);
    // Later steps are never notified; the comment never leaves the system log.
    assert!(app.slack.dms_to("U0BOB").is_empty() && app.slack.dms_to("U0CAROL").is_empty());
    for c in app.slack.calls() {
        assert!(!c.text().contains(secret_comment), "comment leaked in {}: {}", c.method, c.text());
    }
    let req_dms = app.slack.dms_to("U0REQ");
    assert!(req_dms.last().unwrap().text().contains("was denied by <@U0ALICE>"));
    assert!(app.slack.updates_for("U0ALICE")[0].text().contains("Denied by <@U0ALICE>"));

    // Submitting the form again (double submit) changes nothing.
    let (_, body) = app.submit_comment("U0ALICE", &meta, "again").await;
    assert_eq!(body["response_action"], "errors");
    assert_eq!(app.events(&id).await.len(), 3);
}

async fn concurrent_clicks_from_two_group_members_make_one_decision(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "github", "repos").await;
    app.drain().await;
    app.slack.clear();

    let mut clicks = Vec::new();
    for i in 0..20 {
        let user = if i % 2 == 0 { "U0BOB" } else { "U0CAROL" };
        let app = &app;
        let id = id.clone();
        clicks.push(async move { app.click(user, "approve", &id, 0).await });
    }
    let statuses = futures::future::join_all(clicks).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    app.drain().await;

    let approvals = app.events_of("app.access_request.approver.approve").await;
    assert_eq!(approvals.iter().filter(|e| e.request_id.as_deref() == Some(id.as_str())).count(), 1);
    assert_eq!(app.events_of("app.access_request.grant").await.len(), 1);
    assert_eq!(app.events_of("application.user_membership.add").await.len(), 1);
    let outcome: Vec<_> =
        app.slack.dms_to("U0REQ").into_iter().filter(|c| c.text().contains("access is granted")).collect();
    assert_eq!(outcome.len(), 1, "one outcome message");
    assert_eq!(app.request(&id).await.status.as_str(), "APPROVED");
    // Both members' messages were updated once, naming the same decider.
    let (b, c) = (app.slack.updates_for("U0BOB"), app.slack.updates_for("U0CAROL"));
    assert_eq!((b.len(), c.len()), (1, 1));
    let decider = app.request(&id).await.steps[0].decided_by.clone().unwrap();
    assert!(
        b[0].text().contains(&format!("Approved by <@{decider}>"))
            && c[0].text().contains(&format!("Approved by <@{decider}>"))
    );
}

async fn a_second_request_returns_the_open_one(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "github", "first").await;
    let reply = app.say("U0REQ", "request github second").await;
    assert!(reply.contains("already have an open request") && reply.contains(&id), "{reply}");
    app.drain().await;
    assert_eq!(app.events_of("app.access_request.request").await.len(), 1);
    assert_eq!(app.slack.dms_to("U0BOB").len(), 1, "approvers asked once");
}

async fn requester_cancels_and_lists_their_requests(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "github", "x").await;
    app.drain().await;

    let mine = app.say("U0REQ", "mine").await;
    assert!(mine.contains("Your requests"));
    let (_, body) = app.command("U0REQ", "mine").await;
    assert!(body.to_string().contains(&id) && body.to_string().contains("Security Team"));

    // Someone else cannot cancel it.
    let reply = app.say("U0EVE", &format!("cancel {id}")).await;
    assert!(reply.contains("Not allowed"), "{reply}");
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");

    let reply = app.say("U0REQ", &format!("cancel {id}")).await;
    assert!(reply.contains("Canceled"), "{reply}");
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "CANCELED");
    let bob = app.slack.updates_for("U0BOB");
    assert_eq!(bob.len(), 1);
    assert!(bob[0].text().contains("Canceled by <@U0REQ>"));
    let t = types(&app.events(&id).await);
    assert!(
        t.contains(&"app.access_request.delete".to_string()) && t.contains(&"security.request.blocked".to_string())
    );

    // Canceling twice is a no-op with a clear answer.
    let reply = app.say("U0REQ", &format!("cancel {id}")).await;
    assert!(reply.contains("already CANCELED"), "{reply}");
}

async fn help_apps_tasks_and_unknown_commands(b: Backend) {
    let app = spawn_app(b).await;
    for text in ["", "help"] {
        assert!(app.say("U0EVE", text).await.contains("/access request <app>"));
    }
    let (_, apps) = app.command("U0EVE", "apps").await;
    let s = apps.to_string();
    assert!(s.contains("salesforce") && s.contains("no approval needed") && !s.contains("payroll"), "{s}");
    let unknown = app.say("U0EVE", "frobnicate").await;
    assert!(unknown.contains("Unknown command `frobnicate`") && unknown.contains("/access apps"));
    assert!(app.say("U0EVE", "request").await.contains("Opening the form"), "no app: the app picker opens");
    assert!(app.say("U0EVE", "request nosuchapp").await.contains("There is no app `nosuchapp`"));
    assert!(app.say("U0EVE", "request payroll").await.contains("not requestable"));
    assert!(
        app.say("U0EVE", "request salesforce").await.contains("Opening the form for *Salesforce*"),
        "missing justification: its form opens"
    );
    assert!(app.say("U0EVE", "cancel nope").await.contains("is not a request id"));

    let id = app.request_app("U0REQ", "github", "x").await;
    let (_, tasks) = app.command("U0BOB", "tasks").await;
    assert!(tasks.to_string().contains(&id), "{tasks}");
    // Carol is an approver by email: her queue finds it through the identity cache.
    let (_, tasks) = app.command("U0CAROL", "tasks").await;
    assert!(tasks.to_string().contains(&id), "{tasks}");
    assert!(app.say("U0EVE", "tasks").await.contains("Nothing is waiting"));
    assert!(app.say("U0REQ", "tasks").await.contains("Nothing is waiting"));
}

crate::both!(
    app_without_approval_is_granted_at_once,
    user_then_group_then_user_steps,
    deny_with_comment_through_the_modal,
    concurrent_clicks_from_two_group_members_make_one_decision,
    a_second_request_returns_the_open_one,
    requester_cancels_and_lists_their_requests,
    help_apps_tasks_and_unknown_commands
);
