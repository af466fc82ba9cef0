-- The e-mails themselves do not come back: they live in the notifications service's database.
-- This restores the empty tables (without their move triggers), for `agora split notifications
-- --rollback` to fill; their shape is that of the migrations under /migrations.
CREATE TABLE notifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id bigint NOT NULL REFERENCES events (id),
    order_id uuid NOT NULL REFERENCES orders (id),
    kind text NOT NULL CHECK (kind IN ('order_received', 'order_confirmation', 'order_cancelled', 'order_refunded', 'order_shipped')),
    recipient text NOT NULL,
    subject text NOT NULL,
    text_body text NOT NULL,
    html_body text NOT NULL,
    message_id text NOT NULL UNIQUE,
    status text NOT NULL CHECK (status IN ('pending', 'sent', 'stored', 'failed')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text,
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    round_attempts integer NOT NULL DEFAULT 0 CHECK (round_attempts >= 0)
);
SELECT diesel_manage_updated_at('notifications');
CREATE INDEX notifications_created_at_idx ON notifications (created_at DESC, id DESC);
CREATE UNIQUE INDEX notifications_event_idx ON notifications (event_id);
CREATE UNIQUE INDEX notifications_order_kind_idx ON notifications (order_id, kind) WHERE kind <> 'order_refunded';
CREATE INDEX notifications_order_idx ON notifications (order_id, created_at);
CREATE INDEX notifications_pending_due_idx ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE TABLE notifications_inbox (
    event_id bigint PRIMARY KEY,
    event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
