-- Sign-in mails are queued in their link's row and mailed with retry (sign_in_mail.py). The token
-- is rebuilt from link_id under the session secret; the table still holds only its SHA-256.
-- Rows from before this migration were mailed at once (or not at all): they are not queued.
ALTER TABLE sign_in_links
    ADD COLUMN link_id       uuid,
    ADD COLUMN mail_state    text        NOT NULL DEFAULT 'sent'
        CHECK (mail_state IN ('pending', 'sent', 'failed', 'expired')),
    ADD COLUMN mail_attempts integer     NOT NULL DEFAULT 0 CHECK (mail_attempts >= 0),
    ADD COLUMN mail_next_at  timestamptz,
    ADD COLUMN mail_error    text,
    -- The page the person was on when asked to sign in (a notice's link): where the link leads back.
    ADD COLUMN next_path     text        CHECK (length(next_path) <= 80);
CREATE UNIQUE INDEX sign_in_links_link_id ON sign_in_links (link_id);
CREATE INDEX sign_in_links_pending ON sign_in_links (mail_next_at) WHERE mail_state = 'pending';
