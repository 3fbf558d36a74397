//! Persistence: the core's [`Store`] port implemented for SQLite and
//! PostgreSQL. Each write is its own transaction, or shares one with the
//! writes that queued beside it (`batch`: group commit); who people are is
//! cached in front of the identities table (`cache`). The backend is chosen
//! from the `DATABASE_URL` scheme.

mod batch;
mod cache;
pub mod filter;
mod plan;
mod postgres;
mod postgres_inserts;
mod sqlite;
mod sqlite_memory;
mod sqlite_writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::workflow::ports::{
    ClaimedJob, Identity, JobOutcome, MessageRef, OutboxCounts, OutboxItem, Store, StoreError, Usergroup,
};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A row's JSON text (SQLite's `TEXT` bodies, PostgreSQL's `JSON` request bodies).
fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// How a saved identity merges into its row, the same in both dialects (and in
/// `cache::merged`): what is known stays known, the newest email, name and DM
/// channel win, the first Okta id stays.
const IDENTITY_MERGE: &str = "ON CONFLICT (user_id) DO UPDATE SET
   resolved = identities.resolved OR excluded.resolved,
   okta_id = COALESCE(identities.okta_id, excluded.okta_id),
   email = COALESCE(excluded.email, identities.email),
   name = COALESCE(excluded.name, identities.name),
   dm_channel = COALESCE(excluded.dm_channel, identities.dm_channel),
   updated = excluded.updated";

/// Expired replay keys deleted per use: more than one, so the table shrinks back after a burst.
const PRUNE_REPLAYS: i64 = 16;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        // PostgreSQL's deadlock_detected and serialization_failure.
        match e.as_database_error().and_then(|d| d.code()).as_deref() {
            Some("40P01" | "40001") => StoreError::Busy(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Database(format!("migration: {e}"))
    }
}

/// SQL statements a store ran (on PostgreSQL each a network round trip; on
/// SQLite's readers a hop to sqlx's connection thread), `BEGIN` and `COMMIT`
/// included: counted by [`Counted`], the executor every sqlx query of the
/// stores goes through, and by the SQLite writer for its own statements.
#[derive(Debug, Default)]
pub struct Statements(AtomicU64);

impl Statements {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one statement; `RUST_LOG=accessbot::sql=trace` shows each.
    pub fn ran(&self, sql: &str) {
        self.add(1);
        tracing::trace!(target: "accessbot::sql", "{}", sql.split_whitespace().collect::<Vec<_>>().join(" "));
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An executor (a pool, a connection) that counts the statements run through it.
#[derive(Debug)]
pub(crate) struct Counted<'s, E> {
    inner: E,
    statements: &'s Statements,
}

impl<'s, E> Counted<'s, E> {
    pub fn new(inner: E, statements: &'s Statements) -> Self {
        Counted { inner, statements }
    }
}

impl<'c, E: sqlx::Executor<'c>> sqlx::Executor<'c> for Counted<'_, E> {
    type Database = E::Database;

    fn fetch_many<'e, 'q: 'e, Q>(
        self,
        query: Q,
    ) -> futures_util::stream::BoxStream<
        'e,
        Result<
            sqlx::Either<<E::Database as sqlx::Database>::QueryResult, <E::Database as sqlx::Database>::Row>,
            sqlx::Error,
        >,
    >
    where
        'c: 'e,
        Q: 'q + sqlx::Execute<'q, E::Database>,
    {
        self.statements.ran(query.sql());
        self.inner.fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, Q>(
        self,
        query: Q,
    ) -> futures_util::future::BoxFuture<'e, Result<Option<<E::Database as sqlx::Database>::Row>, sqlx::Error>>
    where
        'c: 'e,
        Q: 'q + sqlx::Execute<'q, E::Database>,
    {
        self.statements.ran(query.sql());
        self.inner.fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [<E::Database as sqlx::Database>::TypeInfo],
    ) -> futures_util::future::BoxFuture<'e, Result<<E::Database as sqlx::Database>::Statement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.inner.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> futures_util::future::BoxFuture<'e, Result<sqlx::Describe<E::Database>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.inner.describe(sql)
    }
}

/// A connection inside a transaction, with the store's statement counter.
pub(crate) struct Db<'a, C> {
    conn: &'a mut C,
    statements: &'a Statements,
}

impl<'a, C> Db<'a, C> {
    pub fn new(conn: &'a mut C, statements: &'a Statements) -> Self {
        Db { conn, statements }
    }

    /// The executor for the next statement.
    pub fn ex(&mut self) -> Counted<'_, &mut C> {
        Counted::new(&mut *self.conn, self.statements)
    }
}

/// Opens (creating and migrating) the store named by a database URL.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::Unsupported(format!(
            "unsupported DATABASE_URL scheme in `{}`: use sqlite://FILE or postgres://USER@HOST/DB",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
