-- When the jobs loop next has work on a row, so that it reads only what is due
-- (reminders, escalation, expiry; access-ending warnings and revocation)
-- instead of every pending request on every pass. NULL: nothing due.
ALTER TABLE requests ADD COLUMN due INTEGER;
CREATE INDEX requests_due ON requests (due) WHERE due IS NOT NULL;
-- Rows written before this column: due at once, the next pass sets the real time.
UPDATE requests SET due = 0 WHERE status = 'PENDING';

ALTER TABLE assignments ADD COLUMN due INTEGER;
UPDATE assignments SET due = CASE
        WHEN warned_hour = 1 THEN expires
        WHEN warned_day = 1 THEN expires - 3600000
        ELSE expires - 86400000
    END
    WHERE expires IS NOT NULL;
CREATE INDEX assignments_due ON assignments (due) WHERE due IS NOT NULL;
