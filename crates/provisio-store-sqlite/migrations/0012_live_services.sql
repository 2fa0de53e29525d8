-- How many services (not terminated) each configuration holds, kept by
-- triggers on every change of a service, so a claim deploying a service
-- reads one row per configuration instead of counting every service.
ALTER TABLE configurations ADD COLUMN live_services INTEGER NOT NULL DEFAULT 0;
UPDATE configurations SET live_services = (
    SELECT COUNT(*) FROM services s WHERE s.configuration_id = configurations.id AND s.status <> 'terminated'
);

CREATE TRIGGER services_counted_insert AFTER INSERT ON services
WHEN NEW.configuration_id IS NOT NULL AND NEW.status <> 'terminated'
BEGIN
    UPDATE configurations SET live_services = live_services + 1 WHERE id = NEW.configuration_id;
END;

CREATE TRIGGER services_counted_delete AFTER DELETE ON services
WHEN OLD.configuration_id IS NOT NULL AND OLD.status <> 'terminated'
BEGIN
    UPDATE configurations SET live_services = live_services - 1 WHERE id = OLD.configuration_id;
END;

CREATE TRIGGER services_counted_update AFTER UPDATE OF configuration_id, status ON services
WHEN OLD.configuration_id IS NOT NEW.configuration_id
    OR (OLD.status = 'terminated') <> (NEW.status = 'terminated')
BEGIN
    UPDATE configurations SET live_services = live_services - 1
        WHERE id = OLD.configuration_id AND OLD.status <> 'terminated';
    UPDATE configurations SET live_services = live_services + 1
        WHERE id = NEW.configuration_id AND NEW.status <> 'terminated';
END;
