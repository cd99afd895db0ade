-- Console sessions (issue 24): an API key signed in at `/console` is exchanged for a
-- session cookie. Only the hex SHA-256 of the cookie's token is stored, so a read of this
-- table cannot be replayed as a session; any replica on the same database accepts it.
-- A revoked key ends its sessions (the lookup joins `api_keys`).
CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES api_keys (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires_at_idx ON console_sessions (expires_at);

-- The console's audit search by request id (plugin, capability and time have theirs).
CREATE INDEX capability_audit_request_id_idx ON capability_audit (request_id);
