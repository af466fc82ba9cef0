-- Owned by the catalog module: the shop's aisles. A product sits in at most one category.
CREATE TABLE categories (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- What the shop's links and the API name a category by: `kitchen`, `desk-lamps`.
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND char_length(slug) <= 40),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 80),
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE products ADD COLUMN category_id uuid REFERENCES categories (id);
-- The shop's grid of one category, by name or by price, page by page.
CREATE INDEX products_category_name_id_idx ON products (category_id, name, id) WHERE active;
CREATE INDEX products_active_price_id_idx ON products (price_minor, id) WHERE active;
CREATE INDEX products_category_price_id_idx ON products (category_id, price_minor, id) WHERE active;

CREATE FUNCTION catalog_notify_categories_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('agora_catalog',
                      (extract(epoch FROM clock_timestamp()) * 1000000)::bigint::text || ' *');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- A renamed or added category changes what the shop's cached pages say: every process forgets
-- them at commit, as for a changed product.
CREATE TRIGGER categories_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON categories
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_notify_categories_changed();
