//! What the SQLite writer keeps in memory beside its writes, so that the
//! reads nearly every command makes need no trip to the writer thread (each
//! trip wakes that thread and then the caller: two context switches, the
//! larger part of a request's cost at low load). One process owns a SQLite
//! file and every write goes through the writer, so the writer can keep these
//! in commit order.
//!
//! The open requests and the known people are kept as "may be": every key
//! that is there, and perhaps a few that are not (a write that failed, a
//! commit whose outcome is unknown), added before the write that may create
//! it is written (open pairs) or queued (people), and dropped only after a
//! commit that ends it. A key that is not here has no row, and the store
//! answers "none" without a read; a key that is here is read. Both are read
//! whole when the writer starts: some 100 bytes a person and an open request.

use std::collections::{HashMap, HashSet};
use std::sync::{OnceLock, RwLock};

use rusqlite::Connection;

use super::batch::Write;
use super::sqlite_writer::{delegation_of, query, time};
use super::Statements;
use crate::workflow::model::{Delegation, DelegationChange, Timestamp};
use crate::workflow::ports::{Handoff, StoreError};

/// What the writer thread keeps up to date for the store beside its writes.
#[derive(Default)]
pub(super) struct Shared {
    /// Where commits hand the outbox rows they claim, once the outbox runs.
    pub handoff: OnceLock<Handoff>,
    pub delegations: Delegations,
    pub open: OpenRequests,
    pub people: KnownPeople,
}

impl Shared {
    /// Reads the open requests and the known people (on the writer connection,
    /// before its first write); on an error both stay unknown and every
    /// question is read from the database.
    pub fn load(&self, conn: &Connection, n: &Statements) {
        if let Err(e) = self.open.load(conn, n).and_then(|()| self.people.load(conn, n)) {
            tracing::warn!(error = %e, "reading the open requests and known people into memory");
            self.open.0.write().map(|mut m| *m = None).ok();
            self.people.0.write().map(|mut m| *m = None).ok();
        }
    }

    /// Before a batch is written: the open pairs it may create.
    pub fn writing(&self, writes: &[Write]) {
        self.open.writing(writes);
    }

    /// After a batch: what it changed, when it committed; when whether it
    /// did is unknown, the delegations are read again at the next question.
    pub fn written(&self, writes: &[Write], committed: Option<bool>) {
        match committed {
            Some(true) => {
                self.delegations.committed(writes);
                self.open.committed(writes);
            }
            Some(false) => {}
            None => self.delegations.set(None),
        }
    }
}

/// The delegations, read without a trip to the writer: this process writes
/// them all, and the writer updates this copy in commit order, before it
/// answers the commit.
#[derive(Default)]
pub(super) struct Delegations(RwLock<Option<Vec<Delegation>>>);

impl Delegations {
    /// Those of any of `people` (chat ids or emails) that last past `now`; None until loaded.
    pub fn of(&self, people: &[String], now: Timestamp) -> Option<Vec<Delegation>> {
        let all = self.0.read().ok()?;
        let found = all.as_ref()?.iter().filter(|d| d.until > now).filter(|d| {
            people.iter().any(|p| *p == d.user_id || d.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(p)))
        });
        Some(found.cloned().collect())
    }

    /// Reads every delegation that lasts past `now` (on the writer connection).
    pub fn load(&self, conn: &Connection, n: &Statements, now: Timestamp) -> Result<(), StoreError> {
        let all = query(
            conn,
            n,
            "SELECT user_id, email, delegate, until, created FROM delegations WHERE until > ?",
            &[time(now)],
            delegation_of,
        )?;
        self.set(Some(all));
        Ok(())
    }

    fn set(&self, all: Option<Vec<Delegation>>) {
        if let Ok(mut held) = self.0.write() {
            *held = all;
        }
    }

    fn committed(&self, writes: &[Write]) {
        let mut changes = writes.iter().filter_map(|w| match w {
            Write::Commit(cs) => cs.delegation.as_ref(),
            _ => None,
        });
        // Nearly every commit changes none: no lock for those.
        let Some(first) = changes.next() else { return };
        let Ok(mut held) = self.0.write() else { return };
        let Some(all) = held.as_mut() else { return };
        for change in std::iter::once(first).chain(changes) {
            match change {
                DelegationChange::Set(d) => {
                    all.retain(|x| x.user_id != d.user_id);
                    all.push(d.clone());
                }
                DelegationChange::Remove { user_id } => all.retain(|x| x.user_id != *user_id),
            }
        }
    }
}

/// The (beneficiary, app) pairs that may have an open request, each with the
/// id of the request last opened for it (so that closing an older one leaves
/// a newer one's pair in place).
#[derive(Default)]
pub(super) struct OpenRequests(RwLock<Option<HashMap<String, String>>>);

fn pair(user_id: &str, app_id: &str) -> String {
    format!("{user_id}\u{0}{app_id}")
}

impl OpenRequests {
    /// Whether `user_id` may have an open request for `app_id`; None until loaded.
    pub fn may_have(&self, user_id: &str, app_id: &str) -> Option<bool> {
        let held = self.0.read().ok()?;
        Some(held.as_ref()?.contains_key(&pair(user_id, app_id)))
    }

    /// A read on the writer thread found no open request for the pair: no
    /// write can have added one since (writes run on the same thread).
    pub fn none_for(&self, user_id: &str, app_id: &str) {
        if let Ok(mut held) = self.0.write() {
            if let Some(all) = held.as_mut() {
                all.remove(&pair(user_id, app_id));
            }
        }
    }

    fn load(&self, conn: &Connection, n: &Statements) -> Result<(), StoreError> {
        let rows = query(
            conn,
            n,
            "SELECT requested_for, app_id, id FROM requests WHERE status IN ('SUBMITTED', 'PENDING')",
            &[],
            |r| Ok((pair(&r.get::<_, String>(0)?, &r.get::<_, String>(1)?), r.get::<_, String>(2)?)),
        )?;
        if let Ok(mut held) = self.0.write() {
            *held = Some(rows.into_iter().collect());
        }
        Ok(())
    }

    fn requests(writes: &[Write]) -> impl Iterator<Item = &crate::workflow::model::Request> {
        writes.iter().filter_map(|w| match w {
            Write::Commit(cs) => cs.request.as_ref(),
            _ => None,
        })
    }

    fn writing(&self, writes: &[Write]) {
        let mut opening = Self::requests(writes).filter(|r| r.status.is_open()).peekable();
        if opening.peek().is_none() {
            return;
        }
        let Ok(mut held) = self.0.write() else { return };
        let Some(all) = held.as_mut() else { return };
        for r in opening {
            all.insert(pair(&r.requested_for.id, &r.app_id), r.id.clone());
        }
    }

    fn committed(&self, writes: &[Write]) {
        let mut closed = Self::requests(writes).filter(|r| !r.status.is_open()).peekable();
        if closed.peek().is_none() {
            return;
        }
        let Ok(mut held) = self.0.write() else { return };
        let Some(all) = held.as_mut() else { return };
        for r in closed {
            let key = pair(&r.requested_for.id, &r.app_id);
            if all.get(&key) == Some(&r.id) {
                all.remove(&key);
            }
        }
    }
}

/// The chat user ids that may have an identities row (rows are never
/// deleted), added by the store before it queues a write that may create one.
#[derive(Default)]
pub(super) struct KnownPeople(RwLock<Option<HashSet<String>>>);

impl KnownPeople {
    /// Whether `user_id` may have a row; None until loaded.
    pub fn may_have(&self, user_id: &str) -> Option<bool> {
        let held = self.0.read().ok()?;
        Some(held.as_ref()?.contains(user_id))
    }

    fn load(&self, conn: &Connection, n: &Statements) -> Result<(), StoreError> {
        let rows = query(conn, n, "SELECT user_id FROM identities", &[], |r| r.get::<_, String>(0))?;
        if let Ok(mut held) = self.0.write() {
            *held = Some(rows.into_iter().collect());
        }
        Ok(())
    }

    /// Before the write that may create their row is queued.
    pub fn add(&self, user_id: &str) {
        let Ok(mut held) = self.0.write() else { return };
        if let Some(all) = held.as_mut() {
            if !all.contains(user_id) {
                all.insert(user_id.to_string());
            }
        }
    }
}
