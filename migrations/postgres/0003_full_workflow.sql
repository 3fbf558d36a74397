-- Users who opened the App Home get it republished when their requests change.
ALTER TABLE identities ADD COLUMN home_opened BOOLEAN NOT NULL DEFAULT FALSE;
-- Time-bound access: which warnings went out.
ALTER TABLE assignments ADD COLUMN warned_day BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE assignments ADD COLUMN warned_hour BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX assignments_expires ON assignments (expires) WHERE expires IS NOT NULL;
