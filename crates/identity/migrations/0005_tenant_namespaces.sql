-- Identity schema v5 (the catalog): tenant isolation. The tenants, each with a namespace
-- of its own (a file tenants/<32 hex>.db); the directory that finds a client's
-- tenant by its client_id; browser sessions, which now name the tenant of the user who signed
-- in. The shared tables of earlier versions (clients, users, codes, refresh tokens, revoked
-- tokens) stay, emptied at start once their rows are moved into the tenants' namespaces
-- (store/sqlite.rs).

CREATE TABLE tenants (
    tenant_id  TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE client_directory (
    client_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id)
);

-- Sessions named a user of the shared users table; they now name a tenant and a user in it.
-- Sessions of the old form are dropped: their users sign in again.
DROP TABLE sessions;
CREATE TABLE sessions (
    session_hash TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (tenant_id),
    user_id      TEXT NOT NULL,
    auth_time    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
