//! SQLite backend: WAL, one writer at a time, timestamps as epoch milliseconds.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::batch::{Batcher, Write};
use super::cache::Caches;
use super::filter::{to_sql, LogQuery, QuerySql, RequestQuery, Value};
use super::plan::{insert_error, one_row, parse_source, AssignmentWrite, Plan, RequestWrite};
use super::*;
use crate::workflow::model::{
    Assignment, Changeset, Delegation, DelegationChange, LogEvent, Request, Status, Timestamp,
};
use sqlx::SqliteConnection;

pub struct SqliteStore {
    /// Reads: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// Every write, on one connection. SQLite admits one writer at a time anyway;
    /// queueing for this connection is fair and cheap, where several writing
    /// connections busy-wait on SQLite's lock (sleeping up to 100 ms a turn) and
    /// throw away each other's page caches.
    writer: SqlitePool,
    /// Group commit of the hot writes, on the writer connection.
    batcher: Batcher,
    statements: Arc<Statements>,
    caches: Caches,
    checkpoints: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(task) = &self.checkpoints {
            task.abort();
        }
    }
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoints the WAL in the background. PASSIVE never blocks the writer or
/// readers (it copies what no reader still needs; the rest waits for the next
/// turn); a WAL that keeps growing past that is truncated as soon as it can be.
async fn checkpoint_loop(conn: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&conn).await {
            // (busy, frames in the WAL, frames checkpointed): all copied and large, start the file over.
            Ok((0, log, done)) if log > 10_000 && done == log => {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&conn).await {
                    tracing::debug!(error = %e, "sqlite: truncating the WAL");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sqlite: checkpoint failed; retrying"),
        }
    }
}

fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Timestamp {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

fn decode_request(row: &SqliteRow) -> Result<Request, StoreError> {
    let body: String = row.try_get("body")?;
    let mut req: Request = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    req.version = row.try_get("version")?;
    Ok(req)
}

fn decode_event(row: &SqliteRow) -> Result<LogEvent, StoreError> {
    let body: String = row.try_get("body")?;
    let mut ev: LogEvent = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    ev.request_id = row.try_get("request_id")?;
    Ok(ev)
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // 64 MiB of pages per connection (SQLite's default is 2 MiB): the
            // indexes a write touches stay in memory instead of being read again.
            .pragma("cache_size", "-65536");
        // The writer never checkpoints (a checkpoint's fsync would stall every write
        // behind it); a task does, on a connection of its own.
        // In-process connections cannot hang up: no ping (a round trip to the
        // connection's thread) before every statement.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(opts.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // One process owns a SQLite file: claims left by a crashed run are free at once.
        sqlx::query("UPDATE outbox SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL")
            .execute(&writer)
            .await?;
        // An in-memory database exists once per connection: there, the writer reads too.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let (pool, checkpoints) = if in_memory {
            (writer.clone(), None)
        } else {
            let checkpointer = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
            let readers = SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(opts.read_only(true))
                .await?;
            (readers, Some(tokio::spawn(checkpoint_loop(checkpointer))))
        };
        let statements = Arc::new(Statements::default());
        let batcher = Batcher::start(writer.clone(), apply, statements.clone(), 1);
        Ok(SqliteStore { pool, writer, batcher, statements, caches: Caches::default(), checkpoints })
    }

    fn rd(&self) -> Counted<'_, &SqlitePool> {
        Counted::new(&self.pool, &self.statements)
    }

    fn wr(&self) -> Counted<'_, &SqlitePool> {
        Counted::new(&self.writer, &self.statements)
    }

    async fn query_requests(&self, sql: &str, binds: Vec<String>, limit: i64) -> Result<Vec<Request>, StoreError> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.bind(limit).fetch_all(self.rd()).await?;
        rows.iter().map(decode_request).collect()
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.rd()).await?;
        Ok(())
    }

    fn statements(&self) -> u64 {
        self.statements.get()
    }

    async fn commit(&self, cs: &Changeset) -> Result<(), StoreError> {
        self.batcher.write(Write::Commit(Box::new(cs.clone()))).await
    }

    async fn request(&self, id: &str) -> Result<Option<Request>, StoreError> {
        let row =
            sqlx::query("SELECT body, version FROM requests WHERE id = ?").bind(id).fetch_optional(self.rd()).await?;
        row.as_ref().map(decode_request).transpose()
    }

    async fn open_request(&self, user_id: &str, app_id: &str) -> Result<Option<Request>, StoreError> {
        let row = sqlx::query(
            "SELECT body, version FROM requests WHERE requested_for = ? AND app_id = ? AND status IN ('SUBMITTED', 'PENDING')",
        )
        .bind(user_id)
        .bind(app_id)
        .fetch_optional(self.rd())
        .await?;
        row.as_ref().map(decode_request).transpose()
    }

    async fn requests_for_user(&self, user_id: &str, limit: i64) -> Result<Vec<Request>, StoreError> {
        self.query_requests(
            "SELECT body, version FROM requests WHERE requested_for = ?1 OR requested_by = ?1 ORDER BY created DESC, id DESC LIMIT ?2",
            vec![user_id.to_string()],
            limit,
        )
        .await
    }

    async fn pending_for_approver(&self, people: &[String], limit: i64) -> Result<Vec<Request>, StoreError> {
        if people.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT r.body, r.version FROM requests r WHERE r.id IN
               (SELECT request_id FROM current_approvers WHERE person IN ({}))
             AND r.status IN ('SUBMITTED', 'PENDING') ORDER BY r.created, r.id LIMIT ?",
            placeholders(people.len())
        );
        self.query_requests(&sql, people.to_vec(), limit).await
    }

    async fn pending_requests(&self, apps: Option<&[String]>, limit: i64) -> Result<Vec<Request>, StoreError> {
        match apps {
            None => {
                self.query_requests(
                    "SELECT body, version FROM requests WHERE status IN ('SUBMITTED', 'PENDING') ORDER BY created, id LIMIT ?",
                    vec![],
                    limit,
                )
                .await
            }
            Some([]) => Ok(Vec::new()),
            Some(apps) => {
                let sql = format!(
                    "SELECT body, version FROM requests WHERE status IN ('SUBMITTED', 'PENDING') AND app_id IN ({})
                     ORDER BY created, id LIMIT ?",
                    placeholders(apps.len())
                );
                self.query_requests(&sql, apps.to_vec(), limit).await
            }
        }
    }

    async fn list_requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        let mut params = Vec::new();
        let (where_sql, order) = q.sql(&mut params, &|_| "?".to_string());
        let sql =
            format!("SELECT body, version FROM requests WHERE {where_sql} ORDER BY {order} LIMIT {}", q.limit.max(0));
        let rows = bind_values(sqlx::query(&sql), &params).fetch_all(self.rd()).await?;
        rows.iter().map(decode_request).collect()
    }

    async fn list_events(&self, q: &LogQuery) -> Result<Vec<(i64, LogEvent)>, StoreError> {
        let mut params = Vec::new();
        let mut clauses = Vec::new();
        if let Some(f) = &q.filter {
            clauses.push(to_sql(f, &mut params, &|_| "?".to_string()));
        }
        if let Some(t) = q.since {
            params.push(Value::Time(t));
            clauses.push("published >= ?".to_string());
        }
        if let Some(t) = q.until {
            params.push(Value::Time(t));
            clauses.push("published < ?".to_string());
        }
        let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some(after) = q.after {
            clauses.push(format!("seq {cmp} {after}"));
        }
        let where_sql = if clauses.is_empty() { "TRUE".to_string() } else { clauses.join(" AND ") };
        let sql = format!(
            "SELECT seq, body, request_id FROM system_log WHERE {where_sql} ORDER BY seq {dir} LIMIT {}",
            q.limit.max(0)
        );
        let rows = bind_values(sqlx::query(&sql), &params).fetch_all(self.rd()).await?;
        rows.iter().map(|r| Ok((r.try_get("seq")?, decode_event(r)?))).collect()
    }

    async fn assignment(&self, user_id: &str, app_id: &str) -> Result<Option<Assignment>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, app_id, request_id, source, granted, expires, warned_day, warned_hour FROM assignments WHERE user_id = ? AND app_id = ?",
        )
            .bind(user_id)
            .bind(app_id)
            .fetch_optional(self.rd())
            .await?;
        row.as_ref().map(decode_assignment).transpose()
    }

    async fn due_assignments(&self, now: Timestamp, limit: i64) -> Result<Vec<Assignment>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, app_id, request_id, source, granted, expires, warned_day, warned_hour FROM assignments
             WHERE due IS NOT NULL AND due <= ? ORDER BY due LIMIT ?",
        )
        .bind(ms(now))
        .bind(limit)
        .fetch_all(self.rd())
        .await?;
        rows.iter().map(decode_assignment).collect()
    }

    async fn due_requests(&self, now: Timestamp, limit: i64) -> Result<Vec<Request>, StoreError> {
        let rows =
            sqlx::query("SELECT body, version FROM requests WHERE due IS NOT NULL AND due <= ? ORDER BY due LIMIT ?")
                .bind(ms(now))
                .bind(limit)
                .fetch_all(self.rd())
                .await?;
        rows.iter().map(decode_request).collect()
    }

    async fn set_due(&self, id: &str, version: i64, due: Option<Timestamp>) -> Result<(), StoreError> {
        sqlx::query("UPDATE requests SET due = ? WHERE id = ? AND version = ?")
            .bind(due.map(ms))
            .bind(id)
            .bind(version)
            .execute(self.wr())
            .await?;
        Ok(())
    }

    async fn reschedule_open(&self, at: Timestamp) -> Result<u64, StoreError> {
        let res =
            sqlx::query("UPDATE requests SET due = ? WHERE status = 'PENDING'").bind(ms(at)).execute(self.wr()).await?;
        Ok(res.rows_affected())
    }

    async fn append_events(&self, events: &[LogEvent]) -> Result<(), StoreError> {
        self.batcher.write(Write::Events(events.to_vec())).await
    }

    async fn request_events(&self, request_id: &str) -> Result<Vec<LogEvent>, StoreError> {
        let rows = sqlx::query("SELECT body, request_id FROM system_log WHERE request_id = ? ORDER BY seq")
            .bind(request_id)
            .fetch_all(self.rd())
            .await?;
        rows.iter().map(decode_event).collect()
    }

    async fn events_of_type(&self, event_type: &str, limit: i64) -> Result<Vec<LogEvent>, StoreError> {
        let rows = sqlx::query("SELECT body, request_id FROM system_log WHERE event_type = ? ORDER BY seq LIMIT ?")
            .bind(event_type)
            .bind(limit)
            .fetch_all(self.rd())
            .await?;
        rows.iter().map(decode_event).collect()
    }

    async fn enqueue(&self, items: &[OutboxItem], now: Timestamp) -> Result<(), StoreError> {
        self.batcher.write(Write::Enqueue { items: items.to_vec(), now }).await
    }

    async fn claim_jobs(&self, now: Timestamp, lease: Duration, limit: i64) -> Result<Vec<ClaimedJob>, StoreError> {
        // Walks the pending rows in id order and stops at the first claimable ones
        // (without statistics SQLite would read and sort every pending row).
        let now_ms = ms(now);
        let until = now_ms + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let rows = sqlx::query(
            "UPDATE outbox SET lease_until = ?, attempts = attempts + 1
             WHERE id IN (
               SELECT o.id FROM outbox o INDEXED BY outbox_pending
               WHERE o.status = 'pending' AND o.next_attempt_at <= ?
                 AND (o.lease_until IS NULL OR o.lease_until < ?)
                 AND NOT EXISTS (SELECT 1 FROM outbox p
                                 WHERE p.ordering_key = o.ordering_key AND p.status = 'pending' AND p.id < o.id)
               ORDER BY o.id LIMIT ?)
             RETURNING id, ordering_key, kind, payload, attempts, deadline, created",
        )
        .bind(until)
        .bind(now_ms)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(self.wr())
        .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let payload: String = row.try_get("payload")?;
            jobs.push(ClaimedJob {
                id: row.try_get("id")?,
                attempts: row.try_get("attempts")?,
                created: from_ms(row.try_get("created")?),
                item: OutboxItem {
                    ordering_key: row.try_get("ordering_key")?,
                    kind: row.try_get("kind")?,
                    payload: serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    deadline: row.try_get::<Option<i64>, _>("deadline")?.map(from_ms),
                },
            });
        }
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    async fn finish_job(&self, id: i64, outcome: JobOutcome, now: Timestamp) -> Result<(), StoreError> {
        self.batcher.write(Write::Finish { id, outcome, now }).await
    }

    async fn request_counts(&self) -> Result<Vec<(Status, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM requests GROUP BY status").fetch_all(self.rd()).await?;
        let mut out = Vec::new();
        for row in rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            let status = Status::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown request status {status}")))?;
            out.push((status, n));
        }
        Ok(out)
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status").fetch_all(self.rd()).await?;
        let mut c = OutboxCounts::default();
        for row in rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            match status.as_str() {
                "pending" => c.pending = n,
                "done" => c.done = n,
                _ => c.failed += n,
            }
        }
        Ok(c)
    }

    async fn record_message(&self, m: &MessageRef) -> Result<(), StoreError> {
        self.batcher.write(Write::Message(m.clone())).await
    }

    async fn messages(&self, request_id: &str, step: i64, recipient: &str) -> Result<Vec<MessageRef>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, step, recipient, channel, ts FROM slack_messages
             WHERE request_id = ? AND step = ? AND recipient = ? ORDER BY ts",
        )
        .bind(request_id)
        .bind(step)
        .bind(recipient)
        .fetch_all(self.rd())
        .await?;
        rows.iter().map(decode_message).collect()
    }

    async fn request_messages(&self, request_id: &str) -> Result<Vec<MessageRef>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, step, recipient, channel, ts FROM slack_messages WHERE request_id = ? ORDER BY ts",
        )
        .bind(request_id)
        .fetch_all(self.rd())
        .await?;
        rows.iter().map(decode_message).collect()
    }

    async fn mark_home_opened(&self, user_id: &str) -> Result<(), StoreError> {
        self.batcher.write(Write::HomeOpened(user_id.to_string())).await?;
        self.caches.home_was_opened(user_id);
        Ok(())
    }

    async fn home_opened(&self, user_id: &str) -> Result<bool, StoreError> {
        self.caches
            .home_opened(user_id, || async {
                let row = sqlx::query("SELECT home_opened FROM identities WHERE user_id = ?")
                    .bind(user_id)
                    .fetch_optional(self.rd())
                    .await?;
                Ok(match row {
                    Some(r) => r.try_get::<bool, _>("home_opened")?,
                    None => false,
                })
            })
            .await
    }

    async fn identity(&self, user_id: &str) -> Result<Option<Identity>, StoreError> {
        self.caches
            .identity(user_id, || async {
                let row = sqlx::query(&format!("SELECT {IDENTITY} FROM identities WHERE user_id = ?"))
                    .bind(user_id)
                    .fetch_optional(self.rd())
                    .await?;
                row.map(|r| decode_identity(&r)).transpose()
            })
            .await
    }

    async fn identity_by_email(&self, email: &str) -> Result<Option<Identity>, StoreError> {
        let row = sqlx::query(&format!("SELECT {IDENTITY} FROM identities WHERE email = ? LIMIT 1"))
            .bind(email.to_ascii_lowercase())
            .fetch_optional(self.rd())
            .await?;
        row.map(|r| decode_identity(&r)).transpose()
    }

    async fn identity_by_okta_id(&self, okta_id: &str) -> Result<Option<Identity>, StoreError> {
        let row = sqlx::query(&format!("SELECT {IDENTITY} FROM identities WHERE okta_id = ? LIMIT 1"))
            .bind(okta_id)
            .fetch_optional(self.rd())
            .await?;
        row.map(|r| decode_identity(&r)).transpose()
    }

    async fn identities_of(&self, user_ids: &[String]) -> Result<Vec<Identity>, StoreError> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {IDENTITY} FROM identities WHERE user_id IN ({})", placeholders(user_ids.len()));
        let mut q = sqlx::query(&sql);
        for id in user_ids {
            q = q.bind(id);
        }
        q.fetch_all(self.rd()).await?.iter().map(decode_identity).collect()
    }

    async fn identities_without_okta_id(&self, limit: i64) -> Result<Vec<Identity>, StoreError> {
        let sql = format!(
            "SELECT {IDENTITY} FROM identities WHERE okta_id IS NULL AND email IS NOT NULL ORDER BY user_id LIMIT ?"
        );
        sqlx::query(&sql).bind(limit).fetch_all(self.rd()).await?.iter().map(decode_identity).collect()
    }

    async fn save_identity(&self, i: &Identity) -> Result<(), StoreError> {
        self.caches.save_identity(&i.user_id, || self.batcher.write(Write::Identity(i.clone()))).await
    }

    async fn usergroups(&self) -> Result<Vec<Usergroup>, StoreError> {
        let rows = sqlx::query("SELECT id, members, version, updated FROM usergroups ORDER BY id")
            .fetch_all(self.rd())
            .await?;
        rows.iter().map(decode_usergroup).collect()
    }

    async fn save_usergroup(&self, g: &Usergroup, events: &[LogEvent]) -> Result<(), StoreError> {
        let members = json(&g.members)?;
        let mut tx = self.writer.begin().await?;
        let mut db = Db::new(&mut *tx, &self.statements);
        self.statements.add(1);
        let res = if g.version == 0 {
            sqlx::query(
                "INSERT INTO usergroups (id, members, version, updated) VALUES (?, ?, 1, ?) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&g.id)
            .bind(&members)
            .bind(ms(g.updated))
            .execute(db.ex())
            .await?
        } else {
            sqlx::query(
                "UPDATE usergroups SET members = ?, version = version + 1, updated = ? WHERE id = ? AND version = ?",
            )
            .bind(&members)
            .bind(ms(g.updated))
            .bind(&g.id)
            .bind(g.version)
            .execute(db.ex())
            .await?
        };
        one_row(res.rows_affected())?;
        insert_events(&mut db, &events.iter().collect::<Vec<_>>()).await?;
        self.statements.add(1);
        tx.commit().await?;
        Ok(())
    }

    async fn delegations(&self, people: &[String], now: Timestamp) -> Result<Vec<Delegation>, StoreError> {
        if people.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT user_id, email, delegate, until, created FROM delegations WHERE until > ",
        );
        q.push_bind(ms(now)).push(" AND (user_id IN (");
        let mut ids = q.separated(", ");
        for p in people {
            ids.push_bind(p);
        }
        q.push(") OR email IN (");
        let mut emails = q.separated(", ");
        for p in people {
            emails.push_bind(p.to_ascii_lowercase());
        }
        q.push("))");
        let rows = q.build().fetch_all(self.rd()).await?;
        rows.iter().map(decode_delegation).collect()
    }

    async fn first_use(&self, key: &str, expires: Timestamp, now: Timestamp) -> Result<bool, StoreError> {
        sqlx::query(
            "DELETE FROM request_replays WHERE key IN
               (SELECT key FROM request_replays WHERE expires <= ? ORDER BY expires LIMIT ?)",
        )
        .bind(ms(now))
        .bind(PRUNE_REPLAYS)
        .execute(self.wr())
        .await?;
        // An expired row left by the bounded prune is taken over, not counted as a use.
        let res = sqlx::query(
            "INSERT INTO request_replays (key, expires) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE request_replays.expires <= ?",
        )
        .bind(key)
        .bind(ms(expires))
        .bind(ms(now))
        .execute(self.wr())
        .await?;
        Ok(res.rows_affected() == 1)
    }
}

fn decode_delegation(row: &SqliteRow) -> Result<Delegation, StoreError> {
    Ok(Delegation {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        delegate: row.try_get("delegate")?,
        until: from_ms(row.try_get("until")?),
        created: from_ms(row.try_get("created")?),
    })
}

fn decode_assignment(row: &SqliteRow) -> Result<Assignment, StoreError> {
    let source: String = row.try_get("source")?;
    Ok(Assignment {
        user_id: row.try_get("user_id")?,
        app_id: row.try_get("app_id")?,
        request_id: row.try_get("request_id")?,
        source: parse_source(&source),
        granted: from_ms(row.try_get("granted")?),
        expires: row.try_get::<Option<i64>, _>("expires")?.map(from_ms),
        warned_day: row.try_get("warned_day")?,
        warned_hour: row.try_get("warned_hour")?,
    })
}

fn decode_message(r: &SqliteRow) -> Result<MessageRef, StoreError> {
    Ok(MessageRef {
        request_id: r.try_get("request_id")?,
        step: r.try_get("step")?,
        recipient: r.try_get("recipient")?,
        channel: r.try_get("channel")?,
        ts: r.try_get("ts")?,
    })
}

fn decode_usergroup(r: &SqliteRow) -> Result<Usergroup, StoreError> {
    let members: String = r.try_get("members")?;
    Ok(Usergroup {
        id: r.try_get("id")?,
        members: serde_json::from_str(&members).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        version: r.try_get("version")?,
        updated: from_ms(r.try_get("updated")?),
    })
}

/// The columns [`decode_identity`] reads.
const IDENTITY: &str = "user_id, email, name, dm_channel, resolved, okta_id";

fn decode_identity(r: &SqliteRow) -> Result<Identity, StoreError> {
    Ok(Identity {
        user_id: r.try_get("user_id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        dm_channel: r.try_get("dm_channel")?,
        resolved: r.try_get("resolved")?,
        okta_id: r.try_get("okta_id")?,
    })
}

async fn write_request(db: &mut Db<'_, SqliteConnection>, w: &RequestWrite<'_>) -> Result<(), StoreError> {
    let req = w.req;
    let body = json(req)?;
    if w.insert {
        sqlx::query(
            "INSERT INTO requests (id, app_id, requested_by, requested_for, status, grant_status, created, last_updated, version, body, due)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
        )
        .bind(&req.id)
        .bind(&req.app_id)
        .bind(&req.requested_by.id)
        .bind(&req.requested_for.id)
        .bind(req.status.as_str())
        .bind(w.grant)
        .bind(ms(req.created))
        .bind(ms(req.last_updated))
        .bind(&body)
        .bind(w.due.map(ms))
        .execute(db.ex())
        .await
        .map_err(insert_error)?;
    } else {
        let res = sqlx::query(
            "UPDATE requests SET status = ?, grant_status = ?, last_updated = ?, version = version + 1, body = ?, due = ?
             WHERE id = ? AND version = ?",
        )
        .bind(req.status.as_str())
        .bind(w.grant)
        .bind(ms(req.last_updated))
        .bind(&body)
        .bind(w.due.map(ms))
        .bind(&req.id)
        .bind(req.version)
        .execute(db.ex())
        .await?;
        one_row(res.rows_affected())?;
        sqlx::query("DELETE FROM current_approvers WHERE request_id = ?").bind(&req.id).execute(db.ex()).await?;
    }
    for chunk in w.approvers.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT OR IGNORE INTO current_approvers (person, request_id) ");
        q.push_values(chunk, |mut b, p| {
            b.push_bind(*p).push_bind(&req.id);
        });
        q.build().execute(db.ex()).await?;
    }
    Ok(())
}

async fn write_delegation(db: &mut Db<'_, SqliteConnection>, change: &DelegationChange) -> Result<(), StoreError> {
    match change {
        DelegationChange::Set(d) => {
            sqlx::query(
                "INSERT OR REPLACE INTO delegations (user_id, email, delegate, until, created) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&d.user_id)
            .bind(&d.email)
            .bind(&d.delegate)
            .bind(ms(d.until))
            .bind(ms(d.created))
            .execute(db.ex())
            .await?;
        }
        DelegationChange::Remove { user_id } => {
            sqlx::query("DELETE FROM delegations WHERE user_id = ?").bind(user_id).execute(db.ex()).await?;
        }
    }
    Ok(())
}

async fn write_assignment(db: &mut Db<'_, SqliteConnection>, w: &AssignmentWrite<'_>) -> Result<(), StoreError> {
    match *w {
        AssignmentWrite::Upsert { assignment: a, source } => {
            sqlx::query(
                "INSERT OR REPLACE INTO assignments (user_id, app_id, request_id, source, granted, expires, due) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&a.user_id)
            .bind(&a.app_id)
            .bind(&a.request_id)
            .bind(source)
            .bind(ms(a.granted))
            .bind(a.expires.map(ms))
            .bind(a.due().map(ms))
            .execute(db.ex())
            .await?;
        }
        AssignmentWrite::Delete { user_id, app_id } => {
            let res = sqlx::query("DELETE FROM assignments WHERE user_id = ? AND app_id = ?")
                .bind(user_id)
                .bind(app_id)
                .execute(db.ex())
                .await?;
            one_row(res.rows_affected())?;
        }
        AssignmentWrite::Warn { user_id, app_id, column, due } => {
            let sql = format!(
                "UPDATE assignments SET {column} = 1, due = ? WHERE user_id = ? AND app_id = ? AND {column} = 0"
            );
            let res = sqlx::query(&sql).bind(due.map(ms)).bind(user_id).bind(app_id).execute(db.ex()).await?;
            one_row(res.rows_affected())?;
        }
    }
    Ok(())
}

/// Appends events (in order) and their targets: two statements for any number.
async fn insert_events(db: &mut Db<'_, SqliteConnection>, events: &[&LogEvent]) -> Result<(), StoreError> {
    // Rows per statement such that the bound values stay under SQLite's 32,766.
    for chunk in events.chunks(ROWS_PER_INSERT / 2) {
        let bodies = chunk.iter().map(json).collect::<Result<Vec<_>, _>>()?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO system_log (uuid, published, event_type, request_id, actor_id, body) ",
        );
        q.push_values(chunk.iter().zip(bodies), |mut b, (ev, body)| {
            b.push_bind(&ev.uuid)
                .push_bind(ms(ev.published))
                .push_bind(&ev.event_type)
                .push_bind(&ev.request_id)
                .push_bind(&ev.actor.id)
                .push_bind(body);
        });
        q.build().execute(db.ex()).await?;
    }
    let targets: Vec<_> = events.iter().flat_map(|ev| ev.target.iter().map(move |t| (&ev.uuid, t))).collect();
    for chunk in targets.chunks(ROWS_PER_INSERT / 2) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO system_log_targets (seq, target_id, target_type, alternate_id, display_name) ",
        );
        q.push_values(chunk, |mut b, (uuid, t)| {
            b.push("(SELECT seq FROM system_log WHERE uuid = ")
                .push_bind_unseparated(*uuid)
                .push_unseparated(")")
                .push_bind(&t.id)
                .push_bind(&t.kind)
                .push_bind(&t.alternate_id)
                .push_bind(&t.display_name);
        });
        q.build().execute(db.ex()).await?;
    }
    Ok(())
}

fn bind_values<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    params: &'q [Value],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for p in params {
        q = match p {
            Value::Text(t) => q.bind(t.as_str()),
            Value::Time(t) => q.bind(ms(*t)),
        };
    }
    q
}

/// Rows per multi-row INSERT: every statement is a round trip to the
/// connection's thread, and SQLite allows 32,766 bound values per statement.
const ROWS_PER_INSERT: usize = 500;

/// Queues outbox rows, each due at its time; one multi-row INSERT assigns ids in the slice's order.
async fn insert_jobs(db: &mut Db<'_, SqliteConnection>, items: &[(&OutboxItem, Timestamp)]) -> Result<(), StoreError> {
    for chunk in items.chunks(ROWS_PER_INSERT) {
        let payloads = chunk.iter().map(|(i, _)| json(&i.payload)).collect::<Result<Vec<_>, _>>()?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (ordering_key, kind, payload, next_attempt_at, deadline, created) ",
        );
        q.push_values(chunk.iter().zip(payloads), |mut b, ((item, now), payload)| {
            b.push_bind(&item.ordering_key)
                .push_bind(&item.kind)
                .push_bind(payload)
                .push_bind(ms(*now))
                .push_bind(item.deadline.map(ms))
                .push_bind(ms(*now));
        });
        q.build().execute(db.ex()).await?;
    }
    Ok(())
}

/// What a batch writes last, merged: rows of many writes in one statement each.
#[derive(Default)]
struct Merged<'a> {
    events: Vec<&'a LogEvent>,
    jobs: Vec<(&'a OutboxItem, Timestamp)>,
    /// Delivered outbox rows, and the latest time among them.
    done: Vec<i64>,
    done_at: Option<Timestamp>,
    messages: Vec<&'a MessageRef>,
}

/// The batcher's [`super::batch::Apply`]: every write in order, merged
/// writes last. Events, outbox rows, delivered rows and message records of
/// the whole batch cost a statement each.
fn apply<'c>(
    conn: &'c mut SqliteConnection,
    writes: &'c [Write],
    statements: &'c Statements,
) -> futures_util::future::BoxFuture<'c, Result<(), StoreError>> {
    Box::pin(async move {
        let mut db = Db::new(conn, statements);
        let mut m = Merged::default();
        let plans = writes
            .iter()
            .filter_map(|w| match w {
                Write::Commit(cs) => Some(Plan::of(cs)),
                _ => None,
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut plans = plans.iter();
        for w in writes {
            match w {
                Write::Commit(_) => {
                    let Some(plan) = plans.next() else { continue };
                    write_plan(&mut db, plan).await?;
                    m.events.extend(plan.events.iter());
                    m.jobs.extend(plan.jobs.iter().map(|j| (j, plan.now)));
                }
                Write::Enqueue { items, now } => m.jobs.extend(items.iter().map(|j| (j, *now))),
                Write::Events(events) => m.events.extend(events.iter()),
                Write::Finish { id, outcome: JobOutcome::Done, now } => {
                    m.done.push(*id);
                    m.done_at = m.done_at.max(Some(*now));
                }
                Write::Finish { id, outcome, now } => finish(&mut db, *id, outcome, *now).await?,
                Write::Message(msg) => m.messages.push(msg),
                Write::Identity(i) => save_identity(&mut db, i).await?,
                Write::HomeOpened(user) => mark_home_opened(&mut db, user).await?,
            }
        }
        insert_events(&mut db, &m.events).await?;
        insert_jobs(&mut db, &m.jobs).await?;
        finish_done(&mut db, &m.done, m.done_at.unwrap_or_else(Utc::now)).await?;
        insert_messages(&mut db, &m.messages).await
    })
}

/// A changeset's request, assignment and delegation rows (its events and jobs are merged).
async fn write_plan(db: &mut Db<'_, SqliteConnection>, plan: &Plan<'_>) -> Result<(), StoreError> {
    if let Some(w) = &plan.request {
        write_request(db, w).await?;
    }
    if let Some(w) = &plan.assignment {
        write_assignment(db, w).await?;
    }
    if let Some(d) = plan.delegation {
        write_delegation(db, d).await?;
    }
    Ok(())
}

async fn finish(
    db: &mut Db<'_, SqliteConnection>,
    id: i64,
    outcome: &JobOutcome,
    now: Timestamp,
) -> Result<(), StoreError> {
    let q = match outcome {
        JobOutcome::Done => {
            return finish_done(db, &[id], now).await;
        }
        JobOutcome::Retry { at, error } => {
            sqlx::query("UPDATE outbox SET lease_until = NULL, next_attempt_at = ?, last_error = ? WHERE id = ?")
                .bind(ms(*at))
                .bind(error)
                .bind(id)
        }
        JobOutcome::Failed { error } => sqlx::query(
            "UPDATE outbox SET status = 'failed', lease_until = NULL, last_error = ?, finished = ? WHERE id = ?",
        )
        .bind(error)
        .bind(ms(now))
        .bind(id),
    };
    q.execute(db.ex()).await?;
    Ok(())
}

async fn finish_done(db: &mut Db<'_, SqliteConnection>, ids: &[i64], now: Timestamp) -> Result<(), StoreError> {
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "UPDATE outbox SET status = 'done', lease_until = NULL, finished = ? WHERE id IN ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(ms(now));
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(db.ex()).await?;
    }
    Ok(())
}

async fn insert_messages(db: &mut Db<'_, SqliteConnection>, messages: &[&MessageRef]) -> Result<(), StoreError> {
    for chunk in messages.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO slack_messages (request_id, step, recipient, channel, ts) ",
        );
        q.push_values(chunk, |mut b, m| {
            b.push_bind(&m.request_id).push_bind(m.step).push_bind(&m.recipient).push_bind(&m.channel).push_bind(&m.ts);
        });
        q.build().execute(db.ex()).await?;
    }
    Ok(())
}

async fn mark_home_opened(db: &mut Db<'_, SqliteConnection>, user_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO identities (user_id, home_opened, updated) VALUES (?, 1, ?)
         ON CONFLICT (user_id) DO UPDATE SET home_opened = 1",
    )
    .bind(user_id)
    .bind(ms(Utc::now()))
    .execute(db.ex())
    .await?;
    Ok(())
}

async fn save_identity(db: &mut Db<'_, SqliteConnection>, i: &Identity) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO identities (user_id, email, name, dm_channel, updated, resolved, okta_id)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (user_id) DO UPDATE SET
           resolved = identities.resolved OR excluded.resolved,
           okta_id = COALESCE(identities.okta_id, excluded.okta_id),
           email = COALESCE(excluded.email, identities.email),
           name = COALESCE(excluded.name, identities.name),
           dm_channel = COALESCE(excluded.dm_channel, identities.dm_channel),
           updated = excluded.updated",
    )
    .bind(&i.user_id)
    .bind(i.email.as_ref().map(|e| e.to_ascii_lowercase()))
    .bind(&i.name)
    .bind(&i.dm_channel)
    .bind(ms(Utc::now()))
    .bind(i.resolved)
    .bind(&i.okta_id)
    .execute(db.ex())
    .await?;
    Ok(())
}
