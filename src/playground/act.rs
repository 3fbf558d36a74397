//! `POST /playground/act`: what a person does in the page, sent to the real
//! Slack endpoints as Slack would send it, signed with the run's secret. The
//! server verifies, parses, authorizes and decides exactly as for Slack.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::slack::Modal;
use super::Shared;

/// The team the playground's server serves (`SLACK_TEAM_IDS`).
pub const TEAM: &str = "T0PLAYGROUND";

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Act {
    /// A slash command: `/access …` (the leading `/access` is optional).
    Command { person: String, text: String },
    /// A button in a DM (`channel` and `ts` given), a private reply, the App Home or a modal.
    Click {
        person: String,
        action_id: String,
        #[serde(default)]
        value: String,
        #[serde(default)]
        block_id: String,
        place: Place,
        #[serde(default)]
        channel: String,
        #[serde(default)]
        ts: String,
    },
    /// The open modal's submit button, with each input's answer by block id.
    Submit { person: String, values: Map<String, Value> },
    /// The open modal's close button.
    Close { person: String },
    /// The App Home tab (`app_home_opened`).
    OpenHome { person: String },
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    Message,
    Private,
    Home,
}

impl Act {
    fn person(&self) -> &str {
        match self {
            Act::Command { person, .. }
            | Act::Click { person, .. }
            | Act::Submit { person, .. }
            | Act::Close { person }
            | Act::OpenHome { person } => person,
        }
    }
}

pub async fn handle(State(s): State<Shared>, Json(act): Json<Act>) -> Response {
    if !s.people.iter().any(|p| p.id == act.person()) {
        return (StatusCode::BAD_REQUEST, "not a person of the playground").into_response();
    }
    let result = match act {
        Act::Command { person, text } => command(&s, &person, &text).await,
        Act::Click { person, action_id, value, block_id, place, channel, ts } => {
            let target = Target { place, channel, ts };
            click(&s, &person, &action_id, &value, &block_id, &target).await
        }
        Act::Submit { person, values } => submit(&s, &person, &values).await,
        Act::Close { person } => {
            s.change(|r| r.modals.remove(&person));
            Ok(())
        }
        Act::OpenHome { person } => open_home(&s, &person).await,
    };
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(why) => (StatusCode::BAD_GATEWAY, why).into_response(),
    }
}

/// Where a click happened.
pub struct Target {
    place: Place,
    channel: String,
    ts: String,
}

fn trigger(s: &Shared, person: &str) -> String {
    let id = format!("{}.{}", uuid::Uuid::new_v4().simple(), person);
    s.change(|r| r.triggers.insert(id.clone(), person.to_string()));
    id
}

fn response_url(s: &Shared, person: &str) -> String {
    format!("{}/playground/slack/respond/{person}", s.public_url)
}

async fn command(s: &Shared, person: &str, typed: &str) -> Result<(), String> {
    let text = typed.trim().strip_prefix("/access").unwrap_or(typed.trim()).trim().to_string();
    let form = [
        ("team_id", TEAM.to_string()),
        ("channel_id", format!("D{person}")),
        ("user_id", person.to_string()),
        ("command", "/access".to_string()),
        ("text", text.clone()),
        ("trigger_id", trigger(s, person)),
        ("response_url", response_url(s, person)),
    ];
    let body = serde_urlencoded::to_string(form).map_err(|e| e.to_string())?;
    let (status, answer) = s.forward("/slack/commands", "application/x-www-form-urlencoded", body).await?;
    let reply = match serde_json::from_slice::<Value>(&answer) {
        Ok(v) if status.is_success() => v,
        _ => json!({"text": format!("The server answered {status}: {}", String::from_utf8_lossy(&answer))}),
    };
    let shown = format!("/access {text}").trim_end().to_string();
    s.change(|r| r.reply(person, Some(shown), &reply));
    Ok(())
}

async fn click(
    s: &Shared,
    person: &str,
    action_id: &str,
    value: &str,
    block_id: &str,
    at: &Target,
) -> Result<(), String> {
    let mut payload = json!({
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": person, "team_id": TEAM},
        "trigger_id": trigger(s, person),
        "actions": [{"action_id": action_id, "value": value, "block_id": block_id, "type": "button"}],
    });
    match at.place {
        Place::Home => {
            payload["container"] = json!({"type": "view"});
            payload["view"] = json!({"type": "home"});
        }
        Place::Message | Place::Private => {
            let ephemeral = at.place == Place::Private;
            payload["container"] = json!({"type": "message", "is_ephemeral": ephemeral,
                                          "channel_id": at.channel, "message_ts": at.ts});
            payload["channel"] = json!({"id": at.channel});
            payload["message"] = json!({"ts": at.ts});
            payload["response_url"] = json!(response_url(s, person));
        }
    }
    let (status, body) = s.forward_payload(&payload).await?;
    ok_or(status, &body)
}

fn ok_or(status: StatusCode, body: &[u8]) -> Result<(), String> {
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the server answered {status}: {}", String::from_utf8_lossy(body)))
    }
}

/// The `state.values` Slack sends for a view, from the answers by block id.
pub fn state_values(view: &Value, answers: &Map<String, Value>) -> Value {
    let mut values = Map::new();
    for block in view["blocks"].as_array().into_iter().flatten().filter(|b| b["type"] == "input") {
        let Some(id) = block["block_id"].as_str() else { continue };
        let element = &block["element"];
        let action = element["action_id"].as_str().unwrap_or("value");
        let answer = answers.get(id).and_then(Value::as_str).filter(|a| !a.is_empty());
        let kind = element["type"].as_str().unwrap_or("plain_text_input");
        let state = match kind {
            "static_select" => json!({"type": kind, "selected_option": answer.map(|a| json!({"value": a}))}),
            "datepicker" => json!({"type": kind, "selected_date": answer}),
            _ => json!({"type": kind, "value": answer}),
        };
        values.insert(id.to_string(), json!({ action: state }));
    }
    Value::Object(values)
}

async fn submit(s: &Shared, person: &str, answers: &Map<String, Value>) -> Result<(), String> {
    let Some(modal) = s.read(|r| r.modals.get(person).cloned()) else {
        return Err("no form is open".into());
    };
    let mut view = modal.view.clone();
    view["id"] = json!("V0PLAYGROUND");
    view["state"] = json!({"values": state_values(&modal.view, answers)});
    let payload = json!({
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": person, "team_id": TEAM},
        "trigger_id": trigger(s, person),
        "view": view,
    });
    let (status, body) = s.forward_payload(&payload).await?;
    ok_or(status, &body)?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.change(|r| after_submit(&mut r.modals, person, modal, &answer));
    Ok(())
}

/// What Slack does with a `view_submission` answer: close, replace, or show errors.
fn after_submit(modals: &mut std::collections::HashMap<String, Modal>, person: &str, modal: Modal, answer: &Value) {
    match answer["response_action"].as_str() {
        Some("update") => {
            modals.insert(person.to_string(), Modal { view: answer["view"].clone(), errors: json!({}) });
        }
        Some("errors") => {
            modals.insert(person.to_string(), Modal { errors: answer["errors"].clone(), ..modal });
        }
        // "clear", or an empty 200: Slack closes the modal.
        _ => {
            modals.remove(person);
        }
    }
}

async fn open_home(s: &Shared, person: &str) -> Result<(), String> {
    let body = json!({
        "type": "event_callback",
        "team_id": TEAM,
        "event_id": format!("Ev{}", uuid::Uuid::new_v4().simple()),
        "event": {"type": "app_home_opened", "user": person, "channel": format!("D{person}"), "tab": "home"},
    });
    let (status, answer) = s.forward("/slack/events", "application/json", body.to_string()).await?;
    ok_or(status, &answer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_take_the_shape_of_each_input() {
        let view = json!({"blocks": [
            {"type": "section"},
            {"type": "input", "block_id": "justification", "element": {"type": "plain_text_input", "action_id": "value"}},
            {"type": "input", "block_id": "region", "element": {"type": "static_select", "action_id": "value"}},
            {"type": "input", "block_id": "end_date", "element": {"type": "datepicker", "action_id": "value"}},
        ]});
        let answers = json!({"justification": "on call", "region": "EU", "end_date": ""});
        let v = state_values(&view, answers.as_object().unwrap());
        assert_eq!(v["justification"]["value"]["value"], "on call");
        assert_eq!(v["region"]["value"]["selected_option"]["value"], "EU");
        assert_eq!(v["end_date"]["value"]["selected_date"], Value::Null);
    }
}
