//! Errors in Okta's shape. Internal details go to our log, never to the caller.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng;
use serde::Serialize;
use utoipa::ToSchema;

use crate::workflow::WorkflowError;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCause {
    pub error_summary: String,
    pub reason: String,
    pub location: String,
    pub location_type: String,
}

/// `{"errorCode","errorSummary","errorLink","errorId","errorCauses":[…]}`
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error_code: String,
    pub error_summary: String,
    pub error_link: String,
    pub error_id: String,
    pub error_causes: Vec<ErrorCause>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Validation,
    /// A body over the limit: a validation error, answered 413.
    TooLarge,
    Authentication,
    Forbidden,
    NotFound,
    Paging,
    RateLimit,
    Conflict,
    /// A method the resource does not support (read-only views of the config).
    MethodNotAllowed,
    /// A directory accessbot asks (Okta's Users API, Slack) did not answer: try again.
    Unavailable,
    Internal,
}

impl Kind {
    fn code(&self) -> (&'static str, StatusCode, &'static str) {
        match self {
            Kind::Validation => ("E0000001", StatusCode::BAD_REQUEST, "Api validation failed"),
            Kind::TooLarge => ("E0000001", StatusCode::PAYLOAD_TOO_LARGE, "Api validation failed"),
            Kind::Authentication => ("E0000004", StatusCode::UNAUTHORIZED, "Authentication failed"),
            Kind::Forbidden => {
                ("E0000006", StatusCode::FORBIDDEN, "You do not have permission to perform the requested action")
            }
            Kind::NotFound => ("E0000007", StatusCode::NOT_FOUND, "Not found"),
            Kind::Paging => ("E0000029", StatusCode::BAD_REQUEST, "Invalid paging request"),
            Kind::RateLimit => {
                ("E0000047", StatusCode::TOO_MANY_REQUESTS, "API call exceeded rate limit due to too many requests")
            }
            Kind::Conflict => {
                ("E0000195", StatusCode::CONFLICT, "The request conflicts with the current state of the resource")
            }
            Kind::MethodNotAllowed => {
                ("E0000022", StatusCode::METHOD_NOT_ALLOWED, "The endpoint does not support the provided HTTP method")
            }
            Kind::Unavailable => ("E0000009", StatusCode::SERVICE_UNAVAILABLE, "Service unavailable; try again later"),
            Kind::Internal => ("E0000009", StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: Kind,
    pub summary: Option<String>,
    pub causes: Vec<ErrorCause>,
}

impl ApiError {
    pub fn new(kind: Kind) -> ApiError {
        ApiError { kind, summary: None, causes: Vec::new() }
    }

    pub fn summary(mut self, s: impl Into<String>) -> ApiError {
        self.summary = Some(s.into());
        self
    }

    /// A cause naming where the problem is (`location_type`: body, query, path, header).
    pub fn cause(mut self, reason: impl Into<String>, location: &str, location_type: &str) -> ApiError {
        let reason = reason.into();
        self.causes.push(ErrorCause {
            error_summary: format!("{location}: {reason}"),
            reason,
            location: location.to_string(),
            location_type: location_type.to_string(),
        });
        self
    }

    pub fn validation(location: &str, location_type: &str, reason: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Validation).cause(reason, location, location_type)
    }

    pub fn paging(location: &str, reason: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Paging).cause(reason, location, "query")
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(Kind::NotFound).summary(format!("Not found: {}", what.into()))
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        let err = ApiError::new(Kind::Internal);
        tracing::error!(error = %e, "api: internal error");
        err
    }

    pub fn status(&self) -> StatusCode {
        self.kind.code().1
    }
}

fn error_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..22).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("oae{tail}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status, default_summary) = self.kind.code();
        let id = error_id();
        if self.kind == Kind::Internal {
            tracing::error!(error_id = %id, "api: answered 500");
        }
        let body = ErrorBody {
            error_code: code.to_string(),
            error_summary: self.summary.unwrap_or_else(|| default_summary.to_string()),
            error_link: code.to_string(),
            error_id: id,
            error_causes: self.causes,
        };
        let mut res = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer, SSWS"));
        }
        res
    }
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> ApiError {
        match e {
            WorkflowError::Invalid(m) => ApiError::new(Kind::Validation).cause(m, "body", "body"),
            WorkflowError::InvalidField { field, message } => ApiError::validation(&field, "body", message),
            WorkflowError::InvalidFields(list) => {
                list.into_iter().fold(ApiError::new(Kind::Validation), |e, (field, m)| e.cause(m, &field, "body"))
            }
            WorkflowError::NotFound(what) => ApiError::not_found(what),
            WorkflowError::UnknownApp { app_id } => ApiError::not_found(format!("catalog entry {app_id}")),
            WorkflowError::NotRequestable { app_name, .. } => ApiError::validation(
                "requested.entryId",
                "body",
                format!("{app_name} is not requestable (self-service is off)"),
            ),
            WorkflowError::TooLong { field, max, given } => {
                ApiError::validation(&field, "body", format!("at most {max} characters ({given} given)"))
            }
            e @ WorkflowError::RateLimited { .. } => {
                ApiError::new(Kind::RateLimit).cause(e.to_string(), "body", "body")
            }
            WorkflowError::Forbidden(why) => ApiError::new(Kind::Forbidden).cause(why, "request", "body"),
            WorkflowError::NotPending { request, status } => ApiError::new(Kind::Conflict).cause(
                format!("{request} is already {}", status.as_str()),
                "status",
                "body",
            ),
            e @ WorkflowError::AlreadyApproved { .. } => {
                ApiError::new(Kind::Conflict).cause(e.to_string(), "status", "body")
            }
            WorkflowError::AlreadyDecided { request, .. } => ApiError::new(Kind::Conflict).cause(
                format!("this step of {request} was already decided"),
                "status",
                "body",
            ),
            WorkflowError::Unavailable(why) => ApiError::new(Kind::Unavailable).cause(why, "body", "body"),
            WorkflowError::Store(e) => ApiError::internal(e),
        }
    }
}
