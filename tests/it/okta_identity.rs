//! One identity across systems: with `[okta]`, the API names people by their
//! Okta user id and takes Okta ids in create, filters and catalog paths
//! (resolved through the fake Okta's Users API, then Slack by email); Slack
//! ids keep working; without `[okta]` nothing changes.

use accessbot::store::Identity;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::fake_slack::FakeSlack;
use crate::helpers::*;
use crate::okta::{FakeOkta, OktaFail};

/// Okta user ids are 20 characters: `00u` and 17 letters and digits.
const ZOE: &str = "00u1zoe0000000000000";
const BEN: &str = "00u1ben0000000000000";
const GHOST: &str = "00u1ghost00000000000";
const LATE: &str = "00u1late000000000000";
const NOBODY: &str = "00u9nobody0000000000";
const ALICE: &str = "00u1alice00000000000";

const CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]
allow_request_on_behalf = true

[okta]
org_url = "{OKTA}"

[apps.vpn]
name = "VPN"
steps = [{ user = "U0ALICE" }]

[apps.wiki]
name = "Wiki"
approval = false
"#;

struct World {
    app: TestApp,
    okta: FakeOkta,
}

/// Zoe, Ben and Alice are in Slack and Okta; Ghost only in Okta; Noa and
/// Late only in Slack.
async fn world(b: Backend) -> World {
    let okta = FakeOkta::start().await;
    okta.add_user("zoe@example.com", ZOE);
    okta.add_user("ben@example.com", BEN);
    okta.add_user("ghost@example.com", GHOST);
    let slack = FakeSlack::start().await;
    slack.add_user("U0ZOE", "zoe@example.com");
    slack.add_user("U0BEN", "ben@example.com");
    slack.add_user("U0NOA", "noa@example.com");
    slack.add_user("U0LATE", "late@example.com");
    slack.add_user("U0ALICE", "alice@example.com");
    okta.add_user("alice@example.com", ALICE);
    let mut setup = Setup::new(b);
    setup.config = CONFIG.replace("{OKTA}", &okta.url());
    World { app: spawn_on(setup, slack).await, okta }
}

async fn api(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", app.base)).bearer_auth(API_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = api(app, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

fn create_body(entry: &str, requested_for: Value, requested_by: Option<Value>) -> Value {
    let mut body = json!({"requested": {"type": "CATALOG_ENTRY", "entryId": entry}, "requestedFor": requested_for});
    if let Some(by) = requested_by {
        body["requestedBy"] = by;
    }
    body
}

fn okta_user(id: &str) -> Value {
    json!({"type": "OKTA_USER", "externalId": id})
}

fn slack_user(id: &str) -> Value {
    json!({"type": "SLACK_USER", "externalId": id})
}

async fn create(app: &TestApp, body: Value) -> (StatusCode, Value) {
    api(app, Method::POST, "/governance/api/v2/requests", Some(body)).await
}

/// The ids of the requests a filter lists.
async fn listed(app: &TestApp, filter: &str) -> Vec<String> {
    let q: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    let page = get(app, &format!("/governance/api/v2/requests?filter={q}")).await;
    page["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

async fn okta_id_of(app: &TestApp, user: &str) -> Option<String> {
    app.store().identity(user).await.unwrap().and_then(|i| i.okta_id)
}

async fn responses_name_people_by_okta_id(b: Backend) {
    let World { app, okta } = world(b).await;
    // Alice first uses accessbot herself (identified, so her Okta id is learned too).
    app.say("U0ALICE", "mine").await;
    let zoe = app.request_app("U0ZOE", "vpn", "remote work").await;
    let noa = app.request_app("U0NOA", "vpn", "remote work").await;
    app.drain().await;
    // Learned after first contact, by email; Noa has no Okta user.
    assert_eq!(okta_id_of(&app, "U0ZOE").await.as_deref(), Some(ZOE));
    assert_eq!(okta_id_of(&app, "U0NOA").await, None);
    assert_eq!(okta.calls_to("GET", "/api/v1/users/zoe@example.com").len(), 1);
    assert_eq!(okta.calls_to("GET", "/api/v1/users/noa@example.com").len(), 1);

    let r = get(&app, &format!("/governance/api/v2/requests/{zoe}")).await;
    assert_eq!(r["requestedFor"], json!({"type": "OKTA_USER", "externalId": ZOE, "email": "zoe@example.com"}));
    assert_eq!(r["requestedBy"]["type"], "OKTA_USER");
    assert_eq!(r["requestedBy"]["externalId"], ZOE);
    assert_eq!(r["createdBy"], ZOE, "the creator too, when it is a person with an Okta id");
    // Not known in Okta: the Slack id, accessbot's extension.
    let r = get(&app, &format!("/governance/api/v2/requests/{noa}")).await;
    assert_eq!(r["requestedFor"]["type"], "SLACK_USER");
    assert_eq!(r["requestedFor"]["externalId"], "U0NOA");

    // Alice decides; her Okta id is the decider's.
    assert_eq!(app.click("U0ALICE", "approve", &zoe, 0).await, StatusCode::OK);
    let list = get(&app, "/governance/api/v2/requests?orderBy=created").await;
    let types: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|r| r["requestedFor"]["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["OKTA_USER", "SLACK_USER"]);
    assert_eq!(list["data"][0]["requestApproval"]["decisions"][0]["deciderId"], ALICE);
    assert_eq!(list["data"][0]["status"], "APPROVED");
}

async fn create_with_an_okta_user_reaches_their_slack_user(b: Backend) {
    let World { app, okta } = world(b).await;
    let (status, r) = create(&app, create_body("vpn", okta_user(ZOE), Some(okta_user(BEN)))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["requestedFor"], json!({"type": "OKTA_USER", "externalId": ZOE, "email": "zoe@example.com"}));
    assert_eq!(r["requestedBy"]["externalId"], BEN);
    let id = r["id"].as_str().unwrap().to_string();

    // Okta said whose ids they are; Slack, by email, who they are in chat.
    assert_eq!(okta.calls_to("GET", &format!("/api/v1/users/{ZOE}")).len(), 1);
    assert_eq!(okta.calls_to("GET", &format!("/api/v1/users/{BEN}")).len(), 1);
    let lookups = app.slack.ok_calls("users.lookupByEmail");
    assert!(lookups.iter().any(|c| c.body["email"] == "zoe@example.com"), "{lookups:?}");
    let stored = app.request(&id).await;
    assert_eq!((stored.requested_for.id.as_str(), stored.requested_by.id.as_str()), ("U0ZOE", "U0BEN"));
    let zoe = app.store().identity("U0ZOE").await.unwrap().unwrap();
    assert_eq!(
        (zoe.okta_id.as_deref(), zoe.email.as_deref(), zoe.resolved),
        (Some(ZOE), Some("zoe@example.com"), true)
    );

    // Routed like any request: Alice is asked, Zoe told, in Slack; logged for Zoe.
    wait_routed(&app.store(), &id).await;
    app.drain().await;
    assert_eq!(app.slack.dms_to("U0ALICE").len(), 1);
    assert!(app.slack.dms_to("U0ALICE")[0].text().contains(&id));
    assert!(app.slack.dms_to("U0ZOE")[0].text().contains(&id));
    let ev = &app.events(&id).await[0];
    assert_eq!(ev.event_type, "app.access_request.request");
    assert!(ev.target.iter().any(|t| t.id == "U0ZOE"), "{:?}", ev.target);

    // A second create by Okta id needs no call to Okta; the Slack form still works.
    let (status, again) = create(&app, create_body("vpn", okta_user(ZOE), None)).await;
    assert_eq!((status, again["id"].as_str()), (StatusCode::OK, Some(id.as_str())));
    assert_eq!(okta.calls_to("GET", &format!("/api/v1/users/{ZOE}")).len(), 1, "remembered");
    let (status, wiki) = create(&app, create_body("wiki", slack_user("U0ZOE"), None)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{wiki}");
    assert_eq!(wiki["requestedFor"]["type"], "OKTA_USER", "known by Okta id: named so");

    // The catalog's user paths take Okta ids too.
    let entries = get(&app, &format!("/governance/api/v2/catalogs/default/user/{ZOE}/entries")).await;
    assert_eq!(entries["data"].as_array().unwrap().len(), 2);
}

async fn unknown_okta_users_are_a_400(b: Backend) {
    let World { app, okta } = world(b).await;
    let cases = [
        (create_body("vpn", okta_user(NOBODY), None), "requestedFor.externalId", "Okta user"),
        (create_body("vpn", okta_user(GHOST), None), "requestedFor.externalId", "Slack user"),
        (create_body("vpn", slack_user("U0ZOE"), Some(okta_user(NOBODY))), "requestedBy.externalId", "Okta user"),
        (create_body("vpn", okta_user("00u-not-an-id"), None), "requestedFor.externalId", "Okta user id"),
        (create_body("vpn", json!({"type": "GROUP", "externalId": ZOE}), None), "requestedFor.type", "OKTA_USER"),
    ];
    for (body, location, says) in cases {
        let (status, err) = create(&app, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {err}");
        assert_eq!(err["errorCode"], "E0000001");
        assert_eq!(err["errorCauses"][0]["location"], location, "{err}");
        assert!(err["errorCauses"][0]["reason"].as_str().unwrap().contains(says), "{err}");
    }
    // Okta down: try again later (and no request).
    okta.fail_next("GET", vec![OktaFail::ServerError]);
    let (status, err) = create(&app, create_body("vpn", okta_user(BEN), None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["errorCode"], "E0000009");
    let (status, err) =
        api(&app, Method::GET, &format!("/governance/api/v2/catalogs/default/user/{NOBODY}/entries"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");

    app.drain().await;
    assert!(listed(&app, "status eq \"PENDING\" or status eq \"SUBMITTED\"").await.is_empty());
    assert!(app.events_of("app.access_request.request").await.is_empty());
    assert!(app.slack.ok_calls("chat.postMessage").is_empty(), "nobody was told anything");
}

async fn filters_take_okta_ids(b: Backend) {
    let World { app, okta } = world(b).await;
    let zoe = app.request_app("U0ZOE", "vpn", "remote work").await;
    let (status, ben) = create(&app, create_body("vpn", slack_user("U0NOA"), Some(slack_user("U0BEN")))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let ben = ben["id"].as_str().unwrap().to_string();
    let late = app.request_app("U0LATE", "vpn", "remote work").await;
    app.drain().await;

    assert_eq!(listed(&app, &format!("requestedFor eq \"{ZOE}\"")).await, [zoe.as_str()]);
    assert_eq!(listed(&app, &format!("requestedFor.externalId eq \"{ZOE}\"")).await, [zoe.as_str()]);
    assert_eq!(listed(&app, &format!("requestedBy eq \"{BEN}\"")).await, [ben.as_str()]);
    assert_eq!(
        listed(&app, &format!("requestedBy.externalId eq \"{BEN}\" and requestedFor eq \"U0NOA\"")).await,
        [ben.as_str()]
    );
    assert_eq!(listed(&app, "requestedFor eq \"U0ZOE\"").await, [zoe.as_str()], "Slack ids keep working");
    let mut others = listed(&app, &format!("requestedFor ne \"{ZOE}\"")).await;
    others.sort();
    let mut want = vec![ben.clone(), late.clone()];
    want.sort();
    assert_eq!(others, want);
    assert!(
        listed(&app, &format!("requestedFor eq \"{NOBODY}\"")).await.is_empty(),
        "an id nobody has matches nothing"
    );
    assert!(listed(&app, &format!("requestedFor eq \"{GHOST}\"")).await.is_empty(), "in Okta, not here");

    // Late joined Okta after their first contact: the filter asks Okta, finds them by email, remembers.
    assert_eq!(okta_id_of(&app, "U0LATE").await, None);
    okta.add_user("late@example.com", LATE);
    assert_eq!(listed(&app, &format!("requestedFor eq \"{LATE}\"")).await, [late.as_str()]);
    assert_eq!(okta_id_of(&app, "U0LATE").await.as_deref(), Some(LATE));
    let r = get(&app, &format!("/governance/api/v2/requests/{late}")).await;
    assert_eq!(r["requestedFor"]["externalId"], LATE);

    let many: Vec<String> = (0..21).map(|i| format!("requestedFor eq \"00u{i:017}\"")).collect();
    let q: String = url::form_urlencoded::byte_serialize(many.join(" or ").as_bytes()).collect();
    let (status, err) = api(&app, Method::GET, &format!("/governance/api/v2/requests?filter={q}"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["errorCauses"][0]["reason"].as_str().unwrap().contains("at most 20 Okta user ids"), "{err}");
}

async fn okta_ids_are_learned_for_people_known_before(b: Backend) {
    let World { app, okta } = world(b.clone()).await;
    let mut without = Setup::new(b.clone());
    without.config = CONFIG.replace("[okta]\norg_url = \"{OKTA}\"\n", "");
    let app = app.restart(without).await;
    let id = app.request_app("U0BEN", "vpn", "remote work").await;
    app.drain().await;
    assert_eq!(okta_id_of(&app, "U0BEN").await, None, "no connector, no look-up");
    assert!(okta.calls_to("GET", "/api/v1/users/ben@example.com").is_empty());

    // The connector turned on: everyone known by email is looked up at start.
    let mut with = Setup::new(b);
    with.config = CONFIG.replace("{OKTA}", &okta.url());
    let app = app.restart(with).await;
    app.drain().await;
    assert_eq!(okta_id_of(&app, "U0BEN").await.as_deref(), Some(BEN));
    let r = get(&app, &format!("/governance/api/v2/requests/{id}")).await;
    assert_eq!(r["requestedFor"]["externalId"], BEN);
}

async fn without_okta_people_stay_slack_users(b: Backend) {
    let app = spawn_app(b).await;
    let (status, r) = create(&app, create_body("zoom", slack_user("U0REQ"), None)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["requestedFor"]["type"], "SLACK_USER");
    assert_eq!(r["requestedBy"], json!({"type": "SLACK_USER", "externalId": "U0REQ"}));
    let id = r["id"].as_str().unwrap().to_string();
    app.drain().await;
    let got = get(&app, &format!("/governance/api/v2/requests/{id}")).await;
    assert_eq!(
        (got["requestedFor"]["type"].as_str(), got["createdBy"].as_str()),
        (Some("SLACK_USER"), r["createdBy"].as_str())
    );
    assert_eq!(listed(&app, "requestedFor eq \"U0REQ\"").await, [id]);
    assert!(listed(&app, &format!("requestedFor eq \"{ZOE}\"")).await.is_empty());

    let (status, err) = create(&app, create_body("zoom", okta_user(ZOE), None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["errorCauses"][0]["location"], "requestedFor.externalId");
    assert!(err["errorCauses"][0]["reason"].as_str().unwrap().contains("[okta]"), "{err}");
    // Nothing is queued for Okta.
    let queued = app.store().outbox_counts().await.unwrap();
    assert_eq!(queued.pending, 0);
    assert!(app.store().identity("U0REQ").await.unwrap().is_some_and(|i| i.okta_id.is_none()));
}

/// The store keeps and finds Okta ids, merging them like the other fields.
async fn identities_keep_okta_ids(b: Backend) {
    let app = spawn_app(b).await;
    let store = app.store();
    let zoe = |okta: Option<&str>| Identity {
        user_id: "U0ZOE".into(),
        email: Some("zoe@example.com".into()),
        resolved: true,
        okta_id: okta.map(Into::into),
        ..Identity::default()
    };
    store.save_identity(&zoe(None)).await.unwrap();
    store.save_identity(&Identity { user_id: "U0NOMAIL".into(), resolved: true, ..Identity::default() }).await.unwrap();
    let missing = store.identities_without_okta_id(100).await.unwrap();
    assert!(missing.contains(&zoe(None)) && missing.iter().all(|i| i.user_id != "U0NOMAIL"), "{missing:?}");
    assert!(store.identity_by_okta_id(ZOE).await.unwrap().is_none());

    store
        .save_identity(&Identity { user_id: "U0ZOE".into(), okta_id: Some(ZOE.into()), ..Identity::default() })
        .await
        .unwrap();
    store
        .save_identity(&Identity { user_id: "U0ZOE".into(), name: Some("Zoe".into()), ..Identity::default() })
        .await
        .unwrap();
    let want = Identity { name: Some("Zoe".into()), ..zoe(Some(ZOE)) };
    assert_eq!(store.identity("U0ZOE").await.unwrap(), Some(want.clone()), "a later save without it keeps it");
    assert_eq!(store.identity_by_okta_id(ZOE).await.unwrap(), Some(want.clone()));
    let some = store.identities_of(&["U0ZOE".into(), "U0NOBODY".into()]).await.unwrap();
    assert_eq!(some, vec![want]);
    assert!(store.identities_of(&[]).await.unwrap().is_empty());
    assert!(store.identities_without_okta_id(100).await.unwrap().iter().all(|i| i.user_id != "U0ZOE"));
}

crate::both!(
    responses_name_people_by_okta_id,
    create_with_an_okta_user_reaches_their_slack_user,
    unknown_okta_users_are_a_400,
    filters_take_okta_ids,
    okta_ids_are_learned_for_people_known_before,
    without_okta_people_stay_slack_users,
    identities_keep_okta_ids,
);
