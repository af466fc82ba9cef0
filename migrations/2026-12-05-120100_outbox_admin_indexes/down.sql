DROP INDEX events_type_idx;
DROP INDEX event_deliveries_completed_at_idx;
