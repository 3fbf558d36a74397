//! Who may request: `apps.<id>.requesters` hides the app from everyone else
//! (`/access apps`, the app picker) and refuses them on every path.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

const REQUESTERS_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]
allow_request_on_behalf = true

[groups.design]
name = "Design"
members = ["U0DES"]

[apps.figma]
name = "Figma"
requesters = ["design", "U0PM"]
steps = [{ user = "U0ALICE" }]

[apps.zoom]
name = "Zoom"
approval = false
"#;

async fn only_the_configured_requesters_see_and_request_the_app(b: Backend) {
    let mut setup = Setup::new(b);
    setup.config = REQUESTERS_CONFIG.to_string();
    let app = spawn_with(setup).await;
    let listed = |user: &'static str| {
        let app = &app;
        async move { app.command(user, "apps").await.1.to_string() }
    };
    assert!(listed("U0DES").await.contains("Figma"));
    assert!(listed("U0PM").await.contains("Figma"));
    let outsider = listed("U0OUT").await;
    assert!(!outsider.contains("Figma") && outsider.contains("Zoom"), "{outsider}");

    let reply = app.say("U0OUT", "request figma please").await;
    assert!(reply.contains("Not allowed") && reply.contains("Figma is not open to U0OUT"), "{reply}");
    assert!(app.open_request("U0OUT", "figma").await.is_none());
    let blocked = app.events_of("security.request.blocked").await;
    assert!(blocked.iter().any(|e| e.actor.id == "U0OUT"), "refusal logged");
    // Not for someone outside through someone inside either.
    assert!(app.say("U0DES", "request figma for <@U0OUT> pairing").await.contains("Not allowed"));
    // The API refuses with 403.
    let res = reqwest::Client::new()
        .post(format!("{}/governance/api/v2/requests", app.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "figma"},
                      "requestedFor": {"type": "SLACK_USER", "externalId": "U0OUT"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The API's catalog for a user lists it only for requesters.
    let entries = |user: &'static str| {
        let base = app.base.clone();
        async move {
            let url = format!("{base}/governance/api/v2/catalogs/default/user/{user}/entries");
            reqwest::Client::new().get(url).bearer_auth(API_TOKEN).send().await.unwrap().text().await.unwrap()
        }
    };
    assert!(entries("U0DES").await.contains("\"figma\""));
    let outside = entries("U0OUT").await;
    assert!(!outside.contains("\"figma\"") && outside.contains("\"zoom\""), "{outside}");
    // The picker offers it only to requesters.
    app.say("U0OUT", "request").await;
    app.drain().await;
    let picker = app.slack.ok_calls("views.open").last().unwrap().body.to_string();
    assert!(!picker.contains("figma") && picker.contains("zoom"), "{picker}");
    // A requester goes through.
    assert!(app.say("U0PM", "request figma roadmap").await.contains("submitted"));
    assert!(app.say("U0DES", "request figma mocks").await.contains("submitted"));
}

crate::both!(only_the_configured_requesters_see_and_request_the_app);
