-- Owned by the admin shell: who may sign in to /admin, and the state that sign-in needs.

CREATE TABLE admin_users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9_.-]{1,64}$'),
    -- PHC string (argon2id); the password itself is never stored.
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT diesel_manage_updated_at('admin_users');

-- Failed sign-ins, kept in the database (not in process memory) so that the rate limit holds
-- across restarts and across several agora processes.
CREATE TABLE admin_login_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username text NOT NULL,
    client_ip text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_login_failures_username_idx ON admin_login_failures (username, failed_at);
CREATE INDEX admin_login_failures_client_ip_idx ON admin_login_failures (client_ip, failed_at);

-- Secrets every agora process must share, such as the key that signs session cookies.
CREATE TABLE admin_secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
