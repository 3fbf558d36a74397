//! Every SQLite write, on one connection owned by one thread (rusqlite, the
//! SQLite C library called in place). sqlx runs each SQLite connection on a
//! thread of its own and hands every statement across (two context switches
//! a statement, plus a ping each time a connection goes back to its pool); here
//! a whole batch of writes — group commit, as in [`super::batch`] — costs one
//! hand-off, and its statements are plain function calls.
//!
//! Writes that answer with data (claims, replay keys) run alone, between
//! batches, on the same connection: SQLite has one writer, and two writing
//! connections would busy-wait on its lock.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OpenFlags};
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::batch::{self, answer, lease_end, Each, Failed, Sorted, Write};
use super::plan::{one_row, AssignmentWrite, Plan, RequestWrite};
use super::sqlite_memory::Shared;
use super::{json, Statements};
use crate::workflow::model::{Delegation, DelegationChange, LogEvent, Request, Timestamp};
use crate::workflow::ports::{
    ClaimedJob, Handed, Handoff, Identity, JobOutcome, MessageRef, OutboxItem, StoreError, Usergroup,
};

/// Writes per transaction at most.
const MAX_BATCH: usize = 256;
/// Rows per multi-row statement at most (SQLite allows 32,766 bound values in one).
const ROWS: usize = 256;
/// Up to this many rows, a multi-row statement takes them all (see [`shaped`]).
const EXACT: usize = 8;
/// Prepared statements kept: every shape [`shaped`] makes of the multi-row
/// statements (13 sizes of 7) and the single-row ones.
const PREPARED: usize = 128;

type Task = Box<dyn FnOnce(&mut Connection, &Statements) + Send>;

enum Job {
    Write(Write, oneshot::Sender<Result<(), StoreError>>),
    Run(Task),
}

#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Job>,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn stopped() -> StoreError {
    StoreError::Database("the SQLite writer stopped".into())
}

pub(super) fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

impl Writer {
    /// Opens the (migrated) database file and starts the writer thread; it
    /// stops when the last handle is dropped.
    pub fn open(
        path: &Path,
        statements: std::sync::Arc<Statements>,
        shared: std::sync::Arc<Shared>,
    ) -> Result<Writer, StoreError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        // The writer checkpoints only when the background ones fall behind
        // (`Writer::checkpoint`): its fsyncs stall every write behind it. A WAL
        // that starts over is cut back to 512 MiB, above the 256 MiB at which
        // that happens: cutting a ~300 MB file in the writer's commit stalled it
        // (p99 at 300 req/s 53-73 ms), and the file then grew again on blocks
        // the kernel must zero. Statement journals (a multi-row statement's
        // undo, past 64 KiB) stay in memory: written to a temporary file they
        // cost 8 % of the server's CPU in the ack bench's profile.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0;
             PRAGMA journal_size_limit = 536870912; PRAGMA temp_store = MEMORY;",
        )
        .map_err(db)?;
        conn.set_prepared_statement_cache_capacity(PREPARED);
        let (queue, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, &statements, &shared))
            .map_err(|e| StoreError::Database(format!("starting the SQLite writer: {e}")))?;
        Ok(Writer { queue })
    }

    /// Queues `w` and waits until its transaction committed.
    pub async fn write(&self, w: Write) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.queue.send(Job::Write(w, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues `w` without waiting for its commit. Writes keep their order, so
    /// one queued after it commits in the same transaction or a later one; a
    /// failure is logged.
    pub fn write_behind(&self, w: Write) -> Result<(), StoreError> {
        let (tx, _) = oneshot::channel();
        self.queue.send(Job::Write(w, tx)).map_err(|_| stopped())
    }

    /// Checkpoints the WAL on the writer connection, between batches: nothing
    /// is appended meanwhile, so everything is copied (unless a reader still
    /// needs old frames) and the next write starts the WAL over. Two fsyncs.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.run(|conn, _| conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(db)).await
    }

    /// Runs `f` on the writer connection, alone.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Statements) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task: Task = Box::new(move |conn, n| drop(tx.send(f(conn, n))));
        self.queue.send(Job::Run(task)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Job>, n: &Statements, shared: &Shared) {
    shared.load(&conn, n);
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let (w, reply) = match job {
            Job::Run(task) => {
                task(&mut conn, n);
                continue;
            }
            Job::Write(w, reply) => (w, reply),
        };
        let mut lazy = w.unwaited();
        let mut batch = vec![(w, reply)];
        let until = Instant::now() + batch::COMPANY_WAIT;
        while batch.len() < MAX_BATCH {
            // Unwaited writes alone wait a moment for more; anyone else's goes now.
            let job = if lazy {
                rx.recv_timeout(until.saturating_duration_since(Instant::now())).ok()
            } else {
                rx.try_recv().ok()
            };
            match job {
                Some(Job::Write(w, reply)) => {
                    lazy &= w.unwaited();
                    batch.push((w, reply));
                }
                Some(run) => {
                    next = Some(run);
                    break;
                }
                None => break,
            }
        }
        let (writes, replies): (Vec<Write>, Vec<_>) = batch.into_iter().unzip();
        settle(&mut conn, n, &writes, replies, shared);
    }
}

/// Writes a batch and answers its callers; a batch that failed before its
/// commit is written again one write at a time (see [`super::batch`]).
fn settle(
    conn: &mut Connection,
    n: &Statements,
    writes: &[Write],
    replies: Vec<oneshot::Sender<Result<(), StoreError>>>,
    shared: &Shared,
) {
    match transaction(conn, n, writes, shared) {
        Ok(()) => replies.into_iter().for_each(|r| answer(r, Ok(()))),
        Err(Failed::Apply(e) | Failed::Commit(e)) if writes.len() == 1 => {
            if let Some(r) = replies.into_iter().next() {
                answer(r, Err(e));
            }
        }
        Err(Failed::Commit(e)) => {
            let text = e.to_string();
            replies.into_iter().for_each(|r| answer(r, Err(StoreError::Database(text.clone()))));
        }
        Err(Failed::Apply(_)) => {
            for (w, reply) in writes.iter().zip(replies) {
                let one = transaction(conn, n, std::slice::from_ref(w), shared);
                answer(reply, one.map_err(Failed::into_inner));
            }
        }
    }
}

/// Writes `writes` in one transaction; the rows it claimed for the outbox go
/// to it once committed (their room back when not), and what it changed to
/// the copies in memory (`sqlite_memory`).
fn transaction(conn: &mut Connection, n: &Statements, writes: &[Write], shared: &Shared) -> Result<(), Failed> {
    let mut handed = Vec::new();
    let to = shared.handoff.get();
    shared.writing(writes);
    let done = commit(conn, n, writes, Claims { to, handed: &mut handed });
    shared.written(
        writes,
        match &done {
            Ok(()) => Some(true),
            Err(Failed::Apply(_)) => Some(false),
            Err(Failed::Commit(_)) => None,
        },
    );
    batch::hand(to, handed, done.is_ok());
    done
}

fn commit(conn: &mut Connection, n: &Statements, writes: &[Write], claims: Claims<'_>) -> Result<(), Failed> {
    if let [w] = writes {
        if w.one_statement() {
            return apply(conn, n, writes, claims).map_err(Failed::Commit);
        }
    }
    let tx = conn.transaction().map_err(|e| Failed::Apply(db(e)))?;
    n.ran("BEGIN");
    apply(&tx, n, writes, claims).map_err(Failed::Apply)?;
    n.ran("COMMIT");
    tx.commit().map_err(|e| Failed::Commit(db(e)))
}

/// Where a transaction's claimed outbox rows go.
struct Claims<'a> {
    to: Option<&'a Handoff>,
    handed: &'a mut Vec<Handed>,
}

/// One statement, counted; the rows it changed.
pub(super) fn exec(conn: &Connection, n: &Statements, sql: &str, values: &[Value]) -> Result<usize, StoreError> {
    exec_raw(conn, n, sql, values).map_err(db)
}

fn exec_raw(conn: &Connection, n: &Statements, sql: &str, values: &[Value]) -> rusqlite::Result<usize> {
    n.ran(sql);
    conn.prepare_cached(sql)?.execute(params_from_iter(values.iter()))
}

pub(super) fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn opt_text(s: Option<&str>) -> Value {
    s.map(text).unwrap_or(Value::Null)
}

pub(super) fn time(t: Timestamp) -> Value {
    Value::Integer(ms(t))
}

fn opt_time(t: Option<Timestamp>) -> Value {
    t.map(time).unwrap_or(Value::Null)
}

/// Splits `rows` into chunks of few sizes — all of them up to [`EXACT`], else
/// the largest power of two that fits, up to [`ROWS`] — so that every
/// multi-row statement's text is one the prepared-statement cache keeps. With
/// a size for every batch, preparing took 4.5 % of the server's CPU at
/// saturation (`perf`, the paced ack bench, 2026-12-07).
fn shaped<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = if rows.len() <= EXACT { rows.len() } else { ROWS.min(1 << rows.len().ilog2()) };
        let (head, rest) = rows.split_at(n);
        rows = rest;
        Some(head)
    })
}

/// `INSERT … VALUES (…), (…)` for `rows` rows of `columns` placeholders.
fn values_sql(head: &str, rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    format!("{head} VALUES {}", vec![row; rows].join(", "))
}

/// The writes that go one by one in order, then events, outbox rows,
/// delivered rows and message records of the whole batch in a statement each.
fn apply(conn: &Connection, n: &Statements, writes: &[Write], claims: Claims<'_>) -> Result<(), StoreError> {
    let sorted = Sorted::of(writes)?;
    for each in &sorted.each {
        match each {
            Each::Plan(plan) => write_plan(conn, n, plan)?,
            Each::Finish { id, outcome, now } => finish(conn, n, *id, outcome, *now)?,
            Each::Identity(i) => save_identity(conn, n, i)?,
            Each::HomeOpened(user) => mark_home_opened(conn, n, user)?,
        }
    }
    insert_events(conn, n, &sorted.events)?;
    insert_jobs(conn, n, &sorted, claims)?;
    finish_done(conn, n, &sorted.done, sorted.done_at())?;
    insert_messages(conn, n, &sorted.messages)
}

fn write_plan(conn: &Connection, n: &Statements, plan: &Plan<'_>) -> Result<(), StoreError> {
    if let Some(w) = &plan.request {
        write_request(conn, n, w)?;
    }
    if let Some(w) = &plan.assignment {
        write_assignment(conn, n, w)?;
    }
    if let Some(d) = plan.delegation {
        write_delegation(conn, n, d)?;
    }
    Ok(())
}

fn write_request(conn: &Connection, n: &Statements, w: &RequestWrite<'_>) -> Result<(), StoreError> {
    let req = w.req;
    let body = json(req)?;
    if w.insert {
        exec_raw(
            conn,
            n,
            "INSERT INTO requests (id, app_id, requested_by, requested_for, status, grant_status, created, last_updated, version, body, due)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            &[
                text(&req.id),
                text(&req.app_id),
                text(&req.requested_by.id),
                text(&req.requested_for.id),
                text(req.status.as_str()),
                opt_text(w.grant),
                time(req.created),
                time(req.last_updated),
                Value::Text(body),
                opt_time(w.due),
            ],
        )
        .map_err(|e| match e.sqlite_error() {
            // The open-request unique index names a duplicate.
            Some(f) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => StoreError::DuplicateOpen,
            _ => db(e),
        })?;
    } else {
        let changed = exec(
            conn,
            n,
            "UPDATE requests SET status = ?, grant_status = ?, last_updated = ?, version = version + 1, body = ?, due = ?
             WHERE id = ? AND version = ?",
            &[
                text(req.status.as_str()),
                opt_text(w.grant),
                time(req.last_updated),
                Value::Text(body),
                opt_time(w.due),
                text(&req.id),
                Value::Integer(req.version),
            ],
        )?;
        one_row(changed as u64)?;
        exec(conn, n, "DELETE FROM current_approvers WHERE request_id = ?", &[text(&req.id)])?;
    }
    for chunk in shaped(&w.approvers) {
        let sql = values_sql("INSERT OR IGNORE INTO current_approvers (person, request_id)", chunk.len(), 2);
        let values: Vec<Value> = chunk.iter().flat_map(|p| [text(p), text(&req.id)]).collect();
        exec(conn, n, &sql, &values)?;
    }
    Ok(())
}

fn write_delegation(conn: &Connection, n: &Statements, change: &DelegationChange) -> Result<(), StoreError> {
    match change {
        DelegationChange::Set(d) => exec(
            conn,
            n,
            "INSERT OR REPLACE INTO delegations (user_id, email, delegate, until, created) VALUES (?, ?, ?, ?, ?)",
            &[text(&d.user_id), opt_text(d.email.as_deref()), text(&d.delegate), time(d.until), time(d.created)],
        )?,
        DelegationChange::Remove { user_id } => {
            exec(conn, n, "DELETE FROM delegations WHERE user_id = ?", &[text(user_id)])?
        }
    };
    Ok(())
}

fn write_assignment(conn: &Connection, n: &Statements, w: &AssignmentWrite<'_>) -> Result<(), StoreError> {
    match *w {
        AssignmentWrite::Upsert { assignment: a, source } => {
            exec(
                conn,
                n,
                "INSERT OR REPLACE INTO assignments (user_id, app_id, request_id, source, granted, expires, due) VALUES (?, ?, ?, ?, ?, ?, ?)",
                &[
                    text(&a.user_id),
                    text(&a.app_id),
                    opt_text(a.request_id.as_deref()),
                    text(source),
                    time(a.granted),
                    opt_time(a.expires),
                    opt_time(a.due()),
                ],
            )?;
        }
        AssignmentWrite::Delete { user_id, app_id } => {
            let changed = exec(
                conn,
                n,
                "DELETE FROM assignments WHERE user_id = ? AND app_id = ?",
                &[text(user_id), text(app_id)],
            )?;
            one_row(changed as u64)?;
        }
        AssignmentWrite::Warn { user_id, app_id, column, due } => {
            let sql = format!(
                "UPDATE assignments SET {column} = 1, due = ? WHERE user_id = ? AND app_id = ? AND {column} = 0"
            );
            let changed = exec(conn, n, &sql, &[opt_time(due), text(user_id), text(app_id)])?;
            one_row(changed as u64)?;
        }
    }
    Ok(())
}

/// Appends events (in order) and their targets: two statements for any number.
/// A multi-row insert numbers its rows in order (one writer), so each event's
/// `seq` follows from the last one, without looking its uuid up again.
pub(super) fn insert_events(conn: &Connection, n: &Statements, events: &[&LogEvent]) -> Result<(), StoreError> {
    let mut seqs = Vec::with_capacity(events.len());
    for chunk in shaped(events) {
        let sql = values_sql(
            "INSERT INTO system_log (uuid, published, event_type, request_id, actor_id, body)",
            chunk.len(),
            6,
        );
        let mut values = Vec::with_capacity(chunk.len() * 6);
        for ev in chunk {
            values.extend([
                text(&ev.uuid),
                time(ev.published),
                text(&ev.event_type),
                opt_text(ev.request_id.as_deref()),
                text(&ev.actor.id),
                Value::Text(json(ev)?),
            ]);
        }
        exec(conn, n, &sql, &values)?;
        let last = conn.last_insert_rowid();
        seqs.extend(last - chunk.len() as i64 + 1..=last);
    }
    let targets: Vec<_> =
        events.iter().zip(seqs).flat_map(|(ev, seq)| ev.target.iter().map(move |t| (seq, t))).collect();
    for chunk in shaped(&targets) {
        let sql = values_sql(
            "INSERT OR IGNORE INTO system_log_targets (seq, target_id, target_type, alternate_id, display_name)",
            chunk.len(),
            5,
        );
        let values: Vec<Value> = chunk
            .iter()
            .flat_map(|(seq, t)| {
                [
                    Value::Integer(*seq),
                    text(&t.id),
                    text(&t.kind),
                    opt_text(t.alternate_id.as_deref()),
                    opt_text(t.display_name.as_deref()),
                ]
            })
            .collect();
        exec(conn, n, &sql, &values)?;
    }
    Ok(())
}

/// Queues outbox rows, each due at its time; ids follow the slice's order.
/// With a hand-off, the rows it can take are written claimed (see [`Handoff`]).
fn insert_jobs(conn: &Connection, n: &Statements, sorted: &Sorted<'_>, claims: Claims<'_>) -> Result<(), StoreError> {
    let items = &sorted.jobs;
    if items.is_empty() {
        return Ok(());
    }
    let claim = match claims.to {
        Some(to) => to_claim(conn, n, sorted, to)?,
        None => vec![false; items.len()],
    };
    let before = claims.handed.len();
    let inserted = insert_claimed(conn, n, items, &claim, claims.to, claims.handed);
    if let (Err(_), Some(to)) = (&inserted, claims.to) {
        // The rows taken but not handed yet give their room back (the handed ones do when the transaction fails).
        let taken = claim.iter().filter(|&&c| c).count() - (claims.handed.len() - before);
        to.room.fetch_add(taken as i64, std::sync::atomic::Ordering::Relaxed);
    }
    inserted
}

fn insert_claimed(
    conn: &Connection,
    n: &Statements,
    items: &[batch::Job<'_>],
    claim: &[bool],
    to: Option<&Handoff>,
    handed: &mut Vec<Handed>,
) -> Result<(), StoreError> {
    for (chunk, claim) in shaped(items).zip(shaped(claim)) {
        let sql = values_sql(
            "INSERT INTO outbox (ordering_key, kind, payload, next_attempt_at, deadline, created, lease_until, attempts)",
            chunk.len(),
            8,
        );
        let mut values = Vec::with_capacity(chunk.len() * 8);
        for ((item, now), &claimed) in chunk.iter().zip(claim) {
            let until = to.filter(|_| claimed).map(|to| lease_end(*now, to.lease));
            values.extend([
                text(&item.ordering_key),
                text(&item.kind),
                Value::Text(json(&item.payload)?),
                time(*now),
                opt_time(item.deadline),
                time(*now),
                opt_time(until),
                Value::Integer(i64::from(claimed)),
            ]);
        }
        exec(conn, n, &sql, &values)?;
        let first = conn.last_insert_rowid() - chunk.len() as i64 + 1;
        if let Some(to) = to {
            let ids: Vec<i64> = (first..).zip(claim).filter(|(_, &c)| c).map(|(id, _)| id).collect();
            handed.extend(batch::handed(chunk.iter().cloned(), claim, &ids, to.lease));
        }
    }
    Ok(())
}

/// Which of these new rows the hand-off takes: the first of each ordering
/// key with no pending row before it, while its room lasts. The rest are
/// reported left. Keys under a request the batch creates are not asked about.
fn to_claim(conn: &Connection, n: &Statements, sorted: &Sorted<'_>, to: &Handoff) -> Result<Vec<bool>, StoreError> {
    let new = sorted.new_ids();
    let keys: std::collections::BTreeSet<&str> =
        sorted.jobs.iter().map(|(item, _)| item.ordering_key.as_str()).filter(|key| !batch::under(key, &new)).collect();
    let keys: Vec<&str> = keys.into_iter().collect();
    let mut busy = std::collections::HashSet::new();
    for chunk in shaped(&keys) {
        let sql = pending_keys_sql(chunk.len());
        let values: Vec<Value> = chunk.iter().map(|k| text(k)).collect();
        busy.extend(query(conn, n, &sql, &values, |r| r.get::<_, String>(0))?);
    }
    // A key's first new row waits behind its pending one; its second behind its first.
    Ok(batch::to_hand(&sorted.jobs, to, |key| match busy.insert(key.to_string()) {
        true => batch::Key::Free,
        false => batch::Key::Behind,
    }))
}

/// Which of `keys` ordering keys (bound one per `?`) have a pending row. EXISTS stops at a key's
/// first one, where `SELECT DISTINCT … IN (…)` read them all: 3.8 ms for
/// each commit behind a backlog of 75,000 rows on 2 keys (the paced ack bench).
pub(super) fn pending_keys_sql(keys: usize) -> String {
    format!(
        "WITH keys(k) AS (VALUES {}) SELECT k FROM keys WHERE EXISTS
           (SELECT 1 FROM outbox INDEXED BY outbox_pending_key WHERE status = 'pending' AND ordering_key = keys.k)",
        vec!["(?)"; keys].join(", ")
    )
}

fn finish(conn: &Connection, n: &Statements, id: i64, outcome: &JobOutcome, now: Timestamp) -> Result<(), StoreError> {
    match outcome {
        JobOutcome::Done => finish_done(conn, n, &[id], now),
        JobOutcome::Sent(m) => {
            insert_messages(conn, n, &[m])?;
            finish_done(conn, n, &[id], now)
        }
        JobOutcome::Retry { at, error } => exec(
            conn,
            n,
            "UPDATE outbox SET lease_until = NULL, next_attempt_at = ?, last_error = ? WHERE id = ?",
            &[time(*at), text(error), Value::Integer(id)],
        )
        .map(drop),
        JobOutcome::Failed { error } => exec(
            conn,
            n,
            "UPDATE outbox SET status = 'failed', lease_until = NULL, last_error = ?, finished = ? WHERE id = ?",
            &[text(error), time(now), Value::Integer(id)],
        )
        .map(drop),
    }
}

fn finish_done(conn: &Connection, n: &Statements, ids: &[i64], now: Timestamp) -> Result<(), StoreError> {
    for chunk in shaped(ids) {
        let sql = format!(
            "UPDATE outbox SET status = 'done', lease_until = NULL, finished = ? WHERE id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut values = vec![time(now)];
        values.extend(chunk.iter().map(|id| Value::Integer(*id)));
        exec(conn, n, &sql, &values)?;
    }
    Ok(())
}

fn insert_messages(conn: &Connection, n: &Statements, messages: &[&MessageRef]) -> Result<(), StoreError> {
    for chunk in shaped(messages) {
        let sql = values_sql(
            "INSERT OR IGNORE INTO slack_messages (request_id, step, recipient, channel, ts)",
            chunk.len(),
            5,
        );
        let values: Vec<Value> = chunk
            .iter()
            .flat_map(|m| {
                [text(&m.request_id), Value::Integer(m.step), text(&m.recipient), text(&m.channel), text(&m.ts)]
            })
            .collect();
        exec(conn, n, &sql, &values)?;
    }
    Ok(())
}

fn mark_home_opened(conn: &Connection, n: &Statements, user_id: &str) -> Result<(), StoreError> {
    exec(
        conn,
        n,
        "INSERT INTO identities (user_id, home_opened, updated) VALUES (?, 1, ?)
         ON CONFLICT (user_id) DO UPDATE SET home_opened = 1",
        &[text(user_id), time(Utc::now())],
    )
    .map(drop)
}

static SAVE_IDENTITY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO identities (user_id, email, name, dm_channel, updated, resolved, okta_id)
         VALUES (?, ?, ?, ?, ?, ?, ?) {}",
        super::IDENTITY_MERGE
    )
});

fn save_identity(conn: &Connection, n: &Statements, i: &Identity) -> Result<(), StoreError> {
    exec(
        conn,
        n,
        &SAVE_IDENTITY,
        &[
            text(&i.user_id),
            opt_text(i.email.as_ref().map(|e| e.to_ascii_lowercase()).as_deref()),
            opt_text(i.name.as_deref()),
            opt_text(i.dm_channel.as_deref()),
            time(Utc::now()),
            Value::Integer(i64::from(i.resolved)),
            opt_text(i.okta_id.as_deref()),
        ],
    )
    .map(drop)
}

/// Claims up to `limit` due rows (see `Store::claim_jobs`), walking the pending
/// rows in id order and stopping at the first claimable ones.
pub(super) fn claim_jobs(
    conn: &mut Connection,
    n: &Statements,
    now: Timestamp,
    until: Timestamp,
    limit: i64,
) -> Result<Vec<ClaimedJob>, StoreError> {
    n.ran("UPDATE outbox … claim");
    let mut stmt = conn
        .prepare_cached(
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
        .map_err(db)?;
    let rows = stmt
        .query_map(rusqlite::params![ms(until), ms(now), ms(now), limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .map_err(db)?;
    let mut jobs = Vec::new();
    for row in rows {
        let (id, ordering_key, kind, payload, attempts, deadline, created) = row.map_err(db)?;
        jobs.push(ClaimedJob {
            id,
            attempts,
            created: from_ms(created),
            item: OutboxItem {
                ordering_key,
                kind,
                payload: serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                deadline: deadline.map(from_ms),
            },
        });
    }
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

pub(super) fn from_ms(v: i64) -> Timestamp {
    chrono::TimeZone::timestamp_millis_opt(&Utc, v).single().unwrap_or_default()
}

pub(super) fn set_due(
    conn: &mut Connection,
    n: &Statements,
    id: &str,
    version: i64,
    due: Option<Timestamp>,
) -> Result<(), StoreError> {
    exec(
        conn,
        n,
        "UPDATE requests SET due = ? WHERE id = ? AND version = ?",
        &[opt_time(due), text(id), Value::Integer(version)],
    )
    .map(drop)
}

pub(super) fn reschedule_open(conn: &mut Connection, n: &Statements, at: Timestamp) -> Result<u64, StoreError> {
    exec(conn, n, "UPDATE requests SET due = ? WHERE status = 'PENDING'", &[time(at)]).map(|c| c as u64)
}

/// Saves a user group's members and the events logging the change, in one transaction.
pub(super) fn save_usergroup(
    conn: &mut Connection,
    n: &Statements,
    g: &Usergroup,
    events: &[LogEvent],
) -> Result<(), StoreError> {
    let members = json(&g.members)?;
    let tx = conn.transaction().map_err(db)?;
    n.ran("BEGIN");
    let changed = if g.version == 0 {
        exec(
            &tx,
            n,
            "INSERT INTO usergroups (id, members, version, updated) VALUES (?, ?, 1, ?) ON CONFLICT (id) DO NOTHING",
            &[text(&g.id), Value::Text(members), time(g.updated)],
        )?
    } else {
        exec(
            &tx,
            n,
            "UPDATE usergroups SET members = ?, version = version + 1, updated = ? WHERE id = ? AND version = ?",
            &[Value::Text(members), time(g.updated), text(&g.id), Value::Integer(g.version)],
        )?
    };
    one_row(changed as u64)?;
    insert_events(&tx, n, &events.iter().collect::<Vec<_>>())?;
    n.ran("COMMIT");
    tx.commit().map_err(db)
}

/// Records a replay key (see `Store::first_use`), pruning a few expired ones first.
pub(super) fn first_use(
    conn: &mut Connection,
    n: &Statements,
    key: &str,
    expires: Timestamp,
    now: Timestamp,
) -> Result<bool, StoreError> {
    exec(
        conn,
        n,
        "DELETE FROM request_replays WHERE key IN
           (SELECT key FROM request_replays WHERE expires <= ? ORDER BY expires LIMIT ?)",
        &[time(now), Value::Integer(super::PRUNE_REPLAYS)],
    )?;
    // An expired row left by the bounded prune is taken over, not counted as a use.
    let changed = exec(
        conn,
        n,
        "INSERT INTO request_replays (key, expires) VALUES (?, ?)
         ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE request_replays.expires <= ?",
        &[text(key), time(expires), time(now)],
    )?;
    Ok(changed == 1)
}

// Point reads of the command and delivery paths, on the writer connection:
// its page cache stays warm, where a reader connection's is thrown away
// whenever another connection has written (SQLite's WAL rule).

/// Rows of one query, each decoded by `f`.
pub(super) fn query<T>(
    conn: &Connection,
    n: &Statements,
    sql: &str,
    values: &[Value],
    f: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    n.ran(sql);
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let rows = stmt.query_map(params_from_iter(values.iter()), |r| f(r)).map_err(db)?;
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db)
}

fn request_of((body, version): (String, i64)) -> Result<Request, StoreError> {
    let mut req: Request = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    req.version = version;
    Ok(req)
}

fn one_request(conn: &Connection, n: &Statements, sql: &str, values: &[Value]) -> Result<Option<Request>, StoreError> {
    query(conn, n, sql, values, |r| Ok((r.get(0)?, r.get(1)?)))?.into_iter().next().map(request_of).transpose()
}

pub(super) fn request(conn: &mut Connection, n: &Statements, id: &str) -> Result<Option<Request>, StoreError> {
    one_request(conn, n, "SELECT body, version FROM requests WHERE id = ?", &[text(id)])
}

pub(super) fn open_request(
    conn: &mut Connection,
    n: &Statements,
    user_id: &str,
    app_id: &str,
) -> Result<Option<Request>, StoreError> {
    one_request(
        conn,
        n,
        "SELECT body, version FROM requests WHERE requested_for = ? AND app_id = ? AND status IN ('SUBMITTED', 'PENDING')",
        &[text(user_id), text(app_id)],
    )
}

/// The identity whose `column` is `value`.
/// The identity whose `column` is `value`, and whether its user opened the Home.
pub(super) fn identity(
    conn: &mut Connection,
    n: &Statements,
    column: &'static str,
    value: &str,
) -> Result<Option<(Identity, bool)>, StoreError> {
    Ok(identities(conn, n, &format!("{column} = ? LIMIT 1"), &[text(value)])?.into_iter().next())
}

/// The identities `condition` selects, and whether each user opened the Home.
/// Read here, on the writer's connection, because identities are saved
/// without waiting (`SqliteStore::save_identity`): a read queued after a save
/// sees it.
pub(super) fn identities(
    conn: &mut Connection,
    n: &Statements,
    condition: &str,
    values: &[Value],
) -> Result<Vec<(Identity, bool)>, StoreError> {
    let sql = format!(
        "SELECT user_id, email, name, dm_channel, resolved, okta_id, home_opened FROM identities WHERE {condition}"
    );
    query(conn, n, &sql, values, |r| {
        let identity = Identity {
            user_id: r.get(0)?,
            email: r.get(1)?,
            name: r.get(2)?,
            dm_channel: r.get(3)?,
            resolved: r.get(4)?,
            okta_id: r.get(5)?,
        };
        Ok((identity, r.get(6)?))
    })
}

pub(super) fn home_opened(conn: &mut Connection, n: &Statements, user_id: &str) -> Result<bool, StoreError> {
    let rows = query(conn, n, "SELECT home_opened FROM identities WHERE user_id = ?", &[text(user_id)], |r| r.get(0))?;
    Ok(rows.into_iter().next().unwrap_or(false))
}

pub(super) fn messages(
    conn: &mut Connection,
    n: &Statements,
    request_id: &str,
    step: i64,
    recipient: &str,
) -> Result<Vec<MessageRef>, StoreError> {
    query(
        conn,
        n,
        "SELECT request_id, step, recipient, channel, ts FROM slack_messages
         WHERE request_id = ? AND step = ? AND recipient = ? ORDER BY ts",
        &[text(request_id), Value::Integer(step), text(recipient)],
        |r| {
            Ok(MessageRef {
                request_id: r.get(0)?,
                step: r.get(1)?,
                recipient: r.get(2)?,
                channel: r.get(3)?,
                ts: r.get(4)?,
            })
        },
    )
}

pub(super) fn delegation_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delegation> {
    Ok(Delegation {
        user_id: r.get(0)?,
        email: r.get(1)?,
        delegate: r.get(2)?,
        until: from_ms(r.get(3)?),
        created: from_ms(r.get(4)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_statements_come_in_few_shapes() {
        let mut sizes = std::collections::BTreeSet::new();
        for len in 0..=1200 {
            let rows: Vec<usize> = (0..len).collect();
            let chunks: Vec<&[usize]> = shaped(&rows).collect();
            assert_eq!(chunks.concat(), rows, "{len} rows: every row once, in order");
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= ROWS), "{len}");
            if len <= EXACT {
                assert!(chunks.len() <= 1, "{len} rows: one statement");
            }
            sizes.extend(chunks.iter().map(|c| c.len()));
        }
        let expected: Vec<usize> = (1..=EXACT).chain([16, 32, 64, 128, 256]).collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), expected);
        // 7 multi-row statements of 13 sizes, with room for the single-row ones.
        assert!(7 * expected.len() + 24 <= PREPARED);
    }
}
