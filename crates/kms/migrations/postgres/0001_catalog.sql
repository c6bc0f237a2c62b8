-- KMS catalog on PostgreSQL, v1: the seal, the tenants and the database realm's users, in the
-- database's own schema. Key pools and versions live in one schema per tenant
-- (migrations/tenant/postgres), never here. Integers the service binds as i64 are BIGINT.

CREATE TABLE seal (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    barrier     TEXT   NOT NULL,
    sealed_root TEXT   NOT NULL,
    created_at  TEXT   NOT NULL
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

-- Passwords are PBKDF2-SHA256 PHC strings, never plaintext.
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    roles         TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
