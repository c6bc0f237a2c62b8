-- Identity schema v4: at most one 'next' and one 'current' signing key, enforced by the
-- database, so that instances initialising the keys at once keep one of each
-- (INSERT … ON CONFLICT DO NOTHING). PostgreSQL's v1 has the same index.

CREATE UNIQUE INDEX signing_keys_one_per_stage ON signing_keys (state) WHERE state <> 'retired';
