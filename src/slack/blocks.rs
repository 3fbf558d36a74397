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

/// A quoted block of user text: escaped, clipped, every line quoted.
pub fn quote(text: &str, max: usize) -> String {
    format!(">{}", esc(&clip(text, max)).replace('\n', "\n>"))
}

/// Escapes the three characters Slack treats as control characters in mrkdwn.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}})
}

pub fn header(text: &str) -> Value {
    json!({"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_MAX), "emoji": true}})
}

pub fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_MAX)}]})
}

pub fn button(text: &str, action_id: &str, value: &str, style: Option<&str>) -> Value {
    let mut b = json!({"type": "button", "text": {"type": "plain_text", "text": clip(text, 75)}, "action_id": action_id, "value": value});
    if let Some(s) = style {
        b["style"] = json!(s);
    }
    b
}

/// A mention for a Slack user id; anything else (an email, an API token's id) as plain text.
pub fn who(id_or_email: &str) -> String {
    // Slack ids always carry a digit, so an upper-case group name is not taken for one.
    let slack_id = id_or_email.len() >= 3
        && (id_or_email.starts_with('U') || id_or_email.starts_with('W'))
        && id_or_email.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && id_or_email.chars().any(|c| c.is_ascii_digit());
    if slack_id {
        format!("<@{id_or_email}>")
    } else {
        esc(id_or_email)
    }
}

pub fn details(r: &RequestView, step: usize) -> Vec<Value> {
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*App*\n{}", esc(&clip(&r.app_name, 200)))}),
        json!({"type": "mrkdwn", "text": format!("*Requester*\n{}", who(&r.requested_by))}),
    ];
    if r.requested_for != r.requested_by {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Requested for*\n{}", who(&r.requested_for))}));
    }
    fields.push(json!({"type": "mrkdwn", "text": format!("*Step*\n{} of {}", step + 1, r.step_count)}));
    if let Some(ends) = r.extends {
        let text = format!("*Extension* of current access\nnow ending {}", ends.format("%Y-%m-%d %H:%M UTC"));
        fields.push(json!({"type": "mrkdwn", "text": text}));
    }
    fields.push(json!({"type": "mrkdwn", "text": format!("*Request*\n`{}`", r.id)}));
    let mut blocks = vec![json!({"type": "section", "fields": fields})];
    let just = if r.justification.is_empty() { "_none given_".to_string() } else { esc(&r.justification) };
    blocks.push(section(&format!("*Justification*\n{just}")));
    if !r.fields.is_empty() {
        let lines: Vec<String> =
            r.fields.iter().map(|(label, value)| format!("*{}*: {}", esc(label), esc(value))).collect();
        blocks.push(section(&lines.join("\n")));
    }
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
        AskKind::Escalated => "Escalated to you: ",
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
        None => format!("Approver: {}", who(label)),
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

/// An approver's message, as sent to the delegate of `principal`: it says whom they decide for.
pub fn for_delegate(principal: &str, text: &mut String, blocks: &mut Vec<Value>) {
    text.insert_str(0, &format!("For {principal}: "));
    let line = format!(
        ":busts_in_silhouette: You are asked for {}, who delegated their approvals to you; your decision counts as theirs.",
        who(principal)
    );
    let before_buttons = blocks.len().saturating_sub(1);
    blocks.insert(before_buttons, context(&line));
}

/// An approver's message while its step collects the approvals it needs: the
/// buttons stay, with who approved so far.
pub fn progress(
    r: &RequestView,
    step: usize,
    label: &str,
    routed: Option<Routing>,
    approved: &[String],
    required: u32,
) -> (String, Vec<Value>) {
    let (text, mut blocks) = ask(r, step, label, routed, AskKind::New);
    let names: Vec<String> = approved.iter().map(|a| who(a)).collect();
    let line = format!(":ballot_box_with_check: {} of {required} approvals: {}", approved.len(), names.join(", "));
    let before_buttons = blocks.len().saturating_sub(1);
    blocks.insert(before_buttons, context(&line));
    (text, blocks)
}

/// The DM assigning a manual task (a `task` step): the work to do and a single
/// "Mark done" button.
pub fn task(r: &RequestView, step: usize, label: &str, routed: Option<Routing>, kind: AskKind) -> (String, Vec<Value>) {
    let prefix = match kind {
        AskKind::New => "",
        AskKind::Resend => "Resent: ",
        AskKind::Reminder => "Reminder: ",
        AskKind::Escalated => "Escalated to you: ",
    };
    let text = format!(
        "{prefix}Manual task: give {} access to {} ({}, step {} of {}), then mark it done",
        r.requested_for,
        r.app_name,
        r.id,
        step + 1,
        r.step_count
    );
    let mut blocks = vec![header(&format!("{prefix}Task: set up {}", r.app_name))];
    blocks.extend(details(r, step));
    blocks.push(section(&format!(
        ":hammer_and_wrench: A manual step is needed before {} can use *{}*. Do the work (for example, create the \
         account or add the licence), then press *Mark done* so the request can continue.",
        who(&r.requested_for),
        esc(&clip(&r.app_name, 200))
    )));
    let why = match routed {
        Some(Routing::AppAdmins) => format!(
            "You are assigned as an admin of {} because the requester is this task's only assignee.",
            esc(&r.app_name)
        ),
        Some(Routing::SuperAdmins) => {
            "You are assigned as a super admin because the requester is this task's only assignee.".to_string()
        }
        None => format!("Assigned to: {}", who(label)),
    };
    blocks.push(context(&why));
    let v = action_value(&r.id, step);
    blocks.push(json!({"type": "actions", "block_id": format!("task:{v}"), "elements": [
        button("Mark done", "task_done", &v, Some("primary")),
    ]}));
    (text, blocks)
}

/// A direct message from accessbot (suggestions for the technical contact,
/// flagged requests for admins, …): the mrkdwn text in sections, a plain fallback.
pub fn direct(text: &str) -> (String, Vec<Value>) {
    let mut blocks = Vec::new();
    let mut chunk = String::new();
    for line in text.split('\n') {
        if !chunk.is_empty() && chunk.chars().count() + line.chars().count() + 1 > SECTION_MAX - 10 {
            blocks.push(section(&chunk));
            chunk.clear();
        }
        if !chunk.is_empty() {
            chunk.push('\n');
        }
        chunk.push_str(line);
    }
    if !chunk.trim().is_empty() {
        blocks.push(section(&chunk));
    }
    blocks.truncate(45);
    blocks.push(context("Sent by accessbot · `/access help` lists what I can do"));
    let mut fallback = clip(&strip_emoji(text).replace(['*', '`'], "").replace("\n>", "\n"), 3000);
    // Text made only of markup (or nothing) still needs a notification line.
    if fallback.trim().is_empty() {
        fallback = "A message from accessbot".to_string();
    }
    (fallback, blocks)
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
        CloseKind::Withdrawn => {
            ":leftwards_arrow_with_hook: No longer yours to decide: the delegation ended".to_string()
        }
    };
    let text = format!("{} for {} ({}): {}", r.app_name, r.requested_for, r.id, strip_emoji(&line));
    let mut blocks = vec![header(&format!("Access request: {}", r.app_name))];
    blocks.extend(details(r, step));
    blocks.push(section(&line));
    (text, blocks)
}

/// A task's message in its final state: who marked it done (or why it closed), no button.
pub fn closed_task(r: &RequestView, step: usize, outcome: CloseKind, by: Option<&str>) -> (String, Vec<Value>) {
    let (mut text, mut blocks) = closed(r, step, outcome, by);
    blocks[0] = header(&format!("Task: set up {}", r.app_name));
    if outcome == CloseKind::Approved {
        let by = by.map(who).unwrap_or_else(|| "accessbot".into());
        let line = format!(":ballot_box_with_check: Marked done by {by}");
        text = format!("Task for {} ({}, {}): {}", r.app_name, r.requested_for, r.id, strip_emoji(&line));
        if let Some(last) = blocks.last_mut() {
            *last = section(&line);
        }
    }
    (text, blocks)
}

fn strip_emoji(s: &str) -> String {
    match s.strip_prefix(':').and_then(|rest| rest.split_once(": ")) {
        Some((_, tail)) => tail.to_string(),
        None => s.to_string(),
    }
}

/// The action id of the "I'm done" button (the value is the app id).
pub const GIVE_BACK: &str = "give_back";
/// The action id of the "Extend" button on access-ending warnings (the value is the app id).
pub const EXTEND: &str = "extend";

/// A DM to the requester (or to a user granted or revoked directly); a grant
/// and an access-ending warning carry an "I'm done" button.
pub fn requester(
    r: Option<&RequestView>,
    app_id: &str,
    app_name: &str,
    event: &RequesterEvent,
) -> (String, Vec<Value>) {
    let (text, mut blocks) = requester_text(r, app_name, event);
    let holds_access = matches!(event, RequesterEvent::Approved { .. } | RequesterEvent::AccessEnding { .. });
    if holds_access && !app_id.is_empty() {
        let mut buttons = vec![button("I'm done", GIVE_BACK, app_id, None)];
        if matches!(event, RequesterEvent::AccessEnding { .. }) {
            buttons.push(button("Extend", EXTEND, app_id, Some("primary")));
        }
        blocks.push(json!({"type": "actions", "block_id": format!("give_back:{app_id}"), "elements": buttons}));
    }
    (text, blocks)
}

fn requester_text(r: Option<&RequestView>, app_name: &str, event: &RequesterEvent) -> (String, Vec<Value>) {
    let id = r.map(|r| format!(" (`{}`)", r.id)).unwrap_or_default();
    let app = esc(app_name);
    let line = match event {
        RequesterEvent::Submitted { first_step } => {
            format!(":inbox_tray: Your request for *{app}*{id} was submitted. Waiting for {}.", who(first_step))
        }
        RequesterEvent::StepApproved { step, by, next_step } => {
            let n = r.map(|r| r.step_count).unwrap_or(0);
            format!(
                ":white_check_mark: Step {} of {n} of your request for *{app}*{id} was approved by {}. Next: {}.",
                step + 1,
                who(by),
                who(next_step)
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
        RequesterEvent::Expired => {
            format!(":hourglass: Your request for *{app}*{id} expired before it was decided. You can request it again.")
        }
        RequesterEvent::AccessEnding { ends } => {
            format!(":alarm_clock: Your access to *{app}* ends on {} UTC.", ends.format("%Y-%m-%d %H:%M"))
        }
        RequesterEvent::AccessEnded => format!(":lock: Your time-bound access to *{app}* has ended and was removed."),
        RequesterEvent::GivenBack => format!(":wave: You gave back your access to *{app}*. Thanks for tidying up."),
        RequesterEvent::Message { from, text } => {
            format!(
                ":speech_balloon: Message about your request for *{app}*{id} from {}:\n{}",
                who(from),
                quote(text, 2500)
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
            line.push_str(&format!(", step {} of {}: {}", i + 1, r.steps.len(), who(&s.label())));
        }
    }
    if let Some(why) = &r.flagged {
        line.push_str(&format!(" :warning: flagged: {}", esc(why)));
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::workflow::model::Status;

    fn view() -> RequestView {
        RequestView {
            id: "req42kjDgk1EubTwo0g4".into(),
            app_id: "laptop".into(),
            app_name: "Laptop".into(),
            requested_by: "U0REQ".into(),
            requested_for: "U0REQ".into(),
            justification: "new hire".into(),
            status: Status::Pending,
            step_count: 2,
            extends: None,
            fields: vec![("Region".into(), "EU".into())],
        }
    }

    #[test]
    fn approvers_see_field_values() {
        let (_, blocks) = ask(&view(), 0, "U0ALICE", None, AskKind::New);
        assert!(serde_json::to_string(&blocks).unwrap().contains("*Region*: EU"));
    }

    #[test]
    fn a_task_has_one_mark_done_button() {
        let (text, blocks) = task(&view(), 1, "a task for IT Ops", None, AskKind::New);
        assert!(text.contains("Manual task") && text.contains("req42kjDgk1EubTwo0g4"), "{text}");
        let actions: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "actions").collect();
        assert_eq!(actions.len(), 1);
        let buttons = actions[0]["elements"].as_array().unwrap();
        assert_eq!(buttons.len(), 1);
        assert_eq!(buttons[0]["action_id"], "task_done");
        assert_eq!(buttons[0]["value"], "req42kjDgk1EubTwo0g4:1");
        assert_eq!(buttons[0]["text"]["text"], "Mark done");
        let all = serde_json::to_string(&blocks).unwrap();
        assert!(all.contains("2 of 2") && all.contains("manual step") && all.contains("IT Ops"), "{all}");
        assert!(!all.contains("\"approve\"") && !all.contains("\"deny\""));
        let (reminder, _) = task(&view(), 1, "x", None, AskKind::Reminder);
        assert!(reminder.starts_with("Reminder: "));
        let (text, blocks) = closed_task(&view(), 1, CloseKind::Approved, Some("U0OPS"));
        assert!(text.contains("Marked done by <@U0OPS>"), "{text}");
        let all = serde_json::to_string(&blocks).unwrap();
        assert!(all.contains("Marked done by <@U0OPS>") && !all.contains("task_done"), "{all}");
        let (_, blocks) = closed_task(&view(), 1, CloseKind::Canceled, Some("U0REQ"));
        assert!(serde_json::to_string(&blocks).unwrap().contains("Canceled by <@U0REQ>"));
    }

    #[test]
    fn direct_messages_have_sections_and_plain_fallback() {
        let (text, blocks) = direct(":bulb: <@U0REQ> suggests adding an app to the catalog:\n>*Figma* please");
        assert_eq!(text, "<@U0REQ> suggests adding an app to the catalog:\nFigma please");
        assert_eq!(blocks[0]["type"], "section");
        assert!(blocks[0]["text"]["text"].as_str().unwrap().starts_with(":bulb:"));
        let long = "line of text\n".repeat(1000);
        let (fallback, blocks) = direct(&long);
        assert!(fallback.chars().count() <= 3000);
        assert!(blocks.iter().all(|b| b["text"]["text"].as_str().is_none_or(|t| t.chars().count() <= SECTION_MAX)));
    }

    #[test]
    fn grants_and_ending_warnings_offer_to_give_access_back() {
        let has_done =
            |event: &RequesterEvent| requester(None, "aws", "AWS", event).1.iter().any(|b| b["type"] == "actions");
        assert!(has_done(&RequesterEvent::AccessEnding { ends: chrono::Utc::now() }));
        assert!(has_done(&RequesterEvent::Approved { source: AssignmentSource::Direct, by: Some("U0ADMIN".into()) }));
        assert!(!has_done(&RequesterEvent::AccessEnded));
        assert!(!has_done(&RequesterEvent::Denied { by: "U0BOB".into() }));
        let (_, blocks) = requester(None, "aws", "AWS", &RequesterEvent::AccessEnding { ends: chrono::Utc::now() });
        let button = &blocks[1]["elements"][0];
        assert_eq!((button["action_id"].as_str(), button["value"].as_str()), (Some(GIVE_BACK), Some("aws")));
        assert_eq!(blocks[1]["elements"][1]["action_id"], EXTEND, "ending warnings offer to extend");
    }
}
