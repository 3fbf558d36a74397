//! The REST API's JSON shapes (Okta Governance "Access Requests - V2" and
//! System Log), converted from the core's types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::workflow::catalog::{App, Catalog, FieldKind, StepDef, TaskAssignee};
use crate::workflow::model::{Request, Status, Step, StepKind, StepState};
use crate::workflow::principals::{Principal as Person, Principals};
use crate::workflow::Party;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Href {
    pub href: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SelfLinks {
    #[serde(rename = "self")]
    pub self_: Href,
}

/// A person: `{type: "OKTA_USER", externalId: "00u…"}` with the Okta connector
/// on and their Okta id known, else `{type: "SLACK_USER", externalId: "U…"}`
/// (accessbot's extension); `email` when known.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    #[serde(rename = "type")]
    pub kind: String,
    pub external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requested {
    #[serde(rename = "type")]
    pub kind: String,
    pub entry_id: String,
    pub resource_id: String,
    pub resource_type: String,
}

/// A field's answer. Okta's `values` (MULTISELECT) is accepted with one item:
/// no accessbot field takes several.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldValueDto {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// TEXT, SELECT or ISO_DATE
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub decider_id: String,
    pub decider_name: String,
    /// APPROVE, DENY or CANCEL
    pub decision: String,
    pub decided: DateTime<Utc>,
    pub step: Option<usize>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepDto {
    pub index: usize,
    /// USER or GROUP
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    pub approvers: Vec<String>,
    /// APP_ADMINS or SUPER_ADMINS when the requester was the step's only approver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routed_to: Option<String>,
    /// WAITING, PENDING, APPROVED, DENIED, CLOSED or DELETED
    pub status: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestApproval {
    /// Always OKTA: the approval runs in accessbot, not an external system.
    #[serde(rename = "type")]
    #[schema(pattern = "^OKTA$")]
    pub kind: String,
    /// Always "accessbot".
    pub provider_name: String,
    pub decisions: Vec<Decision>,
    pub steps: Vec<StepDto>,
    pub current_step: Option<usize>,
}

/// An access request.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestDto {
    pub id: String,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub last_updated: DateTime<Utc>,
    pub last_updated_by: String,
    /// SUBMITTED, PENDING, APPROVED, DENIED, CANCELED, EXPIRED or REJECTED
    pub status: String,
    pub resolved: Option<DateTime<Utc>>,
    /// PENDING, GRANTED, FAILED or MANUAL_REQUIRED; absent before a grant
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_status: Option<String>,
    pub granted: Option<DateTime<Utc>>,
    /// PENDING, REVOKED or FAILED; absent before a revocation
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_status: Option<String>,
    pub revoked: Option<DateTime<Utc>>,
    /// ISO 8601 duration, e.g. P30D
    pub access_duration: Option<String>,
    pub requested_by: Principal,
    pub requested_for: Principal,
    pub requested: Requested,
    pub requester_field_values: Vec<FieldValueDto>,
    pub request_approval: RequestApproval,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When time-bound access ends.
    pub access_until: Option<DateTime<Utc>>,
    /// Why a config change stranded this pending request, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flagged: Option<String>,
    #[serde(rename = "_links")]
    pub links: SelfLinks,
}

/// `requestApproval.providerName`.
pub const PROVIDER_NAME: &str = "accessbot";

pub(crate) fn kind_str(k: FieldKind) -> &'static str {
    match k {
        FieldKind::Text => "TEXT",
        FieldKind::Select => "SELECT",
        FieldKind::Date => "ISO_DATE",
    }
}

fn step_status(s: StepState) -> &'static str {
    match s {
        StepState::Waiting => "WAITING",
        StepState::Pending => "PENDING",
        StepState::Approved => "APPROVED",
        StepState::Denied => "DENIED",
        StepState::Closed => "CLOSED",
        StepState::Deleted => "DELETED",
    }
}

impl RequestDto {
    /// The request as the API shows it; `names` says who has an Okta id.
    pub fn from_request(r: &Request, base: &str, names: &Principals) -> RequestDto {
        RequestDto {
            id: r.id.clone(),
            created: r.created,
            created_by: user_ref(&r.created_by, names),
            last_updated: r.last_updated,
            last_updated_by: user_ref(&r.last_updated_by, names),
            status: r.status.as_str().into(),
            resolved: r.resolved,
            grant_status: r.grant_status.map(|g| g.as_str().into()),
            granted: r.granted,
            revocation_status: r.revocation_status.map(|s| s.as_str().into()),
            revoked: r.revoked,
            access_duration: r.access_duration.clone(),
            requested_by: principal(&r.requested_by, names),
            requested_for: principal(&r.requested_for, names),
            requested: Requested {
                kind: "CATALOG_ENTRY".into(),
                entry_id: r.app_id.clone(),
                resource_id: r.app_id.clone(),
                resource_type: "APPLICATION".into(),
            },
            requester_field_values: field_values(r),
            request_approval: RequestApproval {
                kind: "OKTA".into(),
                provider_name: PROVIDER_NAME.into(),
                decisions: decisions(r, names),
                steps: r.steps.iter().enumerate().map(|(i, s)| StepDto::from_step(i, s)).collect(),
                current_step: r.current_step,
            },
            reason: r.reason.clone(),
            access_until: r.access_until,
            flagged: r.flagged.clone(),
            links: SelfLinks { self_: Href { href: format!("{base}/governance/api/v2/requests/{}", r.id) } },
        }
    }
}

fn principal(p: &Party, names: &Principals) -> Principal {
    let (kind, external_id) = match names.of(&p.id) {
        Person::Okta(id) => ("OKTA_USER", id),
        Person::Slack(id) => ("SLACK_USER", id),
    };
    Principal { kind: kind.into(), external_id, email: p.email.clone() }
}

/// A person's Okta id when known, else the id as stored (a chat user id, an
/// API token's name, `accessbot`): deciders, `createdBy`, `lastUpdatedBy`.
fn user_ref(id: &str, names: &Principals) -> String {
    match names.of(id) {
        Person::Okta(okta) => okta,
        Person::Slack(id) => id,
    }
}

/// The steps' decisions in step order; a cancellation comes last, without a step.
fn decisions(r: &Request, names: &Principals) -> Vec<Decision> {
    let mut decisions: Vec<Decision> = r
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let decision = match s.state {
                StepState::Approved => "APPROVE",
                StepState::Denied => "DENY",
                _ => return None,
            };
            Some(Decision {
                decider_id: user_ref(s.decided_by.as_deref()?, names),
                decider_name: s.decided_by.clone()?,
                decision: decision.into(),
                decided: s.decided?,
                step: Some(i),
            })
        })
        .collect();
    if r.status == Status::Canceled {
        if let Some(at) = r.resolved {
            decisions.push(Decision {
                decider_id: user_ref(&r.last_updated_by, names),
                decider_name: r.last_updated_by.clone(),
                decision: "CANCEL".into(),
                decided: at,
                step: None,
            });
        }
    }
    decisions
}

impl StepDto {
    fn from_step(index: usize, s: &Step) -> StepDto {
        let (group_id, group_name) = match &s.kind {
            StepKind::Group { group_id, group_name } => (Some(group_id.clone()), Some(group_name.clone())),
            StepKind::Task { group_id, group_name } => (group_id.clone(), group_name.clone()),
            StepKind::User | StepKind::Action { .. } => (None, None),
        };
        StepDto {
            index,
            kind: s.approver_type().into(),
            group_id,
            group_name,
            approvers: s.approvers.iter().map(|p| p.to_string()).collect(),
            routed_to: s.routed_to.map(|r| upper(&r)),
            status: step_status(s.state).into(),
        }
    }
}

/// The app's fields as answered; the justification is one more, unless a field already has its id.
fn field_values(r: &Request) -> Vec<FieldValueDto> {
    let mut fields: Vec<FieldValueDto> = r
        .field_values
        .iter()
        .map(|f| FieldValueDto {
            id: f.id.clone(),
            label: Some(f.label.clone()),
            kind: Some(kind_str(f.kind).into()),
            value: f.value.clone(),
            values: Vec::new(),
        })
        .collect();
    if !r.justification.is_empty() && !fields.iter().any(|f| f.id == "justification") {
        fields.push(FieldValueDto {
            id: "justification".into(),
            label: Some("Justification".into()),
            kind: Some("TEXT".into()),
            value: r.justification.clone(),
            values: Vec::new(),
        });
    }
    fields
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PageLinks {
    #[serde(rename = "self")]
    pub self_: Href,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Href>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestList {
    pub data: Vec<RequestDto>,
    #[serde(rename = "_links")]
    pub links: PageLinks,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestedInput {
    /// Must be CATALOG_ENTRY
    #[serde(rename = "type")]
    #[schema(pattern = "^CATALOG_ENTRY$")]
    pub kind: String,
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub entry_id: String,
}

/// `{"type": "OKTA_USER", "externalId": "00u…"}` (with the Okta connector on)
/// or `{"type": "SLACK_USER", "externalId": "U…"}` (accessbot's extension).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalInput {
    /// OKTA_USER or SLACK_USER
    #[serde(rename = "type")]
    #[schema(pattern = "^(OKTA_USER|SLACK_USER)$")]
    pub kind: String,
    /// An Okta user id (00u…) or a Slack user id (U… or W…)
    #[schema(pattern = "^(00u[0-9a-zA-Z]{1,61}|[UW][A-Z0-9]{2,31})$")]
    pub external_id: String,
}

/// The body of `POST /governance/api/v2/requests`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRequest {
    pub requested: RequestedInput,
    pub requested_for: PrincipalInput,
    #[serde(default)]
    pub requested_by: Option<PrincipalInput>,
    #[serde(default)]
    pub requester_field_values: Vec<FieldValueDto>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    /// 1 to 5000 characters
    #[schema(min_length = 1, max_length = 5000, pattern = "\\S")]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    pub id: String,
    pub message: String,
    pub created: DateTime<Utc>,
    pub created_by: String,
}

/// The body of `PATCH /governance/api/v2/requests/{id}`: only `{"status":"CANCELED"}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    #[schema(pattern = "^CANCELED$")]
    pub status: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogField {
    pub id: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogStep {
    /// USER, GROUP, ACTION or TASK
    #[serde(rename = "type")]
    pub kind: String,
    pub approver: String,
}

/// An app in the catalog, as loaded.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    pub id: String,
    pub name: String,
    pub description: String,
    pub requestable: bool,
    pub approval_required: bool,
    pub steps: Vec<CatalogStep>,
    pub fields: Vec<CatalogField>,
    #[serde(rename = "_links")]
    pub links: SelfLinks,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogList {
    pub data: Vec<CatalogEntry>,
}

/// A page of catalog entries (Okta's `rcar-entries-list-v2`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogPage {
    pub data: Vec<CatalogEntry>,
    #[serde(rename = "_links")]
    pub links: PageLinks,
}

/// A request field for a catalog entry (Okta's `request-field`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestField {
    pub id: String,
    /// TEXT, SELECT or ISO_DATE
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
    pub label: String,
    /// A select's options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

/// `{data: [request field]}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestFields {
    pub data: Vec<RequestField>,
}

impl RequestFields {
    pub fn from_app(app: &App) -> RequestFields {
        let data = app
            .fields
            .iter()
            .map(|f| RequestField {
                id: f.id.clone(),
                kind: kind_str(f.kind).into(),
                required: f.required,
                label: f.label.clone(),
                choices: f.options.clone(),
            })
            .collect();
        RequestFields { data }
    }
}

impl CatalogEntry {
    pub fn from_app(app: &App, catalog: &Catalog, base: &str) -> CatalogEntry {
        CatalogEntry {
            id: app.id.clone(),
            name: app.name.clone(),
            description: app.description.clone(),
            requestable: app.self_service,
            approval_required: app.approval,
            steps: app
                .steps
                .iter()
                .map(|s| match &s.def {
                    StepDef::User(p) => CatalogStep { kind: "USER".into(), approver: p.to_string() },
                    StepDef::Group { group: g, .. } => {
                        CatalogStep { kind: "GROUP".into(), approver: group_name(catalog, g) }
                    }
                    StepDef::Action { .. } => CatalogStep { kind: "ACTION".into(), approver: "webhook".into() },
                    StepDef::Task(TaskAssignee::User(p)) => {
                        CatalogStep { kind: "TASK".into(), approver: p.to_string() }
                    }
                    StepDef::Task(TaskAssignee::Group(g)) => {
                        CatalogStep { kind: "TASK".into(), approver: group_name(catalog, g) }
                    }
                })
                .collect(),
            fields: app
                .fields
                .iter()
                .map(|f| CatalogField {
                    id: f.id.clone(),
                    label: f.label.clone(),
                    kind: kind_str(f.kind).into(),
                    required: f.required,
                    options: f.options.clone(),
                })
                .collect(),
            links: SelfLinks {
                self_: Href { href: format!("{base}/governance/api/v2/catalogs/default/entries/{}", app.id) },
            },
        }
    }
}

/// A group's display name; its id if the catalog no longer has it.
fn group_name(catalog: &Catalog, id: &str) -> String {
    catalog.groups.get(id).map(|g| g.name.clone()).unwrap_or_else(|| id.to_string())
}

fn upper<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}
