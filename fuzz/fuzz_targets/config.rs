//! The config file: `parse_catalog` never panics on any text, every problem it
//! reports names what is wrong, and any catalog it accepts runs: a request for
//! every app can be submitted, reminded, expired and overridden by an admin, and
//! the app granted directly.
#![no_main]

use accessbot::config::parse_catalog;
use accessbot::workflow::engine::{self, timers, NewRequest};
use accessbot::workflow::{Actor, ActorType, Party, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let catalog = match parse_catalog("fuzz.toml", text) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without a problem");
            assert!(e.problems.iter().all(|p| !p.message.is_empty()), "{e}");
            let _ = e.to_string();
            return;
        }
    };
    let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("a time");
    let requester = Party::new("U0FUZZREQ", Some("fuzz-requester@example.com".into()));
    let actor = Actor::user(requester.clone(), Source::Slack);
    let token =
        Actor { party: Party::new("tok_fuzz", None), kind: ActorType::ApiToken, name: None, source: Source::Api };
    for app in catalog.apps.values().take(16) {
        let input = NewRequest {
            app_id: app.id.clone(),
            requested_by: requester.clone(),
            requested_for: requester.clone(),
            justification: "fuzz".into(),
            fields: Vec::new(),
            extension: None,
        };
        let Ok(cs) = engine::submit(&catalog, input, &actor, now) else { continue };
        let req = cs.request.expect("a request");
        let later = now + chrono::TimeDelta::days(400);
        let _ = timers::remind_or_expire(&catalog, req.clone(), now + chrono::TimeDelta::days(1));
        let _ = timers::remind_or_expire(&catalog, req.clone(), later);
        let _ = engine::grant_direct(&catalog, &app.id, &Party::new("U0FUZZOTHER", None), None, &token, now);
        if let Ok(cs) = engine::override_assign(&catalog, req, &token, now) {
            let granted = cs.request.expect("a request");
            if let Some(until) = granted.access_until {
                assert!(until >= now, "access ends before it starts");
            }
        }
    }
});
