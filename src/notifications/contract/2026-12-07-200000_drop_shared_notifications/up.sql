-- `agora split notifications --contract`, and only then: once the move is cut over, the shared
-- database's copy of the e-mails is dead weight (write-locked, read by nobody). Dropping it is the
-- last, separate step of the move, as GitLab dropped the `ci` tables from its main database only
-- after the split had run for a while: after it there is no way back.
DROP TABLE notifications_inbox;
DROP TABLE notifications;
