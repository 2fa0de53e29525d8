//! Two clients, one name, real servers (PostgreSQL, MariaDB, PowerDNS from
//! `scripts/test-servers`), through the engine: on one configuration the
//! second order is refused before any call; on a second configuration
//! pointing at the same server the provider's owner mark refuses it, and the
//! second client's cancellation cannot remove the first client's resource.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Configuration values of a real database server (its URL in `variable`),
/// over verified TLS with the test servers' CA.
fn database(variable: &str, default_port: u16) -> Option<Value> {
    let [text, ca] = provisio_conformance::test_servers([variable, "PROVISIO_TEST_CA"])?;
    let url = url::Url::parse(&text).unwrap();
    Some(json!({"host": url.host_str().unwrap(), "port": url.port().unwrap_or(default_port),
                "username": url.username(), "password": url.password().unwrap_or_default(),
                "ca_cert_pem": std::fs::read_to_string(ca).unwrap()}))
}

pub(crate) fn powerdns() -> Option<Value> {
    let [api, key] = provisio_conformance::test_servers(["PROVISIO_TEST_PDNS_API", "PROVISIO_TEST_PDNS_API_KEY"])?;
    Some(json!({"api_url": api, "api_key": key, "nameservers": ["ns1.provisio-test.net", "ns2.provisio-test.net"]}))
}

/// A configuration and a static product on it; answers the product's slug.
pub(crate) async fn product_on(app: &TestApp, name: &str, provider: &str, values: &Value) -> String {
    let (status, created) =
        app.post("/api/v1/configurations", json!({"name": name, "provider": provider, "values": values})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let blueprint = provider.split('/').next().unwrap();
    let slug = format!("{name}-product");
    let product = json!({"slug": slug, "name": name, "blueprint": blueprint,
        "deployment": {"type": "static", "configuration_id": created["id"]}});
    let (status, body) = app.post("/api/v1/products", product).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    slug
}

/// The whole case for one provider: `fields` name the resource.
async fn two_clients_one_name(provider: &str, values: Value, fields: Value) {
    let app = spawn_app().await;
    let first_product = product_on(&app, "real-1", provider, &values).await;
    let second_product = product_on(&app, "real-2", provider, &values).await;

    let alice = app.event(order_for("alice", "a1", "ca", &first_product, fields.clone())).await;
    let alice = alice["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(alice).await["service"]["status"], "active");

    // Same configuration: refused at the door.
    let (status, problem) =
        app.post("/api/v1/events", order_for("mallory", "m1", "cm1", &first_product, fields.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // Another configuration on the same server: the engine cannot know, the owner mark does.
    let mallory = app.event(order_for("mallory", "m2", "cm2", &second_product, fields.clone())).await;
    let mallory = mallory["service_id"].as_i64().unwrap();
    let detail = app.settled(mallory).await;
    assert_eq!(detail["service"]["status"], "failed", "{detail:#}");
    assert!(detail["service"]["last_error"].as_str().unwrap().contains("belongs to another service"), "{detail:#}");
    // Mallory cancels: the terminate is refused by the mark, and Alice's resource stays.
    app.event(later("m3", "contract.cancelled", mallory, json!({}))).await;
    let detail = app.settled(mallory).await;
    let terminate = detail["jobs"].as_array().unwrap().iter().find(|j| j["function"] == "terminate").unwrap();
    assert_eq!(terminate["state"], "failed", "{detail:#}");
    let (status, info) = app.post(&format!("/api/v1/services/{alice}/actions/get_info"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["envelope"]["status"], "ok", "Alice's resource is gone: {info:#}");
    assert_invariants(&app).await;

    // Alice's own cancellation still removes it.
    app.event(later("a2", "contract.cancelled", alice, json!({}))).await;
    assert_eq!(app.settled(alice).await["service"]["status"], "terminated");
}

#[tokio::test]
async fn two_clients_one_database_on_real_postgresql() {
    let Some(values) = database("PROVISIO_TEST_POSTGRES", 5432) else { return };
    let name = format!("shop_{}", provisio_conformance::unique(6));
    two_clients_one_name("databases/postgresql", values, json!({"database": name})).await;
}

#[tokio::test]
async fn two_clients_one_database_on_real_mariadb() {
    let Some(values) = database("PROVISIO_TEST_MARIADB", 3306) else { return };
    let name = format!("shop_{}", provisio_conformance::unique(6));
    two_clients_one_name("databases/mariadb", values, json!({"database": name})).await;
}

#[tokio::test]
async fn two_clients_one_zone_on_real_powerdns() {
    let Some(values) = powerdns() else { return };
    let zone = format!("{}.provisio-test.com", provisio_conformance::unique(8));
    two_clients_one_name("dns-hosting/powerdns", values, json!({"zone": zone})).await;
}
