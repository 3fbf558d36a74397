//! What the core's typed notices say in Slack: the admin feed, thread replies
//! and direct messages, in mrkdwn. Every string that came from a user or the
//! config is escaped here, and only here.

use super::blocks::{clip, esc, quote, who};
use crate::workflow::model::{DirectMessage, FeedEvent, FlaggedItem, ThreadEvent};

fn by(user: &Option<String>) -> String {
    user.as_deref().map(|u| format!(" by {}", who(u))).unwrap_or_default()
}

/// One line of the admin channel feed.
pub fn feed(e: &FeedEvent) -> String {
    match e {
        FeedEvent::Granted { request_id, app_name, user, approval: false } => {
            format!("`{request_id}`: {} was granted *{}* (no approval needed)", who(user), esc(app_name))
        }
        FeedEvent::Granted { request_id, app_name, user, approval: true } => {
            format!("`{request_id}`: *{}* for {} was approved", esc(app_name), who(user))
        }
        FeedEvent::Denied { request_id, app_name, user, by } => {
            format!("`{request_id}`: *{}* for {} was denied by {}", esc(app_name), who(user), who(by))
        }
        FeedEvent::Canceled { request_id, app_name, user, by } => {
            format!("`{request_id}`: *{}* for {} was canceled by {}", esc(app_name), who(user), who(by))
        }
        FeedEvent::Overridden { request_id, app_name, user, by } => {
            format!("`{request_id}`: *{}* for {} was assigned by override by {}", esc(app_name), who(user), who(by))
        }
        FeedEvent::Expired { request_id, app_name, user } => {
            format!("`{request_id}`: *{}* for {} expired", esc(app_name), who(user))
        }
        FeedEvent::Assigned { app_name, user, by } => {
            format!("*{}* was assigned to {} directly by {}", esc(app_name), who(user), who(by))
        }
        FeedEvent::Revoked { app_name, user, by: Some(by) } => {
            format!("*{}* was revoked from {} by {}", esc(app_name), who(user), who(by))
        }
        FeedEvent::Revoked { app_name, user, by: None } => {
            format!("*{}* was revoked from {} (time-bound access ended)", esc(app_name), who(user))
        }
        FeedEvent::GivenBack { app_name, user } => format!("{} gave back *{}*", who(user), esc(app_name)),
        FeedEvent::WebhookFailed { request_id, what, error } => {
            let id = request_id.as_deref().map(|r| format!("`{r}`: ")).unwrap_or_default();
            format!(":warning: {id}{} failed: {}", esc(what), esc(&clip(error, 500)))
        }
        FeedEvent::Flagged { items } => flagged(items),
    }
}

/// A reply in the thread of each approver message.
pub fn thread(e: &ThreadEvent) -> String {
    match e {
        ThreadEvent::StepApproved { step, by: b } => format!(":white_check_mark: Step {step} approved{}", by(b)),
        ThreadEvent::StepDenied { step, by: b } => format!(":x: Step {step} denied{}", by(b)),
        ThreadEvent::ApprovalCounted { step, by: b, approvals, required } => {
            format!(":ballot_box_with_check: Step {step}: {approvals} of {required} approvals{}", by(b))
        }
        ThreadEvent::TaskDone { step, by: b } => {
            format!(":ballot_box_with_check: Task (step {step}) marked done{}", by(b))
        }
        ThreadEvent::Escalated { step, to } => {
            format!(":arrow_double_up: Step {step} undecided: escalated to {}", who(to))
        }
        ThreadEvent::Granted => ":tada: Approved — access granted".to_string(),
        ThreadEvent::Denied => ":x: Request denied".to_string(),
        ThreadEvent::Canceled { by: b } => format!(":no_entry_sign: Request canceled{}", by(b)),
        ThreadEvent::Expired => ":hourglass: Request expired".to_string(),
        ThreadEvent::Overridden { by: b } => format!(":fast_forward: Assigned by admin override{}", by(b)),
        ThreadEvent::Message { from, text } => {
            format!(":speech_balloon: Message from {}:\n{}", who(from), quote(text, 2500))
        }
    }
}

fn flagged(items: &[FlaggedItem]) -> String {
    let n = items.len();
    let mut t = format!(
        ":warning: A change to the config or to a Slack user group strands {n} pending request{}; {} flagged. \
         Resend, cancel or assign {} with `/access admin resend|cancel|assign <request-id>`:",
        if n == 1 { "" } else { "s" },
        if n == 1 { "it is" } else { "they are" },
        if n == 1 { "it" } else { "them" },
    );
    for i in items {
        t.push_str(&format!("\n• `{}` {} for {}: {}", i.request_id, esc(&i.app_name), who(&i.user), esc(&i.reason)));
    }
    t
}

/// The mrkdwn text of a direct message.
pub fn direct_text(m: &DirectMessage) -> String {
    match m {
        DirectMessage::Suggestion { from, text } => {
            format!(":bulb: {} suggests adding an app to the catalog:\n{}", who(from), quote(text, 2000))
        }
        DirectMessage::Flagged { items } => flagged(items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = "<!channel> <!here> <@U0ROOT> <https://evil.example|Click to approve>";

    fn live(s: &str) -> bool {
        ["<!channel>", "<!here>", "<@U0ROOT>", "<https://"].iter().any(|m| s.contains(m))
    }

    #[test]
    fn user_text_is_never_live() {
        let texts = [
            direct_text(&DirectMessage::Suggestion { from: "U0ZOE".into(), text: EVIL.into() }),
            thread(&ThreadEvent::Message { from: EVIL.into(), text: EVIL.into() }),
            feed(&FeedEvent::WebhookFailed { request_id: None, what: EVIL.into(), error: EVIL.into() }),
            feed(&FeedEvent::Flagged {
                items: vec![FlaggedItem {
                    request_id: "req1".into(),
                    app_name: EVIL.into(),
                    user: "U0ZOE".into(),
                    reason: EVIL.into(),
                }],
            }),
            feed(&FeedEvent::Assigned { app_name: EVIL.into(), user: "U0ZOE".into(), by: EVIL.into() }),
        ];
        for t in &texts {
            assert!(!live(t), "{t}");
            assert!(t.contains("&lt;!channel&gt;"), "{t}");
        }
        // The renderer itself does mention known users.
        assert!(thread(&ThreadEvent::Canceled { by: Some("U0BOB".into()) }).contains("<@U0BOB>"));
    }
}
