-- The admin's order search: by customer name or any part of an e-mail address, at a million
-- orders. `ILIKE '%…%'` cannot use a b-tree; trigram indexes serve it (pg_trgm is a trusted
-- extension: the database owner may create it without superuser rights).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX customers_name_trgm_idx ON customers USING gin (name gin_trgm_ops);
CREATE INDEX customers_email_trgm_idx ON customers USING gin (email gin_trgm_ops);
-- The customers page sorts by name or by when they first ordered, a page at a time.
CREATE INDEX customers_name_idx ON customers (name, id);
CREATE INDEX customers_created_at_idx ON customers (created_at DESC, id DESC);
