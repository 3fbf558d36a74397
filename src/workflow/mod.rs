//! The workflow core: catalog, request state machine, who may do what, and the
//! service that runs commands against the store. No HTTP, no chat platform.

pub mod catalog;
mod delegation;
pub mod engine;
pub mod events;
mod identity;
mod intake;
pub mod model;
pub mod ports;
pub mod principals;
pub mod query;
pub mod ratelimit;
pub mod redact;
pub mod reload;
mod service;
pub mod usergroups;

pub use ratelimit::{retry_secs, RateLimiter};

use std::sync::Arc;

use chrono::{SubsecRound, Utc};

pub use catalog::{Catalog, Party, Person};
pub use engine::{Decision, NewRequest};
pub use identity::{IDENTIFY_WAIT, IDENTITY_DEADLINE};
pub use intake::RequestInput;
pub use model::ActorType;
pub use service::{
    CommitHook, JobReport, Limits, RefusalHook, Submitted, Workflow, DEFAULT_REFUSAL_LOG, DEFAULT_SUGGESTIONS,
};

use model::{Status, Timestamp};

/// Where a command came from, recorded in the system log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Slack,
    Api,
    System,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Slack => "SLACK",
            Source::Api => "API",
            Source::System => "SYSTEM",
        }
    }
}

/// Who runs a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub party: Party,
    pub kind: ActorType,
    pub name: Option<String>,
    pub source: Source,
}

impl Actor {
    pub fn user(party: Party, source: Source) -> Actor {
        Actor { party, kind: ActorType::User, name: None, source }
    }

    pub fn system() -> Actor {
        Actor {
            party: Party::new("accessbot", None),
            kind: ActorType::System,
            name: Some("accessbot".into()),
            source: Source::System,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The command is malformed or does not apply; the message is for the user.
    #[error("{0}")]
    Invalid(String),
    /// A request field (or API body member) is wrong; `field` names it.
    #[error("{message}")]
    InvalidField { field: String, message: String },
    /// Answers to request fields are wrong, each named by its field id.
    #[error("{}", .0.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; "))]
    InvalidFields(Vec<(String, String)>),
    #[error("{0} not found")]
    NotFound(String),
    /// No app with this id in the catalog.
    #[error("there is no app {app_id}")]
    UnknownApp { app_id: String },
    /// The app is in the catalog but cannot be requested (self-service off).
    #[error("{app_name} is not requestable; ask an admin")]
    NotRequestable { app_id: String, app_name: String },
    /// A text is over its limit (characters).
    #[error("{field} is too long: at most {max} characters, {given} given")]
    TooLong { field: String, max: usize, given: usize },
    /// Too many of this command from one person; try again after the wait.
    #[error("too many {what}; try again in {} s", retry_secs(*retry_after))]
    RateLimited { what: RateLimited, retry_after: std::time::Duration },
    /// Not allowed; logged as `security.request.blocked`.
    #[error("{0}")]
    Forbidden(String),
    #[error("{request} is already {}", status.as_str())]
    NotPending { request: String, status: Status },
    /// This person's approval of the step is counted already; it waits for others.
    #[error("you already approved this step of {request} ({approvals} of {required} approvals so far)")]
    AlreadyApproved { request: String, approvals: usize, required: u32 },
    #[error("this step of {request} was already decided")]
    AlreadyDecided { request: String, status: Status, by: Option<String> },
    /// A directory the command needs (Okta's Users API, the chat directory)
    /// did not answer, or refused; try again later.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] ports::StoreError),
}

/// Which per-person limit a command ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimited {
    Requests,
    Suggestions,
}

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RateLimited::Requests => "requests",
            RateLimited::Suggestions => "suggestions",
        })
    }
}

/// The time source; tests swap in a clock they move by hand.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    /// Millisecond precision: what every backend stores exactly, so filters on time agree.
    fn now(&self) -> Timestamp {
        Utc::now().trunc_subsecs(3)
    }
}

pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that moves only when told (tests of reminders, expiry, time-bound access).
pub struct ManualClock(std::sync::Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Arc<ManualClock> {
        Arc::new(ManualClock(std::sync::Mutex::new(start.trunc_subsecs(3))))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
