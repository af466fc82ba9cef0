-- Owned by the outbox. Publishing is the one write every module makes into the outbox's tables.
-- A SECURITY DEFINER function, owned by the outbox's role once `agora migrate` has set the
-- roles up, runs that write as the outbox inside the caller's transaction: the caller needs only
-- EXECUTE, never INSERT on these tables, and no SET ROLE round trip is needed to get there.
-- Names are schema-qualified instead of pinning search_path with a SET clause, which would cost
-- a configuration save and restore on every call.
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
-- Who may publish is granted from the modules' declarations (agora migrate).
REVOKE ALL ON FUNCTION outbox_publish(text, text, uuid, jsonb, text[]) FROM PUBLIC;
