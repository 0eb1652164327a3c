-- Every event this service acted on, in arrival order: the input of routing and digests.
CREATE TABLE event_journal (
    id              bigserial PRIMARY KEY,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    source          text        NOT NULL,
    subject         text,
    correlation_id  text,
    payload         jsonb       NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_journal_event ON event_journal (event_id);
