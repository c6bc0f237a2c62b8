-- Identity schema v1. Secrets are stored only hashed (client secrets) or sealed (signing keys).

CREATE TABLE seal (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    barrier     TEXT NOT NULL,
    sealed_root TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Signing keys: 'next' is published but does not sign yet, 'current' signs, 'retired' stays
-- published until retire_after (when every token it signed has expired).
CREATE TABLE signing_keys (
    kid          TEXT    PRIMARY KEY,
    state        TEXT    NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    private_key  BLOB    NOT NULL,
    public_jwk   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    retire_after INTEGER
);

CREATE TABLE clients (
    client_id     TEXT PRIMARY KEY,
    client_type   TEXT NOT NULL CHECK (client_type IN ('confidential', 'public')),
    secret_hash   TEXT,
    scopes        TEXT NOT NULL,
    audiences     TEXT NOT NULL,
    grant_types   TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Revoked access tokens, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
