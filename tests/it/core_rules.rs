//! Rules the core decides once for every entry point: user text reaches Slack
//! escaped whichever path carries it; one way in for new requests (limits and
//! bounds hold for the command, the forms and the API alike); identity before
//! routing; refusal and suggestion budgets.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_slack::{Fail, FakeSlack};
use crate::helpers::*;

/// Everything Slack would turn live in mrkdwn: broadcasts, a mention, a disguised link.
const EVIL: &str = "<!channel> <!here> <@U0EVIL> <https://evil.example|Click to approve>";
const LIVE: [&str; 4] = ["<!channel>", "<!here>", "<@U0EVIL>", "<https://evil.example"];

const RULES_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]
technical_contact = "U0TECH"
admin_channel = "C0ADMINS"

[apps.wiki]
name = "Wiki"
steps = [{ user = "U0ALICE" }, { user = "U0DAVE" }]

[apps.vpn]
name = "VPN"
steps = [{ user = "U0ALICE" }]
fields = [
  { id = "justification", label = "Business justification", type = "text", required = true },
  { id = "team", label = "Team", type = "text", required = true },
]

[apps.figma]
name = "Figma"
admins = ["U0FIGADMIN"]
steps = [{ user = "zoe@example.com" }]
"#;

fn rules_setup(b: Backend) -> Setup {
    let mut s = Setup::new(b);
    s.config = RULES_CONFIG.to_string();
    s
}

async fn api_message(app: &TestApp, id: &str, text: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{}/governance/api/v2/requests/{id}/messages", app.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({ "message": text }))
        .send()
        .await
        .unwrap()
        .status()
}

async fn api_create(app: &TestApp, entry: &str, user: &str, why: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/governance/api/v2/requests", app.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({"requested": {"type": "CATALOG_ENTRY", "entryId": entry},
                      "requestedFor": {"type": "SLACK_USER", "externalId": user},
                      "requesterFieldValues": [{"id": "justification", "value": why}]}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A modal as Slack submits it: the opened view with these input values.
async fn submit_view(app: &TestApp, user: &str, view: &Value, values: Value) -> Value {
    let mut v = view.clone();
    v["id"] = json!("V0FORM");
    v["state"] = json!({ "values": values });
    let payload = json!({"type": "view_submission", "team": {"id": TEAM}, "user": {"id": user, "team_id": TEAM},
                         "trigger_id": "9.9.submit", "view": v});
    app.interaction(payload).await.json().await.unwrap_or(Value::Null)
}

fn text_value(v: &str) -> Value {
    json!({"type": "plain_text_input", "value": v})
}

/// The view of the last `views.open` call.
fn opened_view(slack: &FakeSlack) -> Value {
    slack.ok_calls("views.open").last().expect("a form was opened").body["view"].clone()
}

/// The app picker as `/access request` opens it, submitted with this app and justification.
async fn pick(app: &TestApp, user: &str, entry: &str, why: &str) -> Value {
    app.say(user, "request").await;
    app.drain().await;
    let view = opened_view(&app.slack);
    let values = json!({"app": {"value": {"type": "static_select", "selected_option": {"value": entry}}},
                        "justification": {"value": text_value(why)}});
    submit_view(app, user, &view, values).await
}

async fn user_text_never_reaches_slack_live(b: Backend) {
    let app = spawn_with(rules_setup(b)).await;
    // A justification, then the approver's thread and the requester's DMs.
    let wiki = app.request_app("U0EVE", "wiki", EVIL).await;
    app.drain().await;
    assert_eq!(app.click("U0ALICE", "approve", &wiki, 0).await, StatusCode::OK);
    // An API message: the requester's DM and every approver thread.
    assert_eq!(api_message(&app, &wiki, EVIL).await, StatusCode::CREATED);
    // Field answers typed into the request form.
    app.say("U0EVE", "request vpn").await;
    app.drain().await;
    let form = opened_view(&app.slack);
    let values = json!({"justification": {"value": text_value(EVIL)}, "team": {"value": text_value(EVIL)}});
    assert_eq!(submit_view(&app, "U0EVE", &form, values).await, json!({"response_action": "clear"}));
    let vpn = app.open_request("U0EVE", "vpn").await.expect("vpn requested").id;
    // A suggestion for the technical contact.
    assert!(app.say("U0EVE", &format!("suggest {EVIL}")).await.contains("Thanks"));
    // A cancel reason: the requester's DM and the admin channel.
    let reply = app.say("U0ROOT", &format!("admin cancel {vpn} {EVIL}")).await;
    assert!(reply.contains("Canceled"), "{reply}");
    app.drain().await;

    let calls = app.slack.calls();
    for c in &calls {
        let body = c.body.to_string();
        for live in LIVE {
            assert!(!body.contains(live), "{} sent `{live}` live: {body}", c.method);
        }
    }
    // Each path did carry the text, escaped.
    let escaped = |c: &&crate::fake_slack::Call| c.body.to_string().contains("&lt;!channel&gt;");
    let dm = |user: &str| app.slack.dms_to(user);
    assert!(dm("U0ALICE").iter().any(|c| escaped(&c)), "justification and fields in the approver DM");
    assert!(dm("U0TECH").iter().any(|c| escaped(&c)), "suggestion");
    assert!(dm("U0EVE").iter().filter(|c| escaped(c)).count() >= 2, "API message and cancel reason");
    assert!(app.slack.thread_replies_to("U0ALICE").iter().any(|c| escaped(&c)), "API message in the thread");
    let feed = app.slack.ok_calls("chat.postMessage");
    assert!(feed.iter().any(|c| c.body["channel"] == "C0ADMINS"), "admin channel fed");
}

async fn every_entry_point_draws_on_one_rate_limit(b: Backend) {
    let mut setup = Setup::new(b);
    let mut config = String::from("[settings]\nadmins = [\"U0ROOT\"]\n");
    for i in 1..=14 {
        config.push_str(&format!("\n[apps.a{i:02}]\nname = \"App {i}\"\napproval = false\n"));
    }
    setup.config = config;
    let app = spawn_with(setup).await;
    // Ten through the app picker (the modal path), at once.
    for i in 1..=10 {
        let r = pick(&app, "U0FAST", &format!("a{i:02}"), "picked").await;
        assert_eq!(r, json!({"response_action": "clear"}), "request {i} through the picker");
    }
    // The eleventh is refused on the picker, the command and the API alike.
    let r = pick(&app, "U0FAST", "a11", "picked").await;
    assert_eq!(r["response_action"], "errors", "{r}");
    assert!(r.to_string().contains("too fast"), "{r}");
    assert!(app.say("U0FAST", "request a12").await.contains("too fast"));
    assert_eq!(api_create(&app, "a13", "U0FAST", "api").await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.store().requests_for_user("U0FAST", 100).await.unwrap().len(), 10);
}

async fn an_over_long_justification_is_refused_on_every_path(b: Backend) {
    let app = spawn_with(rules_setup(b)).await;
    let long = "x".repeat(2001);
    let reply = app.say("U0EVE", &format!("request wiki {long}")).await;
    assert!(reply.contains("2001 characters long; the limit is 2000"), "{reply}");
    let r = pick(&app, "U0EVE", "wiki", &long).await;
    assert_eq!(r["response_action"], "errors", "{r}");
    assert!(r.to_string().contains("2001 characters long"), "{r}");
    let (status, e) = api_create(&app, "wiki", "U0EVE", &long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["errorCode"], "E0000001");
    assert_eq!(e["errorCauses"][0]["location"], "justification", "{e}");
    // A text field answer has the same bound.
    let (status, _) = reqwest::Client::new()
        .post(format!("{}/governance/api/v2/requests", app.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "vpn"},
                      "requestedFor": {"type": "SLACK_USER", "externalId": "U0EVE"},
                      "requesterFieldValues": [{"id": "justification", "value": "ok"}, {"id": "team", "value": long}]}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Exactly 2,000 is fine.
    assert!(app.say("U0EVE", &format!("request wiki {}", "y".repeat(2000))).await.contains("submitted"));
    assert!(app.store().requests_for_user("U0EVE", 10).await.unwrap().len() == 1);
}

/// Zoe is Figma's only approver, configured by email; Slack's email look-up
/// does not know her, `users.info` does. Her own first request goes to the
/// app's admins and never to her.
async fn a_requester_configured_by_email_never_approves_their_own_first_request(b: Backend) {
    let slack = FakeSlack::start().await;
    slack.add_user("U0ZOE", "zoe@example.com");
    slack.fail_next("users.lookupByEmail", vec![Fail::NotOk("users_not_found")]);
    let app = spawn_on(rules_setup(b), slack).await;
    let id = app.request_app("U0ZOE", "figma", "first command ever").await;
    app.drain().await;
    let r = app.request(&id).await;
    assert_eq!(r.status.as_str(), "PENDING");
    assert_eq!(r.requested_for.email.as_deref(), Some("zoe@example.com"));
    let step = &r.steps[0];
    assert_eq!(step.routed_to, Some(accessbot::workflow::model::Routing::AppAdmins));
    assert_eq!(step.approvers, vec![accessbot::workflow::Person::Slack("U0FIGADMIN".into())]);
    assert_eq!(app.slack.dms_to("U0FIGADMIN").len(), 1, "the admin is asked");
    let buttons = app.slack.dms_to("U0ZOE").iter().filter(|c| c.body.to_string().contains("\"approve\"")).count();
    assert_eq!(buttons, 0, "Zoe is never asked to approve her own request");
}

/// Slack cannot say who the requester is yet: the request waits as
/// SUBMITTED, nobody is asked, and it is routed once Slack answers.
async fn a_request_waits_for_its_requester_and_is_routed_once_known(b: Backend) {
    let app = spawn_with(rules_setup(b)).await;
    app.slack.set_down(true);
    let reply = app.say("U0NEW", "request wiki waiting for slack").await;
    assert!(reply.contains("as soon as Slack confirms who you are"), "{reply}");
    let r = app.open_request("U0NEW", "wiki").await.expect("created");
    assert_eq!(r.status.as_str(), "SUBMITTED");
    assert!(r.steps.is_empty(), "not routed on a guess");
    app.slack.set_down(false);
    app.drain().await;
    wait_routed(&app.store(), &r.id).await;
    let r = app.request(&r.id).await;
    assert_eq!(r.status.as_str(), "PENDING");
    assert_eq!(app.slack.dms_to("U0ALICE").len(), 1);
    let t = types(&app.events(&r.id).await);
    assert_eq!(&t[..2], ["app.access_request.request", "app.access_request.route"], "{t:?}");
}

/// A requester Slack says does not exist is rejected with the reason; one
/// Slack never answers for is rejected after the deadline.
async fn an_unidentified_requester_is_rejected_never_routed(b: Backend) {
    let clock = accessbot::workflow::ManualClock::new(chrono::Utc::now());
    let mut setup = rules_setup(b);
    setup.clock = Some(clock.clone());
    let app = spawn_with(setup).await;
    app.slack.fail_next("users.info", vec![Fail::NotOk("user_not_found"); 4]);
    app.say("U0GHOST", "request wiki who am i").await;
    app.drain().await;
    let r = app.store().requests_for_user("U0GHOST", 5).await.unwrap().remove(0);
    assert_eq!(r.status.as_str(), "REJECTED");
    assert!(r.reason.as_deref().unwrap_or_default().contains("could not find out who U0GHOST is"), "{r:?}");
    assert!(app.slack.dms_to("U0ALICE").is_empty());

    app.slack.set_down(true);
    app.say("U0LATE", "request wiki still waiting").await;
    let late = app.open_request("U0LATE", "wiki").await.expect("waiting").id;
    let workflow = app.running.as_ref().unwrap().workflow.clone();
    workflow.run_jobs().await.unwrap();
    assert_eq!(app.request(&late).await.status.as_str(), "SUBMITTED", "within the deadline it waits");
    clock.advance(chrono::Duration::minutes(16));
    let report = workflow.run_jobs().await.unwrap();
    assert_eq!(report.rejected, 1);
    let r = app.request(&late).await;
    assert_eq!(r.status.as_str(), "REJECTED");
    assert!(r.reason.unwrap().contains("could not be identified within 15 minutes"));
    app.slack.set_down(false);
}

async fn refusals_are_logged_within_a_budget_and_all_counted(b: Backend) {
    let app = spawn_with(rules_setup(b)).await;
    let id = app.request_app("U0EVE", "wiki", "mine").await;
    for _ in 0..60 {
        let reply = app.say("U0MALLORY", &format!("admin cancel {id} no")).await;
        assert!(reply.contains("Not allowed"), "{reply}");
    }
    let logged = app.events_of("security.request.blocked").await;
    let by_mallory = logged.iter().filter(|e| e.actor.id == "U0MALLORY").count();
    assert!((30..=32).contains(&by_mallory), "{by_mallory} refusals logged");
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    let text = reqwest::get(format!("{}/metrics", app.base)).await.unwrap().text().await.unwrap();
    assert!(text.contains("accessbot_refusals_total{action=\"admin cancel\"} 60"), "{text}");
}

async fn suggestions_are_rate_limited_per_user(b: Backend) {
    let app = spawn_with(rules_setup(b)).await;
    for i in 0..5 {
        assert!(app.say("U0IDEAS", &format!("suggest app number {i}")).await.contains("Thanks"));
    }
    let reply = app.say("U0IDEAS", "suggest one more").await;
    assert!(reply.contains("many suggestions recently; try again in"), "{reply}");
    assert!(app.say("U0OTHER", "suggest a different person").await.contains("Thanks"));
    app.drain().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.slack.dms_to("U0TECH").len(), 6, "five from one user, one from another");
    assert_eq!(app.events_of("app.access_request.suggest").await.len(), 6);
}

crate::both!(
    user_text_never_reaches_slack_live,
    every_entry_point_draws_on_one_rate_limit,
    an_over_long_justification_is_refused_on_every_path,
    a_requester_configured_by_email_never_approves_their_own_first_request,
    a_request_waits_for_its_requester_and_is_routed_once_known,
    an_unidentified_requester_is_rejected_never_routed,
    refusals_are_logged_within_a_budget_and_all_counted,
    suggestions_are_rate_limited_per_user,
);
