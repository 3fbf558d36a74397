//! `POST /slack/events`: the Events API handshake and callbacks
//! (`app_home_opened`: remember the user uses the App Home, publish it).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::verify::SignedBody;
use crate::outbox::notice_item;
use crate::state::AppState;
use crate::workflow::model::Notice;
use crate::workflow::{Person, WorkflowError};

pub async fn handle(State(state): State<AppState>, signed: SignedBody) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&signed.body) else {
        return (StatusCode::BAD_REQUEST, "malformed event payload").into_response();
    };
    match body["type"].as_str() {
        Some("url_verification") => match body["challenge"].as_str() {
            Some(c) => Json(json!({ "challenge": c })).into_response(),
            None => (StatusCode::BAD_REQUEST, "url_verification without a challenge").into_response(),
        },
        Some("event_callback") => {
            let team = body["team_id"].as_str();
            if !state.slack.team_allowed(team) {
                super::wrong_workspace(&state, team, body["event"]["user"].as_str()).await;
                return StatusCode::FORBIDDEN.into_response();
            }
            let event = &body["event"];
            tracing::debug!(event = event["type"].as_str().unwrap_or("-"), "slack: event received");
            // Publishing the App Home again is harmless, so a retried delivery is handled too
            // (Slack retries when the first attempt failed or was slow).
            if event["type"].as_str() == Some("app_home_opened") && event["tab"].as_str() == Some("home") {
                if let Some(user) = event["user"].as_str().filter(|u| !u.is_empty()) {
                    if let Err(e) = home_opened(&state, user).await {
                        tracing::error!(error = %e, "could not handle app_home_opened");
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                }
                return StatusCode::OK.into_response();
            }
            // A retried delivery of anything else was already handled (or is being handled): no second effect.
            if signed.retry_num.is_some_and(|n| n > 0) {
                return StatusCode::OK.into_response();
            }
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
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
