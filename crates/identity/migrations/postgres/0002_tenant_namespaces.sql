-- Identity schema v2 on PostgreSQL (the catalog, in public): tenant isolation. The tenants, each with a namespace
-- of its own (a schema tenant_<32 hex> owned by a role of its own); the directory that finds a client's
-- tenant by its client_id; browser sessions, which now name the tenant of the user who signed
-- in. The shared tables of earlier versions (clients, users, codes, refresh tokens, revoked
-- tokens) stay, emptied at start once their rows are moved into the tenants' namespaces
-- (store/postgres.rs).

CREATE TABLE tenants (
    tenant_id  TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
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
    auth_time    BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
