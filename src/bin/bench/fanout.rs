//! Section 4: group fan-out. A request waits on a group step of 1,000 members;
//! every member has been asked (1,000 DMs delivered with pacing off). Then the
//! fake Slack paces every Web API method (N calls per window, 429 with
//! `Retry-After` beyond), one member clicks Approve, and the bench measures:
//!
//! - the click's ack, and when the 1,000 `chat.update` intents (`close` outbox
//!   rows) are committed: the server commits the decision and every intent in
//!   one transaction *before* it answers the click, so the ack time bounds the
//!   commit; a poller on the database (1 ms interval, from the moment the click
//!   is sent) sees the rows appear, which pins it from below;
//! - delivery: the time until the fake Slack has answered 1,000 `chat.update`s
//!   ok, and how many 429s the server drew doing it (goal: no more than one
//!   per pacing window).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::ack::{click_body, command_body, Server};
use crate::db::{BenchDb, Kind, ReadDb as Db};
use crate::fake_slack::{FakeSlack, MethodStats};
use crate::load;
use crate::procs::WorkDir;
use crate::{loadavg, ms, section_header, BenchArgs, Machine};

const REQUESTER: &str = "U0REQ";

fn member(i: usize) -> String {
    format!("U2{i:07}")
}

fn catalog(members: usize) -> String {
    let list: Vec<String> = (0..members).map(|i| format!("\"{}\"", member(i))).collect();
    format!(
        "[settings]\nadmins = [\"U0ADMIN\"]\n\n[groups.everyone]\nname = \"Everyone\"\nmembers = [{}]\n\n\
         [apps.bigapp]\nname = \"Big App\"\nsteps = [{{ group = \"everyone\" }}]\n",
        list.join(", ")
    )
}

pub struct Fanout {
    pub backend: String,
    pub members: usize,
    pub pace: (u32, Duration),
    /// The request's 1,000 asks, delivered with pacing off (outbox drained).
    pub asks: Duration,
    pub click_ack: Duration,
    /// The first poll that saw every close row, from the click's send.
    pub commit_seen: Option<Duration>,
    pub closes_at_ack: i64,
    /// From the click's send to the last of `members` chat.update answered ok.
    pub updates: Option<Duration>,
    pub update: MethodStats,
    /// 429s of other methods during the delivery.
    pub other_429: Vec<(String, u64)>,
    pub pending_after: u64,
    pub load: (String, String),
}

impl Fanout {
    /// The fewest windows `members` updates need, and so the least time: the last batch starts
    /// `ceil(members / n) - 1` windows after the first.
    fn ideal(&self) -> Duration {
        let (n, window) = self.pace;
        window * (self.members.div_ceil(n.max(1) as usize).saturating_sub(1) as u32)
    }
}

pub async fn run(args: &BenchArgs, env: &Machine) -> anyhow::Result<Vec<Fanout>> {
    let (kinds, pg) = crate::db::backends(args.backend)?;
    let pace = args.pace()?.context("--pace off: the fan-out bench needs a pacing window")?;
    let work = WorkDir::new("fanout")?;
    let mut out = Vec::new();
    for kind in kinds {
        let load_start = loadavg();
        let db = BenchDb::create(kind, pg.as_deref()).await?;
        note!("== fan-out: {} ({})", kind.name(), db.describe());
        let result = run_backend(args, env, &work, kind, &db, pace, load_start).await;
        db.finish(false).await;
        let f = result.with_context(|| format!("fan-out bench on {}", kind.name()))?;
        print_table(&f, env);
        out.push(f);
    }
    Ok(out)
}

async fn run_backend(
    args: &BenchArgs,
    env: &Machine,
    work: &WorkDir,
    kind: Kind,
    bench_db: &BenchDb,
    pace: (u32, Duration),
    load_start: String,
) -> anyhow::Result<Fanout> {
    let members = args.members;
    anyhow::ensure!(members >= 2, "--members must be at least 2");
    let slack = FakeSlack::start().await?;
    let name = format!("accessbot-fanout-{}", kind.name());
    let server = Server::start(env, work, &name, &bench_db.url, &slack, &catalog(members)).await?;
    server.drain(Duration::from_secs(30)).await?;
    let db = Db::connect(&bench_db.url, kind).await?;

    // The request: every member is asked, pacing off.
    let t0 = Instant::now();
    let req = load::signed_post(
        server.addr,
        "/slack/commands",
        crate::ack::SECRET,
        &command_body(REQUESTER, "request bigapp fan-out bench"),
    );
    let res = server.pool.send(&req).await?;
    let reply: serde_json::Value = serde_json::from_slice(&res.body).unwrap_or_default();
    let text = reply["text"].as_str().unwrap_or_default();
    let id = text.split('`').nth(1).filter(|s| s.starts_with("req")).map(str::to_string);
    let Some(id) = id else { bail!("the fan-out request was not created: HTTP {} {text}", res.status) };
    let (asks, left) = server.drain(Duration::from_secs(300)).await?;
    anyhow::ensure!(left == 0, "the {members} asks were not delivered within 300 s ({left} rows left)");
    let posted = slack.method("chat.postMessage").ok;
    anyhow::ensure!(posted as usize > members, "only {posted} messages posted for {members} members");
    note!("{members} asks delivered in {:.1} s (pacing off)", t0.elapsed().as_secs_f64());

    // Pacing on; one member decides.
    slack.reset();
    slack.set_pace(Some(pace));
    let before = db.max_id().await?;
    let seen = Arc::new(std::sync::Mutex::new(None::<Duration>));
    let stop = Arc::new(AtomicBool::new(false));
    let click = load::signed_post(
        server.addr,
        "/slack/interactions",
        crate::ack::SECRET,
        &click_body(&slack, &member(0), &id, 0),
    );
    let t_click = Instant::now();
    let poller = {
        let (seen, stop) = (seen.clone(), stop.clone());
        let want = members as i64;
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match db.closes_after(before).await {
                    Ok(n) if n >= want => {
                        *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(t_click.elapsed());
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => note!("poll failed: {e:#}"),
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            db
        })
    };
    let res = server.pool.send(&click).await?;
    let click_ack = t_click.elapsed();
    anyhow::ensure!(res.status == 200, "the click was answered HTTP {}", res.status);
    let mut poller = poller;
    let db = match tokio::time::timeout(Duration::from_secs(5), &mut poller).await {
        Ok(db) => db.context("poller")?,
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            poller.await.context("poller")?
        }
    };
    let closes_at_ack = db.closes_after(before).await?;
    let commit_seen = *seen.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!("   click answered in {:.1} ms; {closes_at_ack} close rows committed", ms(click_ack));

    // Delivery under pacing.
    let (n, window) = pace;
    let limit = window * (members.div_ceil(n as usize) as u32) * 4 + Duration::from_secs(60);
    let mut updates = None;
    while t_click.elapsed() < limit {
        let s = slack.method("chat.update");
        if s.ok as usize >= members {
            updates = s.last_ok.map(|t| t.saturating_duration_since(t_click));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = slack.stats();
    let update = stats.get("chat.update").cloned().unwrap_or_default();
    let other_429 = stats
        .iter()
        .filter(|(m, s)| m.as_str() != "chat.update" && s.limited > 0)
        .map(|(m, s)| (m.clone(), s.limited))
        .collect();
    let pending_after = server.metric("accessbot_outbox_rows{status=\"pending\"}").await? as u64;
    db.close().await;
    server.proc.stop(Duration::from_secs(15)).await;
    slack.stop();
    Ok(Fanout {
        backend: kind.name().to_string(),
        members,
        pace,
        asks,
        click_ack,
        commit_seen,
        closes_at_ack,
        updates,
        update,
        other_429,
        pending_after,
        load: (load_start, loadavg()),
    })
}

fn pace_text(p: (u32, Duration)) -> String {
    format!("{}/{}", p.0, humantime::format_duration(p.1))
}

fn print_table(f: &Fanout, env: &Machine) {
    section_header("4. Group fan-out", &f.backend, env, &f.load.0, &f.load.1);
    println!(
        "{:<9} {:>7} {:>9} {:>11} {:>12} {:>14} {:>12} {:>12} {:>9} {:>10} {:>8} {:>12}",
        "backend",
        "members",
        "pace",
        "asks s",
        "click ack ms",
        "commit seen ms",
        "rows at ack",
        "updates s",
        "ideal s",
        "429 update",
        "windows",
        "max 429/win"
    );
    println!(
        "{:<9} {:>7} {:>9} {:>11.1} {:>12.1} {:>14} {:>12} {:>12} {:>9.1} {:>10} {:>8} {:>12}",
        f.backend,
        f.members,
        pace_text(f.pace),
        f.asks.as_secs_f64(),
        ms(f.click_ack),
        f.commit_seen.map(|d| format!("{:.1}", ms(d))).unwrap_or_else(|| "-".into()),
        f.closes_at_ack,
        f.updates.map(|d| format!("{:.1}", d.as_secs_f64())).unwrap_or_else(|| "NOT DONE".into()),
        f.ideal().as_secs_f64(),
        f.update.limited,
        f.update.windows,
        f.update.max_limited_per_window
    );
    let others: Vec<String> = f.other_429.iter().map(|(m, n)| format!("{m} {n}")).collect();
    println!(
        "   asks = the {} DMs (conversations.open + chat.postMessage each) delivered, pacing off; \
         click ack = the Approve click's response, which comes after the transaction holding the decision \
         and every chat.update intent commits; commit seen = first 1 ms database poll that counted all {} \
         close rows (from the click's send); rows at ack = close rows counted right after the ack",
        f.members, f.members
    );
    println!(
        "   updates = click → the {}th chat.update answered ok under pacing {} per method; ideal = the pacing's \
         floor; 429s drawn by other methods meanwhile: {}; outbox rows still pending at the end (thread \
         replies, paced too): {}",
        f.members,
        pace_text(f.pace),
        if others.is_empty() { "none".into() } else { others.join(", ") },
        f.pending_after
    );
}

pub fn print_goals(all: &[Fanout]) {
    for f in all {
        let ok = f.update.limited <= f.update.windows && f.updates.is_some();
        println!(
            "  fan-out {:<8}: {} chat.update 429s over {} pacing windows ({}) — {} ({}); click ack {:.1} ms; \
             updates delivered in {} (floor {:.1} s)",
            f.backend,
            f.update.limited,
            f.update.windows,
            pace_text(f.pace),
            if ok { "MET" } else { "MISSED" },
            if f.update.limited <= f.update.windows {
                format!("{} under the limit", f.update.windows - f.update.limited)
            } else {
                format!(
                    "{} over, {:.1} per window, at most {} in one window",
                    f.update.limited - f.update.windows,
                    f.update.limited as f64 / f.update.windows.max(1) as f64,
                    f.update.max_limited_per_window
                )
            },
            ms(f.click_ack),
            f.updates.map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|| "NOT DONE".into()),
            f.ideal().as_secs_f64()
        );
    }
}
