//! `POST /slack/commands`: the `/access` slash command. Every reply is
//! ephemeral and computed without calling Slack.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::blocks::{self, ephemeral, ephemeral_list, esc, summary, who};
use super::modals;
use super::verify::{Claim, SignedBody};
use super::{Answer, Problem};
use crate::state::AppState;
use crate::workflow::model::{LogEvent, Request, Status, Step};
use crate::workflow::{Actor, Party, RequestInput, WorkflowError};

const LIST_LIMIT: i64 = 25;

pub const USAGE: &str = "*accessbot* — request access to apps and approve requests\n\
`/access apps` — apps you can request\n\
`/access request <app> [duration] [justification…]` — request an app (a form opens when it needs more details)\n\
`/access request` — pick an app from a form\n\
`/access request <app> for @someone [justification…]` — request it for someone else (when allowed)\n\
`/access mine` — your requests and where they wait\n\
`/access cancel <request-id>` — cancel your pending request\n\
`/access extend <app> [duration] [justification…]` — ask for more time on access that ends\n\
`/access done <app>` — give back access you no longer need\n\
`/access tasks` — approvals waiting for you\n\
`/access delegate @someone until <YYYY-MM-DD>` — let someone decide your approvals while you are away (`/access delegate off` ends it)\n\
`/access suggest <app and why>` — ask for an app that is not in the list\n\
`/access help` — this help\n\
*Admins*\n\
`/access admin pending [app]` — outstanding requests\n\
`/access admin show <request-id>` — a request's full history\n\
`/access admin resend <request-id>` — notify the current approvers again\n\
`/access admin cancel <request-id> [reason]` — cancel a pending request\n\
`/access admin assign <request-id>` — approve now (override), remaining steps deleted\n\
`/access admin grant <app> <@user>` — assign an app directly\n\
`/access admin revoke <app> <@user>` — remove an assignment";

#[derive(Deserialize)]
pub struct CommandForm {
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub text: Option<String>,
    pub ssl_check: Option<String>,
    /// Lets the reply open a modal (`views.open`) within a few seconds.
    pub trigger_id: Option<String>,
}

pub async fn handle(State(state): State<AppState>, signed: SignedBody) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<CommandForm>(&signed.body) else {
        return (StatusCode::BAD_REQUEST, "malformed slash command").into_response();
    };
    answer(&state, form, &Claim::Signature(&signed)).await.into_response()
}

/// Runs a slash command from either transport: HTTP (form fields) or Socket Mode (the same fields as JSON).
pub async fn answer(state: &AppState, form: CommandForm, claim: &Claim<'_>) -> Answer {
    if form.ssl_check.as_deref() == Some("1") {
        return Answer::Done;
    }
    if !state.slack.team_allowed(form.team_id.as_deref()) {
        super::wrong_workspace(state, form.team_id.as_deref(), form.user_id.as_deref()).await;
        return Answer::Refused(StatusCode::FORBIDDEN, "this workspace is not served");
    }
    let Some(user_id) = form.user_id.filter(|u| !u.is_empty()) else {
        return Answer::Refused(StatusCode::BAD_REQUEST, "slash command without user_id");
    };
    let text = form.text.unwrap_or_default();
    let reply = match super::actor(&state.workflow, &user_id).await {
        Ok(actor) => match replayed(state, &actor, claim, text.trim()).await {
            Ok(None) => run(state, &actor, text.trim(), form.trigger_id.as_deref()).await,
            Ok(Some(reply)) => Ok(reply),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    };
    Answer::Json(reply.unwrap_or_else(|p| ephemeral(&p.text())))
}

/// The commands a replay must not run twice, by their logged action name.
/// The rest only read, or (`request`) return the open request instead of a second one.
fn replay_protected(text: &str) -> Option<&'static str> {
    let (cmd, rest) = word(text);
    let sub = word(rest).0.to_ascii_lowercase();
    Some(match (cmd.to_ascii_lowercase().as_str(), sub.as_str()) {
        ("suggest", _) => "/access suggest",
        ("cancel", _) => "/access cancel",
        ("done", _) => "/access done",
        ("delegate", _) => "/access delegate",
        ("admin", "resend") => "/access admin resend",
        ("admin", "cancel") => "/access admin cancel",
        ("admin", "assign") => "/access admin assign",
        ("admin", "grant") => "/access admin grant",
        ("admin", "revoke") => "/access admin revoke",
        _ => return None,
    })
}

/// The answer to a replayed protected command (logged, not run); `None` runs it.
async fn replayed(
    state: &AppState,
    actor: &Actor,
    claim: &Claim<'_>,
    text: &str,
) -> Result<Option<Value>, WorkflowError> {
    let Some(action) = replay_protected(text) else { return Ok(None) };
    if claim.first_use(state.workflow.store().as_ref()).await? {
        return Ok(None);
    }
    state.workflow.refuse(actor, action, "replayed Slack request", None).await?;
    Ok(Some(ephemeral("This command was already handled.")))
}

/// `<@U123|name>`, `<@U123>` or a bare `U123`.
pub fn parse_user(s: &str) -> Option<String> {
    let inner =
        s.strip_prefix("<@").and_then(|r| r.strip_suffix('>')).map(|r| r.split('|').next().unwrap_or(r)).unwrap_or(s);
    let ok = inner.len() >= 3
        && (inner.starts_with('U') || inner.starts_with('W'))
        && inner.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    ok.then(|| inner.to_string())
}

/// Splits off the first word; the rest keeps its inner spacing.
pub fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

fn need<'a>(arg: &'a str, usage: &str) -> Result<&'a str, Problem> {
    if arg.is_empty() {
        Err(Problem::Said(format!("Usage: `{usage}`")))
    } else {
        Ok(arg)
    }
}

async fn run(state: &AppState, actor: &Actor, text: &str, trigger: Option<&str>) -> Result<Value, Problem> {
    let wf = &state.workflow;
    let (cmd, rest) = word(text);
    match cmd.to_ascii_lowercase().as_str() {
        "" | "help" => Ok(ephemeral(USAGE)),
        "apps" => Ok(apps(state, actor)),
        "request" => request(state, actor, rest, trigger).await,
        "mine" => {
            let reqs = wf.mine(actor, LIST_LIMIT).await?;
            if reqs.is_empty() {
                return Ok(ephemeral("You have no requests. `/access apps` lists what you can request."));
            }
            Ok(ephemeral_list("*Your requests* (newest first)", &reqs.iter().map(summary).collect::<Vec<_>>()))
        }
        "cancel" => {
            let id = need(word(rest).0, "/access cancel <request-id>")?;
            let r = wf.cancel(actor, id, None, false).await?;
            Ok(ephemeral(&format!("Canceled `{}` ({}).", r.id, esc(&r.app_name))))
        }
        "extend" => extend(state, actor, rest).await,
        "delegate" => delegate(state, actor, rest).await,
        "done" => {
            let app = need(word(rest).0, "/access done <app>")?.to_ascii_lowercase();
            wf.give_back(actor, &app).await?;
            Ok(ephemeral(&given_back(wf, &app)))
        }
        "tasks" => {
            let reqs = wf.tasks(actor, LIST_LIMIT).await?;
            if reqs.is_empty() {
                return Ok(ephemeral("Nothing is waiting for your approval."));
            }
            let lines: Vec<String> = reqs
                .iter()
                .map(|r| format!("{} — justification: {}", summary(r), esc(&blocks::clip(&r.justification, 200))))
                .collect();
            Ok(ephemeral_list("*Waiting for your approval* (the buttons are in your DMs with me)", &lines))
        }
        "suggest" => match wf.suggest(actor, rest).await {
            Ok(()) => {
                let to = wf
                    .catalog()
                    .settings
                    .technical_contact
                    .as_ref()
                    .map(|p| format!(" ({})", who(p.key())))
                    .unwrap_or_default();
                Ok(ephemeral(&format!(
                    ":bulb: Thanks! Your suggestion was sent to the technical contact{to}. They will follow up with you."
                )))
            }
            Err(WorkflowError::InvalidField { field, .. }) if field == "suggestion" => Err(Problem::Said(
                "Say which app you need and why, e.g. `/access suggest Figma — design reviews for the web team` \
                 (at most 2000 characters)."
                    .into(),
            )),
            Err(e) => Err(e.into()),
        },
        "admin" => admin(state, actor, rest).await,
        other => Ok(ephemeral(&format!("Unknown command `{}`.\n\n{USAGE}", esc(other)))),
    }
}

fn apps(state: &AppState, actor: &Actor) -> Value {
    let catalog = state.workflow.catalog();
    let lines: Vec<String> = catalog
        .requestable_by(&actor.party)
        .map(|a| {
            let approval = if a.approval {
                format!("approval: {} step(s)", a.steps.len())
            } else {
                "no approval needed".to_string()
            };
            let desc = if a.description.is_empty() { String::new() } else { format!(" — {}", esc(&a.description)) };
            let asks: Vec<String> = a.fields.iter().map(|f| esc(&f.label)).collect();
            let asks = if asks.is_empty() { String::new() } else { format!("; asks for {}", asks.join(", ")) };
            format!("`{}` *{}*{desc} ({approval}{asks})", a.id, esc(&a.name))
        })
        .collect();
    if lines.is_empty() {
        return ephemeral("No apps are requestable right now.");
    }
    ephemeral_list("*Requestable apps* — `/access request <app> [justification…]`", &lines)
}

/// `/access request …`: submits at once, or opens a form when the app needs
/// answers the command text cannot give; `/access request` alone opens the app picker.
async fn request(state: &AppState, actor: &Actor, text: &str, trigger: Option<&str>) -> Result<Value, Problem> {
    let wf = &state.workflow;
    let (app_word, rest) = word(text);
    if app_word.is_empty() {
        modals::open(wf, trigger, modals::app_picker(&wf.catalog(), &actor.party)).await?;
        return Ok(ephemeral(":memo: Opening the form…"));
    }
    let app_id = app_word.to_ascii_lowercase();
    let (for_user, justification) = beneficiary(rest)?;
    let requested_for = for_user.unwrap_or_else(|| actor.party.id.clone());
    let catalog = wf.catalog();
    let (duration, justification) = duration_word(catalog.apps.get(&app_id), justification);
    if let Some(app) = catalog.apps.get(&app_id).filter(|a| modals::needs_form(a, justification)) {
        // A form only after the checks its submission would get.
        if let Some(existing) = wf.check_request(actor, &app.id, &actor.party.id, &requested_for).await? {
            return Ok(ephemeral(&submitted(&existing, true, actor)));
        }
        let on_behalf = (requested_for != actor.party.id).then_some(requested_for.as_str());
        modals::open(wf, trigger, modals::request_form(app, on_behalf, justification)).await?;
        return Ok(ephemeral(&format!(":memo: Opening the form for *{}*…", esc(&app.name))));
    }
    let input = RequestInput {
        app_id,
        requested_by: actor.party.id.clone(),
        requested_for,
        justification: justification.to_string(),
        fields: duration.map(|d| vec![(modals::DURATION.to_string(), d.to_string())]).unwrap_or_default(),
    };
    let s = wf.request(actor, input).await?;
    Ok(ephemeral(&submitted(&s.request, s.existing, actor)))
}

/// `8h` right after the app (or its beneficiary) chooses the duration, when
/// the app offers a choice; whether it is one of them is the workflow's call.
fn duration_word<'a>(app: Option<&crate::workflow::catalog::App>, text: &'a str) -> (Option<&'a str>, &'a str) {
    let (w, rest) = word(text);
    match app {
        Some(a) if !a.durations.is_empty() && humantime::parse_duration(w).is_ok() => (Some(w), rest),
        _ => (None, text),
    }
}

/// `for <@U…|name>` right after the app names the beneficiary; the rest is the justification.
fn beneficiary(rest: &str) -> Result<(Option<String>, &str), Problem> {
    let (w, tail) = word(rest);
    if !w.eq_ignore_ascii_case("for") {
        return Ok((None, rest));
    }
    let (who_word, after) = word(tail);
    match parse_user(who_word) {
        Some(u) => Ok((Some(u), after)),
        None if who_word.starts_with('@') || who_word.starts_with("<@") => Err(Problem::Said(format!(
            "`{}` is not a user: mention them as @name so Slack sends their id. \
             Usage: `/access request <app> for @someone [justification…]`",
            esc(who_word)
        ))),
        None => Ok((None, rest)),
    }
}

/// The reply when a user gave access back.
pub fn given_back(wf: &crate::workflow::Workflow, app_id: &str) -> String {
    let name = wf.catalog().apps.get(app_id).map(|a| a.name.clone()).unwrap_or_else(|| app_id.to_string());
    format!(":wave: Done: your access to *{}* is removed.", esc(&name))
}

/// The reply when a user creates requests faster than `ACCESSBOT_REQUEST_RATE` allows.
pub fn too_fast(wait: std::time::Duration) -> String {
    format!(
        ":hourglass_flowing_sand: You're creating requests too fast; try again in {} s.",
        crate::workflow::retry_secs(wait)
    )
}

/// `/access extend <app> [duration] [justification…]`.
async fn extend(state: &AppState, actor: &Actor, text: &str) -> Result<Value, Problem> {
    let wf = &state.workflow;
    let (app_word, rest) = word(text);
    let app_id = need(app_word, "/access extend <app> [duration] [justification…]")?.to_ascii_lowercase();
    let catalog = wf.catalog();
    let (duration, justification) = duration_word(catalog.apps.get(&app_id), rest);
    let mut input = RequestInput::own(actor, &app_id, justification);
    input.fields = duration.map(|d| vec![(modals::DURATION.to_string(), d.to_string())]).unwrap_or_default();
    let s = wf.extend(actor, input).await?;
    Ok(ephemeral(&submitted(&s.request, s.existing, actor)))
}

const DELEGATE_USAGE: &str = "/access delegate @someone until <YYYY-MM-DD>` or `/access delegate off";

/// `/access delegate <@user> until <YYYY-MM-DD>`, `/access delegate off`, and bare: what is set.
async fn delegate(state: &AppState, actor: &Actor, text: &str) -> Result<Value, Problem> {
    let wf = &state.workflow;
    let (first, rest) = word(text);
    if first.is_empty() {
        return Ok(ephemeral(&match wf.delegation(actor).await? {
            Some(d) => format!("{} decides your approvals until {} (UTC).", who(&d.delegate), last_day(&d)),
            None => format!("You have no delegation. Usage: `{DELEGATE_USAGE}`"),
        }));
    }
    if first.eq_ignore_ascii_case("off") {
        return Ok(ephemeral(&match wf.delegate_off(actor).await? {
            Some(d) => format!("Your delegation to {} has ended; your approvals are yours again.", who(&d.delegate)),
            None => "You have no delegation to end.".to_string(),
        }));
    }
    let (until_word, date) = word(rest);
    let day = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok().filter(|_| until_word == "until");
    let Some(day) = day else {
        return Err(Problem::Said(format!("Usage: `{DELEGATE_USAGE}` (the last day, e.g. until 2026-12-24)")));
    };
    let to = target_user(state, first, DELEGATE_USAGE).await?;
    let d = wf.delegate(actor, &to, day).await?;
    Ok(ephemeral(&format!(
        ":busts_in_silhouette: Until {} (UTC), every approval that asks you also asks {}, who decides for you. \
         `/access delegate off` ends it.",
        last_day(&d),
        who(&d.delegate)
    )))
}

/// The last day of a delegation (it ends at the start of the next).
fn last_day(d: &crate::workflow::model::Delegation) -> String {
    (d.until - chrono::Duration::days(1)).format("%Y-%m-%d").to_string()
}

pub fn submitted(r: &Request, existing: bool, actor: &Actor) -> String {
    let for_other = !r.requested_for.is(&actor.party);
    if r.status == Status::Submitted {
        return format!(
            ":inbox_tray: Request `{}` for *{}* submitted. It goes to its approvers as soon as Slack confirms who {} \
             (usually within seconds).",
            r.id,
            esc(&r.app_name),
            if for_other { format!("{} is", who(&r.requested_for.id)) } else { "you are".to_string() }
        );
    }
    if existing {
        let whose =
            if for_other { format!("{} already has", who(&r.requested_for.id)) } else { "You already have".into() };
        return format!("{whose} an open request for *{}*: {}", esc(&r.app_name), summary(r));
    }
    if for_other {
        return match r.status {
            Status::Approved => format!(
                ":tada: `{}`: {} now has *{}* (no approval needed).",
                r.id,
                who(&r.requested_for.id),
                esc(&r.app_name)
            ),
            Status::Rejected => {
                format!(
                    ":warning: `{}` could not start: {}",
                    r.id,
                    esc(r.reason.as_deref().unwrap_or("unknown reason"))
                )
            }
            _ => format!(
                ":inbox_tray: Request `{}` for *{}* submitted for {}. Waiting for step 1 of {}: {}.",
                r.id,
                esc(&r.app_name),
                who(&r.requested_for.id),
                r.steps.len(),
                who(&r.current().map(|s| s.label()).unwrap_or_default())
            ),
        };
    }
    match r.status {
        Status::Approved => format!(":tada: `{}`: you now have *{}* (no approval needed).", r.id, esc(&r.app_name)),
        Status::Rejected => {
            format!(":warning: `{}` could not start: {}", r.id, esc(r.reason.as_deref().unwrap_or("unknown reason")))
        }
        _ => {
            let waiting = r.current().map(|s| s.label()).unwrap_or_default();
            format!(
                ":inbox_tray: Request `{}` for *{}* submitted. Waiting for step 1 of {}: {}.",
                r.id,
                esc(&r.app_name),
                r.steps.len(),
                who(&waiting)
            )
        }
    }
}

async fn target_user(state: &AppState, arg: &str, usage: &str) -> Result<Party, Problem> {
    let id = parse_user(need(arg, usage)?).ok_or_else(|| {
        Problem::Said(format!(
            "`{}` is not a user: mention them as @name so Slack sends their id. Usage: `{usage}`",
            esc(arg)
        ))
    })?;
    Ok(state.workflow.party(&id).await?)
}

async fn admin(state: &AppState, actor: &Actor, text: &str) -> Result<Value, Problem> {
    let (sub, rest) = word(text);
    match sub.to_ascii_lowercase().as_str() {
        "pending" => admin_pending(state, actor, rest).await,
        "show" => admin_show(state, actor, rest).await,
        "resend" => admin_resend(state, actor, rest).await,
        "cancel" => admin_cancel(state, actor, rest).await,
        "assign" => admin_assign(state, actor, rest).await,
        "grant" | "revoke" => admin_grant_or_revoke(state, actor, sub, rest).await,
        "" => Ok(ephemeral(USAGE)),
        other => Ok(ephemeral(&format!("Unknown admin command `{}`.\n\n{USAGE}", esc(other)))),
    }
}

async fn admin_pending(state: &AppState, actor: &Actor, rest: &str) -> Result<Value, Problem> {
    let wf = &state.workflow;
    let app = word(rest).0;
    let app = (!app.is_empty()).then(|| app.to_ascii_lowercase());
    let reqs = wf.pending(actor, app.as_deref(), LIST_LIMIT).await?;
    if reqs.is_empty() {
        return Ok(ephemeral("No outstanding requests."));
    }
    let now = wf.now();
    let lines: Vec<String> = reqs
        .iter()
        .map(|r| {
            let age = (now - r.created).num_hours();
            let waiting = r.current().and_then(|s| s.activated).map(|t| (now - t).num_hours()).unwrap_or(age);
            format!("{} (requested {age}h ago, waiting {waiting}h on this step)", summary(r))
        })
        .collect();
    Ok(ephemeral_list("*Outstanding requests* (oldest first)", &lines))
}

async fn admin_show(state: &AppState, actor: &Actor, rest: &str) -> Result<Value, Problem> {
    let id = need(word(rest).0, "/access admin show <request-id>")?;
    let (r, events) = state.workflow.show(actor, id).await?;
    let mut lines = vec![summary(&r)];
    lines.push(format!("Requested by {} on {}", who(&r.requested_by.id), r.created.format("%Y-%m-%d %H:%M UTC")));
    lines.push(format!(
        "Justification: {}",
        if r.justification.is_empty() { "_none_".into() } else { esc(&r.justification) }
    ));
    lines.extend(r.steps.iter().enumerate().map(|(i, s)| step_line(i, s)));
    lines.push("*History*".into());
    lines.extend(events.iter().map(event_line));
    Ok(ephemeral_list(&format!("*Request `{}`*", r.id), &lines))
}

fn step_line(i: usize, s: &Step) -> String {
    let approvers: Vec<String> = s.approvers.iter().map(|p| who(p.key())).collect();
    let mut l = format!("Step {} ({}): {} — {}", i + 1, who(&s.label()), blocks::step_state(s), approvers.join(", "));
    if let Some(by) = &s.decided_by {
        l.push_str(&format!(", decided by {}", who(by)));
    }
    l
}

fn event_line(e: &LogEvent) -> String {
    let comment = e
        .debug_context
        .debug_data
        .get("comment")
        .and_then(Value::as_str)
        .map(|c| format!(" — “{}”", esc(c)))
        .unwrap_or_default();
    format!("{} `{}` by {}{comment}", e.published.format("%Y-%m-%d %H:%M:%S"), e.event_type, who(&e.actor.id))
}

async fn admin_resend(state: &AppState, actor: &Actor, rest: &str) -> Result<Value, Problem> {
    let id = need(word(rest).0, "/access admin resend <request-id>")?;
    let r = state.workflow.resend(actor, id).await?;
    let label = r.current().map(|s| s.label()).unwrap_or_default();
    Ok(ephemeral(&format!("Resent `{}` to {}.", r.id, who(&label))))
}

async fn admin_cancel(state: &AppState, actor: &Actor, rest: &str) -> Result<Value, Problem> {
    let (id, reason) = word(rest);
    let id = need(id, "/access admin cancel <request-id> [reason]")?;
    let r = state.workflow.cancel(actor, id, Some(reason.to_string()), true).await?;
    Ok(ephemeral(&format!("Canceled `{}` ({} for {}).", r.id, esc(&r.app_name), who(&r.requested_for.id))))
}

async fn admin_assign(state: &AppState, actor: &Actor, rest: &str) -> Result<Value, Problem> {
    let id = need(word(rest).0, "/access admin assign <request-id>")?;
    let r = state.workflow.override_assign(actor, id).await?;
    Ok(ephemeral(&format!(
        "Assigned *{}* to {} by override (`{}`); remaining steps deleted.",
        esc(&r.app_name),
        who(&r.requested_for.id),
        r.id
    )))
}

/// `sub` is the word as typed: the usage echoes it.
async fn admin_grant_or_revoke(state: &AppState, actor: &Actor, sub: &str, rest: &str) -> Result<Value, Problem> {
    let wf = &state.workflow;
    let usage = format!("/access admin {sub} <app> <@user>");
    let (app, user) = word(rest);
    let app = need(app, &usage)?.to_ascii_lowercase();
    let target = target_user(state, word(user).0, &usage).await?;
    if sub.eq_ignore_ascii_case("grant") {
        wf.grant(actor, &app, &target).await?;
        Ok(ephemeral(&format!("Assigned `{}` to {}.", esc(&app), who(&target.id))))
    } else {
        wf.revoke(actor, &app, &target).await?;
        Ok(ephemeral(&format!("Removed `{}` from {}.", esc(&app), who(&target.id))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_from_mentions() {
        assert_eq!(parse_user("<@U123ABC|bob>"), Some("U123ABC".into()));
        assert_eq!(parse_user("<@W9>"), None);
        assert_eq!(parse_user("<@W99>"), Some("W99".into()));
        assert_eq!(parse_user("U0BOB"), Some("U0BOB".into()));
        assert_eq!(parse_user("@bob"), None);
    }

    #[test]
    fn only_commands_with_effects_are_replay_protected() {
        for t in ["suggest Figma", "CANCEL req1", "admin resend r", "admin Cancel r", "admin assign r"] {
            assert!(replay_protected(t).is_some(), "{t}");
        }
        assert_eq!(replay_protected("admin grant zoom <@U1>"), Some("/access admin grant"));
        assert_eq!(replay_protected("admin revoke zoom <@U1>"), Some("/access admin revoke"));
        for t in ["", "help", "apps", "mine", "tasks", "request zoom", "admin", "admin pending", "admin show r"] {
            assert_eq!(replay_protected(t), None, "{t}");
        }
    }

    #[test]
    fn words() {
        assert_eq!(word("  request salesforce  need it  for Q3 "), ("request", "salesforce  need it  for Q3"));
        assert_eq!(word("apps"), ("apps", ""));
    }
}
