-- The dashboard's backlog over the last 24 hours reads deliveries completed recently; without
-- this index that meant every delivery ever completed.
CREATE INDEX event_deliveries_completed_at_idx ON event_deliveries (completed_at) WHERE status = 'completed';
-- The events page filters the latest events by type, newest first, a page at a time.
CREATE INDEX events_type_idx ON events (event_type, id DESC);
