-- Back to the payloads as the code before this migration writes them: without a version and
-- without the order. That code reads them either way (it ignores fields it does not know); a
-- redo rebuilds both from the tables.
UPDATE events SET payload = payload - 'version' - 'order' WHERE payload ?| ARRAY['version', 'order'];
