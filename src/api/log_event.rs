//! Okta's `LogEvent` as `/api/v1/logs` serves it (typed as in Okta's
//! management.yaml): fields accessbot does not know are absent, never null.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::workflow::model::LogEvent;

/// Okta's limit on `outcome.reason`.
const REASON_MAX: usize = 255;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogActorDto {
    pub id: String,
    /// USER, GROUP, SYSTEM or API_TOKEN
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub alternate_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub display_name: Option<String>,
    #[schema(value_type = Object)]
    pub detail_entry: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogTargetDto {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub alternate_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub display_name: Option<String>,
    #[schema(value_type = Object)]
    pub detail_entry: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogOutcomeDto {
    /// SUCCESS, FAILURE or DENY
    pub result: String,
    /// 1..255 characters; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_length = 1, max_length = 255)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DebugContextDto {
    #[schema(value_type = Object)]
    pub debug_data: Map<String, Value>,
}

/// The request (workflow run) an event belongs to, as Okta's `transaction`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogTransactionDto {
    /// The access request's id, when the event is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Map<String, Value>,
}

/// Okta's `authenticationContext`; accessbot knows only the step (always 0).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogAuthenticationContextDto {
    pub authentication_step: i32,
}

/// Okta's `request`: accessbot records no IP chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogRequestDto {
    #[schema(value_type = Vec<Object>)]
    pub ip_chain: Vec<Value>,
}

/// Okta's `client`, `securityContext`: accessbot records none of their fields.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct EmptyObject {}

/// A system-log event, in Okta's LogEvent shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEventDto {
    pub uuid: String,
    pub published: DateTime<Utc>,
    pub event_type: String,
    pub version: String,
    /// DEBUG, INFO, WARN or ERROR
    pub severity: String,
    pub display_message: String,
    pub actor: LogActorDto,
    pub target: Vec<LogTargetDto>,
    pub outcome: LogOutcomeDto,
    pub client: EmptyObject,
    pub authentication_context: LogAuthenticationContextDto,
    pub security_context: EmptyObject,
    pub request: LogRequestDto,
    pub transaction: LogTransactionDto,
    pub debug_context: DebugContextDto,
}

fn upper<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Events recorded before redaction (and action steps' `url`) may hold a webhook
/// URL with credentials; the API shows only its redacted form.
fn redacted(data: &Map<String, Value>) -> Map<String, Value> {
    let mut out = data.clone();
    if let Some(Value::String(url)) = out.get_mut("url") {
        *url = crate::redact::redact_url(url);
    }
    out
}

/// Okta's 1..255 characters: absent when empty, cut at 255.
fn reason(r: Option<&String>) -> Option<String> {
    r.filter(|r| !r.is_empty()).map(|r| r.chars().take(REASON_MAX).collect())
}

impl From<&LogEvent> for LogEventDto {
    fn from(e: &LogEvent) -> LogEventDto {
        LogEventDto {
            uuid: e.uuid.clone(),
            published: e.published,
            event_type: e.event_type.clone(),
            version: "0".into(),
            severity: e.severity.clone(),
            display_message: e.display_message.clone(),
            actor: LogActorDto {
                id: e.actor.id.clone(),
                kind: upper(&e.actor.kind),
                alternate_id: e.actor.alternate_id.clone(),
                display_name: e.actor.display_name.clone(),
                detail_entry: Map::new(),
            },
            target: e.target.iter().map(target).collect(),
            outcome: LogOutcomeDto { result: upper(&e.outcome.result), reason: reason(e.outcome.reason.as_ref()) },
            client: EmptyObject {},
            authentication_context: LogAuthenticationContextDto { authentication_step: 0 },
            security_context: EmptyObject {},
            request: LogRequestDto { ip_chain: Vec::new() },
            transaction: LogTransactionDto { id: e.request_id.clone(), detail: Map::new() },
            debug_context: DebugContextDto { debug_data: redacted(&e.debug_context.debug_data) },
        }
    }
}

fn target(t: &crate::workflow::model::LogTarget) -> LogTargetDto {
    LogTargetDto {
        id: t.id.clone(),
        kind: t.kind.clone(),
        alternate_id: t.alternate_id.clone(),
        display_name: t.display_name.clone(),
        detail_entry: Map::new(),
    }
}
