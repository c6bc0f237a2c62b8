-- One tenant's keys, v1 (PostgreSQL: the schema tenant_<32 hex>, owned by the tenant's own
-- NOLOGIN role, run with that role and search_path, so the tables belong to it). The tenant is
-- the schema, so no row carries a tenant id; key material is stored only wrapped by the
-- barrier's root key. Integers the service binds as i64 are BIGINT, blobs BYTEA.

CREATE TABLE pools (
    name       TEXT PRIMARY KEY,
    algorithm  TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE key_versions (
    pool       TEXT   NOT NULL REFERENCES pools (name),
    version    BIGINT NOT NULL CHECK (version >= 1),
    enabled    BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    material   BYTEA  NOT NULL,
    created_at TEXT   NOT NULL,
    PRIMARY KEY (pool, version)
);
