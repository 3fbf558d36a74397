//! `POST /slack/events`: the Events API handshake and callbacks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::verify::SignedBody;
use crate::server::AppState;

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
            // A retried delivery was already handled (or is being handled): no second effect.
            if signed.retry_num.is_some_and(|n| n > 0) {
                return StatusCode::OK.into_response();
            }
            tracing::debug!(event = body["event"]["type"].as_str().unwrap_or("-"), "slack: event received");
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}
