-- PostgreSQL schema; the same tables, columns and indexes as
-- migrations/sqlite/0001_init.sql. Timestamps are TIMESTAMPTZ, JSON is JSONB.
-- Text that is sorted on (request ids, message timestamps) uses the "C"
-- collation so that ordering is bytewise, as in SQLite, whatever the locale.

-- Requests: the aggregate (with its steps) as JSON in `body`; the columns
-- beside it exist for lookups, uniqueness and optimistic concurrency.
CREATE TABLE requests (
    id            TEXT COLLATE "C" PRIMARY KEY,
    app_id        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_for TEXT NOT NULL,
    status        TEXT NOT NULL,
    grant_status  TEXT,
    created       TIMESTAMPTZ NOT NULL,
    last_updated  TIMESTAMPTZ NOT NULL,
    version       BIGINT NOT NULL,
    body          JSONB NOT NULL
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
    granted    TIMESTAMPTZ NOT NULL,
    expires    TIMESTAMPTZ,
    PRIMARY KEY (user_id, app_id)
);

CREATE TABLE system_log (
    seq        BIGSERIAL PRIMARY KEY,
    uuid       TEXT NOT NULL UNIQUE,
    published  TIMESTAMPTZ NOT NULL,
    event_type TEXT NOT NULL,
    request_id TEXT,
    actor_id   TEXT NOT NULL,
    body       JSONB NOT NULL
);
CREATE INDEX system_log_request ON system_log (request_id, seq);
CREATE INDEX system_log_type ON system_log (event_type, seq);
CREATE INDEX system_log_published ON system_log (published, seq);

-- The system log is append-only: UPDATE, DELETE and TRUNCATE are refused.
CREATE FUNCTION system_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'system_log is append-only';
END;
$$;
CREATE TRIGGER system_log_no_update BEFORE UPDATE ON system_log
    FOR EACH ROW EXECUTE FUNCTION system_log_append_only();
CREATE TRIGGER system_log_no_delete BEFORE DELETE ON system_log
    FOR EACH ROW EXECUTE FUNCTION system_log_append_only();
CREATE TRIGGER system_log_no_truncate BEFORE TRUNCATE ON system_log
    FOR EACH STATEMENT EXECUTE FUNCTION system_log_append_only();

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    ordering_key    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         JSONB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_until     TIMESTAMPTZ,
    deadline        TIMESTAMPTZ,
    last_error      TEXT,
    created         TIMESTAMPTZ NOT NULL,
    finished        TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at, id);
CREATE INDEX outbox_key ON outbox (ordering_key, status, id);

CREATE TABLE slack_messages (
    request_id TEXT NOT NULL,
    step       BIGINT NOT NULL,
    recipient  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    ts         TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (channel, ts)
);
CREATE INDEX slack_messages_step ON slack_messages (request_id, step, recipient);

CREATE TABLE identities (
    user_id    TEXT PRIMARY KEY,
    email      TEXT,
    name       TEXT,
    dm_channel TEXT,
    updated    TIMESTAMPTZ NOT NULL
);
CREATE INDEX identities_email ON identities (email);
