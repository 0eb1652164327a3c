-- The relay now deletes a row in the transaction that publishes it instead of marking it:
-- a delete writes no new row version and no index entries, where the mark rewrote the whole
-- row and its indexes (PostgreSQL did half the relay's work; docs/performance.md, B3). What
-- was published lives on in Kafka and in the relay's log; every row left here is unpublished.
DELETE FROM outbox WHERE published_at IS NOT NULL;
DROP INDEX outbox_unpublished;
ALTER TABLE outbox DROP COLUMN published_at;

-- Rows Kafka refused for what they are (too large, a malformed header or topic name), set
-- aside with the reason so the events behind them are not held up forever. Nothing reads
-- them automatically: an operator fixes the cause and moves a row back into outbox.
CREATE TABLE outbox_dead (
    id             bigint      PRIMARY KEY,
    event_id       text        NOT NULL,
    topic          text        NOT NULL,
    key            text        NOT NULL,
    headers        jsonb       NOT NULL,
    payload        bytea       NOT NULL,
    created_at     timestamptz NOT NULL,
    dead_at        timestamptz NOT NULL DEFAULT now(),
    reason         text        NOT NULL
);
