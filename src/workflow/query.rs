//! Filters and pages for listing requests and system-log events, as the core
//! and the API speak of them. Filters are trees over a whitelist of
//! attributes; the stores compile them to SQL (`crate::store::filter`).

use serde::{Deserialize, Serialize};

use super::model::{Request, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
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
    EventType,
    TargetId,
    ActorId,
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
}

const TEXT_OPS: &[Op] = &[Op::Eq, Op::Ne];
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
}

impl Attribute for LogAttr {
    fn all() -> &'static [Self] {
        &[LogAttr::EventType, LogAttr::TargetId, LogAttr::ActorId]
    }

    fn name(self) -> &'static str {
        match self {
            LogAttr::EventType => "eventType",
            LogAttr::TargetId => "target.id",
            LogAttr::ActorId => "actor.id",
        }
    }

    fn kind(self) -> AttrKind {
        AttrKind::Text
    }

    fn ops(self) -> &'static [Op] {
        &[Op::Eq]
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
