-- Invitees, invitations, RSVP history and attendance for the Rakor.

ALTER TABLE meetings
    ADD COLUMN cancelled_at  timestamptz,
    ADD COLUMN cancel_reason text,
    ADD COLUMN concluded_at  timestamptz,
    -- Bumped on each reschedule: calendar clients replace an entry with a higher SEQUENCE.
    ADD COLUMN sequence      integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT meetings_status_known CHECK (status IN ('scheduled', 'cancelled', 'concluded'));

-- Who holds each seat: one official per region and role.
CREATE TABLE invitees (
    region_code  text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('sekda', 'kepala_bpkad', 'kepala_disnaker')),
    name         text        NOT NULL,
    title        text        NOT NULL,
    email        text        NOT NULL,
    phone        text,
    webhook_url  text,
    updated_by   text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_code, role)
);

CREATE TABLE invitations (
    invitation_id   uuid PRIMARY KEY,
    meeting_id      uuid        NOT NULL REFERENCES meetings (meeting_id),
    region_code     text        NOT NULL,
    role            text        NOT NULL,
    -- The invitee as invited (a copy: later directory edits do not rewrite history).
    name            text        NOT NULL,
    title           text        NOT NULL DEFAULT '',
    email           text,
    phone           text,
    webhook_url     text,
    delegated_from  uuid REFERENCES invitations (invitation_id),
    -- active, or withdrawn when the official who delegated changes their answer.
    status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'withdrawn')),
    response        text CHECK (response IN ('accepted', 'declined', 'delegated')),
    reason          text        NOT NULL DEFAULT '',
    delegate_invitation_id uuid REFERENCES invitations (invitation_id),
    responded_at    timestamptz,
    attended        boolean     NOT NULL DEFAULT false,
    attended_at     timestamptz,
    rsvp_expires_at timestamptz NOT NULL,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'delegate') = (delegated_from IS NOT NULL))
);
-- Issuing twice creates nothing new: one original invitation per seat and meeting.
CREATE UNIQUE INDEX invitations_one_per_seat ON invitations (meeting_id, region_code, role)
    WHERE delegated_from IS NULL;
CREATE INDEX invitations_by_meeting ON invitations (meeting_id);

-- Every answer ever given, including changed ones.
CREATE TABLE responses (
    id                bigserial PRIMARY KEY,
    invitation_id     uuid        NOT NULL REFERENCES invitations (invitation_id),
    response          text        NOT NULL,
    reason            text        NOT NULL DEFAULT '',
    delegate          jsonb,
    previous_response text,
    responded_at      timestamptz NOT NULL
);
CREATE INDEX responses_by_invitation ON responses (invitation_id, id);
