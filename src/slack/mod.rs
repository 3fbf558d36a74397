//! The Slack edge: verify, parse, map to workflow commands, render Block Kit.
//! Handlers answer at once; every Web API call goes through the outbox.

pub mod blocks;
pub mod client;
mod commands;
pub mod deliver;
mod directory;
mod events;
mod home;
mod interactions;
mod modals;
mod notices;
pub mod socket;

pub use directory::SlackDirectory;
pub mod verify;

/// The pure parsers the handlers run on what Slack sends, before acting (no I/O,
/// no state): exposed for the fuzz targets in `fuzz/` and for tests.
pub mod parse {
    pub use super::commands::{parse_user, word, CommandForm};
    pub use super::interactions::{comment_value, decision_target, first_action, parse_target, payload, team_and_user};
    pub use super::modals::{input_blocks, read_fields, value, Meta};
}

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use crate::config::Secret;
use crate::state::AppState;
use crate::workflow::{Actor, RateLimited, Source, Workflow, WorkflowError};

/// What the Slack edge needs to know about its workspace(s).
#[derive(Clone, Debug)]
pub struct SlackSettings {
    pub signing_secret: Secret,
    /// `None` serves any workspace that signs with the secret.
    pub team_ids: Option<Vec<String>>,
    /// Origins `response_url`s may point at besides `https://hooks.slack.com/`.
    pub api_base: String,
}

impl SlackSettings {
    pub fn team_allowed(&self, team: Option<&str>) -> bool {
        match (&self.team_ids, team) {
            (None, _) => true,
            (Some(list), Some(t)) => list.iter().any(|x| x == t),
            (Some(_), None) => false,
        }
    }

    /// Only Slack's own hosts (or the configured API origin, for tests and proxies).
    pub fn response_url_ok(&self, url: &str) -> bool {
        let origin = |u: &str| -> Option<String> {
            let (scheme, rest) = u.split_once("://")?;
            let host = rest.split('/').next()?;
            Some(format!("{scheme}://{host}/"))
        };
        url.starts_with("https://hooks.slack.com/") || (origin(url).is_some() && origin(url) == origin(&self.api_base))
    }
}

pub const ROUTES: [&str; 3] = ["/slack/commands", "/slack/interactions", "/slack/events"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/slack/commands", post(commands::handle))
        .route("/slack/interactions", post(interactions::handle))
        .route("/slack/events", post(events::handle))
}

/// What a handler answers, however the delivery came: HTTP sends it as the
/// response, Socket Mode as the envelope's ack (the JSON as its `payload`).
#[derive(Debug)]
pub enum Answer {
    /// 200, nothing to show.
    Done,
    /// 200 with this JSON: an ephemeral reply, a modal's `response_action`.
    Json(Value),
    /// Refused before anything happened: the status and why.
    Refused(StatusCode, &'static str),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Done => StatusCode::OK.into_response(),
            Answer::Json(v) => Json(v).into_response(),
            Answer::Refused(status, "") => status.into_response(),
            Answer::Refused(status, why) => (status, why).into_response(),
        }
    }
}

/// The chat user behind a Slack request, as the workflow knows them.
async fn actor(workflow: &Workflow, user_id: &str) -> Result<Actor, WorkflowError> {
    Ok(Actor::user(workflow.party(user_id).await?, Source::Slack))
}

/// Why a handler cannot do what was asked: the core refused, or the adapter's
/// own words (mrkdwn, escaped where they quote the user).
pub enum Problem {
    Refused(WorkflowError),
    Said(String),
}

impl From<WorkflowError> for Problem {
    fn from(e: WorkflowError) -> Problem {
        Problem::Refused(e)
    }
}

impl Problem {
    pub fn text(&self) -> String {
        match self {
            Problem::Refused(e) => explain(e),
            Problem::Said(s) => s.clone(),
        }
    }
}

/// Refuses a request from a workspace that is not served.
async fn wrong_workspace(state: &AppState, team: Option<&str>, user: Option<&str>) {
    tracing::warn!(team = team.unwrap_or("-"), "slack: request from a workspace that is not served");
    let actor = Actor::user(crate::workflow::Party::new(user.unwrap_or("unknown"), None), Source::Slack);
    let reason = format!("workspace {} is not in SLACK_TEAM_IDS", team.unwrap_or("(none)"));
    if let Err(e) = state.workflow.refuse(&actor, "slack request", &reason, None).await {
        tracing::error!(error = %e, "could not log a blocked request");
    }
}

/// The words a user sees for a workflow error; the core's texts are plain and
/// may quote the user, so all of them are escaped.
pub fn explain(e: &WorkflowError) -> String {
    use blocks::esc;
    match e {
        WorkflowError::Invalid(m) => esc(m),
        WorkflowError::InvalidField { field, message } if field == "justification" => {
            format!("{}: add it after the app, e.g. `/access request <app> why you need it`.", esc(message))
        }
        WorkflowError::InvalidField { message, .. } => esc(message),
        WorkflowError::InvalidFields(list) => {
            list.iter().map(|(_, m)| esc(m)).collect::<Vec<_>>().join("\n")
        }
        WorkflowError::NotFound(what) => format!("{} not found.", esc(what)),
        WorkflowError::UnknownApp { app_id } => format!(
            "There is no app `{}`. `/access apps` lists what you can request, and `/access suggest` asks for a new one.",
            esc(app_id)
        ),
        WorkflowError::NotRequestable { app_name, .. } => {
            format!("*{}* is not requestable; ask an admin.", esc(app_name))
        }
        WorkflowError::TooLong { field, max, given } if field == "justification" => format!(
            "Your justification is {given} characters long; the limit is {max}. Shorten it and try again."
        ),
        WorkflowError::TooLong { field, max, given } => {
            format!("The answer to `{}` is {given} characters long; the limit is {max}.", esc(field))
        }
        WorkflowError::RateLimited { what: RateLimited::Requests, retry_after } => commands::too_fast(*retry_after),
        WorkflowError::RateLimited { what: RateLimited::Suggestions, retry_after } => format!(
            ":hourglass_flowing_sand: You have sent many suggestions recently; try again in {} s.",
            crate::workflow::retry_secs(*retry_after)
        ),
        WorkflowError::Forbidden(why) => format!(":no_entry: Not allowed: {}.", esc(why)),
        WorkflowError::NotPending { request, status } => {
            format!("`{request}` is already {}; nothing to do.", status.as_str())
        }
        WorkflowError::AlreadyApproved { request, approvals, required } => format!(
            "You already approved this step of `{request}`; it needs {required} approvals ({approvals} so far)."
        ),
        WorkflowError::AlreadyDecided { request, by: Some(by), .. } => {
            format!("This step of `{request}` was already decided by {}.", blocks::who(by))
        }
        WorkflowError::AlreadyDecided { request, status, .. } => {
            format!("`{request}` is {} and this step is no longer open.", status.as_str())
        }
        WorkflowError::Unavailable(why) => format!("{}. Please try again in a moment.", esc(why)),
        WorkflowError::Store(err) => {
            tracing::error!(error = %err, "store error");
            "Something went wrong on our side; please try again in a moment.".to_string()
        }
    }
}
