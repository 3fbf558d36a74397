//! `/api/v1/logs`: the system log in Okta's shape, and the catalog as loaded.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Json;

use super::auth::ApiActor;
use super::dto::*;
use super::error::{ApiError, ErrorBody};
use super::paging::{decode_cursor, encode_cursor, paged, BaseUrl, Params};
use crate::state::AppState;
use crate::store::filter::{LogAttr, LogQuery};
use crate::workflow::model::Timestamp;

fn time_param(params: &Params, name: &str) -> Result<Option<Timestamp>, ApiError> {
    let Some(v) = params.get(name).filter(|v| !v.is_empty()) else { return Ok(None) };
    chrono::DateTime::parse_from_rfc3339(v.trim()).map(|t| Some(t.with_timezone(&chrono::Utc))).map_err(|_| {
        ApiError::validation(name, "query", format!("`{v}` is not an ISO 8601 date-time like 2026-11-23T04:05:06Z"))
    })
}

#[utoipa::path(get, path = "/api/v1/logs", tag = "system log",
    params(
        ("filter" = Option<String>, Query, description = "eventType eq \"…\", target.id eq \"…\", actor.id eq \"…\"; and, or, not, parentheses"),
        ("since" = Option<String>, Query, description = "ISO 8601; events published at or after"),
        ("until" = Option<String>, Query, description = "ISO 8601; events published before"),
        ("after" = Option<String>, Query, description = "Opaque cursor from a `next` link"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1..1000, default 100"),
        ("sortOrder" = Option<String>, Query, description = "ASCENDING (default) or DESCENDING"),
    ),
    responses(
        (status = 200, description = "Events", body = Vec<LogEventDto>),
        (status = 400, description = "Malformed filter, date (E0000001) or paging (E0000029)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    BaseUrl(base): BaseUrl,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let limit = params.limit(100, 1000)?;
    let descending = match params.get("sortOrder") {
        None | Some("ASCENDING") => false,
        Some("DESCENDING") => true,
        Some(other) => {
            return Err(ApiError::validation("sortOrder", "query", format!("`{other}`: use ASCENDING or DESCENDING")))
        }
    };
    let filter = params.filter::<LogAttr>()?;
    let (since, until) = (time_param(&params, "since")?, time_param(&params, "until")?);
    let after = match params.get("after").filter(|a| !a.is_empty()) {
        Some(a) => Some(decode_cursor::<i64>(a)?),
        None => None,
    };
    let q = LogQuery { filter, since, until, after, limit: limit + 1, descending };
    let mut rows = state.workflow.store().list_events(&q).await.map_err(ApiError::internal)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = rows.last().filter(|_| more).map(|(seq, _)| encode_cursor(seq));
    let (self_url, next_url) = params.page_urls(&base, "/api/v1/logs", next);
    let body: Vec<LogEventDto> = rows.iter().map(|(_, e)| LogEventDto::from(e)).collect();
    Ok(paged(body, &self_url, next_url.as_deref()))
}

#[utoipa::path(get, path = "/governance/api/v2/catalog/entries", tag = "catalog",
    responses(
        (status = 200, description = "The catalog as loaded", body = CatalogList),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn catalog(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    BaseUrl(base): BaseUrl,
) -> Json<CatalogList> {
    let catalog = state.workflow.catalog();
    Json(CatalogList { data: catalog.apps.values().map(|a| CatalogEntry::from_app(a, &catalog, &base)).collect() })
}
