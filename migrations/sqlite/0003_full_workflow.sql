-- Users who opened the App Home get it republished when their requests change.
ALTER TABLE identities ADD COLUMN home_opened INTEGER NOT NULL DEFAULT 0;
-- Time-bound access: which warnings went out, and revocation state.
ALTER TABLE assignments ADD COLUMN warned_day INTEGER NOT NULL DEFAULT 0;
ALTER TABLE assignments ADD COLUMN warned_hour INTEGER NOT NULL DEFAULT 0;
CREATE INDEX assignments_expires ON assignments (expires) WHERE expires IS NOT NULL;
