-- The order's status page for its customer (`/orders/{status_token}`, linked from its e-mails):
-- a random capability of its own, not the order's id, which the API accepts to cancel and pay.
-- Checkout draws 256 random bits for each new order; orders placed before, and any row written
-- without one, get 244 random bits from the default.
ALTER TABLE orders
    ADD COLUMN status_token text NOT NULL
        DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
        CONSTRAINT orders_status_token_key UNIQUE;
