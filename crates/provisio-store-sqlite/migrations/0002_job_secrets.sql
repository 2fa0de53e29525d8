-- Secret params of a job (a password from an event or a staff action), sealed by the engine.
ALTER TABLE jobs ADD COLUMN secrets BLOB;
