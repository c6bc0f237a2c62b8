-- One tenant's Identity data, v2: API keys (docs/identity.md, "API keys"). The secret is stored
-- only as an HMAC-SHA256 under a key sealed by the barrier (a high-entropy secret needs no slow
-- hash, docs/security.md). During a rotation's overlap the previous secret's MAC is kept until
-- previous_until. A deleted key keeps its row (deleted_at) until the retention period ends.

CREATE TABLE api_keys (
    key_id         TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    owner_kind     TEXT NOT NULL CHECK (owner_kind IN ('user', 'client')),
    owner_id       TEXT NOT NULL,
    secret_mac     BYTEA NOT NULL,
    previous_mac   BYTEA,
    previous_until BIGINT,
    permissions    TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT,
    last_used_at   BIGINT,
    deleted_at     BIGINT
);
CREATE INDEX api_keys_owner ON api_keys (owner_kind, owner_id);
-- A name is unique per owner among the keys not deleted (a restore can conflict).
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (owner_kind, owner_id, name) WHERE deleted_at IS NULL;
