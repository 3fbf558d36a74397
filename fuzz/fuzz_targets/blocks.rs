//! Block Kit rendering of arbitrary request data: every message stays within
//! Slack's limits — at most 50 blocks; section and context texts of 1 to 3000
//! characters, section fields at most 10 of at most 2000; headers at most 150;
//! buttons at most 75 characters of text, values at most 2000, ids at most 255;
//! at most 25 elements in an actions block — and is valid JSON.
#![no_main]

use accessbot::slack::blocks::{ask, closed, closed_task, direct, ephemeral, ephemeral_list, requester, summary, task};
use accessbot::workflow::model::{
    AskKind, AssignmentSource, CloseKind, Request, RequestView, RequesterEvent, Routing, Status, Step, StepKind,
    StepState,
};
use accessbot::workflow::{Party, Person};
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A request id as the workflow makes them: `req` + 17 letters and digits.
fn request_id(u: &mut Unstructured) -> arbitrary::Result<String> {
    let mut id = String::from("req");
    for _ in 0..17 {
        id.push(char::from(*u.choose(ALNUM)?));
    }
    Ok(id)
}

/// A chat user id: usually Slack's shape, sometimes any short text (ids the API validated, emails, token names).
fn user_id(u: &mut Unstructured) -> arbitrary::Result<String> {
    if u.arbitrary()? {
        let n = u.int_in_range(2..=12)?;
        let mut id = String::from(if u.arbitrary()? { "U" } else { "W" });
        for _ in 0..n {
            id.push(char::from(*u.choose(&ALNUM[..26])?));
        }
        Ok(id)
    } else {
        let s: String = u.arbitrary()?;
        Ok(s.chars().take(40).collect())
    }
}

fn status(u: &mut Unstructured) -> arbitrary::Result<Status> {
    Ok(*u.choose(&Status::ALL)?)
}

fn step(u: &mut Unstructured) -> arbitrary::Result<Step> {
    let kind = match u.int_in_range(0..=3)? {
        0 => StepKind::User,
        1 => StepKind::Group { group_id: u.arbitrary()?, group_name: u.arbitrary()? },
        2 => StepKind::Action { url: u.arbitrary()?, secret_env: None, fields: Default::default() },
        _ => StepKind::Task { group_id: u.arbitrary()?, group_name: u.arbitrary()? },
    };
    let n = u.int_in_range(0..=4)?;
    let approvers = (0..n)
        .map(|_| Ok(if u.arbitrary()? { Person::Slack(user_id(u)?) } else { Person::Email(u.arbitrary()?) }))
        .collect::<arbitrary::Result<Vec<_>>>()?;
    let routed_to = *u.choose(&[None, Some(Routing::AppAdmins), Some(Routing::SuperAdmins)])?;
    let state = *u.choose(&[
        StepState::Waiting,
        StepState::Pending,
        StepState::Approved,
        StepState::Denied,
        StepState::Closed,
        StepState::Deleted,
    ])?;
    Ok(Step {
        kind,
        approvers,
        routed_to,
        state,
        activated: None,
        decided_by: u.arbitrary::<Option<()>>()?.map(|_| user_id(u)).transpose()?,
        decided: None,
        comment: u.arbitrary()?,
        reminded: None,
    })
}

struct Input {
    view: RequestView,
    request: Request,
    step: usize,
    label: String,
    routed: Option<Routing>,
    ask_kind: AskKind,
    close: CloseKind,
    by: Option<String>,
    event: RequesterEvent,
    lines: Vec<String>,
    text: String,
}

fn input(u: &mut Unstructured) -> arbitrary::Result<Input> {
    let id = request_id(u)?;
    let app_name: String = u.arbitrary()?;
    let (by, for_) = (user_id(u)?, user_id(u)?);
    let justification: String = u.arbitrary()?;
    let n = u.int_in_range(0..=12)?;
    let steps = (0..n).map(|_| step(u)).collect::<arbitrary::Result<Vec<_>>>()?;
    let st = status(u)?;
    let now = chrono::DateTime::from_timestamp(u.int_in_range(0..=4_102_444_800)?, 0).expect("in range");
    let view = RequestView {
        id: id.clone(),
        app_id: u.arbitrary()?,
        app_name: app_name.clone(),
        requested_by: by.clone(),
        requested_for: for_.clone(),
        justification: justification.clone(),
        status: st,
        step_count: steps.len(),
        fields: u.arbitrary()?,
    };
    let request = Request {
        id,
        app_id: view.app_id.clone(),
        app_name,
        requested_by: Party::new(by, None),
        requested_for: Party::new(for_, None),
        justification,
        field_values: Vec::new(),
        status: st,
        current_step: u.arbitrary::<Option<u8>>()?.map(usize::from),
        steps,
        created: now,
        created_by: user_id(u)?,
        last_updated: now,
        last_updated_by: user_id(u)?,
        resolved: None,
        grant_status: None,
        granted: None,
        reason: u.arbitrary()?,
        flagged: u.arbitrary()?,
        access_until: None,
        access_duration: None,
        revocation_status: None,
        revoked: None,
        version: 1,
    };
    let source = *u.choose(&[AssignmentSource::Workflow, AssignmentSource::Override, AssignmentSource::Direct])?;
    let event = match u.int_in_range(0..=10)? {
        0 => RequesterEvent::Submitted { first_step: u.arbitrary()? },
        1 => RequesterEvent::StepApproved { step: u.int_in_range(0..=20)?, by: user_id(u)?, next_step: u.arbitrary()? },
        2 => RequesterEvent::Approved { source, by: u.arbitrary::<Option<()>>()?.map(|_| user_id(u)).transpose()? },
        3 => RequesterEvent::Denied { by: user_id(u)? },
        4 => RequesterEvent::Canceled { by: user_id(u)?, reason: u.arbitrary()? },
        5 => RequesterEvent::Rejected { reason: u.arbitrary()? },
        6 => RequesterEvent::Revoked { by: user_id(u)? },
        7 => RequesterEvent::Message { from: user_id(u)?, text: u.arbitrary()? },
        8 => RequesterEvent::Expired,
        9 => RequesterEvent::AccessEnding { ends: now },
        _ => RequesterEvent::AccessEnded,
    };
    Ok(Input {
        view,
        request,
        step: u.int_in_range(0..=20)?,
        label: u.arbitrary()?,
        routed: *u.choose(&[None, Some(Routing::AppAdmins), Some(Routing::SuperAdmins)])?,
        ask_kind: *u.choose(&[AskKind::New, AskKind::Resend, AskKind::Reminder])?,
        close: *u.choose(&[
            CloseKind::Approved,
            CloseKind::Denied,
            CloseKind::Canceled,
            CloseKind::Overridden,
            CloseKind::Expired,
        ])?,
        by: u.arbitrary::<Option<()>>()?.map(|_| user_id(u)).transpose()?,
        event,
        lines: u.arbitrary()?,
        text: u.arbitrary()?,
    })
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn text_object(what: &str, t: &Value, max: usize) {
    let n = chars(&t["text"]);
    assert!(t["text"].is_string(), "{what}: text is a string: {t}");
    assert!((1..=max).contains(&n), "{what}: {n} characters (1..={max})");
}

/// Slack's limits on one message's blocks.
fn check(what: &str, blocks: &[Value]) {
    assert!(blocks.len() <= 50, "{what}: {} blocks", blocks.len());
    let json = serde_json::to_string(blocks).expect("serializes");
    let back: Vec<Value> = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(back, blocks, "{what}: JSON round trip");
    for b in blocks {
        match b["type"].as_str() {
            Some("section") => {
                if !b["text"].is_null() {
                    text_object(what, &b["text"], 3000);
                }
                if let Some(fields) = b["fields"].as_array() {
                    assert!(fields.len() <= 10, "{what}: {} fields", fields.len());
                    for f in fields {
                        text_object(what, f, 2000);
                    }
                }
                assert!(!b["text"].is_null() || b["fields"].is_array(), "{what}: a section has text or fields");
            }
            Some("header") => text_object(what, &b["text"], 150),
            Some("context") => {
                let elements = b["elements"].as_array().expect("context elements");
                assert!((1..=10).contains(&elements.len()), "{what}: {} context elements", elements.len());
                for e in elements {
                    text_object(what, e, 3000);
                }
            }
            Some("actions") => {
                let elements = b["elements"].as_array().expect("action elements");
                assert!((1..=25).contains(&elements.len()));
                assert!(chars(&b["block_id"]) <= 255, "{what}: block_id");
                for e in elements {
                    text_object(what, &e["text"], 75);
                    assert!(chars(&e["value"]) <= 2000, "{what}: button value");
                    assert!(chars(&e["action_id"]) <= 255, "{what}: action_id");
                }
            }
            other => panic!("{what}: unexpected block type {other:?}"),
        }
    }
}

fn check_message(what: &str, (text, blocks): (String, Vec<Value>)) {
    assert!(!text.is_empty(), "{what}: a notification has fallback text");
    check(what, &blocks);
}

fn check_reply(what: &str, reply: Value) {
    assert!(chars(&reply["text"]) <= 3000, "{what}: reply text");
    check(what, reply["blocks"].as_array().expect("blocks"));
}

fuzz_target!(|data: &[u8]| {
    let Ok(i) = input(&mut Unstructured::new(data)) else { return };
    check_message("ask", ask(&i.view, i.step, &i.label, i.routed, i.ask_kind));
    check_message("task", task(&i.view, i.step, &i.label, i.routed, i.ask_kind));
    check_message("closed", closed(&i.view, i.step, i.close, i.by.as_deref()));
    check_message("closed_task", closed_task(&i.view, i.step, i.close, i.by.as_deref()));
    check_message("requester", requester(Some(&i.view), &i.view.app_name, &i.event));
    check_message("requester (no request)", requester(None, &i.view.app_name, &i.event));
    if !i.text.trim().is_empty() {
        check_message("direct", direct(&i.text));
    }
    let line = summary(&i.request);
    assert!(line.contains(&i.request.id), "a summary names the request");
    let mut lines = i.lines.clone();
    lines.insert(0, line);
    // The titles are fixed texts in the code.
    check_reply("ephemeral_list", ephemeral_list("*Your requests* (newest first)", &lines));
    if !i.text.trim().is_empty() {
        check_reply("ephemeral", ephemeral(&i.text));
    }
});
