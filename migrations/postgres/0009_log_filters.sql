-- System-log fields that `/api/v1/logs` filters on, read from the event body.
ALTER TABLE system_log
    ADD COLUMN severity TEXT GENERATED ALWAYS AS (body->>'severity') STORED,
    ADD COLUMN display_message TEXT GENERATED ALWAYS AS (body->>'displayMessage') STORED,
    ADD COLUMN outcome_result TEXT GENERATED ALWAYS AS (body->'outcome'->>'result') STORED,
    ADD COLUMN outcome_reason TEXT GENERATED ALWAYS AS (body->'outcome'->>'reason') STORED,
    ADD COLUMN actor_type TEXT GENERATED ALWAYS AS (body->'actor'->>'type') STORED,
    ADD COLUMN actor_alternate_id TEXT GENERATED ALWAYS AS (body->'actor'->>'alternateId') STORED,
    ADD COLUMN actor_display_name TEXT GENERATED ALWAYS AS (body->'actor'->>'displayName') STORED;
CREATE INDEX system_log_severity ON system_log (severity, seq);
CREATE INDEX system_log_outcome ON system_log (outcome_result, seq);

-- Targets' other fields, for `target.type`, `target.alternateId`, `target.displayName`.
ALTER TABLE system_log_targets
    ADD COLUMN target_type TEXT,
    ADD COLUMN alternate_id TEXT,
    ADD COLUMN display_name TEXT;
UPDATE system_log_targets s
    SET target_type = t->>'type', alternate_id = t->>'alternateId', display_name = t->>'displayName'
    FROM system_log l, jsonb_array_elements(l.body->'target') AS t
    WHERE l.seq = s.seq AND t->>'id' = s.target_id;
CREATE INDEX system_log_targets_type ON system_log_targets (target_type, seq);
