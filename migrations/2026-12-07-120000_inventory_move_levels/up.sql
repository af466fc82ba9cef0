-- Owned by inventory. Every stock movement locks, checks, moves and records in this one call:
-- the levels are locked in product-id order (so that movers cannot deadlock one another), the
-- deltas are applied only if every level stays valid (on hand at least 0, reserved between 0 and
-- on hand), one ledger row per product is written, and the levels as they were are returned with
-- whether the move was applied. One round trip, so that a product's row stays locked only for
-- this call and the COMMIT after it.
-- SECURITY DEFINER, owned by the inventory's role once `agora migrate` has set the roles up (as
-- outbox_publish is the outbox's): orders reserves stock with EXECUTE alone, with no privilege on
-- these tables and no SET ROLE round trip. Names are schema-qualified instead of pinning
-- search_path with a SET clause, which would cost a configuration save and restore on every call.
CREATE FUNCTION inventory_move_levels(
    p_product_ids uuid[],
    p_on_hand_deltas integer[],
    p_reserved_deltas integer[],
    p_kind text,
    p_reason text,
    p_order_id uuid
) RETURNS TABLE (
    product_id uuid,
    sku text,
    on_hand integer,
    reserved integer,
    low_stock_threshold integer,
    applied boolean
)
LANGUAGE plpgsql SECURITY DEFINER AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH change AS (
        SELECT * FROM unnest(p_product_ids, p_on_hand_deltas, p_reserved_deltas)
            AS c (product_id, on_hand_delta, reserved_delta)
    ), locked AS (
        SELECT l.product_id, p.sku, l.on_hand, l.reserved, p.low_stock_threshold
          FROM public.inventory_levels l
          JOIN public.products p ON p.id = l.product_id
         WHERE l.product_id = ANY(p_product_ids)
         ORDER BY l.product_id
           FOR NO KEY UPDATE OF l
    ), verdict AS (
        SELECT count(*) = cardinality(p_product_ids)
               AND coalesce(bool_and(l.on_hand::int8 + c.on_hand_delta BETWEEN 0 AND 2147483647
                                     AND l.reserved::int8 + c.reserved_delta
                                         BETWEEN 0 AND l.on_hand::int8 + c.on_hand_delta), true) AS applied
          FROM locked l
          JOIN change c USING (product_id)
    ), moved AS (
        UPDATE public.inventory_levels l
           SET on_hand = l.on_hand + c.on_hand_delta,
               reserved = l.reserved + c.reserved_delta
          FROM change c, verdict
         WHERE verdict.applied AND l.product_id = c.product_id
    ), ledger AS (
        INSERT INTO public.inventory_movements (product_id, kind, on_hand_delta, reserved_delta, reason, order_id)
        SELECT c.product_id, p_kind, c.on_hand_delta, c.reserved_delta, p_reason, p_order_id
          FROM change c, verdict
         WHERE verdict.applied
    )
    SELECT l.product_id, l.sku, l.on_hand, l.reserved, l.low_stock_threshold, verdict.applied
      FROM locked l, verdict
     ORDER BY l.product_id;
END;
$$;
-- Who may move stock is granted from the modules' declarations (agora migrate).
REVOKE ALL ON FUNCTION inventory_move_levels(uuid[], integer[], integer[], text, text, uuid) FROM PUBLIC;
