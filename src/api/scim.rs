//! SCIM filter expressions (RFC 7644 §3.4.2.2, the subset the API serves),
//! parsed by hand into a [`Filter`] over a whitelist of attributes.
//!
//! ```text
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" or ")" | comparison
//! comparison := ATTR OP VALUE
//! ```
//!
//! `not` binds tighter than `and`, `and` tighter than `or`; both binary
//! operators are left-associative. Keywords and operators are
//! case-insensitive, attribute names are not. Values are double-quoted
//! JSON-style strings; time attributes take an RFC 3339 date-time or a plain
//! date (midnight UTC). Every error names the 0-based character offset of the
//! problem; no input makes the parser panic.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::store::filter::{AttrKind, Attribute, Filter, Op, Value};
use crate::workflow::model::Timestamp;

/// The longest filter accepted, in characters.
pub const MAX_LEN: usize = 4096;
/// How deeply parentheses and `not` may nest.
pub const MAX_DEPTH: usize = 64;

/// Why a filter was refused, and where (a 0-based character offset into the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.position, self.message)
    }
}

impl std::error::Error for FilterError {}

fn err(position: usize, message: impl Into<String>) -> FilterError {
    FilterError { position, message: message.into() }
}

/// Parses a SCIM filter over the attributes `A`.
pub fn parse<A: Attribute>(input: &str) -> Result<Filter<A>, FilterError> {
    if input.chars().nth(MAX_LEN).is_some() {
        return Err(err(MAX_LEN, format!("the filter is longer than {MAX_LEN} characters; shorten it")));
    }
    let mut p = Parser { chars: input.chars().collect(), pos: 0, depth: 0 };
    let first = p.peek()?;
    if first.tok == Tok::End {
        return Err(err(first.start, "the filter is empty; write a comparison such as `attribute eq \"value\"`"));
    }
    let filter = p.or_expr::<A>()?;
    let t = p.next()?;
    match t.tok {
        Tok::End => Ok(filter),
        Tok::Close => Err(err(t.start, "unbalanced parentheses: this `)` has no matching `(`")),
        _ => Err(err(
            t.start,
            format!("unexpected {} after a complete expression; join expressions with `and` or `or`", p.describe(&t)),
        )),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    /// A run of characters other than whitespace, parentheses and `"`.
    Word(String),
    /// A double-quoted string, unescaped.
    Str(String),
    End,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// Character offsets: `start` inclusive, `end` exclusive.
    start: usize,
    end: usize,
}

impl Token {
    fn is_keyword(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_word_char(c: char) -> bool {
    !is_space(c) && !matches!(c, '(' | ')' | '"')
}

/// At most 40 characters of user text, for messages.
fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

fn parse_op(word: &str) -> Option<Op> {
    [Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le, Op::Sw, Op::Co]
        .into_iter()
        .find(|op| op.as_str().eq_ignore_ascii_case(word))
}

fn op_list(ops: &[Op]) -> String {
    ops.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(", ")
}

fn attr_list<A: Attribute>() -> String {
    A::all().iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

/// An RFC 3339 date-time, or a plain `YYYY-MM-DD` date meaning midnight UTC.
fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let plain_date =
        s.len() == 10 && s.char_indices().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() });
    if plain_date {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0).map(|d| d.and_utc());
    }
    None
}

impl Parser {
    fn char_at(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.chars.get(start..end).map(|cs| cs.iter().collect()).unwrap_or_default()
    }

    fn describe(&self, t: &Token) -> String {
        match &t.tok {
            Tok::Open => "`(`".to_string(),
            Tok::Close => "`)`".to_string(),
            Tok::Word(w) => format!("`{}`", snippet(w)),
            Tok::Str(_) => format!("the string {}", snippet(&self.text(t.start, t.end))),
            Tok::End => "the end of the filter".to_string(),
        }
    }

    /// The next token, without consuming it.
    fn peek(&mut self) -> Result<Token, FilterError> {
        let saved = self.pos;
        let t = self.next();
        self.pos = saved;
        t
    }

    fn next(&mut self) -> Result<Token, FilterError> {
        while self.char_at(self.pos).is_some_and(is_space) {
            self.pos += 1;
        }
        let start = self.pos;
        let tok = match self.char_at(start) {
            None => Tok::End,
            Some('(') => {
                self.pos += 1;
                Tok::Open
            }
            Some(')') => {
                self.pos += 1;
                Tok::Close
            }
            Some('"') => {
                let (s, end) = self.string(start)?;
                self.pos = end;
                Tok::Str(s)
            }
            Some(_) => {
                while self.char_at(self.pos).is_some_and(is_word_char) {
                    self.pos += 1;
                }
                Tok::Word(self.text(start, self.pos))
            }
        };
        Ok(Token { tok, start, end: self.pos })
    }

    /// A JSON-style string opening at `start`; returns it unescaped and the offset after its closing quote.
    fn string(&self, start: usize) -> Result<(String, usize), FilterError> {
        let unterminated = || err(start, "unterminated string: this `\"` is never closed");
        let mut out = String::new();
        let mut i = start + 1;
        loop {
            let c = self.char_at(i).ok_or_else(unterminated)?;
            match c {
                '"' => return Ok((out, i + 1)),
                '\\' => {
                    let esc = self.char_at(i + 1).ok_or_else(unterminated)?;
                    let plain = match esc {
                        '"' => Some('"'),
                        '\\' => Some('\\'),
                        '/' => Some('/'),
                        'b' => Some('\u{8}'),
                        'f' => Some('\u{c}'),
                        'n' => Some('\n'),
                        'r' => Some('\r'),
                        't' => Some('\t'),
                        _ => None,
                    };
                    let (ch, len) = match (plain, esc) {
                        (Some(ch), _) => (ch, 2),
                        (None, 'u') => self.unicode_escape(i)?,
                        (None, other) => {
                            return Err(err(
                                i,
                                format!(
                                    "bad escape `\\{other}` in a string; use \\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\uXXXX"
                                ),
                            ))
                        }
                    };
                    if ch == '\0' {
                        return Err(err(i, "strings may not contain the NUL character (\\u0000)"));
                    }
                    out.push(ch);
                    i += len;
                }
                '\0' => return Err(err(i, "strings may not contain the NUL character")),
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0u32;
        for k in 0..4 {
            v = v * 16 + self.char_at(at + k)?.to_digit(16)?;
        }
        Some(v)
    }

    /// `\uXXXX` at `i` (the backslash), with a following `\uXXXX` for a surrogate pair.
    fn unicode_escape(&self, i: usize) -> Result<(char, usize), FilterError> {
        let hi = self.hex4(i + 2).ok_or_else(|| err(i, "bad escape: `\\u` must be followed by four hex digits"))?;
        if (0xD800..0xDC00).contains(&hi) {
            let lo = match (self.char_at(i + 6), self.char_at(i + 7)) {
                (Some('\\'), Some('u')) => self.hex4(i + 8),
                _ => None,
            };
            if let Some(lo) = lo.filter(|lo| (0xDC00..0xE000).contains(lo)) {
                let code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                if let Some(c) = char::from_u32(code) {
                    return Ok((c, 12));
                }
            }
            return Err(err(
                i,
                format!("bad escape `\\u{hi:04X}`: a high surrogate must be followed by a low one (\\uDC00-\\uDFFF)"),
            ));
        }
        char::from_u32(hi)
            .map(|c| (c, 6))
            .ok_or_else(|| err(i, format!("bad escape `\\u{hi:04X}`: a low surrogate without a high one before it")))
    }

    fn or_expr<A: Attribute>(&mut self) -> Result<Filter<A>, FilterError> {
        let mut left = self.and_expr()?;
        while self.peek()?.is_keyword("or") {
            self.next()?;
            let right = self.and_expr()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr<A: Attribute>(&mut self) -> Result<Filter<A>, FilterError> {
        let mut left = self.unary()?;
        while self.peek()?.is_keyword("and") {
            self.next()?;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn enter(&mut self, t: &Token) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(t.start, format!("the filter nests parentheses and `not` deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn unary<A: Attribute>(&mut self) -> Result<Filter<A>, FilterError> {
        let t = self.next()?;
        match &t.tok {
            Tok::Word(_) if t.is_keyword("not") => {
                self.enter(&t)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Filter::Not(Box::new(inner)))
            }
            Tok::Open => {
                self.enter(&t)?;
                if self.peek()?.tok == Tok::Close {
                    return Err(err(t.start, "empty parentheses: put an expression between `(` and `)`"));
                }
                let inner = self.or_expr()?;
                let close = self.next()?;
                match close.tok {
                    Tok::Close => {}
                    Tok::End => {
                        return Err(err(t.start, "unbalanced parentheses: this `(` is never closed; add a `)`"));
                    }
                    _ => {
                        return Err(err(
                            close.start,
                            format!("expected `and`, `or` or `)` but found {}", self.describe(&close)),
                        ))
                    }
                }
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Word(w) => {
                if t.is_keyword("and") || t.is_keyword("or") {
                    return Err(err(t.start, format!("expected a comparison before `{}`", snippet(w))));
                }
                if parse_op(w).is_some() {
                    return Err(err(
                        t.start,
                        format!("missing attribute before `{}`; known attributes: {}", snippet(w), attr_list::<A>()),
                    ));
                }
                let Some(attr) = A::all().iter().copied().find(|a| a.name() == w || a.aliases().contains(&w.as_str()))
                else {
                    let hint = match A::all().iter().find(|a| a.name().eq_ignore_ascii_case(w)) {
                        Some(a) => format!("attribute names are case-sensitive: did you mean `{}`?", a.name()),
                        None => format!("known attributes: {}", attr_list::<A>()),
                    };
                    return Err(err(t.start, format!("unknown attribute `{}`; {hint}", snippet(w))));
                };
                self.comparison(attr)
            }
            Tok::End => Err(err(t.start, "the filter ends where a comparison, `not` or `(` was expected")),
            Tok::Close | Tok::Str(_) => {
                Err(err(t.start, format!("expected a comparison, `not` or `(` but found {}", self.describe(&t))))
            }
        }
    }

    fn comparison<A: Attribute>(&mut self, attr: A) -> Result<Filter<A>, FilterError> {
        let name = attr.name();
        let allowed = op_list(attr.ops());
        let t = self.next()?;
        let op = match &t.tok {
            Tok::Word(w) => match parse_op(w) {
                Some(op) if attr.ops().contains(&op) => op,
                Some(op) => {
                    return Err(err(
                        t.start,
                        format!("operator `{}` is not allowed for `{name}`; `{name}` allows {allowed}", op.as_str()),
                    ))
                }
                None => {
                    return Err(err(
                        t.start,
                        format!("unknown operator `{}` after `{name}`; `{name}` allows {allowed}", snippet(w)),
                    ))
                }
            },
            _ => {
                return Err(err(
                    t.start,
                    format!("missing operator after `{name}` (found {}); `{name}` allows {allowed}", self.describe(&t)),
                ))
            }
        };
        let v = self.next()?;
        let example = match attr.kind() {
            AttrKind::Text => "\"PENDING\"",
            AttrKind::Time => "\"2026-11-23T04:05:06Z\"",
        };
        let text = match &v.tok {
            Tok::Str(s) => s.clone(),
            Tok::Word(w) if !(v.is_keyword("and") || v.is_keyword("or") || v.is_keyword("not")) => {
                let hint = if w.starts_with('\'') { "in double quotes, not single quotes" } else { "in double quotes" };
                return Err(err(
                    v.start,
                    format!(
                        "unquoted value `{}`; put values {hint}, e.g. {name} {} {example}",
                        snippet(w),
                        op.as_str()
                    ),
                ));
            }
            _ => {
                return Err(err(
                    v.start,
                    format!(
                        "missing value after `{name} {}` (found {}); e.g. {name} {} {example}",
                        op.as_str(),
                        self.describe(&v),
                        op.as_str()
                    ),
                ))
            }
        };
        let value = match attr.kind() {
            AttrKind::Text => Value::Text(text),
            AttrKind::Time => match parse_time(&text) {
                Some(t) => Value::Time(t),
                None => {
                    let why = if NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f").is_ok() {
                        "has no time zone; add `Z` or an offset such as `+01:00`".to_string()
                    } else {
                        "is not a date".to_string()
                    };
                    return Err(err(
                        v.start,
                        format!(
                            "bad date: \"{}\" {why}; `{name}` takes a date-time such as \"2026-11-23T04:05:06Z\" or a date such as \"2026-11-23\"",
                            snippet(&text)
                        ),
                    ));
                }
            },
        };
        Ok(Filter::Cmp { attr, op, value })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::store::filter::{LogAttr, RequestAttr};

    type F = Filter<RequestAttr>;

    fn p(s: &str) -> F {
        match parse::<RequestAttr>(s) {
            Ok(f) => f,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    /// The position and message of the error `s` gives.
    fn e(s: &str) -> (usize, String) {
        match parse::<RequestAttr>(s) {
            Ok(f) => panic!("{s:?} should fail, got {f:?}"),
            Err(e) => (e.position, e.message),
        }
    }

    fn assert_err(s: &str, position: usize, needle: &str) {
        let (pos, msg) = e(s);
        assert_eq!(pos, position, "position for {s:?} ({msg})");
        assert!(msg.contains(needle), "message for {s:?} should mention {needle:?}: {msg}");
    }

    fn cmp(attr: RequestAttr, op: Op, v: &str) -> F {
        Filter::Cmp { attr, op, value: Value::Text(v.to_string()) }
    }

    fn st(v: &str) -> F {
        cmp(RequestAttr::Status, Op::Eq, v)
    }

    fn and(a: F, b: F) -> F {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: F, b: F) -> F {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: F) -> F {
        Filter::Not(Box::new(a))
    }

    fn time(attr: RequestAttr, op: Op, t: Timestamp) -> F {
        Filter::Cmp { attr, op, value: Value::Time(t) }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: i64) -> Timestamp {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + chrono::TimeDelta::milliseconds(ms)
    }

    #[test]
    fn every_text_operator_and_attribute() {
        assert_eq!(p(r#"status eq "PENDING""#), st("PENDING"));
        assert_eq!(p(r#"status ne "PENDING""#), cmp(RequestAttr::Status, Op::Ne, "PENDING"));
        assert_eq!(p(r#"grantStatus eq "GRANTED""#), cmp(RequestAttr::GrantStatus, Op::Eq, "GRANTED"));
        assert_eq!(p(r#"requestedFor eq "U0A""#), cmp(RequestAttr::RequestedFor, Op::Eq, "U0A"));
        assert_eq!(p(r#"requestedFor.externalId eq "00u1""#), cmp(RequestAttr::RequestedFor, Op::Eq, "00u1"));
        assert_eq!(p(r#"requestedBy.externalId ne "U0A""#), cmp(RequestAttr::RequestedBy, Op::Ne, "U0A"));
        assert_eq!(p(r#"requestedBy ne "U0B""#), cmp(RequestAttr::RequestedBy, Op::Ne, "U0B"));
        assert_eq!(p(r#"resourceId eq "zoom""#), cmp(RequestAttr::ResourceId, Op::Eq, "zoom"));
        assert_eq!(p(r#"resourceType eq "APPLICATION""#), cmp(RequestAttr::ResourceType, Op::Eq, "APPLICATION"));
    }

    #[test]
    fn every_time_operator() {
        let t = utc(2026, 11, 23, 4, 5, 6, 0);
        for (op, word) in [(Op::Gt, "gt"), (Op::Ge, "ge"), (Op::Lt, "lt"), (Op::Le, "le")] {
            assert_eq!(p(&format!(r#"created {word} "2026-11-23T04:05:06Z""#)), time(RequestAttr::Created, op, t));
            assert_eq!(
                p(&format!(r#"lastUpdated {word} "2026-11-23T04:05:06Z""#)),
                time(RequestAttr::LastUpdated, op, t)
            );
        }
    }

    #[test]
    fn log_attributes_with_dots() {
        let f = parse::<LogAttr>(r#"target.id eq "req1" and actor.id eq "U0A" or eventType eq "x""#).unwrap();
        let c = |attr, v: &str| Filter::Cmp { attr, op: Op::Eq, value: Value::Text(v.into()) };
        assert_eq!(
            f,
            Filter::Or(
                Box::new(Filter::And(Box::new(c(LogAttr::TargetId, "req1")), Box::new(c(LogAttr::ActorId, "U0A")))),
                Box::new(c(LogAttr::EventType, "x"))
            )
        );
        let err = parse::<LogAttr>(r#"target.id gt "x""#).unwrap_err();
        assert_eq!(err.position, 10);
        assert!(err.message.contains("allows eq, ne, sw, co"), "{}", err.message);
        let err = parse::<LogAttr>(r#"published co "2026""#).unwrap_err();
        assert!(err.message.contains("allows gt, ge, lt, le"), "{}", err.message);
        let err = parse::<LogAttr>(r#"status eq "x""#).unwrap_err();
        assert_eq!(err.position, 0);
        assert!(err.message.contains("eventType, severity, displayMessage, outcome.result"), "{}", err.message);
    }

    #[test]
    fn precedence_and_associativity() {
        let (a, b, c) = (st("A"), st("B"), st("C"));
        assert_eq!(p(r#"status eq "A" or status eq "B" and status eq "C""#), or(a.clone(), and(b.clone(), c.clone())));
        assert_eq!(p(r#"status eq "A" and status eq "B" or status eq "C""#), or(and(a.clone(), b.clone()), c.clone()));
        assert_eq!(p(r#"not status eq "A" and status eq "B""#), and(not(a.clone()), b.clone()));
        assert_eq!(p(r#"not status eq "A" or status eq "B""#), or(not(a.clone()), b.clone()));
        assert_eq!(
            p(r#"status eq "A" and status eq "B" and status eq "C""#),
            and(and(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(p(r#"status eq "A" or status eq "B" or status eq "C""#), or(or(a.clone(), b.clone()), c.clone()));
        assert_eq!(p(r#"not not status eq "A""#), not(not(a.clone())));
    }

    #[test]
    fn parentheses() {
        let (a, b, c) = (st("A"), st("B"), st("C"));
        assert_eq!(
            p(r#"(status eq "A" or status eq "B") and status eq "C""#),
            and(or(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            p(r#"status eq "A" and (status eq "B" and status eq "C")"#),
            and(a.clone(), and(b.clone(), c.clone()))
        );
        assert_eq!(p(r#"not (status eq "A" and status eq "B")"#), not(and(a.clone(), b.clone())));
        assert_eq!(p(r#"not(status eq "A")"#), not(a.clone()));
        assert_eq!(p(r#"(status eq "A")and(status eq "B")"#), and(a.clone(), b.clone()));
        assert_eq!(p(r#"(status eq "A")or(status eq "B")"#), or(a.clone(), b.clone()));
        assert_eq!(p(r#"((((status eq "A"))))"#), a.clone());
        assert_eq!(p("\t ( status \t eq   \"A\" )  "), a);
    }

    #[test]
    fn keywords_and_operators_are_case_insensitive() {
        assert_eq!(
            p(r#"NOT status EQ "A" AND status Eq "B" OR status eQ "C""#),
            or(and(not(st("A")), st("B")), st("C"))
        );
        assert_eq!(p(r#"Not(status NE "A")"#), not(cmp(RequestAttr::Status, Op::Ne, "A")));
        let t = utc(2026, 11, 23, 0, 0, 0, 0);
        assert_eq!(p(r#"created GE "2026-11-23""#), time(RequestAttr::Created, Op::Ge, t));
    }

    #[test]
    fn attributes_are_case_sensitive() {
        assert_err(r#"Status eq "A""#, 0, "did you mean `status`");
        assert_err(r#"status eq "A" and GRANTSTATUS eq "B""#, 18, "did you mean `grantStatus`");
        assert_err(r#"lastupdated gt "2026-11-23""#, 0, "case-sensitive");
    }

    #[test]
    fn dates() {
        let t = utc(2026, 11, 23, 4, 5, 6, 0);
        assert_eq!(p(r#"created gt "2026-11-23T04:05:06Z""#), time(RequestAttr::Created, Op::Gt, t));
        assert_eq!(p(r#"created gt "2026-11-23T04:05:06.000Z""#), time(RequestAttr::Created, Op::Gt, t));
        assert_eq!(
            p(r#"created gt "2026-11-23T04:05:06.123+01:00""#),
            time(RequestAttr::Created, Op::Gt, utc(2026, 11, 23, 3, 5, 6, 123))
        );
        assert_eq!(
            p(r#"created lt "2026-11-23T04:05:06-05:30""#),
            time(RequestAttr::Created, Op::Lt, utc(2026, 11, 23, 9, 35, 6, 0))
        );
        assert_eq!(
            p(r#"lastUpdated le "2026-11-23""#),
            time(RequestAttr::LastUpdated, Op::Le, utc(2026, 11, 23, 0, 0, 0, 0))
        );
        assert_eq!(
            p(r#"lastUpdated le "2024-02-29""#),
            time(RequestAttr::LastUpdated, Op::Le, utc(2024, 2, 29, 0, 0, 0, 0))
        );
        // A date-looking string on a text attribute is just text.
        assert_eq!(p(r#"status eq "2026-11-23""#), st("2026-11-23"));
    }

    #[test]
    fn escapes() {
        assert_eq!(p(r#"status eq "a\"b""#), st("a\"b"));
        assert_eq!(p(r#"status eq "a\\b""#), st("a\\b"));
        assert_eq!(p(r#"status eq "a\/b""#), st("a/b"));
        assert_eq!(p(r#"status eq "\b\f\n\r\t""#), st("\u{8}\u{c}\n\r\t"));
        assert_eq!(p(r#"status eq "\u0041\u00e9\u20AC""#), st("Aé€"));
        assert_eq!(p(r#"status eq "\uD83D\uDE00""#), st("😀"));
        assert_eq!(p(r#"status eq "é ünïcödé 😀""#), st("é ünïcödé 😀"));
        assert_eq!(p(r#"status eq """#), st(""));
        assert_eq!(p(r#"status eq "and or not ( ) eq""#), st("and or not ( ) eq"));
    }

    #[test]
    fn error_empty() {
        assert_err("", 0, "empty");
        assert_err("   \t ", 5, "empty");
    }

    #[test]
    fn error_unknown_attribute() {
        assert_err(r#"color eq "red""#, 0, "unknown attribute `color`; known attributes: status, grantStatus, requestedFor, requestedBy, resourceId, resourceType, created, lastUpdated");
        assert_err(r#"status eq "A" or  app eq "x""#, 18, "unknown attribute `app`");
        assert_err(r#"eq "x""#, 0, "missing attribute before `eq`");
        assert_err(r#"and status eq "A""#, 0, "expected a comparison before `and`");
        assert_err(r#""PENDING" eq status"#, 0, "expected a comparison");
    }

    #[test]
    fn error_operator() {
        assert_err(r#"status is "A""#, 7, "unknown operator `is` after `status`; `status` allows eq, ne");
        assert_err(r#"status co "A""#, 7, "operator `co` is not allowed for `status`; `status` allows eq, ne");
        assert_err(r#"status gt "A""#, 7, "operator `gt` is not allowed for `status`; `status` allows eq, ne");
        assert_err(r#"created eq "2026-11-23""#, 8, "`created` allows gt, ge, lt, le");
        assert_err(r#"status = "A""#, 7, "unknown operator `=`");
        assert_err("status", 6, "missing operator after `status`");
        assert_err(r#"status "A""#, 7, "missing operator");
    }

    #[test]
    fn error_value() {
        assert_err("status eq", 9, "missing value after `status eq`");
        assert_err("status eq   ", 12, "missing value");
        assert_err(r#"(status eq) and status eq "A""#, 10, "missing value");
        assert_err(r#"status eq and status eq "A""#, 10, "missing value");
        assert_err("status eq PENDING", 10, "unquoted value `PENDING`; put values in double quotes");
        assert_err("status eq 'PENDING'", 10, "not single quotes");
        assert_err("created gt 2026-11-23", 11, "unquoted value");
    }

    #[test]
    fn error_strings() {
        assert_err(r#"status eq "PENDING"#, 10, "unterminated string");
        assert_err(r#"status eq "PENDING\""#, 10, "unterminated string");
        assert_err(r#"status eq "abc\"#, 10, "unterminated string");
        assert_err(r#"status eq "a\xb""#, 12, "bad escape `\\x`");
        assert_err(r#"status eq "ab\u12G4""#, 13, "four hex digits");
        assert_err(r#"status eq "\u12""#, 11, "four hex digits");
        assert_err(r#"status eq "\uD83D""#, 11, "surrogate");
        assert_err(r#"status eq "\uD83Dx""#, 11, "surrogate");
        assert_err(r#"status eq "\uDE00""#, 11, "surrogate");
        assert_err(r#"status eq "a\u0000""#, 12, "NUL");
        assert_err("status eq \"a\0\"", 12, "NUL");
        // Positions count characters, not bytes.
        assert_err(r#"status eq "éé\q""#, 13, "bad escape");
    }

    #[test]
    fn error_dates() {
        assert_err(r#"created gt "yesterday""#, 11, "bad date: \"yesterday\" is not a date");
        assert_err(r#"created gt "2026-13-01""#, 11, "bad date");
        assert_err(r#"created gt "2026-02-30""#, 11, "bad date");
        assert_err(r#"created gt "2026-11-23T25:00:00Z""#, 11, "bad date");
        assert_err(r#"created gt "2026-11-23T04:05:06""#, 11, "no time zone");
        assert_err(r#"lastUpdated lt """#, 15, "bad date");
        assert_err(r#"status eq "A" and created gt "1/2/2026""#, 29, "bad date");
    }

    #[test]
    fn error_parentheses() {
        assert_err(r#"(status eq "A""#, 0, "unbalanced parentheses: this `(` is never closed");
        assert_err(r#"status eq "A" and ((status eq "B")"#, 18, "never closed");
        assert_err(r#"status eq "A")"#, 13, "unbalanced parentheses: this `)` has no matching `(`");
        assert_err(r#"(status eq "A"))"#, 15, "no matching `(`");
        assert_err("()", 0, "empty parentheses");
        assert_err(r#"(status eq "A" "B")"#, 15, "expected `and`, `or` or `)`");
        assert_err(r#"status eq "A" and )"#, 18, "expected a comparison, `not` or `(` but found `)`");
    }

    #[test]
    fn error_trailing_input() {
        assert_err(r#"status eq "A" status eq "B""#, 14, "unexpected `status` after a complete expression");
        assert_err(r#"status eq "A" "B""#, 14, "unexpected the string \"B\"");
        assert_err(r#"status eq "A" and"#, 17, "the filter ends where a comparison");
        assert_err(r#"status eq "A" or not"#, 20, "the filter ends");
        assert_err(r#"status eq "A" not status eq "B""#, 14, "unexpected `not`");
    }

    #[test]
    fn error_too_long() {
        let pad = " ".repeat(MAX_LEN - 14);
        let ok = format!(r#"status eq "A"{pad}"#);
        assert_eq!(ok.chars().count(), MAX_LEN - 1);
        assert_eq!(p(&ok), st("A"));
        let exactly = format!("{ok} ");
        assert_eq!(p(&exactly), st("A"));
        let long = format!("{exactly} ");
        assert_err(&long, MAX_LEN, "longer than 4096 characters");
        // Characters, not bytes: 4096 × `é` is fine in a string value.
        let wide = format!("status eq \"{}\"", "é".repeat(MAX_LEN - 12));
        assert_eq!(wide.chars().count(), MAX_LEN);
        assert!(parse::<RequestAttr>(&wide).is_ok());
    }

    #[test]
    fn error_too_deep() {
        let nested = |n: usize| format!("{}status eq \"A\"{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(p(&nested(MAX_DEPTH)), st("A"));
        assert_err(&nested(MAX_DEPTH + 1), MAX_DEPTH, "deeper than 64");
        let nots = |n: usize| format!("{}status eq \"A\"", "not ".repeat(n));
        assert!(parse::<RequestAttr>(&nots(MAX_DEPTH)).is_ok());
        assert_err(&nots(MAX_DEPTH + 1), 4 * MAX_DEPTH, "deeper than 64");
        // `not(` is two levels: the 33rd `not` is the 65th.
        assert_err(&format!("{}{}", "not(".repeat(40), "(".repeat(40)), 128, "deeper than 64");
        // A long flat chain is not nesting.
        let chain = vec![r#"status eq "A""#; 200].join(" or ");
        assert!(parse::<RequestAttr>(&chain).is_ok());
    }

    #[test]
    fn display() {
        let err = parse::<RequestAttr>("status eq").unwrap_err();
        assert_eq!(err.to_string(), format!("at position 9: {}", err.message));
    }

    #[test]
    fn never_panics_on_odd_input() {
        let samples = [
            "\"",
            "\\",
            "(",
            ")",
            "((",
            "))",
            "not",
            "not(",
            "and",
            "or",
            "\"\\u",
            "\"\\uD83D\\u",
            "status eq \"\\",
            "status eq \"\\u00\"",
            "created gt \"\"",
            "é",
            "😀 eq \"x\"",
            "status\u{0}eq \"x\"",
            "status eq \"x\"\u{0}",
            "created gt \"+262143-12-31\"",
            "created gt \"9999-12-31T23:59:60Z\"",
            "created gt \"0000-01-01\"",
        ];
        for s in samples {
            let _ = parse::<RequestAttr>(s);
            let _ = parse::<LogAttr>(s);
        }
        // Every prefix of a valid filter, cut at any character boundary.
        let full =
            r#"not (status eq "A\u00e9\"" or created ge "2026-11-23T04:05:06.123+01:00") and grantStatus ne "é""#;
        for (i, _) in full.char_indices() {
            let _ = parse::<RequestAttr>(&full[..i]);
            let _ = parse::<RequestAttr>(&full[i..]);
        }
        assert!(parse::<RequestAttr>(full).is_ok());
    }
}
