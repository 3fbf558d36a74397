//! In-memory caches in front of the identities table: who a chat user is and
//! whether they opened the App Home are read for nearly every command and
//! notice, and change seldom.
//!
//! Entries live for [`IDENTITY_TTL`] and [`HOME_TTL`]: a change another
//! replica makes (a resolution, a DM channel, an Okta id, a Home opened) is
//! seen here within that; until then this replica asks the directory once
//! more, opens a DM channel it could have reused, or leaves a Home opened
//! through the other replica unrefreshed. A write through this replica
//! replaces or drops its entry at once.

use std::future::Future;
use std::time::Duration;

use moka::sync::Cache;

use crate::workflow::ports::{Identity, StoreError};

/// How long another replica's change to a known identity (a DM channel, an
/// email, an Okta id) may go unseen here.
pub const IDENTITY_TTL: Duration = Duration::from_secs(60);
/// How long an App Home opened through another replica may go unrefreshed by this one.
pub const HOME_TTL: Duration = Duration::from_secs(30);
/// Entries kept at most, per cache.
const CAPACITY: u64 = 100_000;

pub(super) struct Caches {
    identities: Cache<String, Identity>,
    home: Cache<String, bool>,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            identities: Cache::builder().max_capacity(CAPACITY).time_to_live(IDENTITY_TTL).build(),
            home: Cache::builder().max_capacity(CAPACITY).time_to_live(HOME_TTL).build(),
        }
    }
}

impl Caches {
    /// The cached identity, else `read`'s answer (cached when there is one).
    pub async fn identity<F, Fut>(&self, user_id: &str, read: F) -> Result<Option<Identity>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Identity>, StoreError>>,
    {
        if let Some(i) = self.identities.get(user_id) {
            return Ok(Some(i));
        }
        let found = read().await?;
        if let Some(i) = &found {
            self.identities.insert(user_id.to_string(), i.clone());
        }
        Ok(found)
    }

    /// `write` merges fields into the stored row: the entry is dropped before
    /// and after, so the next read sees the merge.
    pub async fn save_identity<F, Fut>(&self, user_id: &str, write: F) -> Result<(), StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        self.identities.invalidate(user_id);
        let result = write().await;
        self.identities.invalidate(user_id);
        result
    }

    pub async fn home_opened<F, Fut>(&self, user_id: &str, read: F) -> Result<bool, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<bool, StoreError>>,
    {
        if let Some(opened) = self.home.get(user_id) {
            return Ok(opened);
        }
        let opened = read().await?;
        self.home.insert(user_id.to_string(), opened);
        Ok(opened)
    }

    pub fn home_was_opened(&self, user_id: &str) {
        self.home.insert(user_id.to_string(), true);
    }
}
