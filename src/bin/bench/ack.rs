//! Sections 1, 2, 3 and 5: ack latency and throughput of the real server
//! (`/access request` from distinct users, Approve clicks on pre-created
//! requests), the signature-only ceiling, the Bolt for Python peer, and the
//! server's memory.
//!
//! Open-loop runs send at a fixed offered rate and time each request from its
//! scheduled send time; saturation runs keep N connections busy. Between runs
//! the server's outbox is left to drain (its deliveries compete for the same
//! core), and how long that took is printed too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use crate::db::{BenchDb, Kind, ReadDb};
use crate::fake_slack::FakeSlack;
use crate::load::{self, Check, MakeReq, Outcome, Pool};
use crate::procs::{self, Proc, WorkDir};
use crate::{loadavg, ms, section_header, BenchArgs, Machine};

pub const SECRET: &str = "bench-signing-secret";
pub const TOKEN: &str = "xoxb-bench";
pub const TEAM: &str = "T0BENCH";
const APPROVER: &str = "U0BOB";
const APPS: [&str; 4] = ["github", "jira", "figma", "zoom"];
const JUSTIFICATION: &str = "need it to review the quarterly pipeline numbers with the regional sales leads";
/// At most this many requests in flight in an open-loop run (more wait, still timed from their schedule).
const MAX_IN_FLIGHT: usize = 1024;
/// An open-loop request unanswered this long after its scheduled time counts as an error.
const GIVE_UP: Duration = Duration::from_secs(30);

/// Every app has one group step: the two approvers; U0BOB clicks.
fn catalog() -> String {
    let mut s = String::from(
        "[settings]\nadmins = [\"U0ADMIN\"]\n\n[groups.approvers]\nname = \"Approvers\"\nmembers = [\"U0BOB\", \"U0CAROL\"]\n",
    );
    for app in APPS {
        s.push_str(&format!(
            "\n[apps.{app}]\nname = \"{}\"\nsteps = [{{ group = \"approvers\" }}]\n",
            app[..1].to_uppercase() + &app[1..]
        ));
    }
    s
}

/// The real server as a child process.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub pool: Pool,
    http: reqwest::Client,
}

impl Server {
    /// `accessbot serve` on `db_url` against `slack`, pinned to CPU 0 when the machine pins.
    pub async fn start(
        env: &Machine,
        work: &WorkDir,
        name: &str,
        db_url: &str,
        slack: &FakeSlack,
        config: &str,
    ) -> anyhow::Result<Server> {
        let port = procs::free_port()?;
        let config_path = work.path(&format!("{name}.toml"));
        std::fs::write(&config_path, config)?;
        let vars: Vec<(String, String)> = [
            ("PORT", port.to_string()),
            ("DATABASE_URL", db_url.to_string()),
            ("SLACK_SIGNING_SECRET", SECRET.to_string()),
            ("SLACK_BOT_TOKEN", TOKEN.to_string()),
            ("SLACK_API_BASE_URL", slack.api_base()),
            ("SLACK_TEAM_IDS", TEAM.to_string()),
            ("ACCESSBOT_API_TOKENS", "bench-api-token".to_string()),
            // The production default filter.
            ("RUST_LOG", "info,sqlx=warn".to_string()),
            // A stop need not wait for a backlog the bench left behind.
            ("ACCESSBOT_SHUTDOWN_TIMEOUT", "2s".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let args = vec!["serve".to_string(), "--config".to_string(), config_path.display().to_string()];
        let mut proc = Proc::spawn(name, &env.server_bin, &args, &vars, env.pin, &work.path(&format!("{name}.log")))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        proc.wait_ready(addr, Some("/readyz")).await?;
        Ok(Server { proc, addr, pool: Pool::new(addr), http: reqwest::Client::new() })
    }

    /// A value of the Prometheus text at `/metrics` (the first line starting with `series`).
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        let text = self.http.get(format!("http://{}/metrics", self.addr)).send().await?.text().await?;
        Ok(text
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0))
    }

    /// Waits until the outbox has no pending rows; returns how long that took and what is left.
    pub async fn drain(&self, within: Duration) -> anyhow::Result<(Duration, u64)> {
        let t0 = Instant::now();
        loop {
            let pending = self.metric("accessbot_outbox_rows{status=\"pending\"}").await? as u64;
            if pending == 0 || t0.elapsed() >= within {
                note!("outbox drained in {:.1} s ({pending} rows left)", t0.elapsed().as_secs_f64());
                return Ok((t0.elapsed(), pending));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

pub fn command_body(user: &str, text: &str) -> Vec<u8> {
    serde_urlencoded::to_string([
        ("token", "legacy-unused"),
        ("team_id", TEAM),
        ("team_domain", "acme"),
        ("channel_id", "C0GENERAL"),
        ("channel_name", "general"),
        ("user_id", user),
        ("user_name", &user.to_lowercase()),
        ("command", "/access"),
        ("text", text),
        ("api_app_id", "A0BENCH"),
        ("is_enterprise_install", "false"),
        ("response_url", "https://hooks.slack.com/commands/T0BENCH/1/abc"),
        ("trigger_id", "1.2.trigger"),
    ])
    .unwrap_or_default()
    .into_bytes()
}

pub fn click_body(slack: &FakeSlack, user: &str, request_id: &str, step: usize) -> Vec<u8> {
    let payload = json!({
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user, "username": user.to_lowercase(), "team_id": TEAM},
        "api_app_id": "A0BENCH",
        "trigger_id": format!("trigger-{request_id}"),
        "response_url": slack.response_url(request_id),
        "container": {"type": "message", "channel_id": format!("D{user}"), "is_ephemeral": false},
        "actions": [{"action_id": "approve", "block_id": format!("decide:{request_id}:{step}"), "type": "button",
                     "value": format!("{request_id}:{step}"), "action_ts": "1700000000.1"}]
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap_or_default().into_bytes()
}

/// `/access request <app> …` from a new user each time (users cycle through `users`
/// ids, then through the apps: one open request per user and app).
fn commands(addr: SocketAddr, next_user: Arc<AtomicUsize>, users: usize) -> MakeReq {
    Arc::new(move |_| {
        let n = next_user.fetch_add(1, Ordering::Relaxed);
        let user = format!("U1{:08}", n % users);
        let app = APPS[(n / users) % APPS.len()];
        let body = command_body(&user, &format!("request {app} {JUSTIFICATION}"));
        Some(load::signed_post(addr, "/slack/commands", SECRET, &body))
    })
}

/// At most `n` requests of `make`.
fn limited(make: MakeReq, n: usize) -> MakeReq {
    let sent = Arc::new(AtomicUsize::new(0));
    Arc::new(move |i| if sent.fetch_add(1, Ordering::Relaxed) < n { make(i) } else { None })
}

/// A command answered 200 with "submitted" and a request id (kept in `ids`).
fn submitted(ids: Option<Arc<Mutex<Vec<String>>>>) -> Check {
    Arc::new(move |status, body| {
        if status != 200 {
            return Err(format!("HTTP {status}"));
        }
        // accessbot answers JSON; Bolt answers `ack("text")` with the bare text (Slack takes both).
        let v: Option<Value> = serde_json::from_slice(body).ok();
        let raw = String::from_utf8_lossy(body);
        let text = match &v {
            Some(v) => v["text"].as_str().unwrap_or_default(),
            None => raw.as_ref(),
        };
        if !text.contains("submitted") {
            let short: String = text.chars().take(50).collect();
            return Err(format!("reply \"{short}…\""));
        }
        let id = text.split('`').nth(1).filter(|s| s.starts_with("req")).ok_or("no request id in the reply")?;
        if let Some(ids) = &ids {
            ids.lock().unwrap_or_else(|p| p.into_inner()).push(id.to_string());
        }
        Ok(())
    })
}

/// Approve clicks by U0BOB, each on the next request not clicked yet.
fn clicks(addr: SocketAddr, slack: &FakeSlack, ids: Arc<Mutex<Vec<String>>>, next: Arc<AtomicUsize>) -> MakeReq {
    let slack = slack.clone();
    Arc::new(move |_| {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let id = ids.lock().unwrap_or_else(|p| p.into_inner()).get(k).cloned()?;
        Some(load::signed_post(addr, "/slack/interactions", SECRET, &click_body(&slack, APPROVER, &id, 0)))
    })
}

fn answered_200() -> Check {
    Arc::new(|status, _| if status == 200 { Ok(()) } else { Err(format!("HTTP {status}")) })
}

/// One measured run.
pub struct Row {
    pub backend: String,
    pub workload: &'static str,
    pub mode: String,
    pub offered: Option<f64>,
    pub out: Outcome,
    pub cpu: Cpu,
    /// How long the outbox took to drain after the run (and rows left if it did not).
    pub drain: Option<(Duration, u64)>,
    /// Outbox rows the run's requests queued (counted once the outbox drained: delivering
    /// a thread notice queues one row per message), per ok request.
    pub outbox_per_req: Option<f64>,
}

impl Row {
    pub fn p99(&self) -> Duration {
        self.out.pct(0.99)
    }

    /// Throughput per core the server kept busy: comparable across runs when other
    /// work on the machine takes part of CPU 0.
    pub fn per_core(&self) -> f64 {
        self.out.achieved() / self.cpu.server.max(1e-9)
    }
}

pub fn print_rows(rows: &[&Row]) {
    println!(
        "{:<18} {:<17} {:<15} {:>6} {:>6} {:>9} {:>8} {:>7} {:>7} {:>8} {:>7} {:>6} {:>6} {:>6} {:>7} {:>5} {:>9} {:>10}  errors",
        "backend",
        "workload",
        "mode",
        "sent",
        "ok",
        "ok req/s",
        "per core",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lag p99",
        "srvCPU",
        "dbCPU",
        "genCPU",
        "csw/req",
        "conns",
        "drain s",
        "outbox/req"
    );
    for r in rows {
        let drain = match r.drain {
            Some((d, 0)) => format!("{:.1}", d.as_secs_f64()),
            Some((d, left)) => format!("{:.0}+{left}", d.as_secs_f64()),
            None => "-".into(),
        };
        let lag = if r.offered.is_some() { format!("{:.2}", ms(r.out.lag(0.99))) } else { "-".into() };
        println!(
            "{:<18} {:<17} {:<15} {:>6} {:>6} {:>9.0} {:>8.0} {:>7.2} {:>7.2} {:>8.2} {:>7} {:>5.0}% {:>6} {:>5.0}% {:>7.1} {:>5} {:>9} {:>10}  {}",
            r.backend,
            r.workload,
            r.mode,
            r.out.sent,
            r.out.ok,
            r.out.achieved(),
            r.per_core(),
            ms(r.out.pct(0.50)),
            ms(r.out.pct(0.99)),
            ms(r.out.pct(1.0)),
            lag,
            r.cpu.server * 100.0,
            r.cpu.db.map(|d| format!("{:.0}%", d * 100.0)).unwrap_or_else(|| "-".into()),
            r.cpu.gen * 100.0,
            r.cpu.switches as f64 / r.out.ok.max(1) as f64,
            r.out.connections,
            drain,
            r.outbox_per_req.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
            r.out.errors_text()
        );
    }
    println!(
        "   latency: open loop from the scheduled send time (queueing behind a slow answer included), closed loop per \
         request; lag = how late the generator sent; srvCPU/dbCPU/genCPU = share of one core used by the server / \
         all PostgreSQL processes (unpinned) / this process; per core = ok req/s ÷ srvCPU; csw/req = context switches of the server's \
         threads per ok request; conns = connections opened during the run; drain = time for the \
         server's outbox to deliver everything the run queued (not part of the run; `T+N`: N rows still pending \
         after T s); outbox/req = outbox rows the run queued per ok request, counted once drained"
    );
}

/// Cores kept busy during a run (CPU seconds ÷ wall seconds).
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    /// The server (with its child processes).
    pub server: f64,
    /// This process: load generator and fake Slack.
    pub gen: f64,
    /// Every `postgres` process on the machine (PostgreSQL runs only).
    pub db: Option<f64>,
    /// Context switches of the server's threads during the run.
    pub switches: u64,
}

/// A run with CPU accounting for `pid` (and the PostgreSQL server's processes when `pg`).
async fn measured<F: std::future::Future<Output = Outcome>>(pid: u32, pg: bool, run: F) -> (Outcome, Cpu) {
    let db0 = pg.then(|| procs::cpu_seconds_named("postgres"));
    let (s0, g0, t0) = (procs::cpu_seconds(pid), procs::own_cpu_seconds(), Instant::now());
    let c0 = procs::context_switches(pid);
    let out = run.await;
    let wall = t0.elapsed().as_secs_f64().max(1e-9);
    let cpu = Cpu {
        switches: procs::context_switches(pid).saturating_sub(c0),
        server: (procs::cpu_seconds(pid) - s0) / wall,
        gen: (procs::own_cpu_seconds() - g0) / wall,
        db: db0.map(|d| (procs::cpu_seconds_named("postgres") - d) / wall),
    };
    (out, cpu)
}

pub struct Memory {
    pub backend: String,
    pub idle_rss: u64,
    pub idle_hwm: u64,
    pub warm_rss: u64,
    /// Sampled every 100 ms during the 300 req/s command run.
    pub run_peak_rss: u64,
    pub run_hwm: u64,
    pub end_rss: u64,
    pub rate: u32,
}

#[derive(Default)]
pub struct AckReport {
    pub rows: Vec<Row>,
    pub memory: Vec<Memory>,
    pub ceiling: Option<Row>,
    pub peer: Vec<Row>,
    pub peer_note: Option<String>,
    /// (what, summary) of `--perf-dir` recordings.
    pub profiles: Vec<(String, String)>,
}

impl AckReport {
    fn find(&self, backend: &str, workload: &str, mode: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.backend == backend && r.workload == workload && r.mode == mode)
    }

    /// The async Bolt peer's row (the peer of record) in `mode`.
    fn peer_row(&self, mode: &str) -> Option<&Row> {
        self.peer.iter().find(|r| r.backend == Peer::Async.label() && r.mode == mode)
    }

    pub fn print_goals(&self, env: &Machine, connections: usize) {
        println!();
        println!("goals of issue #13 ({})", env.describe());
        let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
        let sat = format!("closed {connections} conns");
        let peer = self.peer_row(&sat).map(|r| r.out.achieved());
        let goals: [(&str, &str, f64, f64); 3] =
            [("sqlite", "", 2.0, 5.0), ("sqlite", PACED, 4.0, 5.0), ("postgres", "", 1.5, 10.0)];
        for (backend, suffix, times, p99_goal) in goals {
            let slack = if suffix.is_empty() { "instant Slack" } else { "paced Slack" };
            if let (Some(r), Some(p)) = (self.find(backend, WL_COMMAND, &format!("{sat}{suffix}")), peer) {
                let x = r.out.achieved() / p.max(1e-9);
                println!(
                    "  {backend:<8} {slack:<13} saturation ≥ {times}× the async Bolt peer: {:.0} vs {p:.0} req/s = {x:.2}× — {}",
                    r.out.achieved(),
                    verdict(x >= times && r.out.error_count() == 0)
                );
            }
            if let Some(r) = self.find(backend, WL_COMMAND, &format!("open 300/s{suffix}")) {
                let p99 = ms(r.p99());
                println!(
                    "  {backend:<8} {slack:<13} p99 ≤ {p99_goal} ms at 300 req/s: {p99:.2} ms — {}{}",
                    verdict(p99 <= p99_goal && r.out.error_count() == 0),
                    self.peer_row("open 300/s")
                        .map(|p| format!(" (async Bolt peer {:.2} ms)", ms(p.p99())))
                        .unwrap_or_default()
                );
            }
        }
        if peer.is_none() {
            if let Some(note) = &self.peer_note {
                println!("  Bolt peer: {note}");
            }
        }
    }
}

/// The mode suffix of runs against a fake Slack that paces chat methods.
pub const PACED: &str = " paced";

pub const WL_COMMAND: &str = "/access request";
pub const WL_CLICK: &str = "Approve click";

pub async fn run(args: &BenchArgs, env: &Machine) -> anyhow::Result<AckReport> {
    let (kinds, pg) = crate::db::backends(args.backend)?;
    let work = WorkDir::new("ack")?;
    let mut report = AckReport::default();
    for kind in kinds {
        let load_start = loadavg();
        let db = BenchDb::create(kind, pg.as_deref()).await?;
        note!("== ack: {} ({})", kind.name(), db.describe());
        let result = run_backend(args, env, &work, kind, &db, &mut report).await;
        db.finish(false).await;
        result.with_context(|| format!("ack bench on {}", kind.name()))?;
        let load_end = loadavg();
        let title = if args.stall_outbox {
            "1. Ack latency and throughput — DIAGNOSIS, outbox stalled (--stall-outbox): the request path alone"
        } else {
            "1. Ack latency and throughput"
        };
        section_header(title, kind.name(), env, &load_start, &load_end);
        let mut rows: Vec<&Row> = report.rows.iter().filter(|r| r.backend == kind.name()).collect();
        rows.sort_by(|a, b| {
            let key = |r: &Row| (r.workload == WL_CLICK, r.offered.unwrap_or(f64::INFINITY));
            key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
        });
        print_rows(&rows);
        for (what, summary) in report.profiles.iter().filter(|(w, _)| w.starts_with(kind.name())) {
            println!("   profile of the server, {what}:");
            println!("{summary}");
        }
        if let Some(m) = report.memory.iter().find(|m| m.backend == kind.name()) {
            section_header("5. Server memory", kind.name(), env, &load_start, &load_end);
            let mib = |k: u64| k as f64 / 1024.0;
            println!(
                "{:<9} {:>9} {:>10} {:>12} {:>16} {:>13} {:>9}",
                "backend", "idle RSS", "idle HWM", "after warmup", "peak RSS @300/s", "HWM @300/s", "end RSS"
            );
            println!(
                "{:<9} {:>7.1}Mi {:>8.1}Mi {:>10.1}Mi {:>14.1}Mi {:>11.1}Mi {:>7.1}Mi",
                m.backend,
                mib(m.idle_rss),
                mib(m.idle_hwm),
                mib(m.warm_rss),
                mib(m.run_peak_rss),
                mib(m.run_hwm),
                mib(m.end_rss)
            );
            println!(
                "   VmRSS / VmHWM from /proc/<pid>/status: idle = 1 s after /readyz; peak sampled every 100 ms \
                 during the {} req/s command run; HWM read right after it",
                m.rate
            );
        }
    }
    if !args.no_ceiling {
        let load_start = loadavg();
        let (open, row) = run_ceiling(args, env, &work).await.context("ceiling")?;
        section_header("2. Ceiling: signature check only", "none", env, &load_start, &loadavg());
        print_rows(&[&open, &row]);
        println!("   the open loop is this host's floor for the p99 goals: a handler that does nothing but verify");
        for r in report.rows.iter().filter(|r| r.offered.is_none()) {
            println!(
                "   {:<9} {:<16} saturation {:>6.0} req/s = {:>5.1} % of the ceiling's {:.0} req/s",
                r.backend,
                r.workload,
                r.out.achieved(),
                100.0 * r.out.achieved() / row.out.achieved().max(1e-9),
                row.out.achieved()
            );
        }
        report.ceiling = Some(row);
    }
    if !args.no_peer {
        for peer in [Peer::Async, Peer::Gunicorn] {
            let load_start = loadavg();
            match run_peer(args, env, &work, peer).await? {
                Err(note) => {
                    eprintln!("Bolt peer skipped: {note}");
                    report.peer_note = Some(format!("skipped — {note}"));
                    break;
                }
                Ok((rows, versions)) => {
                    section_header(
                        &format!("3. Peer: Slack Bolt for Python, {}", peer.label()),
                        "sqlite",
                        env,
                        &load_start,
                        &loadavg(),
                    );
                    println!("   {versions}");
                    print_peer_comparison(&rows, &report);
                    report.peer.extend(rows);
                }
            }
        }
    }
    Ok(report)
}

/// The peer's rows beside accessbot's SQLite command rows, and the ratios.
fn print_peer_comparison(rows: &[Row], report: &AckReport) {
    let ours: Vec<&Row> = report.rows.iter().filter(|r| r.backend == "sqlite" && r.workload == WL_COMMAND).collect();
    let mut all: Vec<&Row> = rows.iter().collect();
    all.extend(ours.iter().copied().filter(|r| r.mode != "open 1000/s"));
    print_rows(&all);
    for p in rows {
        for o in ours.iter().filter(|o| o.mode == p.mode || o.mode == format!("{}{PACED}", p.mode)) {
            if p.offered.is_some() {
                println!(
                    "   {}: p99 accessbot {:.2} ms vs peer {:.2} ms = {:.2}× the peer's",
                    o.mode,
                    ms(o.p99()),
                    ms(p.p99()),
                    ms(o.p99()) / ms(p.p99()).max(1e-9)
                );
            } else {
                println!(
                    "   {}: accessbot {:.0} req/s vs peer {:.0} req/s = {:.2}×",
                    o.mode,
                    o.out.achieved(),
                    p.out.achieved(),
                    o.out.achieved() / p.out.achieved().max(1e-9)
                );
            }
        }
    }
}

async fn run_backend(
    args: &BenchArgs,
    env: &Machine,
    work: &WorkDir,
    kind: Kind,
    db: &BenchDb,
    report: &mut AckReport,
) -> anyhow::Result<()> {
    let slack = FakeSlack::start().await?;
    if args.stall_outbox {
        slack.set_stall(Some(Duration::from_secs(60)));
    }
    let name = format!("accessbot-ack-{}", kind.name());
    let server = Server::start(env, work, &name, &db.url, &slack, &catalog()).await?;
    let pid = server.proc.pid();
    let backend = kind.name().to_string();
    let pg = kind == Kind::Postgres;
    let d = args.duration();
    // Runs within the server's means drain in seconds; overload runs leave a backlog that
    // takes minutes, so a quick run waits less for it (the drain column shows what was left).
    let drain_light = if args.quick { Duration::from_secs(10) } else { Duration::from_secs(180) };
    let drain_heavy = if args.quick { Duration::from_secs(2) } else { Duration::from_secs(180) };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, idle_hwm) = procs::memory_kib(pid).unwrap_or_default();

    let read_db = ReadDb::connect(&db.url, kind).await?;
    let next_user = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let cmd = commands(server.addr, next_user.clone(), args.users);
    let check = submitted(Some(ids.clone()));
    let next_click = Arc::new(AtomicUsize::new(0));
    let click = clicks(server.addr, &slack, ids.clone(), next_click.clone());
    let ok200 = answered_200();
    let created0 = server.metric("accessbot_requests_created_total").await?;
    let decided0 = server.metric("accessbot_decisions_total{decision=\"approve\"}").await?;
    let (mut commands_ok, mut clicks_ok) = (0usize, 0usize);

    // Warm-up (not measured): connections, caches, the first pages of the database.
    note!("warm-up");
    let warm =
        load::closed_loop(&server.pool, 8, Duration::from_secs(60), limited(cmd.clone(), 500), check.clone()).await;
    anyhow::ensure!(warm.error_count() == 0, "warm-up commands failed: {}", warm.errors_text());
    commands_ok += warm.ok;
    if !args.stall_outbox {
        server.drain(drain_light).await?;
    }
    let (warm_rss, _) = procs::memory_kib(pid).unwrap_or_default();
    let mut mem = Memory {
        backend: backend.clone(),
        idle_rss,
        idle_hwm,
        warm_rss,
        run_peak_rss: 0,
        run_hwm: 0,
        end_rss: 0,
        rate: 300,
    };

    // The rates the server can carry first (commands, then clicks on the requests they made),
    // then the overload runs and saturation.
    let light: Vec<u32> = args.rates.iter().copied().filter(|r| *r <= 300).collect();
    let heavy: Vec<u32> = args.rates.iter().copied().filter(|r| *r > 300).collect();
    // Last, commands again while the fake Slack paces chat methods like Slack's tiers:
    // deliveries queue up durably and the ack path must not slow down.
    let mut plan: Vec<(&'static str, Option<u32>, bool)> = Vec::new();
    plan.extend(light.iter().map(|r| (WL_COMMAND, Some(*r), false)));
    plan.extend(light.iter().map(|r| (WL_CLICK, Some(*r), false)));
    plan.extend(heavy.iter().map(|r| (WL_COMMAND, Some(*r), false)));
    plan.push((WL_COMMAND, None, false));
    plan.extend(heavy.iter().map(|r| (WL_CLICK, Some(*r), false)));
    plan.push((WL_CLICK, None, false));
    if !args.stall_outbox {
        plan.extend(light.iter().filter(|r| **r == 300).map(|r| (WL_COMMAND, Some(*r), true)));
        plan.push((WL_COMMAND, None, true));
    }
    let mut sat_cmd = 0.0f64;
    let last = plan.len() - 1;
    for (k, (workload, rate, paced)) in plan.into_iter().enumerate() {
        let is_click = workload == WL_CLICK;
        if paced {
            slack.set_pace(args.pace()?);
        }
        let suffix = if paced { PACED } else { "" };
        if is_click {
            // Each request created so far is approved once, by its approver.
            let need = match rate {
                Some(r) => (r as f64 * d.as_secs_f64()).round() as usize,
                // Enough for clicks as fast as commands went (a quick run takes what is left
                // and may end early; the wall time then is shorter).
                None if args.quick => (0.6 * sat_cmd * d.as_secs_f64()) as usize,
                None => (1.2 * sat_cmd.max(1000.0) * d.as_secs_f64()) as usize,
            };
            let have = ids.lock().unwrap_or_else(|p| p.into_inner()).len() - next_click.load(Ordering::Relaxed);
            let missing = need.saturating_sub(have);
            if missing > 0 {
                note!("creating {missing} more requests to click (not measured)");
                let out = load::closed_loop(
                    &server.pool,
                    args.connections,
                    Duration::from_secs(600),
                    limited(cmd.clone(), missing),
                    check.clone(),
                )
                .await;
                anyhow::ensure!(out.error_count() == 0, "creating requests to click failed: {}", out.errors_text());
                commands_ok += out.ok;
                if !args.stall_outbox {
                    server.drain(drain_heavy).await?;
                }
            }
        }
        let (make, judge) = if is_click { (click.clone(), ok200.clone()) } else { (cmd.clone(), check.clone()) };
        let rows_before = read_db.max_id().await?;
        let sampler = (!is_click && !paced && rate == Some(mem.rate)).then(|| RssSampler::start(pid));
        let (out, cpu, mode) = match rate {
            Some(rate) => {
                let n = (rate as f64 * d.as_secs_f64()).round() as usize;
                note!("{workload} open loop {rate}/s × {n}");
                let (o, c) = measured(
                    pid,
                    pg,
                    load::open_loop(&server.pool, rate as f64, n, make, judge, MAX_IN_FLIGHT, GIVE_UP),
                )
                .await;
                (o, c, format!("open {rate}/s{suffix}"))
            }
            None => {
                note!("{workload} closed loop × {} connections", args.connections);
                let perf = match &args.perf_dir {
                    Some(dir) => {
                        std::fs::create_dir_all(dir)?;
                        let slug = match (is_click, paced) {
                            (true, _) => "click",
                            (false, true) => "command-paced",
                            (false, false) => "command",
                        };
                        let file = dir.join(format!("{backend}-{slug}.perf.data"));
                        Some(procs::Perf::start(pid, &file, d.as_secs_f64())?)
                    }
                    None => None,
                };
                let (o, c) = measured(pid, pg, load::closed_loop(&server.pool, args.connections, d, make, judge)).await;
                if let Some(p) = perf {
                    report.profiles.push((format!("{backend} {workload} saturation"), p.finish(25).await));
                }
                (o, c, format!("closed {} conns{suffix}", args.connections))
            }
        };
        if let Some(s) = sampler {
            mem.run_peak_rss = s.stop().await;
            mem.run_hwm = procs::memory_kib(pid).map(|m| m.1).unwrap_or_default();
        }
        server.proc_check()?;
        if is_click {
            clicks_ok += out.ok;
        } else {
            commands_ok += out.ok;
            if rate.is_none() {
                sat_cmd = out.achieved();
            }
        }
        let within = match rate {
            // A paced backlog drains at the pace, long after the run: not waited for.
            _ if k == last || args.stall_outbox || paced => Duration::ZERO,
            Some(r) if r <= 300 => drain_light,
            _ => drain_heavy,
        };
        let drain = server.drain(within).await?;
        let rows_after = read_db.max_id().await?;
        let outbox_per_req = (drain.1 == 0 && out.ok > 0).then(|| (rows_after - rows_before) as f64 / out.ok as f64);
        report.rows.push(Row {
            backend: backend.clone(),
            workload,
            mode,
            offered: rate.map(f64::from),
            out,
            cpu,
            drain: Some(drain),
            outbox_per_req,
        });
    }
    let created = server.metric("accessbot_requests_created_total").await? - created0;
    anyhow::ensure!(
        created as usize == commands_ok,
        "the server counted {created} requests created, the bench {commands_ok} submitted replies"
    );
    let decided = server.metric("accessbot_decisions_total{decision=\"approve\"}").await? - decided0;
    anyhow::ensure!(
        decided as usize == clicks_ok,
        "the server counted {decided} approvals, the bench {clicks_ok} clicks answered 200"
    );
    read_db.close().await;
    mem.end_rss = procs::memory_kib(pid).map(|m| m.0).unwrap_or_default();
    report.memory.push(mem);
    let calls: Vec<String> = slack.stats().iter().map(|(m, s)| format!("{m} {}", s.ok)).collect();
    note!("fake Slack calls: {}", calls.join(", "));
    server.proc.stop(Duration::from_secs(15)).await;
    slack.stop();
    Ok(())
}

impl Server {
    fn proc_check(&self) -> anyhow::Result<()> {
        // `check_alive` needs `&mut`; a dead server shows as I/O errors anyway, so only look.
        if !std::path::Path::new(&format!("/proc/{}", self.proc.pid())).exists() {
            anyhow::bail!("the server exited; last lines of its log:\n{}", self.proc.tail());
        }
        Ok(())
    }
}

/// Samples VmRSS every 100 ms; `stop` returns the largest seen (KiB).
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some((rss, _)) = procs::memory_kib(pid) {
                    p.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssSampler { stop, peak, task }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

/// The ceiling at 300 req/s (open loop, the rate of the p99 goals) and at saturation.
async fn run_ceiling(args: &BenchArgs, env: &Machine, work: &WorkDir) -> anyhow::Result<(Row, Row)> {
    let port = procs::free_port()?;
    let exe = env.bench_bin.clone();
    let vars = vec![("SLACK_SIGNING_SECRET".to_string(), SECRET.to_string())];
    let mut proc = Proc::spawn(
        "ceiling",
        &exe,
        &["ceiling-server".to_string(), "--port".to_string(), port.to_string()],
        &vars,
        env.pin,
        &work.path("ceiling.log"),
    )?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    proc.wait_ready(addr, None).await?;
    let pool = Pool::new(addr);
    let next_user = Arc::new(AtomicUsize::new(0));
    let make = commands(addr, next_user, args.users);
    note!("ceiling warm-up");
    let _ = load::closed_loop(&pool, args.connections, Duration::from_millis(500), make.clone(), answered_200()).await;
    let rate = 300;
    let n = (f64::from(rate) * args.duration().as_secs_f64()).round() as usize;
    note!("ceiling open loop {rate}/s × {n}");
    let open_loop = load::open_loop(&pool, f64::from(rate), n, make.clone(), answered_200(), MAX_IN_FLIGHT, GIVE_UP);
    let (out, cpu) = measured(proc.pid(), false, open_loop).await;
    let open = ceiling_row(format!("open {rate}/s"), Some(f64::from(rate)), out, cpu);
    note!("ceiling closed loop × {} connections", args.connections);
    let (out, cpu) =
        measured(proc.pid(), false, load::closed_loop(&pool, args.connections, args.duration(), make, answered_200()))
            .await;
    proc.stop(Duration::from_secs(5)).await;
    Ok((open, ceiling_row(format!("closed {} conns", args.connections), None, out, cpu)))
}

fn ceiling_row(mode: String, offered: Option<f64>, out: Outcome, cpu: Cpu) -> Row {
    Row {
        backend: "ceiling".into(),
        workload: "verify + 200",
        mode,
        offered,
        out,
        cpu,
        drain: None,
        outbox_per_req: None,
    }
}

fn default_venv() -> Option<PathBuf> {
    // <target>/release/bench → <target>/bolt-venv
    Some(std::env::current_exe().ok()?.parent()?.parent()?.join("bolt-venv"))
}

/// The two Bolt for Python peers: the one of record, and the threaded one as a second row.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `AsyncApp` on aiohttp, one process, one SQLite connection (`app_async.py`).
    Async,
    /// The sync `App` with its Flask adapter under gunicorn's threads (`app.py`).
    Gunicorn,
}

impl Peer {
    pub fn label(self) -> &'static str {
        match self {
            Peer::Async => "bolt async (sqlite)",
            Peer::Gunicorn => "bolt gunicorn",
        }
    }

    fn spawn(
        self,
        args: &BenchArgs,
        env: &Machine,
        work: &WorkDir,
        venv: &std::path::Path,
        port: u16,
    ) -> anyhow::Result<(Proc, String)> {
        let dir = args
            .peer_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/bolt_peer")));
        let slug = match self {
            Peer::Async => "bolt_async",
            Peer::Gunicorn => "bolt_gunicorn",
        };
        let db = work.path(&format!("{slug}.db"));
        let vars: Vec<(String, String)> = [
            ("PEER_DB", db.display().to_string()),
            ("PEER_PORT", port.to_string()),
            ("PEER_APPS", APPS.join(",")),
            ("SLACK_SIGNING_SECRET", SECRET.to_string()),
            ("SLACK_BOT_TOKEN", TOKEN.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let log = work.path(&format!("{slug}.log"));
        match self {
            Peer::Async => {
                let script = dir.join("app_async.py").display().to_string();
                let proc = Proc::spawn(slug, &venv.join("bin/python"), &[script], &vars, env.pin, &log)?;
                Ok((
                    proc,
                    "AsyncApp on aiohttp (`app.start()`), one process, one SQLite connection, \
                           process_before_response=True, SQLite WAL synchronous=NORMAL"
                        .to_string(),
                ))
            }
            Peer::Gunicorn => {
                let gargs: Vec<String> = [
                    "--chdir",
                    &dir.display().to_string(),
                    "--worker-class",
                    "gthread",
                    "--workers",
                    &args.peer_workers.to_string(),
                    "--threads",
                    &args.peer_threads.to_string(),
                    "--keep-alive",
                    "30",
                    "--backlog",
                    "2048",
                    "--bind",
                    &format!("127.0.0.1:{port}"),
                    "--log-level",
                    "warning",
                    "--no-control-socket",
                    "app:flask_app",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                let proc = Proc::spawn(slug, &venv.join("bin/gunicorn"), &gargs, &vars, env.pin, &log)?;
                Ok((
                    proc,
                    format!(
                        "gunicorn --worker-class gthread --workers {} --threads {} (Bolt's Flask adapter, \
                     process_before_response=True), a SQLite connection per thread, WAL synchronous=NORMAL",
                        args.peer_workers, args.peer_threads
                    ),
                ))
            }
        }
    }
}

/// The peer's versions, as its venv reports them.
fn peer_versions(venv: &std::path::Path) -> String {
    std::process::Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import sys, importlib.metadata as m; print('Python', sys.version.split()[0], *[f'{p} {m.version(p)}' for p in ('slack_bolt', 'slack_sdk', 'aiohttp', 'Flask', 'gunicorn')], sep=', ')",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// A peer's rows and a line naming how it ran, or why it was skipped.
async fn run_peer(
    args: &BenchArgs,
    env: &Machine,
    work: &WorkDir,
    peer: Peer,
) -> anyhow::Result<Result<(Vec<Row>, String), String>> {
    let Some(venv) = args.peer_venv.clone().or_else(default_venv) else {
        return Ok(Err("no venv (pass --peer-venv)".into()));
    };
    if !venv.join("bin/gunicorn").exists() {
        return Ok(Err(format!(
            "{} is not set up: scripts/bench.sh creates the venv from bench/bolt_peer/requirements.txt",
            venv.display()
        )));
    }
    let port = procs::free_port()?;
    let (mut proc, config) = peer.spawn(args, env, work, &venv, port)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    proc.wait_ready(addr, None).await?;
    let pool = Pool::new(addr);
    let next_user = Arc::new(AtomicUsize::new(0));
    let make = commands(addr, next_user, args.users);
    let check = submitted(None);
    let backend = peer.label().to_string();
    note!("{backend} warm-up");
    let warm = load::closed_loop(&pool, 8, Duration::from_secs(60), limited(make.clone(), 300), check.clone()).await;
    if warm.ok == 0 {
        anyhow::bail!("the Bolt peer answered no command: {}; log:\n{}", warm.errors_text(), proc.tail());
    }
    let mut rows = Vec::new();
    let d = args.duration();
    let pid = proc.pid();
    for rate in args.rates.iter().copied().filter(|r| *r <= 300) {
        let n = (rate as f64 * d.as_secs_f64()).round() as usize;
        note!("{backend} open loop {rate}/s × {n}");
        let (out, cpu) = measured(
            pid,
            false,
            load::open_loop(&pool, rate as f64, n, make.clone(), check.clone(), MAX_IN_FLIGHT, GIVE_UP),
        )
        .await;
        rows.push(Row {
            backend: backend.clone(),
            workload: WL_COMMAND,
            mode: format!("open {rate}/s"),
            offered: Some(rate as f64),
            out,
            cpu,
            drain: None,
            outbox_per_req: None,
        });
    }
    note!("{backend} closed loop × {} connections", args.connections);
    let (out, cpu) =
        measured(pid, false, load::closed_loop(&pool, args.connections, d, make.clone(), check.clone())).await;
    rows.push(Row {
        backend: backend.clone(),
        workload: WL_COMMAND,
        mode: format!("closed {} conns", args.connections),
        offered: None,
        out,
        cpu,
        drain: None,
        outbox_per_req: None,
    });
    proc.stop(Duration::from_secs(10)).await;
    Ok(Ok((rows, format!("{}: {}; {config}", peer.label(), peer_versions(&venv)))))
}
