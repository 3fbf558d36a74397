//! Filters and pages for listing requests and system-log events, independent
//! of any backend. Filters are trees over a whitelist of attributes; they
//! compile to SQL with placeholders only — user text never becomes SQL.

use chrono::SubsecRound;
use serde::{Deserialize, Serialize};

use crate::workflow::model::{Request, Timestamp};

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

    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
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

/// What the parser and the SQL compiler need to know about an attribute.
pub trait Attribute: Copy + 'static {
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
    fn kind(self) -> AttrKind;
    fn ops(self) -> &'static [Op];
    /// SQL for `attr <op> <placeholder>`; never NULL (nullable columns are wrapped),
    /// so that `not` follows two-valued logic like the in-memory evaluation.
    fn sql(self, op: Op, placeholder: &str) -> String;
}

const TEXT_OPS: &[Op] = &[Op::Eq, Op::Ne];
const TIME_OPS: &[Op] = &[Op::Gt, Op::Ge, Op::Lt, Op::Le];

/// `column <op> ?` for a NOT NULL column: plain, so the database can use an index.
fn column_cmp(column: &str, op: Op, ph: &str) -> String {
    format!("{column} {} {ph}", op.sql())
}

/// The same for a nullable column: a missing value is "not equal" to anything and
/// compares false otherwise (never NULL, so `not` stays two-valued).
fn nullable_cmp(column: &str, op: Op, ph: &str) -> String {
    match op {
        Op::Ne => format!("COALESCE({column} <> {ph}, TRUE)"),
        _ => format!("COALESCE({column} {} {ph}, FALSE)", op.sql()),
    }
}

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

    fn sql(self, op: Op, ph: &str) -> String {
        let column = match self {
            RequestAttr::Status => "status",
            RequestAttr::GrantStatus => return nullable_cmp("grant_status", op, ph),
            RequestAttr::RequestedFor => "requested_for",
            RequestAttr::RequestedBy => "requested_by",
            RequestAttr::ResourceId => "app_id",
            // Every catalog entry is an application.
            RequestAttr::ResourceType => "'APPLICATION'",
            RequestAttr::Created => "created",
            RequestAttr::LastUpdated => "last_updated",
        };
        column_cmp(column, op, ph)
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

    fn sql(self, op: Op, ph: &str) -> String {
        match self {
            LogAttr::EventType => column_cmp("event_type", op, ph),
            LogAttr::ActorId => column_cmp("actor_id", op, ph),
            LogAttr::TargetId => {
                format!(
                    "EXISTS (SELECT 1 FROM system_log_targets t WHERE t.seq = system_log.seq AND t.target_id = {ph})"
                )
            }
        }
    }
}

/// Stored times have millisecond precision, so a finer bound is rounded to the
/// millisecond that selects the same rows: up for `ge`/`lt`, down for `gt`/`le`.
fn to_stored_precision(op: Op, value: &Value) -> Value {
    let Value::Time(t) = value else { return value.clone() };
    let floor = t.trunc_subsecs(3);
    if floor == *t {
        return value.clone();
    }
    match op {
        Op::Ge | Op::Lt => Value::Time(floor + chrono::Duration::milliseconds(1)),
        _ => Value::Time(floor),
    }
}

/// Compiles a filter to a SQL boolean expression; values go to `params`,
/// `placeholder(n)` names the n-th (1-based) parameter (`?` or `$n`).
pub fn to_sql<A: Attribute>(f: &Filter<A>, params: &mut Vec<Value>, placeholder: &dyn Fn(usize) -> String) -> String {
    match f {
        Filter::Cmp { attr, op, value } => {
            params.push(to_stored_precision(*op, value));
            attr.sql(*op, &placeholder(params.len()))
        }
        Filter::And(a, b) => format!("({} AND {})", to_sql(a, params, placeholder), to_sql(b, params, placeholder)),
        Filter::Or(a, b) => format!("({} OR {})", to_sql(a, params, placeholder), to_sql(b, params, placeholder)),
        Filter::Not(a) => format!("(NOT {})", to_sql(a, params, placeholder)),
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

    /// SQL for `WHERE …` (without the keyword) and `ORDER BY …`, with placeholders.
    pub fn sql(&self, params: &mut Vec<Value>, placeholder: &dyn Fn(usize) -> String) -> (String, String) {
        let column = match self.order_by {
            OrderBy::Created => "created",
            OrderBy::LastUpdated => "last_updated",
        };
        let mut clauses = Vec::new();
        if let Some(f) = &self.filter {
            clauses.push(to_sql(f, params, placeholder));
        }
        if let Some(c) = &self.after {
            let cmp = if self.descending { "<" } else { ">" };
            params.push(Value::Time(c.at));
            let t = placeholder(params.len());
            params.push(Value::Text(c.id.clone()));
            let id = placeholder(params.len());
            // A row comparison lets both databases seek straight to the cursor in the index.
            clauses.push(format!("({column}, id) {cmp} ({t}, {id})"));
        }
        let dir = if self.descending { "DESC" } else { "ASC" };
        let where_sql = if clauses.is_empty() { "TRUE".to_string() } else { clauses.join(" AND ") };
        (where_sql, format!("{column} {dir}, id {dir}"))
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
