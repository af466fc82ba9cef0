-- Each refund of an order is an e-mail of its own. What keeps an e-mail from being written twice
-- is its event: one e-mail per event. The other kinds stay one per order.
ALTER TABLE notifications DROP CONSTRAINT notifications_order_id_kind_key;
CREATE UNIQUE INDEX notifications_event_idx ON notifications (event_id);
CREATE UNIQUE INDEX notifications_order_kind_idx ON notifications (order_id, kind) WHERE kind <> 'order_refunded';
-- An order's e-mails, oldest first (the order view, `?order_id=`), which the dropped constraint's
-- index served before.
CREATE INDEX notifications_order_idx ON notifications (order_id, created_at);
