//! What every handler shares ([`AppState`]) and the config reload they can
//! trigger; apart from `server`, which wires them, so handlers never import
//! the module that imports them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::slack::SlackSettings;
use crate::workflow::reload::{self, ReloadReport};
use crate::workflow::{Actor, Workflow};

#[derive(Clone)]
pub struct AppState {
    pub workflow: Arc<Workflow>,
    /// Bearer/SSWS tokens for the REST API.
    pub api_tokens: Arc<Vec<crate::config::Secret>>,
    /// Tokens that may only read; a write with one is refused (403) and logged.
    pub api_read_tokens: Arc<Vec<crate::config::Secret>>,
    /// Where the API's links point.
    pub links: Arc<crate::api::LinkSettings>,
    pub slack: Arc<SlackSettings>,
    pub metrics: Arc<Metrics>,
    /// The config file, re-read on reload (`POST /admin/reload`, SIGHUP).
    pub config_path: Arc<PathBuf>,
}

/// Why a reload from the config file did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is unreadable or invalid: the running catalog is kept.
    #[error("{0}")]
    Invalid(crate::config::ConfigError),
    #[error(transparent)]
    Workflow(#[from] crate::workflow::WorkflowError),
}

/// Re-reads and validates the config file and applies it: stranded pending
/// requests are flagged and admins told (`workflow::reload`). An invalid file
/// is refused and the running catalog kept. Emails new to the catalog are
/// queued for resolution to Slack ids, as at start.
pub async fn reload_config(
    workflow: &Workflow,
    path: &Path,
    actor: &Actor,
    trigger: &str,
) -> Result<ReloadReport, ReloadError> {
    let catalog = match crate::config::load_catalog(path) {
        Ok(c) => c,
        Err(e) => {
            for p in &e.problems {
                tracing::error!(file = %e.file, key = %p.key, problem = %p.message, trigger, "config reload refused");
            }
            tracing::error!(file = %e.file, "config reload refused: the running config is kept");
            let problems: Vec<(String, String)> =
                e.problems.iter().map(|p| (p.key.clone(), p.message.clone())).collect();
            reload::refused(workflow, actor, trigger, &e.file, &problems).await?;
            return Err(ReloadError::Invalid(e));
        }
    };
    let report = workflow.reload(actor, trigger, catalog).await?;
    if let Err(e) = workflow.resolve_catalog_people().await {
        tracing::warn!(error = %e, "reload: could not queue email look-ups; emails resolve on first use");
    }
    Ok(report)
}
