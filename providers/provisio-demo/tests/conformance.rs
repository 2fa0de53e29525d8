//! Every demo provider passes its blueprint's conformance suite, and the
//! simulator's fault injection behaves as configured.

use provisio_conformance::Harness;
use provisio_sdk::invoke;
use provisio_sdk::{CallOptions, ErrorKind, ProviderEntry};
use serde_json::{Value, json};

fn entry(blueprint: &str) -> ProviderEntry {
    provisio_demo::entries().into_iter().find(|e| e.blueprint().id == blueprint).expect("demo provider")
}

fn config(dir: &tempfile::TempDir, extra: Value) -> Value {
    let mut config = json!({"state_path": dir.path().join("demo.sqlite").to_str().unwrap()});
    config.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    config
}

async fn conformance(blueprint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let harness =
        Harness::new(entry(blueprint), config(&dir, json!({"api_key": "conformance-key", "operation_secs": 1})));
    provisio_conformance::run(&harness).await;
}

#[tokio::test]
async fn shared_hosting_demo_conforms() {
    conformance("shared-hosting").await;
}

#[tokio::test]
async fn domain_names_demo_conforms() {
    conformance("domain-names").await;
}

#[tokio::test]
async fn dns_hosting_demo_conforms() {
    conformance("dns-hosting").await;
}

#[tokio::test]
async fn databases_demo_conforms() {
    conformance("databases").await;
}

#[tokio::test]
async fn software_licenses_demo_conforms() {
    conformance("software-licenses").await;
}

#[tokio::test]
async fn physical_goods_demo_conforms() {
    conformance("physical-goods").await;
}

#[tokio::test]
async fn coffee_demo_conforms() {
    conformance("coffee").await;
}

#[tokio::test]
async fn message_queues_demo_conforms() {
    conformance("message-queues").await;
}

#[tokio::test]
async fn mqtt_hosting_demo_conforms() {
    conformance("mqtt-hosting").await;
}

#[tokio::test]
async fn an_empty_configuration_works() {
    let dir = tempfile::tempdir().unwrap();
    let previous = std::env::current_dir().unwrap();
    // `{}` keeps state in the current directory; check the file lands there.
    std::env::set_current_dir(dir.path()).unwrap();
    let report = invoke::call(
        &entry("coffee"),
        &json!({}),
        "brew",
        &json!({"name": "Joe", "size": "small"}),
        &CallOptions::default(),
    )
    .await;
    std::env::set_current_dir(previous).unwrap();
    assert!(report.envelope.is_ok(), "{report:?}");
    assert!(dir.path().join("provisio-demo.sqlite").exists());
}

#[tokio::test]
async fn injected_failures_follow_the_configured_rates() {
    let dir = tempfile::tempdir().unwrap();
    let entry = entry("shared-hosting");
    let config = config(&dir, json!({"transient_rate": 0.3, "outcome_unknown_rate": 0.2}));
    let (mut ok, mut transient, mut unknown) = (0, 0, 0);
    for _ in 0..300 {
        let username = provisio_conformance::unique(10);
        let params = json!({"domain": format!("{username}.com"), "username": username, "package_name": "basic", "email": "a@b.com"});
        let report = invoke::call(&entry, &config, "create", &params, &CallOptions::default()).await;
        match report.envelope.error_kind {
            None => ok += 1,
            Some(ErrorKind::Transient) => transient += 1,
            Some(ErrorKind::OutcomeUnknown) => unknown += 1,
            Some(other) => panic!("unexpected {other}: {report:?}"),
        }
    }
    // 300 draws: 30% transient is 90 expected, 14% (0.7 * 0.2) unknown is 42 expected.
    assert!((55..=125).contains(&transient), "transient {transient}");
    assert!((20..=70).contains(&unknown), "unknown {unknown}");
    assert_eq!(ok + transient + unknown, 300);
}

#[tokio::test]
async fn a_slow_provider_past_its_deadline_is_outcome_unknown_for_changes_and_transient_for_reads() {
    let dir = tempfile::tempdir().unwrap();
    let entry = entry("coffee");
    let config = config(&dir, json!({"latency_ms": 400}));
    let options = CallOptions { timeout: std::time::Duration::from_millis(100), ..CallOptions::default() };
    let report = invoke::call(&entry, &config, "brew", &json!({"name": "Joe", "size": "small"}), &options).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::OutcomeUnknown), "{report:?}");
    let report = invoke::call(&entry, &config, "get_info", &json!({"order_id": "cup_x"}), &options).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::Transient), "{report:?}");
}

#[tokio::test]
async fn census_counts_what_the_simulator_created() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir, json!({"server": "alpha"}));
    let entry = entry("software-licenses");
    let params =
        json!({"reference": "c-1", "package_identifier": "basic", "customer_name": "Ann", "customer_email": "a@b.com"});
    for _ in 0..3 {
        assert!(invoke::call(&entry, &config, "create", &params, &CallOptions::default()).await.envelope.is_ok());
    }
    let census = provisio_demo::state::census(config["state_path"].as_str().unwrap()).await.unwrap();
    assert_eq!(census.services[&("software-licenses".to_owned(), "alpha".to_owned())], 1);
    assert!(census.duplicates().is_empty());
}

#[tokio::test]
async fn ssl_certificates_demo_conforms() {
    conformance("ssl-certificates").await;
}
