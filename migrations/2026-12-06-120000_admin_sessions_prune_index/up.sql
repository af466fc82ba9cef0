-- Ended sessions are removed in the background by both lifetimes; each needs an index of its own
-- (last_seen_at has one), or every prune reads the whole table.
CREATE INDEX admin_sessions_created_idx ON admin_sessions (created_at);
-- The sign-in form's CSRF token now lives in a signed cookie: sessions that never signed in
-- (one per visit of the form, before) serve nothing any more.
DELETE FROM admin_sessions WHERE user_id IS NULL;
