//! The playground in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, with `fantoccini`), every element found by its
//! visible text or label. Screenshots go to `$PLAYGROUND_SCREENSHOTS`
//! (default `target/playground-screenshots`). Without Chromium the tests fail
//! in CI (`CI=true`) and skip elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` (after saying why) when a local run may skip.
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (on_path("chromium"), on_path("chromedriver")) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
        }
        _ => {
            eprintln!("SKIPPED: chromium or chromedriver is not installed (apt-get install chromium chromium-driver)");
            None
        }
    }
}

fn shots_dir() -> PathBuf {
    let dir = std::env::var_os("PLAYGROUND_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/playground-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Browser {
    client: Client,
    driver: Child,
    playground: accessbot::playground::Playground,
    test: &'static str,
    shots: usize,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn connect(chromium: &Path, port: u16) -> Client {
    let caps = json!({"goog:chromeOptions": {"binary": chromium, "args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--window-size=1280,1400",
    ]}});
    let caps = caps.as_object().unwrap().clone();
    let started = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return c,
            Err(e) if started.elapsed() > WAIT => panic!("chromedriver did not start a session: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

impl Browser {
    async fn open(test: &'static str) -> Option<Browser> {
        let (chromium, chromedriver) = tools()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("accessbot.example.toml");
        let playground = accessbot::playground::start(&config, None, listener).await.unwrap();
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let client = connect(&chromium, port).await;
        client.goto(&playground.url).await.unwrap();
        Some(Browser { client, driver, playground, test, shots: 0 })
    }

    async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        self.playground.stop().await;
    }

    /// The first element matching `xpath`, waiting for it to appear.
    async fn find(&self, xpath: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("no element {xpath}: {e}"))
    }

    /// Clicks the first element matching `xpath`; again if the page re-rendered it meanwhile.
    async fn click(&self, xpath: &str) {
        let started = Instant::now();
        loop {
            match self.find(xpath).await.click().await {
                Ok(()) => return,
                Err(e) if started.elapsed() > WAIT => panic!("could not click {xpath}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn by_label(&self, label: &str) -> Element {
        self.find(&format!(
            "//*[@id=//label[starts-with(normalize-space(), '{label}')]/@for][self::input or self::select or self::textarea]"
        ))
        .await
    }

    /// Picks the person whose name starts the option text ("Bob (U0BOB, …)").
    async fn act_as(&self, name: &str) {
        self.by_label("Person").await;
        self.click(&format!(
            "//select[@id=//label[normalize-space()='Person']/@for]/option[starts-with(normalize-space(), '{name} (')]"
        ))
        .await;
    }

    async fn command(&self, text: &str) {
        self.by_label("Command").await.send_keys(text).await.unwrap();
        self.click("//button[normalize-space()='Send']").await;
    }

    /// Clicks the button with this text in the direct messages.
    async fn click_in_dms(&self, text: &str) {
        self.click(&format!("//section[@aria-labelledby='messages-title']//button[normalize-space()='{text}']")).await;
    }

    /// Waits until the direct messages show `text`.
    async fn dm_says(&self, text: &str) {
        self.find(&format!(
            "//section[@aria-labelledby='messages-title']//article[contains(normalize-space(), '{text}')]"
        ))
        .await;
    }

    async fn screenshot(&mut self, what: &str) {
        self.shots += 1;
        let png = self.client.screenshot().await.unwrap();
        let path = shots_dir().join(format!("{}-{:02}-{what}.png", self.test, self.shots));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
    }
}

#[tokio::test]
async fn a_request_through_user_group_and_user_steps_is_granted() {
    let Some(mut b) = Browser::open("grant").await else { return };
    b.act_as("Riley").await;
    b.command("/access request salesforce forecasts for Q3").await;
    b.dm_says("was submitted").await;
    b.screenshot("requested").await;
    b.act_as("Alice").await;
    b.dm_says("Access request: Salesforce").await;
    b.screenshot("alice-asked").await;
    b.click_in_dms("Approve").await;
    b.dm_says("Approved by @Alice").await;
    b.act_as("Bob").await;
    b.dm_says("Step 2 of 3").await;
    b.click_in_dms("Approve").await;
    b.dm_says("Approved by @Bob").await;
    // The group's other member sees the step decided, without buttons.
    b.act_as("Carol").await;
    b.dm_says("Approved by @Bob").await;
    b.act_as("Admin").await;
    b.dm_says("Step 3 of 3").await;
    b.click_in_dms("Approve").await;
    b.act_as("Riley").await;
    b.dm_says("access is granted").await;
    b.find("//section[h2[normalize-space()='System log']]//td[normalize-space()='app.access_request.grant']").await;
    b.screenshot("granted").await;
    b.close().await;
}

#[tokio::test]
async fn a_deny_with_comment_tells_the_requester() {
    let Some(mut b) = Browser::open("deny").await else { return };
    b.act_as("Riley").await;
    b.command("/access request github on-call rotation").await;
    b.dm_says("was submitted").await;
    b.act_as("Carol").await;
    b.click_in_dms("Deny with comment").await;
    let comment = b.by_label("Comment").await;
    comment.send_keys("Use the shared account instead").await.unwrap();
    b.screenshot("comment").await;
    b.click("//dialog//button[normalize-space()='Deny']").await;
    b.dm_says("Denied by @Carol").await;
    b.act_as("Riley").await;
    b.dm_says("was denied by @Carol").await;
    // The comment stays in the system log.
    b.find("//section[h2[normalize-space()='System log']]//td[normalize-space()='app.access_request.approver.deny']")
        .await;
    b.screenshot("denied").await;
    b.close().await;
}

#[tokio::test]
async fn a_form_with_fields_submits_a_request() {
    let Some(mut b) = Browser::open("form").await else { return };
    b.act_as("Riley").await;
    b.command("/access request aws").await;
    b.find("//dialog[@open]//h2[normalize-space()='Request access']").await;
    b.by_label("Business justification").await.send_keys("Cost reports for the EU team").await.unwrap();
    b.click("//select[@id=//label[normalize-space()='Region']/@for]/option[normalize-space()='EU']").await;
    b.screenshot("form").await;
    b.click("//dialog//button[normalize-space()='Submit request']").await;
    b.dm_says("AWS console").await;
    b.act_as("Bob").await;
    b.dm_says("Region: EU").await;
    b.screenshot("approver-sees-fields").await;
    b.close().await;
}
