//! Filters and pages compiled to SQL with placeholders only: user text never
//! becomes SQL. The filter types are the core's (`crate::workflow::query`).

use chrono::SubsecRound;

pub use crate::workflow::query::*;

fn op_sql(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
    }
}

/// How an attribute reads in SQL.
pub trait SqlAttribute: Attribute {
    /// SQL for `attr <op> <placeholder>`; never NULL (nullable columns are wrapped),
    /// so that `not` follows two-valued logic like the in-memory evaluation.
    fn sql(self, op: Op, placeholder: &str) -> String;
}

/// `column <op> ?` for a NOT NULL column: plain, so the database can use an index.
fn column_cmp(column: &str, op: Op, ph: &str) -> String {
    format!("{column} {} {ph}", op_sql(op))
}

/// The same for a nullable column: a missing value is "not equal" to anything and
/// compares false otherwise (never NULL, so `not` stays two-valued).
fn nullable_cmp(column: &str, op: Op, ph: &str) -> String {
    match op {
        Op::Ne => format!("COALESCE({column} <> {ph}, TRUE)"),
        _ => format!("COALESCE({column} {} {ph}, FALSE)", op_sql(op)),
    }
}

impl SqlAttribute for RequestAttr {
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

impl SqlAttribute for LogAttr {
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
pub fn to_sql<A: SqlAttribute>(
    f: &Filter<A>,
    params: &mut Vec<Value>,
    placeholder: &dyn Fn(usize) -> String,
) -> String {
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

/// SQL for a page of requests.
pub trait QuerySql {
    /// SQL for `WHERE …` (without the keyword) and `ORDER BY …`, with placeholders.
    fn sql(&self, params: &mut Vec<Value>, placeholder: &dyn Fn(usize) -> String) -> (String, String);
}

impl QuerySql for RequestQuery {
    fn sql(&self, params: &mut Vec<Value>, placeholder: &dyn Fn(usize) -> String) -> (String, String) {
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
