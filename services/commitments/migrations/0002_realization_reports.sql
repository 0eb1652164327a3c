-- Realization reports apply once by the sender's report_id, and the newest report of a
-- month wins (docs/integration.md, "Realization reports"): a correction replaces the
-- figure; a superseded report resent, or an older one arriving late, changes nothing.
CREATE TABLE realization_reports (
    report_id    text        PRIMARY KEY,
    region_code  text        NOT NULL,
    fiscal_year  integer     NOT NULL,
    segment      text        NOT NULL,
    period       date        NOT NULL,
    reported_at  timestamptz NOT NULL,
    applied      boolean     NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO realization_reports (report_id, region_code, fiscal_year, segment, period, reported_at, applied)
SELECT report_id, region_code, fiscal_year, segment, period, recorded_at, true FROM realization;

-- When the figure in place was reported: a report replaces it only if it is newer.
ALTER TABLE realization ADD COLUMN reported_at timestamptz;
UPDATE realization SET reported_at = recorded_at;
ALTER TABLE realization ALTER COLUMN reported_at SET NOT NULL;
ALTER TABLE realization DROP CONSTRAINT realization_report_id_key;
