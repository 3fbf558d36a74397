//! The deployment files agree with the code: the Slack manifest's URLs and
//! command are routes the server has, the probes hit real endpoints, and the
//! ConfigMap's catalog passes check-config.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use yaml_rust2::{Yaml, YamlLoader};

fn load(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    format!("/{}", rest.split_once('/').unwrap().1)
}

#[test]
fn slack_manifest_matches_the_router() {
    let doc = &load("manifests/slack-app.yaml")[0];
    let cmd = &doc["features"]["slash_commands"][0];
    assert_eq!(cmd["command"].as_str(), Some("/access"));
    assert!(!cmd["usage_hint"].as_str().unwrap().is_empty());
    assert_eq!(cmd["should_escape"].as_bool(), Some(true), "mentions must arrive as ids");
    let urls = [
        cmd["url"].as_str().unwrap(),
        doc["settings"]["interactivity"]["request_url"].as_str().unwrap(),
        doc["settings"]["event_subscriptions"]["request_url"].as_str().unwrap(),
    ];
    let paths: Vec<String> = urls.iter().map(|u| path_of(u)).collect();
    assert_eq!(paths, accessbot::slack::ROUTES.to_vec());
    assert!(urls.iter().all(|u| u.starts_with("https://")), "Slack requires HTTPS");
    assert_eq!(doc["settings"]["interactivity"]["is_enabled"].as_bool(), Some(true));
    assert_eq!(doc["features"]["app_home"]["home_tab_enabled"].as_bool(), Some(true));
    let events: Vec<&str> = doc["settings"]["event_subscriptions"]["bot_events"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(events.contains(&"app_home_opened"));
    // Slack user groups are read again when Slack says they changed.
    assert!(events.contains(&"subteam_members_changed") && events.contains(&"subteam_updated"), "{events:?}");
    let mut scopes: Vec<&str> =
        doc["oauth_config"]["scopes"]["bot"].as_vec().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    scopes.sort();
    assert_eq!(scopes, ["chat:write", "commands", "im:write", "usergroups:read", "users:read", "users:read.email"]);
}

#[test]
fn socket_mode_manifest_is_the_same_app_without_urls() {
    let http = &load("manifests/slack-app.yaml")[0];
    let socket = &load("manifests/slack-app-socket-mode.yaml")[0];
    assert_eq!(http["settings"]["socket_mode_enabled"].as_bool(), Some(false));
    assert_eq!(socket["settings"]["socket_mode_enabled"].as_bool(), Some(true));
    let cmd = &socket["features"]["slash_commands"][0];
    assert!(cmd["url"].is_badvalue(), "Socket Mode commands have no URL");
    assert!(socket["settings"]["interactivity"]["request_url"].is_badvalue());
    assert!(socket["settings"]["event_subscriptions"]["request_url"].is_badvalue());
    assert_eq!(socket["settings"]["interactivity"]["is_enabled"].as_bool(), Some(true));
    // Everything else as in the HTTP manifest: command, App Home, events, scopes.
    let http_cmd = &http["features"]["slash_commands"][0];
    for key in ["command", "description", "usage_hint", "should_escape"] {
        assert_eq!(cmd[key], http_cmd[key], "slash_commands[0].{key}");
    }
    for path in [["features", "app_home"], ["features", "bot_user"], ["oauth_config", "scopes"]] {
        assert_eq!(socket[path[0]][path[1]], http[path[0]][path[1]], "{}", path.join("."));
    }
    assert_eq!(
        socket["settings"]["event_subscriptions"]["bot_events"],
        http["settings"]["event_subscriptions"]["bot_events"]
    );
}

#[test]
fn kubernetes_manifests_are_complete() {
    let deploy = &load("manifests/kubernetes/deployment.yaml")[0];
    assert_eq!(deploy["kind"].as_str(), Some("Deployment"));
    assert_eq!(deploy["spec"]["replicas"].as_i64(), Some(2));
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let c = &pod["containers"][0];
    let ready = c["readinessProbe"]["httpGet"]["path"].as_str().unwrap();
    let live = c["livenessProbe"]["httpGet"]["path"].as_str().unwrap();
    assert_eq!((ready, live), ("/readyz", "/healthz"));
    assert!(accessbot::api::ROUTES.contains(&ready) && accessbot::api::ROUTES.contains(&live));
    for k in ["requests", "limits"] {
        assert!(!c["resources"][k]["cpu"].is_badvalue() && !c["resources"][k]["memory"].is_badvalue(), "{k}");
    }
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(c["envFrom"][0]["secretRef"]["name"].as_str(), Some("accessbot-secrets"));
    let config_arg = c["args"].as_vec().unwrap().iter().map(|a| a.as_str().unwrap()).collect::<Vec<_>>().join(" ");
    assert!(config_arg.starts_with("serve --config /etc/accessbot/"));

    // The plain env values pass the server's own checks (ACCESSBOT_PUBLIC_URL among them).
    let env: Vec<(String, String)> = c["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().unwrap().to_string()))
        .collect();
    let parsed = accessbot::config::Env::from_lookup(&|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .unwrap_or_else(|e| panic!("deployment env: {e}"));
    assert!(parsed.public_url.is_some_and(|u| u.starts_with("https://")), "ACCESSBOT_PUBLIC_URL is set to https");

    let secret = &load("manifests/kubernetes/secret.yaml")[0];
    assert_eq!(secret["kind"].as_str(), Some("Secret"));
    for key in ["SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "DATABASE_URL", "ACCESSBOT_API_TOKENS"] {
        assert!(!secret["stringData"][key].is_badvalue(), "{key}");
    }
    assert!(secret["stringData"]["DATABASE_URL"].as_str().unwrap().starts_with("postgres://"));
    assert_eq!(load("manifests/kubernetes/service.yaml")[0]["kind"].as_str(), Some("Service"));
    let pdb = &load("manifests/kubernetes/pdb.yaml")[0];
    assert_eq!(pdb["kind"].as_str(), Some("PodDisruptionBudget"));
    assert_eq!(pdb["spec"]["minAvailable"].as_i64(), Some(1));
}

#[test]
fn the_configmap_catalog_passes_check_config() {
    let cm = &load("manifests/kubernetes/configmap.yaml")[0];
    let toml = cm["data"]["accessbot.toml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("accessbot.toml");
    std::fs::write(&file, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_accessbot"))
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (2 apps, 1 groups"));
}
