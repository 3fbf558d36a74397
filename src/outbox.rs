//! Durable delivery: notification intents are rows written with the state
//! change; one loop claims them in batches with a lease, delivers each in a
//! task of its own (up to `workers` at once), and retries with backoff.
//! Rows sharing an ordering key go out strictly in order.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::{ClaimedJob, JobOutcome, MessageRef, Store, StoreError};
use crate::workflow::model::Timestamp;
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
        let me = self.clone();
        vec![tokio::spawn(async move { me.run(shutdown).await })]
    }

    /// One loop claims what the free delivery slots can take, in one
    /// statement, and delivers each row in a task of its own. Claimed rows
    /// have distinct ordering keys (an older pending row holds its key back),
    /// so delivering them at once keeps every key's order.
    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.cfg.workers.max(1)));
        let finished = Arc::new(Notify::new());
        let mut deliveries = tokio::task::JoinSet::new();
        while !shutdown.is_cancelled() {
            while deliveries.try_join_next().is_some() {}
            let pause = self.paused_until.load(Ordering::Relaxed) - self.clock.now().timestamp_millis();
            if pause > 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(u64::try_from(pause).unwrap_or(0))) => {}
                }
            }
            let free = i64::try_from(slots.available_permits()).unwrap_or(0).min(self.cfg.batch);
            let claimed = if free > 0 { self.claim(free).await } else { Vec::new() };
            // Fewer rows than asked for: nothing else was claimable, so wait for a
            // new row, a finished delivery (its key's next row) or the poll.
            let more = i64::try_from(claimed.len()).unwrap_or(0) == free;
            if !claimed.is_empty() {
                for job in claimed {
                    // A slot is free for each row: only this loop takes them.
                    let Ok(permit) = slots.clone().acquire_owned().await else { break };
                    let (me, finished) = (self.clone(), finished.clone());
                    deliveries.spawn(async move {
                        if let Err(e) = me.execute(&job).await {
                            tracing::warn!(job = job.id, error = %e, "outbox: recording an outcome failed");
                        }
                        drop(permit);
                        finished.notify_one();
                    });
                }
                if more {
                    continue;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = finished.notified() => {}
                _ = tokio::time::sleep(self.cfg.poll) => {}
            }
        }
        while deliveries.join_next().await.is_some() {}
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

/// Attempts to record a row's outcome before giving up (50 ms, doubling: 750 ms in all).
const FINISH_RETRIES: usize = 4;
