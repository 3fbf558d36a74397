//! accessbot: app access requests and approvals, run from chat.
//!
//! A tour, from the inside out:

#![forbid(unsafe_code)]

/// The REST API (Okta Governance Requests v2 and System Log shapes), OpenAPI, probes, metrics.
pub mod api;
/// The config file and environment, validated with errors that name file and key.
pub mod config;
/// The HTTP accept loop, with header and idle deadlines.
pub mod http;
/// Prometheus metrics.
pub mod metrics;
/// Durable delivery of notification intents, with retries and per-key order.
pub mod outbox;
/// URLs stripped of userinfo, query and fragment before they reach an error, log or message.
pub mod redact;
/// App state, router, start and graceful stop.
pub mod server;
/// The Slack edge: signatures, slash commands, buttons, Block Kit, Web API.
pub mod slack;
/// Persistence behind one trait: SQLite or PostgreSQL, picked from `DATABASE_URL`.
pub mod store;
/// Signed outbound webhooks (action steps, provisioning) and the outbox's deliverer router.
pub mod webhook;
/// The core: catalog, request state machine, authorization, commands → changesets.
pub mod workflow;
