//! The config file, the environment and `accessbot check-config`, from the outside.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use accessbot::config::{load_catalog, parse_catalog, ConfigError, Env, IpRange, Secret};
use accessbot::workflow::catalog::{EscalateTo, FieldKind, OktaTarget, Person, StepDef, StepSpec, TaskAssignee};

/// The configured steps without their escalations.
fn defs(steps: &[StepSpec]) -> Vec<StepDef> {
    steps.iter().map(|s| s.def.clone()).collect()
}

const FILE: &str = "accessbot.toml";

/// A valid group, for configs whose steps need one.
const SECURITY: &str = "[groups.security]\nmembers = [\"U0BOB\"]\n";

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("accessbot.example.toml")
}

/// Parses `text` expecting failure; returns the error.
fn parse_err(text: &str) -> ConfigError {
    parse_catalog(FILE, text).expect_err("config should be rejected")
}

/// Parses `text` expecting exactly one problem; returns its full Display line.
fn one_problem(text: &str) -> String {
    let err = parse_err(text);
    assert_eq!(err.problems.len(), 1, "expected one problem, got:\n{err}");
    err.to_string()
}

fn slack(id: &str) -> Person {
    Person::Slack(id.to_string())
}

fn email(e: &str) -> Person {
    Person::Email(e.to_string())
}

// ---------------------------------------------------------------------------
// The example file
// ---------------------------------------------------------------------------

#[test]
fn example_config_loads_with_expected_catalog() {
    let catalog = load_catalog(&example_path()).unwrap_or_else(|e| panic!("example config is invalid:\n{e}"));

    let s = &catalog.settings;
    assert_eq!(s.admins, vec![slack("U0ADMIN"), email("root@example.com")]);
    assert!(!s.allow_request_on_behalf);
    assert_eq!(s.technical_contact, None);
    assert_eq!(s.admin_channel, None);
    assert_eq!(s.request_ttl, Duration::from_secs(14 * 86_400));
    assert_eq!(s.reminder_after, Duration::from_secs(86_400));

    assert_eq!(catalog.groups.len(), 2);
    let security = &catalog.groups["security"];
    assert_eq!(security.name, "Security Team");
    assert_eq!(security.members, vec![slack("U0BOB"), email("carol@example.com")]);
    assert_eq!(security.slack_usergroup, None);
    assert!(!catalog.groups["finance"].members.is_empty());

    assert_eq!(catalog.apps.keys().collect::<Vec<_>>(), ["aws", "github", "payroll", "salesforce", "zoom"]);

    let sf = &catalog.apps["salesforce"];
    assert_eq!(sf.name, "Salesforce");
    assert!(sf.self_service && sf.approval);
    assert_eq!(
        defs(&sf.steps),
        vec![
            StepDef::User(slack("U0ALICE")),
            StepDef::Group { group: "security".into(), approvals: 1 },
            StepDef::User(slack("U0ADMIN"))
        ]
    );
    assert_eq!(sf.admins, vec![email("dave@example.com")]);
    assert_eq!(sf.fields.len(), 1);
    assert_eq!(sf.fields[0].id, "justification");
    assert_eq!(sf.fields[0].kind, FieldKind::Text);
    assert!(sf.fields[0].required);
    assert!(sf.justification_required());
    assert_eq!(sf.max_duration, None);

    let gh = &catalog.apps["github"];
    assert!(gh.approval && gh.self_service);
    assert_eq!(defs(&gh.steps), vec![StepDef::Group { group: "security".into(), approvals: 1 }]);
    assert!(!gh.justification_required());

    let zoom = &catalog.apps["zoom"];
    assert!(!zoom.approval);
    assert!(zoom.self_service);
    assert!(zoom.steps.is_empty());

    let payroll = &catalog.apps["payroll"];
    assert!(!payroll.self_service);
    assert!(payroll.approval);
    assert_eq!(defs(&payroll.steps), vec![StepDef::Group { group: "finance".into(), approvals: 1 }]);
}

#[test]
fn empty_config_is_valid_with_default_settings() {
    let catalog = parse_catalog(FILE, "").unwrap();
    assert!(catalog.apps.is_empty() && catalog.groups.is_empty());
    assert_eq!(catalog.settings.request_ttl, Duration::from_secs(14 * 86_400));
    assert_eq!(catalog.settings.reminder_after, Duration::from_secs(86_400));
}

// ---------------------------------------------------------------------------
// Config errors: file, key and problem named
// ---------------------------------------------------------------------------

#[test]
fn unknown_settings_key_names_key_path_and_line() {
    let msg = one_problem("[settings]\nadmins = [\"U0ADMIN\"]\nadmin = [\"U0X\"]\n");
    assert!(
        msg.starts_with("accessbot.toml: settings.admin: unknown field `admin`, expected one of `admins`"),
        "{msg}"
    );
    assert!(msg.contains("(line 3"), "{msg}");
}

#[test]
fn unknown_top_level_table_is_named() {
    let msg = one_problem("[setting]\nadmins = []\n");
    assert!(msg.starts_with("accessbot.toml: setting: unknown field `setting`"), "{msg}");
    assert!(msg.contains("`settings`") && msg.contains("(line 1"), "{msg}");
}

#[test]
fn unknown_app_key_names_key_path_and_line() {
    let msg = one_problem(&format!("{SECURITY}\n[apps.github]\nsteps = [{{ group = \"security\" }}]\naprovers = 1\n"));
    assert!(msg.starts_with("accessbot.toml: apps.github.aprovers: unknown field `aprovers`"), "{msg}");
    assert!(msg.contains("(line 6"), "{msg}");
}

#[test]
fn unknown_step_key_names_step_index() {
    let msg = one_problem(&format!("{SECURITY}\n[apps.github]\nsteps = [{{ grup = \"security\" }}]\n"));
    assert!(msg.starts_with("accessbot.toml: apps.github.steps[0].grup: unknown field `grup`"), "{msg}");
    assert!(msg.contains("(line 5"), "{msg}");
}

#[test]
fn wrong_value_type_names_key_and_line() {
    let msg = one_problem("[settings]\nallow_request_on_behalf = \"yes\"\n");
    assert_eq!(
        msg,
        "accessbot.toml: settings.allow_request_on_behalf: invalid type: string \"yes\", expected a boolean (line 2: `allow_request_on_behalf = \"yes\"`)"
    );
}

#[test]
fn unknown_group_in_step_lists_defined_groups() {
    let msg = one_problem(&format!(
        "{SECURITY}\n[apps.salesforce]\nsteps = [{{ user = \"U0ALICE\" }}, {{ group = \"secuirty\" }}]\n"
    ));
    assert_eq!(
        msg,
        "accessbot.toml: apps.salesforce.steps[1].group: unknown group \"secuirty\" (defined groups: security)"
    );
}

#[test]
fn unknown_group_with_no_groups_defined_says_none() {
    let msg = one_problem("[apps.github]\nsteps = [{ group = \"security\" }]\n");
    assert_eq!(msg, "accessbot.toml: apps.github.steps[0].group: unknown group \"security\" (defined groups: none)");
}

#[test]
fn empty_group_members_rejected() {
    let msg = one_problem("[groups.security]\nmembers = []\n");
    assert_eq!(msg, "accessbot.toml: groups.security.members: is empty: a group needs at least one member");
}

#[test]
fn group_without_members_or_usergroup_rejected() {
    let msg = one_problem("[groups.security]\nname = \"Security Team\"\n");
    assert_eq!(
        msg,
        "accessbot.toml: groups.security: has no members: give members = [...] or slack_usergroup = \"S…\""
    );
}

#[test]
fn duplicate_group_member_rejected() {
    let msg = one_problem("[groups.security]\nmembers = [\"U0BOB\", \"carol@example.com\", \"U0BOB\"]\n");
    assert_eq!(msg, "accessbot.toml: groups.security.members[2]: duplicate entry \"U0BOB\"");
}

#[test]
fn duplicate_group_member_email_is_case_insensitive() {
    let msg = one_problem("[groups.security]\nmembers = [\"Carol@Example.com\", \"carol@example.com\"]\n");
    assert_eq!(msg, "accessbot.toml: groups.security.members[1]: duplicate entry \"carol@example.com\"");
}

#[test]
fn duplicate_field_id_rejected() {
    let msg = one_problem(&format!(
        "{SECURITY}\n[apps.github]\nsteps = [{{ group = \"security\" }}]\n\
         fields = [{{ id = \"region\", type = \"text\" }}, {{ id = \"region\", type = \"text\" }}]\n"
    ));
    assert_eq!(msg, "accessbot.toml: apps.github.fields[1].id: duplicate field id \"region\"");
}

#[test]
fn bad_duration_rejected_with_example() {
    let msg = one_problem("[settings]\nrequest_ttl = \"two weeks\"\n");
    // The middle is humantime's own wording; pin only our part.
    assert!(msg.starts_with("accessbot.toml: settings.request_ttl: \"two weeks\" is not a duration: write e.g. \"90m\", \"1d\" or \"14d\" ("), "{msg}");
}

#[test]
fn a_duration_past_a_century_is_rejected() {
    let msg = one_problem("[settings]\nreminder_after = \"1000000y\"\n");
    assert_eq!(msg, "accessbot.toml: settings.reminder_after: \"1000000y\" is longer than 100 years");
}

#[test]
fn zero_duration_rejected() {
    let msg = one_problem("[settings]\nreminder_after = \"0s\"\n");
    assert_eq!(msg, "accessbot.toml: settings.reminder_after: must be longer than zero");
}

#[test]
fn bad_person_id_rejected() {
    let msg = one_problem("[settings]\nadmins = [\"alice\"]\n");
    assert_eq!(
        msg,
        "accessbot.toml: settings.admins[0]: \"alice\" is neither a Slack user id \
         (U… or W…, upper-case letters and digits) nor an email"
    );
}

#[test]
fn bad_email_rejected() {
    let msg = one_problem("[settings]\nadmins = [\"U0ADMIN\", \"alice@localhost\"]\n");
    assert_eq!(msg, "accessbot.toml: settings.admins[1]: \"alice@localhost\" is not a valid email address");
}

#[test]
fn approval_without_steps_rejected() {
    let msg = one_problem("[apps.github]\nname = \"GitHub\"\n");
    assert_eq!(
        msg,
        "accessbot.toml: apps.github.steps: approval is on but there are no steps: add steps or set approval = false"
    );
}

#[test]
fn step_that_is_both_user_and_group_rejected() {
    let msg =
        one_problem(&format!("{SECURITY}\n[apps.github]\nsteps = [{{ user = \"U0ALICE\", group = \"security\" }}]\n"));
    assert!(msg.starts_with("accessbot.toml: apps.github.steps[0]: a step is exactly one of "), "{msg}");
    assert!(msg.contains("{ user = \"…\" }") && msg.contains("{ group = \"…\" }"), "{msg}");
}

#[test]
fn duplicate_app_table_is_a_toml_error_with_line() {
    let err = parse_err(&format!(
        "{SECURITY}\n[apps.github]\nsteps = [{{ group = \"security\" }}]\n\n[apps.github]\napproval = false\n"
    ));
    assert_eq!(err.problems.len(), 1, "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("accessbot.toml: "), "{msg}");
    assert!(msg.contains("duplicate key"), "{msg}");
    assert!(msg.ends_with("(line 7: `[apps.github]`)"), "{msg}");
    assert_eq!(msg.lines().count(), 1, "one line per problem: {msg}");
}

#[test]
fn several_problems_reported_together() {
    let text = "\
[settings]
admins = [\"alice\"]
request_ttl = \"soon\"

[groups.security]
members = []

[apps.github]
steps = [{ group = \"ops\" }]

[apps.Zoom]
approval = false
";
    let err = parse_err(text);
    assert_eq!(err.file, FILE);
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "settings.admins[0]",
            "settings.request_ttl",
            "groups.security.members",
            "apps.Zoom",
            "apps.github.steps[0].group",
        ]
    );
    let shown = err.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 5, "{shown}");
    for (line, key) in lines.iter().zip(&keys) {
        assert!(line.starts_with(&format!("accessbot.toml: {key}: ")), "{line}");
    }
    assert!(shown.contains("unknown group \"ops\""), "{shown}");
    assert!(shown.contains("app ids use lower-case letters"), "{shown}");
}

#[test]
fn the_specs_example_config_loads() {
    // SPEC §7's example, verbatim in shape: user, group, action and task steps, fields, provisioning.
    let text = r#"
[settings]
admins = ["U0ADMIN", "root@example.com"]
technical_contact = "it@example.com"
allow_request_on_behalf = false
admin_channel = "C0ADMINS"
request_ttl = "14d"
reminder_after = "1d"

[groups.security]
name = "Security Team"
members = ["U0BOB", "carol@example.com"]

[apps.salesforce]
name = "Salesforce"
description = "CRM for the sales org"
self_service = true
approval = true
admins = ["dave@example.com"]
max_duration = "30d"
steps = [
  { user = "U0ALICE" },
  { group = "security" },
  { action = { url = "https://hooks.example.com/flow", secret_env = "FLOW_SECRET",
               fields = { requesterEmail = "requester.email", justification = "field.justification" } } },
  { task = { group = "security" } },
]
fields = [
  { id = "justification", label = "Business justification", type = "text", required = true },
  { id = "region", label = "Region", type = "select", options = ["EU", "US"] },
  { id = "end_date", label = "Access until", type = "date" },
]
provisioning = { url = "https://hooks.example.com/grant", secret_env = "GRANT_SECRET" }
"#;
    let c = parse_catalog(FILE, text).unwrap();
    let app = &c.apps["salesforce"];
    assert_eq!(app.steps.len(), 4);
    assert!(matches!(&app.steps[2].def, StepDef::Action { url, .. } if url == "https://hooks.example.com/flow"));
    assert!(matches!(&app.steps[3].def, StepDef::Task(TaskAssignee::Group(g)) if g == "security"));
    assert_eq!(app.provisioning.as_ref().unwrap().secret_env.as_deref(), Some("GRANT_SECRET"));
    assert_eq!(app.max_duration, Some(std::time::Duration::from_secs(30 * 86_400)));
}

#[test]
fn action_task_and_provisioning_problems_are_named() {
    let text = format!(
        "{SECURITY}\n[apps.github]\n\
         steps = [{{ action = {{ url = \"ftp://x\", secret_env = \"lower\", fields = {{ a = \"field.nope\", b = \"requester.phone\" }} }} }},\n\
                  {{ task = {{ user = \"U0BOB\", group = \"security\" }} }}, {{ task = {{ group = \"ops\" }} }}]\n\
         fields = [{{ id = \"end_date\", type = \"text\" }}]\n\
         provisioning = {{ url = \"not a url\" }}\n"
    );
    let err = parse_err(&text);
    let got: Vec<String> = err.problems.iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
    let want = [
        "apps.github.steps[0].action.url: \"ftp://x\" is not an http(s) URL",
        "apps.github.steps[0].action.secret_env: \"lower\" is not an environment variable name (e.g. GRANT_SECRET)",
        "apps.github.steps[0].action.fields.a: unknown source \"field.nope\"",
        "apps.github.steps[0].action.fields.b: unknown source \"requester.phone\"",
        "apps.github.steps[1].task: a task names exactly one assignee",
        "apps.github.steps[2].task.group: unknown group \"ops\"",
        "apps.github.provisioning.url: \"not a url\" is not an http(s) URL",
        "apps.github.fields[0].type: the `end_date` field caps access and must have type = \"date\"",
    ];
    for w in want {
        assert!(got.iter().any(|g| g.starts_with(w)), "missing {w:?} in {got:#?}");
    }
}

#[test]
fn bad_webhook_urls_are_not_echoed_with_credentials() {
    let text = format!(
        "{SECURITY}\n[apps.github]\napproval = false\n\
         provisioning = {{ url = \"ftp://svc:hunter2@hooks.internal/grant?token=hunter2\" }}\n"
    );
    let msg = parse_err(&text).to_string();
    assert!(
        msg.contains("apps.github.provisioning.url: \"ftp://hooks.internal/grant\" is not an http(s) URL"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn load_catalog_names_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let err = load_catalog(&path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}: cannot read the file: ", path.display())), "{msg}");
}

// ---------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------

fn env_from(pairs: &[(&str, &str)]) -> Result<Env, ConfigError> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Env::from_lookup(&|k| map.get(k).cloned())
}

fn secret_file(dir: &tempfile::TempDir, name: &str, contents: &str) -> String {
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    path.display().to_string()
}

#[test]
fn env_defaults() {
    let env = env_from(&[]).unwrap();
    assert_eq!(env.port, 3000);
    assert_eq!(env.database_url, "sqlite://accessbot.db");
    assert_eq!(env.slack_api_base_url, "https://slack.com/api");
    assert_eq!(env.config_path, PathBuf::from("accessbot.toml"));
    assert!(env.signing_secret.is_empty());
    assert!(env.bot_token.is_empty());
    assert!(env.api_tokens.is_empty());
    assert_eq!(env.team_ids, None);
    assert!(env.slack_app_token.is_none(), "Socket Mode is off by default");
    let err = env.require_secrets().unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN"]);
}

#[test]
fn env_app_token_must_be_an_app_level_token() {
    let env = env_from(&[("SLACK_APP_TOKEN", "xapp-1-A0-123-abc")]).unwrap();
    assert_eq!(env.slack_app_token.as_ref().map(|t| t.expose()), Some("xapp-1-A0-123-abc"));
    let err = env_from(&[("SLACK_APP_TOKEN", "xoxb-the-bot-token")]).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].key, "SLACK_APP_TOKEN");
    assert!(err.problems[0].message.contains("xapp-") && err.problems[0].message.contains("connections:write"));
    assert!(!err.to_string().contains("xoxb-the-bot-token"), "the value is never echoed: {err}");
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(&dir, "app-token", "xapp-from-file\n");
    let env = env_from(&[("SLACK_APP_TOKEN_FILE", &file)]).unwrap();
    assert_eq!(env.slack_app_token.as_ref().map(|t| t.expose()), Some("xapp-from-file"));
}

#[test]
fn env_values_override_defaults() {
    let env = env_from(&[
        ("PORT", "8080"),
        ("DATABASE_URL", "postgres://db/accessbot"),
        ("SLACK_API_BASE_URL", "http://127.0.0.1:9999/api/"),
        ("ACCESSBOT_CONFIG", "/etc/accessbot/accessbot.toml"),
        ("SLACK_SIGNING_SECRET", "sign"),
        ("SLACK_BOT_TOKEN", "xoxb-1"),
    ])
    .unwrap();
    assert_eq!(env.port, 8080);
    assert_eq!(env.database_url, "postgres://db/accessbot");
    assert_eq!(env.slack_api_base_url, "http://127.0.0.1:9999/api");
    assert_eq!(env.config_path, PathBuf::from("/etc/accessbot/accessbot.toml"));
    assert_eq!(env.signing_secret.expose(), "sign");
    assert_eq!(env.bot_token.expose(), "xoxb-1");
    env.require_secrets().unwrap();
}

#[test]
fn env_secret_file_variants_trim_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let signing = secret_file(&dir, "signing", "s3cr3t\n");
    let bot = secret_file(&dir, "bot", "xoxb-from-file\r\n");
    let tokens = secret_file(&dir, "tokens", "tok-a, tok-b\n");
    let env = env_from(&[
        ("SLACK_SIGNING_SECRET_FILE", &signing),
        ("SLACK_BOT_TOKEN_FILE", &bot),
        ("ACCESSBOT_API_TOKENS_FILE", &tokens),
    ])
    .unwrap();
    assert_eq!(env.signing_secret.expose(), "s3cr3t");
    assert_eq!(env.bot_token.expose(), "xoxb-from-file");
    let toks: Vec<&str> = env.api_tokens.iter().map(Secret::expose).collect();
    assert_eq!(toks, ["tok-a", "tok-b"]);
}

#[test]
fn env_unreadable_secret_file_names_variable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").display().to_string();
    let err = env_from(&[("SLACK_BOT_TOKEN_FILE", &missing)]).unwrap_err();
    assert_eq!(err.file, "environment");
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].key, "SLACK_BOT_TOKEN_FILE");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("environment: SLACK_BOT_TOKEN_FILE: cannot read {missing}: ")), "{msg}");
}

#[test]
fn env_api_tokens_split_on_commas() {
    let env = env_from(&[("ACCESSBOT_API_TOKENS", "alpha, beta,,gamma ,")]).unwrap();
    let toks: Vec<&str> = env.api_tokens.iter().map(Secret::expose).collect();
    assert_eq!(toks, ["alpha", "beta", "gamma"]);
}

#[test]
fn env_read_tokens_like_full_tokens() {
    let env = env_from(&[]).unwrap();
    assert!(env.api_read_tokens.is_empty() && env.public_url.is_none() && env.trusted_proxies.is_empty());
    let env = env_from(&[("ACCESSBOT_API_READ_TOKENS", "r1, ,r2")]).unwrap();
    let toks: Vec<&str> = env.api_read_tokens.iter().map(Secret::expose).collect();
    assert_eq!(toks, ["r1", "r2"]);
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(&dir, "read", "r3,r4\n");
    let env = env_from(&[("ACCESSBOT_API_READ_TOKENS_FILE", &file)]).unwrap();
    let toks: Vec<&str> = env.api_read_tokens.iter().map(Secret::expose).collect();
    assert_eq!(toks, ["r3", "r4"]);
    assert!(!format!("{env:?}").contains("r3"));
    let missing = dir.path().join("missing").display().to_string();
    let err = env_from(&[("ACCESSBOT_API_READ_TOKENS_FILE", &missing)]).unwrap_err();
    assert_eq!(err.problems[0].key, "ACCESSBOT_API_READ_TOKENS_FILE");
}

#[test]
fn env_public_url_is_checked_and_trimmed() {
    let url = |v: &str| env_from(&[("ACCESSBOT_PUBLIC_URL", v)]).map(|e| e.public_url);
    assert_eq!(url("https://accessbot.example.com/").unwrap().as_deref(), Some("https://accessbot.example.com"));
    assert_eq!(url("http://10.0.0.5:8080/accessbot/").unwrap().as_deref(), Some("http://10.0.0.5:8080/accessbot"));
    assert_eq!(url("  ").unwrap(), None);
    for (bad, says) in [
        ("accessbot.example.com", "is not an absolute URL"),
        ("ftp://accessbot.example.com", "is not an http(s) URL"),
        ("https://admin:hunter2@accessbot.example.com", "user name or password"),
        ("https://accessbot.example.com/?token=hunter2", "query string or fragment"),
        ("https://accessbot.example.com/#hunter2", "query string or fragment"),
    ] {
        let err = url(bad).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{bad}");
        let msg = err.to_string();
        assert!(msg.starts_with("environment: ACCESSBOT_PUBLIC_URL: "), "{msg}");
        assert!(msg.contains(says), "{bad}: {msg}");
        assert!(!msg.contains("hunter2"), "echoes a secret: {msg}");
    }
}

#[test]
fn env_trusted_proxies_are_addresses_or_ranges() {
    let env = env_from(&[("ACCESSBOT_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,,::1, fd00::/8")]).unwrap();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let trusted = |s: &str| env.trusted_proxies.iter().any(|r| r.contains(ip(s)));
    assert_eq!(env.trusted_proxies.len(), 4);
    for yes in ["127.0.0.1", "10.200.3.4", "::1", "fd12::1", "::ffff:10.1.1.1"] {
        assert!(trusted(yes), "{yes}");
    }
    for no in ["127.0.0.2", "11.0.0.1", "::2", "fe80::1"] {
        assert!(!trusted(no), "{no}");
    }
    assert!(IpRange::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.9")));
    for bad in ["proxy.internal", "10.0.0.0/33", "::1/129", "10.0.0.1/x"] {
        let err = env_from(&[("ACCESSBOT_TRUSTED_PROXIES", bad)]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "environment: ACCESSBOT_TRUSTED_PROXIES: \"{bad}\" is not an IP address or CIDR range"
            )),
            "{msg}"
        );
    }
}

#[test]
fn env_team_ids_split_on_commas() {
    let env = env_from(&[("SLACK_TEAM_IDS", "T0AAA, T0BBB")]).unwrap();
    assert_eq!(env.team_ids, Some(vec!["T0AAA".to_string(), "T0BBB".to_string()]));
    // Empty means unset (any workspace, with a warning at start), never "no workspace".
    assert_eq!(env_from(&[("SLACK_TEAM_IDS", " , ")]).unwrap().team_ids, None);
}

#[test]
fn env_bad_port_names_key() {
    let err = env_from(&[("PORT", "http")]).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].key, "PORT");
    assert_eq!(err.to_string(), "environment: PORT: \"http\" is not a port number");

    let err = env_from(&[("PORT", "70000")]).unwrap_err();
    assert_eq!(err.problems[0].key, "PORT");
}

#[test]
fn secret_debug_never_prints_value() {
    let s = Secret::new("hunter2-very-secret");
    assert_eq!(format!("{s:?}"), "Secret(***)");
    assert_eq!(format!("{s:#?}"), "Secret(***)");

    let env = env_from(&[
        ("SLACK_SIGNING_SECRET", "hunter2-signing"),
        ("SLACK_BOT_TOKEN", "xoxb-hunter2"),
        ("ACCESSBOT_API_TOKENS", "tok-hunter2"),
    ])
    .unwrap();
    let shown = format!("{env:?} {env:#?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("Secret(***)"), "{shown}");
}

// ---------------------------------------------------------------------------
// CLI: accessbot check-config
// ---------------------------------------------------------------------------

/// Runs the binary from the crate root with a clean environment.
fn accessbot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_accessbot"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run accessbot")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cli_check_config_example_ok() {
    let out = accessbot(&["check-config", "--config", "accessbot.example.toml"]);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("accessbot.example.toml: OK"), "{text}");
    assert!(text.contains("5 apps, 2 groups, 2 super admins"), "{text}");
}

#[test]
fn cli_check_config_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[settings]\nadmins = [\"alice\"]\nreminder_after = \"later\"\n\n\
         [groups.security]\nmembers = [\"U0BOB\", \"U0BOB\"]\n\n\
         [apps.github]\nsteps = [{ group = \"secuirty\" }]\n",
    )
    .unwrap();
    let file = path.display().to_string();
    let out = accessbot(&["check-config", "--config", &file]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    for key in
        ["settings.admins[0]", "settings.reminder_after", "groups.security.members[1]", "apps.github.steps[0].group"]
    {
        let prefix = format!("{file}: {key}: ");
        assert!(err.lines().any(|l| l.starts_with(&prefix)), "no line starting {prefix:?} in:\n{err}");
    }
    let problem_lines = err.lines().filter(|l| l.starts_with(&format!("{file}: "))).count();
    assert_eq!(problem_lines, 4, "{err}");
}

#[test]
fn cli_check_config_missing_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("absent.toml").display().to_string();
    let out = accessbot(&["check-config", "--config", &file]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    assert!(err.contains(&format!("{file}: cannot read the file")), "{err}");
}

#[test]
fn cli_check_config_defaults_to_accessbot_config_env() {
    let out = Command::new(env!("CARGO_BIN_EXE_accessbot"))
        .arg("check-config")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ACCESSBOT_CONFIG", "accessbot.example.toml")
        .output()
        .expect("run accessbot");
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", stderr(&out));
    assert!(stdout(&out).contains("accessbot.example.toml: OK"), "{}", stdout(&out));
}

#[test]
fn a_group_step_quorum_is_from_one_to_the_group_size() {
    let group = "[groups.sec]\nmembers = [\"U0BOB\", \"U0CAROL\"]\n";
    let ok =
        parse_catalog(FILE, &format!("{group}[apps.a]\nsteps = [{{ group = \"sec\", approvals = 2 }}]\n")).unwrap();
    assert_eq!(defs(&ok.apps["a"].steps), vec![StepDef::Group { group: "sec".into(), approvals: 2 }]);
    for bad in ["0", "3", "-1"] {
        let e = one_problem(&format!("{group}[apps.a]\nsteps = [{{ group = \"sec\", approvals = {bad} }}]\n"));
        assert!(e.contains("apps.a.steps[0].approvals"), "{e}");
        assert!(e.contains(&format!("approvals must be from 1 to the 2 member(s) of group \"sec\", not {bad}")), "{e}");
    }
    let e = one_problem("[apps.a]\nsteps = [{ user = \"U0BOB\", approvals = 2 }]\n");
    assert!(e.contains("apps.a.steps[0].approvals") && e.contains("applies only to a { group"), "{e}");
}

#[test]
fn requesters_are_groups_or_people() {
    let base = "[groups.design]\nmembers = [\"U0DES\"]\n[apps.a]\napproval = false\n";
    let ok = parse_catalog(FILE, &format!("{base}requesters = [\"design\", \"U0PM\", \"pm@example.com\"]\n")).unwrap();
    assert_eq!(ok.apps["a"].requesters.as_ref().map(Vec::len), Some(3));
    let e = one_problem(&format!("{base}requesters = [\"design\", \"nobody\"]\n"));
    assert!(e.contains("apps.a.requesters[1]") && e.contains("neither a group of this config nor"), "{e}");
    let e = one_problem(&format!("{base}requesters = []\n"));
    assert!(e.contains("apps.a.requesters") && e.contains("lets nobody request"), "{e}");
}

// ---------------------------------------------------------------------------
// The Okta connector: [okta] and apps.<id>.okta
// ---------------------------------------------------------------------------

const OKTA: &str = "[okta]\norg_url = \"https://acme.okta.com\"\n";

#[test]
fn okta_targets_parse() {
    let text = format!(
        "{OKTA}[apps.crm]\napproval = false\nokta = {{ app_id = \"0oa1b2c3\" }}\n\n\
         [apps.wiki]\napproval = false\nokta = {{ group_id = \"00g9z8y7\" }}\n"
    );
    let c = parse_catalog(FILE, &text).unwrap();
    assert_eq!(c.okta.unwrap().org_url, "https://acme.okta.com");
    assert_eq!(c.apps["crm"].okta, Some(OktaTarget::App("0oa1b2c3".into())));
    assert_eq!(c.apps["wiki"].okta, Some(OktaTarget::Group("00g9z8y7".into())));
}

#[test]
fn okta_target_without_okta_section_names_the_key() {
    let msg = one_problem("[apps.crm]\napproval = false\nokta = { app_id = \"0oa1b2c3\" }\n");
    assert!(msg.starts_with("accessbot.toml: apps.crm.okta: ") && msg.contains("no [okta] section"), "{msg}");
}

#[test]
fn okta_target_needs_exactly_one_id() {
    for target in ["{ }", "{ app_id = \"0oa1\", group_id = \"00g1\" }"] {
        let msg = one_problem(&format!("{OKTA}[apps.crm]\napproval = false\nokta = {target}\n"));
        assert!(msg.contains("apps.crm.okta: give exactly one of app_id"), "{msg}");
    }
    let msg = one_problem(&format!("{OKTA}[apps.crm]\napproval = false\nokta = {{ group_id = \"\" }}\n"));
    assert!(msg.contains("apps.crm.okta.group_id: \"\" is not an Okta id"), "{msg}");
    let msg = one_problem(&format!("{OKTA}[apps.crm]\napproval = false\nokta = {{ app = \"0oa1\" }}\n"));
    assert!(msg.contains("apps.crm.okta"), "{msg}");
}

#[test]
fn okta_org_url_must_be_https() {
    for bad in ["acme.okta.com", "http://acme.okta.com", "https://acme.okta.com/admin", "https://u:p@acme.okta.com"] {
        let msg = one_problem(&format!("[okta]\norg_url = \"{bad}\"\n"));
        assert!(msg.starts_with("accessbot.toml: okta.org_url: "), "{bad}: {msg}");
        assert!(!msg.contains("u:p"), "credentials echoed: {msg}");
    }
    // Loopback may be plain http (tests), and a trailing slash is trimmed.
    let c = parse_catalog(FILE, "[okta]\norg_url = \"http://127.0.0.1:8080/\"\n").unwrap();
    assert_eq!(c.okta.unwrap().org_url, "http://127.0.0.1:8080");
    let msg = one_problem("[okta]\norg_url = \"https://acme.okta.com\"\ntoken = \"x\"\n");
    assert!(msg.contains("okta") && msg.contains("token"), "{msg}");
}

#[test]
fn okta_token_comes_from_env_or_file_and_is_required_with_okta() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = parse_catalog(FILE, OKTA).unwrap();
    let env = env_from(&[]).unwrap();
    let err = env.require_okta(&catalog).unwrap_err().to_string();
    assert!(err.starts_with("environment: OKTA_API_TOKEN: is not set (or OKTA_API_TOKEN_FILE)"), "{err}");
    assert!(env.require_okta(&parse_catalog(FILE, "").unwrap()).is_ok(), "no [okta]: no token needed");
    let env = env_from(&[("OKTA_API_TOKEN", "00abc")]).unwrap();
    assert_eq!(env.okta_token, Some(Secret::new("00abc")));
    assert!(!format!("{env:?}").contains("00abc"), "token in Debug");
    let file = secret_file(&dir, "okta", "00fromfile\n");
    let env = env_from(&[("OKTA_API_TOKEN_FILE", &file)]).unwrap();
    assert_eq!(env.okta_token, Some(Secret::new("00fromfile")));
    env.require_okta(&catalog).unwrap();
}

#[test]
fn cli_check_config_reports_okta_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("okta.toml");
    std::fs::write(
        &path,
        "[okta]\norg_url = \"ftp://acme\"\n\n[apps.crm]\napproval = false\nokta = { app_id = \"0oa1\", group_id = \"00g1\" }\n",
    )
    .unwrap();
    let file = path.display().to_string();
    let out = accessbot(&["check-config", "--config", &file]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    for key in ["okta.org_url", "apps.crm.okta"] {
        let prefix = format!("{file}: {key}: ");
        assert!(err.lines().any(|l| l.starts_with(&prefix)), "no line starting {prefix:?} in:\n{err}");
    }
}

#[test]
fn durations_are_choices_within_max_duration() {
    let ok = parse_catalog(FILE, "[apps.a]\napproval = false\nmax_duration = \"7d\"\ndurations = [\"1h\", \"7d\"]\n")
        .unwrap();
    assert_eq!(ok.apps["a"].durations, vec![Duration::from_secs(3600), Duration::from_secs(7 * 86_400)]);
    let e = one_problem("[apps.a]\napproval = false\nmax_duration = \"1d\"\ndurations = [\"1h\", \"8d\"]\n");
    assert!(e.contains("apps.a.durations[1]") && e.contains("longer than max_duration (1day)"), "{e}");
    let e = one_problem("[apps.a]\napproval = false\ndurations = []\n");
    assert!(e.contains("apps.a.durations") && e.contains("offers no choice"), "{e}");
    let e = one_problem("[apps.a]\napproval = false\ndurations = [\"soon\"]\n");
    assert!(e.contains("apps.a.durations[0]") && e.contains("is not a duration"), "{e}");
}

#[test]
fn extension_steps_and_limit_are_checked_like_steps() {
    let ok = parse_catalog(
        FILE,
        "[apps.a]\nmax_extensions = 2\nsteps = [{ user = \"U0BOB\" }]\nextend_steps = [{ user = \"U0DAVE\" }]\n",
    )
    .unwrap();
    assert_eq!(ok.apps["a"].max_extensions, Some(2));
    assert_eq!(defs(&ok.apps["a"].extend_steps), vec![StepDef::User(slack("U0DAVE"))]);
    let e = one_problem("[apps.a]\nsteps = [{ user = \"U0BOB\" }]\nextend_steps = [{ group = \"nope\" }]\n");
    assert!(e.contains("apps.a.extend_steps[0].group") && e.contains("unknown group"), "{e}");
    let e = one_problem("[apps.a]\nmax_extensions = -1\nsteps = [{ user = \"U0BOB\" }]\n");
    assert!(e.contains("apps.a.max_extensions") && e.contains("must be 0 or more"), "{e}");
}

#[test]
fn an_escalation_names_a_group_or_a_person_and_comes_before_expiry() {
    let group = "[groups.sec]\nmembers = [\"U0BOB\"]\n[groups.leads]\nmembers = [\"U0LEAD1\"]\n";
    let ok = parse_catalog(
        FILE,
        &format!(
            "{group}[apps.a]\nsteps = [{{ group = \"sec\", escalate_after = \"2d\", escalate_to = \"leads\" }}, \
             {{ user = \"U0BOB\", escalate_after = \"90m\", escalate_to = \"cto@example.com\" }}]\n"
        ),
    )
    .unwrap();
    let esc: Vec<_> = ok.apps["a"].steps.iter().map(|s| s.escalation.clone().unwrap()).collect();
    assert_eq!(esc[0].after, Duration::from_secs(2 * 86_400));
    assert_eq!(esc[0].to, EscalateTo::Group("leads".into()));
    assert_eq!(esc[1].after, Duration::from_secs(90 * 60));
    assert_eq!(esc[1].to, EscalateTo::Person(Person::Email("cto@example.com".into())));

    let cases = [
        (
            "{ user = \"U0BOB\", escalate_after = \"2d\" }",
            "apps.a.steps[0].escalate_to",
            "escalate_after needs escalate_to",
        ),
        (
            "{ user = \"U0BOB\", escalate_to = \"leads\" }",
            "apps.a.steps[0].escalate_after",
            "escalate_to needs escalate_after",
        ),
        (
            "{ user = \"U0BOB\", escalate_after = \"soon\", escalate_to = \"leads\" }",
            "apps.a.steps[0].escalate_after",
            "\"soon\" is not a duration",
        ),
        (
            "{ user = \"U0BOB\", escalate_after = \"2d\", escalate_to = \"nobody here\" }",
            "apps.a.steps[0].escalate_to",
            "\"nobody here\" is neither a group of this config nor a Slack user id or email",
        ),
        (
            "{ user = \"U0BOB\", escalate_after = \"30d\", escalate_to = \"leads\" }",
            "apps.a.steps[0].escalate_after",
            "30days is not before settings.request_ttl (14days): the request would expire first",
        ),
        (
            "{ action = { url = \"https://hooks.example.com/x\" }, escalate_after = \"1d\", escalate_to = \"leads\" }",
            "apps.a.steps[0].escalate_after",
            "an action step is decided by no one",
        ),
    ];
    for (step, key, message) in cases {
        let e = one_problem(&format!("{group}[apps.a]\nsteps = [{step}]\n"));
        assert!(e.contains(key), "{step}: {e}");
        assert!(e.contains(message), "{step}: {e}");
    }
}

// ---------------------------------------------------------------------------
// Slack user groups: groups.<id>.slack_usergroup, settings.usergroup_refresh
// ---------------------------------------------------------------------------

#[test]
fn a_group_can_be_a_slack_user_group() {
    let c = parse_catalog(
        FILE,
        "[settings]\nusergroup_refresh = \"5m\"\n\n[groups.sec]\nname = \"Security\"\nslack_usergroup = \"S0614TZR7\"\n\n\
         [apps.a]\nsteps = [{ group = \"sec\", approvals = 3 }]\nrequesters = [\"sec\"]\n",
    )
    .unwrap();
    let g = &c.groups["sec"];
    assert_eq!(g.slack_usergroup.as_deref(), Some("S0614TZR7"));
    assert!(g.members.is_empty() && !g.usergroup_known, "members come from Slack");
    assert_eq!(c.settings.usergroup_refresh, Duration::from_secs(300));
    // The user group's size is Slack's: any quorum of 1 or more is accepted.
    assert_eq!(defs(&c.apps["a"].steps), vec![StepDef::Group { group: "sec".into(), approvals: 3 }]);
}

#[test]
fn usergroup_refresh_defaults_to_ten_minutes() {
    let c = parse_catalog(FILE, SECURITY).unwrap();
    assert_eq!(c.settings.usergroup_refresh, Duration::from_secs(600));
}

#[test]
fn a_bad_usergroup_refresh_names_the_key() {
    let msg = one_problem("[settings]\nusergroup_refresh = \"often\"\n");
    assert!(
        msg.starts_with("accessbot.toml: settings.usergroup_refresh: \"often\" is not a duration: write e.g. \"90m\""),
        "{msg}"
    );
    let msg = one_problem("[settings]\nusergroup_refresh = \"0s\"\n");
    assert_eq!(msg, "accessbot.toml: settings.usergroup_refresh: must be longer than zero");
}

#[test]
fn slack_usergroup_must_be_a_user_group_id() {
    for bad in ["security", "s0sec", "U0BOB", "S", "S0 SEC"] {
        let msg = one_problem(&format!("[groups.sec]\nslack_usergroup = \"{bad}\"\n"));
        assert_eq!(
            msg,
            format!(
                "accessbot.toml: groups.sec.slack_usergroup: \"{bad}\" is not a Slack user group id \
                 (S…, upper-case letters and digits, e.g. S0614TZR7)"
            )
        );
    }
}

#[test]
fn a_group_is_members_or_a_slack_user_group_not_both() {
    let msg = one_problem("[groups.sec]\nmembers = [\"U0BOB\"]\nslack_usergroup = \"S0SEC\"\n");
    assert_eq!(msg, "accessbot.toml: groups.sec: give either members or slack_usergroup, not both");
    let msg = one_problem(
        "[groups.sec]\nslack_usergroup = \"S0SEC\"\n[apps.a]\nsteps = [{ group = \"sec\", approvals = 0 }]\n",
    );
    assert_eq!(msg, "accessbot.toml: apps.a.steps[0].approvals: approvals must be 1 or more, not 0");
}

#[test]
fn cli_check_config_names_a_bad_slack_usergroup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ug.toml");
    std::fs::write(&path, "[settings]\nusergroup_refresh = \"soon\"\n\n[groups.sec]\nslack_usergroup = \"sec\"\n")
        .unwrap();
    let file = path.display().to_string();
    let out = accessbot(&["check-config", "--config", &file]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    for key in ["settings.usergroup_refresh", "groups.sec.slack_usergroup"] {
        let prefix = format!("{file}: {key}: ");
        assert!(err.lines().any(|l| l.starts_with(&prefix)), "no line starting {prefix:?} in:\n{err}");
    }
    // A valid one passes.
    std::fs::write(&path, "[groups.sec]\nslack_usergroup = \"S0SEC\"\n\n[apps.a]\nsteps = [{ group = \"sec\" }]\n")
        .unwrap();
    let out = accessbot(&["check-config", "--config", &file]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", stderr(&out));
}
