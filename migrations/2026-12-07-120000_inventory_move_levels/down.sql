DROP FUNCTION inventory_move_levels(uuid[], integer[], integer[], text, text, uuid);
