-- Sync and drift: how a product meets a difference between a service's
-- record and its system, when each service was last compared, and the
-- differences found (open until resolved).
ALTER TABLE products ADD COLUMN drift_response TEXT NOT NULL DEFAULT 'report';
ALTER TABLE services ADD COLUMN synced_at INTEGER;
-- Live services by when they were last compared (or made): the sync
-- scheduler's question, answered from the index.
CREATE INDEX services_by_sync ON services(COALESCE(synced_at, created_at)) WHERE status IN ('active', 'suspended');
CREATE TABLE drifts (
    id INTEGER PRIMARY KEY,
    service_id INTEGER NOT NULL REFERENCES services(id),
    field TEXT NOT NULL,
    recorded TEXT NOT NULL,
    real TEXT NOT NULL,
    detected_at INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolution TEXT
);
CREATE UNIQUE INDEX drifts_open ON drifts(service_id, field) WHERE resolved_at IS NULL;
CREATE INDEX drifts_by_time ON drifts(detected_at);
