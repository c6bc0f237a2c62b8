-- Identity schema for PostgreSQL, v1: the SQLite schema's four migrations (../0001 to ../0004)
-- in one. Same tables, columns, keys and indexes; times are Unix seconds in BIGINT, the wrapped
-- signing keys BYTEA. Secrets are stored only hashed (client secrets, passwords, codes, refresh
-- tokens, session ids) or sealed (signing keys). The two engines number their migrations
-- independently; each migrator refuses a database newer than it knows.

CREATE TABLE seal (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    barrier     TEXT NOT NULL,
    sealed_root TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Signing keys: 'next' is published but does not sign yet, 'current' signs, 'retired' stays
-- published until retire_after (when every token it signed has expired). At most one 'next'
-- and one 'current': replicas initialising at once keep one of each.
CREATE TABLE signing_keys (
    kid          TEXT   PRIMARY KEY,
    state        TEXT   NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    private_key  BYTEA  NOT NULL,
    public_jwk   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    retire_after BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_per_stage ON signing_keys (state) WHERE state <> 'retired';

CREATE TABLE clients (
    client_id                 TEXT PRIMARY KEY,
    client_type               TEXT NOT NULL CHECK (client_type IN ('confidential', 'public')),
    secret_hash               TEXT,
    scopes                    TEXT NOT NULL,
    audiences                 TEXT NOT NULL,
    grant_types               TEXT NOT NULL,
    redirect_uris             TEXT NOT NULL,
    tenant_id                 TEXT NOT NULL,
    roles                     TEXT NOT NULL,
    created_at                BIGINT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '',
    display_name              TEXT
);

-- Revoked access tokens, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    session_hash TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (user_id),
    auth_time    BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
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
    auth_time      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    access_jti     TEXT,
    access_exp     BIGINT,
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
    auth_time    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
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
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    access_jti TEXT NOT NULL,
    access_exp BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
