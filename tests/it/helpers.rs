//! spawn_app(): the real server on port 0 with its own database and a fake
//! Slack; signed requests exactly as Slack sends them; drain().

use std::sync::Arc;
use std::time::Duration;

use accessbot::config::{parse_catalog, Env, Secret};
use accessbot::outbox::OutboxConfig;
use accessbot::server::{self, Options, Running};
use accessbot::slack::verify::sign;
use accessbot::store::Store;
use accessbot::workflow::model::{FeedEvent, LogEvent, Notice, Request};
use accessbot::workflow::system_clock;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_slack::FakeSlack;

pub const SECRET: &str = "test-signing-secret-0123456789";
pub const TOKEN: &str = "xoxb-test-token";
pub const TEAM: &str = "T0TEAM";
pub const API_TOKEN: &str = "test-api-token-2a9f";
/// `OKTA_API_TOKEN`: what the fake Okta expects after `SSWS `.
pub const OKTA_TOKEN: &str = "00okta-test-token-5b1e";
/// In `ACCESSBOT_API_READ_TOKENS`: GET only.
pub const READ_TOKEN: &str = "test-read-token-77c1";

/// Alice approves step 1, the security group (Bob, Carol by email) step 2, Dave step 3.
pub const CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]

[groups.security]
name = "Security Team"
members = ["U0BOB", "carol@example.com"]

[apps.salesforce]
name = "Salesforce"
description = "CRM"
admins = ["U0SFADMIN"]
steps = [{ user = "U0ALICE" }, { group = "security" }, { user = "U0DAVE" }]
fields = [{ id = "justification", label = "Business justification", type = "text", required = true }]

[apps.zoom]
name = "Zoom"
approval = false

[apps.github]
name = "GitHub"
admins = ["U0GHADMIN"]
steps = [{ group = "security" }]

[apps.payroll]
name = "Payroll"
self_service = false
steps = [{ user = "U0ALICE" }]
"#;

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// A server URL; each test creates (and drops) its own database there.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `TEST_DATABASE_URL` is set.
    pub fn postgres() -> Option<Backend> {
        std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()).map(Backend::Postgres)
    }
}

/// A throwaway database: a file in a temp dir, or a fresh PostgreSQL database
/// dropped (with FORCE) when the test ends.
pub struct TestDb {
    pub url: String,
    _dir: tempfile::TempDir,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    pub async fn create(backend: &Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.path().join("accessbot.db").display()),
                _dir: dir,
                pg_admin: None,
            },
            Backend::Postgres(server) => {
                use sqlx::Connection;
                let name = format!("accessbot_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(server).await.expect("TEST_DATABASE_URL reachable");
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                let base = server.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
                TestDb { url: format!("{base}/{name}"), _dir: dir, pg_admin: Some((server.clone(), name)) }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.pg_admin.take() else { return };
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

pub struct Setup {
    pub backend: Backend,
    /// A clock the test moves by hand (default: the system clock).
    pub clock: Option<Arc<accessbot::workflow::ManualClock>>,
    pub config: String,
    pub team_ids: Option<Vec<String>>,
    pub outbox: OutboxConfig,
    pub header_timeout: Duration,
    /// `ACCESSBOT_PUBLIC_URL` (default: the listen address).
    pub public_url: Option<String>,
    /// `ACCESSBOT_TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<accessbot::config::IpRange>,
    /// `SLACK_APP_TOKEN`: set, the server also connects over Socket Mode.
    pub app_token: Option<String>,
    pub socket_backoff: accessbot::slack::socket::Backoff,
}

impl Setup {
    pub fn new(backend: Backend) -> Self {
        Setup {
            backend,
            clock: None,
            config: CONFIG.to_string(),
            team_ids: Some(vec![TEAM.to_string()]),
            outbox: OutboxConfig {
                workers: 2,
                batch: 16,
                lease: Duration::from_secs(5),
                poll: Duration::from_millis(50),
                base_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
                max_attempts: 6,
            },
            header_timeout: accessbot::http::HEADER_TIMEOUT,
            public_url: None,
            trusted_proxies: Vec::new(),
            app_token: None,
            // Quick reconnects, so the tests see several within seconds.
            socket_backoff: accessbot::slack::socket::Backoff {
                first: Duration::from_millis(200),
                max: Duration::from_secs(2),
            },
        }
    }
}

pub struct TestApp {
    pub chat: ChatClient,
    pub slack: FakeSlack,
    pub running: Option<Running>,
    store: Arc<dyn Store>,
    pub db: Arc<TestDb>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(Setup::new(backend)).await
}

pub async fn spawn_with(setup: Setup) -> TestApp {
    spawn_on(setup, FakeSlack::start().await).await
}

/// [`spawn_with`] on a fake Slack the test prepared (users, scripted failures).
pub async fn spawn_on(setup: Setup, slack: FakeSlack) -> TestApp {
    // RUST_LOG=accessbot=debug cargo test … shows the server's logs.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let db = Arc::new(TestDb::create(&setup.backend).await);
    slack.add_user("U0CAROL", "carol@example.com");
    start(setup, slack, db).await
}

async fn start(setup: Setup, slack: FakeSlack, db: Arc<TestDb>) -> TestApp {
    let database_url = db.url.clone();
    let env = Env {
        config_path: write_config(&db, &setup.config),
        port: 0,
        database_url: database_url.clone(),
        signing_secret: Secret::new(SECRET),
        bot_token: Secret::new(TOKEN),
        slack_app_token: setup.app_token.as_deref().map(Secret::new),
        slack_api_base_url: slack.api_base(),
        api_tokens: vec![Secret::new(API_TOKEN), Secret::new("second-token")],
        api_read_tokens: vec![Secret::new(READ_TOKEN)],
        public_url: setup.public_url.clone(),
        trusted_proxies: setup.trusted_proxies.clone(),
        team_ids: setup.team_ids.clone(),
        outbox_lease: setup.outbox.lease,
        shutdown_timeout: Duration::from_secs(5),
        okta_token: Some(Secret::new(OKTA_TOKEN)),
    };
    // `{HOOKS}` in a test config names the fake webhook receiver.
    let config = setup.config.replace("{HOOKS}", &format!("http://{}/hooks", slack.addr));
    let catalog = parse_catalog("accessbot.toml", &config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let opts = Options {
        env,
        catalog,
        outbox: setup.outbox.clone(),
        clock: match &setup.clock {
            Some(c) => c.clone() as Arc<dyn accessbot::workflow::Clock>,
            None => system_clock(),
        },
        shutdown_grace: Duration::from_secs(5),
        header_timeout: setup.header_timeout,
        socket_backoff: setup.socket_backoff,
        jobs_interval: setup.clock.is_none().then_some(server::JOBS_INTERVAL),
    };
    let running = server::start(opts, listener).await.unwrap();
    let app = TestApp {
        chat: ChatClient::new(&format!("http://{}", running.addr), &slack),
        slack,
        store: running.workflow.store().clone(),
        running: Some(running),
        db,
    };
    // Identity look-ups for configured emails are queued at start; let them land.
    app.drain().await;
    app
}

impl TestApp {
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Stops the server (graceful), keeping the database and the fake Slack.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// Starts a new server on the same database and fake Slack.
    pub async fn restart(mut self, setup: Setup) -> TestApp {
        self.stop().await;
        start(setup, self.slack.clone(), self.db.clone()).await
    }

    /// [`ChatClient::request_app`], then waits until the request is routed: a user
    /// seen for the first time may wait (`SUBMITTED`) when Slack's `users.info`
    /// answers slowly, as on a loaded machine.
    pub async fn request_app(&self, user: &str, app: &str, justification: &str) -> String {
        let id = self.chat.request_app(user, app, justification).await;
        wait_routed(&self.store, &id).await;
        id
    }

    /// A second server on the same database and fake Slack (a replica; PostgreSQL).
    pub async fn replica(&self, setup: Setup) -> TestApp {
        start(setup, self.slack.clone(), self.db.clone()).await
    }

    /// Waits until the outbox has nothing left to deliver.
    pub async fn drain(&self) {
        drain(&self.store, Duration::from_secs(10)).await
    }

    pub async fn request(&self, id: &str) -> Request {
        self.store().request(id).await.unwrap().expect("request exists")
    }

    pub async fn open_request(&self, user: &str, app: &str) -> Option<Request> {
        self.store().open_request(user, app).await.unwrap()
    }

    pub async fn events(&self, request_id: &str) -> Vec<LogEvent> {
        self.store().request_events(request_id).await.unwrap()
    }

    pub async fn events_of(&self, event_type: &str) -> Vec<LogEvent> {
        self.store().events_of_type(event_type, 10_000).await.unwrap()
    }
}

/// Talks to a server exactly as Slack does: signed commands, clicks and modal submissions.
#[derive(Clone)]
pub struct ChatClient {
    pub base: String,
    /// Where the fake Slack takes `response_url` posts.
    pub slack_base: String,
    http: reqwest::Client,
}

impl ChatClient {
    pub fn new(base: &str, slack: &FakeSlack) -> ChatClient {
        ChatClient {
            base: base.to_string(),
            slack_base: format!("http://{}", slack.addr),
            http: reqwest::Client::new(),
        }
    }

    fn response_url(&self, id: &str) -> String {
        format!("{}/respond/{id}", self.slack_base)
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: &str,
        content_type: &str,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let mut req =
            self.http.post(format!("{}{path}", self.base)).header("content-type", content_type).body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.unwrap()
    }

    /// POSTs `body` signed with the signing secret, timestamped now.
    pub async fn signed(&self, path: &str, body: &str, content_type: &str) -> reqwest::Response {
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = sign(SECRET, &ts, body.as_bytes());
        self.post_raw(path, body, content_type, &[("x-slack-request-timestamp", ts), ("x-slack-signature", sig)]).await
    }

    /// Like Slack's, every command carries its own `trigger_id` (so two identical
    /// commands in one second are not one replayed request).
    pub fn command_body(user: &str, text: &str, team: &str) -> String {
        static TRIGGERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let trigger = format!("{}.2.trigger", TRIGGERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        serde_urlencoded::to_string([
            ("token", "legacy-unused"),
            ("team_id", team),
            ("team_domain", "acme"),
            ("channel_id", "C0GENERAL"),
            ("user_id", user),
            ("user_name", &user.to_lowercase()),
            ("command", "/access"),
            ("text", text),
            ("response_url", "https://hooks.slack.com/commands/T0TEAM/1/abc"),
            ("trigger_id", &trigger),
        ])
        .unwrap()
    }

    /// Runs `/access <text>` as `user`; returns the status and the ephemeral reply.
    pub async fn command(&self, user: &str, text: &str) -> (StatusCode, Value) {
        let res = self
            .signed("/slack/commands", &Self::command_body(user, text, TEAM), "application/x-www-form-urlencoded")
            .await;
        let status = res.status();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// The reply text of a command (asserting it was answered 200).
    pub async fn say(&self, user: &str, text: &str) -> String {
        let (status, body) = self.command(user, text).await;
        assert_eq!(status, StatusCode::OK, "/access {text} → {body}");
        assert_eq!(body["response_type"], "ephemeral");
        body["text"].as_str().unwrap_or_default().to_string()
    }

    pub async fn interaction(&self, payload: Value) -> reqwest::Response {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        self.signed("/slack/interactions", &body, "application/x-www-form-urlencoded").await
    }

    /// Clicks a decision button on the approver DM.
    pub async fn click(&self, user: &str, action_id: &str, request_id: &str, step: usize) -> StatusCode {
        let payload = json!({
            "type": "block_actions",
            "team": {"id": TEAM, "domain": "acme"},
            "user": {"id": user, "team_id": TEAM},
            "trigger_id": format!("trigger-{user}-{action_id}"),
            "response_url": self.response_url(&format!("{user}-{action_id}")),
            "container": {"type": "message", "channel_id": format!("D{user}"), "is_ephemeral": false},
            "actions": [{"action_id": action_id, "block_id": format!("decide:{request_id}:{step}"), "type": "button",
                          "value": format!("{request_id}:{step}"), "action_ts": "1700000000.1"}]
        });
        self.interaction(payload).await.status()
    }

    /// Submits the comment modal.
    pub async fn submit_comment(&self, user: &str, metadata: &str, comment: &str) -> (StatusCode, Value) {
        let payload = json!({
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": {"id": user, "team_id": TEAM},
            "view": {"id": "V1", "callback_id": "decision_comment", "private_metadata": metadata,
                     "state": {"values": {"comment": {"comment": {"type": "plain_text_input", "value": comment}}}}}
        });
        let res = self.interaction(payload).await;
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Creates a request as `user` and returns its id.
    pub async fn request_app(&self, user: &str, app: &str, justification: &str) -> String {
        let reply = self.say(user, &format!("request {app} {justification}")).await;
        let id = reply.split('`').nth(1).unwrap_or_default().to_string();
        assert!(id.starts_with("req") && id.len() == 20, "no request id in reply: {reply}");
        id
    }
}

impl std::ops::Deref for TestApp {
    type Target = ChatClient;
    fn deref(&self) -> &ChatClient {
        &self.chat
    }
}

/// Waits until `store`'s outbox has nothing left to deliver.
pub async fn drain(store: &Arc<dyn Store>, within: Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if store.outbox_counts().await.unwrap().pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("outbox did not drain: {:?}", store.outbox_counts().await.unwrap());
}

/// Event types of a request's history, in order.
pub fn types(events: &[LogEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_type.clone()).collect()
}

/// Writes the config the server starts with to `accessbot.toml` in the test's
/// temp dir (so `POST /admin/reload` re-reads a real file) and returns its path.
pub fn write_config(db: &TestDb, text: &str) -> std::path::PathBuf {
    let path = db.config_path();
    std::fs::write(&path, text).unwrap();
    path
}

impl TestDb {
    /// Where this test's server reads its config file.
    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("accessbot.toml")
    }
}

impl TestApp {
    /// Replaces the config file on disk (the running server sees it on reload).
    pub fn write_config(&self, text: &str) {
        write_config(&self.db, text);
    }
}

/// An admin-feed notice that carries `tag` where [`feed_tag`] finds it again.
pub fn feed_notice(channel: String, tag: String) -> Notice {
    let event = FeedEvent::Expired { request_id: tag, app_name: "Tagged".into(), user: "U0TAG".into() };
    Notice::AdminFeed { channel, event }
}

/// The tag of a feed message posted for [`feed_notice`] (its request id comes first, as code).
pub fn feed_tag(text: &str) -> Option<&str> {
    text.strip_prefix('`')?.split_once('`').map(|(tag, _)| tag)
}

/// Waits until a request has left `SUBMITTED` (its requester identified, routed).
pub async fn wait_routed(store: &Arc<dyn Store>, id: &str) {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        match store.request(id).await {
            Ok(Some(r)) if r.status != accessbot::workflow::model::Status::Submitted => return,
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    panic!("{id} was never routed");
}
