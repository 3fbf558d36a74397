//! The App Home tab: the user's requests (with Cancel), the approvals waiting
//! for them (Approve / Deny, or Mark done for tasks) and, for admins, the
//! outstanding requests of the apps they administer. Rendered from the store at
//! delivery time, so a republish always shows the current state.

use serde_json::{json, Value};

use super::blocks::{self, action_value, button, clip, context, esc, header, section, who};
use crate::workflow::catalog::FieldKind;
use crate::workflow::model::{Request, Status, StepKind};

/// How many of the user's requests are read (open ones first on screen, then a few closed).
pub const MINE_LIMIT: i64 = 30;
pub const APPROVALS_LIMIT: i64 = 20;
pub const ADMIN_LIMIT: i64 = 40;

/// Slack's limit for a Home tab view.
pub const MAX_BLOCKS: usize = 100;
const OPEN_SHOWN: usize = 15;
const CLOSED_SHOWN: usize = 5;
const APPROVALS_SHOWN: usize = 15;

/// The action that opens the app picker from the Home tab.
pub const OPEN_REQUEST_FORM: &str = "open_request_form";

pub struct Home<'a> {
    pub user_id: &'a str,
    /// Requests for this user, newest first.
    pub mine: &'a [Request],
    /// Open requests whose current step waits for this user.
    pub approvals: &'a [Request],
    /// Outstanding requests of the apps this user administers; `None` for non-admins.
    pub admin: Option<&'a [Request]>,
}

fn divider() -> Value {
    json!({"type": "divider"})
}

fn date(t: &crate::workflow::model::Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Where an open request waits: "step 2 of 3: Security Team".
fn waiting(r: &Request) -> String {
    match (r.current_step, r.current()) {
        (Some(i), Some(s)) => format!("step {} of {}: {}", i + 1, r.steps.len(), who(&s.label())),
        _ => "being set up".to_string(),
    }
}

fn cancel_button(r: &Request) -> Value {
    let mut b = button("Cancel", "cancel_request", &r.id, Some("danger"));
    b["confirm"] = json!({
        "title": {"type": "plain_text", "text": "Cancel this request?"},
        "text": {"type": "mrkdwn", "text": clip(&format!("Your request `{}` for *{}* will be canceled and its approvers told.", r.id, esc(&r.app_name)), 300)},
        "confirm": {"type": "plain_text", "text": "Cancel request"},
        "deny": {"type": "plain_text", "text": "Keep it"},
        "style": "danger"
    });
    b
}

fn open_request(r: &Request, user_id: &str) -> Value {
    let mut text = format!(
        "*{}* · `{}`\n:hourglass_flowing_sand: {} — {}",
        esc(&clip(&r.app_name, 200)),
        r.id,
        r.status.as_str(),
        waiting(r)
    );
    if r.requested_by.id != user_id {
        text.push_str(&format!("\nRequested for you by {}", who(&r.requested_by.id)));
    }
    text.push_str(&format!("\nRequested {}", date(&r.created)));
    if let Some(flag) = &r.flagged {
        text.push_str(&format!("\n:warning: {}", esc(&clip(flag, 300))));
    }
    let mut s = section(&text);
    s["accessory"] = cancel_button(r);
    s
}

fn closed_line(r: &Request) -> String {
    let icon = match r.status {
        Status::Approved => ":white_check_mark:",
        Status::Denied => ":x:",
        Status::Canceled => ":no_entry_sign:",
        Status::Expired => ":hourglass:",
        Status::Rejected => ":warning:",
        Status::Submitted | Status::Pending => ":hourglass_flowing_sand:",
    };
    let when = r.resolved.as_ref().map(|t| format!(" on {}", date(t))).unwrap_or_default();
    format!("{icon} *{}* `{}` — {}{when}", esc(&clip(&r.app_name, 200)), r.id, r.status.as_str())
}

/// One approval waiting for the user: who, what, why, and the buttons of the approver DM.
fn approval(r: &Request) -> Vec<Value> {
    let Some(step) = r.current_step else { return Vec::new() };
    let task = r.current().is_some_and(|s| matches!(s.kind, StepKind::Task { .. }));
    let mut text = format!("*{}* for {} · `{}`", esc(&clip(&r.app_name, 200)), who(&r.requested_for.id), r.id);
    if r.requested_by.id != r.requested_for.id {
        text.push_str(&format!(" (requested by {})", who(&r.requested_by.id)));
    }
    text.push_str(&format!(
        "\n{} {} of {} · since {}",
        if task { "Manual task, step" } else { "Step" },
        step + 1,
        r.steps.len(),
        date(&r.current().and_then(|s| s.activated).unwrap_or(r.created))
    ));
    if !r.justification.is_empty() {
        text.push_str(&format!("\n{}", blocks::quote(&r.justification, 500)));
    }
    for f in r.field_values.iter().filter(|f| !(f.id == "justification" && f.kind == FieldKind::Text)) {
        text.push_str(&format!("\n*{}:* {}", esc(&clip(&f.label, 100)), esc(&clip(&f.value, 300))));
    }
    let v = action_value(&r.id, step);
    let elements = if task {
        vec![button("Mark done", "task_done", &v, Some("primary"))]
    } else {
        vec![button("Approve", "approve", &v, Some("primary")), button("Deny", "deny", &v, Some("danger"))]
    };
    vec![section(&text), json!({"type": "actions", "block_id": format!("home:{v}"), "elements": elements})]
}

/// Lines packed into as few sections as Slack's 3000 characters allow.
fn sections(lines: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut chunk = String::new();
    for l in lines {
        if !chunk.is_empty() && chunk.chars().count() + l.chars().count() + 1 > blocks::SECTION_MAX - 10 {
            out.push(section(&chunk));
            chunk.clear();
        }
        if !chunk.is_empty() {
            chunk.push('\n');
        }
        chunk.push_str(l);
    }
    if !chunk.is_empty() {
        out.push(section(&chunk));
    }
    out
}

/// The Home tab view (`views.publish`'s `view`).
pub fn view(h: &Home) -> Value {
    let mut b: Vec<Value> = vec![
        header("Access requests"),
        section(&format!(
            "Hi {}! Request apps, follow your requests and decide approvals here. `/access help` lists the commands.",
            who(h.user_id)
        )),
        json!({"type": "actions", "block_id": "home:start", "elements": [
            button("Request an app", OPEN_REQUEST_FORM, "home", Some("primary"))
        ]}),
        divider(),
        header("Your requests"),
    ];
    let open: Vec<&Request> = h.mine.iter().filter(|r| r.status.is_open()).collect();
    if open.is_empty() {
        b.push(context("You have no open requests."));
    }
    for r in open.iter().take(OPEN_SHOWN) {
        b.push(open_request(r, h.user_id));
    }
    if open.len() > OPEN_SHOWN {
        b.push(context(&format!("…and {} more: `/access mine` lists them all.", open.len() - OPEN_SHOWN)));
    }
    let closed: Vec<String> =
        h.mine.iter().filter(|r| !r.status.is_open()).take(CLOSED_SHOWN).map(closed_line).collect();
    if !closed.is_empty() {
        b.push(context("*Recently closed*"));
        b.extend(sections(&closed));
    }

    b.push(divider());
    b.push(header("Waiting for your approval"));
    if h.approvals.is_empty() {
        b.push(context("Nothing is waiting for you."));
    }
    for r in h.approvals.iter().take(APPROVALS_SHOWN) {
        b.extend(approval(r));
    }
    if h.approvals.len() > APPROVALS_SHOWN {
        b.push(context(&format!("…and {} more: `/access tasks` lists them all.", h.approvals.len() - APPROVALS_SHOWN)));
    }

    if let Some(admin) = h.admin {
        b.push(divider());
        b.push(header("Outstanding requests"));
        b.push(context(
            "Apps you administer · `/access admin show <id>` for the history, `resend`, `cancel`, `assign`",
        ));
        if admin.is_empty() {
            b.push(context("No outstanding requests."));
        }
        let lines: Vec<String> = admin
            .iter()
            .map(|r| {
                let flag = if r.flagged.is_some() { " :warning: flagged" } else { "" };
                format!(
                    "`{}` *{}* for {} — {} · since {}{flag}",
                    r.id,
                    esc(&clip(&r.app_name, 200)),
                    who(&r.requested_for.id),
                    waiting(r),
                    date(&r.created)
                )
            })
            .collect();
        b.extend(sections(&lines));
    }

    if b.len() > MAX_BLOCKS {
        b.truncate(MAX_BLOCKS - 1);
        b.push(context("There is more than fits here: `/access mine`, `/access tasks` and `/access admin pending` list everything."));
    }
    json!({"type": "home", "callback_id": "home", "blocks": b})
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::workflow::{engine, Actor, NewRequest, Party, Source};

    const CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]
[apps.github]
name = "GitHub"
steps = [{ user = "U0BOB" }]
[apps.laptop]
name = "Laptop"
steps = [{ task = { user = "U0BOB" } }]
"#;

    fn request(app: &str, user: &str, justification: &str) -> Request {
        let catalog = crate::config::parse_catalog("t.toml", CONFIG).unwrap();
        let party = Party::new(user, None);
        let input = NewRequest {
            app_id: app.into(),
            requested_by: party.clone(),
            requested_for: party.clone(),
            justification: justification.into(),
            fields: vec![],
            extension: None,
        };
        let cs = engine::submit(&catalog, input, &Actor::user(party, Source::Slack), chrono::Utc::now()).unwrap();
        cs.request.unwrap()
    }

    fn all_buttons(view: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for b in view["blocks"].as_array().unwrap() {
            let mut els: Vec<&Value> = b["elements"].as_array().map(|e| e.iter().collect()).unwrap_or_default();
            els.push(&b["accessory"]);
            for e in els.into_iter().filter(|e| e["type"] == "button") {
                out.push((e["action_id"].as_str().unwrap().to_string(), e["value"].as_str().unwrap().to_string()));
            }
        }
        out
    }

    #[test]
    fn buttons_match_the_dm_actions() {
        let mine = [request("github", "U0REQ", "code review")];
        let approvals = [request("github", "U0EVE", "x"), request("laptop", "U0FOX", "new hire")];
        let v = view(&Home { user_id: "U0REQ", mine: &mine, approvals: &approvals, admin: None });
        let b = all_buttons(&v);
        assert!(b.contains(&("cancel_request".into(), mine[0].id.clone())));
        assert!(b.contains(&("approve".into(), format!("{}:0", approvals[0].id))));
        assert!(b.contains(&("deny".into(), format!("{}:0", approvals[0].id))));
        assert!(b.contains(&("task_done".into(), format!("{}:0", approvals[1].id))));
        assert!(!b.iter().any(|(a, v)| a == "approve" && v.starts_with(&approvals[1].id)), "a task has no Approve");
        assert!(!v.to_string().contains("Outstanding requests"));
    }

    #[test]
    fn stays_within_block_kit_limits() {
        let long = "why ".repeat(500);
        let many: Vec<Request> = (0..60).map(|i| request("github", &format!("U0R{i}"), &long)).collect();
        let v = view(&Home { user_id: "U0ROOT", mine: &many, approvals: &many, admin: Some(&many) });
        let blocks = v["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS, "{} blocks", blocks.len());
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                let max = if b["type"] == "header" { blocks::HEADER_MAX } else { blocks::SECTION_MAX };
                assert!(t.chars().count() <= max, "{} characters in a {}", t.chars().count(), b["type"]);
            }
        }
        let ids: Vec<&str> = blocks.iter().filter_map(|b| b["block_id"].as_str()).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "block ids are unique");
        assert!(v.to_string().len() < 250_000);
    }
}
