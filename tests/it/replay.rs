//! Replayed signed Slack requests: a command with an effect runs once per
//! signature, across replicas too; read-only commands answer every time.

use std::sync::Arc;
use std::time::Duration;

use accessbot::slack::verify::sign;
use accessbot::store::Store;
use accessbot::workflow::model::OutcomeResult;
use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::process;

const ALREADY: &str = "This command was already handled.";
const SUGGESTION: &str = "suggest Figma — design reviews for the web team";

fn replay_config() -> String {
    CONFIG.replace("admins = [\"U0ROOT\"]", "admins = [\"U0ROOT\"]\ntechnical_contact = \"U0TECH\"")
}

/// One signed `/access <text>`: the exact body and headers, to send as often as wanted.
fn signed_command(user: &str, text: &str) -> (String, Vec<(&'static str, String)>) {
    let body = ChatClient::command_body(user, text, TEAM);
    let ts = Utc::now().timestamp().to_string();
    let sig = sign(SECRET, &ts, body.as_bytes());
    (body, vec![("x-slack-request-timestamp", ts), ("x-slack-signature", sig)])
}

/// The ephemeral reply, blocks and all.
async fn send_raw(client: &ChatClient, body: &str, headers: &[(&'static str, String)]) -> Value {
    let res = client.post_raw("/slack/commands", body, "application/x-www-form-urlencoded", headers).await;
    assert_eq!(res.status(), StatusCode::OK);
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply["response_type"], "ephemeral");
    reply
}

async fn send(client: &ChatClient, body: &str, headers: &[(&'static str, String)]) -> String {
    send_raw(client, body, headers).await["text"].as_str().unwrap_or_default().to_string()
}

async fn assert_one_suggestion_two_replays(store: &Arc<dyn Store>, slack: &crate::fake_slack::FakeSlack) {
    drain(store, Duration::from_secs(10)).await;
    let dms = slack.dms_to("U0TECH");
    assert_eq!(dms.len(), 1, "{dms:?}");
    assert!(dms[0].text().contains("Figma"));
    assert_eq!(store.events_of_type("app.access_request.suggest", 100).await.unwrap().len(), 1);
    let blocked = store.events_of_type("security.request.blocked", 100).await.unwrap();
    assert_eq!(blocked.len(), 2, "{blocked:?}");
    for e in &blocked {
        assert_eq!(e.actor.id, "U0REQ");
        assert_eq!(e.outcome.result, OutcomeResult::Deny);
        assert_eq!(e.outcome.reason.as_deref(), Some("replayed Slack request"));
        assert_eq!(e.debug_context.debug_data["action"], "/access suggest");
    }
}

async fn a_replayed_suggest_reaches_the_contact_once(b: Backend) {
    let mut setup = Setup::new(b);
    setup.config = replay_config();
    let app = spawn_with(setup).await;
    let (body, headers) = signed_command("U0REQ", SUGGESTION);
    let first = send(&app.chat, &body, &headers).await;
    assert!(first.contains("technical contact"), "{first}");
    for _ in 0..2 {
        assert_eq!(send(&app.chat, &body, &headers).await, ALREADY);
    }
    assert_one_suggestion_two_replays(&app.store(), &app.slack).await;

    // A new request from Slack (a new signature) is a new suggestion.
    assert!(app.say("U0REQ", "suggest Miro for workshops").await.contains("technical contact"));
    app.drain().await;
    assert_eq!(app.slack.dms_to("U0TECH").len(), 2);
}

async fn a_replayed_admin_grant_runs_once(b: Backend) {
    let app = spawn_app(b).await;
    let (body, headers) = signed_command("U0GHADMIN", "admin grant github <@U0FRANK|frank>");
    assert!(send(&app.chat, &body, &headers).await.contains("Assigned"));
    app.say("U0GHADMIN", "admin revoke github <@U0FRANK|frank>").await;
    // Replayed after the revoke, the grant would give the access back.
    assert_eq!(send(&app.chat, &body, &headers).await, ALREADY);
    assert!(app.store().assignment("U0FRANK", "github").await.unwrap().is_none());
    assert_eq!(app.events_of("security.request.blocked").await.len(), 1);
}

async fn a_replayed_read_only_command_answers_every_time(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.request_app("U0REQ", "github", "for the replay test").await;
    let (body, headers) = signed_command("U0REQ", "mine");
    let first = send_raw(&app.chat, &body, &headers).await;
    assert!(first.to_string().contains(&id), "{first}");
    for _ in 0..2 {
        assert_eq!(send_raw(&app.chat, &body, &headers).await, first);
    }
    assert!(app.events_of("security.request.blocked").await.is_empty());
    // `mine` never claimed its signature: it is still unused.
    let (now, expires) = (Utc::now(), Utc::now() + TimeDelta::minutes(6));
    assert!(app.store().first_use(&headers[1].1, expires, now).await.unwrap());
}

/// Two server processes on one PostgreSQL database (SQLite has one process per file).
async fn a_replay_to_another_replica_has_no_effect(b: Backend) {
    if !matches!(b, Backend::Postgres(_)) {
        return;
    }
    let db = TestDb::create(&b).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("accessbot.toml"), replay_config()).unwrap();
    let slack = crate::fake_slack::FakeSlack::start().await;
    let a = process::start(dir.path(), "a", &db.url, &slack, &[]).await;
    let bp = process::start(dir.path(), "b", &db.url, &slack, &[]).await;
    let store = accessbot::store::open(&db.url).await.unwrap();
    let (ca, cb) = (ChatClient::new(&a.base, &slack), ChatClient::new(&bp.base, &slack));
    let (body, headers) = signed_command("U0REQ", SUGGESTION);
    let sends = [ca.clone(), cb.clone(), cb].map(|c| {
        let (body, headers) = (body.clone(), headers.clone());
        tokio::spawn(async move { send(&c, &body, &headers).await })
    });
    let mut replies = Vec::new();
    for s in sends {
        replies.push(s.await.unwrap());
    }
    assert_eq!(replies.iter().filter(|r| r.contains("technical contact")).count(), 1, "{replies:?}");
    assert_eq!(replies.iter().filter(|r| *r == ALREADY).count(), 2, "{replies:?}");
    assert_one_suggestion_two_replays(&store, &slack).await;
    assert_eq!(send(&ca, &body, &headers).await, ALREADY);
}

/// The port itself: a key is used once until it expires.
async fn first_use_holds_until_expiry(b: Backend) {
    let db = TestDb::create(&b).await;
    let store = accessbot::store::open(&db.url).await.unwrap();
    let t0 = Utc::now();
    let until = t0 + TimeDelta::minutes(6);
    assert!(store.first_use("v0=aa", until, t0).await.unwrap());
    assert!(!store.first_use("v0=aa", until, t0).await.unwrap());
    assert!(!store.first_use("v0=aa", until + TimeDelta::minutes(6), until - TimeDelta::seconds(1)).await.unwrap());
    assert!(store.first_use("v0=bb", until, t0).await.unwrap(), "keys are independent");
    // Expired: usable again, and held again from then on.
    let later = until + TimeDelta::seconds(1);
    assert!(store.first_use("v0=aa", later + TimeDelta::minutes(6), later).await.unwrap());
    assert!(!store.first_use("v0=aa", later + TimeDelta::minutes(6), later).await.unwrap());

    // Concurrent uses of one key: exactly one wins.
    let uses = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.first_use("v0=cc", until, t0).await.unwrap() })
    });
    let mut wins = 0;
    for u in uses {
        wins += usize::from(u.await.unwrap());
    }
    assert_eq!(wins, 1);

    // Pruning in bounded batches keeps every unexpired key.
    assert!(store.first_use("v0=dd", until, t0).await.unwrap());
    for i in 0..40 {
        assert!(store.first_use(&format!("v0=old{i}"), t0 + TimeDelta::seconds(1), t0).await.unwrap());
    }
    let t1 = t0 + TimeDelta::seconds(2);
    for _ in 0..4 {
        assert!(!store.first_use("v0=dd", until, t1).await.unwrap());
    }
    assert!(store.first_use("v0=old7", until, t1).await.unwrap());
}

crate::both!(
    a_replayed_suggest_reaches_the_contact_once,
    a_replayed_admin_grant_runs_once,
    a_replayed_read_only_command_answers_every_time,
    a_replay_to_another_replica_has_no_effect,
    first_use_holds_until_expiry,
);
