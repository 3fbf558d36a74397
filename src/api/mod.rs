//! The HTTP API besides Slack: the REST API (Okta Governance Requests v2 and
//! System Log shapes), its OpenAPI document, probes and metrics.

pub mod admin;
pub mod auth;
mod catalog;
pub mod dto;
pub mod error;
mod limits;
pub mod log_event;
mod logs;
pub mod openapi;
mod paging;
mod requests;
pub mod scim;
mod settings;

pub use paging::LinkSettings;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// Every GET path this module serves (the Kubernetes probes point at two of them).
pub const ROUTES: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/admin/reload", post(admin::reload))
        .merge(rest_api())
}

/// Read-only views of the config file; writes are 405.
fn config_views() -> Router<AppState> {
    Router::new()
        .route("/governance/api/v2/request-settings", get(settings::settings).merge(w(settings::settings_write)))
        .route(
            "/governance/api/v2/resources/{resourceId}/request-conditions",
            get(settings::conditions).merge(w(settings::conditions_write)),
        )
        .route(
            "/governance/api/v2/resources/{resourceId}/request-sequences",
            get(settings::sequences).merge(w(settings::sequences_write)),
        )
}

fn w<H: axum::handler::Handler<T, AppState>, T: 'static>(h: H) -> axum::routing::MethodRouter<AppState> {
    post(h.clone()).put(h.clone()).patch(h.clone()).delete(h)
}

/// The REST API: Okta's paths, with `X-Rate-Limit-*` on every response.
fn rest_api() -> Router<AppState> {
    Router::new()
        .route("/governance/api/v2/requests", get(requests::list).post(requests::create))
        .route("/governance/api/v2/requests/{id}", get(requests::get_one).patch(requests::patch))
        .route("/governance/api/v2/requests/{id}/messages", post(requests::post_message))
        .route("/governance/api/v2/catalog/entries", get(logs::catalog))
        .route("/governance/api/v2/catalogs/default/entries", get(catalog::list))
        .route("/governance/api/v2/catalogs/default/entries/{entryId}", get(catalog::get_one))
        .route("/governance/api/v2/catalogs/default/user/{userId}/entries", get(catalog::user_entries))
        .route(
            "/governance/api/v2/catalogs/default/entries/{entryId}/users/{userId}/request-fields",
            get(catalog::request_fields),
        )
        .merge(config_views())
        .route("/api/v1/logs", get(logs::list))
        .route_layer(axum::middleware::from_fn_with_state(limits::limiter(), limits::rate_headers))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.workflow.store().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok", "database": "ok"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "unreachable"})))
        }
    }
}

/// Prometheus text format; database-backed gauges are refreshed first.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    match state.workflow.store().outbox_counts().await {
        Ok(c) => {
            m.outbox_depth.with_label_values(&["pending"]).set(c.pending);
            m.outbox_depth.with_label_values(&["done"]).set(c.done);
            m.outbox_depth.with_label_values(&["failed"]).set(c.failed);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: outbox counts unavailable"),
    }
    match state.workflow.store().request_counts().await {
        Ok(counts) => {
            for (status, n) in counts {
                m.requests_by_status.with_label_values(&[status.as_str()]).set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: request counts unavailable"),
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render())
}
