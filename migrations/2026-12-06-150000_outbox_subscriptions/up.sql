-- Owned by the outbox. Which handler takes which event type is the installation's, not the
-- code's: with a broker configured the relay subscribes to every event, and with notifications
-- consuming from the broker its in-process handler no longer does. `agora serve` writes the rows
-- from its configuration at start; publishing reads them, so every process of one installation
-- creates the same deliveries whatever its own build was started with.
CREATE TABLE outbox_subscriptions (
    handler text NOT NULL,
    event_type text NOT NULL,
    PRIMARY KEY (event_type, handler)
);

INSERT INTO outbox_subscriptions (handler, event_type) VALUES
    ('notifications.order_emails', 'OrderPlaced'),
    ('notifications.order_emails', 'PaymentSucceeded'),
    ('notifications.order_emails', 'OrderCancelled'),
    ('notifications.order_emails', 'OrderRefunded'),
    ('notifications.order_emails', 'OrderShipped');

-- The handlers no longer travel with each call: the function finds them in the table above.
CREATE FUNCTION outbox_publish(
    p_event_type text,
    p_aggregate_type text,
    p_aggregate_id uuid,
    p_payload jsonb
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    published bigint;
BEGIN
    INSERT INTO public.events (event_type, aggregate_type, aggregate_id, payload)
    VALUES (p_event_type, p_aggregate_type, p_aggregate_id, p_payload)
    RETURNING id INTO published;
    INSERT INTO public.event_deliveries (event_id, handler)
    SELECT published, s.handler FROM public.outbox_subscriptions s WHERE s.event_type = p_event_type;
    RETURN published;
END;
$$;
REVOKE ALL ON FUNCTION outbox_publish(text, text, uuid, jsonb) FROM PUBLIC;

DROP FUNCTION outbox_publish(text, text, uuid, jsonb, text[]);
