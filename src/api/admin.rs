//! `POST /admin/reload`: re-read the config file and apply it (API token).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::auth::ApiWriter;
use super::error::ErrorBody;
use super::error::{ApiError, Kind};
use crate::state::AppState;
use crate::state::ReloadError;

/// 200 `{"status":"reloaded","apps","groups","flagged":[{"requestId","reason"}],…}`;
/// an invalid file is 400 `E0000001` with one cause per problem, the running config kept.
#[utoipa::path(post, path = "/admin/reload", tag = "admin",
    responses(
        (status = 200, description = "Reloaded: `{status, apps, groups, flagged: [{requestId, reason}], alreadyFlagged, noLongerStranded}`", body = Object),
        (status = 400, description = "The file is invalid; the running config is kept (one cause per problem)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "A read-only token (E0000006; logged as security.request.blocked)", body = ErrorBody),
    ),
    security(("bearer" = []), ("ssws" = [])))]
pub async fn reload(State(state): State<AppState>, ApiWriter(actor): ApiWriter) -> Result<Json<Value>, ApiError> {
    match crate::state::reload_config(&state.workflow, &state.config_path, &actor, "API").await {
        Ok(report) => Ok(Json(json!({
            "status": "reloaded",
            "apps": report.apps,
            "groups": report.groups,
            "flagged": report.flagged,
            "alreadyFlagged": report.already_flagged,
            "noLongerStranded": report.no_longer_stranded,
        }))),
        Err(ReloadError::Invalid(e)) => {
            let mut err = ApiError::new(Kind::Validation)
                .summary(format!("Api validation failed: {} is invalid; the running config is kept", e.file));
            for p in &e.problems {
                let location = if p.key.is_empty() { e.file.as_str() } else { p.key.as_str() };
                err = err.cause(p.message.clone(), location, "config");
            }
            Err(err)
        }
        Err(ReloadError::Workflow(e)) => Err(e.into()),
    }
}
