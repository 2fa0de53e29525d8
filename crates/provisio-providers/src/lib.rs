//! The registry of every provider compiled into Provisio.
//!
//! Adding an integration: a crate under `providers/`, a dependency here, and
//! one line in [`registry`].

use provisio_sdk::Registry;

/// Every blueprint and every compiled-in provider.
pub fn registry() -> Registry {
    let mut registry = Registry::new(provisio_sdk::blueprints::all());
    for entry in provisio_demo::entries() {
        registry.register(entry);
    }
    registry.register(provisio_postgresql::entry());
    registry.register(provisio_mariadb::entry());
    registry.register(provisio_powerdns::entry());
    registry.register(provisio_cpanel::entry());
    registry.register(provisio_plesk::entry());
    registry.register(provisio_epp::entry());
    registry.register(provisio_epp::nominet::entry());
    registry.register(provisio_hexonet::entry());
    registry.register(provisio_enom::entry());
    registry.register(provisio_acme::entry());
    registry.register(provisio_rabbitmq::entry());
    registry.register(provisio_mosquitto::entry());
    registry.register(provisio_coffee_mqtt::entry());
    // `BLUEPRINT/http` for every blueprint: configured, not written.
    for entry in provisio_generic_http::entries(registry.blueprints()) {
        registry.register(entry);
    }
    registry
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_blueprint_has_a_demo_provider() {
        let registry = super::registry();
        assert_eq!(registry.blueprints().len(), 10);
        for blueprint in registry.blueprints() {
            let address = format!("{}/demo", blueprint.id);
            assert!(registry.provider(&address).is_ok(), "{address} missing");
        }
    }
}
