-- Owned by the notifications module. The events it has taken from its broker queue, by event id:
-- the broker delivers at least once, so a redelivered message finds its id here and writes no
-- second e-mail. Deliberately no foreign key to `events`: the inbox is the consumer's own record
-- of what it received, and stays valid when notifications moves to a database of its own.
CREATE TABLE notifications_inbox (
    event_id bigint PRIMARY KEY,
    event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Consuming from the broker, notifications sends its e-mails itself rather than within an outbox
-- delivery: a pending e-mail is due at `next_attempt_at`, and `round_attempts` counts the attempts
-- since it was last queued (written, or resent by an operator), against the maximum.
ALTER TABLE notifications
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN round_attempts integer NOT NULL DEFAULT 0 CHECK (round_attempts >= 0);
CREATE INDEX notifications_pending_due_idx ON notifications (next_attempt_at) WHERE status = 'pending';
