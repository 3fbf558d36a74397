-- Signed Slack requests already acted on, kept until their signature can no
-- longer verify; a replay within the window finds its row and has no effect.
CREATE TABLE request_replays (
    key TEXT PRIMARY KEY,
    expires TIMESTAMPTZ NOT NULL
);
CREATE INDEX request_replays_expires ON request_replays (expires);
