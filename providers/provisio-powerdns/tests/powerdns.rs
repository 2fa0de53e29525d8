//! `dns-hosting/powerdns` against a real PowerDNS Authoritative server: the
//! conformance suite, then real DNS queries (`dig`) showing the zone served,
//! refused while suspended, served again, and gone after terminate.
//!
//! The server comes from `PROVISIO_TEST_PDNS_API`, `PROVISIO_TEST_PDNS_API_KEY`
//! and `PROVISIO_TEST_PDNS_DNS`, which `scripts/test-servers start` prints.
//! Without them the tests say so and pass outside CI, and fail in CI.

use std::time::Duration;

use provisio_conformance::Harness;
use provisio_conformance::dig;
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use serde_json::{Value, json};

fn server() -> Option<(Value, String)> {
    let [api, key, dns] = provisio_conformance::test_servers([
        "PROVISIO_TEST_PDNS_API",
        "PROVISIO_TEST_PDNS_API_KEY",
        "PROVISIO_TEST_PDNS_DNS",
    ])?;
    let config =
        json!({"api_url": api, "api_key": key, "nameservers": ["ns1.provisio-test.net", "ns2.provisio-test.net"]});
    Some((config, dns))
}

async fn call(config: &Value, function: &str, params: Value) -> provisio_sdk::Envelope {
    let options = CallOptions { timeout: Duration::from_secs(20), ..CallOptions::default() };
    invoke::call(&provisio_powerdns::entry(), config, function, &params, &options).await.envelope
}

#[tokio::test]
async fn passes_the_dns_hosting_conformance_suite() {
    let Some((config, _)) = server() else { return };
    provisio_conformance::run(&Harness::new(provisio_powerdns::entry(), config)).await;
}

#[tokio::test]
async fn the_name_resolves_stops_while_suspended_and_is_gone_after_terminate() {
    let Some((config, dns)) = server() else { return };
    let zone = format!("{}.com", provisio_conformance::unique(10));
    let www = format!("www.{zone}");
    let created = call(
        &config,
        "create_zone",
        json!({"zone": zone, "customer_id": "cust-7",
        "records": [{"name": "www", "type": "A", "ttl": 300, "records": ["192.0.2.10"]},
                    {"name": "@", "type": "MX", "records": ["10 mail.provisio-test.net"]},
                    {"name": "@", "type": "TXT", "records": ["v=spf1 -all"]}]}),
    )
    .await;
    assert!(created.is_ok(), "{created:?}");
    assert_eq!(dig(&dns, &www, "A"), "192.0.2.10");
    assert_eq!(dig(&dns, &zone, "MX"), "10 mail.provisio-test.net.");
    assert_eq!(dig(&dns, &zone, "TXT"), "\"v=spf1 -all\"");

    let changed = call(
        &config,
        "set_records",
        json!({"zone": zone, "records": [{"name": "www", "type": "A", "records": ["192.0.2.11", "192.0.2.12"]}]}),
    )
    .await;
    assert!(changed.is_ok(), "{changed:?}");
    let mut answers: Vec<String> = dig(&dns, &www, "A").split(',').map(str::to_owned).collect();
    answers.sort();
    assert_eq!(answers, ["192.0.2.11", "192.0.2.12"]);

    assert_eq!(call(&config, "suspend", json!({"zone": zone})).await.data.unwrap()["state"], "suspended");
    assert_eq!(dig(&dns, &www, "A"), "REFUSED", "a suspended zone is not served");
    assert_eq!(zone_at_server(&config, &zone).await, 200, "a suspended zone is kept on the server");
    let refused = call(
        &config,
        "set_records",
        json!({"zone": zone, "records": [{"name": "x", "type": "A", "records": ["192.0.2.1"]}]}),
    )
    .await;
    assert_eq!(refused.error_kind, Some(ErrorKind::ProviderError));
    assert_eq!(call(&config, "unsuspend", json!({"zone": zone})).await.data.unwrap()["state"], "active");
    assert!(dig(&dns, &www, "A").contains("192.0.2.11"), "served again, records intact");

    assert!(call(&config, "terminate", json!({"zone": zone})).await.is_ok());
    assert_eq!(dig(&dns, &www, "A"), "REFUSED");
    // REFUSED alone looks like a suspension: the server's own API says the zone is gone.
    assert_eq!(zone_at_server(&config, &zone).await, 404, "a terminated zone is removed");
    assert_eq!(call(&config, "get_info", json!({"zone": zone})).await.error_kind, Some(ErrorKind::NotFound));
}

#[tokio::test]
async fn test_connection_and_a_wrong_key() {
    let Some((config, _)) = server() else { return };
    let report = invoke::test_connection(&provisio_powerdns::entry(), &config, &CallOptions::default()).await;
    assert!(report.envelope.is_ok(), "{report:?}");
    assert!(report.envelope.data.unwrap()["message"].as_str().unwrap().contains("PowerDNS"));

    let mut wrong = config.clone();
    wrong["api_key"] = json!("not-the-key");
    let report = invoke::test_connection(&provisio_powerdns::entry(), &wrong, &CallOptions::default()).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{report:?}");
    let printed = serde_json::to_string(&report).unwrap();
    assert!(!printed.contains("not-the-key") && printed.contains("[REDACTED]"), "{printed}");

    let mut closed = config.clone();
    closed["api_url"] = json!("http://127.0.0.1:9");
    let report = invoke::test_connection(&provisio_powerdns::entry(), &closed, &CallOptions::default()).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::Transient));
}

/// The HTTP status PowerDNS's API answers for a zone (200 there, 404 gone).
async fn zone_at_server(config: &Value, zone: &str) -> u16 {
    provisio_sdk::http::install_crypto_provider();
    let api = config["api_url"].as_str().unwrap();
    reqwest::Client::new()
        .get(format!("{api}/api/v1/servers/localhost/zones/{zone}."))
        .header("X-API-Key", config["api_key"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
