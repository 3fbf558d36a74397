//! Give back: "I'm done" on the grant DM and `/access done <app>` remove the
//! user's own access at once, logged with reason RELINQUISHED.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

async fn click_done(app: &TestApp, user: &str, app_id: &str) -> StatusCode {
    let payload = json!({
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user, "team_id": TEAM},
        "trigger_id": format!("trigger-{user}-done"),
        "response_url": format!("{}/respond/{user}-done", app.slack_base),
        "container": {"type": "message", "channel_id": format!("D{user}"), "is_ephemeral": false},
        "actions": [{"action_id": "give_back", "block_id": format!("give_back:{app_id}"), "type": "button",
                      "value": app_id, "action_ts": "1700000000.1"}]
    });
    app.interaction(payload).await.status()
}

fn reasons(events: &[accessbot::workflow::model::LogEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.debug_context.debug_data.get("reason").and_then(|r| r.as_str()).map(str::to_string))
        .collect()
}

async fn access_is_given_back_from_the_grant_dm_or_the_command(b: Backend) {
    let app = spawn_app(b).await;
    assert!(app.say("U0EVE", "request zoom").await.contains("you now have"));
    app.drain().await;
    let granted = app.slack.dms_to("U0EVE");
    let dm = granted.last().expect("grant DM").body.to_string();
    assert!(dm.contains("I'm done") && dm.contains("\"give_back\""), "{dm}");

    assert_eq!(click_done(&app, "U0EVE", "zoom").await, StatusCode::OK);
    app.drain().await;
    assert!(app.store().assignment("U0EVE", "zoom").await.unwrap().is_none());
    let removed = app.events_of("application.user_membership.remove").await;
    assert_eq!(reasons(&removed), ["RELINQUISHED"]);
    assert_eq!(removed[0].actor.id, "U0EVE");
    assert!(app.slack.dms_to("U0EVE").iter().any(|c| c.text().contains("You gave back your access")));

    // Nothing left to give back; then the command, after asking again.
    assert!(app.say("U0EVE", "done zoom").await.contains("does not have"));
    assert!(app.say("U0EVE", "request zoom").await.contains("you now have"));
    assert!(app.say("U0EVE", "done zoom").await.contains("your access to *Zoom* is removed"));
    assert!(app.store().assignment("U0EVE", "zoom").await.unwrap().is_none());
    assert_eq!(reasons(&app.events_of("application.user_membership.remove").await), ["RELINQUISHED", "RELINQUISHED"]);
    assert!(app.say("U0EVE", "done").await.contains("Usage"));
}

crate::both!(access_is_given_back_from_the_grant_dm_or_the_command);
