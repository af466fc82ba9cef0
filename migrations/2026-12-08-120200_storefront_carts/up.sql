-- Owned by the storefront module: shoppers' carts. The cart cookie holds a random token; only
-- its SHA-256 is stored, so that a copy of this table opens nobody's cart.
CREATE TABLE carts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_sha256 bytea NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
    -- Bumped by every change to the cart's lines: an order placed from one revision is not
    -- placed again for it (a double submit, or paying again after a declined card).
    revision integer NOT NULL DEFAULT 0,
    -- The order checkout placed from this cart, and the revision it was placed from.
    order_id uuid REFERENCES orders (id),
    order_revision integer,
    -- When that order was paid: the cart is spent, and the shopper's next item starts a new one.
    closed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Idle carts (30 days without a change or a checkout) are removed by background work.
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((order_id IS NULL) = (order_revision IS NULL))
);
SELECT diesel_manage_updated_at('carts');
CREATE INDEX carts_updated_at_idx ON carts (updated_at);

CREATE TABLE cart_lines (
    cart_id uuid NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id uuid NOT NULL REFERENCES products (id),
    quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    -- The price the shopper saw when adding it: the cart says when the price has changed since.
    unit_price_minor_added bigint NOT NULL CHECK (unit_price_minor_added > 0),
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, product_id)
);

-- Checkout attempts per client address and minute, shared by every agora process: a limit kept
-- in one process's memory would grow with the number of processes behind the balancer.
CREATE TABLE checkout_attempts (
    client_address text NOT NULL CHECK (char_length(client_address) BETWEEN 1 AND 64),
    minute timestamptz NOT NULL,
    attempts integer NOT NULL CHECK (attempts >= 1),
    PRIMARY KEY (client_address, minute)
);
