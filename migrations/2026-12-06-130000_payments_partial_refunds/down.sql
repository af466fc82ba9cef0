-- Fails while a payment has more than one refund: whole refunds cannot hold them.
ALTER TABLE payments DROP CONSTRAINT payments_refunded_minor_check;
ALTER TABLE payments DROP COLUMN refunded_minor;
DROP INDEX payment_refunds_payment_idx;
ALTER TABLE payment_refunds ADD CONSTRAINT payment_refunds_payment_id_key UNIQUE (payment_id);
