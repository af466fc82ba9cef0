-- Fails while an order has more than one refund e-mail.
DROP INDEX notifications_order_idx;
DROP INDEX notifications_order_kind_idx;
DROP INDEX notifications_event_idx;
ALTER TABLE notifications ADD CONSTRAINT notifications_order_id_kind_key UNIQUE (order_id, kind);
