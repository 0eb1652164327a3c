CREATE TABLE meetings (
    meeting_id   uuid PRIMARY KEY,
    title        text        NOT NULL,
    agenda       text        NOT NULL DEFAULT '',
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    venue        text,
    online_url   text,
    organizer    text        NOT NULL,
    status       text        NOT NULL DEFAULT 'scheduled',
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Lets a client retry a POST safely: the same key returns the same meeting.
    idempotency_key text UNIQUE,
    CHECK (ends_at > starts_at)
);
