//! `/api/v1/logs` as Okta's clients use it: the Authorization forms, filters,
//! `q`, paging, LogEvent typed per Okta's management.yaml, and Okta's Python SDK.

use std::path::PathBuf;

use accessbot::workflow::model::{
    ActorType, DebugContext, LogActor, LogEvent, LogOutcome, LogTarget, OutcomeResult, Timestamp,
};
use chrono::{TimeDelta, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2031, 5, 6, 7, 0, 0).unwrap()
}

/// Event `i` of a seeded log: severities, outcomes, actors and targets vary with `i`.
fn event(i: usize) -> LogEvent {
    let (severity, result) = match i % 4 {
        0 => ("INFO", OutcomeResult::Success),
        1 => ("WARN", OutcomeResult::Failure),
        2 => ("INFO", OutcomeResult::Deny),
        _ => ("ERROR", OutcomeResult::Failure),
    };
    LogEvent {
        uuid: format!("seeded-{i:03}"),
        published: t0() + TimeDelta::seconds(i64::try_from(i).unwrap()),
        event_type: if i % 2 == 0 { "app.access_request.grant".into() } else { "system.config.reload".into() },
        severity: severity.into(),
        display_message: format!("Seeded event {i}: 50% Done_{i}"),
        actor: LogActor {
            id: format!("U0SEED{}", i % 3),
            kind: ActorType::User,
            alternate_id: (i % 3 != 2).then(|| format!("seed{}@example.com", i % 3)),
            display_name: Some(format!("Zoë Seed {}", i % 3)),
        },
        target: vec![LogTarget {
            id: format!("app{}", i % 5),
            kind: if i % 2 == 0 { "AppInstance".into() } else { "User".into() },
            alternate_id: None,
            display_name: Some(format!("Target {}", i % 5)),
        }],
        outcome: LogOutcome { result, reason: (i % 4 == 1).then(|| "WEBHOOK_TIMEOUT".into()) },
        debug_context: DebugContext::default(),
        request_id: None,
    }
}

async fn seeded(b: Backend, n: usize) -> TestApp {
    let app = spawn_app(b).await;
    let events: Vec<LogEvent> = (0..n).map(event).collect();
    app.store().append_events(&events).await.unwrap();
    app
}

async fn get(app: &TestApp, auth: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let url = format!("{}/api/v1/logs?since=2031-01-01T00:00:00Z", app.base);
    let res = reqwest::Client::new().get(url).query(query).header("authorization", auth).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The seeded events' numbers that `filter`/`q` selects, in order.
async fn hits(app: &TestApp, query: &[(&str, &str)]) -> Vec<usize> {
    let mut q = vec![("limit", "1000")];
    q.extend_from_slice(query);
    let (s, body) = get(app, &format!("Bearer {API_TOKEN}"), &q).await;
    assert_eq!(s, StatusCode::OK, "{query:?}: {body}");
    let uuids = body.as_array().unwrap().iter().map(|e| e["uuid"].as_str().unwrap().to_string());
    uuids.filter_map(|u| u.strip_prefix("seeded-").map(|n| n.parse().unwrap())).collect()
}

fn nums(n: usize, keep: impl Fn(&usize) -> bool) -> Vec<usize> {
    (0..n).filter(keep).collect()
}

async fn authorization_forms(b: Backend) {
    let app = seeded(b, 3).await;
    for auth in [format!("SSWS {API_TOKEN}"), format!("SSWS{API_TOKEN}"), format!("Bearer {API_TOKEN}")] {
        let (s, body) = get(&app, &auth, &[]).await;
        assert_eq!(s, StatusCode::OK, "{auth}: {body}");
        assert_eq!(body.as_array().unwrap().len(), 3);
    }
    for auth in ["SSWS", "SSWSwrong", "Bearer", "Basic eDp5", ""] {
        let (s, body) = get(&app, auth, &[]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        assert_eq!(body["errorCode"], "E0000004");
    }
}

async fn okta_filters(b: Backend) {
    const N: usize = 20;
    let app = seeded(b, N).await;
    let f = |s: &'static str| [("filter", s)];
    assert_eq!(hits(&app, &f("severity eq \"WARN\"")).await, nums(N, |i| i % 4 == 1));
    assert_eq!(hits(&app, &f("outcome.result eq \"FAILURE\"")).await, nums(N, |i| i % 4 % 2 == 1));
    assert_eq!(
        hits(&app, &f("severity ne \"INFO\" and not (outcome.result eq \"FAILURE\")")).await,
        nums(N, |_| false)
    );
    assert_eq!(hits(&app, &f("eventType sw \"system.\"")).await, nums(N, |i| i % 2 == 1));
    assert_eq!(hits(&app, &f("eventType sw \"SYSTEM.CONFIG\"")).await, nums(N, |i| i % 2 == 1));
    assert_eq!(hits(&app, &f("displayMessage co \"done_1\"")).await, nums(N, |i| *i == 1 || *i >= 10));
    // LIKE wildcards in values are literal: `_` is not "any character", `%` not "anything".
    assert_eq!(hits(&app, &f("displayMessage co \"0% d\"")).await, nums(N, |_| true));
    assert_eq!(hits(&app, &f("displayMessage co \"5_%\"")).await, nums(N, |_| false));
    assert_eq!(
        hits(&app, &f("actor.id eq \"U0SEED1\" or actor.alternateId sw \"seed2\"")).await,
        nums(N, |i| i % 3 == 1)
    );
    assert_eq!(hits(&app, &f("actor.alternateId ne \"seed0@example.com\"")).await, nums(N, |i| i % 3 != 0));
    assert_eq!(hits(&app, &f("actor.type eq \"USER\" and target.type eq \"User\"")).await, nums(N, |i| i % 2 == 1));
    assert_eq!(hits(&app, &f("target.id ne \"app0\"")).await, nums(N, |i| i % 5 != 0));
    assert_eq!(hits(&app, &f("target.displayName co \"get 3\"")).await, nums(N, |i| i % 5 == 3));
    assert_eq!(hits(&app, &f("outcome.reason eq \"WEBHOOK_TIMEOUT\"")).await, nums(N, |i| i % 4 == 1));
    assert_eq!(hits(&app, &f("uuid eq \"seeded-007\"")).await, [7]);
    let window = "published ge \"2031-05-06T07:00:05Z\" and published lt \"2031-05-06T07:00:08Z\"";
    assert_eq!(hits(&app, &f(window)).await, [5, 6, 7]);
    assert_eq!(hits(&app, &f("published gt \"2031-05-06T07:00:17.999Z\"")).await, [18, 19]);
    let (s, body) = get(&app, &format!("SSWS {API_TOKEN}"), &[("filter", "published sw \"2031\"")]).await;
    assert_eq!((s, &body["errorCode"]), (StatusCode::BAD_REQUEST, &Value::from("E0000001")), "{body}");
}

async fn keyword_search(b: Backend) {
    const N: usize = 14;
    let app = seeded(b, N).await;
    let q = |s: &'static str| [("q", s)];
    assert_eq!(hits(&app, &q("webhook_timeout")).await, nums(N, |i| i % 4 == 1));
    assert_eq!(hits(&app, &q("zoë  SEED\t1@EXAMPLE")).await, nums(N, |i| i % 3 == 1));
    assert_eq!(hits(&app, &q("config target app3")).await, nums(N, |i| i % 2 == 1 && i % 5 == 3));
    assert_eq!(hits(&app, &q("nothing-like-this")).await, nums(N, |_| false));
    assert_eq!(hits(&app, &[("q", "grant"), ("filter", "target.id eq \"app2\"")]).await, [2, 12]);
    assert_eq!(hits(&app, &q("  ")).await, nums(N, |_| true));
    let eleven = "a b c d e f g h i j k";
    let long = "x".repeat(41);
    for (name, value) in [("q", eleven), ("q", long.as_str()), ("limit", "0"), ("sortOrder", "asc")] {
        let (s, body) = get(&app, &format!("SSWS {API_TOKEN}"), &[(name, value)]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name}={value}: {body}");
        assert!(body["errorCode"] == "E0000001" || body["errorCode"] == "E0000029", "{body}");
        assert_eq!(body["errorCauses"][0]["location"], name, "{body}");
    }
}

/// `$ref`s inlined (Okta's schemas are acyclic), `nullable` as JSON Schema's null type.
fn resolve(v: &Value, schemas: &Value) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let name = r.trim_start_matches("#/components/schemas/");
                return resolve(&schemas[name], schemas);
            }
            let mut out: serde_json::Map<String, Value> =
                m.iter().filter(|(k, _)| *k != "example").map(|(k, v)| (k.clone(), resolve(v, schemas))).collect();
            if out.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), serde_json::json!([t, "null"]));
                }
                if let Some(Value::Array(e)) = out.get_mut("enum") {
                    e.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| resolve(v, schemas)).collect()),
        other => other.clone(),
    }
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Hash(h) => {
            Value::Object(h.iter().filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), yaml_to_json(v)))).collect())
        }
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

/// Okta's LogEvent schema from ../shared/okta/management.yaml, `$ref`s resolved.
fn okta_log_event_schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/okta/management.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = yaml_rust2::YamlLoader::load_from_str(&text).unwrap().remove(0);
    let schemas = yaml_to_json(&doc)["components"]["schemas"].clone();
    resolve(&schemas["LogEvent"], &schemas)
}

async fn events_match_okta_log_event_schema(b: Backend) {
    let app = seeded(b, 8).await;
    let api = reqwest::Client::new();
    let body = serde_json::json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "github"},
        "requestedFor": {"type": "SLACK_USER", "externalId": "U0REQ"},
        "requesterFieldValues": [{"id": "justification", "value": "schema check"}]});
    let url = format!("{}/governance/api/v2/requests", app.base);
    let res = api.post(url).bearer_auth(API_TOKEN).json(&body).send().await.unwrap();
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    let schema = okta_log_event_schema();
    let validator = jsonschema::draft4::new(&schema).unwrap();
    let url = format!("{}/api/v1/logs?limit=1000", app.base);
    let res = api.get(url).header("authorization", format!("SSWS{API_TOKEN}")).send().await.unwrap();
    let events: Vec<Value> = res.json().await.unwrap();
    assert!(events.len() > 10, "{}", events.len());
    for e in &events {
        let errors: Vec<String> =
            validator.iter_errors(e).map(|err| format!("{} at {}", err, err.instance_path())).collect();
        assert!(errors.is_empty(), "{} does not match Okta's LogEvent: {errors:?}", e["eventType"]);
        for key in ["version", "client", "authenticationContext", "securityContext", "transaction", "request"] {
            assert!(e[key].is_object() || e[key].is_string(), "{key} in {e}");
        }
    }
    assert!(events.iter().any(|e| e["transaction"]["id"] == id.as_str()));
}

/// Whether Okta's Python SDK (`pip install okta==3.4.6`) can be imported here.
fn okta_sdk_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import okta.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("Okta's Python SDK is not importable under CI=true: pip install okta==3.4.6");
    }
    ok
}

async fn okta_python_sdk_pages_the_whole_log(b: Backend) {
    if !okta_sdk_available() {
        eprintln!("python3 cannot import okta (pip install okta==3.4.6): Okta SDK test skipped");
        return;
    }
    const N: usize = 23;
    let app = seeded(b, N).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/okta_sdk/logs.py");
    let query = r#"{"limit": 5, "since": "2031-01-01T00:00:00Z"}"#;
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .args([app.base.as_str(), API_TOKEN, query])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed: {stdout}\n{stderr}");
    assert!(stdout.contains(&format!("count={N}\n")), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("distinct={N}\n")), "{stdout}");
    assert!(stdout.contains(&format!("pages={}\n", N.div_ceil(5))), "{stdout}");
}

crate::both!(
    authorization_forms,
    okta_filters,
    keyword_search,
    events_match_okta_log_event_schema,
    okta_python_sdk_pages_the_whole_log
);
