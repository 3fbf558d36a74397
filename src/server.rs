//! Wires the pieces together: store, workflow, outbox workers, router; runs
//! until the shutdown token is cancelled, then drains in-flight requests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{HeaderName, Request};
use axum::middleware::{self, Next};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Env;
use crate::metrics::Metrics;
use crate::okta::{OktaDeliverer, OktaUsers};
use crate::outbox::{Outbox, OutboxConfig};
use crate::slack::client::SlackClient;
use crate::slack::deliver::SlackDeliverer;
use crate::slack::socket::{self, Backoff};
use crate::slack::{SlackDirectory, SlackSettings};
use crate::state::{reload_config, AppState, ReloadError};
use crate::webhook::{DeliveryRouter, WebhookDeliverer};
use crate::workflow::model::Changeset;
use crate::workflow::reload::{self, ReloadReport};
use crate::workflow::{Actor, Catalog, Clock, CommitHook, Workflow};

/// Slack payloads are small; this bounds what an unauthenticated caller can make us buffer.
pub const BODY_LIMIT: usize = 256 * 1024;

pub struct Options {
    pub env: Env,
    pub catalog: Catalog,
    pub outbox: OutboxConfig,
    pub clock: Arc<dyn Clock>,
    /// How long in-flight work may take after shutdown starts.
    pub shutdown_grace: Duration,
    /// How long a connection may take to send headers, or stay idle ([`crate::http::HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
    /// Waits between Socket Mode reconnects ([`Backoff::SLACK`]); used when `SLACK_APP_TOKEN` is set.
    pub socket_backoff: Backoff,
    /// How often due work is looked for ([`JOBS_INTERVAL`]); `None`: never
    /// in the background (a test with a hand-moved clock runs the jobs itself).
    pub jobs_interval: Option<Duration>,
}

pub struct Running {
    pub addr: SocketAddr,
    pub workflow: Arc<Workflow>,
    pub metrics: Arc<Metrics>,
    config_path: Arc<PathBuf>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
}

impl Running {
    /// Stops accepting, finishes in-flight requests and deliveries, gives back claims.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let all = async {
            let _ = self.server.await;
            for w in self.workers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(self.grace, all).await.is_err() {
            tracing::warn!("shutdown: grace period over, stopping anyway");
        }
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// A handle that reloads the config file (for SIGHUP), usable while the server runs.
    pub fn reloader(&self) -> Reloader {
        Reloader { workflow: self.workflow.clone(), config_path: self.config_path.clone() }
    }
}

/// Reloads the config file the server was started with.
#[derive(Clone)]
pub struct Reloader {
    workflow: Arc<Workflow>,
    config_path: Arc<PathBuf>,
}

impl Reloader {
    /// Re-reads the file; see [`reload_config`].
    pub async fn reload(&self, actor: &Actor, trigger: &str) -> Result<ReloadReport, ReloadError> {
        reload_config(&self.workflow, &self.config_path, actor, trigger).await
    }
}

/// Counts every request by its route pattern (not the raw path: ids would explode the label set).
async fn track(State(state): State<AppState>, req: axum::extract::Request, next: Next) -> axum::response::Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    state.metrics.http(&route, &method, res.status().as_u16(), started.elapsed());
    res
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(crate::slack::router())
        .merge(crate::api::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(15)))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// `http://` + the listen address; a wildcard address (0.0.0.0, ::) becomes `localhost`.
fn default_public_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// How often due work (reminders, escalation, expiry, time-bound access) is
/// looked for: an index read of what is due, so it can be often.
pub const JOBS_INTERVAL: Duration = Duration::from_secs(5);

fn spawn_jobs(workflow: Arc<Workflow>, every: Duration, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            match workflow.run_jobs().await {
                Ok(r) if r != Default::default() => tracing::info!(?r, "jobs ran"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "jobs failed; retrying next interval"),
            }
        }
    })
}

/// How often each replica loads the Slack user group members other replicas
/// saved and reads the ones that are due (`settings.usergroup_refresh`).
pub const USERGROUP_TICK: Duration = Duration::from_secs(5);
/// How long a start waits for the first read of the Slack user groups.
const USERGROUP_START_WAIT: Duration = Duration::from_secs(5);

async fn refresh_usergroups(workflow: &Workflow, metrics: &Metrics) {
    match workflow.refresh_usergroups().await {
        Ok(r) => {
            metrics.usergroups(r.read.len() - r.changed.len(), r.changed.len(), r.failed.len());
            if !r.changed.is_empty() || !r.flagged.is_empty() {
                tracing::info!(changed = ?r.changed, flagged = r.flagged.len(), "Slack user groups refreshed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "Slack user groups: refresh failed; retrying next tick"),
    }
}

/// Reads Slack user groups when due, and at once when a Slack event says one changed.
fn spawn_usergroups(
    workflow: Arc<Workflow>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(USERGROUP_TICK) => {}
                _ = workflow.usergroup_asked() => {}
            }
            refresh_usergroups(&workflow, &metrics).await;
        }
    })
}

/// Starts the server on `listener` (port 0 in tests) with its outbox workers.
pub async fn start(opts: Options, listener: TcpListener) -> anyhow::Result<Running> {
    let limits = crate::config::limits_from_env().map_err(anyhow::Error::msg)?;
    let store = crate::store::open(&opts.env.database_url).await?;
    let wake = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::default());
    let counted = metrics.clone();
    let hook: CommitHook = Arc::new(move |cs: &Changeset| {
        for e in &cs.events {
            match e.event_type.as_str() {
                "app.access_request.approver.approve" => counted.decision("approve"),
                "app.access_request.approver.deny" => counted.decision("deny"),
                "app.access_request.request" => counted.request_created(),
                _ => {}
            }
        }
    });
    let refused = metrics.clone();
    let client = SlackClient::new(&opts.env.slack_api_base_url, opts.env.bot_token.clone());
    let workflow = Arc::new(
        Workflow::new(store.clone(), opts.catalog, opts.clock.clone(), wake.clone())
            .with_commit_hook(hook)
            .with_refusal_hook(Arc::new(move |action: &str| refused.refused(action)))
            .with_directory(Arc::new(SlackDirectory::new(client.clone())))
            .with_okta(Arc::new(OktaUsers::new(opts.env.okta_token.clone())))
            .with_limits(limits),
    );
    // Resolve configured emails to Slack ids ahead of the first click (and people to Okta ids).
    workflow.resolve_catalog_people().await?;

    // Slack user groups' members as saved, then as Slack says now (briefly; else in the background).
    if let Err(e) = workflow.sync_usergroups().await {
        tracing::warn!(error = %e, "could not load the saved Slack user group members");
    }
    if tokio::time::timeout(USERGROUP_START_WAIT, refresh_usergroups(&workflow, &metrics)).await.is_err() {
        tracing::warn!("Slack user groups: not read in time at start; reading them in the background");
    }

    // Requests left pending while the server was down may be stranded by an edited config.
    match reload::check_on_start(&workflow).await {
        Ok(flagged) if !flagged.is_empty() => {
            tracing::warn!(count = flagged.len(), "pending requests stranded by the config were flagged")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not check pending requests against the config"),
    }

    let slack = Arc::new(SlackDeliverer::new(client, workflow.clone()));
    let webhooks = Arc::new(WebhookDeliverer::new(Arc::new(crate::config::secret_from_env)));
    webhooks.set_workflow(workflow.clone());
    let okta = Arc::new(OktaDeliverer::new(opts.env.okta_token.clone()));
    okta.set_workflow(workflow.clone());
    let deliverer = Arc::new(DeliveryRouter { chat: slack, webhooks, okta });
    let outbox = Outbox::new(store.clone(), deliverer, opts.clock.clone(), wake, opts.outbox, metrics.clone());
    let shutdown = CancellationToken::new();
    let config_path = Arc::new(opts.env.config_path.clone());
    let mut workers = outbox.spawn(shutdown.clone());
    if let Some(every) = opts.jobs_interval {
        workers.push(spawn_jobs(workflow.clone(), every, shutdown.clone()));
    }
    workers.push(spawn_usergroups(workflow.clone(), metrics.clone(), shutdown.clone()));

    let addr = listener.local_addr()?;
    let links = crate::api::LinkSettings {
        public_url: opts.env.public_url.clone().unwrap_or_else(|| default_public_url(addr)),
        trusted_proxies: opts.env.trusted_proxies.clone(),
    };
    let state = AppState {
        workflow: workflow.clone(),
        api_tokens: Arc::new(opts.env.api_tokens.clone()),
        api_read_tokens: Arc::new(opts.env.api_read_tokens.clone()),
        links: Arc::new(links),
        slack: Arc::new(SlackSettings {
            signing_secret: opts.env.signing_secret.clone(),
            team_ids: opts.env.team_ids.clone(),
            api_base: opts.env.slack_api_base_url.clone(),
        }),
        metrics: metrics.clone(),
        config_path: config_path.clone(),
    };
    if let Some(token) = &opts.env.slack_app_token {
        let client = SlackClient::new(&opts.env.slack_api_base_url, token.clone());
        workers.push(socket::spawn(state.clone(), client, opts.socket_backoff, shutdown.clone()));
    }
    let app = router(state);
    let stop = shutdown.clone();
    let server = tokio::spawn(crate::http::serve(listener, app, opts.header_timeout, stop));
    tracing::info!(%addr, "accessbot listening");
    Ok(Running { addr, workflow, metrics, config_path, shutdown, server, workers, grace: opts.shutdown_grace })
}
