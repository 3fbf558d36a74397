//! Several server processes on one database: one decision per step, each
//! notification delivered once, crashed replicas' claims taken over, graceful
//! SIGTERM, and no secret in any log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use accessbot::store::{OutboxItem, Store};
use reqwest::StatusCode;

use crate::fake_slack::FakeSlack;
use crate::helpers::*;
use crate::process;

async fn open_store(db: &TestDb) -> Arc<dyn Store> {
    accessbot::store::open(&db.url).await.unwrap()
}

fn feed_items(n: usize, tag: &str) -> Vec<OutboxItem> {
    (0..n)
        .map(|i| {
            // A distinct ordering key per row, so the workers may take them in parallel.
            let notice = feed_notice(format!("C0FEED{i}"), format!("{tag}-{i}"));
            accessbot::outbox::notice_item(&notice).unwrap()
        })
        .collect()
}

fn delivered_texts(slack: &FakeSlack, tag: &str) -> Vec<String> {
    slack
        .ok_calls("chat.postMessage")
        .into_iter()
        .filter_map(|c| c.body["text"].as_str().and_then(feed_tag).map(str::to_string))
        .filter(|t| t.starts_with(&format!("{tag}-")))
        .collect()
}

/// Kept for the PostgreSQL half only: several replicas need a shared server database.
fn postgres_only(b: &Backend) -> bool {
    matches!(b, Backend::Postgres(_))
}

async fn two_replicas_make_one_decision_per_step(b: Backend) {
    if !postgres_only(&b) {
        return;
    }
    let db = TestDb::create(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    slack.add_user("U0CAROL", "carol@example.com");
    let a = process::start(dir.path(), "a", &db.url, &slack, &[]).await;
    let bp = process::start(dir.path(), "b", &db.url, &slack, &[]).await;
    let store = open_store(&db).await;
    drain(&store, Duration::from_secs(10)).await;
    let (ca, cb) = (ChatClient::new(&a.base, &slack), ChatClient::new(&bp.base, &slack));

    let id = ca.request_app("U0REQ", "github", "two replicas").await;
    drain(&store, Duration::from_secs(10)).await;
    let mut clicks = Vec::new();
    for i in 0..20 {
        let client = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        let user = if i % 4 < 2 { "U0BOB" } else { "U0CAROL" };
        let id = id.clone();
        clicks.push(tokio::spawn(async move { client.click(user, "approve", &id, 0).await }));
    }
    for c in clicks {
        assert_eq!(c.await.unwrap(), StatusCode::OK);
    }
    drain(&store, Duration::from_secs(10)).await;

    let approvals = store.events_of_type("app.access_request.approver.approve", 100).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(store.events_of_type("application.user_membership.add", 100).await.unwrap().len(), 1);
    let outcome = slack.dms_to("U0REQ").into_iter().filter(|c| c.text().contains("access is granted")).count();
    assert_eq!(outcome, 1);

    // Nothing secret in either replica's debug logs.
    for p in [&a, &bp] {
        let logs = p.logs();
        assert!(logs.contains("accessbot listening"), "logs captured");
        for secret in [SECRET, TOKEN, API_TOKEN] {
            assert!(!logs.contains(secret), "a secret leaked into the logs");
        }
    }
}

async fn each_notification_is_delivered_once_by_two_replicas(b: Backend) {
    if !postgres_only(&b) {
        return;
    }
    let db = TestDb::create(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    slack.add_user("U0CAROL", "carol@example.com");
    let _a = process::start(dir.path(), "a", &db.url, &slack, &[]).await;
    let _b = process::start(dir.path(), "b", &db.url, &slack, &[]).await;
    let store = open_store(&db).await;
    store.enqueue(&feed_items(500, "n"), chrono::Utc::now()).await.unwrap();
    drain(&store, Duration::from_secs(60)).await;
    let mut texts = delivered_texts(&slack, "n");
    assert_eq!(texts.len(), 500, "every row delivered, none twice");
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 500);
    assert_eq!(store.outbox_counts().await.unwrap().failed, 0);
}

async fn a_killed_replicas_claims_are_delivered_after_the_lease(b: Backend) {
    if !postgres_only(&b) {
        return;
    }
    let db = TestDb::create(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    slack.add_user("U0CAROL", "carol@example.com");
    let lease = [("ACCESSBOT_OUTBOX_LEASE", "2s")];
    let mut a = process::start(dir.path(), "a", &db.url, &slack, &lease).await;
    let store = open_store(&db).await;
    drain(&store, Duration::from_secs(10)).await;

    slack.set_delay(Duration::from_secs(30));
    let before = slack.arrived();
    store.enqueue(&feed_items(40, "k"), chrono::Utc::now()).await.unwrap();
    // Let A claim (it finds rows another process queued at its next poll) and
    // hang in the slow Slack, then kill it.
    let waited = Instant::now();
    while slack.arrived() == before {
        assert!(waited.elapsed() < Duration::from_secs(5), "A never claimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill9();
    let killed = Instant::now();
    slack.set_delay(Duration::ZERO);

    let _b = process::start(dir.path(), "b", &db.url, &slack, &lease).await;
    drain(&store, Duration::from_secs(30)).await;
    assert!(killed.elapsed() >= Duration::from_millis(1500), "A's claims were held until the lease lapsed");
    let mut texts = delivered_texts(&slack, "k");
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 40, "every row delivered by the surviving replica");
    assert_eq!(store.outbox_counts().await.unwrap().failed, 0);
}

async fn a_killed_server_delivers_pending_rows_after_restart(b: Backend) {
    let db = TestDb::create(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    slack.add_user("U0CAROL", "carol@example.com");
    slack.set_down(true);
    // On PostgreSQL a dead process's claims hold until their lease lapses (SQLite frees them at open).
    let lease = [("ACCESSBOT_OUTBOX_LEASE", "2s")];
    let mut a = process::start(dir.path(), "a", &db.url, &slack, &lease).await;
    let id = ChatClient::new(&a.base, &slack).request_app("U0REQ", "github", "crash").await;
    a.kill9();
    let store = open_store(&db).await;
    assert!(store.outbox_counts().await.unwrap().pending >= 3, "killed with undelivered rows");
    slack.set_down(false);

    let _a2 = process::start(dir.path(), "a2", &db.url, &slack, &lease).await;
    drain(&store, Duration::from_secs(20)).await;
    assert_eq!(slack.dms_to("U0BOB").len(), 1);
    assert_eq!(slack.dms_to("U0CAROL").len(), 1);
    assert_eq!(slack.dms_to("U0REQ").len(), 1);
    assert_eq!(store.request(&id).await.unwrap().unwrap().status.as_str(), "PENDING");
}

async fn sigterm_finishes_in_flight_work_and_releases_claims(b: Backend) {
    let db = TestDb::create(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    slack.add_user("U0CAROL", "carol@example.com");
    let mut a = process::start(dir.path(), "a", &db.url, &slack, &[("ACCESSBOT_SHUTDOWN_TIMEOUT", "5s")]).await;
    let store = open_store(&db).await;
    drain(&store, Duration::from_secs(10)).await;
    slack.set_delay(Duration::from_millis(700));
    let arrived = slack.arrived();
    store.enqueue(&feed_items(30, "t"), chrono::Utc::now()).await.unwrap();
    // Deliveries under way: the server holds claims, none of which may stay
    // leased after it stops.
    let started = Instant::now();
    while slack.arrived() == arrived {
        assert!(started.elapsed() < Duration::from_secs(5), "nothing was delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let asked = Instant::now();
    a.sigterm();
    let status = loop {
        if let Some(s) = a.child.try_wait().unwrap() {
            break s;
        }
        assert!(asked.elapsed() < Duration::from_secs(8), "did not stop within the shutdown timeout");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit 0 on SIGTERM, got {status:?}");
    assert!(a.logs().contains("shutting down"));

    // Whatever was not delivered is free for the next worker at once: no lease left behind.
    let pending = store.outbox_counts().await.unwrap().pending;
    assert!(pending > 0, "the test stopped the server mid-batch");
    let claimable = store.claim_jobs(chrono::Utc::now(), Duration::from_secs(60), 1000).await.unwrap();
    assert_eq!(claimable.len() as i64, pending);
}

crate::both!(
    two_replicas_make_one_decision_per_step,
    each_notification_is_delivered_once_by_two_replicas,
    a_killed_replicas_claims_are_delivered_after_the_lease,
    a_killed_server_delivers_pending_rows_after_restart,
    sigterm_finishes_in_flight_work_and_releases_claims,
);
