//! Block Kit rendering. Every message has fallback `text`; section text stays
//! under Slack's 3000 characters and button labels under 75.

use serde_json::{json, Value};

use crate::workflow::model::{
    AskKind, AssignmentSource, CloseKind, Request, RequestView, RequesterEvent, Routing, Status, Step, StepState,
};

pub const SECTION_MAX: usize = 3000;
pub const HEADER_MAX: usize = 150;

/// Cuts `s` to at most `max` characters, marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes the three characters Slack treats as control characters in mrkdwn.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}})
}

fn header(text: &str) -> Value {
    json!({"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_MAX), "emoji": true}})
}

fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_MAX)}]})
}

fn button(text: &str, action_id: &str, value: &str, style: Option<&str>) -> Value {
    let mut b = json!({"type": "button", "text": {"type": "plain_text", "text": clip(text, 75)}, "action_id": action_id, "value": value});
    if let Some(s) = style {
        b["style"] = json!(s);
    }
    b
}

/// A mention for a Slack user id; anything else (an email, an API token's id) as plain text.
pub fn who(id_or_email: &str) -> String {
    let slack_id = id_or_email.len() >= 3
        && (id_or_email.starts_with('U') || id_or_email.starts_with('W'))
        && id_or_email.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if slack_id {
        format!("<@{id_or_email}>")
    } else {
        esc(id_or_email)
    }
}

fn details(r: &RequestView, step: usize) -> Vec<Value> {
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*App*\n{}", esc(&clip(&r.app_name, 200)))}),
        json!({"type": "mrkdwn", "text": format!("*Requester*\n{}", who(&r.requested_by))}),
    ];
    if r.requested_for != r.requested_by {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Requested for*\n{}", who(&r.requested_for))}));
    }
    fields.push(json!({"type": "mrkdwn", "text": format!("*Step*\n{} of {}", step + 1, r.step_count)}));
    fields.push(json!({"type": "mrkdwn", "text": format!("*Request*\n`{}`", r.id)}));
    let mut blocks = vec![json!({"type": "section", "fields": fields})];
    let just = if r.justification.is_empty() { "_none given_".to_string() } else { esc(&r.justification) };
    blocks.push(section(&format!("*Justification*\n{just}")));
    blocks
}

pub fn action_value(request_id: &str, step: usize) -> String {
    format!("{request_id}:{step}")
}

/// The DM asking an approver to decide.
pub fn ask(r: &RequestView, step: usize, label: &str, routed: Option<Routing>, kind: AskKind) -> (String, Vec<Value>) {
    let prefix = match kind {
        AskKind::New => "",
        AskKind::Resend => "Resent: ",
        AskKind::Reminder => "Reminder: ",
    };
    let text = format!(
        "{prefix}{} requests {} ({}, step {} of {})",
        r.requested_for,
        r.app_name,
        r.id,
        step + 1,
        r.step_count
    );
    let mut blocks = vec![header(&format!("{prefix}Access request: {}", r.app_name))];
    blocks.extend(details(r, step));
    let why = match routed {
        Some(Routing::AppAdmins) => format!(
            "You are asked as an admin of {} because the requester is this step's only approver.",
            esc(&r.app_name)
        ),
        Some(Routing::SuperAdmins) => {
            "You are asked as a super admin because the requester is this step's only approver.".to_string()
        }
        None => format!("Approver: {}", esc(label)),
    };
    blocks.push(context(&why));
    let v = action_value(&r.id, step);
    blocks.push(json!({"type": "actions", "block_id": format!("decide:{v}"), "elements": [
        button("Approve", "approve", &v, Some("primary")),
        button("Deny", "deny", &v, Some("danger")),
        button("Approve with comment", "approve_comment", &v, None),
        button("Deny with comment", "deny_comment", &v, None),
    ]}));
    (text, blocks)
}

/// The same message in its final state: no buttons, who decided.
pub fn closed(r: &RequestView, step: usize, outcome: CloseKind, by: Option<&str>) -> (String, Vec<Value>) {
    let by = by.map(who).unwrap_or_else(|| "accessbot".into());
    let line = match outcome {
        CloseKind::Approved => format!(":white_check_mark: Approved by {by}"),
        CloseKind::Denied => format!(":x: Denied by {by}"),
        CloseKind::Canceled => format!(":no_entry_sign: Canceled by {by}"),
        CloseKind::Overridden => format!(":fast_forward: Assigned by {by} (admin override); remaining steps deleted"),
        CloseKind::Expired => ":hourglass: Expired before a decision".to_string(),
    };
    let text = format!("{} for {} ({}): {}", r.app_name, r.requested_for, r.id, strip_emoji(&line));
    let mut blocks = vec![header(&format!("Access request: {}", r.app_name))];
    blocks.extend(details(r, step));
    blocks.push(section(&line));
    (text, blocks)
}

fn strip_emoji(s: &str) -> String {
    match s.strip_prefix(':').and_then(|rest| rest.split_once(": ")) {
        Some((_, tail)) => tail.to_string(),
        None => s.to_string(),
    }
}

/// A DM to the requester (or to a user granted or revoked directly).
pub fn requester(r: Option<&RequestView>, app_name: &str, event: &RequesterEvent) -> (String, Vec<Value>) {
    let id = r.map(|r| format!(" (`{}`)", r.id)).unwrap_or_default();
    let app = esc(app_name);
    let line = match event {
        RequesterEvent::Submitted { first_step } => {
            format!(":inbox_tray: Your request for *{app}*{id} was submitted. Waiting for {}.", esc(first_step))
        }
        RequesterEvent::StepApproved { step, by, next_step } => {
            let n = r.map(|r| r.step_count).unwrap_or(0);
            format!(
                ":white_check_mark: Step {} of {n} of your request for *{app}*{id} was approved by {}. Next: {}.",
                step + 1,
                who(by),
                esc(next_step)
            )
        }
        RequesterEvent::Approved { source: AssignmentSource::Direct, by } => {
            format!(":tada: You were given access to *{app}* by {}.", by.as_deref().map(who).unwrap_or_default())
        }
        RequesterEvent::Approved { source: AssignmentSource::Override, by } => {
            format!(
                ":tada: Your request for *{app}*{id} was approved by {} and access is granted.",
                by.as_deref().map(who).unwrap_or_default()
            )
        }
        RequesterEvent::Approved { .. } => {
            format!(":tada: Your request for *{app}*{id} was approved and access is granted.")
        }
        RequesterEvent::Denied { by } => format!(":x: Your request for *{app}*{id} was denied by {}.", who(by)),
        RequesterEvent::Canceled { by, reason } => {
            let why = reason.as_deref().map(|r| format!(" Reason: {}", esc(r))).unwrap_or_default();
            format!(":no_entry_sign: Your request for *{app}*{id} was canceled by {}.{why}", who(by))
        }
        RequesterEvent::Rejected { reason } => {
            format!(":warning: Your request for *{app}*{id} could not start: {}", esc(reason))
        }
        RequesterEvent::Revoked { by } => format!(":lock: Your access to *{app}* was removed by {}.", who(by)),
        RequesterEvent::Message { from, text } => {
            format!(
                ":speech_balloon: Message about your request for *{app}*{id} from {}:\n>{}",
                who(from),
                esc(&clip(text, 2500)).replace('\n', "\n>")
            )
        }
    };
    let text = strip_emoji(&line).replace(['*', '`'], "");
    (text, vec![section(&line)])
}

/// The modal asking for a decision comment.
pub fn comment_modal(request_id: &str, step: usize, approve: bool, app_name: &str) -> Value {
    let verb = if approve { "Approve" } else { "Deny" };
    json!({
        "type": "modal",
        "callback_id": "decision_comment",
        "private_metadata": format!("{request_id}:{step}:{}", if approve { "approve" } else { "deny" }),
        "title": {"type": "plain_text", "text": format!("{verb} with comment")},
        "submit": {"type": "plain_text", "text": verb},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(&format!("{verb} step {} of `{request_id}` ({}).\nThe comment goes to the audit log, not to the requester.", step + 1, esc(&clip(app_name, 200)))),
            {"type": "input", "block_id": "comment", "label": {"type": "plain_text", "text": "Comment"},
             "element": {"type": "plain_text_input", "action_id": "comment", "multiline": true, "max_length": 2000}}
        ]
    })
}

pub fn step_state(s: &Step) -> &'static str {
    match s.state {
        StepState::Waiting => "waiting",
        StepState::Pending => "pending",
        StepState::Approved => "approved",
        StepState::Denied => "denied",
        StepState::Closed => "closed",
        StepState::Deleted => "deleted by override",
    }
}

/// One line about a request: id, app, status and where it waits.
pub fn summary(r: &Request) -> String {
    let mut line =
        format!("`{}` *{}* for {} — {}", r.id, esc(&r.app_name), who(&r.requested_for.id), r.status.as_str());
    if r.status == Status::Pending {
        if let (Some(i), Some(s)) = (r.current_step, r.current()) {
            line.push_str(&format!(", step {} of {}: {}", i + 1, r.steps.len(), esc(&s.label())));
        }
    }
    line
}

/// An ephemeral reply to a slash command.
pub fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": clip(text, 3000), "blocks": [section(text)]})
}

/// An ephemeral reply made of several sections (long lists).
pub fn ephemeral_list(title: &str, lines: &[String]) -> Value {
    let mut blocks = vec![section(title)];
    let mut chunk = String::new();
    for l in lines {
        if chunk.chars().count() + l.chars().count() + 1 > SECTION_MAX - 10 {
            blocks.push(section(&chunk));
            chunk.clear();
        }
        if !chunk.is_empty() {
            chunk.push('\n');
        }
        chunk.push_str(l);
    }
    if !chunk.is_empty() {
        blocks.push(section(&chunk));
    }
    blocks.truncate(50);
    json!({"response_type": "ephemeral", "text": clip(title, 3000), "blocks": blocks})
}
