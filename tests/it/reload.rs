//! Config reload (`POST /admin/reload`, SIGHUP) and the stranded-request rule:
//! pending requests a new config would strand are flagged, admins are told,
//! and an invalid file changes nothing.

use std::time::Duration;

use accessbot::workflow::model::{ActorType, OutcomeResult};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_slack::FakeSlack;
use crate::helpers::*;
use crate::process;

const GITHUB: &str = "[apps.github]\nname = \"GitHub\"\nadmins = [\"U0GHADMIN\"]\nsteps = [{ group = \"security\" }]\n";

async fn post_reload(base: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().post(format!("{base}/admin/reload"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn reload(app: &TestApp, config: &str) -> (StatusCode, Value) {
    app.write_config(config);
    let res = post_reload(&app.base, Some(API_TOKEN)).await;
    app.drain().await;
    res
}

async fn api_get(base: &str, path: &str) -> Value {
    let res = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.json().await.unwrap()
}

async fn apps_listed(app: &TestApp) -> String {
    app.command("U0EVE", "apps").await.1.to_string()
}

fn flagged_ids(report: &Value) -> Vec<String> {
    report["flagged"].as_array().unwrap().iter().map(|f| f["requestId"].as_str().unwrap().to_string()).collect()
}

async fn removing_an_app_flags_its_pending_requests_and_tells_the_admins(b: Backend) {
    let app = spawn_app(b).await;
    let gh = app.request_app("U0REQ", "github", "code review").await;
    let sf = app.request_app("U0REQ", "salesforce", "forecasts").await;
    app.drain().await;
    app.slack.clear();

    let (status, report) = reload(&app, &CONFIG.replace(GITHUB, "")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "reloaded");
    assert_eq!(report["apps"], 3);
    assert_eq!(report["groups"], 1);
    assert_eq!(report["flagged"], json!([{"requestId": gh, "reason": "app github was removed"}]));

    let r = app.request(&gh).await;
    assert_eq!(r.flagged.as_deref(), Some("app github was removed"));
    assert_eq!(r.status.as_str(), "PENDING", "flagging decides nothing");
    assert_eq!(app.request(&sf).await.flagged, None);

    let flagged = app.events_of("app.access_request.flagged").await;
    assert_eq!(flagged.len(), 1);
    let ev = &flagged[0];
    assert_eq!(ev.actor.kind, ActorType::System);
    assert_eq!(ev.target[0].id, gh);
    assert_eq!(ev.debug_context.debug_data["reason"], "app github was removed");
    assert_eq!(ev.debug_context.debug_data["trigger"], "API");
    let reloads = app.events_of("system.config.reload").await;
    assert_eq!(reloads.len(), 1);
    assert_eq!(reloads[0].outcome.result, OutcomeResult::Success);
    assert_eq!(reloads[0].actor.kind, ActorType::ApiToken);
    assert_eq!(reloads[0].debug_context.debug_data["flagged"], json!([gh]));

    // The super admin gets the full list, the app's admins their app's requests; once each.
    let root = app.slack.dms_to("U0ROOT");
    assert_eq!(root.len(), 1, "{root:?}");
    assert!(root[0].text().contains(&gh) && root[0].text().contains("app github was removed"), "{}", root[0].text());
    assert!(!root[0].text().contains(&sf));
    let gh_admin = app.slack.dms_to("U0GHADMIN");
    assert_eq!(gh_admin.len(), 1);
    assert!(gh_admin[0].text().contains(&gh));
    assert!(app.slack.dms_to("U0SFADMIN").is_empty(), "salesforce's admins have nothing to do");

    // The new catalog is in effect.
    let listed = apps_listed(&app).await;
    assert!(!listed.contains("github") && listed.contains("salesforce"), "{listed}");

    // Reloading the same file again tells nobody twice.
    let (status, again) = reload(&app, &CONFIG.replace(GITHUB, "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["flagged"], json!([]));
    assert_eq!(again["alreadyFlagged"], json!([{"requestId": gh, "reason": "app github was removed"}]));
    assert_eq!(app.slack.dms_to("U0ROOT").len(), 1);
    assert_eq!(app.events_of("app.access_request.flagged").await.len(), 1);

    // Putting the app back leaves the flag (it records what happened) and says so.
    let (_, back) = reload(&app, CONFIG).await;
    assert_eq!(back["flagged"], json!([]));
    assert_eq!(back["noLongerStranded"], json!([gh]));
    assert!(app.request(&gh).await.flagged.is_some());
}

async fn disabling_self_service_flags(b: Backend) {
    let app = spawn_app(b).await;
    let gh = app.request_app("U0REQ", "github", "code review").await;
    let (status, report) =
        reload(&app, &CONFIG.replace("name = \"GitHub\"", "name = \"GitHub\"\nself_service = false")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["flagged"], json!([{"requestId": gh, "reason": "app github is no longer self-service"}]));
    assert_eq!(app.request(&gh).await.flagged.as_deref(), Some("app github is no longer self-service"));
    assert!(app.slack.dms_to("U0ROOT").iter().any(|c| c.text().contains(&gh)));
    assert!(!apps_listed(&app).await.contains("github"));
}

async fn removing_an_approver_flags_requests_waiting_on_them(b: Backend) {
    let app = spawn_app(b).await;
    let waiting = app.request_app("U0REQ", "salesforce", "forecasts").await;
    let past = app.request_app("U0REQ2", "salesforce", "pipeline").await;
    let gh = app.request_app("U0REQ", "github", "code review").await;
    app.drain().await;
    assert_eq!(app.click("U0ALICE", "approve", &past, 0).await, StatusCode::OK);
    app.drain().await;

    let config = CONFIG.replace("{ user = \"U0ALICE\" }", "{ user = \"U0ERIN\" }");
    let (status, report) = reload(&app, &config).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["flagged"],
        json!([{"requestId": waiting, "reason": "approver U0ALICE of step 1 is no longer configured"}]),
        "Alice already decided {past}'s step; {gh} never needed her"
    );
    assert_eq!(app.request(&past).await.flagged, None);
    assert_eq!(app.request(&gh).await.flagged, None);
    let root = app.slack.dms_to("U0ROOT");
    assert!(root.iter().any(|c| c.text().contains(&waiting) && c.text().contains("U0ALICE")), "{root:?}");
    assert!(app.slack.dms_to("U0SFADMIN").iter().any(|c| c.text().contains(&waiting)));
}

async fn removing_or_emptying_the_security_group(b: Backend) {
    let app = spawn_app(b).await;
    let sf = app.request_app("U0REQ", "salesforce", "forecasts").await;
    let gh = app.request_app("U0REQ", "github", "code review").await;
    app.drain().await;

    // Emptying the group is not a valid config: refused, nothing flagged, old catalog kept.
    let emptied = CONFIG.replace("members = [\"U0BOB\", \"carol@example.com\"]", "members = []");
    let (status, err) = reload(&app, &emptied).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["errorCauses"][0]["location"], "groups.security.members");
    assert!(app.events_of("app.access_request.flagged").await.is_empty());

    // Removing it (and its uses) strands every request still to reach a security step.
    let removed = CONFIG
        .replace("[groups.security]\nname = \"Security Team\"\nmembers = [\"U0BOB\", \"carol@example.com\"]\n", "")
        .replace("{ group = \"security\" }, ", "")
        .replace("steps = [{ group = \"security\" }]", "steps = [{ user = \"U0ERIN\" }]");
    let (status, report) = reload(&app, &removed).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["groups"], 0);
    let mut ids = flagged_ids(&report);
    ids.sort();
    let mut want = vec![sf.clone(), gh.clone()];
    want.sort();
    assert_eq!(ids, want);
    for id in [&sf, &gh] {
        assert_eq!(app.request(id).await.flagged.as_deref(), Some("group security was removed"));
    }
    let root = app.slack.dms_to("U0ROOT");
    let told = root.iter().find(|c| c.text().contains(&sf)).expect("super admin told");
    assert!(told.text().contains(&gh), "one message with the full list: {}", told.text());
    assert_eq!(app.events_of("app.access_request.flagged").await.len(), 2);
}

async fn an_unrelated_change_flags_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let sf = app.request_app("U0REQ", "salesforce", "forecasts").await;
    let gh = app.request_app("U0REQ", "github", "code review").await;
    app.drain().await;
    app.slack.clear();
    // Carol written by Slack id instead of email is the same person (identity cache).
    let config = CONFIG
        .replace("description = \"CRM\"", "description = \"CRM for sales\"")
        .replace("carol@example.com", "U0CAROL")
        + "\n[apps.notion]\nname = \"Notion\"\napproval = false\n";
    let (status, report) = reload(&app, &config).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["apps"], 5);
    assert_eq!(report["flagged"], json!([]));
    for id in [&sf, &gh] {
        assert_eq!(app.request(id).await.flagged, None);
    }
    assert!(app.events_of("app.access_request.flagged").await.is_empty());
    assert_eq!(app.events_of("system.config.reload").await.len(), 1);
    assert!(app.slack.dms_to("U0ROOT").is_empty());
    assert!(apps_listed(&app).await.contains("notion"));
    // Carol still decides the security step.
    assert_eq!(app.click("U0ALICE", "approve", &sf, 0).await, StatusCode::OK);
    assert_eq!(app.click("U0CAROL", "approve", &sf, 1).await, StatusCode::OK);
    assert_eq!(app.request(&sf).await.current_step, Some(2));
}

async fn an_invalid_file_is_refused_and_the_old_catalog_kept(b: Backend) {
    let app = spawn_app(b).await;
    let gh = app.request_app("U0REQ", "github", "code review").await;
    app.drain().await;

    let (status, _) = post_reload(&app.base, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post_reload(&app.base, Some("wrong-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Two problems (and github removed, which must not be applied).
    let broken = CONFIG
        .replace(GITHUB, "")
        .replace("admins = [\"U0ROOT\"]", "admins = [\"U0ROOT\"]\nrequest_ttl = \"two weeks\"")
        .replace("steps = [{ user = \"U0ALICE\" }]", "steps = [{ group = \"secuirty\" }]");
    let (status, err) = reload(&app, &broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["errorCode"], "E0000001");
    let causes = err["errorCauses"].as_array().unwrap();
    let locations: Vec<&str> = causes.iter().map(|c| c["location"].as_str().unwrap()).collect();
    assert_eq!(locations, ["settings.request_ttl", "apps.payroll.steps[0].group"], "{err}");
    assert!(causes[1]["reason"].as_str().unwrap().contains("unknown group \"secuirty\""), "{err}");

    // A TOML syntax error is one cause.
    let (status, err) = reload(&app, "[apps.github\nname = 1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["errorCode"], "E0000001");
    assert_eq!(err["errorCauses"].as_array().unwrap().len(), 1);

    // The old catalog still serves; nothing was flagged; the refusals are logged.
    assert!(apps_listed(&app).await.contains("github"));
    let again = app.request_app("U0REQ2", "github", "still requestable").await;
    assert_ne!(again, gh);
    assert_eq!(app.request(&gh).await.flagged, None);
    assert!(app.events_of("app.access_request.flagged").await.is_empty());
    let reloads = app.events_of("system.config.reload").await;
    assert_eq!(reloads.len(), 2);
    assert!(reloads.iter().all(|e| e.outcome.result == OutcomeResult::Failure));
    assert_eq!(reloads[0].debug_context.debug_data["problems"][0]["key"], "settings.request_ttl");
}

async fn a_config_edited_while_down_flags_on_start(b: Backend) {
    let app = spawn_app(b.clone()).await;
    let gh = app.request_app("U0REQ", "github", "code review").await;
    let sf = app.request_app("U0REQ", "salesforce", "forecasts").await;
    app.drain().await;
    let mut setup = Setup::new(b.clone());
    setup.config = CONFIG.replace(GITHUB, "");
    let app = app.restart(setup).await;
    app.drain().await;
    assert_eq!(app.request(&gh).await.flagged.as_deref(), Some("app github was removed"));
    assert_eq!(app.request(&sf).await.flagged, None);
    let ev = app.events_of("app.access_request.flagged").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].debug_context.debug_data["trigger"], "STARTUP");
    assert!(app.slack.dms_to("U0ROOT").iter().any(|c| c.text().contains(&gh)));
    // A second start with the same file flags and tells nothing again.
    let told = app.slack.dms_to("U0ROOT").len();
    let mut setup = Setup::new(b);
    setup.config = CONFIG.replace(GITHUB, "");
    let app = app.restart(setup).await;
    app.drain().await;
    assert_eq!(app.events_of("app.access_request.flagged").await.len(), 1);
    assert_eq!(app.slack.dms_to("U0ROOT").len(), told);
}

/// Polls `f` until it holds (the binary handles SIGHUP asynchronously).
async fn eventually<F, Fut>(what: &str, p: &process::Proc, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened; log:\n{}", p.logs());
}

async fn catalog_ids(base: &str) -> Vec<String> {
    let cat = api_get(base, "/governance/api/v2/catalog/entries").await;
    cat["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

fn sighup(p: &process::Proc) {
    let status = std::process::Command::new("kill").args(["-HUP", &p.child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

async fn sighup_reloads_the_config_file(b: Backend) {
    let db = TestDb::create(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    slack.add_user("U0CAROL", "carol@example.com");
    let mut p = process::start(dir.path(), "hup", &db.url, &slack, &[]).await;
    let chat = ChatClient::new(&p.base, &slack);
    let gh = chat.request_app("U0REQ", "github", "code review").await;
    assert!(catalog_ids(&p.base).await.contains(&"github".to_string()));

    let config = CONFIG.replace(GITHUB, "") + "\n[apps.notion]\nname = \"Notion\"\napproval = false\n";
    std::fs::write(dir.path().join("accessbot.toml"), config).unwrap();
    sighup(&p);
    let base = p.base.clone();
    let (base_ref, slack_ref, gh_ref) = (&base, &slack, &gh);
    eventually("the new catalog", &p, || async move {
        let ids = catalog_ids(base_ref).await;
        ids.contains(&"notion".to_string()) && !ids.contains(&"github".to_string())
    })
    .await;
    let logs = |q: &'static str| {
        let base = base.clone();
        async move {
            let url = format!("/api/v1/logs?filter={}", urlencode(&format!("eventType eq \"{q}\"")));
            api_get(&base, &url).await.as_array().unwrap().clone()
        }
    };
    // The catalog is swapped in before the reload's event is committed (after the flags').
    let logs_ref = &logs;
    eventually("the reload's event", &p, || async move { !logs_ref("system.config.reload").await.is_empty() }).await;
    let flagged = logs("app.access_request.flagged").await;
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0]["target"][0]["id"], json!(gh));
    assert_eq!(flagged[0]["actor"]["type"], "SYSTEM");
    assert_eq!(flagged[0]["debugContext"]["debugData"]["reason"], "app github was removed");
    let reloads = logs("system.config.reload").await;
    assert_eq!(reloads.len(), 1);
    assert_eq!(reloads[0]["outcome"]["result"], "SUCCESS");
    assert_eq!(reloads[0]["debugContext"]["debugData"]["trigger"], "SIGHUP");
    eventually("the super admin's DM", &p, || async move {
        slack_ref.dms_to("U0ROOT").iter().any(|c| c.text().contains(gh_ref.as_str()))
    })
    .await;
    assert!(p.logs().contains("SIGHUP: config reloaded"));

    // An invalid file is refused with every problem logged; the running catalog stays.
    std::fs::write(dir.path().join("accessbot.toml"), "[settings]\nrequest_ttl = \"soon\"\nadmin_channel = \"#x\"\n")
        .unwrap();
    sighup(&p);
    let p_ref = &p;
    eventually("the refusal", &p, || async move { p_ref.logs().contains("SIGHUP: config refused") }).await;
    let log = p.logs();
    assert!(log.contains("settings.request_ttl") && log.contains("settings.admin_channel"), "{log}");
    assert!(catalog_ids(&base).await.contains(&"notion".to_string()));
    let reloads = logs("system.config.reload").await;
    assert_eq!(reloads.len(), 2);
    assert_eq!(reloads[1]["outcome"]["result"], "FAILURE");
    assert!(p.child.try_wait().unwrap().is_none(), "SIGHUP never stops the server");
    p.sigterm();
    let status = p.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap().trim_start_matches("x=").to_string()
}

crate::both!(
    removing_an_app_flags_its_pending_requests_and_tells_the_admins,
    disabling_self_service_flags,
    removing_an_approver_flags_requests_waiting_on_them,
    removing_or_emptying_the_security_group,
    an_unrelated_change_flags_nothing,
    an_invalid_file_is_refused_and_the_old_catalog_kept,
    a_config_edited_while_down_flags_on_start,
    sighup_reloads_the_config_file,
);
