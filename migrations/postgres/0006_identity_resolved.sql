-- Whether the directory has said who a chat user is (their email, or that
-- they have none). A request waits (SUBMITTED) until its people are resolved.
ALTER TABLE identities ADD COLUMN resolved BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE identities SET resolved = TRUE WHERE email IS NOT NULL OR name IS NOT NULL;
