-- The Location header of a remembered answer (e.g. the order a checkout created), stored with it
-- so that a replay gives the same header without guessing it from the body.
ALTER TABLE idempotency_keys ADD COLUMN response_location text;
