//! Signatures, workspaces, authorization refusals and malformed input.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

const FORM: &str = "application/x-www-form-urlencoded";

async fn assert_nothing_happened(app: &TestApp) {
    app.drain().await;
    assert!(app.open_request("U0EVE", "zoom").await.is_none());
    assert!(app.store().assignment("U0EVE", "zoom").await.unwrap().is_none());
    let sent: Vec<_> = app.slack.calls().into_iter().filter(|c| c.method != "users.lookupByEmail").collect();
    assert!(sent.is_empty(), "nothing may be sent, got {sent:?}");
}

async fn forged_stale_and_missing_signatures_are_rejected_and_logged(b: Backend) {
    let app = spawn_app(b).await;
    app.slack.clear();
    let body = ChatClient::command_body("U0EVE", "request zoom", TEAM);
    let now = chrono::Utc::now().timestamp();

    // Forged: signed with another secret.
    let ts = now.to_string();
    let forged = accessbot::slack::verify::sign("not-the-secret", &ts, body.as_bytes());
    let res = app
        .post_raw(
            "/slack/commands",
            &body,
            FORM,
            &[("x-slack-request-timestamp", ts.clone()), ("x-slack-signature", forged)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Stale: correctly signed, but 6 minutes old.
    let old = (now - 360).to_string();
    let sig = accessbot::slack::verify::sign(SECRET, &old, body.as_bytes());
    let res = app
        .post_raw("/slack/commands", &body, FORM, &[("x-slack-request-timestamp", old), ("x-slack-signature", sig)])
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Signed for a different body (tampered in transit).
    let sig = accessbot::slack::verify::sign(SECRET, &ts, b"other body");
    let res = app
        .post_raw("/slack/commands", &body, FORM, &[("x-slack-request-timestamp", ts), ("x-slack-signature", sig)])
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Missing headers, on every Slack endpoint.
    for path in ["/slack/commands", "/slack/interactions", "/slack/events"] {
        let res = app.post_raw(path, &body, FORM, &[]).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    assert_nothing_happened(&app).await;
    let blocked = app.events_of("security.request.blocked").await;
    assert_eq!(blocked.len(), 6);
    let reasons: Vec<String> = blocked.iter().map(|e| e.outcome.reason.clone().unwrap()).collect();
    assert!(reasons.contains(&"signature mismatch".to_string()));
    assert!(reasons.contains(&"timestamp more than 5 minutes from now".to_string()));
    assert!(reasons.iter().any(|r| r.starts_with("missing X-Slack-Signature")));
    assert_eq!(app.running.as_ref().unwrap().metrics.signature_rejections(), 6);
}

async fn other_workspaces_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    app.slack.clear();
    let body = ChatClient::command_body("U0EVE", "request zoom", "T0OTHER");
    let res = app.signed("/slack/commands", &body, FORM).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let click = json!({"type": "block_actions", "team": {"id": "T0OTHER"}, "user": {"id": "U0EVE"},
                       "actions": [{"action_id": "approve", "value": "reqAAAAAAAAAAAAAAAAA:0"}]});
    let res = app.interaction(click).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let event =
        json!({"type": "event_callback", "team_id": "T0OTHER", "event": {"type": "app_home_opened", "user": "U0EVE"}});
    let res = app.signed("/slack/events", &event.to_string(), "application/json").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    assert_nothing_happened(&app).await;
    let blocked = app.events_of("security.request.blocked").await;
    assert_eq!(blocked.len(), 3);
    assert!(blocked[0].outcome.reason.as_deref().unwrap().contains("T0OTHER"));
}

async fn events_handshake_and_ssl_check(b: Backend) {
    let app = spawn_app(b).await;
    let res = app.signed("/slack/events", r#"{"type":"url_verification","token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#, "application/json").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["challenge"], "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");

    let res = app.signed("/slack/commands", "ssl_check=1&token=abc", FORM).await;
    assert_eq!(res.status(), StatusCode::OK);

    // A retried event is acknowledged without a second effect.
    let ev = json!({"type": "event_callback", "team_id": TEAM, "event": {"type": "app_home_opened", "user": "U0EVE"}})
        .to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = accessbot::slack::verify::sign(SECRET, &ts, ev.as_bytes());
    let res = app
        .post_raw(
            "/slack/events",
            &ev,
            "application/json",
            &[("x-slack-request-timestamp", ts), ("x-slack-signature", sig), ("x-slack-retry-num", "1".into())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn malformed_and_oversized_input(b: Backend) {
    let app = spawn_app(b).await;
    let res = app.signed("/slack/interactions", "payload=%7Bnot-json", FORM).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app.signed("/slack/interactions", "nopayload=1", FORM).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app.signed("/slack/events", "{{{", "application/json").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app.signed("/slack/commands", "team_id=T0TEAM&text=apps", FORM).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "no user_id");

    // A click whose value is not a request target does nothing.
    let click = json!({"type": "block_actions", "team": {"id": TEAM}, "user": {"id": "U0ALICE"},
                       "actions": [{"action_id": "approve", "value": "garbage"}]});
    assert_eq!(app.interaction(click).await.status(), StatusCode::OK);

    let huge = format!("team_id=T0TEAM&user_id=U0EVE&text={}", "a".repeat(300 * 1024));
    let res = app.signed("/slack/commands", &huge, FORM).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn non_approvers_and_requesters_cannot_decide(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "salesforce", "Q3 forecasts").await;
    app.drain().await;
    app.slack.clear();

    // Bob is an approver of step 2, not of step 1; Eve of nothing; the requester of nothing.
    for user in ["U0BOB", "U0EVE", "U0REQ"] {
        assert_eq!(app.click(user, "approve", &id, 0).await, StatusCode::OK);
    }
    // The requester may not open the comment form either.
    assert_eq!(app.click("U0REQ", "approve_comment", &id, 0).await, StatusCode::OK);
    app.drain().await;

    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "PENDING");
    assert_eq!(r.current_step, Some(0));
    assert_eq!(r.version, 1, "nothing was written to the request");
    let t = types(&app.events(&id).await);
    assert_eq!(t.iter().filter(|t| *t == "security.request.blocked").count(), 4);
    assert!(!t.iter().any(|t| t.starts_with("app.access_request.approver")));

    let replies = app.slack.ok_calls("response_url");
    assert_eq!(replies.len(), 4, "each refusal is answered privately");
    for r in &replies {
        assert_eq!(r.body["response_type"], "ephemeral");
        assert!(r.body["text"].as_str().unwrap().contains("Not allowed"), "{}", r.body);
    }
    assert!(replies.iter().any(|r| r.body["text"].as_str().unwrap().contains("your own request")));
    assert!(app.slack.ok_calls("views.open").is_empty());
    assert!(app.slack.ok_calls("chat.update").is_empty());
}

async fn requester_is_never_asked_and_lone_approver_steps_go_to_admins(b: Backend) {
    let app = spawn_app(b).await;
    // Alice requests Salesforce: step 1 is Alice alone, so it goes to the app's admin.
    let id = app.request_app("U0ALICE", "salesforce", "need it").await;
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.steps[0].approvers.iter().map(|p| p.to_string()).collect::<Vec<_>>(), vec!["U0SFADMIN"]);
    assert!(app.slack.dms_to("U0ALICE").iter().all(|c| !c.text().contains("\"approve\"")), "Alice gets no buttons");
    assert_eq!(app.slack.dms_to("U0SFADMIN").len(), 1);
    let created = &app.events(&id).await[0];
    assert_eq!(created.debug_context.debug_data["steps"][0]["routedTo"], "APP_ADMINS");

    // Bob requests GitHub: the security group minus Bob is Carol.
    let id = app.request_app("U0BOB", "github", "code").await;
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.steps[0].approvers.iter().map(|p| p.to_string()).collect::<Vec<_>>(), vec!["carol@example.com"]);
    assert_eq!(app.slack.dms_to("U0CAROL").len(), 1, "Carol (configured by email) is asked in her DM");
    assert!(app.slack.dms_to("U0BOB").iter().all(|c| !c.text().contains("\"approve\"")));
}

crate::both!(
    forged_stale_and_missing_signatures_are_rejected_and_logged,
    other_workspaces_are_refused,
    events_handshake_and_ssl_check,
    malformed_and_oversized_input,
    non_approvers_and_requesters_cannot_decide,
    requester_is_never_asked_and_lone_approver_steps_go_to_admins
);
