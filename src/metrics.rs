//! Process counters the edges bump. Exported in Prometheus format by `/metrics`
//! once that endpoint exists; for now they feed logs and tests.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    signature_rejections: AtomicU64,
}

impl Metrics {
    pub fn signature_rejected(&self) {
        self.signature_rejections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn signature_rejections(&self) -> u64 {
        self.signature_rejections.load(Ordering::Relaxed)
    }
}
