//! What operators see: probes, routes, metrics, logs.

use std::time::Duration;

use reqwest::StatusCode;

use crate::fake_slack::{Fail, FakeSlack};
use crate::helpers::*;
use crate::process;

async fn get(url: &str) -> (StatusCode, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status(), r.text().await.unwrap())
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_prefix} in:\n{text}"))
}

async fn every_route_is_served(b: Backend) {
    let app = spawn_app(b).await;
    for path in accessbot::api::ROUTES {
        assert_eq!(get(&format!("{}{path}", app.base)).await.0, StatusCode::OK, "{path}");
    }
    for path in accessbot::slack::ROUTES {
        let res = app.post_raw(path, "", "application/x-www-form-urlencoded", &[]).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path} exists and checks signatures");
    }
    assert_eq!(get(&format!("{}/nope", app.base)).await.0, StatusCode::NOT_FOUND);
}

async fn metrics_count_what_happened(b: Backend) {
    let app = spawn_app(b).await;
    app.slack.fail_next("chat.postMessage", vec![Fail::RateLimited { retry_after: 1 }]);
    let id = app.request_app("U0REQ", "github", "metrics").await;
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.post_raw("/slack/commands", "x=1", "application/x-www-form-urlencoded", &[]).await;
    app.drain().await;

    let (status, text) = get(&format!("{}/metrics", app.base)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metric(&text, "accessbot_decisions_total{decision=\"approve\"}"), 1.0);
    assert_eq!(metric(&text, "accessbot_requests_created_total"), 1.0);
    assert_eq!(metric(&text, "accessbot_requests{status=\"APPROVED\"}"), 1.0);
    assert_eq!(metric(&text, "accessbot_slack_signature_rejections_total"), 1.0);
    // The scripted 429, and each concurrent delivery of the same method held back by it:
    // at most one per delivery slot (the outbox's default 4).
    let limited = metric(&text, "accessbot_slack_rate_limited_total");
    let slots = accessbot::outbox::OutboxConfig::default().workers as f64;
    assert!((1.0..=slots).contains(&limited), "{limited}");
    assert_eq!(metric(&text, "accessbot_outbox_rows{status=\"pending\"}"), 0.0);
    assert!(metric(&text, "accessbot_outbox_rows{status=\"done\"}") >= 5.0);
    assert!(metric(&text, "accessbot_outbox_deliveries_total{kind=\"notice\",result=\"done\"}") >= 5.0);
    let retries = metric(&text, "accessbot_outbox_deliveries_total{kind=\"notice\",result=\"retry\"}");
    assert_eq!(retries, limited, "each rate-limited delivery is retried");
    assert!(metric(&text, "accessbot_outbox_delivery_latency_seconds_count") >= 5.0);
    assert_eq!(
        metric(&text, "accessbot_http_requests_total{method=\"POST\",route=\"/slack/commands\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "accessbot_http_requests_total{method=\"POST\",route=\"/slack/commands\",status=\"401\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "accessbot_http_requests_total{method=\"POST\",route=\"/slack/interactions\",status=\"200\"}"),
        1.0
    );
    assert!(metric(&text, "accessbot_http_request_duration_seconds_count{route=\"/slack/commands\"}") >= 2.0);
}

async fn readyz_fails_when_the_database_is_gone(b: Backend) {
    let Backend::Postgres(server) = &b else { return };
    let app = spawn_app(b.clone()).await;
    assert_eq!(get(&format!("{}/readyz", app.base)).await.0, StatusCode::OK);
    let name = app.db.url.rsplit('/').next().unwrap().to_string();
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut conn).await.unwrap();
    let (status, body) = get(&format!("{}/readyz", app.base)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("unreachable"));
    assert_eq!(
        get(&format!("{}/healthz", app.base)).await.0,
        StatusCode::OK,
        "liveness does not depend on the database"
    );
}

async fn json_logs_carry_a_request_id(b: Backend) {
    let db = TestDb::create(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    slack.add_user("U0CAROL", "carol@example.com");
    let p = process::start(dir.path(), "json", &db.url, &slack, &[("LOG_FORMAT", "json")]).await;
    let chat = ChatClient::new(&p.base, &slack);
    let res = chat
        .post_raw(
            "/slack/commands",
            "text=apps",
            "application/x-www-form-urlencoded",
            &[("x-request-id", "rid-42".into())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["x-request-id"], "rid-42", "the request id is echoed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = p.logs();
    let lines: Vec<serde_json::Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let warn = lines
        .iter()
        .find(|l| l["fields"]["message"] == "slack: request signature rejected")
        .unwrap_or_else(|| panic!("no rejection logged:\n{logs}"));
    assert_eq!(warn["span"]["request_id"], "rid-42", "{warn}");
    assert_eq!(warn["span"]["path"], "/slack/commands");
}

crate::both!(
    every_route_is_served,
    metrics_count_what_happened,
    readyz_fails_when_the_database_is_gone,
    json_logs_carry_a_request_id
);
