//! `POST /slack/events`: the Events API handshake and callbacks
//! (`app_home_opened`: remember the user uses the App Home, publish it;
//! `subteam_members_changed` / `subteam_updated`: read that user group again).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::verify::SignedBody;
use super::Answer;
use crate::outbox::notice_item;
use crate::state::AppState;
use crate::workflow::model::Notice;
use crate::workflow::{Person, WorkflowError};

pub async fn handle(State(state): State<AppState>, signed: SignedBody) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&signed.body) else {
        return (StatusCode::BAD_REQUEST, "malformed event payload").into_response();
    };
    answer(&state, &body, signed.retry_num).await.into_response()
}

/// Handles an Events API body from either transport; `retry_num` is Slack's retry count, if any.
pub async fn answer(state: &AppState, body: &Value, retry_num: Option<u32>) -> Answer {
    match body["type"].as_str() {
        Some("url_verification") => match body["challenge"].as_str() {
            Some(c) => Answer::Json(json!({ "challenge": c })),
            None => Answer::Refused(StatusCode::BAD_REQUEST, "url_verification without a challenge"),
        },
        Some("event_callback") => {
            let team = body["team_id"].as_str();
            if !state.slack.team_allowed(team) {
                super::wrong_workspace(state, team, body["event"]["user"].as_str()).await;
                return Answer::Refused(StatusCode::FORBIDDEN, "");
            }
            let event = &body["event"];
            tracing::debug!(event = event["type"].as_str().unwrap_or("-"), "slack: event received");
            // Publishing the App Home again is harmless, so a retried delivery is handled too
            // (Slack retries when the first attempt failed or was slow).
            if event["type"].as_str() == Some("app_home_opened") && event["tab"].as_str() == Some("home") {
                if let Some(user) = event["user"].as_str().filter(|u| !u.is_empty()) {
                    if let Err(e) = home_opened(state, user).await {
                        tracing::error!(error = %e, "could not handle app_home_opened");
                        return Answer::Refused(StatusCode::INTERNAL_SERVER_ERROR, "");
                    }
                }
                return Answer::Done;
            }
            // Reading a user group again is harmless, so a retried delivery is handled too.
            if let Some(usergroup) = subteam(event) {
                if !state.workflow.usergroup_changed(usergroup) {
                    tracing::debug!(usergroup, "slack: a user group no group of the config uses changed");
                }
                return Answer::Done;
            }
            // A retried delivery of anything else was already handled (or is being handled): no second effect.
            if retry_num.is_some_and(|n| n > 0) {
                return Answer::Done;
            }
            Answer::Done
        }
        _ => Answer::Done,
    }
}

/// The user group a `subteam_members_changed` or `subteam_updated` event is about.
fn subteam(event: &Value) -> Option<&str> {
    match event["type"].as_str()? {
        "subteam_members_changed" => event["subteam_id"].as_str(),
        "subteam_updated" => event["subteam"]["id"].as_str(),
        _ => None,
    }
}

/// The user opened the App Home: keep it up to date from now on, and publish it.
async fn home_opened(state: &AppState, user: &str) -> Result<(), WorkflowError> {
    let wf = &state.workflow;
    // Known from now on (their email matches approvers configured by email).
    wf.party(user).await?;
    wf.store().mark_home_opened(user).await?;
    let notice = Notice::HomeChanged { users: vec![Person::Slack(user.to_string())] };
    wf.enqueue(&[notice_item(&notice)?]).await
}
