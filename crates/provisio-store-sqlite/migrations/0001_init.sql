-- Provisio's schema. Times are Unix milliseconds (UTC).

CREATE TABLE configurations (
    id INTEGER PRIMARY KEY,
    blueprint TEXT NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    -- Configuration values with secret fields replaced by "[REDACTED]".
    config_values TEXT NOT NULL,
    -- The secret fields, encrypted (XChaCha20-Poly1305: nonce || ciphertext).
    secrets BLOB,
    attributes TEXT NOT NULL DEFAULT '{}',
    max_services INTEGER,
    max_concurrency INTEGER NOT NULL DEFAULT 8,
    rate_per_minute INTEGER,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    blueprint TEXT NOT NULL,
    -- NULL: chosen automatically among the blueprint's providers.
    provider TEXT,
    deployment TEXT NOT NULL CHECK (deployment IN ('static', 'dynamic')),
    configuration_id INTEGER REFERENCES configurations(id),
    strategy TEXT CHECK (strategy IN ('least_used', 'round_robin', 'fill')),
    attribute_filters TEXT NOT NULL DEFAULT '{}',
    setup_function TEXT NOT NULL,
    provision_fields TEXT NOT NULL DEFAULT '{}',
    rules TEXT NOT NULL DEFAULT '[]',
    round_robin_cursor INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE clients (
    id INTEGER PRIMARY KEY,
    external_id TEXT UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE services (
    id INTEGER PRIMARY KEY,
    external_id TEXT UNIQUE,
    client_id INTEGER NOT NULL REFERENCES clients(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    status TEXT NOT NULL,
    -- The status once every queued job has succeeded; rules are matched against it.
    projected_status TEXT NOT NULL,
    identifier TEXT,
    configuration_id INTEGER REFERENCES configurations(id),
    -- Customer fields, preset fields and earlier results (secret result fields masked).
    provision_data TEXT NOT NULL DEFAULT '{}',
    -- Secret result fields, encrypted.
    secrets BLOB,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX services_by_configuration ON services(configuration_id, status);
CREATE INDEX services_by_status ON services(status);

CREATE TABLE service_history (
    id INTEGER PRIMARY KEY,
    service_id INTEGER NOT NULL REFERENCES services(id),
    at INTEGER NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    job_id INTEGER,
    note TEXT NOT NULL
);
CREATE INDEX history_by_service ON service_history(service_id, id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    service_id INTEGER NOT NULL REFERENCES services(id),
    payload TEXT NOT NULL,
    occurred_at TEXT,
    received_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    service_id INTEGER NOT NULL REFERENCES services(id),
    event_id INTEGER REFERENCES events(id),
    function TEXT NOT NULL,
    -- Extra params from the rule and the event, merged over provision data at run time.
    args TEXT NOT NULL DEFAULT '{}',
    origin TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    lease_until INTEGER,
    locked_by TEXT,
    -- Set when the last attempt's outcome is unknown: run get_info before trying again.
    reconcile INTEGER NOT NULL DEFAULT 0,
    configuration_id INTEGER REFERENCES configurations(id),
    idempotency_key TEXT NOT NULL,
    message TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
-- Jobs still to run, in claim order.
CREATE INDEX jobs_ready ON jobs(run_at, id) WHERE state IN ('queued', 'retrying');
-- Unfinished jobs per service, for one-at-a-time in event order.
CREATE INDEX jobs_open_by_service ON jobs(service_id, id) WHERE state IN ('queued', 'retrying', 'running');
CREATE INDEX jobs_running ON jobs(lease_until) WHERE state = 'running';
CREATE INDEX jobs_by_service ON jobs(service_id, id);
CREATE INDEX jobs_by_state ON jobs(state, id);

CREATE TABLE job_attempts (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    number INTEGER NOT NULL,
    function TEXT NOT NULL,
    configuration_id INTEGER,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    envelope TEXT NOT NULL,
    http_log TEXT NOT NULL
);
CREATE INDEX attempts_by_job ON job_attempts(job_id, number);
CREATE INDEX attempts_by_configuration ON job_attempts(configuration_id, started_at);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
