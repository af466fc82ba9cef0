-- Owned by the orders module: customers, orders and their lines.

CREATE TABLE customers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Stored lower-cased so that one person is one customer whatever they type.
    email text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT diesel_manage_updated_at('customers');

-- Human order numbers (AG-000042). A sequence never blocks concurrent checkouts; the price is
-- that a rolled-back checkout leaves a gap in the numbers.
CREATE SEQUENCE order_number_seq;

CREATE TABLE orders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    number bigint NOT NULL UNIQUE DEFAULT nextval('order_number_seq'),
    customer_id uuid NOT NULL REFERENCES customers (id),
    status text NOT NULL CHECK (status IN ('pending_payment', 'paid', 'shipped', 'cancelled', 'refunded')),
    total_minor bigint NOT NULL CHECK (total_minor > 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE order_number_seq OWNED BY orders.number;
SELECT diesel_manage_updated_at('orders');
-- Keyset pagination newest first, overall, per status and per customer.
CREATE INDEX orders_created_at_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_created_at_idx ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_customer_created_at_idx ON orders (customer_id, created_at DESC, id DESC);
-- The payment-timeout sweep looks only at unpaid orders.
CREATE INDEX orders_pending_payment_idx ON orders (created_at) WHERE status = 'pending_payment';

-- Lines snapshot what the customer agreed to: later catalog changes never alter an order.
CREATE TABLE order_lines (
    order_id uuid NOT NULL REFERENCES orders (id),
    line_no smallint NOT NULL CHECK (line_no >= 1),
    product_id uuid NOT NULL REFERENCES products (id),
    sku text NOT NULL,
    name text NOT NULL,
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor > 0),
    quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    line_total_minor bigint NOT NULL CHECK (line_total_minor = unit_price_minor * quantity),
    PRIMARY KEY (order_id, line_no),
    UNIQUE (order_id, product_id)
);
CREATE INDEX order_lines_product_idx ON order_lines (product_id);
