//! `/governance/api/v2/requests`: list, create, get, messages, cancel.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::{ApiActor, ApiWriter};
use super::dto::*;
use super::error::{ApiError, ErrorBody, Kind};
use super::paging::{paged_links, BaseUrl, Params};
use crate::state::AppState;
use crate::store::filter::{OrderBy, RequestAttr, RequestCursor, RequestQuery};
use crate::workflow::engine::is_request_id;
use crate::workflow::model::Request;
use crate::workflow::principals::{is_okta_user_id, Principal};
use crate::workflow::{RequestInput, WorkflowError};

const PATH: &str = "/governance/api/v2/requests";

fn body<T>(r: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    r.map(|Json(v)| v).map_err(|e| {
        let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { Kind::TooLarge } else { Kind::Validation };
        ApiError::new(kind).cause(e.body_text(), "body", "body")
    })
}

/// A principal of the body as the core's: its type and the id's shape. Which
/// chat user it names is the core's answer ([`principal_user`]).
fn principal_of(p: &PrincipalInput, location: &str) -> Result<Principal, ApiError> {
    let id = p.external_id.trim();
    let bad = |field: &str, why: &str| ApiError::validation(&format!("{location}.{field}"), "body", why);
    match p.kind.as_str() {
        "OKTA_USER" if is_okta_user_id(id) => Ok(Principal::Okta(id.to_string())),
        "OKTA_USER" => Err(bad("externalId", "must be an Okta user id (00u…)")),
        "SLACK_USER" if is_slack_user_id(id) => Ok(Principal::Slack(id.to_string())),
        "SLACK_USER" => Err(bad("externalId", "must be a Slack user id (U… or W…)")),
        _ => Err(bad("type", "must be OKTA_USER or SLACK_USER")),
    }
}

pub(super) fn is_slack_user_id(id: &str) -> bool {
    id.len() >= 3
        && id.len() <= 32
        && (id.starts_with('U') || id.starts_with('W'))
        && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The chat user a body principal names; a person Okta or Slack does not
/// know is a 400 on the principal's `externalId`.
async fn principal_user(state: &AppState, p: &PrincipalInput, location: &str) -> Result<String, ApiError> {
    let principal = principal_of(p, location)?;
    match state.workflow.chat_user(&principal).await {
        Err(e @ (WorkflowError::NotFound(_) | WorkflowError::Invalid(_))) => {
            Err(ApiError::validation(&format!("{location}.externalId"), "body", e.to_string()))
        }
        other => Ok(other?),
    }
}

fn parse_order(v: Option<&str>) -> Result<(OrderBy, bool), ApiError> {
    let Some(v) = v else { return Ok((OrderBy::Created, false)) };
    let mut words = v.split_whitespace();
    let field = match words.next() {
        Some("created") => OrderBy::Created,
        Some("lastUpdated") => OrderBy::LastUpdated,
        _ => {
            return Err(ApiError::validation(
                "orderBy",
                "query",
                "orderBy is `created` or `lastUpdated`, optionally followed by ` asc` or ` desc`",
            ))
        }
    };
    let desc = match words.next() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::validation(
                "orderBy",
                "query",
                format!("unknown direction `{other}`: use asc or desc"),
            ))
        }
    };
    if words.next().is_some() {
        return Err(ApiError::validation("orderBy", "query", "orderBy has at most two words"));
    }
    Ok((field, desc))
}

#[utoipa::path(get, path = "/governance/api/v2/requests", tag = "requests",
    params(
        ("filter" = Option<String>, Query, description = "SCIM filter over status, grantStatus, requestedFor, requestedBy, resourceId, resourceType (eq, ne) and created, lastUpdated (gt, ge, lt, le); and, or, not, parentheses. requestedFor and requestedBy (also written requestedFor.externalId, requestedBy.externalId) take an Okta user id (00u…) or a Slack user id"),
        ("after" = Option<String>, Query, description = "The id of the last request of the previous page (as in the `next` link)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1..200, default 20"),
        ("orderBy" = Option<String>, Query, description = "`created` or `lastUpdated`, then ` asc` (default) or ` desc`"),
    ),
    responses(
        (status = 200, description = "A page of requests", body = RequestList),
        (status = 400, description = "Malformed filter (E0000001) or paging (E0000029)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Okta's Users API did not answer while resolving an Okta user id of the filter (E0000009)", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    BaseUrl(base): BaseUrl,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let limit = params.limit(20, 200)?;
    let (order_by, descending) = parse_order(params.get("orderBy"))?;
    let filter = match params.filter::<RequestAttr>()? {
        Some(f) => Some(state.workflow.chat_filter(f).await?),
        None => None,
    };
    let mut query = RequestQuery { filter, order_by, descending, after: None, limit: limit + 1 };
    if let Some(a) = params.get("after").map(str::trim).filter(|a| !a.is_empty()) {
        query.after = Some(after_cursor(&state, &query, a).await?);
    }
    let mut rows = state.workflow.store().list_requests(&query).await.map_err(ApiError::internal)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = rows.last().filter(|_| more).map(|last| last.id.clone());
    let (self_url, next_url) = params.page_urls(&base, PATH, next);
    let names = state.workflow.principals(&rows).await?;
    let list = RequestList {
        data: rows.iter().map(|r| RequestDto::from_request(r, &base, &names)).collect(),
        links: PageLinks { self_: Href { href: self_url.clone() }, next: next_url.clone().map(|href| Href { href }) },
    };
    Ok(paged_links(list, &self_url, next_url.as_deref()))
}

/// `after` is the last item's id (Okta's `rcar-request-id`): the keyset
/// position is that request's sort key in this order. An unknown id is a 400.
async fn after_cursor(state: &AppState, query: &RequestQuery, after: &str) -> Result<RequestCursor, ApiError> {
    let unknown =
        || ApiError::paging("after", format!("`{after}` is not the id of a request (use the last id of a page)"));
    if !is_request_id(after) {
        return Err(unknown());
    }
    let r = state.workflow.store().request(after).await.map_err(ApiError::internal)?.ok_or_else(unknown)?;
    Ok(query.cursor_of(&r))
}

#[utoipa::path(post, path = "/governance/api/v2/requests", tag = "requests", request_body = CreateRequest,
    responses(
        (status = 202, description = "Created; the workflow runs as from chat. `status` is SUBMITTED in this response (Okta's contract); a GET shows where routing took it", body = RequestDto),
        (status = 200, description = "An open request for this user and app already exists; it is returned", body = RequestDto),
        (status = 400, description = "Invalid body, or a principal nobody has: an OKTA_USER id Okta does not know (or whose email no Slack user has), or OKTA_USER without the Okta connector", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "A read-only token, or on-behalf requests are turned off (E0000006; logged as security.request.blocked)", body = ErrorBody),
        (status = 404, description = "No such catalog entry", body = ErrorBody),
        (status = 413, description = "The body is over 256 KiB (E0000001)", body = ErrorBody),
        (status = 429, description = "Rate limit (E0000047): the `requestedBy` user (else `requestedFor`) created too many \
            requests; by default 10 per minute per user, shared with chat and counted per replica (`ACCESSBOT_REQUEST_RATE`)",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until this user may create a request again"),
                ("X-Rate-Limit-Reset" = u64, description = "When this user may create a request again (epoch seconds)"))),
        (status = 503, description = "Okta's Users API (or Slack's directory) did not answer while resolving an OKTA_USER id (E0000009); try again", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiWriter(actor): ApiWriter,
    BaseUrl(base): BaseUrl,
    input: Result<Json<CreateRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let input = body(input)?;
    if input.requested.kind != "CATALOG_ENTRY" {
        return Err(ApiError::validation("requested.type", "body", "must be CATALOG_ENTRY"));
    }
    let for_id = principal_user(&state, &input.requested_for, "requestedFor").await?;
    let by_id = match &input.requested_by {
        Some(p) => principal_user(&state, p, "requestedBy").await?,
        None => for_id.clone(),
    };
    let new = RequestInput {
        app_id: input.requested.entry_id,
        requested_by: by_id.clone(),
        requested_for: for_id,
        justification: String::new(),
        fields: field_answers(input.requester_field_values)?,
    };
    let submitted = match state.workflow.request(&actor, new).await {
        Err(WorkflowError::RateLimited { retry_after, .. }) => return Ok(rate_limited(&by_id, retry_after)),
        other => other?,
    };
    let mut dto = dto_of(&state, &submitted.request, &base).await?;
    if submitted.existing {
        return Ok((StatusCode::OK, Json(dto)).into_response());
    }
    // Okta's 202 says SUBMITTED: the request is accepted; routing (PENDING, or
    // APPROVED when no approval is needed) shows on the next GET.
    dto.status = "SUBMITTED".into();
    Ok((StatusCode::ACCEPTED, Json(dto)).into_response())
}

/// Field answers by id: `value`, or `values` with exactly one item (no app field takes several).
fn field_answers(fields: Vec<FieldValueDto>) -> Result<Vec<(String, String)>, ApiError> {
    fields
        .into_iter()
        .map(|f| match (f.value.is_empty(), f.values.len()) {
            (_, 0) => Ok((f.id, f.value)),
            (true, 1) => Ok((f.id, f.values.into_iter().next().unwrap_or_default())),
            (false, _) => Err(ApiError::validation(
                &format!("requesterFieldValues.{}", f.id),
                "body",
                "give either value or values, not both",
            )),
            (true, n) => Err(ApiError::validation(
                &format!("requesterFieldValues.{}", f.id),
                "body",
                format!("{n} values given: accessbot fields take one value (no MULTISELECT fields)"),
            )),
        })
        .collect()
}

/// 429 `E0000047` with `Retry-After` (whole seconds, rounded up).
fn rate_limited(user: &str, wait: std::time::Duration) -> Response {
    let secs = crate::workflow::retry_secs(wait);
    let mut res = ApiError::new(Kind::RateLimit)
        .cause(format!("{user} is creating requests too fast; try again in {secs} s"), "requestedBy", "body")
        .into_response();
    let h = res.headers_mut();
    h.insert("retry-after", HeaderValue::from(secs));
    h.insert("x-rate-limit-remaining", HeaderValue::from(0));
    h.insert("x-rate-limit-reset", HeaderValue::from(super::limits::reset_at(wait)));
    res
}

#[utoipa::path(get, path = "/governance/api/v2/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "Request id, e.g. req42kjDgk1EubTwo0g4")),
    responses(
        (status = 200, description = "The request", body = RequestDto),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> Result<Json<RequestDto>, ApiError> {
    let r = load(&state, &id).await?;
    Ok(Json(dto_of(&state, &r, &base).await?))
}

/// One request as the API shows it (people by Okta id when known).
async fn dto_of(state: &AppState, r: &Request, base: &str) -> Result<RequestDto, ApiError> {
    let names = state.workflow.principals(std::slice::from_ref(r)).await?;
    Ok(RequestDto::from_request(r, base, &names))
}

async fn load(state: &AppState, id: &str) -> Result<Request, ApiError> {
    if !is_request_id(id) {
        return Err(ApiError::not_found(format!("request {id}")));
    }
    state
        .workflow
        .store()
        .request(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("request {id}")))
}

#[utoipa::path(post, path = "/governance/api/v2/requests/{id}/messages", tag = "requests", request_body = MessageInput,
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 201, description = "Posted; the requester sees it in chat", body = MessageDto),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "A read-only token (E0000006; logged as security.request.blocked)", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 413, description = "The body is over 256 KiB (E0000001)", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn post_message(
    State(state): State<AppState>,
    ApiWriter(actor): ApiWriter,
    Path(id): Path<String>,
    input: Result<Json<MessageInput>, JsonRejection>,
) -> Result<(StatusCode, Json<MessageDto>), ApiError> {
    let input = body(input)?;
    load(&state, &id).await?;
    let r = state.workflow.post_message(&actor, &id, &input.message).await?;
    let events = state.workflow.store().request_events(&id).await.map_err(ApiError::internal)?;
    let ev = events
        .iter()
        .rev()
        .find(|e| e.event_type == "app.access_request.message")
        .ok_or_else(|| ApiError::internal("message event missing"))?;
    let text = ev.debug_context.debug_data.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_string();
    Ok((
        StatusCode::CREATED,
        Json(MessageDto { id: ev.uuid.clone(), message: text, created: r.last_updated, created_by: actor.party.id }),
    ))
}

#[utoipa::path(patch, path = "/governance/api/v2/requests/{id}", tag = "requests", request_body = PatchRequest,
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "Canceled", body = RequestDto),
        (status = 400, description = "Only {\"status\":\"CANCELED\"} is supported", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "A read-only token (E0000006; logged as security.request.blocked)", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "The request is no longer pending", body = ErrorBody),
        (status = 413, description = "The body is over 256 KiB (E0000001)", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    ApiWriter(actor): ApiWriter,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
    input: Result<Json<PatchRequest>, JsonRejection>,
) -> Result<Json<RequestDto>, ApiError> {
    let input = body(input)?;
    load(&state, &id).await?;
    if input.status != "CANCELED" {
        return Err(ApiError::validation("status", "body", "only {\"status\":\"CANCELED\"} is supported"));
    }
    let r = state.workflow.cancel(&actor, &id, Some("canceled through the API".into()), true).await?;
    Ok(Json(dto_of(&state, &r, &base).await?))
}
