-- Claiming outbox rows walks the pending rows in id order and stops at the first
-- claimable ones. Without these partial indexes a claim read every pending row
-- (or every delivered row before the first pending one): its cost grew with the
-- backlog and the table's history, so a backlog drained ever more slowly.
CREATE INDEX outbox_pending ON outbox (id) WHERE status = 'pending';
CREATE INDEX outbox_pending_key ON outbox (ordering_key, id) WHERE status = 'pending';
