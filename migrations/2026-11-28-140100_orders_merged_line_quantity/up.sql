-- A request's line may ask for 1 to 1,000 units, and lines naming the same product are merged
-- into one (one line per product and order): a stored line holds up to 50 lines' worth.
ALTER TABLE order_lines DROP CONSTRAINT order_lines_quantity_check;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_quantity_check CHECK (quantity BETWEEN 1 AND 50000);
