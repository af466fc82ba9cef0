-- Owned by the payments module: every charge attempt against the (simulated) card gateway.

CREATE TABLE payments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id uuid NOT NULL REFERENCES orders (id),
    status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Only the brand and the last four digits: the full number is never stored.
    card_brand text NOT NULL,
    card_last4 text NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    decline_code text,
    gateway_reference text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'failed') = (decline_code IS NOT NULL))
);
-- An order can be paid once, whatever races the application code loses.
CREATE UNIQUE INDEX payments_one_success_per_order_idx ON payments (order_id) WHERE status = 'succeeded';
CREATE INDEX payments_order_idx ON payments (order_id, created_at);
CREATE INDEX payments_created_at_idx ON payments (created_at DESC, id DESC);

CREATE TABLE payment_refunds (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Refunds are whole: one per payment.
    payment_id uuid NOT NULL UNIQUE REFERENCES payments (id),
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
