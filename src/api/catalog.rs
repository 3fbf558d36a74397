//! Okta's catalog paths, from the catalog as loaded: `/governance/api/v2/catalogs/default/…`.
//! Every app is a top-level entry (accessbot has no child entries).

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::Json;

use super::auth::ApiActor;
use super::dto::*;
use super::error::{ApiError, ErrorBody};
use super::paging::{paged_links, BaseUrl, Params};
use crate::state::AppState;
use crate::workflow::catalog::App;
use crate::workflow::principals::{is_okta_user_id, Principal};
use crate::workflow::WorkflowError;

const ENTRIES: &str = "/governance/api/v2/catalogs/default/entries";

/// Okta's `filter`: `not(parent pr)` (top-level entries: all of them) or
/// `parent eq "…"` (children: none). Absent means top-level.
fn top_level(params: &Params) -> Result<bool, ApiError> {
    let Some(f) = params.get("filter").map(str::trim).filter(|f| !f.is_empty()) else { return Ok(true) };
    let squashed: String = f.chars().filter(|c| !c.is_whitespace()).collect();
    if squashed == "not(parentpr)" {
        return Ok(true);
    }
    let mut words = f.split_whitespace();
    if words.next() == Some("parent") && words.next().is_some_and(|w| w.eq_ignore_ascii_case("eq")) {
        return Ok(false);
    }
    Err(ApiError::validation("filter", "query", "supported: not(parent pr), or parent eq \"<entryId>\""))
}

/// A page of `apps` after the entry `after`, names matching `match`.
fn page<'a>(apps: Vec<&'a App>, params: &Params) -> Result<(Vec<&'a App>, bool), ApiError> {
    let limit = params.limit(20, 200)?;
    let needle = params.get("match").map(|m| m.trim().to_lowercase()).filter(|m| !m.is_empty());
    let mut apps: Vec<&App> =
        apps.into_iter().filter(|a| needle.as_ref().is_none_or(|m| a.name.to_lowercase().contains(m))).collect();
    if let Some(after) = params.get("after").map(str::trim).filter(|a| !a.is_empty()) {
        let at = apps.iter().position(|a| a.id == after).ok_or_else(|| {
            ApiError::paging("after", format!("`{after}` is not a catalog entry id (use the last id of a page)"))
        })?;
        apps.drain(..=at);
    }
    let more = apps.len() as i64 > limit;
    apps.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((apps, more))
}

/// The entries list (`apps` already chosen for the caller) in Okta's page shape.
fn entries(state: &AppState, base: &str, path: &str, raw: Option<&str>, apps: Vec<&App>) -> Result<Response, ApiError> {
    let params = Params::parse(raw)?;
    let catalog = state.workflow.catalog();
    let apps = if top_level(&params)? { apps } else { Vec::new() };
    let (apps, more) = page(apps, &params)?;
    let next = apps.last().filter(|_| more).map(|a| a.id.clone());
    let (self_url, next_url) = params.page_urls(base, path, next);
    let list = CatalogPage {
        data: apps.iter().map(|a| CatalogEntry::from_app(a, &catalog, base)).collect(),
        links: PageLinks { self_: Href { href: self_url.clone() }, next: next_url.clone().map(|href| Href { href }) },
    };
    Ok(paged_links(list, &self_url, next_url.as_deref()))
}

#[utoipa::path(get, path = "/governance/api/v2/catalogs/default/entries", tag = "catalog",
    params(
        ("filter" = Option<String>, Query, description = "`not(parent pr)` (every app; the default) or `parent eq \"…\"` (none: no child entries)"),
        ("after" = Option<String>, Query, description = "The id of the last entry of the previous page"),
        ("match" = Option<String>, Query, description = "Entries whose name contains this (case-insensitive)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1..200, default 20"),
    ),
    responses(
        (status = 200, description = "A page of catalog entries, in id order", body = CatalogPage),
        (status = 400, description = "Unsupported filter (E0000001) or paging (E0000029)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    BaseUrl(base): BaseUrl,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let catalog = state.workflow.catalog();
    entries(&state, &base, ENTRIES, raw.as_deref(), catalog.apps.values().collect())
}

#[utoipa::path(get, path = "/governance/api/v2/catalogs/default/entries/{entryId}", tag = "catalog",
    params(("entryId" = String, Path, description = "The app id")),
    responses(
        (status = 200, description = "The entry", body = CatalogEntry),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such entry", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    BaseUrl(base): BaseUrl,
    Path(entry_id): Path<String>,
) -> Result<Json<CatalogEntry>, ApiError> {
    let catalog = state.workflow.catalog();
    let app = catalog.apps.get(&entry_id).ok_or_else(|| ApiError::not_found(format!("catalog entry {entry_id}")))?;
    Ok(Json(CatalogEntry::from_app(app, &catalog, &base)))
}

/// `userId`: an Okta user id (`00u…`) or a Slack user id (accessbot's extension).
fn user_id(id: &str) -> Result<Principal, ApiError> {
    if is_okta_user_id(id) {
        Ok(Principal::Okta(id.to_string()))
    } else if super::requests::is_slack_user_id(id) {
        Ok(Principal::Slack(id.to_string()))
    } else {
        Err(ApiError::validation("userId", "path", "must be an Okta user id (00u…) or a Slack user id (U… or W…)"))
    }
}

#[utoipa::path(get, path = "/governance/api/v2/catalogs/default/user/{userId}/entries", tag = "catalog",
    params(
        ("userId" = String, Path, description = "An Okta user id (00u…) or a Slack user id (U… or W…)"),
        ("filter" = Option<String>, Query, description = "`not(parent pr)` (the default) or `parent eq \"…\"` (none)"),
        ("after" = Option<String>, Query, description = "The id of the last entry of the previous page"),
        ("match" = Option<String>, Query, description = "Entries whose name contains this (case-insensitive)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1..200, default 20"),
    ),
    responses(
        (status = 200, description = "The entries this user may request (self-service, and open to them by `requesters`)", body = CatalogPage),
        (status = 400, description = "Not a user id, an Okta user id without the Okta connector, an unsupported filter (E0000001) or paging (E0000029)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such Okta user, or no Slack user with their email", body = ErrorBody),
        (status = 503, description = "Okta's Users API did not answer (E0000009)", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn user_entries(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    BaseUrl(base): BaseUrl,
    Path(user): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let chat_user = match state.workflow.chat_user(&user_id(&user)?).await {
        Err(WorkflowError::Invalid(why)) => return Err(ApiError::validation("userId", "path", why)),
        other => other?,
    };
    let catalog = state.workflow.catalog();
    let who = state.workflow.party(&chat_user).await?;
    let path = format!("/governance/api/v2/catalogs/default/user/{user}/entries");
    entries(&state, &base, &path, raw.as_deref(), catalog.requestable_by(&who).collect())
}

#[utoipa::path(get, path = "/governance/api/v2/catalogs/default/entries/{entryId}/users/{userId}/request-fields", tag = "catalog",
    params(
        ("entryId" = String, Path, description = "The app id"),
        ("userId" = String, Path, description = "An Okta user id (00u…) or a Slack user id (U… or W…)"),
    ),
    responses(
        (status = 200, description = "The app's request fields (the same for every user); a select's options are its `choices`", body = RequestFields),
        (status = 400, description = "Not a user id (Okta or Slack)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such entry", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn request_fields(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    Path((entry_id, user)): Path<(String, String)>,
) -> Result<Json<RequestFields>, ApiError> {
    user_id(&user)?;
    let catalog = state.workflow.catalog();
    let app = catalog.apps.get(&entry_id).ok_or_else(|| ApiError::not_found(format!("catalog entry {entry_id}")))?;
    Ok(Json(RequestFields::from_app(app)))
}
