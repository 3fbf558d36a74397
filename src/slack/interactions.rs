//! `POST /slack/interactions`: button clicks (`block_actions`, in DMs and the
//! App Home) and modal submissions (`view_submission`: the decision comment,
//! the app picker and the request-field form).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::blocks::{self, esc, who};
use super::deliver::{dm_item, respond_item};
use super::modals::{self, Meta};
use super::verify::SignedBody;
use super::Answer;
use crate::state::AppState;
use crate::workflow::model::Notice;
use crate::workflow::ports::notice_item;
use crate::workflow::{Actor, Decision, Person, RequestInput, WorkflowError};

#[derive(Deserialize)]
struct Form {
    payload: String,
}

pub async fn handle(State(state): State<AppState>, signed: SignedBody) -> Response {
    match payload(&signed.body) {
        Ok(p) => answer(&state, &p).await.into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

/// Handles an interaction payload from either transport (HTTP's form field, Socket Mode's envelope).
pub async fn answer(state: &AppState, payload: &Value) -> Answer {
    let (team, user) = team_and_user(payload);
    if !state.slack.team_allowed(team) {
        super::wrong_workspace(state, team, user).await;
        return Answer::Refused(StatusCode::FORBIDDEN, "");
    }
    let Some(user) = user else {
        return Answer::Refused(StatusCode::BAD_REQUEST, "payload without a user");
    };
    let actor = match super::actor(&state.workflow, user).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "could not load the acting user");
            return Answer::Refused(StatusCode::INTERNAL_SERVER_ERROR, "");
        }
    };
    match payload["type"].as_str() {
        Some("block_actions") => {
            block_actions(state, &actor, payload).await;
            Answer::Done
        }
        Some("view_submission") => view_submission(state, &actor, payload).await,
        _ => Answer::Done,
    }
}

/// The interaction payload of a form-encoded body (its `payload` field, JSON);
/// `Err` is the reason for a 400.
pub fn payload(body: &[u8]) -> Result<Value, &'static str> {
    let form = serde_urlencoded::from_bytes::<Form>(body).map_err(|_| "missing payload")?;
    serde_json::from_str::<Value>(&form.payload).map_err(|_| "malformed payload")
}

/// The workspace and the user an interaction comes from.
pub fn team_and_user(payload: &Value) -> (Option<&str>, Option<&str>) {
    let team = payload["team"]["id"].as_str().or(payload["user"]["team_id"].as_str());
    (team, payload["user"]["id"].as_str())
}

/// `reqXXXX:step`
pub fn parse_target(value: &str) -> Option<(String, usize)> {
    let (id, step) = value.split_once(':')?;
    Some((id.to_string(), step.parse().ok()?))
}

/// The first action of a `block_actions` payload: its `action_id` and `value` (empty when absent).
pub fn first_action(payload: &Value) -> Option<(&str, &str)> {
    let action = payload["actions"].as_array().and_then(|a| a.first())?;
    Some((action["action_id"].as_str().unwrap_or_default(), action["value"].as_str().unwrap_or_default()))
}

/// The comment modal's `private_metadata`: `reqXXXX:step:approve` or `…:deny`.
pub fn decision_target(meta: &str) -> Option<(String, usize, Decision)> {
    let ((id, step), verb) = meta.rsplit_once(':').and_then(|(target, verb)| Some((parse_target(target)?, verb)))?;
    let decision = match verb {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        _ => return None,
    };
    Some((id, step, decision))
}

/// The comment typed in the comment modal, if any.
pub fn comment_value(view: &Value) -> Option<String> {
    view["state"]["values"]["comment"]["comment"]["value"].as_str().map(str::to_string)
}

/// Whether the click came from the App Home tab (which has no `response_url`).
fn from_home(payload: &Value) -> bool {
    payload["view"]["type"].as_str() == Some("home")
}

/// Replies privately to the clicker through the interaction's `response_url`;
/// a click in the App Home has none, so the reply comes as a DM.
async fn reply(state: &AppState, actor: &Actor, payload: &Value, text: &str) {
    let item = match payload["response_url"].as_str() {
        Some(url) if state.slack.response_url_ok(url) => respond_item(url, text),
        Some(_) => {
            tracing::warn!("slack: ignoring a response_url outside Slack's hosts");
            return;
        }
        None if from_home(payload) => dm_item(&actor.party.id, text),
        None => return,
    };
    if let Err(e) = state.workflow.enqueue(&[item]).await {
        tracing::error!(error = %e, "could not queue an ephemeral reply");
    }
}

/// Republishes the clicker's App Home after a click there, so it never shows stale buttons.
async fn refresh_home(state: &AppState, actor: &Actor) {
    let notice = Notice::HomeChanged { users: vec![Person::Slack(actor.party.id.clone())] };
    let queued = match notice_item(&notice) {
        Ok(item) => state.workflow.enqueue(&[item]).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = queued {
        tracing::error!(error = %e, "could not queue an App Home refresh");
    }
}

async fn block_actions(state: &AppState, actor: &Actor, payload: &Value) {
    let Some((action_id, value)) = first_action(payload) else { return };
    let wf = &state.workflow;
    let trigger = payload["trigger_id"].as_str();
    let result = match action_id {
        "approve" | "deny" | "task_done" => match parse_target(value) {
            Some((id, step)) => {
                let d = if action_id == "deny" { Decision::Deny } else { Decision::Approve };
                match wf.decide(actor, &id, step, d, None).await {
                    // The decision updates every message of the step; an ephemeral list needs a word.
                    Ok(r) if payload["container"]["is_ephemeral"].as_bool() == Some(true) => {
                        let verb = match action_id {
                            "task_done" => "Marked done",
                            "deny" => "Denied",
                            _ => "Approved",
                        };
                        Err(format!("{verb} `{}`.", r.id))
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(super::explain(&e)),
                }
            }
            None => {
                tracing::debug!(action_id, "slack: click without a request target");
                Ok(())
            }
        },
        "approve_comment" | "deny_comment" => match parse_target(value) {
            Some((id, step)) => match wf.check_decider(actor, &id, step).await {
                Ok(r) => {
                    let view = blocks::comment_modal(&r.id, step, action_id == "approve_comment", &r.app_name);
                    modals::open(wf, trigger, view).await.map_err(|e| super::explain(&e))
                }
                Err(e) => Err(super::explain(&e)),
            },
            None => Ok(()),
        },
        "cancel_request" => match wf.cancel(actor, value, None, false).await {
            Ok(r) if !from_home(payload) => Err(format!("Canceled `{}` ({}).", r.id, esc(&r.app_name))),
            Ok(_) => Ok(()),
            Err(e) => Err(super::explain(&e)),
        },
        super::home::OPEN_REQUEST_FORM => modals::open(wf, trigger, modals::app_picker(&wf.catalog(), &actor.party))
            .await
            .map_err(|e| super::explain(&e)),
        blocks::EXTEND => {
            let input = RequestInput::own(actor, value, "Extension asked from the access-ending warning");
            match wf.extend(actor, input).await {
                Ok(s) => Err(super::commands::submitted(&s.request, s.existing, actor)),
                Err(e) => Err(super::explain(&e)),
            }
        }
        blocks::GIVE_BACK => match wf.give_back(actor, value).await {
            Ok(()) => Err(super::commands::given_back(wf, value)),
            Err(e) => Err(super::explain(&e)),
        },
        _ => Ok(()),
    };
    if let Err(text) = result {
        reply(state, actor, payload, &text).await;
    }
    if from_home(payload) && action_id != super::home::OPEN_REQUEST_FORM {
        refresh_home(state, actor).await;
    }
}

async fn view_submission(state: &AppState, actor: &Actor, payload: &Value) -> Answer {
    let view = &payload["view"];
    match view["callback_id"].as_str() {
        Some("decision_comment") => decision_comment(state, actor, view).await,
        Some(modals::REQUEST_FORM) => Answer::Json(request_form(state, actor, view).await),
        Some(modals::REQUEST_PICK) => Answer::Json(request_pick(state, actor, view).await),
        _ => Answer::Json(json!({"response_action": "clear"})),
    }
}

async fn decision_comment(state: &AppState, actor: &Actor, view: &Value) -> Answer {
    let meta = view["private_metadata"].as_str().unwrap_or_default();
    let Some((id, step, decision)) = decision_target(meta) else {
        return Answer::Refused(StatusCode::BAD_REQUEST, "malformed private_metadata");
    };
    let comment = comment_value(view);
    match state.workflow.decide(actor, &id, step, decision, comment).await {
        Ok(_) => Answer::Json(json!({"response_action": "clear"})),
        Err(e) => Answer::Json(
            json!({"response_action": "errors", "errors": {"comment": blocks::clip(&super::explain(&e), 150)}}),
        ),
    }
}

/// An error shown next to an input of the submitted view: the field's own block
/// when the view has it, else the first input.
fn field_error(view: &Value, e: &WorkflowError) -> Value {
    let inputs = modals::input_blocks(view);
    let first = || inputs.first().cloned().unwrap_or_else(|| modals::JUSTIFICATION.to_string());
    let problems: Vec<(String, String)> = match e {
        WorkflowError::InvalidFields(list) => list.clone(),
        WorkflowError::InvalidField { field, message } => vec![(field.clone(), message.clone())],
        WorkflowError::TooLong { field, .. } => vec![(field.clone(), super::explain(e))],
        _ => vec![(first(), super::explain(e))],
    };
    let mut errors = std::collections::BTreeMap::new();
    for (field, message) in problems {
        let block = if inputs.contains(&field) { field } else { first() };
        errors.entry(block).or_insert(message);
    }
    modals::errors(errors)
}

/// The request exists already: say so in place of the form.
fn existing_view(r: &crate::workflow::model::Request, actor: &Actor) -> Value {
    let whose = if r.requested_for.is(&actor.party) {
        "You already have".to_string()
    } else {
        format!("{} already has", who(&r.requested_for.id))
    };
    let text = format!("{whose} an open request for *{}*: {}", esc(&r.app_name), blocks::summary(r));
    json!({"response_action": "update", "view": modals::notice("Request access", &text)})
}

/// The app can no longer be requested from this form: say so in its place.
fn gone_view(app_id: &str) -> Value {
    let text = format!("`{}` is no longer requestable. `/access apps` lists what you can request.", esc(app_id));
    json!({"response_action": "update", "view": modals::notice("Request access", &text)})
}

/// Submits a request from a modal; the outbox DMs tell the requester how it went.
async fn submit(state: &AppState, actor: &Actor, view: &Value, input: RequestInput) -> Value {
    let app_id = input.app_id.clone();
    match state.workflow.request(actor, input).await {
        Ok(s) if s.existing => existing_view(&s.request, actor),
        Ok(_) => json!({"response_action": "clear"}),
        Err(WorkflowError::UnknownApp { .. } | WorkflowError::NotRequestable { .. }) => gone_view(&app_id),
        Err(e) => field_error(view, &e),
    }
}

/// The request-field form of one app.
async fn request_form(state: &AppState, actor: &Actor, view: &Value) -> Value {
    let wf = &state.workflow;
    let Some(meta) = view["private_metadata"].as_str().and_then(Meta::parse) else {
        return json!({"response_action": "update", "view": modals::notice("Request access", "This form is out of date; run `/access request` again.")});
    };
    let catalog = wf.catalog();
    // The app's definition reads the form; whether it may be requested is the workflow's call.
    let Some(app) = catalog.apps.get(&meta.app) else { return gone_view(&meta.app) };
    let fields = modals::read_fields(app, view);
    let justification =
        fields.iter().find(|(id, _)| id == modals::JUSTIFICATION).map(|(_, v)| v.clone()).unwrap_or_default();
    let input = RequestInput {
        app_id: app.id.clone(),
        requested_by: actor.party.id.clone(),
        requested_for: meta.for_user.unwrap_or_else(|| actor.party.id.clone()),
        justification,
        fields,
    };
    submit(state, actor, view, input).await
}

/// The app picker: submit at once, or show the app's form when it asks more.
async fn request_pick(state: &AppState, actor: &Actor, view: &Value) -> Value {
    let wf = &state.workflow;
    let catalog = wf.catalog();
    let choose =
        || modals::errors([(modals::APP_BLOCK.to_string(), "Choose one of the apps in the list".to_string())].into());
    let Some(app) = modals::value(view, modals::APP_BLOCK).and_then(|id| catalog.apps.get(&id)) else {
        return choose();
    };
    let justification = modals::value(view, modals::JUSTIFICATION).unwrap_or_default();
    match wf.check_request(actor, &app.id, &actor.party.id, &actor.party.id).await {
        Ok(Some(existing)) => return existing_view(&existing, actor),
        Ok(None) => {}
        Err(WorkflowError::UnknownApp { .. } | WorkflowError::NotRequestable { .. }) => return choose(),
        Err(e) => return field_error(view, &e),
    }
    if modals::has_more_to_ask(app, &justification) {
        return json!({"response_action": "update", "view": modals::request_form(app, None, &justification)});
    }
    submit(state, actor, view, RequestInput::own(actor, &app.id, &justification)).await
}
