#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every crash the fuzz targets in `fuzz/` found, as a plain test (`scripts/fuzz.sh`
//! runs them). Each test names its target and what the input was.

use accessbot::config::parse_catalog;
use accessbot::slack::verify::{sign, verify, Rejection};
use accessbot::workflow::engine::{self, NewRequest};
use accessbot::workflow::model::Status;
use accessbot::workflow::{Actor, ActorType, Party, Source};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const NOW: i64 = 1_780_000_000;

/// `signature`: `X-Slack-Request-Timestamp: -9223372036854775808` overflowed
/// `now - ts` while checking the skew (a panic in debug builds, before the
/// signature is even looked at); any clock far from the timestamp did too.
#[test]
fn signature_extreme_timestamps_are_stale_not_an_overflow() {
    let body = b"token=x&team_id=T0TEAM&user_id=U0EVE&text=apps";
    for (ts, now) in [
        (i64::MIN.to_string(), NOW),
        (i64::MAX.to_string(), -NOW),
        ("1".to_string(), i64::MIN),
        ("-1".to_string(), i64::MAX),
        (i64::MIN.to_string(), i64::MAX),
    ] {
        let sig = sign(SECRET, &ts, body);
        assert_eq!(verify(SECRET, Some(&ts), Some(&sig), body, now), Err(Rejection::Stale), "{ts} at {now}");
    }
    // The edges of the window still hold.
    let ts = NOW.to_string();
    let sig = sign(SECRET, &ts, body);
    assert_eq!(verify(SECRET, Some(&ts), Some(&sig), body, NOW + 300), Ok(()));
    assert_eq!(verify(SECRET, Some(&ts), Some(&sig), body, NOW - 300), Ok(()));
    assert_eq!(verify(SECRET, Some(&ts), Some(&sig), body, NOW + 301), Err(Rejection::Stale));
}

/// `blocks`: a direct message whose text was only markup (backticks, `*`,
/// emoji codes) rendered an empty fallback `text`, which Slack shows as a blank
/// notification (and refuses when there are no blocks either).
#[test]
fn blocks_direct_message_of_only_markup_has_fallback_text() {
    for text in ["", "``````", "**", ":bulb:", "` * `", "\n>\n>"] {
        let (fallback, blocks) = accessbot::slack::blocks::direct(text);
        assert!(!fallback.trim().is_empty(), "{text:?}");
        assert!(!blocks.is_empty(), "{text:?}");
    }
    assert_eq!(accessbot::slack::blocks::direct("*hello* `you`").0, "hello you");
}

/// `config`: a valid config with `max_duration = "100000000years"` made every
/// grant of that app panic (`DateTime + TimeDelta` overflowed): the request, an
/// admin override, a direct grant. Such a duration caps nothing now.
#[test]
fn config_huge_max_duration_grants_without_overflow() {
    let catalog = parse_catalog(
        "accessbot.toml",
        r#"
[settings]
admins = ["U0ROOT"]

[apps.instant]
approval = false
max_duration = "100000000years"

[apps.reviewed]
max_duration = "200000years"
steps = [{ user = "U0ALICE" }]
"#,
    )
    .unwrap();
    let now = chrono::DateTime::from_timestamp(NOW, 0).unwrap();
    let req = Party::new("U0REQ", None);
    let actor = Actor::user(req.clone(), Source::Slack);
    let input = |app: &str| NewRequest {
        app_id: app.into(),
        requested_by: req.clone(),
        requested_for: req.clone(),
        justification: String::new(),
        fields: Vec::new(),
        extension: None,
    };

    let granted = engine::submit(&catalog, input("instant"), &actor, now).unwrap().request.unwrap();
    assert_eq!(granted.status, Status::Approved);
    assert_eq!(granted.access_until, None, "past the end of time: no end");

    // Within chrono's range (about 262,000 years), the cap still applies.
    let pending = engine::submit(&catalog, input("reviewed"), &actor, now).unwrap().request.unwrap();
    let token = Actor { party: Party::new("tok_x", None), kind: ActorType::ApiToken, name: None, source: Source::Api };
    let overridden = engine::override_assign(&catalog, pending, &token, now).unwrap().request.unwrap();
    assert_eq!(overridden.status, Status::Approved);
    assert!(overridden.access_until.is_some_and(|t| t > now));

    let root = Actor::user(Party::new("U0ROOT", None), Source::Slack);
    let direct = engine::grant_direct(&catalog, "instant", &Party::new("U0BOB", None), None, &root, now).unwrap();
    assert!(direct.assignment.is_some());
}
