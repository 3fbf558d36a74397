//! The workflow core: catalog, request state machine, who may do what, and the
//! service that runs commands against the store. No HTTP, no chat platform.

pub mod catalog;
pub mod engine;
pub mod events;
pub mod model;
pub mod ports;
pub mod query;
pub mod reload;
mod service;

use std::sync::Arc;

use chrono::{SubsecRound, Utc};

pub use catalog::{Catalog, Party, Person};
pub use engine::{Decision, NewRequest};
pub use model::ActorType;
pub use service::{CommitHook, JobReport, Submitted, Workflow};

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
    #[error("{0} not found")]
    NotFound(String),
    /// Not allowed; logged as `security.request.blocked`.
    #[error("{0}")]
    Forbidden(String),
    #[error("{request} is already {}", status.as_str())]
    NotPending { request: String, status: Status },
    #[error("this step of {request} was already decided")]
    AlreadyDecided { request: String, status: Status, by: Option<String> },
    #[error(transparent)]
    Store(#[from] ports::StoreError),
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
