-- Staff tokens are stored as keyed digests (HMAC-SHA256 under a key derived
-- from the secrets key), so a copied database gives no way to test guesses.
-- Digests of the old kind (plain SHA-256) can match nothing: those tokens are
-- revoked, and the environment token is installed again at start.
ALTER TABLE api_tokens RENAME COLUMN token_sha256 TO digest;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
UPDATE api_tokens SET revoked_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000 WHERE revoked_at IS NULL;
-- One live token per name: the audit log names tokens.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens(name) WHERE revoked_at IS NULL;

-- Facts about this installation (the secrets key's check value).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
