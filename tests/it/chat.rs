//! Chat features: the request-field form and the app picker, on-behalf
//! requests, `/access suggest`, task steps' "Mark done", and the App Home.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const CHAT_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]
technical_contact = "U0TECH"

[groups.security]
name = "Security Team"
members = ["U0BOB", "carol@example.com"]

[apps.vpn]
name = "VPN"
description = "Remote network access"
admins = ["U0VPNADMIN"]
steps = [{ user = "U0ALICE" }]
fields = [
  { id = "justification", label = "Business justification", type = "text", required = true },
  { id = "region", label = "Region", type = "select", options = ["EU", "US"], required = true },
  { id = "end_date", label = "Access until", type = "date", required = true },
]

[apps.wiki]
name = "Wiki"
steps = [{ user = "U0ALICE" }]
fields = [{ id = "justification", label = "Why", type = "text", required = true }]

[apps.zoom]
name = "Zoom"
approval = false

[apps.github]
name = "GitHub"
admins = ["U0GHADMIN"]
steps = [{ group = "security" }]

[apps.laptop]
name = "Laptop"
steps = [{ task = { user = "U0OPS" } }]

[apps.payroll]
name = "Payroll"
self_service = false
steps = [{ user = "U0ALICE" }]
"#;

fn chat_setup(b: Backend) -> Setup {
    let mut s = Setup::new(b);
    s.config = CHAT_CONFIG.to_string();
    s
}

fn future_date(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).format("%Y-%m-%d").to_string()
}

/// The views opened so far (`views.open`), oldest first.
fn opened(app: &TestApp) -> Vec<Value> {
    app.slack.ok_calls("views.open").into_iter().map(|c| c.body["view"].clone()).collect()
}

/// The Home views published for `user`, oldest first.
fn homes(app: &TestApp, user: &str) -> Vec<Value> {
    app.slack
        .ok_calls("views.publish")
        .into_iter()
        .filter(|c| c.body["user_id"] == json!(user))
        .map(|c| c.body["view"].clone())
        .collect()
}

fn inputs(view: &Value) -> Vec<Value> {
    view["blocks"].as_array().unwrap().iter().filter(|b| b["type"] == "input").cloned().collect()
}

/// Every button of a view or message: (action_id, value).
fn buttons(blocks: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in blocks.as_array().unwrap() {
        let mut els: Vec<&Value> = b["elements"].as_array().map(|e| e.iter().collect()).unwrap_or_default();
        if b["accessory"].is_object() {
            els.push(&b["accessory"]);
        }
        for e in els.into_iter().filter(|e| e["type"] == "button") {
            out.push((e["action_id"].as_str().unwrap().to_string(), e["value"].as_str().unwrap().to_string()));
        }
    }
    out
}

fn select_value(v: Option<&str>) -> Value {
    match v {
        Some(v) => {
            json!({"type": "static_select", "selected_option": {"text": {"type": "plain_text", "text": v}, "value": v}})
        }
        None => json!({"type": "static_select", "selected_option": null}),
    }
}

fn text_value(v: &str) -> Value {
    json!({"type": "plain_text_input", "value": v})
}

fn date_value(v: Option<&str>) -> Value {
    json!({"type": "datepicker", "selected_date": v})
}

/// Submits `view` (as opened) with these input values, as Slack does.
async fn submit_view(app: &TestApp, user: &str, view: &Value, values: Value) -> (StatusCode, Value) {
    let mut v = view.clone();
    v["id"] = json!("V0FORM");
    v["state"] = json!({ "values": values });
    let payload = json!({
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": user, "team_id": TEAM},
        "trigger_id": "9.9.submit",
        "view": v
    });
    let res = app.interaction(payload).await;
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn open_home(app: &TestApp, user: &str) {
    let ev = json!({"type": "event_callback", "team_id": TEAM, "event_id": format!("Ev{user}"),
                    "event": {"type": "app_home_opened", "user": user, "channel": format!("D{user}"), "tab": "home",
                              "event_ts": "1700000000.1"}});
    let res = app.signed("/slack/events", &ev.to_string(), "application/json").await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Clicks a button in the App Home (no `response_url` there).
async fn home_click(app: &TestApp, user: &str, action_id: &str, value: &str) -> StatusCode {
    let payload = json!({
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user, "team_id": TEAM},
        "trigger_id": format!("trigger-home-{user}"),
        "container": {"type": "view", "view_id": "V0HOME"},
        "view": {"id": "V0HOME", "type": "home", "callback_id": "home"},
        "actions": [{"action_id": action_id, "block_id": "b", "type": "button", "value": value, "action_ts": "1700000000.2"}]
    });
    app.interaction(payload).await.status()
}

async fn request_form_for_required_fields(b: Backend) {
    let app = spawn_with(chat_setup(b)).await;
    let reply = app.say("U0REQ", "request vpn need it for the on-call rotation").await;
    assert!(reply.contains("Opening the form"), "{reply}");
    assert!(app.open_request("U0REQ", "vpn").await.is_none(), "nothing is created before the form is sent");
    app.drain().await;
    let calls = app.slack.ok_calls("views.open");
    assert_eq!(calls.len(), 1);
    assert!(calls[0].body["trigger_id"].as_str().unwrap().ends_with(".2.trigger"), "the command's trigger");
    let view = &calls[0].body["view"];
    assert_eq!(view["type"], "modal");
    assert_eq!(view["callback_id"], "request_form");
    let meta: Value = serde_json::from_str(view["private_metadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta, json!({"app": "vpn"}));
    let fields = inputs(view);
    let ids: Vec<&str> = fields.iter().map(|b| b["block_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["justification", "region", "end_date"]);
    let kinds: Vec<&str> = fields.iter().map(|b| b["element"]["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["plain_text_input", "static_select", "datepicker"]);
    assert!(fields.iter().all(|b| b["optional"] == json!(false)), "required fields are not optional");
    assert_eq!(fields[0]["element"]["multiline"], true);
    assert_eq!(fields[0]["element"]["initial_value"], "need it for the on-call rotation");
    let options: Vec<&str> =
        fields[1]["element"]["options"].as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap()).collect();
    assert_eq!(options, ["EU", "US"]);
    assert_eq!(fields[1]["label"]["text"], "Region");

    // A required justification that is missing also needs the form; given, the request goes at once.
    assert!(app.say("U0REQ", "request wiki").await.contains("Opening the form"));
    app.drain().await;
    assert_eq!(opened(&app).len(), 2);
    assert_eq!(inputs(&opened(&app)[1]).len(), 1);
    let id = app.request_app("U0REQ", "wiki", "team docs").await;
    assert_eq!(app.request(&id).await.justification, "team docs");
    assert_eq!(opened(&app).len(), 2);

    // The form is not opened for an open request that exists already.
    let reply = app.say("U0REQ", "request wiki").await;
    assert!(reply.contains("already have an open request") && reply.contains(&id), "{reply}");
    // Nor for an app that is not requestable.
    let reply = app.say("U0REQ", "request payroll").await;
    assert!(reply.contains("not requestable"), "{reply}");
    app.drain().await;
    assert_eq!(opened(&app).len(), 2);
}

async fn form_submission_errors_and_success(b: Backend) {
    let app = spawn_with(chat_setup(b)).await;
    app.say("U0REQ", "request vpn").await;
    app.drain().await;
    let view = opened(&app).pop().unwrap();

    // A past date and an option that is not in the list.
    let (s, r) = submit_view(
        &app,
        "U0REQ",
        &view,
        json!({"justification": {"value": text_value("on call")}, "region": {"value": select_value(Some("APAC"))},
               "end_date": {"value": date_value(Some("2001-01-01"))}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        r,
        json!({"response_action": "errors", "errors": {
            "region": "Region must be one of: EU, US", "end_date": "Access until is in the past"}})
    );
    // Missing required values.
    let (_, r) = submit_view(
        &app,
        "U0REQ",
        &view,
        json!({"justification": {"value": text_value("  ")}, "region": {"value": select_value(None)},
               "end_date": {"value": date_value(Some(&future_date(30)))}}),
    )
    .await;
    assert_eq!(
        r,
        json!({"response_action": "errors", "errors": {
            "justification": "Business justification is required", "region": "Region is required"}})
    );
    let (_, r) = submit_view(
        &app,
        "U0REQ",
        &view,
        json!({"justification": {"value": text_value("on call")}, "region": {"value": select_value(Some("EU"))},
               "end_date": {"value": date_value(None)}}),
    )
    .await;
    assert_eq!(r, json!({"response_action": "errors", "errors": {"end_date": "Access until is required"}}));
    assert!(app.open_request("U0REQ", "vpn").await.is_none());
    assert!(app.events_of("app.access_request.request").await.is_empty());

    // A valid submission creates the request with its field values; the DMs say the rest.
    let until = future_date(30);
    let (_, r) = submit_view(
        &app,
        "U0REQ",
        &view,
        json!({"justification": {"value": text_value("on call in Q3")}, "region": {"value": select_value(Some("EU"))},
               "end_date": {"value": date_value(Some(&until))}}),
    )
    .await;
    assert_eq!(r, json!({"response_action": "clear"}));
    let req = app.open_request("U0REQ", "vpn").await.expect("request created");
    assert_eq!(req.justification, "on call in Q3");
    assert_eq!(req.requested_by.id, "U0REQ");
    let values: Vec<(String, String)> = req.field_values.iter().map(|f| (f.id.clone(), f.value.clone())).collect();
    for want in [("justification", "on call in Q3"), ("region", "EU"), ("end_date", until.as_str())] {
        assert!(values.contains(&(want.0.to_string(), want.1.to_string())), "{values:?} lacks {want:?}");
    }
    assert_eq!(types(&app.events(&req.id).await)[0], "app.access_request.request");
    app.drain().await;
    assert_eq!(app.slack.dms_to("U0ALICE").len(), 1);
    assert!(app.slack.dms_to("U0REQ")[0].text().contains(&req.id));

    // Sending the form again does not make a second request.
    let (_, r) = submit_view(
        &app,
        "U0REQ",
        &view,
        json!({"justification": {"value": text_value("again")}, "region": {"value": select_value(Some("US"))},
               "end_date": {"value": date_value(Some(&until))}}),
    )
    .await;
    assert_eq!(r["response_action"], "update");
    assert!(r["view"].to_string().contains(&req.id));
    assert_eq!(app.events_of("app.access_request.request").await.len(), 1);
}

async fn app_picker(b: Backend) {
    let app = spawn_with(chat_setup(b)).await;
    assert!(app.say("U0REQ", "request").await.contains("Opening the form"));
    app.drain().await;
    let picker = opened(&app).pop().unwrap();
    assert_eq!(picker["callback_id"], "request_pick");
    let blocks = inputs(&picker);
    assert_eq!(blocks[0]["block_id"], "app");
    assert_eq!(blocks[0]["element"]["type"], "static_select");
    let apps: Vec<&str> =
        blocks[0]["element"]["options"].as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap()).collect();
    assert_eq!(apps, ["github", "laptop", "vpn", "wiki", "zoom"], "self-service apps only");
    assert_eq!(blocks[1]["block_id"], "justification");
    assert_eq!(blocks[1]["optional"], true);

    // An app with more to ask: the picker turns into its form, justification carried over.
    let (_, r) = submit_view(
        &app,
        "U0REQ",
        &picker,
        json!({"app": {"value": select_value(Some("vpn"))}, "justification": {"value": text_value("on call")}}),
    )
    .await;
    assert_eq!(r["response_action"], "update", "{r}");
    assert_eq!(r["view"]["callback_id"], "request_form");
    let form = &r["view"];
    assert_eq!(inputs(form)[0]["element"]["initial_value"], "on call");
    assert_eq!(inputs(form).len(), 3);
    assert!(app.open_request("U0REQ", "vpn").await.is_none());
    // …whose submission creates the request.
    let (_, r) = submit_view(
        &app,
        "U0REQ",
        form,
        json!({"justification": {"value": text_value("on call")}, "region": {"value": select_value(Some("US"))},
               "end_date": {"value": date_value(Some(&future_date(5)))}}),
    )
    .await;
    assert_eq!(r, json!({"response_action": "clear"}));
    assert!(app.open_request("U0REQ", "vpn").await.is_some());

    // An app with nothing more to ask is requested at once.
    let (_, r) = submit_view(
        &app,
        "U0REQ",
        &picker,
        json!({"app": {"value": select_value(Some("zoom"))}, "justification": {"value": text_value("")}}),
    )
    .await;
    assert_eq!(r, json!({"response_action": "clear"}));
    assert!(app.store().assignment("U0REQ", "zoom").await.unwrap().is_some());
    let (_, r) = submit_view(
        &app,
        "U0REQ",
        &picker,
        json!({"app": {"value": select_value(Some("wiki"))}, "justification": {"value": text_value("team docs")}}),
    )
    .await;
    assert_eq!(r, json!({"response_action": "clear"}));
    assert_eq!(app.open_request("U0REQ", "wiki").await.unwrap().justification, "team docs");
    // Wiki's justification is required: without it, the form asks for it.
    let (_, r) = submit_view(
        &app,
        "U0OTHER",
        &picker,
        json!({"app": {"value": select_value(Some("wiki"))}, "justification": {"value": text_value("")}}),
    )
    .await;
    assert_eq!(r["response_action"], "update");
    // An app that is not requestable is refused next to the select.
    let (_, r) = submit_view(
        &app,
        "U0REQ",
        &picker,
        json!({"app": {"value": select_value(Some("payroll"))}, "justification": {"value": text_value("")}}),
    )
    .await;
    assert_eq!(r, json!({"response_action": "errors", "errors": {"app": "Choose one of the apps in the list"}}));
}

async fn on_behalf_refused_when_off(b: Backend) {
    let app = spawn_with(chat_setup(b)).await;
    let reply = app.say("U0MGR", "request github for <@U0NEW|new> joining the team").await;
    assert!(reply.contains("Not allowed") && reply.contains("behalf"), "{reply}");
    assert!(app.open_request("U0NEW", "github").await.is_none());
    assert!(app.open_request("U0MGR", "github").await.is_none(), "not silently requested for the manager");
    // An app with a form is refused at once, without opening the form.
    let reply = app.say("U0MGR", "request vpn for <@U0NEW|new>").await;
    assert!(reply.contains("Not allowed"), "{reply}");
    app.drain().await;
    assert!(opened(&app).is_empty());
    let blocked = app.events_of("security.request.blocked").await;
    assert_eq!(blocked.len(), 2);
    assert!(blocked.iter().all(|e| e.actor.id == "U0MGR"));
    // "for" followed by words is just the justification.
    let id = app.request_app("U0MGR", "github", "for the Q3 launch").await;
    let r = app.request(&id).await;
    assert_eq!((r.requested_for.id.as_str(), r.justification.as_str()), ("U0MGR", "for the Q3 launch"));
}

async fn on_behalf_allowed(b: Backend) {
    let mut setup = chat_setup(b);
    setup.config = setup.config.replace("technical_contact = \"U0TECH\"", "allow_request_on_behalf = true");
    let app = spawn_with(setup).await;
    let reply = app.say("U0MGR", "request github for <@U0NEW|new> joining the team").await;
    assert!(reply.contains("submitted for <@U0NEW>"), "{reply}");
    let r = app.open_request("U0NEW", "github").await.expect("requested for U0NEW");
    assert_eq!((r.requested_by.id.as_str(), r.justification.as_str()), ("U0MGR", "joining the team"));
    let reply = app.say("U0MGR", "request github for <@U0NEW>").await;
    assert!(reply.contains("<@U0NEW> already has an open request"), "{reply}");

    // Through the form: the beneficiary travels in the modal's metadata.
    assert!(app.say("U0MGR", "request vpn for <@U0NEW|new> on call").await.contains("Opening the form"));
    app.drain().await;
    let form = opened(&app).pop().unwrap();
    let meta: Value = serde_json::from_str(form["private_metadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta, json!({"app": "vpn", "for": "U0NEW"}));
    assert!(form["blocks"].to_string().contains("<@U0NEW>"));
    let (_, r) = submit_view(
        &app,
        "U0MGR",
        &form,
        json!({"justification": {"value": text_value("on call")}, "region": {"value": select_value(Some("EU"))},
               "end_date": {"value": date_value(Some(&future_date(3)))}}),
    )
    .await;
    assert_eq!(r, json!({"response_action": "clear"}));
    let r = app.open_request("U0NEW", "vpn").await.expect("requested for U0NEW");
    assert_eq!(r.requested_by.id, "U0MGR");
    assert!(app.open_request("U0MGR", "vpn").await.is_none());
}

async fn suggest_goes_to_the_technical_contact(b: Backend) {
    let app = spawn_with(chat_setup(b.clone())).await;
    assert!(app.say("U0REQ", "help").await.contains("/access suggest"));
    let reply = app.say("U0REQ", "suggest Figma — design reviews for the web team").await;
    assert!(reply.contains("technical contact") && reply.contains("<@U0TECH>"), "{reply}");
    app.drain().await;
    let dms = app.slack.dms_to("U0TECH");
    assert_eq!(dms.len(), 1);
    assert!(dms[0].text().contains("Figma") && dms[0].text().contains("<@U0REQ>"), "{}", dms[0].text());
    assert!(dms[0].body["text"].as_str().is_some_and(|t| t.contains("Figma")), "fallback text");
    let logged = app.events_of("app.access_request.suggest").await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].actor.id, "U0REQ");
    let reply = app.say("U0REQ", "suggest").await;
    assert!(reply.contains("Say which app you need"), "{reply}");
    assert_eq!(app.events_of("app.access_request.suggest").await.len(), 1);

    // Without a technical contact, suggestions are off.
    let off = spawn_app(b).await;
    let reply = off.say("U0REQ", "suggest Figma").await;
    assert!(reply.contains("turned off"), "{reply}");
    off.drain().await;
    assert!(off.events_of("app.access_request.suggest").await.is_empty());
    assert!(off.slack.ok_calls("chat.postMessage").is_empty());
}

async fn task_step_mark_done(b: Backend) {
    let app = spawn_with(chat_setup(b)).await;
    let id = app.request_app("U0REQ", "laptop", "new hire").await;
    app.drain().await;
    let dms = app.slack.dms_to("U0OPS");
    assert_eq!(dms.len(), 1);
    assert_eq!(buttons(&dms[0].body["blocks"]), [("task_done".to_string(), format!("{id}:0"))]);
    assert!(dms[0].text().contains("Mark done") && dms[0].text().contains("manual"), "{}", dms[0].text());
    // Only the assignee can mark it done.
    assert_eq!(app.click("U0REQ", "task_done", &id, 0).await, StatusCode::OK);
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    app.drain().await;
    assert!(app.slack.ok_calls("response_url").iter().any(|c| c.text().contains("Not allowed")));
    assert_eq!(app.click("U0OPS", "task_done", &id, 0).await, StatusCode::OK);
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "APPROVED");
    assert_eq!(r.steps[0].decided_by.as_deref(), Some("U0OPS"));
    app.drain().await;
    // The task message loses its button and says who did it.
    let upd = app.slack.updates_for("U0OPS");
    assert_eq!(upd.len(), 1);
    assert!(
        upd[0].text().contains("Marked done by <@U0OPS>") && !upd[0].text().contains("task_done"),
        "{}",
        upd[0].text()
    );
}

async fn app_home_shows_requests_and_approvals(b: Backend) {
    let app = spawn_with(chat_setup(b)).await;
    let id = app.request_app("U0REQ", "github", "code review").await;
    let closed = app.request_app("U0REQ", "zoom", "").await;
    // No App Home is published for users who never opened it.
    app.drain().await;
    assert!(app.slack.ok_calls("views.publish").is_empty());

    for u in ["U0REQ", "U0BOB", "U0GHADMIN"] {
        open_home(&app, u).await;
    }
    app.drain().await;
    let home = homes(&app, "U0REQ").pop().expect("published for the requester");
    assert_eq!(home["type"], "home");
    let text = home.to_string();
    assert!(text.contains(&id) && text.contains("GitHub") && text.contains("Security Team"), "{text}");
    assert!(text.contains(&closed) && text.contains("APPROVED"), "recently closed: {text}");
    assert_eq!(
        buttons(&home["blocks"]).into_iter().filter(|(a, _)| a == "cancel_request").collect::<Vec<_>>(),
        [("cancel_request".to_string(), id.clone())]
    );
    assert!(!text.contains("Outstanding requests"), "not an admin");
    assert!(home["blocks"].as_array().unwrap().len() <= 100);

    let bob = homes(&app, "U0BOB").pop().expect("published for the approver");
    let b = buttons(&bob["blocks"]);
    assert!(
        b.contains(&("approve".to_string(), format!("{id}:0"))) && b.contains(&("deny".to_string(), format!("{id}:0")))
    );
    let admin = homes(&app, "U0GHADMIN").pop().expect("published for the app admin");
    assert!(admin.to_string().contains("Outstanding requests") && admin.to_string().contains(&id));

    // A decision on the request republishes the Homes of the people involved.
    let before = (homes(&app, "U0REQ").len(), homes(&app, "U0BOB").len());
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.drain().await;
    assert!(homes(&app, "U0REQ").len() > before.0, "the requester's Home is republished");
    let home = homes(&app, "U0REQ").pop().unwrap();
    assert!(!buttons(&home["blocks"]).iter().any(|(a, _)| a == "cancel_request"), "no Cancel once approved");
    assert!(homes(&app, "U0BOB").len() > before.1, "the approver's Home is republished");
    let bob = homes(&app, "U0BOB").pop().unwrap();
    assert!(!buttons(&bob["blocks"]).iter().any(|(a, _)| a == "approve"), "no stale buttons");
    assert!(homes(&app, "U0CAROL").is_empty());

    // The Home's "Request an app" button opens the picker.
    assert_eq!(home_click(&app, "U0REQ", "open_request_form", "home").await, StatusCode::OK);
    app.drain().await;
    assert_eq!(opened(&app).pop().unwrap()["callback_id"], "request_pick");
}

async fn approve_and_cancel_from_app_home(b: Backend) {
    let app = spawn_with(chat_setup(b)).await;
    let id = app.request_app("U0REQ", "github", "code review").await;
    open_home(&app, "U0REQ").await;
    open_home(&app, "U0BOB").await;
    app.drain().await;

    // Someone else's Cancel is refused, told by DM (the Home has no response_url) and logged.
    assert_eq!(home_click(&app, "U0BOB", "cancel_request", &id).await, StatusCode::OK);
    app.drain().await;
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    assert!(app.slack.dms_to("U0BOB").iter().any(|c| c.text().contains("Not allowed")));
    assert!(app.events_of("security.request.blocked").await.iter().any(|e| e.actor.id == "U0BOB"));

    let published = homes(&app, "U0REQ").len();
    assert_eq!(home_click(&app, "U0REQ", "cancel_request", &id).await, StatusCode::OK);
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "CANCELED");
    let ev = app.events(&id).await;
    let del = ev.iter().find(|e| e.event_type == "app.access_request.delete").expect("cancel logged");
    assert_eq!(del.actor.id, "U0REQ");
    assert_eq!(del.debug_context.debug_data["canceledBy"], "REQUESTER");
    assert!(homes(&app, "U0REQ").len() > published);
    assert!(!buttons(&homes(&app, "U0REQ").pop().unwrap()["blocks"]).iter().any(|(a, _)| a == "cancel_request"));
    // The approvers' messages lose their buttons.
    assert!(app.slack.updates_for("U0BOB").iter().any(|c| c.text().contains("Canceled")));

    // Approving from the Home works like the DM button.
    let id = app.request_app("U0REQ", "github", "again").await;
    app.drain().await;
    assert_eq!(home_click(&app, "U0BOB", "approve", &format!("{id}:0")).await, StatusCode::OK);
    assert_eq!(app.request(&id).await.status.as_str(), "APPROVED");
}

crate::both!(
    request_form_for_required_fields,
    form_submission_errors_and_success,
    app_picker,
    on_behalf_refused_when_off,
    on_behalf_allowed,
    suggest_goes_to_the_technical_contact,
    task_step_mark_done,
    app_home_shows_requests_and_approvals,
    approve_and_cancel_from_app_home,
);
