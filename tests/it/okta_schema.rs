//! Real responses validate against Okta's published contract
//! (`../shared/okta/access-requests-v2.yaml`), on both backends.
//!
//! OpenAPI 3.0 schemas become JSON Schema (`nullable` → a `null` type); `$ref`s
//! resolve inside one document holding Okta's components. Relaxed on purpose:
//! catalog entry and resource ids (accessbot's are app ids, not Okta's
//! 20-character ids) and `createdBy`/`lastUpdatedBy` (an API token's name when
//! a token created the request). Principals are Okta's own with the Okta
//! connector on ([`Ids::Okta`]: `OKTA_USER`, `00u…`, deciders' ids too);
//! without it ([`Ids::Slack`]) `OKTA_USER` also allows `SLACK_USER` and user
//! ids lose their pattern: accessbot's users are Slack users then.

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::*;

const CONTRACT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/okta/access-requests-v2.yaml");

const SCHEMA_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]
allow_request_on_behalf = true

[groups.security]
name = "Security Team"
members = ["U0BOB"]

[apps.vpn]
name = "VPN"
max_duration = "30d"
steps = [{ user = "U0ALICE" }, { group = "security" }]
fields = [
  { id = "justification", label = "Why", type = "text", required = true },
  { id = "region", label = "Region", type = "select", options = ["EU", "US"], required = true },
]

[apps.zoom]
name = "Zoom"
approval = false
"#;

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    other => format!("{other:?}"),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => json!(r.parse::<f64>().unwrap()),
        Yaml::Boolean(b) => json!(b),
        _ => Value::Null,
    }
}

/// How the contract's user ids are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ids {
    /// As Okta says: the Okta connector is on.
    Okta,
    /// Slack users allowed: no connector.
    Slack,
}

/// OpenAPI 3.0 → JSON Schema, with the relaxations described above.
fn convert(v: &mut Value, ids: Ids) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(|v| convert(v, ids));
            let user_id = m.get("pattern").and_then(Value::as_str).is_some_and(|p| p.contains("00u"));
            let other_id = m.get("format").and_then(Value::as_str) == Some("okta-user-id")
                || (m.get("minLength") == Some(&json!(20)) && m.get("maxLength") == Some(&json!(20)));
            if (user_id && ids == Ids::Slack) || (other_id && !user_id) {
                for k in ["pattern", "minLength", "maxLength", "format"] {
                    m.remove(k);
                }
            }
            if let Some(Value::Array(e)) = m.get_mut("enum") {
                if e.contains(&json!("OKTA_USER")) && ids == Ids::Slack {
                    e.push(json!("SLACK_USER"));
                }
            }
            if m.remove("nullable") == Some(json!(true)) {
                if let Some(t) = m.get("type").cloned() {
                    m.insert("type".into(), json!([t, "null"]));
                    if let Some(Value::Array(e)) = m.get_mut("enum") {
                        e.push(Value::Null);
                    }
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| convert(v, ids)),
        _ => {}
    }
}

struct Contract(Value);

impl Contract {
    fn load(ids: Ids) -> Contract {
        let text = std::fs::read_to_string(CONTRACT)
            .unwrap_or_else(|e| panic!("Okta's contract is missing at {CONTRACT} ({e}): see ../shared/okta/README.md"));
        let docs = YamlLoader::load_from_str(&text).expect("the contract is YAML");
        let mut doc = to_json(&docs[0]);
        convert(&mut doc, ids);
        Contract(doc)
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v["$ref"].as_str() {
            Some(r) => self.0.pointer(r.trim_start_matches('#')).expect(r),
            None => v,
        }
    }

    /// The response object for an operation and status.
    fn response(&self, path: &str, method: &str, status: u16) -> &Value {
        let op = &self.0["paths"][path][method];
        assert!(op.is_object(), "Okta has no {method} {path}");
        let r = &op["responses"][status.to_string()];
        assert!(r.is_object(), "Okta's {method} {path} has no {status} response");
        self.resolve(r)
    }

    /// Checks one real response: the body against the schema, and the headers Okta requires.
    fn check(&self, path: &str, method: &str, got: &Got) {
        let r = self.response(path, method, got.status.as_u16());
        for (name, h) in r["headers"].as_object().into_iter().flatten() {
            if self.resolve(h)["required"] == json!(true) {
                assert!(got.headers.contains_key(name.as_str()), "{method} {path}: no {name} header");
            }
        }
        let Some(schema) = r.pointer("/content/application~1json/schema") else { return };
        let mut root = schema.clone();
        root.as_object_mut().unwrap().insert("components".into(), self.0["components"].clone());
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{method} {path}: schema does not compile: {e}"));
        let errors: Vec<String> = v.iter_errors(&got.body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{method} {path} {}: {errors:#?}\n{}", got.status, got.body);
    }
}

struct Got {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Got {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", app.base)).bearer_auth(API_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let text = res.text().await.unwrap();
    Got { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

fn create_body(entry: &str, user: &Value) -> Value {
    json!({"requested": {"type": "CATALOG_ENTRY", "entryId": entry},
           "requestedFor": user,
           "requesterFieldValues": [{"id": "justification", "value": "audit"},
                                    {"id": "region", "type": "SELECT", "values": ["EU"]}]})
}

/// Okta user ids of the people of [`SCHEMA_CONFIG`] (20 characters, as Okta's).
const OKTA_PEOPLE: [(&str, &str, &str); 3] = [
    ("U0REQ", "req@example.com", "00u1req0000000000000"),
    ("U0ALICE", "alice@example.com", "00u1alice00000000000"),
    ("U0BOB", "bob@example.com", "00u1bob0000000000000"),
];

/// With the Okta connector on, an Okta client's requests: principals and
/// deciders are Okta users, validated without any relaxation.
async fn requests_match_okta(b: Backend) {
    let okta = crate::okta::FakeOkta::start().await;
    let slack = crate::fake_slack::FakeSlack::start().await;
    for (id, email, okta_id) in OKTA_PEOPLE {
        slack.add_user(id, email);
        okta.add_user(email, okta_id);
    }
    let mut setup = Setup::new(b);
    setup.config = SCHEMA_CONFIG
        .replace("[groups.security]", &format!("[okta]\norg_url = \"{}\"\n\n[groups.security]", okta.url()));
    let app = spawn_on(setup, slack).await;
    // The approvers have used accessbot before (so their Okta ids are known).
    app.say("U0ALICE", "mine").await;
    app.say("U0BOB", "mine").await;
    app.drain().await;
    let (_, _, req) = OKTA_PEOPLE[0];
    requests_match(&app, &Contract::load(Ids::Okta), &json!({"type": "OKTA_USER", "externalId": req})).await;
    let list = call(&app, Method::GET, "/governance/api/v2/requests", None).await;
    for r in list.body["data"].as_array().unwrap() {
        assert_eq!(r["requestedFor"]["externalId"], req, "{r}");
        assert_eq!(r["requestedBy"]["type"], "OKTA_USER", "{r}");
    }
    assert_eq!(list.body["data"][0]["requestApproval"]["decisions"][0]["deciderId"], OKTA_PEOPLE[1].2);
}

/// Without the connector, people are Slack users (accessbot's extension).
async fn requests_match_okta_with_slack_users(b: Backend) {
    let mut setup = Setup::new(b);
    setup.config = SCHEMA_CONFIG.into();
    let app = spawn_with(setup).await;
    requests_match(&app, &Contract::load(Ids::Slack), &json!({"type": "SLACK_USER", "externalId": "U0REQ"})).await;
    let list = call(&app, Method::GET, "/governance/api/v2/requests", None).await;
    assert_eq!(list.body["data"][0]["requestedFor"]["type"], "SLACK_USER");
}

/// List, get, create, messages and errors, checked against the contract; `user` asks.
async fn requests_match(app: &TestApp, c: &Contract, user: &Value) {
    let (reqs, one, msgs) = (
        "/governance/api/v2/requests",
        "/governance/api/v2/requests/{requestId}",
        "/governance/api/v2/requests/{requestId}/messages",
    );

    let created = call(app, Method::POST, reqs, Some(create_body("vpn", user))).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    assert_eq!(created.body["status"], "SUBMITTED");
    assert_eq!(created.body["requestedFor"]["externalId"], user["externalId"]);
    c.check(reqs, "post", &created);
    let id = created.body["id"].as_str().unwrap().to_string();
    let zoom = json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "zoom"}, "requestedFor": user});
    let instant = call(app, Method::POST, reqs, Some(zoom)).await;
    assert_eq!(instant.status, StatusCode::ACCEPTED, "{}", instant.body);
    c.check(reqs, "post", &instant);
    app.drain().await;
    assert_eq!(app.click("U0ALICE", "approve", &id, 0).await, StatusCode::OK);

    for path in [format!("{reqs}/{id}"), format!("{reqs}/{}", instant.body["id"].as_str().unwrap())] {
        let got = call(app, Method::GET, &path, None).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body["requestApproval"]["type"], "OKTA");
        c.check(one, "get", &got);
    }
    let list = call(app, Method::GET, &format!("{reqs}?limit=1"), None).await;
    assert!(list.body["_links"]["next"].is_object());
    c.check(reqs, "get", &list);
    let msg = call(app, Method::POST, &format!("{reqs}/{id}/messages"), Some(json!({"message": "hi"}))).await;
    assert_eq!(msg.status, StatusCode::CREATED);
    c.check(msgs, "post", &msg);

    // Errors.
    for (q, status) in [("filter=bad", 400), ("after=req00000000000000000", 400)] {
        let got = call(app, Method::GET, &format!("{reqs}?{q}"), None).await;
        assert_eq!(got.status.as_u16(), status, "{q}");
        c.check(reqs, "get", &got);
    }
    let missing = call(app, Method::GET, &format!("{reqs}/reqAAAAAAAAAAAAAAAAA"), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    c.check(one, "get", &missing);
    let bad = call(app, Method::POST, reqs, Some(json!({"requested": {}}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    c.check(reqs, "post", &bad);
    let two = json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "vpn"},
                     "requestedFor": {"type": "SLACK_USER", "externalId": "U0TWO"},
                     "requesterFieldValues": [{"id": "region", "values": ["EU", "US"]}]});
    let two = call(app, Method::POST, reqs, Some(two)).await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST, "several values for a one-value field");
    c.check(reqs, "post", &two);
    let nobody = call(
        app,
        Method::POST,
        reqs,
        Some(create_body("vpn", &json!({"type": "OKTA_USER", "externalId": "00u9nobody0000000000"}))),
    )
    .await;
    assert_eq!(nobody.status, StatusCode::BAD_REQUEST, "{}", nobody.body);
    c.check(reqs, "post", &nobody);
    let anon = reqwest::get(format!("{}{reqs}", app.base)).await.unwrap();
    let anon = Got { status: anon.status(), headers: anon.headers().clone(), body: anon.json().await.unwrap() };
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    c.check(reqs, "get", &anon);
}

async fn catalog_and_settings_match_okta(b: Backend) {
    let c = Contract::load(Ids::Slack);
    let mut setup = Setup::new(b);
    setup.config = SCHEMA_CONFIG.into();
    let app = spawn_with(setup).await;
    let entries = "/governance/api/v2/catalogs/default/entries";

    let list = call(&app, Method::GET, &format!("{entries}?filter=not(parent%20pr)&limit=1"), None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["data"][0]["id"], "vpn");
    let next = list.body["_links"]["next"]["href"].as_str().unwrap();
    assert!(next.ends_with("after=vpn"), "{next}");
    c.check(entries, "get", &list);
    let children = call(&app, Method::GET, &format!("{entries}?filter=parent%20eq%20%22vpn%22"), None).await;
    assert_eq!(children.body["data"], json!([]));
    let bad = call(&app, Method::GET, &format!("{entries}?after=nope"), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    c.check(entries, "get", &bad);

    let one = call(&app, Method::GET, &format!("{entries}/vpn"), None).await;
    c.check(&format!("{entries}/{{entryId}}"), "get", &one);
    let missing = call(&app, Method::GET, &format!("{entries}/nope"), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    c.check(&format!("{entries}/{{entryId}}"), "get", &missing);
    let mine = call(&app, Method::GET, "/governance/api/v2/catalogs/default/user/U0REQ/entries", None).await;
    c.check("/governance/api/v2/catalogs/default/user/{userId}/entries", "get", &mine);
    let fields = call(&app, Method::GET, &format!("{entries}/vpn/users/U0REQ/request-fields"), None).await;
    assert_eq!(fields.body["data"][1]["choices"], json!(["EU", "US"]));
    c.check("/governance/api/v2/catalogs/default/entries/{entryId}/users/{userId}/request-fields", "get", &fields);

    let settings = call(&app, Method::GET, "/governance/api/v2/request-settings", None).await;
    assert_eq!(settings.body["requestOnBehalfOf"], true);
    c.check("/governance/api/v2/request-settings", "get", &settings);
    let conds = call(&app, Method::GET, "/governance/api/v2/resources/vpn/request-conditions", None).await;
    assert_eq!(conds.body["data"][0]["accessDurationSettings"]["duration"], "P30D");
    c.check("/governance/api/v2/resources/{resourceId}/request-conditions", "get", &conds);
    let seqs = call(&app, Method::GET, "/governance/api/v2/resources/vpn/request-sequences", None).await;
    assert_eq!(seqs.body["data"][0]["id"], conds.body["data"][0]["approvalSequenceId"]);
    c.check("/governance/api/v2/resources/{resourceId}/request-sequences", "get", &seqs);
    let none = call(&app, Method::GET, "/governance/api/v2/resources/zoom/request-sequences", None).await;
    assert_eq!(none.body["data"], json!([]));

    // Writes point at the config file.
    for (method, path) in [
        (Method::PATCH, "/governance/api/v2/request-settings"),
        (Method::POST, "/governance/api/v2/resources/vpn/request-conditions"),
        (Method::DELETE, "/governance/api/v2/resources/vpn/request-sequences"),
    ] {
        let got = call(&app, method.clone(), path, Some(json!({}))).await;
        assert_eq!(got.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(got.body["errorCode"], "E0000022");
        assert!(got.body["errorSummary"].as_str().unwrap().contains("accessbot.toml; edit it and reload"));
        assert_eq!(got.headers["allow"], "GET");
    }
}

async fn rate_limit_headers(b: Backend) {
    let app = spawn_app(b).await;
    for path in ["/governance/api/v2/requests", "/governance/api/v2/catalogs/default/entries", "/api/v1/logs"] {
        let got = call(&app, Method::GET, path, None).await;
        let n = |h: &str| got.headers[h].to_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(n("x-rate-limit-limit"), 600, "{path}");
        assert!(n("x-rate-limit-remaining") < 600);
        assert!(n("x-rate-limit-reset") >= chrono::Utc::now().timestamp() as u64);
    }
}

crate::both!(
    requests_match_okta,
    requests_match_okta_with_slack_users,
    catalog_and_settings_match_okta,
    rate_limit_headers
);
