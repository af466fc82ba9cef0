-- Owned by the outbox (shared infrastructure). Modules append events in the same transaction as
-- the change they describe; handlers consume them later, each at its own pace.

CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type text NOT NULL CHECK (event_type ~ '^[A-Z][A-Za-z]+$'),
    aggregate_type text NOT NULL,
    aggregate_id uuid NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_aggregate_idx ON events (aggregate_id, id);
CREATE INDEX events_created_at_idx ON events (created_at DESC, id DESC);

-- One row per (event, handler) that subscribes to the event's type: the handler's progress, so a
-- failing handler retries on its own schedule without holding back the others.
CREATE TABLE event_deliveries (
    event_id bigint NOT NULL REFERENCES events (id),
    handler text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'dead')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, handler),
    CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
SELECT diesel_manage_updated_at('event_deliveries');
-- The dispatcher's claim query: due pending work, oldest first.
CREATE INDEX event_deliveries_due_idx ON event_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX event_deliveries_dead_idx ON event_deliveries (updated_at) WHERE status = 'dead';

-- Wake every listening dispatcher when new work commits (NOTIFY is delivered at commit, so a
-- rolled-back transaction wakes nobody). Once per statement, not per row.
CREATE FUNCTION outbox_notify_new_work() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('agora_outbox', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER event_deliveries_notify_new_work
    AFTER INSERT ON event_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify_new_work();
