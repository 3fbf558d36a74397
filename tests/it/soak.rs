//! The soak run behind `scripts/soak.sh DURATION`: mixed traffic (chat requests,
//! approvals, denials, cancels, multi-step approvals, API creates and messages,
//! App Home opens, reads) against two replicas of the real binary on a fresh
//! PostgreSQL database, with the fake Slack failing at random; then invariants
//! checked from the database and the fake's record, and a summary printed.
//!
//! ```text
//! TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres SOAK_SECONDS=180 \
//!     cargo test --release --test it soak::soak -- --ignored --nocapture
//! ```
//! `SOAK_WORKERS` (default 2) load loops, each pausing `SOAK_PAUSE_MS` (default 400)
//! between operations: about 4 operations a second, 15 outbox rows each (App Home
//! republishes included), which two replicas on two cores deliver as fast as they
//! come; the outbox backlog is sampled over the run. `FAULTS_SEED` picks the faults
//! and the traffic mix.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;

use crate::fake_slack::{Call, Chaos, FakeSlack};
use crate::faults::{request_id_in, seed, Client};
use crate::helpers::*;
use crate::process;

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `VmHWM` (peak resident set) or `VmRSS` of a process, in KiB.
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Every `req…` id in a string.
fn request_ids(s: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("req") {
        let cand = &rest[i..];
        let id: String = cand.chars().take(20).collect();
        if id.len() == 20 && id.chars().all(|c| c.is_ascii_alphanumeric()) && !ids.contains(&id) {
            ids.push(id);
        }
        rest = &rest[i + 3..];
    }
    ids
}

/// The fake Slack's record, folded as it grows (a long run cannot keep every call).
#[derive(Default)]
struct Record {
    calls: u64,
    ok_by_method: BTreeMap<String, u64>,
    /// Hash of each successful `chat.postMessage` body → how many times.
    post_bodies: HashMap<u64, u32>,
    duplicates: u64,
    duplicate_samples: Vec<String>,
    /// (channel, ts) of every successful post.
    posted: HashSet<(String, String)>,
    order_violations: Vec<String>,
    /// (user, request id) → texts of top-level DMs to the user about the request.
    dms: HashMap<(String, String), Vec<String>>,
}

impl Record {
    fn fold(&mut self, calls: Vec<Call>) {
        for c in calls {
            self.calls += 1;
            if !c.ok() {
                continue;
            }
            *self.ok_by_method.entry(c.method.clone()).or_default() += 1;
            let channel = c.body["channel"].as_str().unwrap_or_default().to_string();
            match c.method.as_str() {
                "chat.postMessage" => {
                    let body = c.text();
                    let mut h = DefaultHasher::new();
                    body.hash(&mut h);
                    let n = self.post_bodies.entry(h.finish()).or_default();
                    *n += 1;
                    if *n > 1 {
                        self.duplicates += 1;
                        if self.duplicate_samples.len() < 10 {
                            self.duplicate_samples.push(body.chars().take(300).collect());
                        }
                    }
                    match c.body["thread_ts"].as_str() {
                        Some(parent) => {
                            if !self.posted.contains(&(channel.clone(), parent.to_string())) {
                                self.order_violations.push(format!("reply before its parent: {}", c.text()));
                            }
                        }
                        None => {
                            if let Some(user) = channel.strip_prefix('D') {
                                let text = c.body["text"].as_str().unwrap_or_default();
                                for id in request_ids(&body) {
                                    let t = text.chars().take(200).collect();
                                    self.dms.entry((user.to_string(), id)).or_default().push(t);
                                }
                            }
                        }
                    }
                    if let Some(ts) = c.ts {
                        self.posted.insert((channel, ts));
                    }
                }
                "chat.update" => {
                    let ts = c.body["ts"].as_str().unwrap_or_default().to_string();
                    if !self.posted.contains(&(channel, ts)) {
                        self.order_violations.push(format!("update before its post: {}", c.text()));
                    }
                }
                _ => {}
            }
        }
    }

    fn dms_about(&self, user: &str, id: &str) -> &[String] {
        self.dms.get(&(user.to_string(), id.to_string())).map(Vec::as_slice).unwrap_or_default()
    }
}

/// A point in the run: resident memory of each replica and the outbox backlog.
struct Sample {
    at: u64,
    rss_a: u64,
    rss_b: u64,
    pending: i64,
}

/// What one operation should have left behind.
#[derive(Clone, Debug)]
struct Expect {
    id: String,
    user: String,
    status: &'static str,
    /// Approver decisions in the system log.
    decisions: usize,
    /// Words each expected requester DM about the request contains.
    dms: Vec<String>,
    /// Approvers who must have been asked.
    asked: Vec<&'static str>,
}

#[derive(Default)]
struct Traffic {
    commands: AtomicU64,
    clicks: AtomicU64,
    api_calls: AtomicU64,
    home_opens: AtomicU64,
    reads: AtomicU64,
    /// Answers that were not what the operation expects (5xx, a missing id, …).
    unexpected: Mutex<Vec<String>>,
    expects: Mutex<Vec<Expect>>,
}

impl Traffic {
    fn unexpected(&self, what: String) {
        let mut u = self.unexpected.lock().unwrap();
        if u.len() < 1000 {
            u.push(what);
        }
    }
}

struct Load {
    client: Client,
    bases: Vec<String>,
    traffic: Arc<Traffic>,
    rng: StdRng,
    store: Arc<dyn accessbot::workflow::ports::Store>,
}

/// How long a new request may wait for the directory before it is routed.
const ROUTED_WITHIN: Duration = Duration::from_secs(60);

impl Load {
    fn base(&mut self) -> String {
        let i = self.rng.gen_range(0..self.bases.len());
        self.bases[i].clone()
    }

    async fn command(&mut self, user: &str, text: &str) -> Option<String> {
        self.traffic.commands.fetch_add(1, Ordering::Relaxed);
        let base = self.base();
        match self.client.command(&base, user, text).await {
            Ok((StatusCode::OK, reply)) => Some(reply),
            other => {
                self.traffic.unexpected(format!("/access {text} as {user}: {other:?}"));
                None
            }
        }
    }

    /// Creates a request and returns its id once it is routed: an approver is
    /// asked, and so can click, only then. A new requester's request waits
    /// `SUBMITTED` until the directory (failing at random here) says who they
    /// are; a click before that is refused, and a soak that clicked at once
    /// expected decisions that never were (about 8 % of requests).
    async fn request(&mut self, user: &str, text: &str) -> Option<String> {
        let reply = self.command(user, text).await?;
        let Some(id) = request_id_in(&reply) else {
            self.traffic.unexpected(format!("/access {text} as {user}: no request id in `{reply}`"));
            return None;
        };
        self.routed(id).await
    }

    /// `id` once the request is out of `SUBMITTED` (see [`Load::request`]).
    async fn routed(&self, id: String) -> Option<String> {
        let until = Instant::now() + ROUTED_WITHIN;
        loop {
            match self.store.request(&id).await {
                Ok(Some(r)) if r.status != accessbot::workflow::model::Status::Submitted => return Some(id),
                _ if Instant::now() > until => {
                    self.traffic.unexpected(format!("{id}: not routed within {ROUTED_WITHIN:?}"));
                    return None;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    async fn click(&mut self, user: &str, action: &str, id: &str, step: usize) -> bool {
        self.traffic.clicks.fetch_add(1, Ordering::Relaxed);
        let base = self.base();
        match self.client.click(&base, user, action, id, step).await {
            Ok(StatusCode::OK) => true,
            other => {
                self.traffic.unexpected(format!("{user} {action} {id}:{step}: {other:?}"));
                false
            }
        }
    }

    fn expect(&self, e: Expect) {
        self.traffic.expects.lock().unwrap().push(e);
    }

    /// One operation of the mix, as `user`.
    async fn step(&mut self, user: &str, n: u64) {
        let roll = self.rng.gen_range(0..100);
        match roll {
            // A group step: approved by Bob or Carol, or denied.
            0..=29 => {
                let Some(id) = self.request(user, &format!("request github soak {n}")).await else { return };
                let (by, action) = match self.rng.gen_range(0..4) {
                    0 => ("U0BOB", "deny"),
                    1 => ("U0CAROL", "approve"),
                    _ => ("U0BOB", "approve"),
                };
                if self.click(by, action, &id, 0).await {
                    let (status, outcome) =
                        if action == "deny" { ("DENIED", "denied") } else { ("APPROVED", "access is granted") };
                    self.expect(Expect {
                        id,
                        user: user.into(),
                        status,
                        decisions: 1,
                        dms: vec!["submitted".into(), outcome.into()],
                        asked: vec!["U0BOB", "U0CAROL"],
                    });
                }
            }
            // Three steps: Alice, the security group, Dave (who sometimes denies).
            30..=44 => {
                let Some(id) = self.request(user, &format!("request salesforce soak justification {n}")).await else {
                    return;
                };
                let last = if self.rng.gen_range(0..5) == 0 { "deny" } else { "approve" };
                let ok = self.click("U0ALICE", "approve", &id, 0).await
                    && self.click("U0CAROL", "approve", &id, 1).await
                    && self.click("U0DAVE", last, &id, 2).await;
                if ok {
                    let (status, outcome) =
                        if last == "deny" { ("DENIED", "denied") } else { ("APPROVED", "access is granted") };
                    self.expect(Expect {
                        id,
                        user: user.into(),
                        status,
                        decisions: 3,
                        dms: vec!["submitted".into(), "Step 1 of 3".into(), "Step 2 of 3".into(), outcome.into()],
                        asked: vec!["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"],
                    });
                }
            }
            // The requester cancels (the approvers' messages are closed).
            45..=54 => {
                let Some(id) = self.request(user, &format!("request github soak cancel {n}")).await else { return };
                let Some(reply) = self.command(user, &format!("cancel {id}")).await else { return };
                if !reply.contains("Canceled") {
                    self.traffic.unexpected(format!("cancel {id}: `{reply}`"));
                    return;
                }
                self.expect(Expect {
                    id,
                    user: user.into(),
                    status: "CANCELED",
                    decisions: 0,
                    // Their own cancel is answered in the command's reply, not by DM.
                    dms: vec!["submitted".into()],
                    asked: vec!["U0BOB", "U0CAROL"],
                });
            }
            // API create, a message to the requester, then Carol approves.
            55..=69 => {
                self.traffic.api_calls.fetch_add(2, Ordering::Relaxed);
                let base = self.base();
                let id = match self.client.api_create(&base, "github", user, &format!("soak api {n}")).await {
                    Ok((StatusCode::ACCEPTED, r)) => r["id"].as_str().unwrap_or_default().to_string(),
                    other => {
                        self.traffic.unexpected(format!("API create for {user}: {other:?}"));
                        return;
                    }
                };
                let Some(id) = self.routed(id).await else { return };
                let message = format!("soak message {n} for {user}");
                let base = self.base();
                match self.client.api_message(&base, &id, &message).await {
                    Ok(StatusCode::CREATED) => {}
                    other => {
                        self.traffic.unexpected(format!("API message to {id}: {other:?}"));
                        return;
                    }
                }
                if self.click("U0CAROL", "approve", &id, 0).await {
                    self.expect(Expect {
                        id,
                        user: user.into(),
                        status: "APPROVED",
                        decisions: 1,
                        dms: vec!["submitted".into(), message, "access is granted".into()],
                        asked: vec!["U0BOB", "U0CAROL"],
                    });
                }
            }
            // No approval needed: granted at once.
            70..=79 => {
                let Some(id) = self.request(user, &format!("request zoom soak {n}")).await else { return };
                self.expect(Expect {
                    id,
                    user: user.into(),
                    status: "APPROVED",
                    decisions: 0,
                    dms: vec!["access is granted".into()],
                    asked: vec![],
                });
            }
            // App Home opens (approvers' homes are then republished on every change).
            80..=89 => {
                self.traffic.home_opens.fetch_add(1, Ordering::Relaxed);
                let who = ["U0BOB", "U0CAROL", "U0ALICE", "U0DAVE", "U0SFADMIN", user][self.rng.gen_range(0..6)];
                let base = self.base();
                match self.client.home_opened(&base, who).await {
                    Ok(StatusCode::OK) => {}
                    other => self.traffic.unexpected(format!("app_home_opened {who}: {other:?}")),
                }
            }
            // Reads.
            _ => {
                self.traffic.reads.fetch_add(1, Ordering::Relaxed);
                let (who, text) = match self.rng.gen_range(0..3) {
                    0 => (user, "mine"),
                    1 => ("U0BOB", "tasks"),
                    _ => (user, "apps"),
                };
                self.command(who, text).await;
                let base = self.base();
                let res = reqwest::Client::new()
                    .get(format!("{base}/governance/api/v2/requests?limit=5&orderBy=created%20desc"))
                    .bearer_auth(API_TOKEN)
                    .send()
                    .await;
                match res.map(|r| r.status()) {
                    Ok(StatusCode::OK) => {}
                    other => self.traffic.unexpected(format!("GET requests: {other:?}")),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "soak run: scripts/soak.sh DURATION (needs TEST_DATABASE_URL)"]
async fn soak() {
    let secs: u64 = env_num("SOAK_SECONDS", 60);
    let workers: u64 = env_num("SOAK_WORKERS", 2);
    let pause = Duration::from_millis(env_num("SOAK_PAUSE_MS", 400));
    let seed = seed();
    let server = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL names a PostgreSQL server");
    let db = TestDb::create(&Backend::Postgres(server)).await;
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    slack.add_user("U0CAROL", "carol@example.com");
    // About one call in eight fails; a handful answer only after the client gave up.
    slack.set_chaos(Some(Chaos::new(seed).with_slow(0.0005, (secs / 60 + 1) as usize)));
    let env = [("RUST_LOG", "warn")];
    let a = process::start(dir.path(), "a", &db.url, &slack, &env).await;
    let b = process::start(dir.path(), "b", &db.url, &slack, &env).await;
    let store = accessbot::store::open(&db.url).await.unwrap();
    let replicas = [("a", a.child.id()), ("b", b.child.id())];
    println!(
        "soak: {secs}s, {workers} load loops, 2 replicas (pids {}, {}), database {}, seed {seed}",
        replicas[0].1,
        replicas[1].1,
        db.url.rsplit('/').next().unwrap_or_default()
    );

    let record = Arc::new(Mutex::new(Record::default()));
    let traffic = Arc::new(Traffic::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);

    // The record is folded every few seconds; RSS and the outbox backlog sampled
    // six times in a short run, once a minute in a long one.
    let every = Duration::from_secs((secs / 6).clamp(5, 60));
    let folding = {
        let (slack, record, store) = (slack.clone(), record.clone(), store.clone());
        tokio::spawn(async move {
            let mut samples: Vec<Sample> = Vec::new();
            let mut last_sample = Instant::now();
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let calls = slack.take_calls();
                record.lock().unwrap().fold(calls);
                if last_sample.elapsed() >= every || samples.is_empty() {
                    last_sample = Instant::now();
                    let rss = |pid| proc_kib(pid, "VmRSS:").unwrap_or(0);
                    samples.push(Sample {
                        at: started.elapsed().as_secs(),
                        rss_a: rss(replicas[0].1),
                        rss_b: rss(replicas[1].1),
                        pending: store.outbox_counts().await.map(|c| c.pending).unwrap_or(-1),
                    });
                }
            }
            samples
        })
    };

    let client = Client::new(&slack);
    let bases = vec![a.base.clone(), b.base.clone()];
    let mut loops = Vec::new();
    for w in 0..workers {
        let mut load = Load {
            client: client.clone(),
            bases: bases.clone(),
            traffic: traffic.clone(),
            rng: StdRng::seed_from_u64(seed + w),
            store: store.clone(),
        };
        loops.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let user = format!("U0S{w}{n:06}");
                load.step(&user, n).await;
                n += 1;
                tokio::time::sleep(pause).await;
            }
        }));
    }
    for l in loops {
        l.await.unwrap();
    }
    let load_secs = started.elapsed().as_secs_f64();
    let samples = folding.await.unwrap();

    // Let the outbox finish (slow answers and backoffs included).
    let drain_started = Instant::now();
    let mut drained = false;
    while drain_started.elapsed() < Duration::from_secs(180) {
        if store.outbox_counts().await.map(|c| c.pending == 0).unwrap_or(false) {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    record.lock().unwrap().fold(slack.take_calls());

    // Invariants.
    let mut failures: Vec<String> = Vec::new();
    let mut alive = Vec::new();
    for (name, p) in [("a", &a), ("b", &b)] {
        let up = reqwest::get(format!("{}/readyz", p.base)).await.map(|r| r.status().is_success()).unwrap_or(false);
        if !up {
            failures.push(format!("replica {name} is not ready at the end"));
        }
        alive.push(up);
    }
    let hwm: Vec<u64> = replicas.iter().map(|(_, pid)| proc_kib(*pid, "VmHWM:").unwrap_or(0)).collect();
    let counts = store.outbox_counts().await.unwrap();
    if !drained {
        failures.push(format!("outbox did not drain within 180 s: {counts:?}"));
    }
    let expects = traffic.expects.lock().unwrap().clone();
    let rec = std::mem::take(&mut *record.lock().unwrap());
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let (mut missing, mut wrong_state, mut missing_dms, mut wrong_decisions, mut decisions) = (0, 0, 0, 0, 0);
    for e in &expects {
        let Some(r) = store.request(&e.id).await.unwrap() else {
            missing += 1;
            failures.push(format!("{}: accepted but not in the database", e.id));
            continue;
        };
        *statuses.entry(r.status.as_str().to_string()).or_default() += 1;
        if r.status.as_str() != e.status || r.requested_for.id != e.user {
            wrong_state += 1;
            failures.push(format!(
                "{}: {} for {}, expected {} for {}",
                e.id,
                r.status.as_str(),
                r.requested_for.id,
                e.status,
                e.user
            ));
        }
        let n = store
            .request_events(&e.id)
            .await
            .unwrap()
            .iter()
            .filter(|ev| ev.event_type.starts_with("app.access_request.approver."))
            .count();
        decisions += n;
        if n != e.decisions {
            wrong_decisions += 1;
            failures.push(format!("{}: {n} decisions, expected {}", e.id, e.decisions));
        }
        let dms = rec.dms_about(&e.user, &e.id);
        for word in &e.dms {
            if !dms.iter().any(|t| t.contains(word.as_str())) {
                missing_dms += 1;
                failures.push(format!("{}: no DM to {} with `{word}` (got {dms:?})", e.id, e.user));
            }
        }
        for approver in &e.asked {
            if rec.dms_about(approver, &e.id).is_empty() {
                missing_dms += 1;
                failures.push(format!("{}: {approver} was never asked", e.id));
            }
        }
    }
    let in_db: i64 = store.request_counts().await.unwrap().iter().map(|(_, n)| n).sum();
    let unexpected = traffic.unexpected.lock().unwrap().clone();
    if in_db as usize != expects.len() {
        failures.push(format!(
            "{in_db} requests in the database, {} accepted ({} operations answered unexpectedly)",
            expects.len(),
            unexpected.len()
        ));
    }
    for u in unexpected.iter().take(20) {
        failures.push(format!("unexpected answer: {u}"));
    }
    if rec.duplicates > 0 {
        failures.push(format!("{} duplicate posts, e.g. {:?}", rec.duplicates, rec.duplicate_samples));
    }
    for v in rec.order_violations.iter().take(20) {
        failures.push(format!("order: {v}"));
    }
    let lost = missing + wrong_state + missing_dms + counts.failed as usize + counts.pending as usize;

    let mib = |kib: u64| kib as f64 / 1024.0;
    let load = |o: &AtomicU64| o.load(Ordering::Relaxed);
    println!("\n==== soak summary ====");
    println!(
        "run: {load_secs:.0}s of load on 2 replicas (PostgreSQL), outbox drained {:.1}s later; seed {seed}",
        drain_secs
    );
    println!(
        "traffic: {} slash commands, {} clicks, {} API calls, {} App Home opens, {} read operations; {} unexpected answers",
        load(&traffic.commands),
        load(&traffic.clicks),
        load(&traffic.api_calls),
        load(&traffic.home_opens),
        load(&traffic.reads),
        unexpected.len()
    );
    println!("requests: {} accepted, {in_db} in the database; {statuses:?}", expects.len());
    println!(
        "decisions: {decisions} approver decisions in the system log ({wrong_decisions} requests with a wrong count)"
    );
    println!(
        "deliveries: {} outbox rows done, {} failed, {} pending; {} Slack calls, {} successful {:?}; faults injected {:?}",
        counts.done,
        counts.failed,
        counts.pending,
        rec.calls,
        rec.ok_by_method.values().sum::<u64>(),
        rec.ok_by_method,
        slack.chaos_injected()
    );
    println!(
        "duplicates: {} (successful chat.postMessage calls whose whole body — channel, text, blocks, thread_ts — \
         equals an earlier successful one's; every message names its request, step and recipient, so none is legitimate)",
        rec.duplicates
    );
    println!(
        "lost: {lost} (accepted requests missing [{missing}] or in the wrong state [{wrong_state}] + expected DMs \
         and approver asks never delivered [{missing_dms}] + outbox rows failed [{}] or left pending [{}])",
        counts.failed, counts.pending
    );
    println!("order: {} updates or thread replies before their post", rec.order_violations.len());
    println!("max RSS (VmHWM): replica a {:.1} MiB, replica b {:.1} MiB", mib(hwm[0]), mib(hwm[1]));
    println!(
        "over time (s: VmRSS a / b MiB, outbox rows pending): {}",
        samples
            .iter()
            .map(|x| format!("{}s: {:.1} / {:.1}, {}", x.at, mib(x.rss_a), mib(x.rss_b), x.pending))
            .collect::<Vec<_>>()
            .join("; ")
    );
    if failures.is_empty() {
        println!("result: PASS");
    } else {
        println!("result: FAIL ({} problems)", failures.len());
        for f in failures.iter().take(50) {
            println!("  - {f}");
        }
        for (name, p) in [("a", &a), ("b", &b)] {
            let logs = p.logs();
            let tail: Vec<&str> = logs.lines().rev().take(20).collect();
            println!("--- replica {name} log tail ---\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }
    assert!(failures.is_empty(), "soak invariants failed");
}
