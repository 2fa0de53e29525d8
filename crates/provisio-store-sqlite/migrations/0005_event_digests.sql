-- A keyed digest of each event's canonical body: the same id with another
-- body is refused (409) instead of being taken for a duplicate.
ALTER TABLE events ADD COLUMN body_digest TEXT;
