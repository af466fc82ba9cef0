DROP TRIGGER event_deliveries_notify_new_work ON event_deliveries;
DROP FUNCTION outbox_notify_new_work();
DROP TABLE event_deliveries;
DROP TABLE events;
