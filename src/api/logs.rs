//! `/api/v1/logs`: the system log in Okta's shape, and the catalog as loaded.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Json;

use super::auth::ApiActor;
use super::dto::*;
use super::error::{ApiError, ErrorBody};
use super::log_event::LogEventDto;
use super::paging::{decode_cursor, encode_cursor, paged, BaseUrl, Params};
use crate::state::AppState;
use crate::store::filter::{keyword_filter, Filter, LogAttr, LogQuery};
use crate::workflow::model::Timestamp;

fn time_param(params: &Params, name: &str) -> Result<Option<Timestamp>, ApiError> {
    let Some(v) = params.get(name).filter(|v| !v.is_empty()) else { return Ok(None) };
    chrono::DateTime::parse_from_rfc3339(v.trim()).map(|t| Some(t.with_timezone(&chrono::Utc))).map_err(|_| {
        ApiError::validation(name, "query", format!("`{v}` is not an ISO 8601 date-time like 2026-11-23T04:05:06Z"))
    })
}

/// Okta's limits on `q`: keywords per query, characters per keyword.
const MAX_KEYWORDS: usize = 10;
const MAX_KEYWORD_LEN: usize = 40;

/// `q`: space-separated keywords, each of which must occur (case-insensitive).
fn keywords(params: &Params) -> Result<Vec<String>, ApiError> {
    let Some(q) = params.get("q") else { return Ok(Vec::new()) };
    let words: Vec<String> = q.split_whitespace().map(str::to_string).collect();
    if words.len() > MAX_KEYWORDS {
        let msg = format!("q has {} keywords; at most {MAX_KEYWORDS} are allowed", words.len());
        return Err(ApiError::validation("q", "query", msg));
    }
    if let Some(w) = words.iter().find(|w| w.chars().count() > MAX_KEYWORD_LEN) {
        let shown: String = w.chars().take(MAX_KEYWORD_LEN).collect();
        let msg = format!("keyword `{shown}…` is longer than {MAX_KEYWORD_LEN} characters");
        return Err(ApiError::validation("q", "query", msg));
    }
    Ok(words)
}

/// `filter` and `q` together: an event must satisfy both.
fn combined(filter: Option<Filter<LogAttr>>, words: &[String]) -> Option<Filter<LogAttr>> {
    match (filter, keyword_filter(words)) {
        (Some(f), Some(k)) => Some(Filter::And(Box::new(f), Box::new(k))),
        (f, k) => f.or(k),
    }
}

fn sort_order(params: &Params) -> Result<bool, ApiError> {
    match params.get("sortOrder") {
        None | Some("ASCENDING") => Ok(false),
        Some("DESCENDING") => Ok(true),
        Some(other) => {
            Err(ApiError::validation("sortOrder", "query", format!("`{other}`: use ASCENDING or DESCENDING")))
        }
    }
}

#[utoipa::path(get, path = "/api/v1/logs", tag = "system log",
    params(
        ("filter" = Option<String>, Query, description = "SCIM filter: uuid, eventType, severity, displayMessage, outcome.result, outcome.reason, actor.id, actor.type, actor.alternateId, actor.displayName, target.id, target.type, target.alternateId, target.displayName with eq, ne, sw, co; published with gt, ge, lt, le; and, or, not, parentheses"),
        ("q" = Option<String>, Query, description = "Up to 10 space-separated keywords (each at most 40 characters), all of which must occur, case-insensitively, in the display message, event type, outcome reason or an actor's or target's id, alternate id or display name"),
        ("since" = Option<String>, Query, description = "ISO 8601; events published at or after"),
        ("until" = Option<String>, Query, description = "ISO 8601; events published before"),
        ("after" = Option<String>, Query, description = "Opaque cursor from a `next` link"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1..1000, default 100"),
        ("sortOrder" = Option<String>, Query, description = "ASCENDING (default) or DESCENDING"),
    ),
    responses(
        (status = 200, description = "Events", body = Vec<LogEventDto>),
        (status = 400, description = "Malformed filter, q, date or sortOrder (E0000001) or paging (E0000029)", body = ErrorBody),
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
    let descending = sort_order(&params)?;
    let filter = combined(params.filter::<LogAttr>()?, &keywords(&params)?);
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
