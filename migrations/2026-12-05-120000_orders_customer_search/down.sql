DROP INDEX customers_created_at_idx;
DROP INDEX customers_name_idx;
DROP INDEX customers_email_trgm_idx;
DROP INDEX customers_name_trgm_idx;
-- The extension stays: other objects may have come to use it, and it holds no data.
