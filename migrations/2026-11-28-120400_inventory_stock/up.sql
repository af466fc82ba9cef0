-- Owned by the inventory module: stock levels and the ledger that explains them.

CREATE TABLE inventory_levels (
    product_id uuid PRIMARY KEY REFERENCES products (id),
    -- Physically in the warehouse.
    on_hand integer NOT NULL DEFAULT 0,
    -- Promised to orders that have not shipped yet.
    reserved integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The invariant 0 <= reserved <= on_hand holds whatever any code does.
    CONSTRAINT inventory_levels_reserved_not_negative CHECK (reserved >= 0),
    CONSTRAINT inventory_levels_reserved_within_on_hand CHECK (reserved <= on_hand)
);
SELECT diesel_manage_updated_at('inventory_levels');
-- The stock overview lists the emptiest shelves first, page by page.
CREATE INDEX inventory_levels_available_idx ON inventory_levels ((on_hand - reserved), product_id);

-- Append-only: every change to a level is one row, so the sums of the deltas equal the levels.
CREATE TABLE inventory_movements (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id uuid NOT NULL REFERENCES inventory_levels (product_id),
    kind text NOT NULL CHECK (kind IN ('receipt', 'adjustment', 'reservation', 'release', 'shipment')),
    on_hand_delta integer NOT NULL,
    reserved_delta integer NOT NULL,
    reason text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    -- The order the movement belongs to, if any. Deliberately no foreign key: inventory does not
    -- depend on the orders module's tables; the id is a correlation id.
    order_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (on_hand_delta <> 0 OR reserved_delta <> 0)
);
CREATE INDEX inventory_movements_product_idx ON inventory_movements (product_id, id DESC);
CREATE INDEX inventory_movements_order_idx ON inventory_movements (order_id) WHERE order_id IS NOT NULL;
