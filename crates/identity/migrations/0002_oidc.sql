-- Identity schema v2: users, browser sessions, authorization codes and refresh tokens.
-- Codes, refresh tokens and session ids are stored only as SHA-256 hashes; passwords as PBKDF2.

ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    session_hash TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (user_id),
    auth_time    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

-- One row per issued code. used_at is set exactly once (a conditional UPDATE); a second
-- presentation finds it set and revokes what the first one issued (access_jti, family_id).
CREATE TABLE auth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce          TEXT,
    auth_time      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    access_jti     TEXT,
    access_exp     INTEGER,
    family_id      TEXT,
    session_hash   TEXT
);

-- A refresh token family: everything rotated from one code exchange, tied to the browser
-- session that signed in. Revoking the family (reuse detected, logout of that session,
-- RFC 7009) refuses every refresh token in it.
CREATE TABLE refresh_families (
    family_id    TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    auth_time    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    session_hash TEXT
);
CREATE INDEX refresh_families_session ON refresh_families (session_hash);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);

-- Each refresh token, with the access token issued beside it (revoked with the family).
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families (family_id),
    scope      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    access_jti TEXT NOT NULL,
    access_exp INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
