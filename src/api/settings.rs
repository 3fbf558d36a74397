//! Read-only views of what the config file defines, in Okta's shapes:
//! org request settings, and per app (resource) its request condition and
//! approval sequence. Writes are refused: the config file is the source.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::auth::ApiActor;
use super::dto::{Href, SelfLinks};
use super::error::{ApiError, ErrorBody, Kind};
use super::paging::BaseUrl;
use crate::state::AppState;
use crate::workflow::catalog::{App, Catalog, EscalateTo, StepDef, StepSpec};
use crate::workflow::engine::iso_duration;

/// Who "created" config-defined objects.
const CONFIG: &str = "accessbot.toml";

/// Okta's org request settings, plus accessbot's own (on-behalf requests, TTL, reminders).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestSettings {
    pub subprocessors_acknowledged: bool,
    /// Always PROVISIONED
    pub provisioning_status: String,
    /// Always ["CATALOG"]
    pub request_experiences: Vec<String>,
    pub long_time_past_provisioned: bool,
    /// `allow_request_on_behalf`
    pub request_on_behalf_of: bool,
    /// `request_ttl`, ISO 8601
    pub request_ttl: String,
    /// `reminder_after`, ISO 8601
    pub reminder_after: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TypeOnly {
    #[serde(rename = "type")]
    pub kind: String,
}

/// `{type: ADMIN_FIXED_DURATION, duration}` from the app's `max_duration`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DurationSettings {
    #[serde(rename = "type")]
    pub kind: String,
    pub duration: String,
}

/// An app's one request condition: everyone may request it when it is self-service.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestCondition {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub last_updated: DateTime<Utc>,
    pub last_updated_by: String,
    /// EVERYONE
    pub requester_settings: TypeOnly,
    /// RESOURCE_DEFAULT
    pub access_scope_settings: TypeOnly,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_duration_settings: Option<DurationSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_sequence_id: Option<String>,
    /// ACTIVE when self-service, else INACTIVE
    pub status: String,
    pub priority: u32,
    #[serde(rename = "_links")]
    pub links: SelfLinks,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestConditionList {
    pub data: Vec<RequestCondition>,
    #[serde(rename = "_links")]
    pub links: SelfLinks,
}

/// An app's approval sequence (its steps, in order).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestSequence {
    pub id: String,
    pub name: String,
    /// The steps, e.g. "USER U0ALICE, then GROUP security"
    pub description: String,
    /// APP
    pub compatible_resource_types: Vec<String>,
    /// Where it is defined: the config file
    pub link: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestSequenceList {
    pub data: Vec<RequestSequence>,
    #[serde(rename = "_links")]
    pub links: SelfLinks,
}

/// A stable id: `prefix` + hex of SHA-256(`app_id`), `len` characters in all.
fn derived_id(prefix: &str, app_id: &str, len: usize) -> String {
    let hex = hex::encode(Sha256::digest(format!("{prefix}:{app_id}").as_bytes()));
    format!("{prefix}{}", &hex[..len - prefix.len()])
}

fn sequence_id(app: &App) -> String {
    derived_id("seq", &app.id, 24)
}

fn step_summary(catalog: &Catalog, s: &StepSpec) -> String {
    let group = |g: &String| catalog.groups.get(g).map(|g| g.name.clone()).unwrap_or_else(|| g.clone());
    let what = match &s.def {
        StepDef::User(p) => format!("USER {p}"),
        StepDef::Group { group: g, approvals: 1 } => format!("GROUP {}", group(g)),
        StepDef::Group { group: g, approvals } => format!("GROUP {} ({approvals} approvals)", group(g)),
        StepDef::Action { .. } => "ACTION webhook".into(),
        StepDef::Task(crate::workflow::catalog::TaskAssignee::User(p)) => format!("TASK {p}"),
        StepDef::Task(crate::workflow::catalog::TaskAssignee::Group(g)) => format!("TASK {}", group(g)),
    };
    match &s.escalation {
        Some(e) => {
            let to = match &e.to {
                EscalateTo::Group(g) => group(g),
                EscalateTo::Person(p) => p.to_string(),
            };
            format!("{what} (escalates to {to} after {})", humantime::format_duration(e.after))
        }
        None => what,
    }
}

fn app_of<'a>(catalog: &'a Catalog, resource_id: &str) -> Result<&'a App, ApiError> {
    catalog.apps.get(resource_id).ok_or_else(|| ApiError::not_found(format!("resource {resource_id}")))
}

#[utoipa::path(get, path = "/governance/api/v2/request-settings", tag = "request settings",
    responses(
        (status = 200, description = "The org's request settings, from the config file", body = RequestSettings),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn settings(State(state): State<AppState>, ApiActor(_actor): ApiActor) -> Json<RequestSettings> {
    let s = state.workflow.catalog().settings.clone();
    let iso = |d: std::time::Duration| iso_duration(chrono::Duration::from_std(d).unwrap_or_default());
    Json(RequestSettings {
        subprocessors_acknowledged: true,
        provisioning_status: "PROVISIONED".into(),
        request_experiences: vec!["CATALOG".into()],
        long_time_past_provisioned: false,
        request_on_behalf_of: s.allow_request_on_behalf,
        request_ttl: iso(s.request_ttl),
        reminder_after: iso(s.reminder_after),
    })
}

#[utoipa::path(get, path = "/governance/api/v2/resources/{resourceId}/request-conditions", tag = "request settings",
    params(("resourceId" = String, Path, description = "The app id")),
    responses(
        (status = 200, description = "The app's one condition, from the config file", body = RequestConditionList),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn conditions(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    BaseUrl(base): BaseUrl,
    Path(resource_id): Path<String>,
) -> Result<Json<RequestConditionList>, ApiError> {
    let catalog = state.workflow.catalog();
    let app = app_of(&catalog, &resource_id)?;
    let path = format!("{base}/governance/api/v2/resources/{}/request-conditions", app.id);
    let loaded = state.workflow.catalog_loaded_at();
    let id = derived_id("rco", &app.id, 20);
    let condition = RequestCondition {
        links: SelfLinks { self_: Href { href: format!("{path}/{id}") } },
        id,
        name: format!("{} (accessbot.toml)", app.name),
        created: loaded,
        created_by: CONFIG.into(),
        last_updated: loaded,
        last_updated_by: CONFIG.into(),
        requester_settings: TypeOnly { kind: "EVERYONE".into() },
        access_scope_settings: TypeOnly { kind: "RESOURCE_DEFAULT".into() },
        access_duration_settings: app.max_duration.map(|d| DurationSettings {
            kind: "ADMIN_FIXED_DURATION".into(),
            duration: iso_duration(chrono::Duration::from_std(d).unwrap_or_default()),
        }),
        approval_sequence_id: (app.approval && !app.steps.is_empty()).then(|| sequence_id(app)),
        status: if app.self_service { "ACTIVE" } else { "INACTIVE" }.into(),
        priority: 0,
    };
    Ok(Json(RequestConditionList { data: vec![condition], links: SelfLinks { self_: Href { href: path } } }))
}

#[utoipa::path(get, path = "/governance/api/v2/resources/{resourceId}/request-sequences", tag = "request settings",
    params(("resourceId" = String, Path, description = "The app id")),
    responses(
        (status = 200, description = "The app's approval sequence (none when it needs no approval)", body = RequestSequenceList),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn sequences(
    State(state): State<AppState>,
    ApiActor(_actor): ApiActor,
    BaseUrl(base): BaseUrl,
    Path(resource_id): Path<String>,
) -> Result<Json<RequestSequenceList>, ApiError> {
    let catalog = state.workflow.catalog();
    let app = app_of(&catalog, &resource_id)?;
    let path = format!("{base}/governance/api/v2/resources/{}/request-sequences", app.id);
    let data = (app.approval && !app.steps.is_empty())
        .then(|| RequestSequence {
            id: sequence_id(app),
            name: format!("{} approval", app.name),
            description: app.steps.iter().map(|s| step_summary(&catalog, s)).collect::<Vec<_>>().join(", then "),
            compatible_resource_types: vec!["APP".into()],
            link: format!("{CONFIG}#apps.{}", app.id),
        })
        .into_iter()
        .collect();
    Ok(Json(RequestSequenceList { data, links: SelfLinks { self_: Href { href: path } } }))
}

/// 405 `E0000022` with `Allow: GET`: these objects live in the config file.
fn read_only(method: &Method) -> Response {
    let mut res = ApiError::new(Kind::MethodNotAllowed)
        .summary(format!(
            "{method} is not supported: this is defined by the config file {CONFIG}; edit it and reload \
             (POST /admin/reload or SIGHUP)"
        ))
        .cause(format!("read-only: defined by the config file {CONFIG}"), "method", "method")
        .into_response();
    res.headers_mut().insert("allow", HeaderValue::from_static("GET"));
    res
}

#[utoipa::path(method(post, put, patch, delete), path = "/governance/api/v2/request-settings", tag = "request settings",
    responses(
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 405, description = "Read-only (E0000022): defined by the config file accessbot.toml; edit it and reload", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn settings_write(ApiActor(_actor): ApiActor, method: Method) -> Response {
    read_only(&method)
}

#[utoipa::path(method(post, put, patch, delete), path = "/governance/api/v2/resources/{resourceId}/request-conditions", tag = "request settings",
    params(("resourceId" = String, Path, description = "The app id")),
    responses(
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 405, description = "Read-only (E0000022): defined by the config file accessbot.toml; edit it and reload", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn conditions_write(ApiActor(_actor): ApiActor, method: Method) -> Response {
    read_only(&method)
}

#[utoipa::path(method(post, put, patch, delete), path = "/governance/api/v2/resources/{resourceId}/request-sequences", tag = "request settings",
    params(("resourceId" = String, Path, description = "The app id")),
    responses(
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 405, description = "Read-only (E0000022): defined by the config file accessbot.toml; edit it and reload", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn sequences_write(ApiActor(_actor): ApiActor, method: Method) -> Response {
    read_only(&method)
}
