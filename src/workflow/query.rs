//! Filters and pages for listing requests and system-log events, as the core
//! and the API speak of them. Filters are trees over a whitelist of
//! attributes; the stores compile them to SQL (`crate::store::filter`).

use serde::{Deserialize, Serialize};

use super::model::{LogEvent, Request, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// Starts with (ASCII case-insensitive).
    Sw,
    /// Contains (ASCII case-insensitive).
    Co,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Sw => "sw",
            Op::Co => "co",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Time(Timestamp),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter<A> {
    Cmp { attr: A, op: Op, value: Value },
    And(Box<Filter<A>>, Box<Filter<A>>),
    Or(Box<Filter<A>>, Box<Filter<A>>),
    Not(Box<Filter<A>>),
}

/// Attributes of a request that a filter may name (SCIM names in `name()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestAttr {
    Status,
    GrantStatus,
    RequestedFor,
    RequestedBy,
    ResourceId,
    ResourceType,
    Created,
    LastUpdated,
}

/// Attributes of a system-log event that a filter may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogAttr {
    Uuid,
    Published,
    EventType,
    Severity,
    DisplayMessage,
    OutcomeResult,
    OutcomeReason,
    ActorId,
    ActorType,
    ActorAlternateId,
    ActorDisplayName,
    TargetId,
    TargetType,
    TargetAlternateId,
    TargetDisplayName,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    Text,
    Time,
}

/// What the filter parser needs to know about an attribute.
pub trait Attribute: Copy + 'static {
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
    fn kind(self) -> AttrKind;
    fn ops(self) -> &'static [Op];
    /// Other names a filter may use for the attribute.
    fn aliases(self) -> &'static [&'static str] {
        &[]
    }
}

const TEXT_OPS: &[Op] = &[Op::Eq, Op::Ne];
const LOG_TEXT_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Sw, Op::Co];
const TIME_OPS: &[Op] = &[Op::Gt, Op::Ge, Op::Lt, Op::Le];

impl Attribute for RequestAttr {
    fn all() -> &'static [Self] {
        use RequestAttr::*;
        &[Status, GrantStatus, RequestedFor, RequestedBy, ResourceId, ResourceType, Created, LastUpdated]
    }

    fn name(self) -> &'static str {
        match self {
            RequestAttr::Status => "status",
            RequestAttr::GrantStatus => "grantStatus",
            RequestAttr::RequestedFor => "requestedFor",
            RequestAttr::RequestedBy => "requestedBy",
            RequestAttr::ResourceId => "resourceId",
            RequestAttr::ResourceType => "resourceType",
            RequestAttr::Created => "created",
            RequestAttr::LastUpdated => "lastUpdated",
        }
    }

    fn kind(self) -> AttrKind {
        match self {
            RequestAttr::Created | RequestAttr::LastUpdated => AttrKind::Time,
            _ => AttrKind::Text,
        }
    }

    fn ops(self) -> &'static [Op] {
        match self.kind() {
            AttrKind::Text => TEXT_OPS,
            AttrKind::Time => TIME_OPS,
        }
    }

    /// A principal's id, as Okta's responses spell it.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            RequestAttr::RequestedFor => &["requestedFor.externalId"],
            RequestAttr::RequestedBy => &["requestedBy.externalId"],
            _ => &[],
        }
    }
}

impl Attribute for LogAttr {
    fn all() -> &'static [Self] {
        use LogAttr::*;
        &[
            Uuid,
            Published,
            EventType,
            Severity,
            DisplayMessage,
            OutcomeResult,
            OutcomeReason,
            ActorId,
            ActorType,
            ActorAlternateId,
            ActorDisplayName,
            TargetId,
            TargetType,
            TargetAlternateId,
            TargetDisplayName,
        ]
    }

    fn name(self) -> &'static str {
        match self {
            LogAttr::Uuid => "uuid",
            LogAttr::Published => "published",
            LogAttr::EventType => "eventType",
            LogAttr::Severity => "severity",
            LogAttr::DisplayMessage => "displayMessage",
            LogAttr::OutcomeResult => "outcome.result",
            LogAttr::OutcomeReason => "outcome.reason",
            LogAttr::ActorId => "actor.id",
            LogAttr::ActorType => "actor.type",
            LogAttr::ActorAlternateId => "actor.alternateId",
            LogAttr::ActorDisplayName => "actor.displayName",
            LogAttr::TargetId => "target.id",
            LogAttr::TargetType => "target.type",
            LogAttr::TargetAlternateId => "target.alternateId",
            LogAttr::TargetDisplayName => "target.displayName",
        }
    }

    fn kind(self) -> AttrKind {
        match self {
            LogAttr::Published => AttrKind::Time,
            _ => AttrKind::Text,
        }
    }

    fn ops(self) -> &'static [Op] {
        match self.kind() {
            AttrKind::Text => LOG_TEXT_OPS,
            AttrKind::Time => TIME_OPS,
        }
    }
}

/// The fields `q` searches, each keyword in any of them (`co`, case-insensitive).
pub const KEYWORD_ATTRS: &[LogAttr] = &[
    LogAttr::DisplayMessage,
    LogAttr::EventType,
    LogAttr::OutcomeReason,
    LogAttr::ActorId,
    LogAttr::ActorAlternateId,
    LogAttr::ActorDisplayName,
    LogAttr::TargetId,
    LogAttr::TargetAlternateId,
    LogAttr::TargetDisplayName,
];

/// `q`'s keywords as a filter: every keyword in at least one of [`KEYWORD_ATTRS`].
pub fn keyword_filter(keywords: &[String]) -> Option<Filter<LogAttr>> {
    let any_field = |kw: &String| {
        KEYWORD_ATTRS
            .iter()
            .map(|a| Filter::Cmp { attr: *a, op: Op::Co, value: Value::Text(kw.clone()) })
            .reduce(|a, b| Filter::Or(Box::new(a), Box::new(b)))
    };
    keywords.iter().filter_map(any_field).reduce(|a, b| Filter::And(Box::new(a), Box::new(b)))
}

/// `v <op> want` for text, as the SQL computes it: `sw`/`co` fold ASCII case only.
fn text_cmp(op: Op, v: &str, want: &str) -> bool {
    match op {
        Op::Eq => v == want,
        Op::Ne => v != want,
        Op::Sw => v.to_ascii_lowercase().starts_with(&want.to_ascii_lowercase()),
        Op::Co => v.to_ascii_lowercase().contains(&want.to_ascii_lowercase()),
        _ => false,
    }
}

/// A missing (null) value: only `ne` holds.
fn opt_cmp(op: Op, v: Option<&str>, want: &str) -> bool {
    v.map_or(op == Op::Ne, |v| text_cmp(op, v, want))
}

fn time_cmp(op: Op, t: Timestamp, value: &Value) -> bool {
    match value {
        Value::Time(want) => match op {
            Op::Gt => t > *want,
            Op::Ge => t >= *want,
            Op::Lt => t < *want,
            Op::Le => t <= *want,
            Op::Eq => t == *want,
            Op::Ne => t != *want,
            Op::Sw | Op::Co => false,
        },
        Value::Text(_) => false,
    }
}

/// A target attribute: some target matches, except `ne`, which means no target equals.
fn target_cmp(e: &LogEvent, op: Op, want: &str, field: fn(&super::model::LogTarget) -> Option<&str>) -> bool {
    if op == Op::Ne {
        return !target_cmp(e, Op::Eq, want, field);
    }
    e.target.iter().any(|t| field(t).is_some_and(|v| text_cmp(op, v, want)))
}

fn serialized<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The same filter evaluated in memory against an event (the reference the SQL is tested against).
pub fn matches_event(f: &Filter<LogAttr>, e: &LogEvent) -> bool {
    match f {
        Filter::And(a, b) => matches_event(a, e) && matches_event(b, e),
        Filter::Or(a, b) => matches_event(a, e) || matches_event(b, e),
        Filter::Not(a) => !matches_event(a, e),
        Filter::Cmp { attr: LogAttr::Published, op, value } => time_cmp(*op, e.published, value),
        Filter::Cmp { value: Value::Time(_), .. } => false,
        Filter::Cmp { attr, op, value: Value::Text(want) } => event_text(*attr, *op, want, e),
    }
}

fn event_text(attr: LogAttr, op: Op, want: &str, e: &LogEvent) -> bool {
    let plain = |v: &str| text_cmp(op, v, want);
    let opt = |v: Option<&String>| opt_cmp(op, v.map(String::as_str), want);
    match attr {
        LogAttr::Uuid => plain(&e.uuid),
        LogAttr::EventType => plain(&e.event_type),
        LogAttr::Severity => plain(&e.severity),
        LogAttr::DisplayMessage => plain(&e.display_message),
        LogAttr::OutcomeResult => plain(&serialized(&e.outcome.result)),
        LogAttr::OutcomeReason => opt(e.outcome.reason.as_ref()),
        LogAttr::ActorId => plain(&e.actor.id),
        LogAttr::ActorType => plain(&serialized(&e.actor.kind)),
        LogAttr::ActorAlternateId => opt(e.actor.alternate_id.as_ref()),
        LogAttr::ActorDisplayName => opt(e.actor.display_name.as_ref()),
        LogAttr::TargetId => target_cmp(e, op, want, |t| Some(&t.id)),
        LogAttr::TargetType => target_cmp(e, op, want, |t| Some(&t.kind)),
        LogAttr::TargetAlternateId => target_cmp(e, op, want, |t| t.alternate_id.as_deref()),
        LogAttr::TargetDisplayName => target_cmp(e, op, want, |t| t.display_name.as_deref()),
        LogAttr::Published => false,
    }
}

/// The same filter evaluated in memory against a request (the reference the SQL is tested against).
pub fn matches_request(f: &Filter<RequestAttr>, r: &Request) -> bool {
    match f {
        Filter::And(a, b) => matches_request(a, r) && matches_request(b, r),
        Filter::Or(a, b) => matches_request(a, r) || matches_request(b, r),
        Filter::Not(a) => !matches_request(a, r),
        Filter::Cmp { attr, op, value } => {
            let text = |v: Option<&str>| match (v, value) {
                (Some(v), Value::Text(want)) => match op {
                    Op::Eq => v == want,
                    Op::Ne => v != want,
                    _ => false,
                },
                (None, _) => *op == Op::Ne,
                _ => false,
            };
            let time = |t: Timestamp| match value {
                Value::Time(want) => match op {
                    Op::Gt => t > *want,
                    Op::Ge => t >= *want,
                    Op::Lt => t < *want,
                    Op::Le => t <= *want,
                    Op::Eq => t == *want,
                    Op::Ne => t != *want,
                    Op::Sw | Op::Co => false,
                },
                Value::Text(_) => false,
            };
            match attr {
                RequestAttr::Status => text(Some(r.status.as_str())),
                RequestAttr::GrantStatus => text(r.grant_status.map(|g| g.as_str())),
                RequestAttr::RequestedFor => text(Some(&r.requested_for.id)),
                RequestAttr::RequestedBy => text(Some(&r.requested_by.id)),
                RequestAttr::ResourceId => text(Some(&r.app_id)),
                RequestAttr::ResourceType => text(Some("APPLICATION")),
                RequestAttr::Created => time(r.created),
                RequestAttr::LastUpdated => time(r.last_updated),
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OrderBy {
    Created,
    LastUpdated,
}

/// Where the previous page ended (keyset pagination).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCursor {
    pub at: Timestamp,
    pub id: String,
}

#[derive(Clone, Debug)]
pub struct RequestQuery {
    pub filter: Option<Filter<RequestAttr>>,
    pub order_by: OrderBy,
    pub descending: bool,
    pub after: Option<RequestCursor>,
    pub limit: i64,
}

impl RequestQuery {
    /// The cursor that continues after this row.
    pub fn cursor_of(&self, r: &Request) -> RequestCursor {
        let at = match self.order_by {
            OrderBy::Created => r.created,
            OrderBy::LastUpdated => r.last_updated,
        };
        RequestCursor { at, id: r.id.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct LogQuery {
    pub filter: Option<Filter<LogAttr>>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// The `seq` of the last event of the previous page.
    pub after: Option<i64>,
    pub limit: i64,
    pub descending: bool,
}
