//! The request modals: the app picker (`/access request` without an app, or the
//! App Home button) and an app's request-field form; reading their submissions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::blocks::{clip, context, esc, section, who};
use super::deliver::views_open_item;
use crate::workflow::catalog::{App, Catalog, FieldDef, FieldKind};
use crate::workflow::Party;
use crate::workflow::{Workflow, WorkflowError};

pub const REQUEST_FORM: &str = "request_form";
pub const REQUEST_PICK: &str = "request_pick";
/// The block (and field id) of the justification.
pub const JUSTIFICATION: &str = "justification";
/// The block of the duration choice (the workflow's field id).
pub const DURATION: &str = crate::workflow::engine::DURATION;
/// The block of the app picker's select.
pub const APP_BLOCK: &str = "app";
/// Every input element in these modals uses this action id.
const VALUE: &str = "value";

/// Slack's limits: 100 options in a static select, 75 characters in an option's
/// text, 150 in its value, 100 blocks in a view.
const MAX_OPTIONS: usize = 100;
const MAX_INPUTS: usize = 95;
/// Slack's limit for the text of one `errors` entry is not published; keep them short.
pub const ERROR_MAX: usize = 150;

/// How long a `trigger_id` is good for, with a margin (the outbox delivers within milliseconds).
pub const TRIGGER_TTL_SECS: i64 = 10;

/// Queues `views.open` for a trigger; the request path never calls Slack itself.
pub async fn open(wf: &Workflow, trigger: Option<&str>, view: Value) -> Result<(), WorkflowError> {
    let Some(trigger) = trigger.filter(|t| !t.is_empty()) else {
        return Err(WorkflowError::Invalid("Slack sent no trigger to open a form with; please try again.".into()));
    };
    let deadline = wf.now() + chrono::Duration::seconds(TRIGGER_TTL_SECS);
    wf.enqueue(&[views_open_item(trigger, view, deadline)]).await
}

/// What a request modal carries between opening and submission.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub app: String,
    /// The beneficiary of an on-behalf request.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_user: Option<String>,
}

impl Meta {
    pub fn parse(s: &str) -> Option<Meta> {
        serde_json::from_str(s).ok()
    }
}

fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": clip(text, max), "emoji": true})
}

fn is_justification_text(f: &FieldDef) -> bool {
    f.id == JUSTIFICATION && f.kind == FieldKind::Text
}

/// Whether `/access request <app> [justification…]` cannot give everything the
/// app requires: a required field other than a text justification, or a
/// required justification that is missing.
pub fn needs_form(app: &App, justification: &str) -> bool {
    app.fields.iter().any(|f| f.required && (!is_justification_text(f) || justification.trim().is_empty()))
}

/// Whether, after the picker, the app's form has something more to ask
/// (any field besides the justification, or a required justification not given).
pub fn has_more_to_ask(app: &App, justification: &str) -> bool {
    needs_form(app, justification) || app.fields.iter().any(|f| !is_justification_text(f)) || !app.durations.is_empty()
}

fn text_input(multiline: bool, initial: Option<&str>, placeholder: &str) -> Value {
    let mut e = json!({"type": "plain_text_input", "action_id": VALUE, "multiline": multiline, "max_length": 2000,
                       "placeholder": plain(placeholder, 150)});
    if let Some(v) = initial.filter(|v| !v.trim().is_empty()) {
        e["initial_value"] = json!(clip(v.trim(), 2000));
    }
    e
}

fn option(value: &str) -> Value {
    json!({"text": plain(value, 75), "value": clip(value, 150)})
}

fn input(block_id: &str, label: &str, element: Value, optional: bool, hint: Option<&str>) -> Value {
    let mut b = json!({"type": "input", "block_id": block_id, "label": plain(label, 2000), "element": element,
                       "optional": optional});
    if let Some(h) = hint {
        b["hint"] = plain(h, 2000);
    }
    b
}

/// The durations the app offers; without a choice access lasts up to `max_duration`.
fn duration_input(app: &App) -> Value {
    let options: Vec<Value> =
        app.durations.iter().take(MAX_OPTIONS).map(|d| option(&crate::workflow::catalog::short_duration(*d))).collect();
    let element =
        json!({"type": "static_select", "action_id": VALUE, "placeholder": plain("Choose…", 150), "options": options});
    input(DURATION, "Duration", element, true, Some("How long you need access; it runs from the grant."))
}

fn field_input(f: &FieldDef, justification: &str) -> Value {
    let (element, hint) = match f.kind {
        FieldKind::Text if f.id == JUSTIFICATION => (
            text_input(true, Some(justification), "Why do you need it? Approvers read this."),
            Some("Approvers see this with your request."),
        ),
        FieldKind::Text => (text_input(false, None, ""), None),
        FieldKind::Select => (
            json!({"type": "static_select", "action_id": VALUE, "placeholder": plain("Choose…", 150),
                   "options": f.options.iter().take(MAX_OPTIONS).map(|o| option(o)).collect::<Vec<_>>()}),
            None,
        ),
        FieldKind::Date => (
            json!({"type": "datepicker", "action_id": VALUE, "placeholder": plain("Pick a date", 150)}),
            if f.id == "end_date" { Some("Access ends on this day.") } else { None },
        ),
    };
    input(&f.id, &f.label, element, !f.required, hint)
}

/// The form asking an app's request fields; `justification` prefills the justification.
pub fn request_form(app: &App, for_user: Option<&str>, justification: &str) -> Value {
    let meta = Meta { app: app.id.clone(), for_user: for_user.map(str::to_string) };
    let mut intro = format!("*{}*", esc(&clip(&app.name, 200)));
    if !app.description.is_empty() {
        intro.push_str(&format!("\n{}", esc(&clip(&app.description, 500))));
    }
    if let Some(u) = for_user {
        intro.push_str(&format!("\nRequested for {}", who(u)));
    }
    let mut blocks = vec![section(&intro)];
    blocks.push(context(if app.approval {
        "Approvers are asked in turn; I'll message you as it moves."
    } else {
        "No approval needed: access is granted when you submit."
    }));
    let mut inputs: Vec<Value> = app.fields.iter().map(|f| field_input(f, justification)).collect();
    // Every request may carry a justification, even when the app does not ask for one.
    if !app.fields.iter().any(|f| f.id == JUSTIFICATION) {
        inputs.insert(
            0,
            input(
                JUSTIFICATION,
                "Justification",
                text_input(true, Some(justification), "Why do you need it? Approvers read this."),
                true,
                None,
            ),
        );
    }
    if !app.durations.is_empty() {
        inputs.push(duration_input(app));
    }
    inputs.truncate(MAX_INPUTS);
    blocks.extend(inputs);
    json!({
        "type": "modal",
        "callback_id": REQUEST_FORM,
        "private_metadata": serde_json::to_string(&meta).unwrap_or_default(),
        "title": plain("Request access", 24),
        "submit": plain("Submit request", 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    })
}

/// The app picker: a select of the apps `who` can request and an optional justification.
pub fn app_picker(catalog: &Catalog, who: &Party) -> Value {
    let options: Vec<Value> = catalog
        .requestable_by(who)
        .take(MAX_OPTIONS)
        .map(|a| json!({"text": plain(&a.name, 75), "value": clip(&a.id, 150)}))
        .collect();
    let mut blocks = vec![section("Which app do you need? If it asks for more details, the next screen has them.")];
    if options.is_empty() {
        blocks.push(context("No apps are requestable right now."));
    } else {
        blocks.push(input(
            APP_BLOCK,
            "App",
            json!({"type": "static_select", "action_id": VALUE, "placeholder": plain("Choose an app", 150), "options": options}),
            false,
            None,
        ));
        blocks.push(input(
            JUSTIFICATION,
            "Justification",
            text_input(true, None, "Why do you need it? Approvers read this."),
            true,
            None,
        ));
    }
    let mut view = json!({
        "type": "modal",
        "callback_id": REQUEST_PICK,
        "private_metadata": "{}",
        "title": plain("Request an app", 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    });
    if !options.is_empty() {
        view["submit"] = plain("Next", 24);
    }
    view
}

/// A modal that only says something (the request already exists, the app is gone).
pub fn notice(title: &str, text: &str) -> Value {
    json!({
        "type": "modal",
        "title": plain(title, 24),
        "close": plain("Close", 24),
        "blocks": [section(text)],
    })
}

/// The value of one input block of a submitted view, whatever its element
/// (text, static select, date picker); empty answers are `None`.
pub fn value(view: &Value, block_id: &str) -> Option<String> {
    let block = view["state"]["values"][block_id].as_object()?;
    let element = block.get(VALUE).or_else(|| block.values().next())?;
    let v = element["value"]
        .as_str()
        .or(element["selected_option"]["value"].as_str())
        .or(element["selected_date"].as_str())?
        .trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The answers a submitted field form carries, by field id (the workflow
/// checks them, all at once, so the form can mark every problem).
pub fn read_fields(app: &App, view: &Value) -> Vec<(String, String)> {
    let mut answers: Vec<(String, String)> =
        app.fields.iter().filter_map(|f| value(view, &f.id).map(|v| (f.id.clone(), v))).collect();
    if !app.fields.iter().any(|f| f.id == JUSTIFICATION) {
        if let Some(j) = value(view, JUSTIFICATION) {
            answers.push((JUSTIFICATION.to_string(), j));
        }
    }
    if !app.durations.is_empty() {
        answers.extend(value(view, DURATION).map(|d| (DURATION.to_string(), d)));
    }
    answers
}

/// `{"response_action": "errors", "errors": {block: message}}`.
pub fn errors(errors: BTreeMap<String, String>) -> Value {
    let map: Map<String, Value> = errors.into_iter().map(|(k, v)| (k, Value::String(clip(&v, ERROR_MAX)))).collect();
    json!({"response_action": "errors", "errors": map})
}

/// The input blocks of a submitted view, in order (where an error can be shown).
pub fn input_blocks(view: &Value) -> Vec<String> {
    view["blocks"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .filter(|b| b["type"] == "input")
                .filter_map(|b| b["block_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            id: "vpn".into(),
            name: "VPN".into(),
            description: "Remote access".into(),
            self_service: true,
            approval: true,
            admins: vec![],
            max_duration: None,
            steps: vec![],
            fields: vec![
                FieldDef {
                    id: "justification".into(),
                    label: "Business justification".into(),
                    kind: FieldKind::Text,
                    required: true,
                    options: vec![],
                },
                FieldDef {
                    id: "region".into(),
                    label: "Region".into(),
                    kind: FieldKind::Select,
                    required: true,
                    options: vec!["EU".into(), "US".into()],
                },
                FieldDef {
                    id: "end_date".into(),
                    label: "Access until".into(),
                    kind: FieldKind::Date,
                    required: false,
                    options: vec![],
                },
            ],
            provisioning: None,
            requesters: None,
            durations: Vec::new(),
            extend_steps: Vec::new(),
            max_extensions: None,
            okta: None,
        }
    }

    #[test]
    fn which_apps_need_the_form() {
        let mut a = app();
        assert!(needs_form(&a, "because"));
        a.fields.retain(|f| f.id == "justification");
        assert!(!needs_form(&a, "because"));
        assert!(needs_form(&a, "  "));
        assert!(!has_more_to_ask(&a, "because"));
        a.fields[0].required = false;
        assert!(!needs_form(&a, ""));
        a.fields.clear();
        assert!(!needs_form(&a, "") && !has_more_to_ask(&a, ""));
    }

    #[test]
    fn form_has_one_input_per_field() {
        let v = request_form(&app(), Some("U0REQ"), "for the on-call rotation");
        assert_eq!(v["callback_id"], REQUEST_FORM);
        assert_eq!(Meta::parse(v["private_metadata"].as_str().unwrap()).unwrap().for_user.as_deref(), Some("U0REQ"));
        let inputs: Vec<&Value> = v["blocks"].as_array().unwrap().iter().filter(|b| b["type"] == "input").collect();
        assert_eq!(inputs.len(), 3);
        assert_eq!(inputs[0]["element"]["initial_value"], "for the on-call rotation");
        assert_eq!(inputs[0]["element"]["multiline"], true);
        assert_eq!(inputs[1]["element"]["type"], "static_select");
        assert_eq!(inputs[1]["optional"], false);
        assert_eq!(inputs[2]["element"]["type"], "datepicker");
        assert_eq!(inputs[2]["optional"], true);
        assert!(v["title"]["text"].as_str().unwrap().chars().count() <= 24);
    }

    #[test]
    fn submissions_are_read_by_field_id() {
        let view = json!({"state": {"values": {
            "justification": {"value": {"type": "plain_text_input", "value": "on call"}},
            "region": {"value": {"type": "static_select", "selected_option": {"value": "EU"}}},
            "end_date": {"value": {"type": "datepicker", "selected_date": null}},
        }}});
        assert_eq!(
            read_fields(&app(), &view),
            vec![("justification".to_string(), "on call".to_string()), ("region".to_string(), "EU".to_string())]
        );
    }
}
