-- How long requests of each status took from `created` to `last_updated` (ms):
-- a row each time a status's longest span grows, so MAX(longest) per status is
-- the longest ever. A filter on lastUpdated > T then also bounds
-- created > T - longest, so a page in created order seeks into the index
-- instead of scanning every older row of the status. Kept by a trigger, so
-- every write path (and a script writing rows directly) keeps it exact.
-- Inserts only: with one row per status, two transactions growing two
-- statuses' spans in opposite orders deadlocked. A writer that sees a longer
-- span inserts nothing; that span's row is committed, so it is never missing.

-- Taken first (the ALTER below needs it anyway): a replica still running the
-- previous release must not write a request between the spans' first reading
-- and the trigger, or its span would be missing.
LOCK TABLE requests IN ACCESS EXCLUSIVE MODE;

CREATE TABLE request_spans (
    status  TEXT NOT NULL,
    longest BIGINT NOT NULL
);
CREATE INDEX request_spans_status ON request_spans (status, longest);

CREATE FUNCTION request_span_ms(created TIMESTAMPTZ, last_updated TIMESTAMPTZ) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CEIL((EXTRACT(EPOCH FROM last_updated) - EXTRACT(EPOCH FROM created)) * 1000)::BIGINT
$$;

INSERT INTO request_spans (status, longest)
    SELECT status, MAX(request_span_ms(created, last_updated)) FROM requests GROUP BY status;

CREATE FUNCTION request_spans_grow() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    span BIGINT := request_span_ms(NEW.created, NEW.last_updated);
BEGIN
    IF span > COALESCE((SELECT MAX(longest) FROM request_spans WHERE status = NEW.status), -9223372036854775807) THEN
        INSERT INTO request_spans (status, longest) VALUES (NEW.status, span);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER request_spans_insert AFTER INSERT ON requests
    FOR EACH ROW EXECUTE FUNCTION request_spans_grow();
CREATE TRIGGER request_spans_update AFTER UPDATE OF status, created, last_updated ON requests
    FOR EACH ROW EXECUTE FUNCTION request_spans_grow();

-- Bodies as JSON (the text, validated) rather than JSONB: every read parses the
-- body into a Request anyway and no query looks inside it, while JSONB made
-- each read print its binary form back to text (2000 rows: 45 ms vs 10 ms).
ALTER TABLE requests ALTER COLUMN body TYPE JSON USING body::json;
