//! The real `accessbot` binary as a child process, for replica, crash and
//! shutdown tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::fake_slack::FakeSlack;
use crate::helpers::{API_TOKEN, CONFIG, SECRET, TEAM, TOKEN};

pub struct Proc {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `accessbot serve` on `database_url` against the fake Slack and waits until it is ready.
pub async fn start(
    dir: &std::path::Path,
    name: &str,
    database_url: &str,
    slack: &FakeSlack,
    extra: &[(&str, &str)],
) -> Proc {
    let config = dir.join("accessbot.toml");
    if !config.exists() {
        std::fs::write(&config, CONFIG).unwrap();
    }
    let log = dir.join(format!("{name}.log"));
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_accessbot"));
    cmd.args(["serve", "--config"])
        .arg(&config)
        .env_clear()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database_url)
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", TOKEN)
        .env("SLACK_API_BASE_URL", slack.api_base())
        .env("SLACK_TEAM_IDS", TEAM)
        .env("ACCESSBOT_API_TOKENS", API_TOKEN)
        .env("RUST_LOG", "debug,hyper=info,reqwest=info,h2=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    // Wrapped at once so Drop reaps it on every path.
    let proc = Proc { child: cmd.spawn().unwrap(), base: format!("http://127.0.0.1:{port}"), log };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{}/readyz", proc.base)).send().await {
            if r.status().is_success() {
                return proc;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not become ready; log:\n{}", proc.logs());
}

impl Proc {
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
