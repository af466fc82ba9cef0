DROP TABLE inventory_movements;
DROP TABLE inventory_levels;
