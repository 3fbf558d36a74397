//! In-memory caches in front of the identities table: who a chat user is
//! (by user id and by email) and whether they opened the App Home are read for
//! nearly every command and notice, and change seldom.
//!
//! Entries live for [`IDENTITY_TTL`] and [`HOME_TTL`]: a change another
//! replica makes (a resolution, a DM channel, an Okta id, a Home opened, a
//! person it saw first) is seen here within that; until then this replica asks
//! the directory once more, opens a DM channel it could have reused, or leaves
//! a Home opened through the other replica unrefreshed. "No such row" is
//! cached too. A write through this replica updates its entries at once: the
//! row it merged into is known, so the merge is applied to the entry, the
//! same way the store's upsert applies it to the row.

use std::future::Future;
use std::time::Duration;

use moka::sync::Cache;

use crate::workflow::ports::{Identity, StoreError};

/// How long another replica's change to an identity (a DM channel, an email,
/// an Okta id, a new row) may go unseen here.
pub const IDENTITY_TTL: Duration = Duration::from_secs(60);
/// How long an App Home opened through another replica may go unrefreshed by this one.
pub const HOME_TTL: Duration = Duration::from_secs(30);
/// Entries kept at most, per cache.
const CAPACITY: u64 = 100_000;

pub(super) struct Caches {
    identities: Cache<String, Option<Identity>>,
    by_email: Cache<String, Option<Identity>>,
    home: Cache<String, bool>,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            identities: Cache::builder().max_capacity(CAPACITY).time_to_live(IDENTITY_TTL).build(),
            by_email: Cache::builder().max_capacity(CAPACITY).time_to_live(IDENTITY_TTL).build(),
            home: Cache::builder().max_capacity(CAPACITY).time_to_live(HOME_TTL).build(),
        }
    }
}

/// What the store's upsert makes of `stored` when `new` is saved over it
/// (`save_identity` in both backends).
pub(super) fn merged(stored: Option<Identity>, new: &Identity) -> Identity {
    let new_email = new.email.as_ref().map(|e| e.to_ascii_lowercase());
    match stored {
        None => Identity { email: new_email, ..new.clone() },
        Some(old) => Identity {
            user_id: old.user_id,
            resolved: old.resolved || new.resolved,
            okta_id: old.okta_id.or_else(|| new.okta_id.clone()),
            email: new_email.or(old.email),
            name: new.name.clone().or(old.name),
            dm_channel: new.dm_channel.clone().or(old.dm_channel),
        },
    }
}

impl Caches {
    /// The cached identity, else `read`'s answer (the row, and whether its
    /// user opened the Home), cached either way.
    pub async fn identity<F, Fut>(&self, user_id: &str, read: F) -> Result<Option<Identity>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(Identity, bool)>, StoreError>>,
    {
        if let Some(known) = self.identities.get(user_id) {
            return Ok(known);
        }
        let found = read().await?;
        let home_opened = found.as_ref().is_some_and(|(_, opened)| *opened);
        let found = found.map(|(i, _)| i);
        self.identities.insert(user_id.to_string(), found.clone());
        // A Home opened while this read was under way stays opened.
        self.home.entry(user_id.to_string()).or_insert(home_opened);
        Ok(found)
    }

    /// The identity cached for `email` (lower case), else `read`'s answer, cached either way.
    pub async fn identity_by_email<F, Fut>(&self, email: &str, read: F) -> Result<Option<Identity>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Identity>, StoreError>>,
    {
        if let Some(known) = self.by_email.get(email) {
            return Ok(known);
        }
        let found = read().await?;
        self.by_email.insert(email.to_string(), found.clone());
        Ok(found)
    }

    /// `write` merges `new` into the stored row. The entry becomes the merge
    /// when the row was known here; otherwise it is dropped, and the next read
    /// reads the row.
    pub async fn save_identity<F, Fut>(&self, new: &Identity, write: F) -> Result<(), StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let known = self.identities.remove(&new.user_id);
        let result = write().await;
        // Entries under the old and the new email may name this user.
        let old_email = known.as_ref().and_then(|k| k.as_ref()).and_then(|i| i.email.clone());
        for email in old_email.into_iter().chain(new.email.as_ref().map(|e| e.to_ascii_lowercase())) {
            self.by_email.invalidate(&email);
        }
        match (&result, known) {
            (Ok(()), Some(stored)) => self.identities.insert(new.user_id.clone(), Some(merged(stored, new))),
            _ => self.identities.invalidate(&new.user_id),
        }
        result
    }

    /// A person's first row, when this replica just read that there is none
    /// (a new requester): the entry becomes the row and `queue` only queues
    /// the write. None otherwise: the caller writes and waits
    /// ([`Caches::save_identity`]).
    pub fn save_new_identity(
        &self,
        new: &Identity,
        queue: impl FnOnce() -> Result<(), StoreError>,
    ) -> Option<Result<(), StoreError>> {
        if !matches!(self.identities.get(&new.user_id), Some(None)) {
            return None;
        }
        let result = queue();
        if let Some(email) = &new.email {
            self.by_email.invalidate(&email.to_ascii_lowercase());
        }
        match result {
            Ok(()) => self.identities.insert(new.user_id.clone(), Some(merged(None, new))),
            Err(_) => self.identities.invalidate(&new.user_id),
        }
        Some(result)
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

    /// The Home write creates the identities row when there was none.
    pub fn home_was_opened(&self, user_id: &str) {
        self.home.insert(user_id.to_string(), true);
        if matches!(self.identities.get(user_id), Some(None)) {
            self.identities.invalidate(user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(email: Option<&str>, dm: Option<&str>, okta: Option<&str>) -> Identity {
        Identity {
            user_id: "U1".into(),
            email: email.map(str::to_string),
            name: None,
            dm_channel: dm.map(str::to_string),
            resolved: email.is_some(),
            okta_id: okta.map(str::to_string),
        }
    }

    #[test]
    fn the_merge_is_the_upserts() {
        let new = who(Some("Ann@Example.com"), None, None);
        assert_eq!(merged(None, &new).email.as_deref(), Some("ann@example.com"));
        let stored = who(Some("ann@example.com"), Some("D1"), Some("00u1"));
        let got = merged(Some(stored), &who(None, Some("D2"), Some("00u2")));
        assert_eq!(got, Identity { dm_channel: Some("D2".into()), ..who(Some("ann@example.com"), None, Some("00u1")) });
    }
}
