-- Usage samples: what get_usage answered for a service, now and then, for
-- usage reports over time.
CREATE TABLE usage_samples (
    id INTEGER PRIMARY KEY,
    service_id INTEGER NOT NULL REFERENCES services(id),
    configuration_id INTEGER REFERENCES configurations(id),
    sampled_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX usage_samples_by_service ON usage_samples(service_id, sampled_at);
CREATE INDEX usage_samples_by_time ON usage_samples(sampled_at);
-- Finished jobs by time, for the daily job report.
CREATE INDEX jobs_by_finish ON jobs(finished_at) WHERE finished_at IS NOT NULL;
