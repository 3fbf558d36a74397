//! Builders for system-log events, so every event of a kind has the same shape.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::model::{
    ActorType, DebugContext, LogActor, LogEvent, LogOutcome, LogTarget, OutcomeResult, Request, Timestamp,
};
use super::Actor;

pub struct EventBuilder {
    event: LogEvent,
}

impl EventBuilder {
    pub fn new(event_type: &str, actor: &Actor, now: Timestamp, message: impl Into<String>) -> Self {
        let mut debug = Map::new();
        debug.insert("source".into(), json!(actor.source.as_str()));
        EventBuilder {
            event: LogEvent {
                uuid: Uuid::now_v7().to_string(),
                published: now,
                event_type: event_type.to_string(),
                severity: "INFO".to_string(),
                display_message: message.into(),
                actor: LogActor {
                    id: actor.party.id.clone(),
                    kind: actor.kind,
                    alternate_id: actor.party.email.clone(),
                    display_name: actor.name.clone(),
                },
                target: Vec::new(),
                outcome: LogOutcome { result: OutcomeResult::Success, reason: None },
                debug_context: DebugContext { debug_data: debug },
                request_id: None,
            },
        }
    }

    pub fn request(mut self, r: &Request) -> Self {
        self.event.request_id = Some(r.id.clone());
        self.event.target.push(LogTarget {
            id: r.id.clone(),
            kind: "AccessRequest".into(),
            alternate_id: None,
            display_name: Some(format!("{} for {}", r.app_name, r.requested_for.id)),
        });
        self.app(&r.app_id, &r.app_name).user(&r.requested_for.id, r.requested_for.email.as_deref())
    }

    pub fn request_id(mut self, id: &str) -> Self {
        self.event.request_id = Some(id.to_string());
        self.event.target.push(LogTarget {
            id: id.to_string(),
            kind: "AccessRequest".into(),
            alternate_id: None,
            display_name: None,
        });
        self
    }

    pub fn app(mut self, id: &str, name: &str) -> Self {
        self.event.target.push(LogTarget {
            id: id.to_string(),
            kind: "AppInstance".into(),
            alternate_id: None,
            display_name: Some(name.to_string()),
        });
        self
    }

    pub fn user(mut self, id: &str, email: Option<&str>) -> Self {
        self.event.target.push(LogTarget {
            id: id.to_string(),
            kind: "User".into(),
            alternate_id: email.map(str::to_string),
            display_name: None,
        });
        self
    }

    /// A group of people (Okta's `UserGroup`), e.g. a Slack user group.
    pub fn group(mut self, id: &str, name: &str) -> Self {
        self.event.target.push(LogTarget {
            id: id.to_string(),
            kind: "UserGroup".into(),
            alternate_id: None,
            display_name: Some(name.to_string()),
        });
        self
    }

    pub fn outcome(mut self, result: OutcomeResult, reason: Option<String>) -> Self {
        self.event.outcome = LogOutcome { result, reason };
        if result != OutcomeResult::Success {
            self.event.severity = "WARN".into();
        }
        self
    }

    pub fn data(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.event.debug_context.debug_data.insert(key.to_string(), value.into());
        self
    }

    pub fn build(self) -> LogEvent {
        self.event
    }
}

/// The system itself as an actor (jobs, the outbox).
pub fn system_actor() -> Actor {
    Actor::system()
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "USER",
            ActorType::Group => "GROUP",
            ActorType::System => "SYSTEM",
            ActorType::ApiToken => "API_TOKEN",
        }
    }
}
