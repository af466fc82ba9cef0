DROP TABLE payment_refunds;
DROP TABLE payments;
