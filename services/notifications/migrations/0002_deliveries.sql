-- The recipient directory: staff and officials, their addresses and channel preferences.
CREATE TABLE recipients (
    recipient_id  text PRIMARY KEY,
    name          text        NOT NULL,
    title         text        NOT NULL DEFAULT '',
    role          text        NOT NULL,
    region_code   text,
    email         text,
    webhook_url   text,
    channels      text[]      NOT NULL DEFAULT '{email}',
    muted         text[]      NOT NULL DEFAULT '{}',
    active        boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recipients_role ON recipients (role, region_code) WHERE active;

-- One row per (event, recipient, channel): written in the consuming transaction (the intent),
-- before anything is sent. The UNIQUE constraint is what makes delivery at most once per key.
CREATE TABLE deliveries (
    delivery_id        uuid PRIMARY KEY,
    source_event_id    text        NOT NULL,
    source_event_type  text        NOT NULL,
    correlation_id     text,
    recipient_id       text        NOT NULL,
    recipient_name     text        NOT NULL,
    channel            text        NOT NULL CHECK (channel IN ('email', 'webhook')),
    address            text        NOT NULL,
    template           text        NOT NULL,
    subject            text,
    text_body          text,
    html_body          text,
    ics                text,
    status             text        NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts           integer     NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    lease_until        timestamptz,
    lease_token        uuid,
    last_error         text,
    reason             text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    sent_at            timestamptz,
    failed_at          timestamptz,
    UNIQUE (source_event_id, recipient_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_recipient ON deliveries (recipient_id, created_at);

-- Events routed to a digest instead of a message each; folded into one digest per day.
CREATE TABLE digest_items (
    source_event_id    text        NOT NULL,
    source_event_type  text        NOT NULL,
    recipient_id       text        NOT NULL,
    channel            text        NOT NULL,
    day                date        NOT NULL,
    region_code        text,
    data               jsonb       NOT NULL,
    digest_id          text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_event_id, recipient_id, channel)
);
CREATE INDEX digest_items_open ON digest_items (recipient_id, day) WHERE digest_id IS NULL;

-- Invitees as the invitation events named them: the audience of later meeting-wide notices
-- (rescheduled, cancelled), whose events carry the meeting but not its invitee list.
CREATE TABLE invitees (
    invitation_id  uuid PRIMARY KEY,
    meeting_id     uuid        NOT NULL,
    region_code    text,
    name           text        NOT NULL,
    title          text        NOT NULL DEFAULT '',
    email          text,
    webhook_url    text,
    active         boolean     NOT NULL DEFAULT true,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invitees_meeting ON invitees (meeting_id) WHERE active;
