//! SCIM filters (`GET /governance/api/v2/requests?filter=…`, `GET /api/v1/logs?filter=…`):
//! `parse` never panics, and a parsed filter compiles to SQL that depends on the
//! filter's shape only — every value goes to a parameter, in order, and no user
//! text ever appears in the SQL.
#![no_main]

use accessbot::api::scim::parse;
use accessbot::store::filter::{to_sql, Attribute, Filter, LogAttr, RequestAttr, Value};
use libfuzzer_sys::fuzz_target;

fn values<A: Copy>(f: &Filter<A>, out: &mut Vec<Value>) {
    match f {
        Filter::Cmp { value, .. } => out.push(value.clone()),
        Filter::And(a, b) | Filter::Or(a, b) => {
            values(a, out);
            values(b, out);
        }
        Filter::Not(a) => values(a, out),
    }
}

/// The same filter with every value replaced by a constant.
fn blank<A: Copy>(f: &Filter<A>) -> Filter<A> {
    match f {
        Filter::Cmp { attr, op, value } => Filter::Cmp {
            attr: *attr,
            op: *op,
            value: match value {
                Value::Text(_) => Value::Text("x".into()),
                Value::Time(_) => Value::Time(chrono::DateTime::UNIX_EPOCH),
            },
        },
        Filter::And(a, b) => Filter::And(Box::new(blank(a)), Box::new(blank(b))),
        Filter::Or(a, b) => Filter::Or(Box::new(blank(a)), Box::new(blank(b))),
        Filter::Not(a) => Filter::Not(Box::new(blank(a))),
    }
}

fn check<A: Attribute + std::fmt::Debug>(input: &str) {
    let Ok(f) = parse::<A>(input) else { return };
    for placeholder in [&(|n: usize| format!("${n}")) as &dyn Fn(usize) -> String, &|_| "?".to_string()] {
        let mut params = Vec::new();
        let sql = to_sql(&f, &mut params, placeholder);
        let mut shape_params = Vec::new();
        let shape = to_sql(&blank(&f), &mut shape_params, placeholder);
        assert_eq!(sql, shape, "the SQL depends on the values of {input:?}");
        let mut given = Vec::new();
        values(&f, &mut given);
        assert_eq!(params.len(), given.len(), "one parameter per comparison");
        for (p, v) in params.iter().zip(&given) {
            match (p, v) {
                (Value::Text(p), Value::Text(v)) => assert_eq!(p, v),
                // Times are rounded to what the database stores (milliseconds), never by more.
                (Value::Time(p), Value::Time(v)) => assert!((*p - *v).abs() < chrono::TimeDelta::milliseconds(1)),
                _ => panic!("parameter {p:?} for value {v:?}"),
            }
            // (Implied by `sql == shape`, and said plainly: text that is not part of the
            // fixed SQL shape, such as `x` or `COALESCE`, never appears in the SQL.)
            if let Value::Text(v) = v {
                if !v.is_empty() && !shape.contains(v.as_str()) {
                    assert!(!sql.contains(v.as_str()), "user text {v:?} in the SQL: {sql}");
                }
            }
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || " _.()$?=<>',".contains(c);
        assert!(sql.chars().all(allowed), "unexpected character in {sql}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    check::<RequestAttr>(input);
    check::<LogAttr>(input);
});
