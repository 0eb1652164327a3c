-- The relay's copy of a row's headers, packed (MessagePack: an array of [text, binary] pairs)
-- by the platform's writers beside `headers`. Unpacking gives the relay the (name, bytes)
-- pairs Kafka sends in one C call; parsing the jsonb's text and encoding every value took
-- about a third of the relay's CPU (docs/performance.md, B3). `headers` stays what is kept,
-- set aside, shown and requeued; a row written without a pack (a requeue, SQL by hand) is
-- read from `headers`, as before.
ALTER TABLE outbox ADD COLUMN header_pack bytea;
