-- Run once, on the database's first start (official and offline image alike): POSTGRES_DB is the
-- KMS's database; Identity gets its own beside it. Each service migrates its own schema.
CREATE DATABASE identity;
