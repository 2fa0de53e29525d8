//! The `--demo` seed: a client, a demo configuration per blueprint (two for
//! hosting, in different locations) and one product per blueprint, so a
//! newcomer sees automation work in a minute.

use serde_json::{Value, json};

use crate::{Catalog, EngineError};

/// The products the seed creates, by slug.
pub const PRODUCTS: [&str; 6] =
    ["demo-hosting", "demo-domain", "demo-dns", "demo-database", "demo-license", "demo-coffee"];

impl Catalog {
    /// Seeds demo data once; later calls change nothing. `state_path` is the
    /// demo providers' state file.
    pub async fn seed_demo(&self, state_path: &str) -> Result<bool, EngineError> {
        if self.engine.queries().product("demo-hosting").await.is_ok() {
            return Ok(false);
        }
        let actor = "demo-seed";
        let configuration = |name: &str, provider: &str, server: &str, location: &str| {
            json!({"name": name, "provider": provider, "attributes": {"location": location},
                   "values": {"state_path": state_path, "server": server}, "max_concurrency": 64})
        };
        let mut ids = Vec::new();
        for body in [
            configuration("demo-hosting-eu", "shared-hosting/demo", "hosting-eu1", "eu"),
            configuration("demo-hosting-us", "shared-hosting/demo", "hosting-us1", "us"),
            configuration("demo-registrar", "domain-names/demo", "registrar", "eu"),
            configuration("demo-dns", "dns-hosting/demo", "dns1", "eu"),
            configuration("demo-database", "databases/demo", "db1", "eu"),
            configuration("demo-licensing", "software-licenses/demo", "licensing", "eu"),
            configuration("demo-coffee-machine", "coffee/demo", "kitchen", "eu"),
            configuration("demo-broker", "message-queues/demo", "broker1", "eu"),
            configuration("demo-mqtt-broker", "mqtt-hosting/demo", "mqtt1", "eu"),
        ] {
            ids.push(self.create_configuration(actor, &body).await?.configuration.id);
        }
        let fixed = |id: i64| json!({"type": "static", "configuration_id": id});
        let products: [Value; 8] = [
            json!({"slug": "demo-hosting", "name": "Demo web hosting", "blueprint": "shared-hosting", "provider": "demo",
                   "deployment": {"type": "dynamic", "strategy": "least_used", "attributes": {"location": "eu"}},
                   "provision_fields": {"package_name": "basic"}}),
            json!({"slug": "demo-domain", "name": "Demo domain", "blueprint": "domain-names", "deployment": fixed(ids[2]),
                   "provision_fields": {"nameservers": ["ns1.demo.provisio.invalid", "ns2.demo.provisio.invalid"]}}),
            json!({"slug": "demo-dns", "name": "Demo DNS zone", "blueprint": "dns-hosting", "deployment": fixed(ids[3])}),
            json!({"slug": "demo-database", "name": "Demo database", "blueprint": "databases", "deployment": fixed(ids[4]),
                   "provision_fields": {"package_name": "basic"}}),
            json!({"slug": "demo-license", "name": "Demo licence", "blueprint": "software-licenses", "deployment": fixed(ids[5]),
                   "provision_fields": {"package_identifier": "basic"}}),
            json!({"slug": "demo-coffee", "name": "Demo coffee", "blueprint": "coffee", "deployment": fixed(ids[6]),
                   "provision_fields": {"size": "medium"}}),
            json!({"slug": "demo-queue", "name": "Demo message queue", "blueprint": "message-queues", "deployment": fixed(ids[7]),
                   "provision_fields": {"package_name": "basic"}}),
            json!({"slug": "demo-mqtt", "name": "Demo MQTT account", "blueprint": "mqtt-hosting", "deployment": fixed(ids[8])}),
        ];
        for body in products {
            self.create_product(actor, &body).await?;
        }
        self.create_client(
            actor,
            &json!({"external_id": "demo-client", "name": "Demo Client", "email": "demo@example.com"}),
        )
        .await?;
        Ok(true)
    }
}
