-- The longest time (ms) from `created` to `last_updated` of any request of each
-- status. A filter on lastUpdated > T then also bounds created > T - longest,
-- so a page in created order seeks into the index instead of scanning every
-- older row of the status. Kept by triggers, so every write path (and a
-- script writing rows directly) keeps it exact; it only grows.
CREATE TABLE request_spans (
    status  TEXT PRIMARY KEY,
    longest INTEGER NOT NULL
);
INSERT INTO request_spans (status, longest)
    SELECT status, MAX(last_updated - created) FROM requests GROUP BY status;

CREATE TRIGGER request_spans_insert AFTER INSERT ON requests
BEGIN
    INSERT INTO request_spans (status, longest) VALUES (NEW.status, NEW.last_updated - NEW.created)
        ON CONFLICT (status) DO UPDATE SET longest = excluded.longest WHERE excluded.longest > longest;
END;
CREATE TRIGGER request_spans_update AFTER UPDATE OF status, created, last_updated ON requests
BEGIN
    INSERT INTO request_spans (status, longest) VALUES (NEW.status, NEW.last_updated - NEW.created)
        ON CONFLICT (status) DO UPDATE SET longest = excluded.longest WHERE excluded.longest > longest;
END;
