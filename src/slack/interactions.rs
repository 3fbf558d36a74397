//! `POST /slack/interactions`: button clicks (`block_actions`) and the
//! comment modal (`view_submission`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::blocks;
use super::deliver::{respond_item, views_open_item};
use super::verify::SignedBody;
use crate::server::AppState;
use crate::workflow::{Actor, Decision};

#[derive(Deserialize)]
struct Form {
    payload: String,
}

/// How long a `trigger_id` is good for, with a margin.
const TRIGGER_TTL_SECS: i64 = 10;

pub async fn handle(State(state): State<AppState>, signed: SignedBody) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<Form>(&signed.body) else {
        return (StatusCode::BAD_REQUEST, "missing payload").into_response();
    };
    let Ok(payload) = serde_json::from_str::<Value>(&form.payload) else {
        return (StatusCode::BAD_REQUEST, "malformed payload").into_response();
    };
    let team = payload["team"]["id"].as_str().or(payload["user"]["team_id"].as_str());
    let user = payload["user"]["id"].as_str();
    if !state.slack.team_allowed(team) {
        super::wrong_workspace(&state, team, user).await;
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some(user) = user else {
        return (StatusCode::BAD_REQUEST, "payload without a user").into_response();
    };
    let actor = match super::actor(&state.workflow, user).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not load the acting user");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    match payload["type"].as_str() {
        Some("block_actions") => {
            block_actions(&state, &actor, &payload).await;
            StatusCode::OK.into_response()
        }
        Some("view_submission") => view_submission(&state, &actor, &payload).await,
        _ => StatusCode::OK.into_response(),
    }
}

/// `reqXXXX:step`
fn parse_target(value: &str) -> Option<(String, usize)> {
    let (id, step) = value.split_once(':')?;
    Some((id.to_string(), step.parse().ok()?))
}

/// Replies privately to the clicker through the interaction's `response_url`.
async fn reply(state: &AppState, payload: &Value, text: &str) {
    let Some(url) = payload["response_url"].as_str() else { return };
    if !state.slack.response_url_ok(url) {
        tracing::warn!("slack: ignoring a response_url outside Slack's hosts");
        return;
    }
    if let Err(e) = state.workflow.enqueue(&[respond_item(url, text)]).await {
        tracing::error!(error = %e, "could not queue an ephemeral reply");
    }
}

async fn block_actions(state: &AppState, actor: &Actor, payload: &Value) {
    let Some(action) = payload["actions"].as_array().and_then(|a| a.first()) else { return };
    let action_id = action["action_id"].as_str().unwrap_or_default();
    let Some((id, step)) = action["value"].as_str().and_then(parse_target) else {
        tracing::debug!(action_id, "slack: click without a request target");
        return;
    };
    let wf = &state.workflow;
    let result = match action_id {
        "approve" | "deny" => {
            let d = if action_id == "approve" { Decision::Approve } else { Decision::Deny };
            match wf.decide(actor, &id, step, d, None).await {
                // The decision updates every message of the step; an ephemeral list needs a word.
                Ok(r) if payload["container"]["is_ephemeral"].as_bool() == Some(true) => {
                    Err(format!("{} `{}`.", if d == Decision::Approve { "Approved" } else { "Denied" }, r.id))
                }
                Ok(_) => Ok(()),
                Err(e) => Err(super::explain(&e)),
            }
        }
        "approve_comment" | "deny_comment" => match wf.check_decider(actor, &id, step).await {
            Ok(r) => {
                let trigger = payload["trigger_id"].as_str().unwrap_or_default();
                let view = blocks::comment_modal(&r.id, step, action_id == "approve_comment", &r.app_name);
                let deadline = wf.now() + chrono::Duration::seconds(TRIGGER_TTL_SECS);
                wf.enqueue(&[views_open_item(trigger, view, deadline)]).await.map_err(|e| super::explain(&e))
            }
            Err(e) => Err(super::explain(&e)),
        },
        _ => Ok(()),
    };
    if let Err(text) = result {
        reply(state, payload, &text).await;
    }
}

async fn view_submission(state: &AppState, actor: &Actor, payload: &Value) -> Response {
    let view = &payload["view"];
    if view["callback_id"].as_str() != Some("decision_comment") {
        return Json(json!({"response_action": "clear"})).into_response();
    }
    let meta = view["private_metadata"].as_str().unwrap_or_default();
    let parsed = meta.rsplit_once(':').and_then(|(target, verb)| Some((parse_target(target)?, verb)));
    let Some(((id, step), verb)) = parsed else {
        return (StatusCode::BAD_REQUEST, "malformed private_metadata").into_response();
    };
    let decision = match verb {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        _ => return (StatusCode::BAD_REQUEST, "malformed private_metadata").into_response(),
    };
    let comment = view["state"]["values"]["comment"]["comment"]["value"].as_str().map(str::to_string);
    match state.workflow.decide(actor, &id, step, decision, comment).await {
        Ok(_) => Json(json!({"response_action": "clear"})).into_response(),
        Err(e) => {
            Json(json!({"response_action": "errors", "errors": {"comment": blocks::clip(&super::explain(&e), 150)}}))
                .into_response()
        }
    }
}
