-- The trace of the event that caused a delivery (W3C traceparent): its e-mail and webhook carry it.
ALTER TABLE deliveries ADD COLUMN traceparent text;
-- How many times an operator sent a failed delivery again (attempts restart at 0 each time).
ALTER TABLE deliveries ADD COLUMN resends integer NOT NULL DEFAULT 0;

-- Every operator action on a delivery: who, when, what it was before and what it became.
CREATE TABLE delivery_audit (
    id               bigserial PRIMARY KEY,
    delivery_id      uuid        NOT NULL REFERENCES deliveries (delivery_id),
    at               timestamptz NOT NULL DEFAULT now(),
    actor            text        NOT NULL,  -- the API key id
    actor_role       text        NOT NULL,
    action           text        NOT NULL CHECK (action IN ('resend')),
    from_status      text        NOT NULL,
    to_status        text        NOT NULL,
    attempts_before  integer     NOT NULL,
    reason_before    text,
    address_before   text        NOT NULL,
    address_after    text        NOT NULL
);
CREATE INDEX delivery_audit_delivery ON delivery_audit (delivery_id, at);
