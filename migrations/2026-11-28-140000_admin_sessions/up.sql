-- Owned by the admin shell: sign-in sessions kept on the server, so that signing out, changing
-- the password or revoking a session ends it everywhere, including in a copied cookie.
CREATE TABLE admin_sessions (
    -- Shown on the account page and used to revoke a session; not the secret.
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- SHA-256 of the random key the cookie carries: a leaked table does not let anyone in.
    key_hash bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    -- NULL before sign-in (the login form's CSRF token lives in a session too).
    user_id uuid REFERENCES admin_users (id) ON DELETE CASCADE,
    state jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_sessions_user_idx ON admin_sessions (user_id);
CREATE INDEX admin_sessions_last_seen_idx ON admin_sessions (last_seen_at);
