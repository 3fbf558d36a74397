//! The Slack Web API as the playground's server sees it: each call the outbox
//! makes is answered like Slack answers it and recorded per person (messages,
//! updates, threads, modals, the App Home, private replies) for the page.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::people::Person;
use super::Shared;

/// A message the bot posted (`chat.postMessage`), as last updated (`chat.update`).
#[derive(Clone, Debug, Serialize)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Value,
    pub edited: bool,
}

/// A reply only one person sees: a slash command's answer or a `response_url` post.
#[derive(Clone, Debug, Serialize)]
pub struct Private {
    /// What the person typed, for a command's answer.
    pub command: Option<String>,
    pub text: String,
    pub blocks: Value,
}

/// An open modal and the errors its last submission got, by block id.
#[derive(Clone, Debug, Serialize)]
pub struct Modal {
    pub view: Value,
    pub errors: Value,
}

/// Everything recorded, with a version that changes on every change.
#[derive(Default)]
pub struct Record {
    pub version: u64,
    pub messages: Vec<Message>,
    pub private: HashMap<String, Vec<Private>>,
    pub homes: HashMap<String, Value>,
    pub modals: HashMap<String, Modal>,
    /// Whose click or command each `trigger_id` came from.
    pub triggers: HashMap<String, String>,
    next_ts: u64,
}

impl Record {
    fn post(&mut self, body: &Value) -> Value {
        self.next_ts += 1;
        let ts = format!("1700000000.{:06}", self.next_ts);
        let channel = str_of(body, "channel");
        self.messages.push(Message {
            channel: channel.clone(),
            ts: ts.clone(),
            thread_ts: body["thread_ts"].as_str().map(str::to_string),
            text: str_of(body, "text"),
            blocks: body["blocks"].clone(),
            edited: false,
        });
        json!({"ok": true, "channel": channel, "ts": ts})
    }

    fn update(&mut self, body: &Value) -> Value {
        let (channel, ts) = (str_of(body, "channel"), str_of(body, "ts"));
        let Some(m) = self.messages.iter_mut().find(|m| m.channel == channel && m.ts == ts) else {
            return json!({"ok": false, "error": "message_not_found"});
        };
        m.text = str_of(body, "text");
        m.blocks = body["blocks"].clone();
        m.edited = true;
        json!({"ok": true, "channel": channel, "ts": ts})
    }

    fn open_view(&mut self, body: &Value) -> Value {
        let Some(user) = self.triggers.get(&str_of(body, "trigger_id")).cloned() else {
            return json!({"ok": false, "error": "invalid_trigger_id"});
        };
        self.modals.insert(user, Modal { view: body["view"].clone(), errors: json!({}) });
        json!({"ok": true, "view": {"id": "V0PLAYGROUND"}})
    }

    fn publish(&mut self, body: &Value) -> Value {
        self.homes.insert(str_of(body, "user_id"), body["view"].clone());
        json!({"ok": true, "view": {"id": "V0HOME"}})
    }

    /// Records a private reply to `user`.
    pub fn reply(&mut self, user: &str, command: Option<String>, body: &Value) {
        let private = Private { command, text: str_of(body, "text"), blocks: body["blocks"].clone() };
        self.private.entry(user.to_string()).or_default().push(private);
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// Slack's user object for a person.
fn user(p: &Person) -> Value {
    json!({"id": p.id, "name": p.name.to_lowercase(), "real_name": p.name,
           "profile": {"email": p.email, "real_name": p.name, "display_name": p.name}})
}

fn directory(people: &[Person], method: &str, body: &Value) -> Value {
    let found = match method {
        "users.info" => people.iter().find(|p| p.id == str_of(body, "user")),
        _ => people.iter().find(|p| p.email.eq_ignore_ascii_case(&str_of(body, "email"))),
    };
    match (found, method) {
        (Some(p), _) => json!({"ok": true, "user": user(p)}),
        (None, "users.info") => json!({"ok": false, "error": "user_not_found"}),
        (None, _) => json!({"ok": false, "error": "users_not_found"}),
    }
}

/// JSON or form-encoded, as the client sends either.
fn parse(headers: &HeaderMap, body: &Bytes) -> Value {
    let json = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if json {
        return serde_json::from_slice(body).unwrap_or(Value::Null);
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

/// `POST /playground/slack/api/{method}`.
pub async fn api(State(s): State<Shared>, Path(method): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let authed = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if authed != Some(s.bot_token.expose()) {
        return Json(json!({"ok": false, "error": "not_authed"})).into_response();
    }
    let body = parse(&headers, &body);
    let answer = match method.as_str() {
        "users.info" | "users.lookupByEmail" => directory(&s.people, &method, &body),
        "conversations.open" => json!({"ok": true, "channel": {"id": format!("D{}", str_of(&body, "users"))}}),
        _ => s.change(|r| match method.as_str() {
            "chat.postMessage" => r.post(&body),
            "chat.update" => r.update(&body),
            "views.open" => r.open_view(&body),
            "views.publish" => r.publish(&body),
            _ => json!({"ok": false, "error": "unknown_method"}),
        }),
    };
    Json(answer).into_response()
}

/// `POST /playground/slack/respond/{user}`: an interaction's `response_url`.
pub async fn respond(State(s): State<Shared>, Path(user): Path<String>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.change(|r| r.reply(&user, None, &body));
    axum::http::StatusCode::OK.into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn updates_replace_the_message_they_name() {
        let mut r = Record::default();
        let posted = r.post(&json!({"channel": "D0BOB", "text": "ask", "blocks": [1]}));
        let ts = posted["ts"].as_str().unwrap();
        let updated = r.update(&json!({"channel": "D0BOB", "ts": ts, "text": "done", "blocks": [2]}));
        assert_eq!(updated["ok"], true);
        assert_eq!((r.messages[0].text.as_str(), r.messages[0].edited), ("done", true));
        assert_eq!(r.update(&json!({"channel": "D0BOB", "ts": "1.2"}))["error"], "message_not_found");
    }

    #[test]
    fn a_modal_opens_for_whoever_owns_the_trigger() {
        let mut r = Record::default();
        assert_eq!(r.open_view(&json!({"trigger_id": "t1", "view": {}}))["error"], "invalid_trigger_id");
        r.triggers.insert("t1".into(), "U0BOB".into());
        assert_eq!(r.open_view(&json!({"trigger_id": "t1", "view": {"type": "modal"}}))["ok"], true);
        assert_eq!(r.modals["U0BOB"].view["type"], "modal");
    }
}
