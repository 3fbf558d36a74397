//! Extend: `/access extend <app> [duration] [justification]` (and the Extend
//! button on access-ending warnings) asks the app's `extend_steps`; on approval
//! the end of access moves; `max_extensions` limits it.

use reqwest::StatusCode;

use crate::helpers::*;

const EXTEND_CONFIG: &str = r#"
[settings]
admins = ["U0ROOT"]

[apps.aws]
name = "AWS"
max_duration = "1d"
durations = ["8h", "1d"]
max_extensions = 1
steps = [{ user = "U0ALICE" }]
extend_steps = [{ user = "U0DAVE" }]
"#;

async fn access_is_extended_through_the_extension_steps(b: Backend) {
    let mut setup = Setup::new(b);
    setup.config = EXTEND_CONFIG.to_string();
    let app = spawn_with(setup).await;
    let id = app.request_app("U0EVE", "aws", "1d on call").await;
    assert_eq!(app.click("U0ALICE", "approve", &id, 0).await, StatusCode::OK);
    let first = app.store().assignment("U0EVE", "aws").await.unwrap().expect("granted");
    let ends = first.expires.expect("time-bound");

    let reply = app.say("U0EVE", "extend aws 8h release week").await;
    let ext = reply.split('`').nth(1).expect("an extension request id").to_string();
    let r = app.request(&ext).await;
    assert_eq!(r.extension.map(|e| e.ends), Some(ends));
    assert_eq!(r.steps[0].approvers, vec![accessbot::workflow::Person::Slack("U0DAVE".into())], "extend_steps");
    app.drain().await;
    let asked = app.slack.dms_to("U0DAVE");
    assert!(
        asked.iter().any(|c| c.text().contains("Extension") && c.text().contains("of current access")),
        "{asked:?}"
    );
    assert_eq!(app.click("U0DAVE", "approve", &ext, 0).await, StatusCode::OK);
    let extended = app.store().assignment("U0EVE", "aws").await.unwrap().expect("still granted");
    assert_eq!(extended.expires, Some(ends + chrono::Duration::hours(8)), "the end moved by 8h");
    assert_eq!(extended.granted, first.granted, "the grant keeps its start");
    assert_eq!(app.request(&ext).await.access_duration.as_deref(), Some("PT8H"));

    // One extension per grant; none without time-bound access.
    let reply = app.say("U0EVE", "extend aws 8h again").await;
    assert!(reply.contains("allows 1 extension"), "{reply}");
    let reply = app.say("U0OTHER", "extend aws 8h").await;
    assert!(reply.contains("no time-bound access"), "{reply}");
    assert!(app.say("U0EVE", "extend").await.contains("Usage"));
}

crate::both!(access_is_extended_through_the_extension_steps);
