-- How long requests of each status took from `created` to `last_updated` (ms):
-- a row each time a status's longest span grows, so MAX(longest) per status is
-- the longest ever. A filter on lastUpdated > T then also bounds
-- created > T - longest, so a page in created order seeks into the index
-- instead of scanning every older row of the status. Kept by triggers, so every
-- write path (and a script writing rows directly) keeps it exact. Inserts only,
-- as in PostgreSQL, where one row per status made concurrent writers deadlock.
CREATE TABLE request_spans (
    status  TEXT NOT NULL,
    longest INTEGER NOT NULL
);
CREATE INDEX request_spans_status ON request_spans (status, longest);
INSERT INTO request_spans (status, longest)
    SELECT status, MAX(last_updated - created) FROM requests GROUP BY status;

CREATE TRIGGER request_spans_insert AFTER INSERT ON requests
WHEN NEW.last_updated - NEW.created
     > COALESCE((SELECT MAX(longest) FROM request_spans WHERE status = NEW.status), -9223372036854775807)
BEGIN
    INSERT INTO request_spans (status, longest) VALUES (NEW.status, NEW.last_updated - NEW.created);
END;
CREATE TRIGGER request_spans_update AFTER UPDATE OF status, created, last_updated ON requests
WHEN NEW.last_updated - NEW.created
     > COALESCE((SELECT MAX(longest) FROM request_spans WHERE status = NEW.status), -9223372036854775807)
BEGIN
    INSERT INTO request_spans (status, longest) VALUES (NEW.status, NEW.last_updated - NEW.created);
END;
