-- Slack user groups' members as last read (usergroups.users.list), shared by
-- every process on the database: a change one replica reads, all of them see.
CREATE TABLE usergroups (
    id TEXT PRIMARY KEY NOT NULL,
    -- JSON array of Slack user ids, sorted.
    members TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
