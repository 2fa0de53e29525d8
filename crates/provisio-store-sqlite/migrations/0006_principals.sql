-- Who may call: staff tokens get a scope; clients get short-lived sessions
-- minted by the billing system; billing systems may sign their events.

-- Tokens made before scopes existed keep the rights they had.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin'
    CHECK (scope IN ('read', 'operate', 'admin'));

-- A client's session: a bearer token (kept as a keyed digest) and, for a
-- session minted by billing, a one-time hand-off code that opens the client
-- area logged in (redeeming it opens a browser session of its own).
CREATE TABLE client_sessions (
    id INTEGER PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES clients(id),
    digest TEXT NOT NULL UNIQUE,
    handoff_digest TEXT UNIQUE,
    handoff_expires_at INTEGER,
    handoff_used_at INTEGER,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX client_sessions_by_client ON client_sessions(client_id, id);
CREATE INDEX client_sessions_by_expiry ON client_sessions(expires_at);

-- A billing system that signs what it sends: HMAC-SHA256 under its secret
-- (sealed, AAD "event_source:<id>"); `kind` says which format it speaks.
CREATE TABLE event_sources (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('provisio', 'stripe')),
    secrets BLOB NOT NULL,
    -- How a foreign format maps to products (JSON).
    mapping TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Signatures already accepted, kept for longer than the tolerance, so a
-- captured request cannot be sent again.
CREATE TABLE source_receipts (
    source_id INTEGER NOT NULL REFERENCES event_sources(id),
    signature_digest TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (source_id, signature_digest)
);
CREATE INDEX source_receipts_by_time ON source_receipts(received_at);
