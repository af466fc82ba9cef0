DROP TRIGGER IF EXISTS notifications_write_lock ON notifications;
DROP TRIGGER IF EXISTS notifications_inbox_write_lock ON notifications_inbox;
DROP TRIGGER IF EXISTS notifications_move_track ON notifications;
DROP TRIGGER IF EXISTS notifications_inbox_move_track ON notifications_inbox;
DROP FUNCTION notifications_refuse_writes();
DROP FUNCTION notifications_move_track();
DROP TABLE notifications_delta;
DROP TABLE notifications_move;
