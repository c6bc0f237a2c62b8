-- One tenant's Identity data, v1 (PostgreSQL: the schema tenant_<32 hex>, owned by the tenant's
-- own NOLOGIN role, run with that role and search_path, so the tables belong to it). The tenant
-- is the schema, so no row carries a tenant id. Secrets are stored only hashed: client secrets
-- and passwords with PBKDF2, codes and refresh tokens with SHA-256.

CREATE TABLE clients (
    client_id                 TEXT PRIMARY KEY,
    client_type               TEXT NOT NULL CHECK (client_type IN ('confidential', 'public')),
    secret_hash               TEXT,
    scopes                    TEXT NOT NULL,
    audiences                 TEXT NOT NULL,
    grant_types               TEXT NOT NULL,
    redirect_uris             TEXT NOT NULL,
    roles                     TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    display_name              TEXT,
    created_at                BIGINT NOT NULL
);

-- Usernames are unique within the tenant: the sign-in form of a client looks a name up in the
-- client's tenant only.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- One row per issued code. used_at is set exactly once (a conditional UPDATE); a second
-- presentation finds it set and revokes what the first one issued (access_jti, family_id).
CREATE TABLE auth_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id),
    user_id        TEXT NOT NULL REFERENCES users (user_id),
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
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);

-- A refresh token family: everything rotated from one code exchange, tied to the browser
-- session that signed in. Revoking the family (reuse detected, sign-out of that session,
-- RFC 7009) refuses every refresh token in it.
CREATE TABLE refresh_families (
    family_id    TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES clients (client_id),
    user_id      TEXT NOT NULL REFERENCES users (user_id),
    auth_time    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    session_hash TEXT
);
CREATE INDEX refresh_families_session ON refresh_families (session_hash);

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

-- The tenant's revoked access tokens, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
