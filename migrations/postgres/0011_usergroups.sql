-- Slack user groups' members as last read (usergroups.users.list), shared by
-- every replica: a change one replica reads, all of them see.
CREATE TABLE usergroups (
    id TEXT PRIMARY KEY,
    -- JSON array of Slack user ids, sorted.
    members JSONB NOT NULL,
    version BIGINT NOT NULL,
    updated TIMESTAMPTZ NOT NULL
);
