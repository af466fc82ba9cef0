-- Owned by the HTTP edge (shared infrastructure): responses remembered per Idempotency-Key.
-- A key is claimed by inserting its row in the same transaction as the work it protects, so a
-- concurrent request with the same key waits on the row and then sees the finished response.

CREATE TABLE idempotency_keys (
    -- Which operation the key belongs to, e.g. 'POST /api/orders'.
    scope text NOT NULL,
    idempotency_key text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    -- SHA-256 of the canonical request, to refuse a reused key with a different request.
    request_fingerprint text NOT NULL,
    -- NULL only inside the transaction that claimed the key; set before it commits.
    response_status smallint,
    response_body jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
