//! The requester picks how long: `apps.<id>.durations`, offered in the form and
//! taken from `/access request <app> 8h …`; never above `max_duration`; access
//! runs from the grant.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const DURATIONS_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]

[apps.aws]
name = "AWS"
max_duration = "7d"
durations = ["1h", "8h", "1d", "7d"]
steps = [{ user = "U0ALICE" }]
"#;

fn hours_granted(a: &accessbot::workflow::model::Assignment) -> i64 {
    (a.expires.expect("time-bound") - a.granted).num_minutes().div_euclid(60)
}

async fn get_request(app: &TestApp, id: &str) -> Value {
    let url = format!("{}/governance/api/v2/requests/{id}", app.base);
    reqwest::Client::new().get(url).bearer_auth(API_TOKEN).send().await.unwrap().json().await.unwrap()
}

async fn the_requester_chooses_how_long_access_lasts(b: Backend) {
    let mut setup = Setup::new(b);
    setup.config = DURATIONS_CONFIG.to_string();
    let app = spawn_with(setup).await;
    // The word after the app chooses the duration; the rest is the justification.
    let id = app.request_app("U0EVE", "aws", "8h deploy fix").await;
    let r = app.request(&id).await;
    assert_eq!(r.justification, "deploy fix");
    assert!(r.field_values.iter().any(|f| f.id == "duration" && f.value == "8h"), "{:?}", r.field_values);
    app.drain().await;
    assert!(app.slack.dms_to("U0ALICE")[0].text().contains("Duration"), "approvers see the choice");
    assert_eq!(app.click("U0ALICE", "approve", &id, 0).await, StatusCode::OK);
    let a = app.store().assignment("U0EVE", "aws").await.unwrap().expect("granted");
    assert_eq!(hours_granted(&a), 8);
    assert_eq!(get_request(&app, &id).await["accessDuration"], "PT8H");

    // A duration the app does not offer is refused, on the command and the API.
    let reply = app.say("U0BOB", "request aws 3h just a bit").await;
    assert!(reply.contains("Duration must be one of: 1h, 8h, 1d, 7d"), "{reply}");
    let res = reqwest::Client::new()
        .post(format!("{}/governance/api/v2/requests", app.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "aws"},
                      "requestedFor": {"type": "SLACK_USER", "externalId": "U0BOB"},
                      "requesterFieldValues": [{"id": "duration", "value": "30d"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Without a choice, access lasts max_duration.
    let id = app.request_app("U0CAROL", "aws", "no duration given").await;
    assert_eq!(app.click("U0ALICE", "approve", &id, 0).await, StatusCode::OK);
    let a = app.store().assignment("U0CAROL", "aws").await.unwrap().expect("granted");
    assert_eq!(hours_granted(&a), 7 * 24);

    // The picker's form offers the choice.
    app.say("U0DAN", "request").await;
    app.drain().await;
    let picker = app.slack.ok_calls("views.open").last().unwrap().body["view"].clone();
    let values = json!({"app": {"value": {"type": "static_select", "selected_option": {"value": "aws"}}},
                        "justification": {"value": {"type": "plain_text_input", "value": "picked"}}});
    let mut v = picker.clone();
    v["state"] = json!({ "values": values });
    let payload = json!({"type": "view_submission", "team": {"id": TEAM}, "user": {"id": "U0DAN", "team_id": TEAM},
                         "trigger_id": "9.9.pick", "view": v});
    let r: Value = app.interaction(payload).await.json().await.unwrap();
    assert_eq!(r["response_action"], "update", "{r}");
    assert!(r["view"]["blocks"].as_array().unwrap().iter().any(|b| b["block_id"] == "duration"), "{r}");
}

crate::both!(the_requester_chooses_how_long_access_lasts);
