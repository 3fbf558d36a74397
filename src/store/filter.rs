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
        // `sw` and `co` compile to LIKE (`text_cmp`); never through here.
        Op::Sw | Op::Co => "LIKE",
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

/// `sw`/`co` as LIKE, folding ASCII letters only on both sides, as the
/// in-memory evaluation does: SQLite's `LOWER` folds only ASCII while
/// PostgreSQL's follows the locale, so neither is used. The pattern is built
/// by [`like_pattern`] (already folded); `\\` escapes its wildcards on both.
fn like(column: &str, ph: &str) -> String {
    let folded =
        ('A'..='Z').fold(column.to_string(), |e, c| format!("REPLACE({e}, '{c}', '{}')", c.to_ascii_lowercase()));
    format!("{folded} LIKE {ph} ESCAPE '\\'")
}

/// Any text comparison on a NOT NULL column.
fn text_cmp(column: &str, op: Op, ph: &str) -> String {
    match op {
        Op::Sw | Op::Co => like(column, ph),
        _ => column_cmp(column, op, ph),
    }
}

/// Any text comparison on a nullable column: never NULL.
fn nullable_text_cmp(column: &str, op: Op, ph: &str) -> String {
    match op {
        Op::Sw | Op::Co => format!("COALESCE({}, FALSE)", like(column, ph)),
        _ => nullable_cmp(column, op, ph),
    }
}

/// The value `sw`/`co` bind: the text with `\\`, `%` and `_` escaped, then wildcards.
pub fn like_pattern(op: Op, text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars().map(|c| c.to_ascii_lowercase()) {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    match op {
        Op::Co => format!("%{escaped}%"),
        _ => format!("{escaped}%"),
    }
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
        let (column, nullable) = match self {
            LogAttr::Uuid => ("uuid", false),
            LogAttr::Published => return column_cmp("published", op, ph),
            LogAttr::EventType => ("event_type", false),
            LogAttr::Severity => ("severity", false),
            LogAttr::DisplayMessage => ("display_message", false),
            LogAttr::OutcomeResult => ("outcome_result", false),
            LogAttr::OutcomeReason => ("outcome_reason", true),
            LogAttr::ActorId => ("actor_id", false),
            LogAttr::ActorType => ("actor_type", false),
            LogAttr::ActorAlternateId => ("actor_alternate_id", true),
            LogAttr::ActorDisplayName => ("actor_display_name", true),
            LogAttr::TargetId => return target_sql("t.target_id", op, ph),
            LogAttr::TargetType => return target_sql("t.target_type", op, ph),
            LogAttr::TargetAlternateId => return target_sql("t.alternate_id", op, ph),
            LogAttr::TargetDisplayName => return target_sql("t.display_name", op, ph),
        };
        if nullable {
            nullable_text_cmp(column, op, ph)
        } else {
            text_cmp(column, op, ph)
        }
    }
}

/// Some target matches; `ne`: no target equals.
fn target_sql(column: &str, op: Op, ph: &str) -> String {
    let exists =
        |cond: String| format!("EXISTS (SELECT 1 FROM system_log_targets t WHERE t.seq = system_log.seq AND {cond})");
    match op {
        Op::Ne => format!("(NOT {})", exists(column_cmp(column, Op::Eq, ph))),
        Op::Sw | Op::Co => exists(like(column, ph)),
        _ => exists(column_cmp(column, op, ph)),
    }
}

/// The parameter a comparison binds.
fn bound_value(op: Op, value: &Value) -> Value {
    match (op, value) {
        (Op::Sw | Op::Co, Value::Text(t)) => Value::Text(like_pattern(op, t)),
        _ => to_stored_precision(op, value),
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
            params.push(bound_value(*op, value));
            attr.sql(*op, &placeholder(params.len()))
        }
        Filter::And(a, b) => format!("({} AND {})", to_sql(a, params, placeholder), to_sql(b, params, placeholder)),
        Filter::Or(a, b) => format!("({} OR {})", to_sql(a, params, placeholder), to_sql(b, params, placeholder)),
        Filter::Not(a) => format!("(NOT {})", to_sql(a, params, placeholder)),
    }
}

/// How a backend spells the parts of a page query that differ between them.
pub struct Dialect<'a> {
    /// Names the n-th (1-based) parameter: `?` or `$n`.
    pub placeholder: &'a dyn Fn(usize) -> String,
    /// `time - ms`, a time parameter minus a count of milliseconds.
    pub minus_ms: fn(time: &str, ms: &str) -> String,
    /// The earliest time there is (the floor when no span is known).
    pub earliest: &'static str,
}

/// SQL for a page of requests.
pub trait QuerySql {
    /// SQL for `WHERE …` (without the keyword) and `ORDER BY …`, with placeholders.
    fn sql(&self, params: &mut Vec<Value>, dialect: &Dialect) -> (String, String);
}

impl QuerySql for RequestQuery {
    fn sql(&self, params: &mut Vec<Value>, dialect: &Dialect) -> (String, String) {
        let placeholder = dialect.placeholder;
        let column = match self.order_by {
            OrderBy::Created => "created",
            OrderBy::LastUpdated => "last_updated",
        };
        let mut clauses = Vec::new();
        if let Some(f) = &self.filter {
            clauses.push(to_sql(f, params, placeholder));
            // Ascending after a cursor, the cursor (a row of an earlier page) is past the floor
            // already, and a second lower bound on `created` would keep the database from
            // seeking to the cursor.
            if self.order_by == OrderBy::Created && (self.after.is_none() || self.descending) {
                clauses.extend(created_floor(f, params, dialect));
            }
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

/// The filter's top-level `and` operands.
fn conjuncts<'a, A>(f: &'a Filter<A>, out: &mut Vec<&'a Filter<A>>) {
    match f {
        Filter::And(a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        other => out.push(other),
    }
}

/// `created >= T - longest` when the filter requires `lastUpdated > T` (or
/// `>=`): no request of the status (of any, without `status eq`) took longer
/// than `longest` from created to last updated (`request_spans`, migration
/// 0014), so no match is older. Redundant for the result; it lets a page in
/// created order start where matches can begin rather than at the oldest row.
fn created_floor(f: &Filter<RequestAttr>, params: &mut Vec<Value>, dialect: &Dialect) -> Option<String> {
    let mut all = Vec::new();
    conjuncts(f, &mut all);
    let mut since = None;
    let mut status = None;
    for c in all {
        let Filter::Cmp { attr, op, value } = c else { continue };
        match (attr, op, value) {
            (RequestAttr::LastUpdated, Op::Gt | Op::Ge, Value::Time(_)) => {
                if let Value::Time(t) = to_stored_precision(*op, value) {
                    since = since.max(Some(t));
                }
            }
            (RequestAttr::Status, Op::Eq, Value::Text(s)) => status = Some(s.clone()),
            _ => {}
        }
    }
    params.push(Value::Time(since?));
    let t = (dialect.placeholder)(params.len());
    let longest = match status {
        Some(s) => {
            params.push(Value::Text(s));
            format!("(SELECT MAX(longest) FROM request_spans WHERE status = {})", (dialect.placeholder)(params.len()))
        }
        None => "(SELECT MAX(longest) FROM request_spans)".to_string(),
    };
    Some(format!("created >= COALESCE({}, {})", (dialect.minus_ms)(&t, &longest), dialect.earliest))
}
