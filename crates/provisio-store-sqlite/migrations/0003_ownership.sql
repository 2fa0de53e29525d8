-- Each service's owner mark: the stable reference providers record at the
-- vendor, so a service adopts or changes only what it made itself.
ALTER TABLE services ADD COLUMN owner_mark TEXT;
UPDATE services SET owner_mark = 'prv-legacy-' || id WHERE owner_mark IS NULL;

-- At most one live service per (configuration, identifier): the reservation
-- is made in the transaction that records the order (or claims its setup),
-- so two concurrent orders of one name cannot both win.
CREATE UNIQUE INDEX services_live_identifier ON services(configuration_id, identifier)
    WHERE status <> 'terminated' AND identifier IS NOT NULL AND configuration_id IS NOT NULL;
CREATE INDEX services_by_identifier ON services(identifier) WHERE identifier IS NOT NULL;

-- Jobs run at once by their caller (on-demand actions): never queued, never
-- retried by a worker; one whose process died is failed, not run again.
ALTER TABLE jobs ADD COLUMN on_demand INTEGER NOT NULL DEFAULT 0;
-- Running jobs per service, for "never two at once".
CREATE INDEX jobs_running_by_service ON jobs(service_id) WHERE state = 'running';
