-- Every agora process keeps a cache of what the shop reads from `products`. Whatever changes a
-- product (the API, an admin page, the seed, psql) tells every process at commit: NOTIFY is
-- delivered only when the transaction commits, and never for one that rolls back.
--
-- The payload is `<microseconds since the epoch when the statement ran> <what changed>`, where
-- what changed is `lists` (new products: only list pages are affected), a comma-separated list
-- of product ids, or `*` (too many ids for one payload, or rows removed).
CREATE FUNCTION catalog_notify_changed() RETURNS trigger AS $$
DECLARE
    changed_at text := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint::text;
    what text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        what := 'lists';
    ELSIF TG_OP = 'UPDATE' THEN
        -- 200 ids of 36 characters stay well under NOTIFY's 8,000-byte payload limit.
        SELECT CASE WHEN count(*) > 200 THEN '*' ELSE string_agg(id::text, ',') END
          INTO what FROM changed_products;
        IF what IS NULL THEN
            RETURN NULL;
        END IF;
    ELSE
        what := '*';
    END IF;
    PERFORM pg_notify('agora_catalog', changed_at || ' ' || what);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- One notification per statement, not per row: a bulk update is one message.
CREATE TRIGGER products_notify_insert AFTER INSERT ON products
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_notify_changed();
CREATE TRIGGER products_notify_update AFTER UPDATE ON products
    REFERENCING NEW TABLE AS changed_products
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_notify_changed();
CREATE TRIGGER products_notify_delete AFTER DELETE OR TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_notify_changed();

-- `Last-Modified` of a product list page is the latest change to any product.
CREATE INDEX products_updated_at_idx ON products (updated_at);
