-- KMS schema v2: the database realm. Passwords are PBKDF2-SHA256 PHC strings, never plaintext.
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    roles         TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
