DROP FUNCTION outbox_publish(text, text, uuid, jsonb, text[]);
