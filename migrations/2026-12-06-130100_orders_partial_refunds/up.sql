-- Refunds in parts: an order is partially_refunded while its refunds add up to less than what
-- was captured, and refunded once they reach it.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending_payment', 'paid', 'shipped', 'partially_refunded', 'cancelled', 'refunded'));

-- When the order left the warehouse. A partially refunded order may have shipped or not, and only
-- one that has not may still be shipped. Orders shipped before this column existed take the time
-- of their OrderShipped event.
ALTER TABLE orders ADD COLUMN shipped_at timestamptz;
UPDATE orders SET shipped_at = e.created_at
  FROM events e
 WHERE e.aggregate_type = 'order' AND e.aggregate_id = orders.id AND e.event_type = 'OrderShipped';

-- The units each refund gave back, line by line (a refund of an amount names none). The money is
-- the payments module's `payment_refunds` row; what was given back of the order is the order's.
CREATE TABLE order_refund_lines (
    refund_id uuid NOT NULL REFERENCES payment_refunds (id),
    order_id uuid NOT NULL,
    line_no smallint NOT NULL,
    quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 50000),
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (refund_id, line_no),
    FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no)
);
-- What is left to refund of each line of an order.
CREATE INDEX order_refund_lines_order_idx ON order_refund_lines (order_id, line_no);
