-- Requests: the aggregate (with its steps) as JSON in `body`; the columns
-- beside it exist for lookups, uniqueness and optimistic concurrency.
CREATE TABLE requests (
    id            TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_for TEXT NOT NULL,
    status        TEXT NOT NULL,
    grant_status  TEXT,
    created       INTEGER NOT NULL,
    last_updated  INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    body          TEXT NOT NULL
);
-- One open request per (user, app): a racing second insert fails here.
CREATE UNIQUE INDEX requests_one_open ON requests (requested_for, app_id)
    WHERE status IN ('SUBMITTED', 'PENDING');
CREATE INDEX requests_status_updated ON requests (status, last_updated, id);
CREATE INDEX requests_for_created ON requests (requested_for, created);
CREATE INDEX requests_created ON requests (created, id);
CREATE INDEX requests_updated ON requests (last_updated, id);

-- Approvers of each open request's current step, for "my tasks".
CREATE TABLE current_approvers (
    person     TEXT NOT NULL,
    request_id TEXT NOT NULL,
    PRIMARY KEY (person, request_id)
);
CREATE INDEX current_approvers_request ON current_approvers (request_id);

CREATE TABLE assignments (
    user_id    TEXT NOT NULL,
    app_id     TEXT NOT NULL,
    request_id TEXT,
    source     TEXT NOT NULL,
    granted    INTEGER NOT NULL,
    expires    INTEGER,
    PRIMARY KEY (user_id, app_id)
);

CREATE TABLE system_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid       TEXT NOT NULL UNIQUE,
    published  INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    request_id TEXT,
    actor_id   TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX system_log_request ON system_log (request_id, seq);
CREATE INDEX system_log_type ON system_log (event_type, seq);
CREATE INDEX system_log_published ON system_log (published, seq);
CREATE TRIGGER system_log_no_update BEFORE UPDATE ON system_log
BEGIN SELECT RAISE(ABORT, 'system_log is append-only'); END;
CREATE TRIGGER system_log_no_delete BEFORE DELETE ON system_log
BEGIN SELECT RAISE(ABORT, 'system_log is append-only'); END;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    ordering_key    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    deadline        INTEGER,
    last_error      TEXT,
    created         INTEGER NOT NULL,
    finished        INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at, id);
CREATE INDEX outbox_key ON outbox (ordering_key, status, id);

CREATE TABLE slack_messages (
    request_id TEXT NOT NULL,
    step       INTEGER NOT NULL,
    recipient  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    ts         TEXT NOT NULL,
    PRIMARY KEY (channel, ts)
);
CREATE INDEX slack_messages_step ON slack_messages (request_id, step, recipient);

CREATE TABLE identities (
    user_id    TEXT PRIMARY KEY,
    email      TEXT,
    name       TEXT,
    dm_channel TEXT,
    updated    INTEGER NOT NULL
);
CREATE INDEX identities_email ON identities (email);
