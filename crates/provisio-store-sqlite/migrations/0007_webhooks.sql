-- Billing systems and others out: subscribers to what happens to services
-- and jobs, and the deliveries made to them (an outbox: a delivery is
-- recorded in the transaction that changed the service).

CREATE TABLE webhook_subscribers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    -- The signing secret, sealed (AAD "webhook:<id>").
    secrets BLOB NOT NULL,
    -- The event types it wants (JSON array).
    event_types TEXT NOT NULL,
    -- Whether service.activated carries the credentials answered at setup.
    include_credentials INTEGER NOT NULL DEFAULT 0,
    -- Whether its host may resolve to a private or loopback address.
    allow_private INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES webhook_subscribers(id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    service_id INTEGER,
    -- The body sent, without credentials (they are read from the service's
    -- sealed secrets when sent).
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'delivering', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_status INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at, id) WHERE state = 'queued';
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries(lease_until) WHERE state = 'delivering';
CREATE INDEX webhook_deliveries_by_subscriber ON webhook_deliveries(subscriber_id, id);
