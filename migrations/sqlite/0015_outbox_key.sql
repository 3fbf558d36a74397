-- outbox_key (ordering_key, status, id) held every row ever queued, delivered
-- ones too, and a delivery rewrote two of its entries (status is in the key).
-- The claim's "no older undelivered row of this key" check needs only the
-- pending rows: their partial index, with status in it so the check reads the
-- index alone (SQLite does not take a partial index's WHERE as covering it).
DROP INDEX IF EXISTS outbox_key;
DROP INDEX IF EXISTS outbox_pending_key;
CREATE INDEX outbox_pending_key ON outbox (ordering_key, id, status) WHERE status = 'pending';
