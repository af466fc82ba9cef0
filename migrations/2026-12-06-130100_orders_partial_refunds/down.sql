-- Fails while an order is partially_refunded: the older statuses cannot say it.
DROP TABLE order_refund_lines;
ALTER TABLE orders DROP COLUMN shipped_at;
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending_payment', 'paid', 'shipped', 'cancelled', 'refunded'));
