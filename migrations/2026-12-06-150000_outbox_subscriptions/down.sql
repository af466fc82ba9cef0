CREATE FUNCTION outbox_publish(
    p_event_type text,
    p_aggregate_type text,
    p_aggregate_id uuid,
    p_payload jsonb,
    p_handlers text[]
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    published bigint;
BEGIN
    INSERT INTO public.events (event_type, aggregate_type, aggregate_id, payload)
    VALUES (p_event_type, p_aggregate_type, p_aggregate_id, p_payload)
    RETURNING id INTO published;
    INSERT INTO public.event_deliveries (event_id, handler)
    SELECT published, handler FROM unnest(p_handlers) AS handler;
    RETURN published;
END;
$$;
REVOKE ALL ON FUNCTION outbox_publish(text, text, uuid, jsonb, text[]) FROM PUBLIC;

DROP FUNCTION outbox_publish(text, text, uuid, jsonb);
DROP TABLE outbox_subscriptions;
