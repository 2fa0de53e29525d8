-- Import: a listed resource's owner mark names the service it belongs to,
-- and a resource's contact e-mail finds its client.
CREATE INDEX services_by_owner_mark ON services(owner_mark);
CREATE INDEX clients_by_email ON clients(lower(email));
