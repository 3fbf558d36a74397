//! `bench list`: pages of the request list API at 10k, 100k and 1M requests on
//! SQLite and PostgreSQL, against the server started in-process. Rows are seeded straight into the `requests` table
//! (setup, not measured); each page is then fetched sequentially over HTTP and
//! p50/p95/max are printed per backend, size and query.
//!
//! PostgreSQL runs when `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` names a
//! server (e.g. `postgres://postgres@127.0.0.1:5432/postgres`); a fresh
//! database `accessbot_bench_<uuid>` is created there and dropped at the end.
//!
//! ```text
//! cargo build --release --bin bench
//! TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     /tmp/accessbot-target/release/bench list --quick
//! ```

use std::collections::HashSet;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use clap::Args;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Url;
use serde::Deserialize;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use accessbot::api::dto::PageLinks;
use accessbot::config::{parse_catalog, Env};
use accessbot::outbox::OutboxConfig;
use accessbot::server::{self, Options, Running};
use accessbot::workflow::model::Request;
use accessbot::workflow::system_clock;

use crate::db::{BackendChoice, BenchDb, Kind};
use crate::{loadavg, ms};

#[derive(Args)]
pub struct ListArgs {
    /// Table sizes to measure at, comma-separated; the table grows from one to the next.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Timed requests per query and size (after a few warm-up requests).
    #[arg(long)]
    iterations: Option<usize>,
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    backend: BackendChoice,
    /// Sizes 10000,100000 and 50 iterations (explicit --sizes/--iterations still win).
    #[arg(long)]
    quick: bool,
    /// Keep the databases afterwards (for EXPLAIN); their location is printed.
    #[arg(long)]
    keep: bool,
}

/// The bench's calls go round these tokens: the API allows each 600 calls a
/// minute (`api::limits`), and one run makes a few thousand.
const API_TOKENS: usize = 16;
static NEXT_TOKEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn api_token(i: usize) -> String {
    format!("bench-api-token-{}", i % API_TOKENS)
}
const PAGE: usize = 200;
const WARMUP: usize = 5;
const SEED: u64 = 0x5eed_acce55;

/// Apps in the bench catalog; every one has a group step with two approvers.
const APPS: &[(&str, &str)] = &[
    ("aws", "AWS"),
    ("datadog", "Datadog"),
    ("figma", "Figma"),
    ("github", "GitHub"),
    ("jira", "Jira"),
    ("notion", "Notion"),
    ("salesforce", "Salesforce"),
    ("zoom", "Zoom"),
];
/// Distinct requesters. More than "a few thousand": at 1M rows 20% PENDING means
/// ~200k open requests, and the partial unique index `requests_one_open` allows one
/// open request per (user, app), so users × apps must exceed that (40k × 8 = 320k).
const USERS: usize = 40_000;
const APPROVERS: [&str; 2] = ["U0BOB", "U0CAROL"];

/// The seeded PENDING requests are up to 90 days old: with the default `request_ttl`
/// (14 days) the server's jobs would expire most of them, and queue their notices,
/// while the list is being timed.
fn catalog_toml() -> String {
    let mut s = String::from(
        "[settings]\nadmins = [\"U0ADMIN\"]\nrequest_ttl = \"36500d\"\nreminder_after = \"36500d\"\n\n[groups.security]\nname = \"Security Team\"\nmembers = [\"U0BOB\", \"U0CAROL\"]\n",
    );
    for (id, name) in APPS {
        s.push_str(&format!(
            "\n[apps.{id}]\nname = \"{name}\"\ndescription = \"{name} for the bench\"\nsteps = [{{ group = \"security\" }}]\nfields = [{{ id = \"justification\", label = \"Business justification\", type = \"text\", required = true }}]\n"
        ));
    }
    s
}

struct Row {
    backend: Kind,
    rows: usize,
    query: &'static str,
    p50: Duration,
    p95: Duration,
    max: Duration,
}

struct Seeding {
    backend: Kind,
    from: usize,
    to: usize,
    insert: Duration,
    analyze: Duration,
}

pub async fn list_bench(args: ListArgs) -> anyhow::Result<()> {
    let mut sizes = args.sizes.clone().unwrap_or_else(|| {
        if args.quick {
            vec![10_000, 100_000]
        } else {
            vec![10_000, 100_000, 1_000_000]
        }
    });
    sizes.sort_unstable();
    sizes.dedup();
    ensure!(!sizes.is_empty() && sizes[0] > 0, "--sizes needs at least one size above zero");
    let iterations = args.iterations.unwrap_or(if args.quick { 50 } else { 200 });
    ensure!(iterations > 0, "--iterations must be above zero");

    let (backends, pg_server) = crate::db::backends(args.backend)?;

    let started = Utc::now();
    let load_before = loadavg();
    let mut results = Vec::new();
    let mut seedings = Vec::new();
    let mut versions = Vec::new();
    for backend in backends {
        let db = BenchDb::create(backend, pg_server.as_deref()).await?;
        eprintln!("== {}: {}", backend.name(), db.describe());
        let outcome = run_backend(&db, &sizes, iterations, &mut results, &mut seedings).await;
        match outcome {
            Ok(version) => versions.push((backend, version)),
            Err(e) => {
                db.finish(args.keep).await;
                return Err(e.context(format!("{} benchmark failed", backend.name())));
            }
        }
        db.finish(args.keep).await;
    }

    let load = format!("load average {load_before} at the start, {} at the end", loadavg());
    print_report(started, iterations, &load, &versions, &seedings, &results);
    Ok(())
}

/// Grows the table through `sizes`, measuring at each; returns the server version string.
async fn run_backend(
    db: &BenchDb,
    sizes: &[usize],
    iterations: usize,
    results: &mut Vec<Row>,
    seedings: &mut Vec<Seeding>,
) -> anyhow::Result<String> {
    // The server migrates the fresh database.
    let running = start_server(&db.url).await?;
    running.stop().await;

    let seeder = Seeder::connect(db).await?;
    let version = seeder.version().await?;
    let mut gen = Generator::new(sizes.last().copied().unwrap_or(0));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let mut have = 0usize;
    for &size in sizes {
        let t0 = Instant::now();
        while have < size {
            let batch = (size - have).min(50_000);
            let rows = (0..batch).map(|_| gen.next()).collect::<anyhow::Result<Vec<(Request, String)>>>()?;
            seeder.insert(&rows).await?;
            have += batch;
            eprint!("\r   seeding {}: {have}/{size} rows", db.kind.name());
        }
        let insert = t0.elapsed();
        let t1 = Instant::now();
        seeder.analyze().await?;
        let analyze = t1.elapsed();
        let count = seeder.count().await?;
        ensure!(count == size as i64, "the requests table has {count} rows, expected {size}");
        eprintln!(
            "\r   seeded {} to {size} rows: insert {:.1}s, analyze {:.1}s (avg body {} bytes)",
            db.kind.name(),
            insert.as_secs_f64(),
            analyze.as_secs_f64(),
            gen.avg_body()
        );
        seedings.push(Seeding {
            backend: db.kind,
            from: seedings.last().filter(|s| s.backend == db.kind).map(|s| s.to).unwrap_or(0),
            to: size,
            insert,
            analyze,
        });

        // A fresh server per size: new pools, so every connection sees the new statistics.
        let running = start_server(&db.url).await?;
        let measured = measure(&client, &running, &gen, iterations).await;
        running.stop().await;
        for (query, lat) in measured? {
            let (p50, p95, max) = percentiles(lat);
            eprintln!(
                "   {:<9} {:>8}  {:<24} p50 {:>7.2}  p95 {:>7.2}  max {:>7.2} ms",
                db.kind.name(),
                size,
                query,
                ms(p50),
                ms(p95),
                ms(max)
            );
            results.push(Row { backend: db.kind, rows: size, query, p50, p95, max });
        }
    }
    seeder.close().await;
    Ok(version)
}

async fn start_server(database_url: &str) -> anyhow::Result<Running> {
    // Nothing is delivered during the bench; the Slack API points at a closed port.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{unused}/api");
    let tokens = (0..API_TOKENS).map(api_token).collect::<Vec<_>>().join(",");
    let vars = [
        ("PORT", "0"),
        ("DATABASE_URL", database_url),
        ("SLACK_SIGNING_SECRET", "bench-signing-secret"),
        ("SLACK_BOT_TOKEN", "xoxb-bench"),
        ("SLACK_API_BASE_URL", base.as_str()),
        ("ACCESSBOT_API_TOKENS", tokens.as_str()),
        ("ACCESSBOT_CONFIG", "bench.toml"),
    ];
    let env = Env::from_lookup(&|k| vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string()))?;
    let catalog = parse_catalog("bench.toml", &catalog_toml())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let opts = Options {
        env,
        catalog,
        outbox: OutboxConfig::default(),
        clock: system_clock(),
        shutdown_grace: Duration::from_secs(5),
        header_timeout: accessbot::http::HEADER_TIMEOUT,
        socket_backoff: accessbot::slack::socket::Backoff::SLACK,
        jobs_interval: Some(accessbot::server::JOBS_INTERVAL),
    };
    server::start(opts, listener).await
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One page as the bench sees it: only what the checks read. Parsing whole
/// `serde_json::Value` trees (and freeing them) churned the bench's heap so much
/// that glibc's consolidation of freed chunks landed inside the next timed request.
#[derive(Deserialize)]
struct Page {
    #[serde(rename = "data")]
    rows: Vec<PageRow>,
    #[serde(rename = "_links")]
    links: PageLinks,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageRow {
    id: String,
    status: String,
    created: DateTime<Utc>,
    last_updated: DateTime<Utc>,
}

impl Page {
    fn next(&self) -> Option<&str> {
        self.links.next.as_ref().map(|h| h.href.as_str())
    }
}

/// GET `url`; returns the time to the complete body and the parsed page (parsing is not timed).
async fn fetch(client: &reqwest::Client, url: &Url) -> anyhow::Result<(Duration, Page)> {
    let token = api_token(NEXT_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let t0 = Instant::now();
    let res = client.get(url.clone()).bearer_auth(token).send().await?;
    let status = res.status();
    let bytes = res.bytes().await?;
    let took = t0.elapsed();
    if !status.is_success() {
        bail!("GET {url} answered {status}: {}", String::from_utf8_lossy(&bytes));
    }
    let page = serde_json::from_slice(&bytes).with_context(|| format!("GET {url}: not a page of requests"))?;
    Ok((took, page))
}

/// The `after` parameter of a `next` link.
fn after_of(next: &str) -> anyhow::Result<String> {
    let url = Url::parse(next)?;
    url.query_pairs().find(|(k, _)| k == "after").map(|(_, v)| v.into_owned()).context("next link without after")
}

/// What each response must satisfy.
struct Check {
    status: Option<&'static str>,
    updated_after: Option<DateTime<Utc>>,
    created_after: Option<DateTime<Utc>>,
}

fn check_page(query: &str, page: &Page, check: &Check) -> anyhow::Result<()> {
    let n = page.rows.len();
    if n != PAGE && !(n < PAGE && page.next().is_none()) {
        bail!("{query}: got {n} rows (next link: {}), expected a full page of {PAGE}", page.next().is_some());
    }
    ensure!(n > 0, "{query}: empty page");
    let mut prev: Option<(DateTime<Utc>, &str)> = None;
    for r in &page.rows {
        if let Some(want) = check.status {
            ensure!(r.status == want, "{query}: a row has status {}, the filter asked for {want}", r.status);
        }
        if let Some(t) = check.updated_after {
            ensure!(r.last_updated > t, "{query}: a row was last updated before the filter's time");
        }
        if let Some(t) = check.created_after {
            ensure!(r.created > t, "{query}: a row was created before the cursor's position");
        }
        if let Some(p) = prev {
            ensure!((r.created, r.id.as_str()) > p, "{query}: rows out of order");
        }
        prev = Some((r.created, r.id.as_str()));
    }
    Ok(())
}

async fn measure(
    client: &reqwest::Client,
    running: &Running,
    gen: &Generator,
    iterations: usize,
) -> anyhow::Result<Vec<(&'static str, Vec<Duration>)>> {
    let base = Url::parse(&format!("http://{}/governance/api/v2/requests", running.addr))?;
    let limit = PAGE.to_string();
    let since = rfc3339(gen.now - TimeDelta::days(60));
    let median = rfc3339(gen.now - TimeDelta::days(45));
    let filtered = format!("status eq \"PENDING\" and lastUpdated gt \"{since}\"");
    let url = |pairs: &[(&str, &str)]| -> anyhow::Result<Url> {
        let mut all = vec![("limit", limit.as_str())];
        all.extend_from_slice(pairs);
        Ok(Url::parse_with_params(base.as_str(), &all)?)
    };

    // Cursors positioned mid-dataset: the `next` link of a page that starts at the median `created`.
    let (_, start) = fetch(client, &url(&[("filter", &format!("created gt \"{median}\""))])?).await?;
    let deep_after =
        after_of(start.next().context("no next link at the median: the table is too small for this bench")?)?;
    let (_, start) = fetch(client, &url(&[("filter", &format!("{filtered} and created gt \"{median}\""))])?).await?;
    let deep_filtered_after =
        after_of(start.next().context("no filtered next link at the median: the table is too small for this bench")?)?;
    let median_t = gen.now - TimeDelta::days(45);
    let since_t = gen.now - TimeDelta::days(60);

    let queries: Vec<(&'static str, Url, Check)> = vec![
        (
            "filtered page 200",
            url(&[("filter", &filtered)])?,
            Check { status: Some("PENDING"), updated_after: Some(since_t), created_after: None },
        ),
        (
            "filtered deep cursor",
            url(&[("filter", &filtered), ("after", &deep_filtered_after)])?,
            Check { status: Some("PENDING"), updated_after: Some(since_t), created_after: Some(median_t) },
        ),
        (
            "deep cursor page 200",
            url(&[("after", &deep_after)])?,
            Check { status: None, updated_after: None, created_after: Some(median_t) },
        ),
        ("first page 200", url(&[])?, Check { status: None, updated_after: None, created_after: None }),
    ];

    let mut out = Vec::new();
    for (name, u, check) in queries {
        for _ in 0..WARMUP {
            let (_, page) = fetch(client, &u).await?;
            check_page(name, &page, &check)?;
        }
        let mut lat = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let (took, page) = fetch(client, &u).await?;
            check_page(name, &page, &check)?;
            lat.push(took);
        }
        out.push((name, lat));
    }
    Ok(out)
}

/// Nearest-rank p50, p95 and the maximum.
fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort_unstable();
    let rank = |p: f64| {
        let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1;
        v.get(i).copied().unwrap_or_default()
    };
    (rank(0.50), rank(0.95), v.last().copied().unwrap_or_default())
}

fn print_report(
    started: DateTime<Utc>,
    iterations: usize,
    load: &str,
    versions: &[(Kind, String)],
    seedings: &[Seeding],
    results: &[Row],
) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let build = if cfg!(debug_assertions) { "debug build" } else { "release build" };
    println!();
    println!(
        "list API — {} — {cores} cores — {build} — {iterations} timed requests per row, {WARMUP} warm-up",
        started.format("%Y-%m-%d %H:%M UTC")
    );
    println!("{load}");
    for (k, v) in versions {
        println!("{:<9} {v}", k.name());
    }
    println!();
    println!("{:<9} {:>8}  {:<22} {:>8} {:>8} {:>8}", "backend", "rows", "query", "p50 ms", "p95 ms", "max ms");
    for r in results {
        println!(
            "{:<9} {:>8}  {:<22} {:>8.2} {:>8.2} {:>8.2}",
            r.backend.name(),
            r.rows,
            r.query,
            ms(r.p50),
            ms(r.p95),
            ms(r.max)
        );
    }
    println!();
    println!("seeding (not measured above)");
    for s in seedings {
        println!(
            "{:<9} {:>8} → {:>8} rows   insert {:>6.1}s ({:>6.0} rows/s)   analyze {:>5.1}s",
            s.backend.name(),
            s.from,
            s.to,
            s.insert.as_secs_f64(),
            (s.to - s.from) as f64 / s.insert.as_secs_f64().max(1e-9),
            s.analyze.as_secs_f64()
        );
    }
    println!();
    println!("goal: p95 ≤ 10 ms at 1M rows and ≤ 2× the p95 at 10k");
    for backend in [Kind::Sqlite, Kind::Postgres] {
        let rows: Vec<&Row> = results.iter().filter(|r| r.backend == backend).collect();
        let Some(largest) = rows.iter().map(|r| r.rows).max() else { continue };
        let smallest = rows.iter().map(|r| r.rows).min().unwrap_or(largest);
        let mut queries: Vec<&str> = Vec::new();
        for r in &rows {
            if !queries.contains(&r.query) {
                queries.push(r.query);
            }
        }
        for q in queries {
            let at = |n: usize| rows.iter().find(|r| r.rows == n && r.query == q).map(|r| r.p95);
            let (Some(big), Some(small)) = (at(largest), at(smallest)) else { continue };
            let ratio = ms(big) / ms(small).max(1e-9);
            let abs_ok = ms(big) <= 10.0;
            let ratio_ok = ratio <= 2.0;
            let verdict = match (abs_ok && ratio_ok, largest >= 1_000_000) {
                (true, true) => "MET".to_string(),
                (true, false) => format!("met so far (largest size {largest}, the goal is set at 1M)"),
                (false, _) => {
                    let mut why = Vec::new();
                    if !abs_ok {
                        why.push(format!("p95 {:.2} ms > 10 ms", ms(big)));
                    }
                    if !ratio_ok {
                        why.push(format!("{ratio:.1}× > 2×"));
                    }
                    format!("MISSED ({})", why.join(", "))
                }
            };
            println!(
                "{:<9} {:<22} p95 {:>8.2} ms at {:>7} vs {:>7.2} ms at {:>6}: {:>6.1}×  {verdict}",
                backend.name(),
                q,
                ms(big),
                largest,
                ms(small),
                smallest,
                ratio
            );
        }
    }
}

/// Writes rows straight into `requests` (setup, bypassing the workflow).
enum Seeder {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Rows per multi-row INSERT in SQLite (10 columns: 5000 placeholders).
const SQLITE_CHUNK: usize = 500;
/// Rows per `INSERT … SELECT FROM UNNEST` in PostgreSQL.
const PG_CHUNK: usize = 10_000;

impl Seeder {
    async fn connect(db: &BenchDb) -> anyhow::Result<Seeder> {
        match db.kind {
            Kind::Sqlite => {
                let opts = SqliteConnectOptions::from_str(&db.url)?
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Off)
                    .busy_timeout(Duration::from_secs(30))
                    .pragma("cache_size", "-262144");
                let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
                Ok(Seeder::Sqlite(pool))
            }
            Kind::Postgres => {
                let opts = PgConnectOptions::from_str(&db.url)?.options([("synchronous_commit", "off")]);
                let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_with(opts).await?;
                Ok(Seeder::Postgres(pool))
            }
        }
    }

    async fn version(&self) -> anyhow::Result<String> {
        Ok(match self {
            Seeder::Sqlite(p) => {
                let v: String = sqlx::query_scalar("SELECT sqlite_version()").fetch_one(p).await?;
                format!("SQLite {v}")
            }
            Seeder::Postgres(p) => {
                let v: String = sqlx::query_scalar("SHOW server_version").fetch_one(p).await?;
                format!("PostgreSQL {v}")
            }
        })
    }

    async fn insert(&self, rows: &[(Request, String)]) -> anyhow::Result<()> {
        match self {
            Seeder::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                for chunk in rows.chunks(SQLITE_CHUNK) {
                    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                    let sql = format!(
                        "INSERT INTO requests (id, app_id, requested_by, requested_for, status, grant_status, created, last_updated, version, body) VALUES {values}"
                    );
                    let mut q = sqlx::query(&sql);
                    for (r, body) in chunk {
                        q = q
                            .bind(r.id.clone())
                            .bind(r.app_id.clone())
                            .bind(r.requested_by.id.clone())
                            .bind(r.requested_for.id.clone())
                            .bind(r.status.as_str())
                            .bind(r.grant_status.map(|g| g.as_str()))
                            .bind(r.created.timestamp_millis())
                            .bind(r.last_updated.timestamp_millis())
                            .bind(r.version)
                            .bind(body.as_str());
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Seeder::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for chunk in rows.chunks(PG_CHUNK) {
                    let text =
                        |f: &dyn Fn(&Request) -> String| chunk.iter().map(|(r, _)| f(r)).collect::<Vec<String>>();
                    let bodies = chunk.iter().map(|(_, b)| b.as_str()).collect::<Vec<&str>>();
                    sqlx::query(
                        "INSERT INTO requests (id, app_id, requested_by, requested_for, status, grant_status, created, last_updated, version, body)
                         SELECT id, app_id, requested_by, requested_for, status, grant_status, created, last_updated, version, body::json
                         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                     $7::timestamptz[], $8::timestamptz[], $9::int8[], $10::text[])
                              AS t(id, app_id, requested_by, requested_for, status, grant_status, created, last_updated, version, body)",
                    )
                    .bind(text(&|r| r.id.clone()))
                    .bind(text(&|r| r.app_id.clone()))
                    .bind(text(&|r| r.requested_by.id.clone()))
                    .bind(text(&|r| r.requested_for.id.clone()))
                    .bind(text(&|r| r.status.as_str().to_string()))
                    .bind(chunk.iter().map(|(r, _)| r.grant_status.map(|g| g.as_str().to_string())).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|(r, _)| r.created).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|(r, _)| r.last_updated).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|(r, _)| r.version).collect::<Vec<_>>())
                    .bind(bodies)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Fresh planner statistics (PostgreSQL: also VACUUM, as autovacuum would after a bulk insert,
    /// so the visibility map allows index-only scans).
    async fn analyze(&self) -> anyhow::Result<()> {
        match self {
            Seeder::Sqlite(p) => {
                sqlx::query("ANALYZE").execute(p).await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(p).await?;
            }
            Seeder::Postgres(p) => {
                sqlx::query("VACUUM (ANALYZE) requests").execute(p).await?;
            }
        }
        Ok(())
    }

    async fn count(&self) -> anyhow::Result<i64> {
        Ok(match self {
            Seeder::Sqlite(p) => sqlx::query_scalar("SELECT COUNT(*) FROM requests").fetch_one(p).await?,
            Seeder::Postgres(p) => sqlx::query_scalar("SELECT COUNT(*) FROM requests").fetch_one(p).await?,
        })
    }

    async fn close(self) {
        match self {
            Seeder::Sqlite(p) => p.close().await,
            Seeder::Postgres(p) => p.close().await,
        }
    }
}

// ---- realistic requests -------------------------------------------------------

/// Deterministic request generator: the same rows on every backend and run.
///
/// Rows are written as JSON in the shape the store writes and then read back
/// into a `Request`, so the bodies are exactly what the server would store
/// (fields the model adds later with `#[serde(default)]` included).
struct Generator {
    rng: StdRng,
    now: DateTime<Utc>,
    /// (user, app) pairs not yet holding an open request, shuffled.
    open_pairs: Vec<u32>,
    ids: HashSet<String>,
    body_bytes: u64,
    made: u64,
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const REASONS: &[&str] = &[
    "Need access to review the quarterly pipeline numbers with the regional sales leads before the planning offsite.",
    "Joining the platform team next sprint; I will be on call for the deploy tooling and need to read the dashboards.",
    "Customer escalation: I have to reproduce the reported issue in the shared workspace and attach recordings.",
    "Onboarding as a contractor for the data migration project, access needed until the end of the engagement.",
    "Replacing a colleague on parental leave who owned the vendor contracts; need to keep renewals moving.",
];

impl Generator {
    fn new(max_rows: usize) -> Generator {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut open_pairs: Vec<u32> = (0..(USERS * APPS.len()) as u32).collect();
        open_pairs.shuffle(&mut rng);
        // Millisecond precision, what both backends store exactly.
        let now = Utc::now().trunc_subsecs(3);
        Generator { rng, now, open_pairs, ids: HashSet::with_capacity(max_rows), body_bytes: 0, made: 0 }
    }

    fn avg_body(&self) -> u64 {
        self.body_bytes / self.made.max(1)
    }

    fn user(i: usize) -> String {
        format!("U0{i:07X}")
    }

    fn id(&mut self) -> String {
        loop {
            let tail: String = (0..17).map(|_| ALPHABET[self.rng.gen_range(0..ALPHABET.len())] as char).collect();
            let id = format!("req{tail}");
            if self.ids.insert(id.clone()) {
                return id;
            }
        }
    }

    fn next(&mut self) -> anyhow::Result<(Request, String)> {
        let mut status = match self.rng.gen_range(0..100) {
            0..=19 => "PENDING",
            20..=69 => "APPROVED",
            70..=84 => "DENIED",
            85..=94 => "CANCELED",
            _ => "EXPIRED",
        };
        let (user, app) = if status == "PENDING" {
            match self.open_pairs.pop() {
                Some(pair) => (pair as usize / APPS.len(), pair as usize % APPS.len()),
                None => {
                    // Every (user, app) already has an open request: this one was decided.
                    status = "APPROVED";
                    (self.rng.gen_range(0..USERS), self.rng.gen_range(0..APPS.len()))
                }
            }
        } else {
            (self.rng.gen_range(0..USERS), self.rng.gen_range(0..APPS.len()))
        };
        let (app_id, app_name) = APPS[app];
        let for_id = Self::user(user);
        let by_id = if self.rng.gen_bool(0.1) { Self::user(self.rng.gen_range(0..USERS)) } else { for_id.clone() };
        let created = self.now - TimeDelta::milliseconds(self.rng.gen_range(0..90 * 86_400_000i64));
        let last_updated = (created + TimeDelta::minutes(self.rng.gen_range(0..3 * 24 * 60))).min(self.now);
        let approver = APPROVERS[self.rng.gen_range(0..APPROVERS.len())];
        let justification = REASONS[self.rng.gen_range(0..REASONS.len())];
        let at = |t: DateTime<Utc>| serde_json::to_value(t).unwrap_or_default();
        let none = serde_json::Value::Null;

        // (step state, decided by, comment, grant status, last updated by)
        let (step_state, decided_by, comment, grant, last_by) = match status {
            "PENDING" => ("pending", none.clone(), none.clone(), none.clone(), by_id.clone()),
            "APPROVED" => (
                "approved",
                json!(approver),
                json!("Approved, thanks for the context."),
                json!("GRANTED"),
                approver.to_string(),
            ),
            "DENIED" => (
                "denied",
                json!(approver),
                json!("Please ask your manager to request this for the whole team."),
                none.clone(),
                approver.to_string(),
            ),
            "CANCELED" => ("closed", none.clone(), none.clone(), none.clone(), by_id.clone()),
            _ => ("closed", none.clone(), none.clone(), none.clone(), "system".to_string()),
        };
        let open = status == "PENDING";
        let resolved = if open { none.clone() } else { at(last_updated) };
        let decided = if decided_by.is_null() { none.clone() } else { at(last_updated) };
        let granted = if grant.is_null() { none.clone() } else { at(last_updated) };
        let v = json!({
            "id": self.id(),
            "app_id": app_id,
            "app_name": app_name,
            "requested_by": { "id": by_id, "email": null },
            "requested_for": { "id": for_id, "email": null },
            "justification": justification,
            "field_values": [
                { "id": "justification", "label": "Business justification", "kind": "text", "value": justification }
            ],
            "status": status,
            "current_step": if open { json!(0) } else { none.clone() },
            "steps": [{
                "kind": { "type": "group", "group_id": "security", "group_name": "Security Team" },
                "approvers": APPROVERS.iter().map(|a| json!({ "slack": a })).collect::<Vec<_>>(),
                "routed_to": null,
                "state": step_state,
                "activated": at(created),
                "decided_by": decided_by,
                "decided": decided,
                "comment": comment,
            }],
            "created": at(created),
            "created_by": by_id,
            "last_updated": at(last_updated),
            "last_updated_by": last_by,
            "resolved": resolved,
            "grant_status": grant,
            "granted": granted,
            "reason": null,
            "version": 1,
        });
        let r: Request = serde_json::from_value(v).context("the generated body is not a Request any more")?;
        let body = serde_json::to_string(&r)?;
        self.made += 1;
        self.body_bytes += body.len() as u64;
        Ok((r, body))
    }
}
