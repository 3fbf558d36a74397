//! PostgreSQL: everything a batch adds — identities, new requests, current
//! approvers, grants, events and their targets, outbox rows, delivered rows
//! and the messages they posted — in one statement of data-modifying `WITH` parts,
//! however many writes share the batch. A statement per kind made a new
//! requester's batch seven round trips between the server and PostgreSQL
//! (BEGIN, five inserts, COMMIT), each a wake-up of both on a busy host; now
//! it is one (the batcher runs a batch that is only this statement without
//! a transaction around it: `postgres::one_statement`).
//!
//! The parts see one snapshot and none sees another's rows, so none may
//! depend on another's effects (the events' `seq` are drawn first, in a
//! part the insert and the targets both read), and no part may touch a row
//! twice: identities saved twice in a batch are merged first, as the upsert
//! would merge them one by one.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::postgres::PgArguments;
use sqlx::types::Json;
use sqlx::{Arguments, PgConnection, Postgres};

use super::batch::{lease_end, Job};
use super::cache::merged;
use super::plan::RequestWrite;
use super::postgres::GRANT_MERGE;
use super::{json, Db, Identity, MessageRef, StoreError, IDENTITY_MERGE};
use crate::workflow::model::{Assignment, LogEvent, Timestamp};

/// The statement being built: its parts and their bound values.
#[derive(Default)]
pub(super) struct Inserts {
    parts: Vec<String>,
    args: PgArguments,
    n: usize,
    /// Outbox rows were written claimed: the statement answers their ids.
    claimed: bool,
}

impl Inserts {
    /// Binds `v`; its placeholder.
    fn bind<'q, T: sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + 'q>(
        &mut self,
        v: T,
    ) -> Result<String, StoreError> {
        self.args.add(v).map_err(|e| StoreError::Database(e.to_string()))?;
        self.n += 1;
        Ok(format!("${}", self.n))
    }

    fn part(&mut self, name: &str, sql: String) {
        self.parts.push(format!("{name} AS ({sql})"));
    }

    /// Runs the statement (nothing when no part was added); the ids of the
    /// outbox rows it wrote claimed, in order.
    pub async fn run(self, db: &mut Db<'_, PgConnection>) -> Result<Vec<i64>, StoreError> {
        if self.parts.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.sql();
        let query = sqlx::query_scalar_with::<_, i64, _>(&sql, self.args);
        match self.claimed {
            true => query.fetch_all(db.ex()).await.map_err(unique_error),
            false => query.fetch_optional(db.ex()).await.map(|_| Vec::new()).map_err(unique_error),
        }
    }

    /// The statement's text.
    pub fn sql(&self) -> String {
        let answer = match self.claimed {
            true => "SELECT id FROM jobs WHERE attempts > 0 ORDER BY id",
            false => "SELECT 1::int8",
        };
        format!("WITH {} {answer}", self.parts.join(",\n"))
    }

    /// Identities, each merged into its row the way `save_identity` documents.
    pub fn identities(&mut self, saved: &[&Identity]) -> Result<(), StoreError> {
        if saved.is_empty() {
            return Ok(());
        }
        let mut order: Vec<&str> = Vec::new();
        let mut folded: HashMap<&str, Identity> = HashMap::new();
        for i in saved {
            let before = folded.remove(i.user_id.as_str());
            if before.is_none() {
                order.push(&i.user_id);
            }
            folded.insert(&i.user_id, merged(before, i));
        }
        let rows: Vec<&Identity> = order.iter().filter_map(|u| folded.get(u)).collect();
        let ids: Vec<&str> = rows.iter().map(|i| i.user_id.as_str()).collect();
        let emails: Vec<Option<&str>> = rows.iter().map(|i| i.email.as_deref()).collect();
        let names: Vec<Option<&str>> = rows.iter().map(|i| i.name.as_deref()).collect();
        let dms: Vec<Option<&str>> = rows.iter().map(|i| i.dm_channel.as_deref()).collect();
        let resolved: Vec<bool> = rows.iter().map(|i| i.resolved).collect();
        let okta: Vec<Option<&str>> = rows.iter().map(|i| i.okta_id.as_deref()).collect();
        let (u, e, n, d, r, o) = (
            self.bind(ids)?,
            self.bind(emails)?,
            self.bind(names)?,
            self.bind(dms)?,
            self.bind(resolved)?,
            self.bind(okta)?,
        );
        let now = self.bind(chrono::Utc::now())?;
        self.part(
            "identities",
            format!(
                "INSERT INTO identities (user_id, email, name, dm_channel, updated, resolved, okta_id)
                 SELECT u, e, n, d, {now}, r, o
                 FROM UNNEST({u}::text[], {e}::text[], {n}::text[], {d}::text[], {r}::bool[], {o}::text[]) AS x(u, e, n, d, r, o)
                 {IDENTITY_MERGE}"
            ),
        );
        Ok(())
    }

    /// New request rows (version 1).
    pub fn requests(&mut self, new: &[&RequestWrite<'_>]) -> Result<(), StoreError> {
        if new.is_empty() {
            return Ok(());
        }
        let bodies = new.iter().map(|w| json(w.req)).collect::<Result<Vec<_>, _>>()?;
        let p = [
            self.bind(new.iter().map(|w| w.req.id.as_str()).collect::<Vec<_>>())?,
            self.bind(new.iter().map(|w| w.req.app_id.as_str()).collect::<Vec<_>>())?,
            self.bind(new.iter().map(|w| w.req.requested_by.id.as_str()).collect::<Vec<_>>())?,
            self.bind(new.iter().map(|w| w.req.requested_for.id.as_str()).collect::<Vec<_>>())?,
            self.bind(new.iter().map(|w| w.req.status.as_str()).collect::<Vec<_>>())?,
            self.bind(new.iter().map(|w| w.grant).collect::<Vec<_>>())?,
            self.bind(new.iter().map(|w| w.req.created).collect::<Vec<_>>())?,
            self.bind(new.iter().map(|w| w.req.last_updated).collect::<Vec<_>>())?,
            self.bind(bodies)?,
            self.bind(new.iter().map(|w| w.due).collect::<Vec<_>>())?,
        ];
        self.part(
            "requests",
            format!(
                "INSERT INTO requests (id, app_id, requested_by, requested_for, status, grant_status, created, last_updated, version, body, due)
                 SELECT i, a, b, f, s, g, c, l, 1, j::json, d
                 FROM UNNEST({}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::timestamptz[],
                             {}::timestamptz[], {}::text[], {}::timestamptz[]) AS u(i, a, b, f, s, g, c, l, j, d)",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]
            ),
        );
        Ok(())
    }

    /// The current approvers of these requests (a changed request's old ones were deleted before).
    pub fn approvers(&mut self, writes: &[&RequestWrite<'_>]) -> Result<(), StoreError> {
        let (people, of): (Vec<&str>, Vec<&str>) =
            writes.iter().flat_map(|w| w.approvers.iter().map(|p| (*p, w.req.id.as_str()))).unzip();
        if people.is_empty() {
            return Ok(());
        }
        let (p, r) = (self.bind(people)?, self.bind(of)?);
        self.part(
            "approvers",
            format!(
                "INSERT INTO current_approvers (person, request_id) SELECT * FROM UNNEST({p}::text[], {r}::text[])
                 ON CONFLICT DO NOTHING"
            ),
        );
        Ok(())
    }

    /// Access granted: each an upsert of its (user, app) row, the warnings
    /// of an earlier grant cleared ([`super::postgres`]'s `lone_grants`
    /// leaves each row to one grant).
    pub fn grants(&mut self, grants: &[(&Assignment, &str)]) -> Result<(), StoreError> {
        if grants.is_empty() {
            return Ok(());
        }
        let p = [
            self.bind(grants.iter().map(|(a, _)| a.user_id.as_str()).collect::<Vec<_>>())?,
            self.bind(grants.iter().map(|(a, _)| a.app_id.as_str()).collect::<Vec<_>>())?,
            self.bind(grants.iter().map(|(a, _)| a.request_id.as_deref()).collect::<Vec<_>>())?,
            self.bind(grants.iter().map(|(_, source)| *source).collect::<Vec<_>>())?,
            self.bind(grants.iter().map(|(a, _)| a.granted).collect::<Vec<_>>())?,
            self.bind(grants.iter().map(|(a, _)| a.expires).collect::<Vec<_>>())?,
            self.bind(grants.iter().map(|(a, _)| a.due()).collect::<Vec<_>>())?,
        ];
        self.part(
            "grants",
            format!(
                "INSERT INTO assignments (user_id, app_id, request_id, source, granted, expires, due)
                 SELECT * FROM UNNEST({}::text[], {}::text[], {}::text[], {}::text[], {}::timestamptz[],
                                      {}::timestamptz[], {}::timestamptz[])
                 {GRANT_MERGE}",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6]
            ),
        );
        Ok(())
    }

    /// Events in order and their targets. Each event's `seq` is drawn before
    /// the insert (`numbered`, in the events' order), so a target finds its
    /// event's by position in an array: joined to the insert's `RETURNING` by
    /// uuid instead, the join was a nested loop over the batch's events for
    /// each target (18,018 rows compared for 78 events at saturation; the
    /// writers' session has no hash joins), and joined to `system_log`, on a
    /// fresh table whose statistics still said "empty", it read the whole log.
    pub fn events(&mut self, events: &[&LogEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let targets: Vec<(i32, _)> =
            (1..).zip(events).flat_map(|(n, ev)| ev.target.iter().map(move |t| (n, t))).collect();
        let e = [
            self.bind(events.iter().map(|e| e.uuid.as_str()).collect::<Vec<_>>())?,
            self.bind(events.iter().map(|e| e.published).collect::<Vec<_>>())?,
            self.bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())?,
            self.bind(events.iter().map(|e| e.request_id.as_deref()).collect::<Vec<_>>())?,
            self.bind(events.iter().map(|e| e.actor.id.as_str()).collect::<Vec<_>>())?,
            self.bind(events.iter().map(|e| Json(*e)).collect::<Vec<_>>())?,
        ];
        self.part(
            "numbered",
            format!(
                "SELECT nextval('system_log_seq_seq') AS seq, u, p, t, r, a, b, n
                 FROM UNNEST({}::text[], {}::timestamptz[], {}::text[], {}::text[], {}::text[], {}::jsonb[])
                      WITH ORDINALITY AS e(u, p, t, r, a, b, n)
                 ORDER BY n",
                e[0], e[1], e[2], e[3], e[4], e[5]
            ),
        );
        self.part(
            "logged",
            "INSERT INTO system_log (seq, uuid, published, event_type, request_id, actor_id, body)
             SELECT seq, u, p, t, r, a, b FROM numbered ORDER BY n"
                .to_string(),
        );
        if targets.is_empty() {
            return Ok(());
        }
        let t = [
            self.bind(targets.iter().map(|(n, _)| *n).collect::<Vec<_>>())?,
            self.bind(targets.iter().map(|(_, t)| t.id.as_str()).collect::<Vec<_>>())?,
            self.bind(targets.iter().map(|(_, t)| t.kind.as_str()).collect::<Vec<_>>())?,
            self.bind(targets.iter().map(|(_, t)| t.alternate_id.as_deref()).collect::<Vec<_>>())?,
            self.bind(targets.iter().map(|(_, t)| t.display_name.as_deref()).collect::<Vec<_>>())?,
        ];
        self.part(
            "targets",
            format!(
                "INSERT INTO system_log_targets (seq, target_id, target_type, alternate_id, display_name)
                 SELECT (SELECT array_agg(seq ORDER BY n) FROM numbered)[t.n], t.id, t.kind, t.alt, t.name
                 FROM UNNEST({}::int[], {}::text[], {}::text[], {}::text[], {}::text[]) AS t(n, id, kind, alt, name)
                 ON CONFLICT DO NOTHING",
                t[0], t[1], t[2], t[3], t[4]
            ),
        );
        Ok(())
    }

    /// Outbox rows, each due at its time; they take ids in the slice's order,
    /// which per-key delivery order relies on. Those `claimed` marks (a
    /// hand-off's) are written leased for `lease`, and the statement answers
    /// their ids.
    pub fn jobs(&mut self, items: &[Job<'_>], claimed: &[bool], lease: Duration) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let is = |i: usize| claimed.get(i).copied().unwrap_or(false);
        self.claimed = (0..items.len()).any(is);
        let p = [
            self.bind(items.iter().map(|(i, _)| i.ordering_key.as_str()).collect::<Vec<_>>())?,
            self.bind(items.iter().map(|(i, _)| i.kind.as_str()).collect::<Vec<_>>())?,
            self.bind(items.iter().map(|(i, _)| Json(&i.payload)).collect::<Vec<_>>())?,
            self.bind(items.iter().map(|(i, _)| i.deadline).collect::<Vec<_>>())?,
            self.bind(items.iter().map(|(_, now)| *now).collect::<Vec<Timestamp>>())?,
            self.bind(
                items.iter().enumerate().map(|(i, (_, now))| is(i).then(|| lease_end(*now, lease))).collect::<Vec<_>>(),
            )?,
            self.bind((0..items.len()).map(|i| i32::from(is(i))).collect::<Vec<_>>())?,
        ];
        self.part(
            "jobs",
            format!(
                "INSERT INTO outbox (ordering_key, kind, payload, next_attempt_at, deadline, created, lease_until, attempts)
                 SELECT k, t, p, w, d, w, l, a
                 FROM UNNEST({}::text[], {}::text[], {}::jsonb[], {}::timestamptz[], {}::timestamptz[],
                             {}::timestamptz[], {}::int[])
                      WITH ORDINALITY AS u(k, t, p, d, w, l, a, n)
                 ORDER BY n
                 RETURNING id, attempts",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6]
            ),
        );
        Ok(())
    }

    /// Delivered outbox rows, finished at `now`.
    pub fn done(&mut self, ids: &[i64], now: Timestamp) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (at, ids) = (self.bind(now)?, self.bind(ids)?);
        self.part(
            "done",
            format!("UPDATE outbox SET status = 'done', lease_until = NULL, finished = {at} WHERE id = ANY({ids})"),
        );
        Ok(())
    }

    /// Messages the deliveries posted, for later updates.
    pub fn messages(&mut self, messages: &[&MessageRef]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let p = [
            self.bind(messages.iter().map(|m| m.request_id.as_str()).collect::<Vec<_>>())?,
            self.bind(messages.iter().map(|m| m.step).collect::<Vec<_>>())?,
            self.bind(messages.iter().map(|m| m.recipient.as_str()).collect::<Vec<_>>())?,
            self.bind(messages.iter().map(|m| m.channel.as_str()).collect::<Vec<_>>())?,
            self.bind(messages.iter().map(|m| m.ts.as_str()).collect::<Vec<_>>())?,
        ];
        self.part(
            "messages",
            format!(
                "INSERT INTO slack_messages (request_id, step, recipient, channel, ts)
                 SELECT * FROM UNNEST({}::text[], {}::bigint[], {}::text[], {}::text[], {}::text[])
                 ON CONFLICT DO NOTHING",
                p[0], p[1], p[2], p[3], p[4]
            ),
        );
        Ok(())
    }
}

/// A unique violation on `requests` is a second open request for the pair
/// (the id is random); any other is the database's error.
fn unique_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() && d.table() == Some("requests") => {
            StoreError::DuplicateOpen
        }
        _ => e.into(),
    }
}
