-- Identity schema v3: the name the sign-in page shows for a client (NULL: its client_id).

ALTER TABLE clients ADD COLUMN display_name TEXT;
