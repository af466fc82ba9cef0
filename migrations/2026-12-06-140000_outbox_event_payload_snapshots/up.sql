-- Owned by the outbox. Event payloads now carry a version, and the events that lead to a customer
-- e-mail carry the order itself, which the e-mails are rendered from (and nothing else). Events
-- stored before get both here, so that their deliveries still pending, or dead and retried later,
-- render as they would have: the snapshot is built from the order's tables as they are now,
-- which is what the e-mail of such an event showed when rendered from those tables.
--
-- The snapshot's shape is `OrderSnapshot` in src/events.rs: the number as people see it
-- (`AG-` and at least six digits), the time placed in UTC, the customer, the lines in order with
-- their products' descriptions, the total and the currency. An order without lines gets `null`
-- lines: its events stay unreadable, and their deliveries retry saying so, as they did before.
WITH wanted AS (
    SELECT DISTINCT aggregate_id AS order_id
      FROM events
     WHERE aggregate_type = 'order'
       AND event_type IN ('OrderPlaced', 'PaymentSucceeded', 'OrderCancelled', 'OrderRefunded', 'OrderShipped')
       AND NOT payload ? 'order'
), snapshots AS (
    SELECT o.id AS order_id,
           jsonb_build_object(
               'number', 'AG-' || lpad(o.number::text, greatest(6, length(o.number::text)), '0'),
               'placed_at', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'customer', jsonb_build_object('name', c.name, 'email', c.email),
               'lines', (
                   SELECT jsonb_agg(
                              jsonb_build_object(
                                  'product_id', l.product_id,
                                  'sku', l.sku,
                                  'name', l.name,
                                  'description', p.description,
                                  'quantity', l.quantity,
                                  'unit_price_minor', l.unit_price_minor,
                                  'line_total_minor', l.line_total_minor
                              )
                              ORDER BY l.line_no
                          )
                     FROM order_lines l
                     JOIN products p ON p.id = l.product_id
                    WHERE l.order_id = o.id
               ),
               'total_minor', o.total_minor,
               'currency', o.currency
           ) AS snapshot
      FROM wanted w
      JOIN orders o ON o.id = w.order_id
      JOIN customers c ON c.id = o.customer_id
)
UPDATE events e
   SET payload = e.payload || jsonb_build_object('order', s.snapshot)
  FROM snapshots s
 WHERE e.aggregate_type = 'order'
   AND e.aggregate_id = s.order_id
   AND e.event_type IN ('OrderPlaced', 'PaymentSucceeded', 'OrderCancelled', 'OrderRefunded', 'OrderShipped')
   AND NOT e.payload ? 'order';

-- Every payload stored so far is version 1.
UPDATE events SET payload = payload || '{"version": 1}'::jsonb WHERE NOT payload ? 'version';
