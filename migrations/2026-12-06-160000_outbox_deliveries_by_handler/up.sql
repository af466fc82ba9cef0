-- The dispatcher claims the due deliveries of one handler at a time, oldest first, and leaves
-- alone those of a handler that is not ready (the relay while its broker is unreachable). Read
-- through the index on all pending deliveries, a claim would step over every delivery of the
-- other handlers first: thousands after a broker outage, on every claim.
CREATE INDEX event_deliveries_handler_due_idx
    ON event_deliveries (handler, next_attempt_at, event_id)
    WHERE status = 'pending';
