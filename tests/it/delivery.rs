//! The outbox against a Slack that fails: retries, Retry-After, order, restarts.

use std::time::Instant;

use reqwest::StatusCode;

use crate::fake_slack::Fail;
use crate::helpers::*;

async fn rate_limit_then_server_error_then_ok_delivers_once(b: Backend) {
    let app = spawn_app(b).await;
    app.slack.clear();
    app.slack.fail_next(
        "chat.postMessage",
        vec![Fail::RateLimited { retry_after: 1 }, Fail::ServerError, Fail::NotOk("internal_error")],
    );
    let started = Instant::now();
    let id = app.request_app("U0REQ", "github", "x").await;
    app.drain().await;
    assert!(started.elapsed().as_millis() >= 1000, "Retry-After: 1 was honoured");

    let attempts = app.slack.calls().into_iter().filter(|c| c.method == "chat.postMessage").count();
    assert_eq!(attempts, 3 + 3, "three failures, then one success per message (Bob, Carol, requester)");
    assert_eq!(app.slack.dms_to("U0BOB").len(), 1);
    assert_eq!(app.slack.dms_to("U0CAROL").len(), 1);
    assert_eq!(app.slack.dms_to("U0REQ").len(), 1);
    let counts = app.store().outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0));

    // Per-message order: the update is not sent before the post it updates.
    app.slack.fail_next("chat.postMessage", vec![Fail::ServerError, Fail::ServerError]);
    let id2 = app.request_app("U0OTHER", "github", "y").await;
    assert_eq!(app.click("U0BOB", "approve", &id2, 0).await, StatusCode::OK);
    app.drain().await;
    let calls = app.slack.calls();
    let bob_post = calls
        .iter()
        .rposition(|c| {
            c.method == "chat.postMessage"
                && c.ok()
                && c.body["channel"] == "DU0BOB"
                && c.body.get("thread_ts").is_none()
        })
        .unwrap();
    let bob_update =
        calls.iter().rposition(|c| c.method == "chat.update" && c.ok() && c.body["channel"] == "DU0BOB").unwrap();
    assert!(bob_post < bob_update);
    let _ = id;
}

async fn permanent_errors_fail_without_endless_retries(b: Backend) {
    let app = spawn_app(b).await;
    app.slack.clear();
    app.slack.fail_next("conversations.open", vec![Fail::NotOk("user_not_found")]);
    app.request_app("U0REQ", "github", "x").await;
    app.drain().await;
    let opens = app
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.method == "conversations.open" && c.answer == "user_not_found")
        .count();
    assert_eq!(opens, 1, "a permanent error is not retried");
    let counts = app.store().outbox_counts().await.unwrap();
    assert_eq!(counts.failed, 1);
}

async fn a_slack_outage_is_ridden_out_and_undelivered_rows_survive_a_restart(b: Backend) {
    let app = spawn_app(b.clone()).await;
    // Known before the outage (a request waits for its requester's identity; see identity.rs).
    app.say("U0REQ", "help").await;
    app.drain().await;
    app.slack.set_down(true);
    let id = app.request_app("U0REQ", "github", "x").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.store().outbox_counts().await.unwrap().pending >= 3);
    assert!(app.slack.ok_calls("chat.postMessage").is_empty());

    // Stop the server with undelivered rows, bring Slack back, start a new server on the same database.
    let mut app = app;
    app.stop().await;
    assert!(app.store().outbox_counts().await.unwrap().pending >= 3, "stopped with undelivered rows");
    app.slack.set_down(false);
    let app = app.restart(Setup::new(b)).await;
    app.drain().await;
    assert_eq!(app.slack.dms_to("U0BOB").len(), 1);
    assert_eq!(app.slack.dms_to("U0CAROL").len(), 1);
    assert_eq!(app.slack.dms_to("U0REQ").len(), 1);
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    assert_eq!(app.store().outbox_counts().await.unwrap().failed, 0);
}

async fn emails_resolve_once_and_are_cached(b: Backend) {
    let app = spawn_app(b).await;
    let lookups = app.slack.ok_calls("users.lookupByEmail");
    assert_eq!(lookups.len(), 1, "carol@example.com resolved at start");
    let i = app.store().identity_by_email("carol@example.com").await.unwrap().unwrap();
    assert_eq!(i.user_id, "U0CAROL");
    app.request_app("U0REQ", "github", "x").await;
    app.drain().await;
    app.request_app("U0REQ2", "github", "y").await;
    app.drain().await;
    assert_eq!(app.slack.ok_calls("users.lookupByEmail").len(), 1);
    assert_eq!(
        app.slack.ok_calls("conversations.open").iter().filter(|c| c.body["users"] == "U0CAROL").count(),
        1,
        "DM channel cached"
    );
    // Unknown users who run a command get looked up once.
    assert_eq!(app.slack.ok_calls("users.info").iter().filter(|c| c.body["user"] == "U0REQ").count(), 1);
}

/// Rows a version before typed notices queued (text built with markup around
/// raw user text; identity look-up kinds) are still delivered, their text
/// escaped whole, after an upgrade.
async fn rows_queued_by_the_previous_version_are_delivered_safely(b: Backend) {
    let app = spawn_app(b).await;
    let row = |key: &str, kind: &str, payload: serde_json::Value| accessbot::store::OutboxItem {
        ordering_key: key.into(),
        kind: kind.into(),
        payload,
        deadline: None,
    };
    let old = vec![
        row(
            "channel:C0OLD",
            "notice",
            serde_json::json!({"notice": "admin_feed", "channel": "C0OLD", "text": "old <!channel>"}),
        ),
        row(
            "direct:U0OLD",
            "notice",
            serde_json::json!({"notice": "direct", "to": {"slack": "U0OLD"}, "text": "hi <@U0EVIL>"}),
        ),
        row("identity:U0OLDUSER", "identity.user", serde_json::json!({"user_id": "U0OLDUSER"})),
    ];
    app.store().enqueue(&old, chrono::Utc::now()).await.unwrap();
    app.drain().await;
    assert_eq!(app.store().outbox_counts().await.unwrap().failed, 0);
    let feed = app.slack.ok_calls("chat.postMessage");
    let to_channel = feed.iter().find(|c| c.body["channel"] == "C0OLD").expect("feed posted");
    assert_eq!(to_channel.body["text"], "old &lt;!channel&gt;");
    let dm = app.slack.dms_to("U0OLD");
    assert_eq!(dm.len(), 1);
    assert!(!dm[0].body.to_string().contains("<@U0EVIL>"));
    assert!(app.store().identity("U0OLDUSER").await.unwrap().is_some_and(|i| i.resolved));
}

/// Rows an enqueue queues go out at once with the poll a minute away: on
/// SQLite the hand-off takes as many as its room allows and leaves the rest
/// for a claim, which the commit wakes; on PostgreSQL, where only a new
/// request's rows are handed over, the commit leaves them all. Five share one
/// ordering key (four wait behind the first, each claimed as the one before
/// finishes), and those five go out in order.
async fn handed_rows_go_out_at_once_and_in_key_order_without_a_poll(b: Backend) {
    let mut setup = Setup::new(b);
    setup.outbox.poll = std::time::Duration::from_secs(60);
    let app = spawn_with(setup).await;
    let feed = |channel: &str, text: &str| accessbot::store::OutboxItem {
        ordering_key: format!("channel:{channel}"),
        kind: "notice".into(),
        payload: serde_json::json!({"notice": "admin_feed", "channel": channel, "text": text}),
        deadline: None,
    };
    let mut rows: Vec<_> = (0..5).map(|i| feed("C0ORDER", &format!("n{i}"))).collect();
    rows.extend((0..20).map(|i| feed(&format!("C0W{i}"), "w")));
    app.store().enqueue(&rows, chrono::Utc::now()).await.unwrap();
    drain(&app.store(), std::time::Duration::from_secs(5)).await;

    let posts = app.slack.ok_calls("chat.postMessage");
    let order: Vec<_> =
        posts.iter().filter(|c| c.body["channel"] == "C0ORDER").map(|c| c.body["text"].clone()).collect();
    assert_eq!(order, ["n0", "n1", "n2", "n3", "n4"]);
    assert_eq!(posts.len(), 25, "every row once");
}

/// A row that failed comes due again in the store while commits keep handing
/// rows over (SQLite): the poll claims it though the loop never falls idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_claimed_while_handed_rows_keep_coming() {
    let app = spawn_app(Backend::Sqlite).await;
    let feed = |channel: &str| accessbot::store::OutboxItem {
        ordering_key: format!("channel:{channel}"),
        kind: "notice".into(),
        payload: serde_json::json!({"notice": "admin_feed", "channel": channel, "text": "t"}),
        deadline: None,
    };
    app.slack.fail_next("chat.postMessage", vec![Fail::ServerError]);
    app.store().enqueue(&[feed("C0RETRY")], chrono::Utc::now()).await.unwrap();
    let started = Instant::now();
    let mut delivered = None;
    for i in 0..300 {
        app.store().enqueue(&[feed(&format!("C0BUSY{i}"))], chrono::Utc::now()).await.unwrap();
        if app.slack.ok_calls("chat.postMessage").iter().any(|c| c.body["channel"] == "C0RETRY") {
            delivered = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Backoff 50 ms, poll 50 ms (the test setup): well within the traffic's 3 s.
    let after = delivered.expect("the retry went out while rows kept coming");
    assert!(after < std::time::Duration::from_secs(2), "{after:?}");
}

crate::both!(
    handed_rows_go_out_at_once_and_in_key_order_without_a_poll,
    rows_queued_by_the_previous_version_are_delivered_safely,
    rate_limit_then_server_error_then_ok_delivers_once,
    permanent_errors_fail_without_endless_retries,
    a_slack_outage_is_ridden_out_and_undelivered_rows_survive_a_restart,
    emails_resolve_once_and_are_cached
);
