//! The writes a [`Changeset`] makes, planned once for both backends with the
//! conflict rules; each store only spells them in its SQL dialect.

use chrono::Utc;

use crate::workflow::model::{
    Assignment, AssignmentChange, AssignmentSource, Changeset, DelegationChange, LogEvent, Request, Timestamp,
};
use crate::workflow::ports::{notice_item, OutboxItem, StoreError};

/// Everything one `commit` writes, in the order it is written, in one transaction.
pub(super) struct Plan<'a> {
    /// When the outbox rows are due: the command's clock, from its first event.
    pub now: Timestamp,
    pub request: Option<RequestWrite<'a>>,
    pub assignment: Option<AssignmentWrite<'a>>,
    pub delegation: Option<&'a DelegationChange>,
    pub events: &'a [LogEvent],
    pub jobs: Vec<OutboxItem>,
}

/// The request row and its current approvers.
pub(super) struct RequestWrite<'a> {
    pub req: &'a Request,
    pub grant: Option<&'static str>,
    /// A new row (version 0, stored as 1): a unique violation is [`StoreError::DuplicateOpen`].
    /// Otherwise an update guarded by `req.version` (see [`one_row`]) that replaces the approvers.
    pub insert: bool,
    /// The current step's approvers while the request is open; duplicates are ignored.
    pub approvers: Vec<&'a str>,
    /// When the jobs loop next has work on it (open requests only).
    pub due: Option<Timestamp>,
}

/// The assignment change; every variant but `Upsert` must hit exactly one row ([`one_row`]).
pub(super) enum AssignmentWrite<'a> {
    Upsert {
        assignment: &'a Assignment,
        source: &'static str,
    },
    Delete {
        user_id: &'a str,
        app_id: &'a str,
    },
    /// Sets `column` (false before) on one assignment, and when it is next due.
    Warn {
        user_id: &'a str,
        app_id: &'a str,
        column: &'static str,
        due: Option<Timestamp>,
    },
}

impl<'a> Plan<'a> {
    pub fn of(cs: &'a Changeset) -> Result<Plan<'a>, StoreError> {
        Ok(Plan {
            now: cs.events.first().map(|e| e.published).unwrap_or_else(Utc::now),
            request: cs.request.as_ref().map(RequestWrite::of),
            assignment: cs.assignment.as_ref().map(AssignmentWrite::of),
            delegation: cs.delegation.as_ref(),
            events: &cs.events,
            jobs: cs.notices.iter().map(notice_item).collect::<Result<_, _>>()?,
        })
    }
}

impl<'a> RequestWrite<'a> {
    fn of(req: &'a Request) -> RequestWrite<'a> {
        let approvers = match req.current() {
            Some(step) if req.status.is_open() => step.approvers.iter().map(|p| p.key()).collect(),
            _ => Vec::new(),
        };
        let due = req.due.filter(|_| req.status.is_open());
        RequestWrite { req, grant: req.grant_status.map(|g| g.as_str()), insert: req.version == 0, approvers, due }
    }
}

impl<'a> AssignmentWrite<'a> {
    /// The (user, app) row it writes.
    pub fn key(&self) -> (&'a str, &'a str) {
        match *self {
            AssignmentWrite::Upsert { assignment, .. } => (&assignment.user_id, &assignment.app_id),
            AssignmentWrite::Delete { user_id, app_id } | AssignmentWrite::Warn { user_id, app_id, .. } => {
                (user_id, app_id)
            }
        }
    }

    fn of(change: &'a AssignmentChange) -> AssignmentWrite<'a> {
        match change {
            AssignmentChange::Grant(a) => AssignmentWrite::Upsert { assignment: a, source: source_str(a.source) },
            AssignmentChange::Revoke { user_id, app_id } => AssignmentWrite::Delete { user_id, app_id },
            AssignmentChange::Warned { user_id, app_id, hour, due } => {
                let column = if *hour { "warned_hour" } else { "warned_day" };
                AssignmentWrite::Warn { user_id, app_id, column, due: *due }
            }
        }
    }
}

/// A guarded write that missed its row: the state moved since it was read.
pub(super) fn one_row(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

pub(super) fn source_str(s: AssignmentSource) -> &'static str {
    match s {
        AssignmentSource::Workflow => "workflow",
        AssignmentSource::Override => "override",
        AssignmentSource::Direct => "direct",
    }
}

pub(super) fn parse_source(s: &str) -> AssignmentSource {
    match s {
        "override" => AssignmentSource::Override,
        "direct" => AssignmentSource::Direct,
        _ => AssignmentSource::Workflow,
    }
}
