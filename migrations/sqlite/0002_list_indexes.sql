-- Targets of system-log events, for `target.id eq "…"` filters.
CREATE TABLE system_log_targets (
    seq       INTEGER NOT NULL,
    target_id TEXT NOT NULL,
    PRIMARY KEY (target_id, seq)
);
INSERT OR IGNORE INTO system_log_targets (seq, target_id)
    SELECT system_log.seq, json_extract(t.value, '$.id') FROM system_log, json_each(system_log.body, '$.target') AS t
    WHERE json_extract(t.value, '$.id') IS NOT NULL;
CREATE INDEX system_log_actor ON system_log (actor_id, seq);

-- Keyset pages of filtered request lists.
CREATE INDEX requests_status_created ON requests (status, created, id);
CREATE INDEX requests_app_created ON requests (app_id, created, id);
CREATE INDEX requests_by_created ON requests (requested_by, created, id);
