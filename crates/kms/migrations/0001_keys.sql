-- KMS schema v1. Portable SQL: the PostgreSQL store runs the same statements.
-- Every row carries its tenant; key material is stored only wrapped by the barrier's root key.

CREATE TABLE seal (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    barrier     TEXT    NOT NULL,
    sealed_root TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE pools (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE key_versions (
    tenant_id  TEXT    NOT NULL,
    pool       TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    material   BLOB    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, pool, version),
    FOREIGN KEY (tenant_id, pool) REFERENCES pools (tenant_id, name)
);
