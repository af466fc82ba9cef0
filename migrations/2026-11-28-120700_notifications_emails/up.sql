-- Owned by the notifications module: every customer e-mail, rendered once and kept.

CREATE TABLE notifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id bigint NOT NULL REFERENCES events (id),
    order_id uuid NOT NULL REFERENCES orders (id),
    kind text NOT NULL CHECK (kind IN ('order_received', 'order_confirmation', 'order_cancelled', 'order_refunded', 'order_shipped')),
    recipient text NOT NULL,
    subject text NOT NULL,
    text_body text NOT NULL,
    html_body text NOT NULL,
    -- Derived from the event, so a resend after a crash carries the same Message-ID.
    message_id text NOT NULL UNIQUE,
    -- pending: not delivered yet; sent: accepted by the SMTP server; stored: kept here only
    -- (no SMTP server configured); failed: delivery given up.
    status text NOT NULL CHECK (status IN ('pending', 'sent', 'stored', 'failed')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text,
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- One e-mail of each kind per order: a second send of the same e-mail cannot be recorded.
    UNIQUE (order_id, kind)
);
SELECT diesel_manage_updated_at('notifications');
CREATE INDEX notifications_created_at_idx ON notifications (created_at DESC, id DESC);
