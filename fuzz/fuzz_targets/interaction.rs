//! `POST /slack/interactions`: the payload as the handler decodes it, and the
//! parsing it does before acting — who and which workspace, the clicked
//! button's target (`parse_target`), the comment modal's `private_metadata`
//! and comment, the request form's metadata, fields and input blocks.
//! Never panics, and each parser gives back what was put in.
#![no_main]

use std::sync::OnceLock;

use accessbot::config::parse_catalog;
use accessbot::slack::parse::{
    comment_value, decision_target, first_action, input_blocks, parse_target, payload, read_fields, team_and_user,
    value, Meta,
};
use accessbot::workflow::catalog::App;
use accessbot::workflow::Decision;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

/// An app whose form asks every kind of field.
const CONFIG: &str = r#"
[apps.vpn]
name = "VPN"
steps = [{ user = "U0ALICE" }]
fields = [
  { id = "justification", label = "Why", type = "text", required = true },
  { id = "region", label = "Region", type = "select", options = ["EU", "US"], required = true },
  { id = "end_date", label = "Until", type = "date" },
  { id = "team", label = "Team", type = "text" },
]
"#;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| parse_catalog("fuzz.toml", CONFIG).expect("valid").apps["vpn"].clone())
}

/// Any JSON value, a few levels deep.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn value(&self, depth: usize) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => json!(b),
            Json::Int(i) => json!(i),
            Json::Float(f) => json!(f),
            Json::Str(s) => json!(s),
            _ if depth > 6 => Value::Null,
            Json::Arr(a) => Value::Array(a.iter().map(|j| j.value(depth + 1)).collect()),
            Json::Obj(o) => Value::Object(o.iter().map(|(k, j)| (k.clone(), j.value(depth + 1))).collect()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Answer {
    Text(String),
    Option(String),
    Date(String),
    Other(Json),
}

/// A payload shaped like Slack's, with arbitrary contents where it matters.
#[derive(Arbitrary, Debug)]
struct Shaped {
    team: Option<String>,
    user: Option<String>,
    click: bool,
    action_id: String,
    /// A target `id:step` built from parts, or any text.
    target: Result<(String, u64), String>,
    callback: u8,
    verb: String,
    comment: Option<String>,
    answers: Vec<(String, Answer)>,
    blocks: Vec<(bool, String)>,
    extra: Json,
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    /// Any body.
    Raw(&'a [u8]),
    /// Any JSON in the `payload` field.
    Any(Json),
    Shaped(Box<Shaped>),
}

fn shaped(s: &Shaped) -> Value {
    let target = match &s.target {
        Ok((id, step)) => format!("{id}:{step}"),
        Err(t) => t.clone(),
    };
    if s.click {
        return json!({"type": "block_actions", "team": {"id": s.team}, "user": {"id": s.user, "team_id": s.team},
                      "actions": [{"action_id": s.action_id, "value": target}], "extra": s.extra.value(0)});
    }
    let callback = ["decision_comment", "request_form", "request_pick", "other"][usize::from(s.callback % 4)];
    let meta = match callback {
        "decision_comment" => format!("{target}:{}", s.verb),
        "request_form" => json!({"app": s.action_id, "for": s.user}).to_string(),
        _ => target,
    };
    let mut values = Map::new();
    values.insert("comment".into(), json!({"comment": {"type": "plain_text_input", "value": s.comment}}));
    for (block, a) in &s.answers {
        let element = match a {
            Answer::Text(t) => json!({"type": "plain_text_input", "value": t}),
            Answer::Option(o) => json!({"type": "static_select", "selected_option": {"value": o}}),
            Answer::Date(d) => json!({"type": "datepicker", "selected_date": d}),
            Answer::Other(j) => j.value(0),
        };
        values.insert(block.clone(), json!({"value": element}));
    }
    let blocks: Vec<Value> = s
        .blocks
        .iter()
        .map(|(input, id)| json!({"type": if *input { "input" } else { "section" }, "block_id": id}))
        .collect();
    json!({"type": "view_submission", "team": {"id": s.team}, "user": {"id": s.user},
           "view": {"callback_id": callback, "private_metadata": meta, "state": {"values": values}, "blocks": blocks}})
}

/// The parsing `interactions::handle` does before it acts.
fn handle(p: &Value) {
    let _ = team_and_user(p);
    match p["type"].as_str() {
        Some("block_actions") => {
            if let Some((_action_id, value)) = first_action(p) {
                if let Some((id, step)) = parse_target(value) {
                    assert!(!id.contains(':'), "the id stops at the first colon: {id:?}");
                    assert!(value.starts_with(&format!("{id}:")));
                    assert_eq!(parse_target(&format!("{id}:{step}")), Some((id, step)), "round trip");
                }
            }
        }
        Some("view_submission") => {
            let view = &p["view"];
            let meta = view["private_metadata"].as_str().unwrap_or_default();
            match view["callback_id"].as_str() {
                Some("decision_comment") => {
                    if let Some((id, step, decision)) = decision_target(meta) {
                        let verb = if decision == Decision::Approve { "approve" } else { "deny" };
                        assert_eq!(meta, format!("{id}:{}:{verb}", &meta[id.len() + 1..meta.len() - verb.len() - 1]));
                        assert_eq!(decision_target(&format!("{id}:{step}:{verb}")), Some((id, step, decision)));
                    }
                    let _ = comment_value(view);
                }
                Some("request_form") => {
                    let _ = Meta::parse(meta);
                    for (id, v) in &read_fields(app(), view) {
                        assert!(!v.is_empty() && v.trim() == v, "{id}: {v:?}");
                    }
                }
                Some("request_pick") => {
                    let _ = value(view, "app");
                    let _ = value(view, "justification");
                }
                _ => {}
            }
            let _ = input_blocks(view);
        }
        _ => {}
    }
}

fuzz_target!(|input: Input| {
    let body = match &input {
        Input::Raw(b) => b.to_vec(),
        Input::Any(j) => {
            serde_urlencoded::to_string([("payload", j.value(0).to_string())]).expect("encodes").into_bytes()
        }
        Input::Shaped(s) => {
            serde_urlencoded::to_string([("payload", shaped(s).to_string())]).expect("encodes").into_bytes()
        }
    };
    match payload(&body) {
        Ok(p) => handle(&p),
        Err(_) => assert!(matches!(input, Input::Raw(_)), "a well-formed payload was refused"),
    }
});
