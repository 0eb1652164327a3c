-- Durable timers: reminders, deadlines, escalations, digests. They live with the state
-- they belong to, survive restarts, and fire once however many replicas run.
CREATE TABLE timers (
    id            bigserial PRIMARY KEY,
    kind          text        NOT NULL,
    key           text        NOT NULL,
    due_at        timestamptz NOT NULL,
    payload       jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    fired_at      timestamptz,
    cancelled_at  timestamptz,
    failed_at     timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    UNIQUE (kind, key)
);
CREATE INDEX timers_pending ON timers (due_at)
    WHERE fired_at IS NULL AND cancelled_at IS NULL AND failed_at IS NULL;
