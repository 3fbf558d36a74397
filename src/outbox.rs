//! Durable delivery: notification intents are rows written with the state
//! change; one loop claims them in batches with a lease, delivers each in a
//! task of its own (up to `workers` at once), and retries with backoff.
//! Rows sharing an ordering key go out strictly in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::{ClaimedJob, JobOutcome, MessageRef, Store, StoreError};
use crate::workflow::model::Timestamp;
use crate::workflow::ports::{Handed, Handoff, LeftRows};
use crate::workflow::Clock;

/// The longest a peer's `Retry-After` may hold a row back.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The outbox kind of workflow notifications.
pub use crate::workflow::ports::{notice_item, NOTICE_KIND as NOTICE};

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Done,
    /// Done, with the message it posted, to record in the outcome's transaction.
    Sent(MessageRef),
    /// Transient: try again, after `after` when the peer said so (HTTP 429).
    Retry {
        after: Option<Duration>,
        error: String,
        rate_limited: bool,
    },
    /// Permanent: give up.
    Failed(String),
}

/// Delivers one claimed row (a chat platform, a webhook sender).
#[async_trait]
pub trait Deliverer: Send + Sync + 'static {
    async fn deliver(&self, job: &ClaimedJob) -> Delivery;

    /// Called once a row is finally delivered (`error` None) or given up on.
    async fn settled(&self, _job: &ClaimedJob, _error: Option<&str>) {}
}

#[derive(Clone, Debug)]
pub struct OutboxConfig {
    /// Deliveries under way at once (each row's own task).
    pub workers: usize,
    /// Rows claimed per statement at most.
    pub batch: i64,
    pub lease: Duration,
    pub poll: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub max_attempts: i64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            workers: 4,
            batch: 16,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: 12,
        }
    }
}

pub struct Outbox {
    store: Arc<dyn Store>,
    deliverer: Arc<dyn Deliverer>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    cfg: OutboxConfig,
    metrics: Arc<Metrics>,
    /// Epoch ms until which no worker calls out (a 429 pauses everyone).
    paused_until: AtomicI64,
}

/// Exponential backoff with jitter for the n-th failed attempt.
pub fn backoff(cfg: &OutboxConfig, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let base = cfg.base_backoff.saturating_mul(2u32.saturating_pow(exp)).min(cfg.max_backoff);
    let jitter = rand::thread_rng().gen_range(0.0..0.25);
    base.mul_f64(1.0 + jitter)
}

impl Outbox {
    pub fn new(
        store: Arc<dyn Store>,
        deliverer: Arc<dyn Deliverer>,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        cfg: OutboxConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Outbox> {
        Arc::new(Outbox { store, deliverer, clock, wake, cfg, metrics, paused_until: AtomicI64::new(0) })
    }

    /// Starts the claim loop; it stops when `shutdown` is cancelled, letting
    /// the deliveries under way and the rows it claimed ahead finish.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let left = Arc::new(LeftRows::default());
        let room = Arc::new(AtomicI64::new(HANDOFF_ROOM * i64::try_from(self.cfg.workers.max(1)).unwrap_or(1)));
        let handoff = Handoff { jobs, room: room.clone(), left: left.clone(), lease: self.cfg.lease };
        let handed = self.store.hand_over(handoff).then_some(Handover { rx, room, left, ready: VecDeque::new() });
        let me = self.clone();
        vec![tokio::spawn(async move { me.run(shutdown, handed).await })]
    }

    /// One loop delivers the rows commits handed over, and claims rows for the
    /// free delivery slots and a few ahead ([`ClaimLoop::claim`]), in one
    /// statement, when the store may hold any: rows commits left, rows behind
    /// a key just finished, and once `poll` passed without a claim (retries,
    /// lapsed leases, other replicas' rows); without a hand-off, also after
    /// every commit and every finished row. Each row goes out in a task of its own. Rows under way have
    /// distinct ordering keys (an older pending row holds its key back), so
    /// delivering them at once keeps every key's order.
    async fn run(self: Arc<Self>, shutdown: CancellationToken, handed: Option<Handover>) {
        let mut l = ClaimLoop {
            slots: Arc::new(Semaphore::new(self.cfg.workers.max(1))),
            slot_free: Arc::new(Notify::new()),
            deliveries: tokio::task::JoinSet::new(),
            dirty: true,
            handed,
            claimed: VecDeque::new(),
        };
        let mut last_claim = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            let pause = self.paused_until.load(Ordering::Relaxed) - self.clock.now().timestamp_millis();
            if pause > 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(u64::try_from(pause).unwrap_or(0))) => {}
                }
            }
            l.start_handed(&self).await;
            l.start_claimed(&self).await;
            if let Some(full) = l.claim(&self).await {
                last_claim = tokio::time::Instant::now();
                if full {
                    continue;
                }
            }
            // The poll claims once `poll` passed without a claim, however
            // busy the loop is with handed rows: retries come due in the store.
            // (With every slot busy it claims when one is free: the store stays
            // dirty, and the next poll is `poll` away.)
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = l.wait(&self.wake) => {}
                _ = tokio::time::sleep_until(last_claim + self.cfg.poll) => {
                    l.dirty = true;
                    last_claim = tokio::time::Instant::now();
                }
            }
        }
        // Rows claimed ahead are delivered too, not left leased for a minute.
        while let Some((job, _)) = l.claimed.pop_front() {
            l.start(&self, job).await;
        }
        while l.deliveries.join_next().await.is_some() {}
    }

    /// Claims up to `limit` rows (none when the store fails; the loop tries again).
    async fn claim(&self, limit: i64) -> Vec<ClaimedJob> {
        self.store.claim_jobs(self.clock.now(), self.cfg.lease, limit).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "outbox: claiming failed");
            Vec::new()
        })
    }

    /// Delivers a row; what to record, and when it was decided.
    async fn attempt(&self, job: &ClaimedJob) -> (JobOutcome, Timestamp) {
        let now = self.clock.now();
        let result = match job.item.deadline {
            Some(d) if d < now => Delivery::Failed("deadline passed before delivery".into()),
            _ => self.deliverer.deliver(job).await,
        };
        let now = self.clock.now();
        let kind = job.item.kind.as_str();
        let label = match &result {
            Delivery::Done | Delivery::Sent(_) => "done",
            Delivery::Retry { .. } if job.attempts >= self.cfg.max_attempts => "failed",
            Delivery::Retry { .. } => "retry",
            Delivery::Failed(_) => "failed",
        };
        self.metrics.delivery(kind, label);
        if matches!(result, Delivery::Retry { rate_limited: true, .. }) {
            self.metrics.rate_limited();
        }
        let outcome = match result {
            Delivery::Done => self.delivered(job, now, JobOutcome::Done),
            Delivery::Sent(m) => self.delivered(job, now, JobOutcome::Sent(m)),
            Delivery::Retry { error, .. } if job.attempts >= self.cfg.max_attempts => {
                tracing::error!(job = job.id, kind = %job.item.kind, attempts = job.attempts, %error, "outbox: giving up after retries");
                JobOutcome::Failed { error: format!("gave up after {} attempts: {error}", job.attempts) }
            }
            Delivery::Retry { after, error, rate_limited } => {
                // A peer's Retry-After is capped: a huge one must not park the row for ever (or overflow).
                let wait = after.unwrap_or_else(|| backoff(&self.cfg, job.attempts)).min(MAX_RETRY_AFTER);
                let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                if rate_limited {
                    self.paused_until.fetch_max(at.timestamp_millis(), Ordering::Relaxed);
                }
                tracing::warn!(job = job.id, kind = %job.item.kind, attempts = job.attempts, %error, retry_in_ms = wait.as_millis() as u64, "outbox: will retry");
                JobOutcome::Retry { at, error }
            }
            Delivery::Failed(error) => {
                tracing::error!(job = job.id, kind = %job.item.kind, %error, "outbox: delivery failed permanently");
                JobOutcome::Failed { error }
            }
        };
        let settled = match &outcome {
            JobOutcome::Done | JobOutcome::Sent(_) => Some(None),
            JobOutcome::Failed { error } => Some(Some(error.clone())),
            JobOutcome::Retry { .. } => None,
        };
        // The outcome is recorded before the row is closed: a crash in between repeats it, never loses it.
        if let Some(error) = settled {
            self.deliverer.settled(job, error.as_deref()).await;
        }
        (outcome, now)
    }

    fn delivered(&self, job: &ClaimedJob, now: Timestamp, outcome: JobOutcome) -> JobOutcome {
        self.metrics.delivered_after((now - job.created).to_std().unwrap_or_default());
        tracing::debug!(job = job.id, kind = %job.item.kind, attempts = job.attempts, "outbox: delivered");
        outcome
    }

    /// Closes a row, retrying briefly: a delivered row whose outcome is not written
    /// (a dropped database connection) would be delivered again once its lease lapses.
    async fn finish(&self, id: i64, outcome: JobOutcome, now: Timestamp) -> Result<(), StoreError> {
        let mut wait = Duration::from_millis(50);
        for _ in 0..FINISH_RETRIES {
            match self.store.finish_job(id, outcome.clone(), now).await {
                Ok(()) => return Ok(()),
                Err(e) => tracing::warn!(job = id, error = %e, "outbox: could not record an outcome; retrying"),
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        self.store.finish_job(id, outcome, now).await
    }
}

/// The claim loop's state: delivery slots, the deliveries under way, and
/// whether the store may hold claimable rows.
struct ClaimLoop {
    slots: Arc<Semaphore>,
    /// Notified when a delivery's call is over (its outcome is still to be written).
    slot_free: Arc<Notify>,
    /// Each answers with its row's ordering key once the outcome is written.
    deliveries: tokio::task::JoinSet<String>,
    dirty: bool,
    handed: Option<Handover>,
    /// Rows claimed ahead of free slots, with when their lease ends.
    claimed: VecDeque<(ClaimedJob, Timestamp)>,
}

impl ClaimLoop {
    /// Starts the handed rows the free slots can take.
    async fn start_handed(&mut self, outbox: &Arc<Outbox>) {
        let Some(h) = &self.handed else { return };
        self.dirty |= h.left.unclaimed.swap(false, Ordering::Relaxed);
        while self.slots.available_permits() > 0 {
            let Some(h) = &mut self.handed else { return };
            let Some(job) = h.next(&*outbox.clock, outbox.cfg.lease, &mut self.dirty) else { break };
            self.start(outbox, job).await;
        }
    }

    /// Starts the rows claimed ahead that the free slots can take (one with
    /// too little lease left is left for a claim once the lease lapses).
    async fn start_claimed(&mut self, outbox: &Arc<Outbox>) {
        while self.slots.available_permits() > 0 {
            let Some((job, until)) = self.claimed.pop_front() else { break };
            if lease_left(&*outbox.clock, outbox.cfg.lease, until) {
                self.start(outbox, job).await;
            } else {
                tracing::debug!(job = job.id, "outbox: a claimed row waited too long; leaving it to a claim");
                self.dirty = true;
            }
        }
    }

    /// Claims when the store may hold rows and at most half as many rows as
    /// there are slots wait: for the free slots and as many again, so a busy
    /// loop claims a few rows at a time rather than one per freed slot (four
    /// claims of about one row per `/access request` on PostgreSQL before).
    /// Few wait, so a replica whose calls hang holds few rows back from the
    /// others (an earlier build that claimed 16 ahead drained the soak 38 s
    /// late). Whether it got as many as it asked for (there may be more);
    /// None when it did not ask.
    async fn claim(&mut self, outbox: &Arc<Outbox>) -> Option<bool> {
        let waiting = i64::try_from(self.claimed.len()).unwrap_or(i64::MAX);
        let workers = i64::try_from(outbox.cfg.workers.max(1)).unwrap_or(1);
        let free = i64::try_from(self.slots.available_permits()).unwrap_or(0);
        let want = (free + workers - waiting).min(outbox.cfg.batch);
        if !self.dirty || waiting > workers / 2 || want <= 0 {
            return None;
        }
        let until = outbox.clock.now() + chrono::Duration::from_std(outbox.cfg.lease).unwrap_or_default();
        let claimed = outbox.claim(want).await;
        // Fewer rows than asked for: nothing else is claimable until a
        // commit leaves rows, a key's row is written, or the poll.
        let full = i64::try_from(claimed.len()).unwrap_or(0) == want;
        self.dirty = full;
        for job in claimed {
            if let Some(h) = &self.handed {
                h.left.claimed(&job.item.ordering_key);
            }
            self.claimed.push_back((job, until));
        }
        self.start_claimed(outbox).await;
        Some(full)
    }

    /// Delivers `job` in a task of its own once a slot is free.
    async fn start(&mut self, outbox: &Arc<Outbox>, job: ClaimedJob) {
        // Only the claim loop takes slots: one is free for each row it starts.
        let Ok(permit) = self.slots.clone().acquire_owned().await else { return };
        let (me, slot_free) = (outbox.clone(), self.slot_free.clone());
        self.deliveries.spawn(async move {
            let (outcome, now) = me.attempt(&job).await;
            // The slot is free once the call is made: the next row waiting
            // (handed or claimed ahead, of another key) starts while the
            // outcome waits in the writer's queue for company. The key's next
            // row stays held until this outcome is written.
            drop(permit);
            slot_free.notify_one();
            if let Err(e) = me.finish(job.id, outcome, now).await {
                tracing::warn!(job = job.id, error = %e, "outbox: recording an outcome failed");
            }
            job.item.ordering_key
        });
    }

    /// Waits for a reason to look again: a handed row, rows a commit left, a
    /// commit (without a hand-off), a free slot, a written outcome (its key's
    /// next row may be claimable now).
    async fn wait(&mut self, wake: &Notify) {
        let (rx, left) = match &mut self.handed {
            Some(h) => (Some(&mut h.rx), Some(&*h.left)),
            None => (None, None),
        };
        let has_handoff = left.is_some();
        let handed = async {
            match rx {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let left_rows = async {
            match left {
                Some(l) => l.wake.notified().await,
                None => std::future::pending().await,
            }
        };
        let written = async {
            match self.deliveries.join_next().await {
                Some(done) => done.ok(),
                None => std::future::pending().await,
            }
        };
        let mut dirty = false;
        let mut ready = None;
        tokio::select! {
            job = handed => ready = job,
            _ = left_rows => {}
            _ = wake.notified() => dirty = !has_handoff,
            _ = self.slot_free.notified() => {}
            Some(key) = written => {
                dirty = match left {
                    Some(l) => l.waits_on(&key),
                    None => true,
                };
            }
        }
        self.dirty |= dirty;
        if let (Some(job), Some(h)) = (ready, &mut self.handed) {
            h.ready.push_back(job);
        }
    }
}

/// Whether a row leased until `until` has more than half its lease left: one
/// with less may outlast its lease under way, and another claim deliver it too.
fn lease_left(clock: &dyn Clock, lease: Duration, until: Timestamp) -> bool {
    clock.now() + chrono::Duration::from_std(lease / 2).unwrap_or_default() < until
}

/// Rows handed over per delivery slot, at most, before commits leave new rows
/// for the claims: bounds how long a handed row waits in memory.
const HANDOFF_ROOM: i64 = 4;

/// The loop's end of a [`Handoff`].
struct Handover {
    rx: mpsc::UnboundedReceiver<Handed>,
    room: Arc<AtomicI64>,
    left: Arc<LeftRows>,
    ready: VecDeque<Handed>,
}

impl Handover {
    /// The next handed row to deliver. One with less than half its lease left
    /// is dropped (it may outlast its lease under way), for a claim to take
    /// once the lease lapses.
    fn next(&mut self, clock: &dyn Clock, lease: Duration, dirty: &mut bool) -> Option<ClaimedJob> {
        loop {
            let h = self.ready.pop_front().or_else(|| self.rx.try_recv().ok())?;
            self.room.fetch_add(1, Ordering::Relaxed);
            if lease_left(clock, lease, h.lease_until) {
                return Some(h.job);
            }
            tracing::debug!(job = h.job.id, "outbox: a handed row waited too long; leaving it to a claim");
            *dirty = true;
        }
    }
}

/// Attempts to record a row's outcome before giving up (50 ms, doubling: 750 ms in all).
const FINISH_RETRIES: usize = 4;
