-- Targets of system-log events, for `target.id eq "…"` filters.
CREATE TABLE system_log_targets (
    seq       BIGINT NOT NULL,
    target_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (target_id, seq)
);
INSERT INTO system_log_targets (seq, target_id)
    SELECT l.seq, t->>'id' FROM system_log l, jsonb_array_elements(l.body->'target') AS t
    WHERE t->>'id' IS NOT NULL
    ON CONFLICT DO NOTHING;
CREATE INDEX system_log_actor ON system_log (actor_id, seq);

-- Keyset pages of filtered request lists.
CREATE INDEX requests_status_created ON requests (status, created, id);
CREATE INDEX requests_app_created ON requests (app_id, created, id);
CREATE INDEX requests_by_created ON requests (requested_by, created, id);
