-- Identity schema v6 (the catalog): small secrets of the service itself, each wrapped by the
-- barrier's root key (context `identity/<name>`), made once at first start: the key of the API
-- keys' HMACs (`api-key-mac`).

CREATE TABLE sealed_values (
    name    TEXT PRIMARY KEY,
    wrapped BLOB NOT NULL
);
