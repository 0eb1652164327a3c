-- Delivery machinery every service owns a copy of, in its own schema.

-- Transactional outbox: written in the same transaction as the state change it reports.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      text        NOT NULL UNIQUE,
    topic         text        NOT NULL,
    key           text        NOT NULL,
    headers       jsonb       NOT NULL,
    payload       bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
-- The relay only ever scans unpublished rows in id order.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Inbox: ids of consumed events, written in the handler's transaction.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    source       text        NOT NULL,
    event_id     text        NOT NULL,
    event_type   text        NOT NULL,
    topic        text        NOT NULL,
    kafka_partition integer  NOT NULL,
    kafka_offset bigint      NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, source, event_id)
);

-- API keys for the HTTP edges. Only a hash of the secret is kept.
CREATE TABLE api_keys (
    key_id       text PRIMARY KEY,
    secret_hash  text        NOT NULL,
    name         text        NOT NULL,
    role         text        NOT NULL,
    region_code  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CHECK ((role = 'region_operator') = (region_code IS NOT NULL))
);
