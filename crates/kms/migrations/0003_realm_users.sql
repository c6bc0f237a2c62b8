-- KMS schema v3: the database realm's table gets the name the design gives it. Same columns,
-- same rows.
ALTER TABLE users RENAME TO kms_realm_users;
