//! accessbot: app access requests and approvals, run from chat.
//!
//! A tour, from the inside out. The core ([`workflow`]) is the only place that
//! decides: who may request, approve, override; limits; routing; separation of
//! duties; who a chat user is; what each notice says, as typed data. It owns
//! the ports it needs ([`workflow::ports`]: persistence, the directory, the
//! clock) and names no adapter, HTTP or SQL (`tests/architecture.rs` holds it
//! to that). Around it, every edge only translates:
//!
//! - [`store`] implements the persistence port for SQLite and PostgreSQL,
//!   with group commit of concurrent writes and caches of who people are;
//! - [`slack`] verifies, parses, calls the core, renders its notices in Block
//!   Kit and mrkdwn (escaping every user-supplied string), and implements the
//!   directory port with `users.info`;
//! - [`api`] maps the core to Okta's Governance Requests and System Log shapes;
//! - [`outbox`] takes the core's intents as the commits that queue them hand
//!   them over (on PostgreSQL a new request's only) or claims them in batches, and delivers them
//!   concurrently (in order per key) with retries, through [`slack`] and
//!   [`webhook`].
//!
//! Then the plumbing that wires them: [`config`], [`state`], [`server`],
//! [`http`], [`metrics`], [`signing`], [`redact`]; and [`playground`], which
//! runs the whole server against a fake Slack for a browser page.

#![forbid(unsafe_code)]

/// The core: catalog, request state machine, policy, identity, content, and the ports it needs.
pub mod workflow;

/// The REST API (Okta Governance Requests v2 and System Log shapes), OpenAPI, probes, metrics.
pub mod api;
/// The Okta connector: app and group assignments on grant and revoke.
pub mod okta;
/// Durable delivery of notification intents, with retries and per-key order.
pub mod outbox;
/// The Slack edge: signatures, slash commands, buttons, Block Kit, Web API, the directory.
pub mod slack;
/// The persistence port for SQLite or PostgreSQL, picked from `DATABASE_URL`.
pub mod store;
/// Signed outbound webhooks (action steps, provisioning) and the outbox's deliverer router.
pub mod webhook;

/// The config file and environment, validated with errors that name file and key.
pub mod config;
/// The HTTP accept loop, with header and idle deadlines.
pub mod http;
/// Prometheus metrics.
pub mod metrics;
/// `accessbot playground`: the real server, a fake Slack, and a page to act as anyone.
pub mod playground;
/// URLs stripped of userinfo, query and fragment before they reach an error, log or message.
pub mod redact;
/// Wiring: store, workflow, outbox, router; start and graceful stop.
pub mod server;
/// `v0` HMAC-SHA256 signatures, as Slack signs requests and accessbot signs webhooks.
pub mod signing;
/// What every handler shares, and the config reload they can trigger.
pub mod state;
