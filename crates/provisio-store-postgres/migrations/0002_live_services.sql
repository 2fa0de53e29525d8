-- How many services (not terminated) each configuration holds, kept by a
-- trigger on every change of a service (SQLite's 0012), so a claim
-- deploying a service reads one row per configuration instead of counting
-- every service while it holds the admission lock.
-- No service may change between the count and the triggers (processes of the
-- previous version may still be running): they wait for this transaction.
LOCK TABLE services IN SHARE MODE;
ALTER TABLE configurations ADD COLUMN live_services BIGINT NOT NULL DEFAULT 0;
UPDATE configurations c SET live_services = (
    SELECT COUNT(*) FROM services s WHERE s.configuration_id = c.id AND s.status <> 'terminated'
);

CREATE FUNCTION provisio_count_live_services() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF OLD.configuration_id IS NOT NULL AND OLD.status <> 'terminated' THEN
            UPDATE configurations SET live_services = live_services - 1 WHERE id = OLD.configuration_id;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.configuration_id IS NOT NULL AND NEW.status <> 'terminated' THEN
            UPDATE configurations SET live_services = live_services + 1 WHERE id = NEW.configuration_id;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER services_counted AFTER INSERT OR DELETE ON services
    FOR EACH ROW EXECUTE FUNCTION provisio_count_live_services();
CREATE TRIGGER services_counted_update AFTER UPDATE OF configuration_id, status ON services
    FOR EACH ROW
    WHEN (OLD.configuration_id IS DISTINCT FROM NEW.configuration_id
          OR (OLD.status = 'terminated') IS DISTINCT FROM (NEW.status = 'terminated'))
    EXECUTE FUNCTION provisio_count_live_services();
