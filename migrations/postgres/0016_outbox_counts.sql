-- outbox_due (status, next_attempt_at, id) held every row ever queued, and each
-- delivery wrote a new entry for its row, but no query walked it: the claim walks
-- outbox_pending. The gauge's counts read the partial indexes and the primary key.
DROP INDEX IF EXISTS outbox_due;
CREATE INDEX IF NOT EXISTS outbox_failed ON outbox (id) WHERE status = 'failed';
