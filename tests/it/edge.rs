//! The API's edge: links from ACCESSBOT_PUBLIC_URL (forwarded headers only
//! from trusted proxies), read-only tokens, URLs redacted in every error.

use accessbot::api::auth::token_id;
use accessbot::config::IpRange;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const PUBLIC: &str = "https://accessbot.example.com";
const EVIL: [(&str, &str); 3] =
    [("host", "evil.example"), ("x-forwarded-host", "evil.example"), ("x-forwarded-proto", "https")];

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", app.base)).bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let (status, h) = (res.status(), res.headers().clone());
    (status, res.json().await.unwrap_or(Value::Null), h)
}

fn create_body(app: &str, user: &str) -> Value {
    json!({"requested": {"type": "CATALOG_ENTRY", "entryId": app},
           "requestedFor": {"type": "SLACK_USER", "externalId": user},
           "requesterFieldValues": [{"id": "justification", "value": "quarterly numbers"}]})
}

async fn create(app: &TestApp, user: &str) -> String {
    let (s, b, _) = call(
        app,
        reqwest::Method::POST,
        "/governance/api/v2/requests",
        API_TOKEN,
        &[],
        Some(create_body("salesforce", user)),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    b["id"].as_str().unwrap().to_string()
}

/// Every link of a list, one request, the catalog and the system log, sent with `headers`.
async fn links(app: &TestApp, id: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let get = reqwest::Method::GET;
    let mut out = Vec::new();
    let (s, list, h) = call(app, get.clone(), "/governance/api/v2/requests?limit=1", API_TOKEN, headers, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    out.extend(h.get_all("link").iter().map(|v| v.to_str().unwrap().to_string()));
    out.push(list["_links"]["self"]["href"].as_str().unwrap().to_string());
    out.push(list["_links"]["next"]["href"].as_str().unwrap().to_string());
    out.push(list["data"][0]["_links"]["self"]["href"].as_str().unwrap().to_string());
    let (s, one, _) =
        call(app, get.clone(), &format!("/governance/api/v2/requests/{id}"), API_TOKEN, headers, None).await;
    assert_eq!(s, StatusCode::OK);
    out.push(one["_links"]["self"]["href"].as_str().unwrap().to_string());
    let (_, catalog, _) = call(app, get.clone(), "/governance/api/v2/catalog/entries", API_TOKEN, headers, None).await;
    out.push(catalog["data"][0]["_links"]["self"]["href"].as_str().unwrap().to_string());
    let (_, _, h) = call(app, get, "/api/v1/logs?limit=1", API_TOKEN, headers, None).await;
    out.push(h["link"].to_str().unwrap().to_string());
    out
}

async fn links_ignore_forwarded_hosts_of_untrusted_peers(b: Backend) {
    let mut setup = Setup::new(b);
    setup.public_url = Some(PUBLIC.into());
    let app = spawn_with(setup).await;
    let id = create(&app, "U0REQ1").await;
    create(&app, "U0REQ2").await;
    for l in links(&app, &id, &EVIL).await {
        assert!(!l.contains("evil"), "{l}");
        let url = l.trim_start_matches('<');
        assert!(url.starts_with(&format!("{PUBLIC}/")), "{l}");
    }
    let (_, one, _) =
        call(&app, reqwest::Method::GET, &format!("/governance/api/v2/requests/{id}"), API_TOKEN, &EVIL, None).await;
    assert_eq!(one["_links"]["self"]["href"], format!("{PUBLIC}/governance/api/v2/requests/{id}"));
}

async fn links_follow_trusted_proxies(b: Backend) {
    let mut setup = Setup::new(b);
    setup.public_url = Some(PUBLIC.into());
    setup.trusted_proxies = vec![IpRange::parse("127.0.0.1").unwrap()];
    let app = spawn_with(setup).await;
    let id = create(&app, "U0REQ1").await;
    create(&app, "U0REQ2").await;
    for l in links(&app, &id, &EVIL).await {
        assert!(l.trim_start_matches('<').starts_with("https://evil.example/"), "{l}");
    }
    // No forwarded headers: the public URL's scheme with the Host the client used.
    let host = app.base.trim_start_matches("http://").to_string();
    for l in links(&app, &id, &[]).await {
        assert!(l.trim_start_matches('<').starts_with(&format!("https://{host}/")), "{l}");
    }
}

async fn read_tokens_only_read(b: Backend) {
    let app = spawn_app(b).await;
    let id = create(&app, "U0REQ1").await;
    app.drain().await;
    let before = app.request(&id).await;
    let (get, post, patch) = (reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::PATCH);
    for path in [
        "/governance/api/v2/requests".to_string(),
        format!("/governance/api/v2/requests/{id}"),
        "/governance/api/v2/catalog/entries".into(),
        "/api/v1/logs".into(),
    ] {
        let (s, body, _) = call(&app, get.clone(), &path, READ_TOKEN, &[], None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {body}");
    }
    let writes = [
        (post.clone(), "/governance/api/v2/requests".to_string(), create_body("zoom", "U0REQ9")),
        (post.clone(), format!("/governance/api/v2/requests/{id}/messages"), json!({"message": "hello"})),
        (patch.clone(), format!("/governance/api/v2/requests/{id}"), json!({"status": "CANCELED"})),
        (post.clone(), "/admin/reload".into(), json!({})),
    ];
    for (method, path, body) in &writes {
        let (s, err, _) = call(&app, method.clone(), path, READ_TOKEN, &[], Some(body.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {err}");
        assert_eq!(err["errorCode"], "E0000006", "{err}");
        assert_eq!(err["errorSummary"], "You do not have permission to perform the requested action");
        assert!(err["errorId"].as_str().unwrap().starts_with("oae"));
        assert!(err["errorCauses"][0]["reason"].as_str().unwrap().contains("read-only"), "{err}");
    }
    app.drain().await;
    // Nothing changed: no new request, no message, not canceled.
    let after = app.request(&id).await;
    assert_eq!((after.status, after.last_updated), (before.status, before.last_updated));
    assert!(app.open_request("U0REQ9", "zoom").await.is_none());
    assert!(app.events(&id).await.iter().all(|e| e.event_type != "app.access_request.message"));
    let blocked = app.events_of("security.request.blocked").await;
    assert_eq!(blocked.len(), writes.len(), "{blocked:?}");
    let reader = token_id(READ_TOKEN);
    assert!(blocked.iter().all(|e| e.actor.id == reader), "{blocked:?}");
    let actions: Vec<&str> = blocked.iter().filter_map(|e| e.debug_context.debug_data["action"].as_str()).collect();
    for want in [
        "api POST /governance/api/v2/requests",
        "api POST /governance/api/v2/requests/{id}/messages",
        "api PATCH /governance/api/v2/requests/{id}",
        "api POST /admin/reload",
    ] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
    assert_eq!(blocked.iter().filter(|e| e.request_id.as_deref() == Some(id.as_str())).count(), 2);

    // A full token still writes.
    let (s, _, _) = call(
        &app,
        post.clone(),
        &format!("/governance/api/v2/requests/{id}/messages"),
        API_TOKEN,
        &[],
        Some(json!({"message": "hello"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = call(&app, post, "/admin/reload", API_TOKEN, &[], None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body, _) = call(
        &app,
        patch,
        &format!("/governance/api/v2/requests/{id}"),
        API_TOKEN,
        &[],
        Some(json!({"status": "CANCELED"})),
    )
    .await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::OK, Some("CANCELED")));
}

/// Nothing listens on port 1: every attempt fails with a transport error, which
/// is where reqwest embeds the URL.
const LEAKY_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]
admin_channel = "C0ADMINS"

[apps.wiki]
name = "Wiki"
approval = false
provisioning = { url = "http://svc:pw@127.0.0.1:1/grant?token=SECRET" }

[apps.vpn]
name = "VPN"
steps = [{ action = { url = "http://svc:pw@127.0.0.1:1/flow?token=SECRET" } }, { user = "U0ALICE" }]
"#;

async fn outbox_errors(url: &str) -> Vec<String> {
    use sqlx::Connection;
    let q = "SELECT last_error FROM outbox WHERE last_error IS NOT NULL";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(q).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(q).fetch_all(&mut c).await.unwrap()
    }
}

fn leaks(text: &str) -> bool {
    text.contains("SECRET") || text.contains("token=") || text.contains("svc:pw") || text.contains("pw@")
}

async fn webhook_urls_are_redacted_everywhere(b: Backend) {
    let mut setup = Setup::new(b);
    setup.config = LEAKY_CONFIG.into();
    let app = spawn_with(setup).await;
    for entry in ["wiki", "vpn"] {
        let (s, body, _) = call(
            &app,
            reqwest::Method::POST,
            "/governance/api/v2/requests",
            API_TOKEN,
            &[],
            Some(create_body(entry, "U0REQ1")),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    }
    app.drain().await;

    let errors = outbox_errors(&app.db.url).await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(!leaks(e), "outbox error: {e}");
        assert!(e.contains("http://127.0.0.1:1/"), "names the redacted URL: {e}");
    }
    let feed: Vec<String> = app
        .slack
        .ok_calls("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["channel"] == "C0ADMINS")
        .map(|c| c.body.to_string())
        .collect();
    assert!(feed.iter().any(|m| m.contains("failed") && m.contains("http://127.0.0.1:1/grant")), "{feed:?}");
    assert!(feed.iter().all(|m| !leaks(m)), "{feed:?}");
    let (s, logs, _) = call(&app, reqwest::Method::GET, "/api/v1/logs?limit=1000", API_TOKEN, &[], None).await;
    assert_eq!(s, StatusCode::OK);
    let failures: Vec<&Value> =
        logs.as_array().unwrap().iter().filter(|e| e["eventType"] == "app.access_request.webhook").collect();
    assert_eq!(failures.len(), 2, "{logs}");
    assert!(failures.iter().all(|e| e["outcome"]["reason"].as_str().unwrap().contains("http://127.0.0.1:1/")));
    assert!(!leaks(&logs.to_string()), "{logs}");
}

crate::both!(
    links_ignore_forwarded_hosts_of_untrusted_peers,
    links_follow_trusted_proxies,
    read_tokens_only_read,
    webhook_urls_are_redacted_everywhere,
);
