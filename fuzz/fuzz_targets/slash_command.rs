//! The `/access` slash command: the form body as the handler decodes it, then
//! the command text split the way the handler dispatches it (`word`,
//! `parse_user`). Never panics; `word` splits off one whitespace-free word and
//! a trimmed rest; `parse_user` only yields Slack user ids.
#![no_main]

use accessbot::slack::parse::{parse_user, word, CommandForm};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    /// Any body at all.
    Raw(&'a [u8]),
    /// A well-formed form with this command text (and user and team).
    Text { text: &'a str, user: &'a str, team: &'a str },
}

fn is_slack_id(s: &str) -> bool {
    s.len() >= 3
        && (s.starts_with('U') || s.starts_with('W'))
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// `word`, with what it promises checked.
fn split(s: &str) -> (&str, &str) {
    let (w, rest) = word(s);
    assert!(!w.contains(char::is_whitespace), "{w:?}");
    assert_eq!(rest, rest.trim(), "the rest is trimmed");
    assert!(s.trim_start().starts_with(w), "{w:?} is where {s:?} starts");
    assert_eq!(w.is_empty(), s.trim().is_empty(), "a word unless there is nothing");
    assert!(w.len() + rest.len() <= s.len());
    (w, rest)
}

fn user(s: &str) -> Option<String> {
    let id = parse_user(s)?;
    assert!(is_slack_id(&id), "{id:?} from {s:?}");
    assert!(s == id || s.starts_with(&format!("<@{id}")), "{id:?} from {s:?}");
    Some(id)
}

/// The dispatch of `commands::run`, `request` and `admin`, minus the effects.
fn dispatch(text: &str) {
    let (cmd, rest) = split(text);
    match cmd.to_ascii_lowercase().as_str() {
        "request" => {
            let (_app, rest) = split(rest);
            let (w, tail) = split(rest);
            if w.eq_ignore_ascii_case("for") {
                let (who, _justification) = split(tail);
                user(who);
            }
        }
        "cancel" => {
            split(rest);
        }
        "admin" => {
            let (sub, rest) = split(rest);
            match sub.to_ascii_lowercase().as_str() {
                "pending" | "show" | "resend" | "assign" | "cancel" => {
                    split(rest);
                }
                "grant" | "revoke" => {
                    let (_app, who) = split(rest);
                    user(split(who).0);
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fuzz_target!(|input: Input| {
    let (body, expected) = match input {
        Input::Raw(b) => (b.to_vec(), None),
        Input::Text { text, user, team } => {
            let body = serde_urlencoded::to_string([("team_id", team), ("user_id", user), ("text", text)])
                .expect("strings encode");
            (body.into_bytes(), Some(text))
        }
    };
    let Ok(form) = serde_urlencoded::from_bytes::<CommandForm>(&body) else {
        assert!(expected.is_none(), "a well-formed form was refused");
        return;
    };
    if let Some(text) = expected {
        assert_eq!(form.text.as_deref(), Some(text), "the text survives the form encoding");
    }
    dispatch(form.text.unwrap_or_default().trim());
});
