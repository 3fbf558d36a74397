//! Group commit: writes that arrive while a transaction is being written
//! queue up and share the next one, so a busy store pays one commit (one WAL
//! write, one fsync on PostgreSQL) for many writes, and the backend can merge
//! writes of one kind into one statement. An idle store writes each at once:
//! nothing waits for company.
//!
//! A batch is all or nothing. When any write in it fails, the batch is rolled
//! back and its writes are applied again one transaction each, so each caller
//! gets the answer its write alone would have got (a conflict stays its own).

use std::borrow::Cow;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::plan::Plan;
use crate::workflow::model::{Changeset, LogEvent, Timestamp};
use crate::workflow::ports::{ClaimedJob, Handed, Handoff, Identity, JobOutcome, MessageRef, OutboxItem, StoreError};

/// Writes per transaction at most: bounds the time a batch holds the writer.
const MAX_BATCH: usize = 256;
/// How long a batch of writes nobody waits on waits for company before its
/// commit (a commit writes the pages it touched to the WAL and syncs it); any
/// other write ends the wait and shares the commit: [`Write::unwaited`] (a
/// delivery's slot is free once its call is made; a new requester's identity
/// then shares their request's commit).
pub(super) const COMPANY_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// One write a caller waits for.
#[derive(Debug)]
pub(super) enum Write {
    Commit(Box<Changeset>),
    Enqueue { items: Vec<OutboxItem>, now: Timestamp },
    Finish { id: i64, outcome: JobOutcome, now: Timestamp },
    Identity(Identity),
    HomeOpened(String),
    Events(Vec<LogEvent>),
}

/// Applies a batch of writes in an open transaction (merging what it can);
/// any error fails the batch. With a hand-off it writes the new rows it can
/// take claimed, and answers them ([`to_hand`]).
///
/// A backend's [`OneStatement`] names the batches it writes in one statement:
/// those run without a transaction around them (one round trip, not three).
pub(super) type Apply<DB> = for<'c> fn(
    &'c mut <DB as sqlx::Database>::Connection,
    &'c [Write],
    &'c super::Statements,
    Option<&'c Handoff>,
) -> BoxFuture<'c, Result<Vec<Handed>, StoreError>>;

/// Whether [`Apply`] writes this batch in one statement.
pub(super) type OneStatement = fn(&[Write]) -> bool;

type Queued = (Write, oneshot::Sender<Result<(), StoreError>>);

/// The queue in front of a backend's writers.
pub(super) struct Batcher {
    queue: mpsc::UnboundedSender<Queued>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Batcher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Where a batch's claimed outbox rows go, once set ([`crate::workflow::ports::Store::hand_over`]).
pub(super) type HandoffCell = Arc<std::sync::OnceLock<Handoff>>;

impl Batcher {
    /// `writers` tasks take batches from one queue, each on its own connection of `pool`.
    pub fn start<DB: sqlx::Database>(
        pool: sqlx::Pool<DB>,
        backend: Writes<DB>,
        statements: Arc<super::Statements>,
        handoff: HandoffCell,
        writers: usize,
    ) -> Batcher {
        let (queue, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let at = Arc::new(Shared { pool, backend, statements, handoff });
        let tasks = (0..writers.max(1)).map(|_| tokio::spawn(writer(at.clone(), rx.clone()))).collect();
        Batcher { queue, tasks }
    }

    /// Queues `w` and waits until its transaction committed.
    pub async fn write(&self, w: Write) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.queue.send((w, tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues `w` without waiting for it; a failure is logged.
    pub fn write_behind(&self, w: Write) -> Result<(), StoreError> {
        let (tx, _) = oneshot::channel();
        self.queue.send((w, tx)).map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::Database("the store's writer stopped".into())
}

/// How a backend writes a batch.
pub(super) struct Writes<DB: sqlx::Database> {
    pub apply: Apply<DB>,
    pub one: OneStatement,
}

impl<DB: sqlx::Database> Clone for Writes<DB> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<DB: sqlx::Database> Copy for Writes<DB> {}

/// What every writer task of a batcher writes with.
struct Shared<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    backend: Writes<DB>,
    statements: Arc<super::Statements>,
    handoff: HandoffCell,
}

async fn writer<DB: sqlx::Database>(at: Arc<Shared<DB>>, rx: Arc<Mutex<mpsc::UnboundedReceiver<Queued>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut lazy = first.0.unwaited();
            let until = tokio::time::Instant::now() + COMPANY_WAIT;
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                // Unwaited writes alone wait a moment for more; anyone else's goes now.
                let next = if lazy {
                    tokio::time::timeout_at(until, rx.recv()).await.ok().flatten()
                } else {
                    rx.try_recv().ok()
                };
                let Some(q) = next else { break };
                lazy &= q.0.unwaited();
                batch.push(q);
            }
            batch
        };
        let (writes, replies): (Vec<Write>, Vec<_>) = batch.into_iter().unzip();
        match transaction(&at, &writes).await {
            Ok(()) => replies.into_iter().for_each(|r| answer(r, Ok(()))),
            // A commit that failed may have happened: never replayed, every caller hears.
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
                    let one = transaction(&at, std::slice::from_ref(w)).await;
                    answer(reply, one.map_err(Failed::into_inner));
                }
            }
        }
    }
}

/// Tells a write's caller how it went; a failed write whose caller no longer
/// waits (written behind) is logged.
pub(super) fn answer(reply: oneshot::Sender<Result<(), StoreError>>, result: Result<(), StoreError>) {
    if let Err(Err(e)) = reply.send(result) {
        tracing::warn!(error = %e, "a write nobody waits for failed");
    }
}

pub(super) enum Failed {
    /// Before the commit: nothing was written.
    Apply(StoreError),
    Commit(StoreError),
}

impl Failed {
    pub(super) fn into_inner(self) -> StoreError {
        match self {
            Failed::Apply(e) | Failed::Commit(e) => e,
        }
    }
}

impl Write {
    /// What the outbox records after a delivery: nobody else waits for it.
    pub(super) fn is_outcome(&self) -> bool {
        matches!(self, Write::Finish { .. })
    }

    /// Delivery outcomes (the outbox freed the delivery's slot already) and
    /// identities (mostly written behind: a new requester's identity then
    /// shares the commit of their request).
    pub(super) fn unwaited(&self) -> bool {
        self.is_outcome() || matches!(self, Write::Identity(_))
    }

    /// Written by one statement: atomic without a transaction around it.
    pub(super) fn one_statement(&self) -> bool {
        match self {
            Write::Finish { outcome, .. } => !matches!(outcome, JobOutcome::Sent(_)),
            _ => matches!(self, Write::Identity(_) | Write::HomeOpened(_)),
        }
    }
}

/// Attempts after the first when the database aborted the transaction to break
/// a deadlock (two batches touching the same rows in another order): 5 ms, doubling.
const BUSY_RETRIES: usize = 4;

/// Writes `writes` in one transaction, again when the database gave it up as
/// busy (nothing of it was written then).
async fn transaction<DB: sqlx::Database>(at: &Shared<DB>, writes: &[Write]) -> Result<(), Failed> {
    let mut wait = std::time::Duration::from_millis(5);
    for _ in 0..BUSY_RETRIES {
        match attempt(at, writes).await {
            Err(Failed::Apply(StoreError::Busy(e)) | Failed::Commit(StoreError::Busy(e))) => {
                tracing::debug!(error = %e, writes = writes.len(), "store: transaction aborted as busy; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            done => return done,
        }
    }
    attempt(at, writes).await
}

/// One try: the rows it claimed go to the outbox once committed ([`hand`]).
async fn attempt<DB: sqlx::Database>(at: &Shared<DB>, writes: &[Write]) -> Result<(), Failed> {
    let to = at.handoff.get();
    let (apply, statements) = (at.backend.apply, &*at.statements);
    let mut handed = Vec::new();
    let written = if (at.backend.one)(writes) {
        async {
            let mut conn = at.pool.acquire().await.map_err(|e| Failed::Apply(e.into()))?;
            // Autocommit: a statement the database refused wrote nothing; any
            // other failure (a lost connection) may have come after it was written.
            handed = apply(&mut conn, writes, statements, to).await.map_err(|e| match e {
                StoreError::DuplicateOpen | StoreError::Conflict => Failed::Apply(e),
                e => Failed::Commit(e),
            })?;
            Ok(())
        }
        .await
    } else {
        async {
            let mut tx = at.pool.begin().await.map_err(|e| Failed::Apply(e.into()))?;
            statements.ran("BEGIN");
            handed = apply(&mut *tx, writes, statements, to).await.map_err(Failed::Apply)?;
            statements.ran("COMMIT");
            tx.commit().await.map_err(|e| Failed::Commit(e.into()))
        }
        .await
    };
    hand(to, handed, written.is_ok());
    written
}

/// Where a key's next new row stands, for a hand-off.
pub(super) enum Key {
    /// No older row of the key is pending: the row may be claimed at once.
    Free,
    /// An older row of the key is pending (or new in this commit): the
    /// outbox claims it once a row of the key is finished.
    Behind,
    /// Not known: left for a claim, at once and whenever a row of the key is finished.
    Unknown,
}

/// Whether an ordering key is under one of these request ids (`{id}:…`).
pub(super) fn under(key: &str, ids: &std::collections::HashSet<&str>) -> bool {
    key.split_once(':').is_some_and(|(id, _)| ids.contains(id))
}

/// Which of a commit's new rows the hand-off takes ([`Handoff`]): those whose
/// key `key` says is free, while its room lasts; the others are reported left.
pub(super) fn to_hand(items: &[Job<'_>], to: &Handoff, mut key: impl FnMut(&str) -> Key) -> Vec<bool> {
    use std::sync::atomic::Ordering::Relaxed;
    let left = |claimable: bool| {
        if claimable {
            to.left.unclaimed.store(true, Relaxed);
        }
        false
    };
    items
        .iter()
        .map(|(item, _)| {
            let k = item.ordering_key.as_str();
            match key(k) {
                Key::Free => to.room.fetch_update(Relaxed, Relaxed, |r| (r > 0).then(|| r - 1)).is_ok() || left(true),
                Key::Behind => {
                    to.left.hold_back(k);
                    left(false)
                }
                Key::Unknown => {
                    to.left.hold_back(k);
                    left(true)
                }
            }
        })
        .collect()
}

/// The rows `to_hand` took, with the ids the insert gave them (in order) and their lease.
pub(super) fn handed<'a>(
    items: impl IntoIterator<Item = Job<'a>>,
    taken: &[bool],
    ids: &[i64],
    lease: std::time::Duration,
) -> Vec<Handed> {
    items
        .into_iter()
        .zip(taken)
        .filter(|(_, &t)| t)
        .zip(ids)
        .map(|(((item, now), _), &id)| Handed {
            job: ClaimedJob { id, item: item.into_owned(), attempts: 1, created: now },
            lease_until: lease_end(now, lease),
        })
        .collect()
}

/// `now + lease`, saturating (PostgreSQL's range exceeds chrono's).
pub(super) fn lease_end(now: Timestamp, lease: std::time::Duration) -> Timestamp {
    chrono::TimeDelta::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// After a transaction: the rows it claimed go to the outbox when it was
/// written, and the outbox is woken for the rows it left; when not, the
/// room they took is given back (a row written after all stays leased until
/// its lease lapses, then is claimed). An [`Apply`] that fails gives back
/// the room of the rows it took but did not answer.
pub(super) fn hand(to: Option<&Handoff>, handed: Vec<Handed>, written: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(to) = to else { return };
    if written {
        // A closed outbox (shutting down) leaves the rows leased: free at the next start.
        handed.into_iter().for_each(|h| drop(to.jobs.send(h)));
        if to.left.unclaimed.load(Relaxed) {
            to.left.wake.notify_one();
        }
    } else {
        to.room.fetch_add(handed.len() as i64, Relaxed);
    }
}

/// An outbox row to insert and when it is due.
pub(super) type Job<'a> = (std::borrow::Cow<'a, OutboxItem>, Timestamp);

/// A batch sorted for writing, the same for both backends: the writes that
/// go one by one (in order), then rows of many writes merged into one
/// statement per kind.
#[derive(Default)]
pub(super) struct Sorted<'a> {
    pub each: Vec<Each<'a>>,
    pub events: Vec<&'a LogEvent>,
    pub jobs: Vec<Job<'a>>,
    /// Delivered outbox rows, and the latest time among them.
    pub done: Vec<i64>,
    pub done_at: Option<Timestamp>,
    pub messages: Vec<&'a MessageRef>,
}

pub(super) enum Each<'a> {
    /// A changeset's request, assignment and delegation rows (its events and jobs are merged).
    Plan(Plan<'a>),
    /// A retry or a failure (deliveries are merged).
    Finish {
        id: i64,
        outcome: &'a JobOutcome,
        now: Timestamp,
    },
    Identity(&'a Identity),
    HomeOpened(&'a str),
}

impl<'a> Sorted<'a> {
    pub fn of(writes: &'a [Write]) -> Result<Sorted<'a>, StoreError> {
        let mut s = Sorted::default();
        for w in writes {
            match w {
                Write::Commit(cs) => {
                    let mut plan = Plan::of(cs)?;
                    let now = plan.now;
                    s.jobs.extend(std::mem::take(&mut plan.jobs).into_iter().map(|j| (Cow::Owned(j), now)));
                    s.events.extend(plan.events.iter());
                    s.each.push(Each::Plan(plan));
                }
                Write::Enqueue { items, now } => s.jobs.extend(items.iter().map(|j| (Cow::Borrowed(j), *now))),
                Write::Events(events) => s.events.extend(events.iter()),
                Write::Finish { id, outcome: JobOutcome::Done, now } => {
                    s.done.push(*id);
                    s.done_at = s.done_at.max(Some(*now));
                }
                Write::Finish { id, outcome: JobOutcome::Sent(m), now } => {
                    s.done.push(*id);
                    s.done_at = s.done_at.max(Some(*now));
                    s.messages.push(m);
                }
                Write::Finish { id, outcome, now } => s.each.push(Each::Finish { id: *id, outcome, now: *now }),
                Write::Identity(i) => s.each.push(Each::Identity(i)),
                Write::HomeOpened(user) => s.each.push(Each::HomeOpened(user)),
            }
        }
        Ok(s)
    }

    /// When the delivered rows were finished.
    pub fn done_at(&self) -> Timestamp {
        self.done_at.unwrap_or_else(chrono::Utc::now)
    }

    /// The ids of the requests this batch creates: no row can be pending
    /// under one of them yet (no transaction can queue a row under an id
    /// before the commit that creates it is seen).
    pub fn new_ids(&self) -> std::collections::HashSet<&str> {
        self.each
            .iter()
            .filter_map(|e| match e {
                Each::Plan(Plan { request: Some(w), .. }) if w.insert => Some(w.req.id.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::*;

    static BUSY_LEFT: AtomicUsize = AtomicUsize::new(0);
    static CALLS: AtomicUsize = AtomicUsize::new(0);

    /// Aborted as busy while `BUSY_LEFT` lasts, then written.
    fn flaky<'c>(
        _: &'c mut sqlx::SqliteConnection,
        _: &'c [Write],
        _: &'c super::super::Statements,
        _: Option<&'c Handoff>,
    ) -> BoxFuture<'c, Result<Vec<Handed>, StoreError>> {
        Box::pin(async {
            CALLS.fetch_add(1, SeqCst);
            match BUSY_LEFT.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)) {
                Ok(_) => Err(StoreError::Busy("deadlock detected".into())),
                Err(_) => Ok(Vec::new()),
            }
        })
    }

    #[tokio::test]
    async fn a_transaction_aborted_as_busy_is_tried_again_a_few_times() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new().connect("sqlite::memory:").await.unwrap();
        let batcher = Batcher::start(
            pool,
            Writes { apply: flaky, one: |w| matches!(w, [w] if w.one_statement()) },
            Arc::default(),
            Arc::default(),
            1,
        );

        BUSY_LEFT.store(2, SeqCst);
        CALLS.store(0, SeqCst);
        batcher.write(Write::HomeOpened("U1".into())).await.expect("written on the third attempt");
        assert_eq!(CALLS.load(SeqCst), 3);

        BUSY_LEFT.store(100, SeqCst);
        CALLS.store(0, SeqCst);
        let gave_up = batcher.write(Write::HomeOpened("U1".into())).await;
        assert!(matches!(gave_up, Err(StoreError::Busy(_))), "{gave_up:?}");
        assert_eq!(CALLS.load(SeqCst), BUSY_RETRIES + 1);
    }
}
