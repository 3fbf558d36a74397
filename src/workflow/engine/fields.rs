//! Request fields: answers checked against the app's questions.

use super::*;
use crate::workflow::catalog::{short_duration, FieldDef, FieldKind};

/// Checks answers against the app's fields, all at once (a form shows every
/// problem next to its input); a `justification` answer is the justification.
pub(super) fn validate_fields(
    app: &App,
    given: Vec<(String, String)>,
    justification: &mut String,
    now: Timestamp,
) -> Result<Vec<FieldValue>, WorkflowError> {
    let mut out: Vec<FieldValue> = Vec::new();
    let mut problems: Vec<(String, String)> = Vec::new();
    for (id, value) in given {
        // Every request may carry a justification, whether or not the app asks for it as a field.
        if id == "justification" && !app.fields.iter().any(|f| f.id == id) {
            *justification = clean(Some(value)).unwrap_or_default();
            continue;
        }
        if id == DURATION && !app.fields.iter().any(|f| f.id == id) {
            match chosen_duration(app, &value) {
                Ok(Some(v)) if !out.iter().any(|f| f.id == DURATION) => out.push(v),
                Ok(_) => {}
                Err(problem) => problems.push((id, problem)),
            }
            continue;
        }
        let Some(def) = app.fields.iter().find(|f| f.id == id) else {
            let known: Vec<&str> = app.fields.iter().map(|f| f.id.as_str()).collect();
            let known = if known.is_empty() { "none".into() } else { known.join(", ") };
            problems.push((id.clone(), format!("{} has no field \"{id}\" (fields: {known})", app.name)));
            continue;
        };
        if out.iter().any(|f| f.id == id) {
            problems.push((id.clone(), format!("field \"{id}\" is given twice")));
            continue;
        }
        let value = clean(Some(value)).unwrap_or_default();
        if value.is_empty() {
            continue;
        }
        let given = value.chars().count();
        if given > MAX_TEXT {
            return Err(WorkflowError::TooLong { field: id, max: MAX_TEXT, given });
        }
        if let Some(problem) = check_answer(def, &value, now) {
            problems.push((id, problem));
            continue;
        }
        if id == "justification" && def.kind == FieldKind::Text {
            *justification = value.clone();
        }
        out.push(FieldValue { id: def.id.clone(), label: def.label.clone(), kind: def.kind, value });
    }
    if !justification.is_empty() && !out.iter().any(|f| f.id == "justification") {
        if let Some(def) = app.fields.iter().find(|f| f.id == "justification") {
            out.push(FieldValue {
                id: def.id.clone(),
                label: def.label.clone(),
                kind: def.kind,
                value: justification.clone(),
            });
        }
    }
    for def in app.fields.iter().filter(|f| f.required) {
        if !out.iter().any(|f| f.id == def.id) && !problems.iter().any(|(id, _)| *id == def.id) {
            problems.push((def.id.clone(), format!("{} is required", def.label)));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(WorkflowError::InvalidFields(problems))
    }
}

/// The answer that chooses how long access lasts, among the app's `durations`.
pub const DURATION: &str = "duration";

/// A chosen duration as stored (`8h`), or why it is not one of the app's.
fn chosen_duration(app: &App, value: &str) -> Result<Option<FieldValue>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let offered: Vec<String> = app.durations.iter().map(|d| short_duration(*d)).collect();
    if offered.is_empty() {
        return Err(format!("{} offers no choice of duration", app.name));
    }
    match humantime::parse_duration(value) {
        Ok(d) if app.durations.contains(&d) => Ok(Some(FieldValue {
            id: DURATION.into(),
            label: "Duration".into(),
            kind: FieldKind::Select,
            value: short_duration(d),
        })),
        _ => Err(format!("Duration must be one of: {}", offered.join(", "))),
    }
}

/// What is wrong with one answer, if anything.
fn check_answer(def: &FieldDef, value: &str, now: Timestamp) -> Option<String> {
    match def.kind {
        FieldKind::Select if !def.options.iter().any(|o| o == value) => {
            Some(format!("{} must be one of: {}", def.label, def.options.join(", ")))
        }
        FieldKind::Date => match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            Err(_) => Some(format!("{} must be a date like 2026-12-31", def.label)),
            Ok(date) if date < now.date_naive() => Some(format!("{} is in the past", def.label)),
            Ok(_) => None,
        },
        _ => None,
    }
}

/// When access granted now ends: `max_duration` after now, or the end of the
/// `end_date` field's day (UTC), whichever is earlier; with its ISO 8601 duration.
pub(super) fn access_window(
    app: Option<&App>,
    values: &[FieldValue],
    now: Timestamp,
) -> (Option<Timestamp>, Option<String>) {
    // A duration past the end of time (a config typo) caps nothing, rather than overflowing.
    let chosen = values.iter().find(|f| f.id == DURATION).and_then(|f| humantime::parse_duration(&f.value).ok());
    let longest = app.and_then(|a| a.max_duration);
    let by_duration = match (chosen, longest) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    }
    .and_then(|d| chrono::Duration::from_std(d).ok())
    .and_then(|d| now.checked_add_signed(d));
    let by_field = values
        .iter()
        .find(|f| f.id == "end_date" && f.kind == FieldKind::Date)
        .and_then(|f| chrono::NaiveDate::parse_from_str(&f.value, "%Y-%m-%d").ok())
        .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 999))
        .map(|t| t.and_utc());
    let until = match (by_duration, by_field) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let duration = until.map(|u| iso_duration(u - now));
    (until, duration)
}

/// `P30D`, `PT36H`, `PT90M`…
pub fn iso_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    if secs % 86_400 == 0 {
        format!("P{}D", secs / 86_400)
    } else if secs % 3600 == 0 {
        format!("PT{}H", secs / 3600)
    } else if secs % 60 == 0 {
        format!("PT{}M", secs / 60)
    } else {
        format!("PT{secs}S")
    }
}
