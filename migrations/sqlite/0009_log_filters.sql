-- System-log fields that `/api/v1/logs` filters on, read from the event body.
ALTER TABLE system_log ADD COLUMN severity TEXT GENERATED ALWAYS AS (json_extract(body, '$.severity')) VIRTUAL;
ALTER TABLE system_log ADD COLUMN display_message TEXT GENERATED ALWAYS AS (json_extract(body, '$.displayMessage')) VIRTUAL;
ALTER TABLE system_log ADD COLUMN outcome_result TEXT GENERATED ALWAYS AS (json_extract(body, '$.outcome.result')) VIRTUAL;
ALTER TABLE system_log ADD COLUMN outcome_reason TEXT GENERATED ALWAYS AS (json_extract(body, '$.outcome.reason')) VIRTUAL;
ALTER TABLE system_log ADD COLUMN actor_type TEXT GENERATED ALWAYS AS (json_extract(body, '$.actor.type')) VIRTUAL;
ALTER TABLE system_log ADD COLUMN actor_alternate_id TEXT GENERATED ALWAYS AS (json_extract(body, '$.actor.alternateId')) VIRTUAL;
ALTER TABLE system_log ADD COLUMN actor_display_name TEXT GENERATED ALWAYS AS (json_extract(body, '$.actor.displayName')) VIRTUAL;
CREATE INDEX system_log_severity ON system_log (severity, seq);
CREATE INDEX system_log_outcome ON system_log (outcome_result, seq);

-- Targets' other fields, for `target.type`, `target.alternateId`, `target.displayName`.
ALTER TABLE system_log_targets ADD COLUMN target_type TEXT;
ALTER TABLE system_log_targets ADD COLUMN alternate_id TEXT;
ALTER TABLE system_log_targets ADD COLUMN display_name TEXT;
UPDATE system_log_targets SET
    target_type = (SELECT json_extract(t.value, '$.type') FROM system_log l, json_each(l.body, '$.target') AS t
                   WHERE l.seq = system_log_targets.seq AND json_extract(t.value, '$.id') = system_log_targets.target_id LIMIT 1),
    alternate_id = (SELECT json_extract(t.value, '$.alternateId') FROM system_log l, json_each(l.body, '$.target') AS t
                   WHERE l.seq = system_log_targets.seq AND json_extract(t.value, '$.id') = system_log_targets.target_id LIMIT 1),
    display_name = (SELECT json_extract(t.value, '$.displayName') FROM system_log l, json_each(l.body, '$.target') AS t
                   WHERE l.seq = system_log_targets.seq AND json_extract(t.value, '$.id') = system_log_targets.target_id LIMIT 1);
CREATE INDEX system_log_targets_type ON system_log_targets (target_type, seq);
