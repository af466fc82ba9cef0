-- The notifications service's own database: its e-mails and its inbox, and nothing of any other
-- module. The same columns as the tables it had in the shared database, so that one set of
-- queries serves both, but no foreign key: the events and orders an e-mail names live elsewhere,
-- and the event id and order id are plain values here.

CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD AND NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TABLE notifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id bigint NOT NULL,
    order_id uuid NOT NULL,
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
CREATE TRIGGER notifications_touch_updated_at BEFORE UPDATE ON notifications
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE UNIQUE INDEX notifications_event_idx ON notifications (event_id);
CREATE UNIQUE INDEX notifications_order_kind_idx ON notifications (order_id, kind) WHERE kind <> 'order_refunded';
CREATE INDEX notifications_order_idx ON notifications (order_id, created_at);
CREATE INDEX notifications_created_at_idx ON notifications (created_at DESC, id DESC);
CREATE INDEX notifications_pending_due_idx ON notifications (next_attempt_at) WHERE status = 'pending';

CREATE TABLE notifications_inbox (
    event_id bigint PRIMARY KEY,
    event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Which database holds the e-mails of record. 'service' on a fresh service; during a move
-- (`agora split notifications`) 'shared' until the cutover, and again after a rollback. The
-- service takes messages and sends e-mails only while it is 'service': each message's transaction
-- reads this row FOR SHARE, so a cutover or rollback changing it waits for the message in flight.
CREATE TABLE notifications_ownership (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    holder text NOT NULL CHECK (holder IN ('service', 'shared')),
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO notifications_ownership (holder) VALUES ('service');

-- The rollback's write lock, as the cutover's in the shared database.
CREATE FUNCTION notifications_refuse_writes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'notifications has moved back to the shared database: % is write-locked (agora split notifications --rollback)', TG_TABLE_NAME
        USING ERRCODE = 'object_not_in_prerequisite_state';
END;
$$;
