-- One commitment per region and fiscal year: the aggregate, locked (FOR UPDATE) by
-- every write so two reviewers cannot both act on the same state.
CREATE TABLE commitments (
    commitment_id   uuid PRIMARY KEY,
    region_code     text        NOT NULL,
    fiscal_year     integer     NOT NULL,
    status          text        NOT NULL,
    version         integer     NOT NULL DEFAULT 1,   -- bumped on every change (ETag / If-Match)
    deadline        timestamptz NOT NULL,
    meeting_id      uuid,
    revision        integer     NOT NULL DEFAULT 0,   -- submissions so far
    body            jsonb,                             -- latest draft or submission (CommitmentBody)
    total_workers   bigint      NOT NULL DEFAULT 0,
    total_rp        bigint      NOT NULL DEFAULT 0,
    max_months      integer     NOT NULL DEFAULT 0,
    worker_months   bigint      NOT NULL DEFAULT 0,
    rates_version   text,
    overdue_at      timestamptz,                       -- set when escalated; cleared by an extension
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (region_code, fiscal_year),
    CHECK (total_workers >= 0 AND total_rp >= 0)
);

-- Every submission as received; submission_id makes a resent one a no-op.
CREATE TABLE submissions (
    submission_id   text PRIMARY KEY,
    commitment_id   uuid        NOT NULL REFERENCES commitments,
    revision        integer     NOT NULL,
    channel         text        NOT NULL,
    submitted_by    text        NOT NULL,
    body            jsonb       NOT NULL,
    submitted_at    timestamptz NOT NULL,
    UNIQUE (commitment_id, revision)
);

-- Who moved a commitment from where to where, when and why.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    commitment_id   uuid        NOT NULL REFERENCES commitments,
    at              timestamptz NOT NULL,
    actor           text        NOT NULL,
    role            text        NOT NULL,
    action          text        NOT NULL,
    from_status     text,
    to_status       text        NOT NULL,
    reason          text        NOT NULL DEFAULT '',
    event_id        text
);
CREATE INDEX audit_log_commitment ON audit_log (commitment_id, id);

-- Enrollment and payments reported by BPJS Ketenagakerjaan, one row per region, year,
-- segment and month; a later report for the same month replaces the figure.
CREATE TABLE realization (
    region_code           text    NOT NULL,
    fiscal_year           integer NOT NULL,
    segment               text    NOT NULL,
    period                date    NOT NULL,
    report_id             text    NOT NULL UNIQUE,
    workers_enrolled      bigint  NOT NULL CHECK (workers_enrolled >= 0),
    contributions_paid_rp bigint  NOT NULL CHECK (contributions_paid_rp >= 0),
    recorded_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_code, fiscal_year, segment, period)
);
