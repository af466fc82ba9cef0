DROP TABLE products;
-- Fails, as it should, if something outside Agora has started to use the extension.
DROP EXTENSION pg_trgm;
