//! Persistence: the core's [`Store`] port implemented for SQLite and
//! PostgreSQL, each method its own transaction. The backend is chosen from the
//! `DATABASE_URL` scheme.

pub mod filter;
mod plan;
mod postgres;
mod sqlite;

use std::sync::Arc;

pub use crate::workflow::ports::{
    ClaimedJob, Identity, JobOutcome, MessageRef, OutboxCounts, OutboxItem, Store, StoreError, Usergroup,
};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Expired replay keys deleted per use: more than one, so the table shrinks back after a burst.
const PRUNE_REPLAYS: i64 = 16;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Database(format!("migration: {e}"))
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
