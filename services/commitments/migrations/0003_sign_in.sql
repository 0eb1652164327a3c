-- Sign-in links mailed to staff: only the SHA-256 of the token is kept, so a database read
-- cannot sign anyone in; used_at makes a link single-use.
CREATE TABLE sign_in_links (
    token_hash  text        PRIMARY KEY,
    email       text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX sign_in_links_email ON sign_in_links (email, created_at);
