-- Dead letters too big to travel as a copy on `<topic>.dlq` (a record near the broker's
-- size limit plus the reason headers would be over it), or whose header names are not
-- UTF-8 and so cannot be re-sent as they are. The dead-letter record then carries the
-- reason, the source position and `dlq_body_ref`; the exact bytes are kept here.
CREATE TABLE dead_letter_bodies (
    id                 bigserial   PRIMARY KEY,
    consumer           text        NOT NULL,
    topic              text        NOT NULL,
    kafka_partition    integer     NOT NULL,
    kafka_offset       bigint      NOT NULL,
    record_key         bytea,
    record_value       bytea,
    -- [[name as bytes (hex), value as bytes (hex) or null], ...] in the order sent.
    record_headers     jsonb       NOT NULL,
    reason             text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer, topic, kafka_partition, kafka_offset)
);

-- An operator's request to move a consumer past one record nothing can handle
-- (`ntbctl consumer skip`). The consumer dead-letters that record with the reason below
-- and marks the row done: the record is never dropped, and who asked is kept.
CREATE TABLE consumer_skips (
    consumer         text        NOT NULL,
    topic            text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    reason           text        NOT NULL,
    requested_by     text        NOT NULL,
    requested_at     timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz,
    PRIMARY KEY (consumer, topic, kafka_partition, kafka_offset)
);
