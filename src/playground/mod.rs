//! `accessbot playground`: the real server on a loopback port, pointed at a
//! fake Slack Web API served here, and a page where you act as anyone in the
//! config. The page's commands, clicks and forms are sent to the server's
//! Slack endpoints signed with a per-run secret, so every step goes through
//! the same verification, parsing, authorization and core as Slack; the page
//! renders the Block Kit the server sends. Nothing here decides anything.

mod act;
pub mod people;
mod slack;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{Env, Secret};
use crate::outbox::OutboxConfig;
use crate::server::{self, Options, Running};
use crate::workflow::system_clock;
use people::Person;
use slack::Record;

const PAGE: &str = include_str!("page.html");

/// What every playground handler shares.
#[derive(Clone)]
pub struct Shared {
    people: Arc<Vec<Person>>,
    signing_secret: Secret,
    bot_token: Secret,
    api_token: Secret,
    /// Where the page and the fake Slack are (`http://127.0.0.1:PORT`).
    public_url: String,
    /// The accessbot server, once started.
    server_url: Arc<OnceLock<String>>,
    record: Arc<Mutex<Record>>,
    changed: watch::Sender<u64>,
    http: reqwest::Client,
}

impl Shared {
    /// Changes the record and tells every open page.
    fn change<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut r);
        r.version += 1;
        self.changed.send_replace(r.version);
        out
    }

    fn read<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        f(&self.record.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// POSTs `body` to the server, signed as Slack signs it.
    async fn forward(&self, path: &str, content_type: &str, body: String) -> Result<(StatusCode, Vec<u8>), String> {
        let base = self.server_url.get().ok_or("the server is not up yet")?;
        let ts = chrono::Utc::now().timestamp().to_string();
        let signature = crate::signing::sign(self.signing_secret.expose(), &ts, body.as_bytes());
        let res = self
            .http
            .post(format!("{base}{path}"))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the server did not answer: {}", crate::redact::http_error(e)))?;
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let bytes = res.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, bytes.to_vec()))
    }

    /// An interaction: the JSON payload in the form field `payload`.
    async fn forward_payload(&self, payload: &Value) -> Result<(StatusCode, Vec<u8>), String> {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).map_err(|e| e.to_string())?;
        self.forward("/slack/interactions", "application/x-www-form-urlencoded", body).await
    }
}

/// A random secret for this run only.
fn random_secret(prefix: &str) -> Secret {
    Secret::new(format!("{prefix}{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()))
}

/// A running playground.
pub struct Playground {
    pub addr: SocketAddr,
    pub url: String,
    running: Running,
    page: tokio::task::JoinHandle<()>,
    stop_page: CancellationToken,
    temp_db: Option<PathBuf>,
}

impl Playground {
    pub async fn stop(self) {
        self.stop_page.cancel();
        self.running.stop().await;
        // An open page's event stream never ends by itself.
        let mut page = self.page;
        if tokio::time::timeout(Duration::from_secs(1), &mut page).await.is_err() {
            page.abort();
        }
        if let Some(db) = self.temp_db {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
        }
    }
}

/// The database: `DATABASE_URL` when given, else a new SQLite file in the temp dir (deleted on stop).
fn database(given: Option<String>) -> (String, Option<PathBuf>) {
    match given.filter(|u| !u.trim().is_empty()) {
        Some(url) => (url, None),
        None => {
            let file = std::env::temp_dir().join(format!("accessbot-playground-{}.db", uuid::Uuid::new_v4().simple()));
            (format!("sqlite://{}", file.display()), Some(file))
        }
    }
}

/// The server's environment: the process's, with the playground's own secrets,
/// fake Slack, team and database in place of any Slack or API settings.
fn env(config: &Path, database_url: &str, shared: &Shared) -> anyhow::Result<Env> {
    let ours: Vec<(&str, String)> = vec![
        ("ACCESSBOT_CONFIG", config.display().to_string()),
        ("DATABASE_URL", database_url.to_string()),
        ("SLACK_SIGNING_SECRET", shared.signing_secret.expose().to_string()),
        ("SLACK_BOT_TOKEN", shared.bot_token.expose().to_string()),
        ("SLACK_API_BASE_URL", format!("{}/playground/slack/api", shared.public_url)),
        ("SLACK_TEAM_IDS", act::TEAM.to_string()),
        ("ACCESSBOT_API_TOKENS", shared.api_token.expose().to_string()),
    ];
    let replaced = ["_FILE", "ACCESSBOT_API_READ_TOKENS", "ACCESSBOT_PUBLIC_URL"];
    let get = |k: &str| -> Option<String> {
        if let Some((_, v)) = ours.iter().find(|(key, _)| *key == k) {
            return Some(v.clone());
        }
        if replaced.iter().any(|r| k.ends_with(r)) {
            return None;
        }
        std::env::var(k).ok()
    };
    Ok(Env::from_lookup(&get)?)
}

/// Starts the playground: the page and fake Slack on `listener`, the server on a loopback port.
pub async fn start(config: &Path, database_url: Option<String>, listener: TcpListener) -> anyhow::Result<Playground> {
    let catalog = crate::config::load_catalog(config)?;
    let addr = listener.local_addr()?;
    let shared = Shared {
        people: Arc::new(people::from_catalog(&catalog)),
        signing_secret: random_secret(""),
        bot_token: random_secret("xoxb-playground-"),
        api_token: random_secret("playground-"),
        public_url: format!("http://127.0.0.1:{}", addr.port()),
        server_url: Arc::new(OnceLock::new()),
        record: Arc::new(Mutex::new(Record::default())),
        changed: watch::channel(0).0,
        http: reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?,
    };
    // The page serves first: the server's outbox calls the fake Slack from its start on.
    let stop_page = CancellationToken::new();
    let app = router(shared.clone());
    let page = tokio::spawn(crate::http::serve(listener, app, crate::http::HEADER_TIMEOUT, stop_page.clone()));
    let (database_url, temp_db) = database(database_url);
    let env = env(config, &database_url, &shared)?;
    let inner = TcpListener::bind(("127.0.0.1", 0)).await?;
    let opts = Options {
        outbox: OutboxConfig { lease: env.outbox_lease, ..OutboxConfig::default() },
        shutdown_grace: env.shutdown_timeout,
        env,
        catalog,
        clock: system_clock(),
        header_timeout: crate::http::HEADER_TIMEOUT,
        socket_backoff: crate::slack::socket::Backoff::SLACK,
        jobs_interval: Some(crate::server::JOBS_INTERVAL),
    };
    let running = server::start(opts, inner).await?;
    let _ = shared.server_url.set(format!("http://{}", running.addr));
    let url = format!("http://localhost:{}/", addr.port());
    Ok(Playground { addr, url, running, page, stop_page, temp_db })
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/playground/state", get(state))
        .route("/playground/events", get(events))
        .route("/playground/logs", get(logs))
        .route("/playground/act", post(act::handle))
        .route("/playground/slack/api/{method}", post(slack::api))
        .route("/playground/slack/respond/{user}", post(slack::respond))
        .with_state(shared)
        .layer(axum::extract::DefaultBodyLimit::max(server::BODY_LIMIT))
}

#[derive(Deserialize)]
struct Who {
    person: Option<String>,
}

/// `GET /playground/state?person=U…`: the people, and what one of them sees.
async fn state(State(s): State<Shared>, Query(who): Query<Who>) -> Json<Value> {
    let person = who.person.filter(|p| s.people.iter().any(|x| x.id == *p));
    let seen = s.read(|r| {
        let Some(p) = &person else { return json!({}) };
        let dm = format!("D{p}");
        let messages: Vec<&slack::Message> = r.messages.iter().filter(|m| m.channel == dm).collect();
        json!({
            "messages": messages,
            "private": r.private.get(p).cloned().unwrap_or_default(),
            "home": r.homes.get(p),
            "modal": r.modals.get(p),
        })
    });
    let counts: Value = s.read(|r| {
        s.people
            .iter()
            .map(|p| {
                let dm = format!("D{}", p.id);
                let n = r.messages.iter().filter(|m| m.channel == dm && m.thread_ts.is_none()).count();
                (p.id.clone(), json!(n))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    });
    let version = s.read(|r| r.version);
    Json(json!({"version": version, "people": *s.people, "counts": counts, "person": person, "seen": seen}))
}

/// `GET /playground/events`: a `change` event whenever anything was recorded.
async fn events(State(s): State<Shared>) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let rx = s.changed.subscribe();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first {
            rx.changed().await.ok()?;
        }
        let v = *rx.borrow_and_update();
        Some((Ok(Event::default().event("change").data(v.to_string())), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `GET /playground/logs`: the server's system log (`/api/v1/logs`), newest first.
async fn logs(State(s): State<Shared>) -> Response {
    let Some(base) = s.server_url.get() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    let res = s
        .http
        .get(format!("{base}/api/v1/logs?limit=200&sortOrder=DESCENDING"))
        .bearer_auth(s.api_token.expose())
        .send()
        .await;
    match res {
        Ok(r) => match r.bytes().await {
            Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        },
        Err(e) => (StatusCode::BAD_GATEWAY, crate::redact::http_error(e)).into_response(),
    }
}

/// `accessbot playground`: runs until Ctrl-C.
pub async fn run(config: &Path, port: u16, database_url: Option<String>) -> anyhow::Result<()> {
    // Loopback only: the page lets anyone act as anyone.
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let playground = start(config, database_url, listener).await?;
    println!("accessbot playground: open {} (config {}; Ctrl-C stops it)", playground.url, config.display());
    let _ = tokio::signal::ctrl_c().await;
    playground.stop().await;
    Ok(())
}
