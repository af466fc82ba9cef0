DROP FUNCTION notifications_refuse_writes() CASCADE;
DROP TABLE notifications_ownership;
DROP TABLE notifications_inbox;
DROP TABLE notifications;
DROP FUNCTION touch_updated_at();
