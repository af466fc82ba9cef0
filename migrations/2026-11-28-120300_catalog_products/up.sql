-- Owned by the catalog module. Other modules read it directly (orders prices lines from it,
-- inventory reads thresholds and SKUs, notifications names products in e-mails).

-- Trigram indexes make the substring search over name and SKU usable at 100,000+ products.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE products (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku text NOT NULL UNIQUE CHECK (sku ~ '^[A-Z0-9-]{3,32}$'),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
    -- Minor units of the shop currency (cents for EUR).
    price_minor bigint NOT NULL CHECK (price_minor > 0),
    -- Products are never deleted: orders keep pointing at them. Inactive ones leave the shop.
    active boolean NOT NULL DEFAULT true,
    low_stock_threshold integer NOT NULL DEFAULT 5 CHECK (low_stock_threshold >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT diesel_manage_updated_at('products');

-- Keyset pagination by (name, id): the admin list walks every product, the shop only active ones.
CREATE INDEX products_name_id_idx ON products (name, id);
CREATE INDEX products_active_name_id_idx ON products (name, id) WHERE active;
CREATE INDEX products_name_trgm_idx ON products USING gin (name gin_trgm_ops);
CREATE INDEX products_sku_trgm_idx ON products USING gin (sku gin_trgm_ops);
