-- outbox_key (ordering_key, status, id) held every row ever queued, delivered
-- ones too, and a delivery rewrote its entry. The claim's "no older undelivered
-- row of this key" check reads the partial outbox_pending_key instead.
DROP INDEX IF EXISTS outbox_key;
