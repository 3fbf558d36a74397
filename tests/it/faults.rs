//! Fault injection and abuse limits (the "Hardening" issue):
//! - a Slack that fails at random (seeded: 429 with `Retry-After` 0/1, 500, transient
//!   `ok:false`, answers that come after the client gave up) → every notice once, in order;
//! - PostgreSQL connections killed under load → the server recovers, nothing is lost;
//! - the server binary `kill -9`ed under load → every accepted command and click
//!   recorded once, the outbox drains, DM duplicates bounded by the calls in flight;
//! - slow-loris bodies, oversized and deeply nested bodies, per-user request rate limits.
//!
//! `FAULTS_SEED` picks the fault sequence (printed by each test); `FAULTS_KILLS`
//! the number of kills of `kill_9_under_load` (default 20). Run with
//! `--nocapture` to see the figures.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accessbot::outbox::OutboxConfig;
use accessbot::store::{OutboxItem, Store};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fake_slack::{Call, Chaos, FakeSlack};
use crate::helpers::*;
use crate::process;

const FORM: &str = "application/x-www-form-urlencoded";

/// The seed of the random faults: `FAULTS_SEED`, else a fixed one (runs are repeatable).
pub fn seed() -> u64 {
    std::env::var("FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_2024)
}

/// Fast retries and enough attempts that random faults never exhaust them. The
/// lease outlasts the Slack client's 10 s timeout, so a slow answer is never
/// delivered twice by two workers.
fn chaos_outbox() -> OutboxConfig {
    OutboxConfig {
        workers: 8,
        batch: 16,
        lease: Duration::from_secs(30),
        poll: Duration::from_millis(20),
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(200),
        max_attempts: 40,
    }
}

/// `keys` admin-feed channels × `per_key` notices each, inserted so that each
/// channel's notices are in sequence (`{tag}-{key}-{seq}`) and channels interleave.
pub fn feed(keys: usize, per_key: usize, tag: &str) -> Vec<OutboxItem> {
    let mut items = Vec::with_capacity(keys * per_key);
    for seq in 0..per_key {
        for k in 0..keys {
            let notice = feed_notice(format!("C0{tag}{k}"), format!("{tag}-{k}-{seq}"));
            items.push(accessbot::outbox::notice_item(&notice).unwrap());
        }
    }
    items
}

/// Checks that each feed notice was posted successfully exactly once, and each
/// channel's in insertion order. Returns how many were delivered.
pub fn check_feed(calls: &[Call], tag: &str, keys: usize, per_key: usize) -> usize {
    let mut seen: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let prefix = format!("{tag}-");
    for c in calls.iter().filter(|c| c.method == "chat.postMessage" && c.ok()) {
        let Some(rest) = c.body["text"].as_str().and_then(feed_tag).and_then(|t| t.strip_prefix(&prefix)) else {
            continue;
        };
        let (k, seq) = rest.split_once('-').unwrap();
        seen.entry(k.parse().unwrap()).or_default().push(seq.parse().unwrap());
    }
    let want: Vec<usize> = (0..per_key).collect();
    assert_eq!(seen.len(), keys, "every channel got its notices");
    for (k, got) in &seen {
        assert_eq!(got, &want, "channel {k}: each notice once, in insertion order");
    }
    keys * per_key
}

/// Successful top-level and thread posts with the same body more than once:
/// `(body, times)`. No legitimate flow posts the same body twice (each message
/// names its request, step and recipient; thread replies name their parent).
pub fn duplicate_posts(calls: &[Call]) -> Vec<(String, usize)> {
    let mut n: HashMap<String, usize> = HashMap::new();
    for c in calls.iter().filter(|c| c.method == "chat.postMessage" && c.ok()) {
        *n.entry(c.body.to_string()).or_default() += 1;
    }
    let mut d: Vec<(String, usize)> = n.into_iter().filter(|(_, k)| *k > 1).collect();
    d.sort();
    d
}

/// Extra copies beyond the first, over all duplicated bodies.
pub fn extra_copies(d: &[(String, usize)]) -> usize {
    d.iter().map(|(_, k)| k - 1).sum()
}

/// Every successful `chat.update` edits, and every thread reply answers, a
/// message whose successful post was recorded before it.
pub fn check_updates_follow_posts(calls: &[Call]) {
    let mut posted: HashMap<(String, String), usize> = HashMap::new();
    for (i, c) in calls.iter().enumerate().filter(|(_, c)| c.ok()) {
        let channel = c.body["channel"].as_str().unwrap_or_default().to_string();
        match c.method.as_str() {
            "chat.postMessage" => {
                if let Some(parent) = c.body["thread_ts"].as_str() {
                    assert!(
                        posted.contains_key(&(channel.clone(), parent.to_string())),
                        "thread reply #{i} before its parent was posted: {}",
                        c.body
                    );
                }
                if let Some(ts) = &c.ts {
                    posted.insert((channel, ts.clone()), i);
                }
            }
            "chat.update" => {
                let ts = c.body["ts"].as_str().unwrap_or_default().to_string();
                assert!(posted.contains_key(&(channel, ts)), "update #{i} before its post: {}", c.body);
            }
            _ => {}
        }
    }
}

/// Successful top-level posts and updates per channel, serialized once (the
/// checks below look requests up in thousands of calls).
pub struct Sent {
    /// channel → (text, whole body) of each top-level post, in order.
    posts: HashMap<String, Vec<(String, String)>>,
    /// channel → whole body of each update.
    updates: HashMap<String, Vec<String>>,
}

impl Sent {
    pub fn new(calls: &[Call]) -> Sent {
        let mut sent = Sent { posts: HashMap::new(), updates: HashMap::new() };
        for c in calls.iter().filter(|c| c.ok()) {
            let channel = c.body["channel"].as_str().unwrap_or_default().to_string();
            match c.method.as_str() {
                "chat.postMessage" if c.body.get("thread_ts").is_none() => {
                    let text = c.body["text"].as_str().unwrap_or_default().to_string();
                    sent.posts.entry(channel).or_default().push((text, c.text()));
                }
                "chat.update" => sent.updates.entry(channel).or_default().push(c.text()),
                _ => {}
            }
        }
        sent
    }

    /// Top-level DMs to `user` that mention `id` (texts, in the order posted).
    pub fn dms_about(&self, user: &str, id: &str) -> Vec<String> {
        let posts = self.posts.get(&format!("D{user}")).map(Vec::as_slice).unwrap_or_default();
        posts.iter().filter(|(_, body)| body.contains(id)).map(|(text, _)| text.clone()).collect()
    }

    /// Updates in `user`'s DM channel that mention `id`.
    pub fn updates_about(&self, user: &str, id: &str) -> usize {
        let updates = self.updates.get(&format!("D{user}")).map(Vec::as_slice).unwrap_or_default();
        updates.iter().filter(|body| body.contains(id)).count()
    }
}

/// The first `req…` id in backticks in a reply.
pub fn request_id_in(text: &str) -> Option<String> {
    text.split('`').find(|w| w.starts_with("req") && w.len() == 20).map(str::to_string)
}

/// Retries a store read through connection failures (PostgreSQL backends being killed).
async fn retry<T, F, Fut>(what: &str, f: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, accessbot::store::StoreError>>,
{
    let started = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                eprintln!("{what}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Waits until nothing is left to deliver, riding out store errors.
async fn drain_patiently(store: &Arc<dyn Store>, within: Duration) {
    let started = Instant::now();
    loop {
        if let Ok(c) = store.outbox_counts().await {
            if c.pending == 0 {
                return;
            }
            assert!(started.elapsed() < within, "outbox did not drain within {within:?}: {c:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Speaks to a server like Slack does, without panicking when the server is away.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The fake Slack's origin (for `response_url`s).
    slack_base: String,
}

impl Client {
    pub fn new(slack: &FakeSlack) -> Client {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        Client { http, slack_base: format!("http://{}", slack.addr) }
    }

    pub async fn signed(&self, base: &str, path: &str, body: String, ct: &str) -> reqwest::Result<reqwest::Response> {
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = accessbot::slack::verify::sign(SECRET, &ts, body.as_bytes());
        self.http
            .post(format!("{base}{path}"))
            .header("content-type", ct)
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body)
            .send()
            .await
    }

    /// `/access <text>` as `user`: the status and the reply's text.
    pub async fn command(&self, base: &str, user: &str, text: &str) -> reqwest::Result<(StatusCode, String)> {
        let res = self.signed(base, "/slack/commands", ChatClient::command_body(user, text, TEAM), FORM).await?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        Ok((status, body["text"].as_str().unwrap_or_default().to_string()))
    }

    /// A button click in the approver's DM.
    pub async fn click(
        &self,
        base: &str,
        user: &str,
        action: &str,
        id: &str,
        step: usize,
    ) -> reqwest::Result<StatusCode> {
        let payload = json!({
            "type": "block_actions",
            "team": {"id": TEAM, "domain": "acme"},
            "user": {"id": user, "team_id": TEAM},
            "trigger_id": format!("trigger-{user}-{action}"),
            "response_url": format!("{}/respond/{user}-{action}", self.slack_base),
            "container": {"type": "message", "channel_id": format!("D{user}"), "is_ephemeral": false},
            "actions": [{"action_id": action, "block_id": format!("decide:{id}:{step}"), "type": "button",
                          "value": format!("{id}:{step}"), "action_ts": "1700000000.1"}]
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        Ok(self.signed(base, "/slack/interactions", body, FORM).await?.status())
    }

    /// `app_home_opened` from the Events API.
    pub async fn home_opened(&self, base: &str, user: &str) -> reqwest::Result<StatusCode> {
        let ev = json!({"type": "event_callback", "team_id": TEAM,
                        "event": {"type": "app_home_opened", "user": user, "tab": "home"}});
        Ok(self.signed(base, "/slack/events", ev.to_string(), "application/json").await?.status())
    }

    /// `POST /governance/api/v2/requests`.
    pub async fn api_create(
        &self,
        base: &str,
        app: &str,
        user: &str,
        why: &str,
    ) -> reqwest::Result<(StatusCode, Value)> {
        let body = json!({"requested": {"type": "CATALOG_ENTRY", "entryId": app},
                          "requestedFor": {"type": "SLACK_USER", "externalId": user},
                          "requesterFieldValues": [{"id": "justification", "value": why}]});
        let res = self
            .http
            .post(format!("{base}/governance/api/v2/requests"))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await?;
        let status = res.status();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    /// `POST /governance/api/v2/requests/{id}/messages`.
    pub async fn api_message(&self, base: &str, id: &str, message: &str) -> reqwest::Result<StatusCode> {
        let res = self
            .http
            .post(format!("{base}/governance/api/v2/requests/{id}/messages"))
            .bearer_auth(API_TOKEN)
            .json(&json!({ "message": message }))
            .send()
            .await?;
        Ok(res.status())
    }
}

// ---------------------------------------------------------------------------
// 4a. A Slack that fails at random.

/// A request flow: who asks for what, and who decides each step how.
#[derive(Clone, Debug)]
struct Flow {
    user: String,
    app: &'static str,
    /// (approver, action, step)
    clicks: Vec<(&'static str, &'static str, usize)>,
    /// DMs the requester gets about the request, in order (a word of each).
    requester_dms: Vec<&'static str>,
    /// Approvers asked, with how many messages of theirs are closed.
    asked: Vec<&'static str>,
}

fn flows(tag: &str) -> Vec<Flow> {
    let mut out = Vec::new();
    for i in 0..16 {
        let (by, action) = match i % 4 {
            0 => ("U0BOB", "deny"),
            1 => ("U0CAROL", "approve"),
            _ => ("U0BOB", "approve"),
        };
        let outcome = if action == "deny" { "denied" } else { "access is granted" };
        out.push(Flow {
            user: format!("U0{tag}G{i:02}"),
            app: "github",
            clicks: vec![(by, action, 0)],
            requester_dms: vec!["submitted", outcome],
            asked: vec!["U0BOB", "U0CAROL"],
        });
    }
    for i in 0..6 {
        let last = if i == 5 { "deny" } else { "approve" };
        let outcome = if last == "deny" { "denied" } else { "access is granted" };
        out.push(Flow {
            user: format!("U0{tag}S{i:02}"),
            app: "salesforce",
            clicks: vec![("U0ALICE", "approve", 0), ("U0CAROL", "approve", 1), ("U0DAVE", last, 2)],
            requester_dms: vec!["submitted", "Step 1 of 3", "Step 2 of 3", outcome],
            asked: vec!["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"],
        });
    }
    out
}

async fn run_flow(chat: ChatClient, store: Arc<dyn Store>, f: Flow) -> (Flow, String) {
    let id = chat.request_app(&f.user, f.app, "fault injection").await;
    // Approvers click the DM they were sent: only once the requester is identified and it is routed.
    wait_routed(&store, &id).await;
    for (by, action, step) in &f.clicks {
        assert_eq!(chat.click(by, action, &id, *step).await, StatusCode::OK);
    }
    (f, id)
}

async fn random_slack_faults_deliver_every_notice_once_in_order(b: Backend) {
    let seed = seed();
    let mut setup = Setup::new(b.clone());
    setup.outbox = chaos_outbox();
    let app = spawn_with(setup).await;
    app.slack.clear();
    app.slack.set_chaos(Some(Chaos::new(seed).with_slow(0.002, 3)));
    let started = Instant::now();

    // 2,000 admin-feed notices (200 channels × 10, each channel in order) and real flows at once.
    let (keys, per_key) = (200, 10);
    app.store().enqueue(&feed(keys, per_key, "F"), chrono::Utc::now()).await.unwrap();
    let tasks: Vec<_> =
        flows("R").into_iter().map(|f| tokio::spawn(run_flow(app.chat.clone(), app.store(), f))).collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    drain(&app.store(), Duration::from_secs(120)).await;
    let elapsed = started.elapsed();

    let counts = app.store().outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0), "every row delivered, none given up: {counts:?}");
    let calls = app.slack.calls();
    let delivered = check_feed(&calls, "F", keys, per_key);
    let dupes = duplicate_posts(&calls);
    assert!(dupes.is_empty(), "posted more than once: {dupes:#?}");
    check_updates_follow_posts(&calls);

    let sent = Sent::new(&calls);
    for (f, id) in &done {
        let got = sent.dms_about(&f.user, id);
        assert_eq!(got.len(), f.requester_dms.len(), "{} {id}: requester DMs {got:#?}", f.app);
        for (text, want) in got.iter().zip(&f.requester_dms) {
            assert!(text.contains(want), "{id}: `{want}` expected, in order; got {got:#?}");
        }
        for approver in &f.asked {
            assert_eq!(sent.dms_about(approver, id).len(), 1, "{id}: {approver} asked once");
            assert_eq!(sent.updates_about(approver, id), 1, "{id}: {approver}'s message closed once");
        }
        let decisions = app
            .events(id)
            .await
            .into_iter()
            .filter(|e| e.event_type.starts_with("app.access_request.approver."))
            .count();
        assert_eq!(decisions, f.clicks.len(), "{id}: one decision per click");
    }

    let failed_calls = calls.iter().filter(|c| !c.ok()).count();
    eprintln!(
        "faults[{b:?}] seed={seed}: {} calls ({} answered with a fault: {:?}); {delivered} feed notices + {} flows \
         delivered once, in order; 0 duplicates; {:.1}s",
        calls.len(),
        failed_calls,
        app.slack.chaos_injected(),
        done.len(),
        elapsed.as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// 4b. PostgreSQL connections killed under load.

/// Kills every connection to `db` but our own; returns how many.
async fn terminate_backends(server: &str, db: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    n
}

/// What the load loops saw.
#[derive(Default)]
struct Ledger {
    /// user → request id, for every command answered 200 with a request id.
    accepted: Mutex<BTreeMap<String, String>>,
    /// request id → "approve" | "deny", for every click answered 200.
    decided: Mutex<BTreeMap<String, &'static str>>,
    /// Commands answered with something else than a request id (e.g. "try again").
    unaccepted: AtomicUsize,
    /// Calls that got no answer (server away).
    connection_errors: AtomicUsize,
}

async fn postgres_connections_killed_under_load_lose_nothing(b: Backend) {
    let Backend::Postgres(server) = &b else { return };
    let seed = seed();
    let mut setup = Setup::new(b.clone());
    setup.outbox = OutboxConfig { lease: Duration::from_secs(3), workers: 4, ..chaos_outbox() };
    let app = spawn_with(setup).await;
    app.slack.set_chaos(Some(Chaos::new(seed)));
    let db_name = app.db.url.rsplit('/').next().unwrap().to_string();
    let store = app.store();
    let base = app.base.clone();
    let client = Client::new(&app.slack);

    let (keys, per_key) = (100, 10);
    store.enqueue(&feed(keys, per_key, "P"), chrono::Utc::now()).await.unwrap();

    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for t in 0..4 {
        let (client, base, ledger, stop, store) =
            (client.clone(), base.clone(), ledger.clone(), stop.clone(), store.clone());
        loops.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let user = format!("U0PG{t}{n:04}");
                n += 1;
                // Until the command is accepted: a store error answers "try again", and
                // a retry finds the request if the first attempt committed after all.
                let id = loop {
                    match client.command(&base, &user, "request github pg faults").await {
                        Ok((StatusCode::OK, text)) => match request_id_in(&text) {
                            Some(id) => break id,
                            None => ledger.unaccepted.fetch_add(1, Ordering::SeqCst),
                        },
                        _ => ledger.connection_errors.fetch_add(1, Ordering::SeqCst),
                    };
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                ledger.accepted.lock().unwrap().insert(user.clone(), id.clone());
                wait_routed(&store, &id).await;
                let (by, action) = if n % 3 == 0 { ("U0CAROL", "deny") } else { ("U0BOB", "approve") };
                // A click that hit a dead connection is answered 200 with an apology in
                // its response_url; click again until the step is decided.
                loop {
                    let _ = client.click(&base, by, action, &id, 0).await;
                    let r = retry("read request", || store.request(&id)).await.unwrap();
                    if r.status.as_str() != "PENDING" {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                ledger.decided.lock().unwrap().insert(id, action);
            }
        }));
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let mut terminated = Vec::new();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..700))).await;
        terminated.push(terminate_backends(server, &db_name).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for l in loops {
        l.await.unwrap();
    }
    drain_patiently(&store, Duration::from_secs(60)).await;

    // Recovered without a restart.
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let id = app.request_app("U0AFTER", "github", "after the kills").await;
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    app.drain().await;

    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0), "{counts:?}");
    let accepted = ledger.accepted.lock().unwrap().clone();
    let decided = ledger.decided.lock().unwrap().clone();
    for (user, id) in &accepted {
        let mine = store.requests_for_user(user, 10).await.unwrap();
        assert_eq!(mine.len(), 1, "{user}: exactly one request");
        assert_eq!(&mine[0].id, id);
        let want = if decided[id] == "deny" { "DENIED" } else { "APPROVED" };
        assert_eq!(mine[0].status.as_str(), want, "{id}");
        let decisions = app
            .events(id)
            .await
            .into_iter()
            .filter(|e| e.event_type.starts_with("app.access_request.approver."))
            .count();
        assert_eq!(decisions, 1, "{id}: one decision");
    }
    let calls = app.slack.calls();
    let delivered = check_feed(&calls, "P", keys, per_key);
    check_updates_follow_posts(&calls);
    let sent = Sent::new(&calls);
    for (user, id) in &accepted {
        assert_eq!(sent.dms_about(user, id).len(), 2, "{id}: submitted and the outcome");
        for approver in ["U0BOB", "U0CAROL"] {
            assert!(!sent.dms_about(approver, id).is_empty(), "{id}: {approver} asked");
        }
    }
    let dupes = duplicate_posts(&calls);
    eprintln!(
        "pg-kills seed={seed}: backends terminated {terminated:?}; {} requests accepted and decided, {} commands \
         answered \"try again\", {} calls without an answer; {delivered} feed notices delivered in order; \
         {} duplicate posts",
        accepted.len(),
        ledger.unaccepted.load(Ordering::SeqCst),
        ledger.connection_errors.load(Ordering::SeqCst),
        extra_copies(&dupes),
    );
    assert!(dupes.is_empty(), "posted more than once: {dupes:#?}");
}

// ---------------------------------------------------------------------------
// 4c. The server binary kill -9'ed under load.

async fn open_store(db: &TestDb) -> Arc<dyn Store> {
    accessbot::store::open(&db.url).await.unwrap()
}

/// Load loops against whatever server is up, `kills` times `kill -9`ed and restarted;
/// returns the number of duplicated DMs.
async fn kill_loop(b: Backend, kills: usize) -> usize {
    let seed = seed();
    let db = TestDb::create(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    slack.add_user("U0CAROL", "carol@example.com");
    slack.set_chaos(Some(Chaos::new(seed)));
    // Opened before any server: on SQLite opening frees every claim.
    let store = open_store(&db).await;
    // A killed process's claims hold until their lease lapses (PostgreSQL).
    let env = [("ACCESSBOT_OUTBOX_LEASE", "2s"), ("RUST_LOG", "info")];
    let mut proc = process::start(dir.path(), "p0", &db.url, &slack, &env).await;
    let current = Arc::new(Mutex::new(proc.base.clone()));
    let client = Client::new(&slack);
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let mut loops = Vec::new();
    for t in 0..4 {
        let (client, current, ledger, stop, store) =
            (client.clone(), current.clone(), ledger.clone(), stop.clone(), store.clone());
        loops.push(tokio::spawn(async move {
            let base = || current.lock().unwrap().clone();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let user = format!("U0K{t}{n:04}");
                n += 1;
                // Resent until answered: a command lost with the process may have been
                // committed, and then the retry answers with the open request.
                let id = loop {
                    match client.command(&base(), &user, "request github kill test").await {
                        Ok((StatusCode::OK, text)) => match request_id_in(&text) {
                            Some(id) => break id,
                            None => {
                                ledger.unaccepted.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                        _ => {
                            ledger.connection_errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                };
                ledger.accepted.lock().unwrap().insert(user.clone(), id.clone());
                wait_routed(&store, &id).await;
                let (by, action) = match n % 3 {
                    0 => ("U0CAROL", "deny"),
                    1 => ("U0BOB", "approve"),
                    _ => ("U0CAROL", "approve"),
                };
                loop {
                    match client.click(&base(), by, action, &id, 0).await {
                        Ok(StatusCode::OK) => break,
                        _ => {
                            ledger.connection_errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                ledger.decided.lock().unwrap().insert(id, action);
                // Paced: about 10 requests a second in all, so the final drain stays short.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let mut restarts = Vec::new();
    for k in 1..=kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..900))).await;
        proc.kill9();
        let down = Instant::now();
        proc = process::start(dir.path(), &format!("p{k}"), &db.url, &slack, &env).await;
        restarts.push(down.elapsed());
        *current.lock().unwrap() = proc.base.clone();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for l in loops {
        l.await.unwrap();
    }
    let load_ended = started.elapsed();
    drain(&store, Duration::from_secs(90)).await;
    let elapsed = started.elapsed();

    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0), "every notification row delivered: {counts:?}");
    let accepted = ledger.accepted.lock().unwrap().clone();
    let decided = ledger.decided.lock().unwrap().clone();
    assert!(accepted.len() >= kills, "load ran: {} requests", accepted.len());
    let total: i64 = store.request_counts().await.unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(total as usize, accepted.len(), "every request once: none lost, none created twice");
    for (user, id) in &accepted {
        let mine = store.requests_for_user(user, 10).await.unwrap();
        assert_eq!(mine.len(), 1, "{user}: exactly one request");
        assert_eq!(&mine[0].id, id);
        let want = if decided[id] == "deny" { "DENIED" } else { "APPROVED" };
        assert_eq!(mine[0].status.as_str(), want, "{id}: the click answered 200 is recorded");
        let decisions = store
            .request_events(id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type.starts_with("app.access_request.approver."))
            .count();
        assert_eq!(decisions, 1, "{id}: exactly one decision");
    }
    let calls = slack.calls();
    check_updates_follow_posts(&calls);
    let sent = Sent::new(&calls);
    for (user, id) in &accepted {
        let dms = sent.dms_about(user, id);
        assert!(dms.iter().any(|t| t.contains("submitted")), "{id}: submitted DM lost: {dms:?}");
        assert!(dms.iter().any(|t| t.contains("denied") || t.contains("access is granted")), "{id}: outcome lost");
        for approver in ["U0BOB", "U0CAROL"] {
            assert!(!sent.dms_about(approver, id).is_empty(), "{id}: {approver} never asked");
        }
    }
    let dupes = duplicate_posts(&calls);
    let is_reply = |body: &str| body.contains("\"thread_ts\"");
    let dms: Vec<_> = dupes.iter().filter(|(body, _)| !is_reply(body)).cloned().collect();
    let replies: Vec<_> = dupes.iter().filter(|(body, _)| is_reply(body)).cloned().collect();
    let (extra_dms, extra_replies) = (extra_copies(&dms), extra_copies(&replies));
    let mean_restart = restarts.iter().sum::<Duration>() / u32::try_from(restarts.len().max(1)).unwrap();
    eprintln!(
        "kill-9[{b:?}] seed={seed}: {kills} kills over {:.1}s of load (restart {:.2}s on average), drained at {:.1}s; \
         {} requests and {} decisions recorded once; {} commands not accepted, {} calls without an answer; \
         {} successful Slack calls; duplicates: {extra_dms} DMs and {extra_replies} thread replies",
        load_ended.as_secs_f64(),
        mean_restart.as_secs_f64(),
        elapsed.as_secs_f64(),
        accepted.len(),
        decided.len(),
        ledger.unaccepted.load(Ordering::SeqCst),
        ledger.connection_errors.load(Ordering::SeqCst),
        calls.iter().filter(|c| c.ok()).count(),
    );
    // At most the rows in flight when each process died, one per outbox worker; a
    // thread notice in flight is one reply per message of its request (two here).
    let workers = OutboxConfig::default().workers;
    assert!(extra_dms <= kills * workers, "{extra_dms} duplicated DMs for {kills} kills: {dms:#?}");
    assert!(extra_replies <= kills * workers * 2, "{extra_replies} duplicated replies for {kills} kills: {replies:#?}");
    extra_dms + extra_replies
}

async fn kill_9_under_load(b: Backend) {
    let kills = std::env::var("FAULTS_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(20);
    kill_loop(b, kills).await;
}

// ---------------------------------------------------------------------------
// 5. Abuse limits.

/// Every route answers 413; the REST API in Okta's shape (`E0000001` naming the length limit).
async fn oversized_bodies_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    let client = Client::new(&app.slack);
    let big = "a".repeat(300 * 1024);
    for (path, body) in [
        ("/slack/commands", format!("team_id={TEAM}&user_id=U0EVE&text={big}")),
        ("/slack/interactions", format!("payload={big}")),
    ] {
        let res = client.signed(&app.base, path, body, FORM).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    let res =
        client.signed(&app.base, "/slack/events", format!("{{\"x\":\"{big}\"}}"), "application/json").await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "/slack/events");
    let http = reqwest::Client::new();
    let body = json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "github"},
                      "requestedFor": {"type": "SLACK_USER", "externalId": "U0EVE"},
                      "requesterFieldValues": [{"id": "justification", "value": big}]});
    let res = http
        .post(format!("{}/governance/api/v2/requests", app.base))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "POST requests");
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["errorCode"], "E0000001");
    assert!(e["errorCauses"][0]["reason"].as_str().unwrap().contains("length limit exceeded"), "{e}");
    assert!(app.open_request("U0EVE", "github").await.is_none());
    assert!(!app.say("U0EVE", "apps").await.is_empty(), "still serving");
}

/// Sends the headers of a POST announcing `len` bytes, then trickles the body a
/// byte every `every`; returns when the server answered (status line, if any)
/// and whether it then closed the connection.
async fn slow_loris(addr: std::net::SocketAddr, path: &str, len: usize, every: Duration) -> (Duration, String, bool) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let ts = chrono::Utc::now().timestamp();
    let ct = if path.starts_with("/slack/") { FORM } else { "application/json" };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ct}\r\nContent-Length: {len}\r\n\
         X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: v0=00\r\nAuthorization: Bearer {API_TOKEN}\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..len {
            tokio::time::sleep(every).await;
            if wr.write_all(b"a").await.is_err() {
                break;
            }
        }
        wr
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let mut answered = None;
    let mut closed = false;
    let deadline = started + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if answered.is_none() && got.windows(4).any(|w| w == b"\r\n\r\n") {
                    answered = Some(started.elapsed());
                }
            }
            Err(_) => break,
        }
    }
    trickle.abort();
    let status = String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_string();
    (answered.unwrap_or_else(|| started.elapsed()), status, closed)
}

async fn slow_loris_bodies_are_cut_off_and_others_are_served(b: Backend) {
    let app = spawn_app(b).await;
    let addr = app.running.as_ref().unwrap().addr;
    // 30 clients trickling bodies (a byte every 500 ms) on the Slack and API routes.
    let loris: Vec<_> = (0..30)
        .map(|i| {
            let path = if i % 2 == 0 { "/slack/commands" } else { "/governance/api/v2/requests" };
            tokio::spawn(slow_loris(addr, path, 1000, Duration::from_millis(500)))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Meanwhile everyone else is served at once.
    for i in 0..5 {
        let t = Instant::now();
        let id = app.request_app(&format!("U0CALM{i}"), "github", "while the loris trickles").await;
        assert!(t.elapsed() < Duration::from_secs(2), "a normal request took {:?}", t.elapsed());
        assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    }
    let mut worst = Duration::ZERO;
    for l in loris {
        let (after, status, closed) = l.await.unwrap();
        assert!(status.contains(" 408 "), "answered `{status}` after {after:?}");
        assert!(after >= Duration::from_secs(14) && after <= Duration::from_secs(17), "408 after {after:?}");
        assert!(closed, "the connection is closed after the 408");
        worst = worst.max(after);
    }
    eprintln!("slow-loris: 30 trickled bodies answered 408 and closed within {worst:?}");
}

/// Reads until the server closes the connection (or `limit` passes); returns when it closed.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// Connections that trickle their headers, or sit idle before or between
/// requests, are closed after the header deadline; everyone else is served.
async fn slow_headers_and_idle_connections_are_closed(b: Backend) {
    let mut setup = Setup::new(b);
    setup.header_timeout = Duration::from_secs(2);
    let app = spawn_with(setup).await;
    let addr = app.running.as_ref().unwrap().addr;
    let mut trickling = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /slack/commands HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        trickling.push(tokio::spawn(async move {
            // A header line every 500 ms: never done, always busy.
            let started = Instant::now();
            for i in 0..40 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if s.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                    break;
                }
            }
            closed_within(&mut s, Duration::from_secs(1)).await.map(|_| started.elapsed())
        }));
    }
    // Connected, silent.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    // One request served, then silent on the kept-alive connection.
    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));

    let t = Instant::now();
    let id = app.request_app("U0CALM", "github", "while others dawdle").await;
    assert!(t.elapsed() < Duration::from_secs(2), "a normal request took {:?}", t.elapsed());
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");

    let idle_after = closed_within(&mut idle, Duration::from_secs(10)).await.expect("the idle connection stays open");
    let kept_after =
        closed_within(&mut kept, Duration::from_secs(10)).await.expect("the kept-alive connection stays open");
    assert!(idle_after <= Duration::from_secs(4), "idle closed after {idle_after:?}");
    assert!(kept_after <= Duration::from_secs(4), "kept-alive closed after {kept_after:?}");
    for t in trickling {
        let after = t.await.unwrap().expect("a connection trickling headers stays open");
        assert!(after >= Duration::from_millis(1500) && after <= Duration::from_secs(4), "closed after {after:?}");
    }
}

/// One app per line, none needing approval (requests are granted at once).
fn many_apps_config(n: usize) -> String {
    let mut c = String::from("[settings]\nadmins = [\"U0ROOT\"]\n");
    for i in 1..=n {
        c.push_str(&format!("\n[apps.a{i:02}]\nname = \"App {i}\"\napproval = false\n"));
    }
    c
}

async fn chat_request_rate_is_limited_per_user(b: Backend) {
    let mut setup = Setup::new(b);
    setup.config = many_apps_config(14);
    let app = spawn_with(setup).await;
    let started = Instant::now();
    let mut made = 0;
    let refusal = loop {
        let reply = app.say("U0FAST", &format!("request a{:02}", made + 1)).await;
        if reply.contains("too fast") {
            break reply;
        }
        assert!(reply.contains(":tada:"), "{reply}");
        made += 1;
        assert!(made <= 13, "never limited");
    };
    // Ten at once; one more for each 6 s the loop took.
    let refills = (started.elapsed().as_secs() / 6) as usize;
    assert!((10..=10 + refills).contains(&made), "{made} requests before the limit");
    assert!(
        refusal.starts_with(":hourglass_flowing_sand: You're creating requests too fast; try again in "),
        "{refusal}"
    );
    let secs: u64 = refusal.rsplit("in ").next().unwrap().trim_end_matches(" s.").parse().unwrap();
    assert!((1..=6).contains(&secs), "{refusal}");
    // Nothing was created by the refused command.
    let n = app.store().requests_for_user("U0FAST", 100).await.unwrap().len();
    assert_eq!(n, made);
    // Other users are not affected.
    assert!(app.say("U0CALM", &format!("request a{:02}", made + 1)).await.contains(":tada:"));
    // The budget is the user's, whichever way they come: the API is refused too.
    let client = Client::new(&app.slack);
    let (status, _) = client.api_create(&app.base, "a14", "U0FAST", "x").await.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

async fn api_request_rate_is_limited_per_requested_by(b: Backend) {
    let mut setup = Setup::new(b);
    setup.config = many_apps_config(14);
    let app = spawn_with(setup).await;
    let client = Client::new(&app.slack);
    let started = Instant::now();
    let mut made = 0;
    let (status, err, retry_after) = loop {
        let res = reqwest::Client::new()
            .post(format!("{}/governance/api/v2/requests", app.base))
            .bearer_auth(API_TOKEN)
            .json(&json!({"requested": {"type": "CATALOG_ENTRY", "entryId": format!("a{:02}", made + 1)},
                          "requestedFor": {"type": "SLACK_USER", "externalId": "U0BULK"}}))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let body: Value = res.json().await.unwrap();
        if status != StatusCode::ACCEPTED {
            break (status, body, retry_after);
        }
        made += 1;
        assert!(made <= 13, "never limited");
    };
    let refills = (started.elapsed().as_secs() / 6) as usize;
    assert!((10..=10 + refills).contains(&made), "{made} requests before the limit");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{err}");
    assert_eq!(err["errorCode"], "E0000047");
    assert_eq!(err["errorSummary"], "API call exceeded rate limit due to too many requests");
    assert_eq!(err["errorCauses"][0]["location"], "requestedBy");
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=6).contains(&secs), "Retry-After: {secs}");
    assert_eq!(app.store().requests_for_user("U0BULK", 100).await.unwrap().len(), made);
    // Another requestedBy is not affected; nor is chat for another user.
    let (status, r) = client.api_create(&app.base, "a01", "U0OTHER", "x").await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    assert!(app.say("U0CHAT", "request a01").await.contains(":tada:"));
    // The limit is documented.
    let doc: Value = reqwest::get(format!("{}/openapi.json", app.base)).await.unwrap().json().await.unwrap();
    let r429 = &doc["paths"]["/governance/api/v2/requests"]["post"]["responses"]["429"];
    assert!(r429["headers"]["Retry-After"].is_object(), "{r429}");
    assert!(r429["content"]["application/json"]["schema"]["$ref"].as_str().unwrap().ends_with("ErrorBody"));
}

async fn deeply_nested_and_huge_json_is_refused_quickly(b: Backend) {
    let app = spawn_app(b).await;
    let client = Client::new(&app.slack);
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut deep_object = String::new();
    while deep_object.len() < 200 * 1024 {
        deep_object.push_str("{\"a\":");
    }
    let depth = deep_object.len() / 5;
    deep_object.push('1');
    deep_object.push_str(&"}".repeat(depth));

    let t = Instant::now();
    // An interaction payload that is 10k nested arrays, and one with such an array inside.
    let payload = serde_urlencoded::to_string([("payload", deep_array.as_str())]).unwrap();
    let res = client.signed(&app.base, "/slack/interactions", payload, FORM).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let inner = format!("{{\"type\":\"block_actions\",\"team\":{{\"id\":\"{TEAM}\"}},\"user\":{{\"id\":\"U0EVE\"}},\"x\":{deep_array}}}");
    let payload = serde_urlencoded::to_string([("payload", inner.as_str())]).unwrap();
    let res = client.signed(&app.base, "/slack/interactions", payload, FORM).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = client.signed(&app.base, "/slack/events", deep_array.clone(), "application/json").await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // 200 KB of nested objects as API bodies: the whole body, and inside a field.
    let http = reqwest::Client::new();
    let api = |method: reqwest::Method, path: &str, body: String| {
        http.request(method, format!("{}{path}", app.base))
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let id = app.request_app("U0REQ", "github", "x").await;
    let in_field = format!(
        "{{\"requested\":{{\"type\":\"CATALOG_ENTRY\",\"entryId\":\"github\"}},\"requestedFor\":{deep_object}}}"
    );
    for (method, path, body) in [
        (reqwest::Method::POST, "/governance/api/v2/requests".to_string(), deep_object.clone()),
        (reqwest::Method::POST, "/governance/api/v2/requests".to_string(), in_field),
        (reqwest::Method::POST, format!("/governance/api/v2/requests/{id}/messages"), deep_object.clone()),
        (reqwest::Method::PATCH, format!("/governance/api/v2/requests/{id}"), deep_object.clone()),
    ] {
        let res = api(method, &path, body).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["errorCode"], "E0000001", "{path}: {e}");
    }
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "refusing took {took:?}");

    // Healthy: the request is untouched and the server answers.
    assert_eq!(app.request(&id).await.status.as_str(), "PENDING");
    assert_eq!(reqwest::get(format!("{}/healthz", app.base)).await.unwrap().status(), StatusCode::OK);
    let (status, mine) = app.command("U0REQ", "mine").await;
    assert_eq!(status, StatusCode::OK);
    assert!(mine.to_string().contains(&id), "{mine}");
    eprintln!("nested JSON: 7 bodies (10k nested arrays, 200 KB nested objects) refused with 400 in {took:?}");
}

crate::both!(
    random_slack_faults_deliver_every_notice_once_in_order,
    postgres_connections_killed_under_load_lose_nothing,
    kill_9_under_load,
    oversized_bodies_are_refused,
    slow_loris_bodies_are_cut_off_and_others_are_served,
    slow_headers_and_idle_connections_are_closed,
    chat_request_rate_is_limited_per_user,
    api_request_rate_is_limited_per_requested_by,
    deeply_nested_and_huge_json_is_refused_quickly,
);
