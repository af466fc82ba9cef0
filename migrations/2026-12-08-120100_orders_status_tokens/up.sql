-- The order's status page for its customer (`/orders/{status_token}`, linked from its e-mails):
-- a random capability of its own, not the order's id, which the API accepts to cancel and pay.
-- Orders placed before get one here; new ones get theirs from checkout.
ALTER TABLE orders ADD COLUMN status_token text;
UPDATE orders
   SET status_token = replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
ALTER TABLE orders ALTER COLUMN status_token SET NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_status_token_key UNIQUE (status_token);
