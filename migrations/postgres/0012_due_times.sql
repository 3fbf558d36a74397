-- When the jobs loop next has work on a row, so that it reads only what is due
-- (reminders, escalation, expiry; access-ending warnings and revocation)
-- instead of every pending request on every pass. NULL: nothing due.
ALTER TABLE requests ADD COLUMN due TIMESTAMPTZ;
CREATE INDEX requests_due ON requests (due) WHERE due IS NOT NULL;
-- Rows written before this column: due at once, the next pass sets the real time.
UPDATE requests SET due = TIMESTAMPTZ 'epoch' WHERE status = 'PENDING';

ALTER TABLE assignments ADD COLUMN due TIMESTAMPTZ;
UPDATE assignments SET due = CASE
        WHEN warned_hour THEN expires
        WHEN warned_day THEN expires - INTERVAL '1 hour'
        ELSE expires - INTERVAL '1 day'
    END
    WHERE expires IS NOT NULL;
CREATE INDEX assignments_due ON assignments (due) WHERE due IS NOT NULL;
