DROP INDEX products_updated_at_idx;
DROP TRIGGER products_notify_delete ON products;
DROP TRIGGER products_notify_update ON products;
DROP TRIGGER products_notify_insert ON products;
DROP FUNCTION catalog_notify_changed();
