-- A payment may be refunded in parts: each refund is a row of its own, up to the amount captured
-- in all. The running sum lives on the payment and changes only under its row lock, so that
-- PostgreSQL itself refuses a refund past what was captured, whatever races the callers run.
ALTER TABLE payment_refunds DROP CONSTRAINT payment_refunds_payment_id_key;
CREATE INDEX payment_refunds_payment_idx ON payment_refunds (payment_id, created_at);
ALTER TABLE payments ADD COLUMN refunded_minor bigint NOT NULL DEFAULT 0;
-- Until now a payment had at most one refund, and it was whole.
UPDATE payments SET refunded_minor = r.amount_minor FROM payment_refunds r WHERE r.payment_id = payments.id;
ALTER TABLE payments ADD CONSTRAINT payments_refunded_minor_check
    CHECK (refunded_minor BETWEEN 0 AND amount_minor AND (refunded_minor = 0 OR status = 'succeeded'));
