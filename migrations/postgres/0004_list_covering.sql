-- Filtered pages (`status eq … and lastUpdated gt …`, ordered by created) are
-- answered from this index without reading rows that do not match.
DROP INDEX IF EXISTS requests_status_created;
CREATE INDEX requests_status_created_updated ON requests (status, created, id, last_updated);
