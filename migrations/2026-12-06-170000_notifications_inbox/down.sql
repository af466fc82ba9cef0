DROP INDEX notifications_pending_due_idx;
ALTER TABLE notifications DROP COLUMN round_attempts, DROP COLUMN next_attempt_at;
DROP TABLE notifications_inbox;
