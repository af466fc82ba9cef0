DROP TRIGGER categories_notify_change ON categories;
DROP FUNCTION catalog_notify_categories_changed();
DROP INDEX products_category_price_id_idx;
DROP INDEX products_active_price_id_idx;
DROP INDEX products_category_name_id_idx;
ALTER TABLE products DROP COLUMN category_id;
DROP TABLE categories;
