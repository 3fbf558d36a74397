//! The shape the design fixes: the workflow core imports no adapter, no HTTP
//! and no SQL, and builds no chat markup. Fails on the line that breaks it.

use std::path::{Path, PathBuf};

const FORBIDDEN_CRATES: [&str; 7] = ["axum", "sqlx", "reqwest", "hyper", "hyper_util", "tower", "tower_http"];
const FORBIDDEN_MODULES: [&str; 9] =
    ["store", "slack", "api", "config", "server", "outbox", "webhook", "http", "metrics"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn core_files() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/workflow"), &mut files);
    assert!(files.len() > 5, "src/workflow not found");
    files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap_or_default())).collect()
}

/// The line without its `//` comment (a `//` inside a string literal is kept).
fn code_of(line: &str) -> &str {
    let mut in_str = false;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// The contents of the string literals on a line.
fn literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        match (&mut cur, c) {
            (Some(s), '\\') => {
                if let Some(n) = chars.next() {
                    s.push('\\');
                    s.push(n);
                }
            }
            (Some(_), '"') => out.extend(cur.take()),
            (Some(s), c) => s.push(c),
            (None, '"') => cur = Some(String::new()),
            (None, _) => {}
        }
    }
    out
}

fn names_forbidden(code: &str) -> Option<String> {
    let words: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).collect();
    for w in words {
        let path: Vec<&str> = w.split("::").collect();
        if path.len() > 1 && FORBIDDEN_CRATES.contains(&path[0]) {
            return Some(w.to_string());
        }
        if path.len() > 1 && path[0] == "crate" && FORBIDDEN_MODULES.contains(&path[1]) {
            return Some(w.to_string());
        }
    }
    None
}

/// Slack mrkdwn: mentions and links, emoji shortcodes, emphasis, code.
fn markup_in(lit: &str) -> Option<&'static str> {
    if lit.contains("<@") || lit.contains("<!") || lit.contains("<#") || lit.contains("<http") {
        return Some("a mention or link");
    }
    if lit.contains('`') {
        return Some("code formatting");
    }
    let shortcode = lit.split(':').skip(1).collect::<Vec<_>>();
    if shortcode.len() > 1 {
        let inner = &shortcode[..shortcode.len() - 1];
        if inner.iter().any(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '+')) {
            return Some("an emoji shortcode");
        }
    }
    let stars: Vec<usize> = lit.match_indices('*').map(|(i, _)| i).collect();
    if stars.len() >= 2 && lit[stars[0] + 1..].chars().next().is_some_and(|c| !c.is_whitespace()) {
        return Some("emphasis");
    }
    None
}

#[test]
fn the_core_names_no_adapter_http_or_sql() {
    let mut found = Vec::new();
    for (path, text) in core_files() {
        for (n, line) in text.lines().enumerate() {
            if let Some(w) = names_forbidden(code_of(line)) {
                found.push(format!("{}:{}: names `{w}`", path.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "the workflow core must not depend on edges:\n{}", found.join("\n"));
}

#[test]
fn the_core_builds_no_chat_markup() {
    let mut found = Vec::new();
    for (path, text) in core_files() {
        for (n, line) in text.lines().enumerate() {
            for lit in literals(code_of(line)) {
                if let Some(what) = markup_in(&lit) {
                    found.push(format!("{}:{}: {what} in \"{lit}\"", path.display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "chat markup belongs in the chat adapter:\n{}", found.join("\n"));
}

#[test]
fn the_checks_can_fail() {
    assert_eq!(names_forbidden("use crate::store::Store;").as_deref(), Some("crate::store::Store"));
    assert_eq!(names_forbidden("fn f() -> axum::Json<()>").as_deref(), Some("axum::Json"));
    assert_eq!(names_forbidden(code_of("use super::ports::Store; // crate::store implements it")), None);
    assert_eq!(names_forbidden(code_of("let x = 1; // crate::slack")), None);
    assert_eq!(markup_in("by <@{}>"), Some("a mention or link"));
    assert_eq!(markup_in(":tada: Approved"), Some("an emoji shortcode"));
    assert_eq!(markup_in("*App*\n{}"), Some("emphasis"));
    assert_eq!(markup_in("`{id}` is not a request id"), Some("code formatting"));
    assert_eq!(markup_in("step {}: {} of {}"), None);
    assert_eq!(markup_in("a * b * c"), None);
    assert_eq!(literals(r#"format!("a \"b\" {}", "c")"#), vec![r#"a \"b\" {}"#.to_string(), "c".to_string()]);
}
