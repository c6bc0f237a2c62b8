-- One tenant's keys, v1 (SQLite: the file tenants/<32 hex>.db beside the catalog). The tenant is
-- the file, so no row carries a tenant id; key material is stored only wrapped by the barrier's
-- root key, bound to tenant, pool, version and algorithm.

CREATE TABLE pools (
    name       TEXT PRIMARY KEY,
    algorithm  TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE key_versions (
    pool       TEXT    NOT NULL REFERENCES pools (name),
    version    INTEGER NOT NULL CHECK (version >= 1),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    material   BLOB    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (pool, version)
);
