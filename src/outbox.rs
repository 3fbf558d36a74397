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
    /// the deliveries under way finish (it claims no row it cannot start).
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let left = Arc::new(LeftRows::default());
        let room = Arc::new(AtomicI64::new(HANDOFF_ROOM * i64::try_from(self.cfg.workers.max(1)).unwrap_or(1)));
        let handoff = Handoff { jobs, room: room.clone(), left: left.clone(), lease: self.cfg.lease };
        let handed = self.store.hand_over(handoff).then_some(Handover { rx, room, left, ready: VecDeque::new() });
        let me = self.clone();
        vec![tokio::spawn(async move { me.run(shutdown, handed).await })]
    }

    /// One loop delivers the rows commits handed over, and claims what else
    /// the free delivery slots can take, in one statement, when the store may
    /// hold any: rows commits left, rows behind a key just finished, and at
    /// each poll (retries, lapsed leases, other replicas' rows). Each row goes
    /// out in a task of its own. Rows under way have distinct ordering keys (an
    /// older pending row holds its key back), so delivering them at once
    /// keeps every key's order.
    async fn run(self: Arc<Self>, shutdown: CancellationToken, mut handed: Option<Handover>) {
        let slots = Arc::new(Semaphore::new(self.cfg.workers.max(1)));
        let finished = Arc::new(Notify::new());
        let mut deliveries = tokio::task::JoinSet::<String>::new();
        // Whether the store may hold claimable rows; always, without a hand-off.
        let mut dirty = true;
        let mut poll = tokio::time::interval(self.cfg.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !shutdown.is_cancelled() {
            while let Some(done) = deliveries.try_join_next() {
                if let (Ok(key), Some(h)) = (done, &handed) {
                    dirty |= h.left.waits_on(&key);
                }
            }
            let pause = self.paused_until.load(Ordering::Relaxed) - self.clock.now().timestamp_millis();
            if pause > 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(u64::try_from(pause).unwrap_or(0))) => {}
                }
            }
            if let Some(h) = &mut handed {
                dirty |= h.left.unclaimed.swap(false, Ordering::Relaxed);
                while slots.available_permits() > 0 {
                    let Some(job) = h.next(&*self.clock, self.cfg.lease, &mut dirty) else { break };
                    self.start(job, &slots, &finished, &mut deliveries).await;
                }
            }
            let free = i64::try_from(slots.available_permits()).unwrap_or(0).min(self.cfg.batch);
            if dirty && free > 0 {
                let claimed = self.claim(free).await;
                // Fewer rows than asked for: nothing else is claimable until a
                // commit leaves rows, a key's row finishes, or the poll.
                let full = i64::try_from(claimed.len()).unwrap_or(0) == free;
                dirty = full || handed.is_none();
                for job in claimed {
                    if let Some(h) = &handed {
                        h.left.claimed(&job.item.ordering_key);
                    }
                    self.start(job, &slots, &finished, &mut deliveries).await;
                }
                if full {
                    continue;
                }
            }
            let more = async {
                match &mut handed {
                    Some(h) => h.rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                job = more => {
                    if let (Some(job), Some(h)) = (job, &mut handed) {
                        h.ready.push_back(job);
                    }
                }
                _ = self.wake.notified() => {}
                _ = finished.notified() => {}
                _ = poll.tick() => dirty = true,
            }
        }
        while deliveries.join_next().await.is_some() {}
    }

    /// Delivers `job` in a task of its own once a slot is free; the task
    /// answers with the row's ordering key.
    async fn start(
        self: &Arc<Self>,
        job: ClaimedJob,
        slots: &Arc<Semaphore>,
        finished: &Arc<Notify>,
        deliveries: &mut tokio::task::JoinSet<String>,
    ) {
        // Only this loop takes slots: one is free for each row it starts.
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (me, finished) = (self.clone(), finished.clone());
        deliveries.spawn(async move {
            if let Err(e) = me.execute(&job).await {
                tracing::warn!(job = job.id, error = %e, "outbox: recording an outcome failed");
            }
            drop(permit);
            finished.notify_one();
            job.item.ordering_key
        });
    }

    /// Claims up to `limit` rows (none when the store fails; the loop tries again).
    async fn claim(&self, limit: i64) -> Vec<ClaimedJob> {
        self.store.claim_jobs(self.clock.now(), self.cfg.lease, limit).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "outbox: claiming failed");
            Vec::new()
        })
    }

    async fn execute(&self, job: &ClaimedJob) -> Result<(), StoreError> {
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
        self.finish(job.id, outcome, now).await
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
        let half = chrono::Duration::from_std(lease / 2).unwrap_or_default();
        loop {
            let h = self.ready.pop_front().or_else(|| self.rx.try_recv().ok())?;
            self.room.fetch_add(1, Ordering::Relaxed);
            if clock.now() + half < h.lease_until {
                return Some(h.job);
            }
            tracing::debug!(job = h.job.id, "outbox: a handed row waited too long; leaving it to a claim");
            *dirty = true;
        }
    }
}

/// Attempts to record a row's outcome before giving up (50 ms, doubling: 750 ms in all).
const FINISH_RETRIES: usize = 4;
