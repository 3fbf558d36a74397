//! Databases the benches run against: a SQLite file in a temp dir, or a fresh
//! PostgreSQL database on the server named by `BENCH_DATABASE_URL` / `TEST_DATABASE_URL`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::ValueEnum;
use reqwest::Url;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgPool, SqlitePool};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }
}

pub struct BenchDb {
    pub kind: Kind,
    pub url: String,
    /// SQLite: the directory holding the file.
    dir: Option<PathBuf>,
    /// PostgreSQL: the server URL and the database name, to drop it.
    pg: Option<(String, String)>,
}

impl BenchDb {
    pub async fn create(kind: Kind, pg_server: Option<&str>) -> anyhow::Result<BenchDb> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("accessbot_bench_{tag}"));
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                let url = format!("sqlite://{}", dir.join("accessbot.db").display());
                Ok(BenchDb { kind, url, dir: Some(dir), pg: None })
            }
            Kind::Postgres => {
                let server = pg_server.context("no PostgreSQL server URL")?;
                let name = format!("accessbot_bench_{tag}");
                let mut conn = sqlx::PgConnection::connect(server).await.context("connecting to the server URL")?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
                conn.close().await?;
                let mut url = Url::parse(server).context("the PostgreSQL URL")?;
                url.set_path(&format!("/{name}"));
                Ok(BenchDb { kind, url: url.to_string(), dir: None, pg: Some((server.to_string(), name)) })
            }
        }
    }

    pub fn describe(&self) -> String {
        match (&self.dir, &self.pg) {
            (Some(dir), _) => format!("temp file {}", dir.join("accessbot.db").display()),
            (_, Some((_, name))) => format!("database {name}"),
            _ => self.url.clone(),
        }
    }

    /// Removes the database, or says where it is when kept.
    pub async fn finish(&self, keep: bool) {
        if keep {
            eprintln!("kept {} database: {}", self.kind.name(), self.url);
            return;
        }
        if let Some(dir) = &self.dir {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                eprintln!("warning: could not remove {}: {e}", dir.display());
            }
        }
        if let Some((server, name)) = &self.pg {
            let dropped = async {
                let mut conn = sqlx::PgConnection::connect(server).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
                conn.close().await?;
                anyhow::Ok(())
            };
            if let Err(e) = dropped.await {
                eprintln!("warning: could not drop database {name}: {e:#}");
            }
        }
    }
}

/// The PostgreSQL server URL from `BENCH_DATABASE_URL` or `TEST_DATABASE_URL`, if any.
pub fn pg_server() -> Option<String> {
    ["BENCH_DATABASE_URL", "TEST_DATABASE_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
}

/// The backends to run for `choice`; PostgreSQL only when a server is named
/// (an explicit `--backend postgres` without one is an error).
pub fn backends(choice: BackendChoice) -> anyhow::Result<(Vec<Kind>, Option<String>)> {
    let pg = pg_server();
    let mut out = Vec::new();
    if matches!(choice, BackendChoice::Sqlite | BackendChoice::Both) {
        out.push(Kind::Sqlite);
    }
    if matches!(choice, BackendChoice::Postgres | BackendChoice::Both) {
        match &pg {
            Some(_) => out.push(Kind::Postgres),
            None if choice == BackendChoice::Postgres => {
                bail!("--backend postgres needs BENCH_DATABASE_URL or TEST_DATABASE_URL naming a PostgreSQL server")
            }
            None => eprintln!("note: BENCH_DATABASE_URL / TEST_DATABASE_URL not set: PostgreSQL skipped"),
        }
    }
    Ok((out, pg))
}

/// Read-only queries on the server's database.
pub enum ReadDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl ReadDb {
    pub async fn connect(url: &str, kind: Kind) -> anyhow::Result<ReadDb> {
        Ok(match kind {
            Kind::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)?.busy_timeout(Duration::from_secs(10));
                ReadDb::Sqlite(sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?)
            }
            Kind::Postgres => {
                ReadDb::Postgres(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?)
            }
        })
    }

    pub async fn max_id(&self) -> anyhow::Result<i64> {
        Ok(match self {
            ReadDb::Sqlite(p) => sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM outbox").fetch_one(p).await?,
            ReadDb::Postgres(p) => {
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0)::int8 FROM outbox").fetch_one(p).await?
            }
        })
    }

    /// `close` notices (one `chat.update` intent per member) queued after `after`.
    pub async fn closes_after(&self, after: i64) -> anyhow::Result<i64> {
        Ok(match self {
            ReadDb::Sqlite(p) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM outbox WHERE id > ? AND json_extract(payload, '$.notice') = 'close'",
                )
                .bind(after)
                .fetch_one(p)
                .await?
            }
            ReadDb::Postgres(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE id > $1 AND payload->>'notice' = 'close'")
                    .bind(after)
                    .fetch_one(p)
                    .await?
            }
        })
    }

    pub async fn close(self) {
        match self {
            ReadDb::Sqlite(p) => p.close().await,
            ReadDb::Postgres(p) => p.close().await,
        }
    }
}
