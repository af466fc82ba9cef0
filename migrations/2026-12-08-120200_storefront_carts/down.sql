DROP TABLE checkout_attempts;
DROP TABLE cart_lines;
DROP TABLE carts;
