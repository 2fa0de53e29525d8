//! `physical-goods/http` configured for the drop-shipper test shop
//! (`examples/generic-http/shop.json`), through real HTTPS: it passes the
//! blueprint's conformance suite; it places one order per idempotency key
//! through faults; and the configurations it is refused, the answers it
//! survives and the secrets it keeps.

use std::time::Duration;

use provisio_conformance::Harness;
use provisio_sdk::{CallOptions, ErrorKind, ProviderEntry, invoke};
use provisio_shop_test_server::{FaultRequest, Options, Shop};
use serde_json::{Value, json};

struct Running {
    shop: Shop,
    config: Value,
    _server: provisio_test_server_kit::Running,
}

fn entry() -> ProviderEntry {
    provisio_generic_http::entry(provisio_sdk::blueprints::physical_goods::descriptor())
}

/// The example configuration, as the docs give it.
fn example() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/generic-http/shop.json"))
        .expect("examples/generic-http/shop.json");
    serde_json::from_str(&text).expect("the example is JSON")
}

async fn start(ship_after: Duration) -> Running {
    let shop = Shop::new(Options { ship_after, ..Options::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = provisio_test_server_kit::Tls::generate(&[]);
    let ca = tls.ca_pem.clone();
    let server = provisio_test_server_kit::serve(listener, shop.router(), Some(tls));
    let mut config = example();
    config["base_url"] = json!(format!("{}/v1", server.url()));
    config["api_key"] = json!(shop.api_key());
    config["ca_cert_pem"] = json!(ca);
    Running { shop, config, _server: server }
}

async fn call(
    config: &Value,
    function: &str,
    params: Value,
    key: Option<&str>,
    timeout: Duration,
) -> invoke::CallReport {
    let options = CallOptions { timeout, idempotency_key: key.map(str::to_owned), ..CallOptions::default() };
    invoke::call(&entry(), config, function, &params, &options).await
}

fn order() -> Value {
    json!({"reference": "contract-7", "sku": "MUG-RED", "quantity": 1,
           "ship_to": {"name": "Ann Lee", "line1": "1 High St", "city": "York", "postcode": "YO1 7HH", "country": "GB"}})
}

#[tokio::test]
async fn the_generic_provider_configured_for_the_shop_conforms() {
    let shop = start(Duration::from_secs(2)).await;
    let harness = Harness::new(entry(), shop.config.clone());
    assert!(entry().validate_config(&shop.config).is_ok(), "{:?}", entry().validate_config(&shop.config));
    provisio_conformance::run(&harness).await;
    let tested = invoke::test_connection(&entry(), &shop.config, &CallOptions::default()).await;
    assert!(tested.envelope.is_ok(), "{tested:?}");
}

#[tokio::test]
async fn an_order_survives_a_timeout_after_it_was_accepted_and_is_placed_once() {
    let shop = start(Duration::from_secs(60)).await;
    let faults = fault(&shop, FaultRequest { timeout_next: Some(1), hold_ms: Some(3000), ..FaultRequest::default() });
    assert_eq!(faults, 1);
    let first = call(&shop.config, "place_order", order(), Some("job-1"), Duration::from_millis(500)).await;
    assert_eq!(first.envelope.error_kind, Some(ErrorKind::OutcomeUnknown), "{first:?}");
    let again = call(&shop.config, "place_order", order(), Some("job-1"), Duration::from_secs(5)).await;
    assert!(again.envelope.is_ok(), "{again:?}");
    assert_eq!(shop.shop.orders().len(), 1, "the retry under the same key made no second order");

    // A 503 before anything was done: a change is still reconciled, a read is only retried.
    fault(&shop, FaultRequest { fail_next: Some(2), ..FaultRequest::default() });
    let failed = call(&shop.config, "place_order", order(), Some("job-2"), Duration::from_secs(5)).await;
    assert_eq!(failed.envelope.error_kind, Some(ErrorKind::OutcomeUnknown), "{failed:?}");
    let read = call(&shop.config, "get_info", json!({"order_id": "ord_000001"}), None, Duration::from_secs(5)).await;
    assert_eq!(read.envelope.error_kind, Some(ErrorKind::Transient), "{read:?}");
}

/// Sets the shop's faults (its API for them is tested with the shop); answers its `timeout_next`.
fn fault(shop: &Running, faults: FaultRequest) -> u64 {
    shop.shop.set_faults(&faults)["timeout_next"].as_u64().unwrap()
}

#[tokio::test]
async fn secrets_never_reach_the_log_and_a_wrong_key_is_a_clear_refusal() {
    let shop = start(Duration::from_secs(60)).await;
    let report = call(&shop.config, "place_order", order(), Some("job-s"), Duration::from_secs(5)).await;
    assert!(report.envelope.is_ok(), "{report:?}");
    let logged = serde_json::to_string(&report.http_log).unwrap() + &serde_json::to_string(&report.envelope).unwrap();
    assert!(!logged.contains(shop.shop.api_key()), "the API key reached the log: {logged}");
    assert!(logged.contains("Idempotency-Key") || logged.contains("idempotency-key"), "{logged}");

    let mut wrong = shop.config.clone();
    wrong["api_key"] = json!("not-the-key-at-all");
    let refused = call(&wrong, "get_info", json!({"order_id": "ord_000001"}), None, Duration::from_secs(5)).await;
    assert_eq!(refused.envelope.error_kind, Some(ErrorKind::ProviderError), "{refused:?}");
    assert!(refused.envelope.message.as_str().contains("401"), "{:?}", refused.envelope.message);
    assert!(
        refused.envelope.message.as_str().contains("a valid API key is required"),
        "{:?}",
        refused.envelope.message
    );

    // The shop's 422 names its field; the error says which.
    let mut bad = shop.config.clone();
    bad["functions"]["place_order"]["request"]["headers"] = json!({});
    let invalid = call(&bad, "place_order", order(), Some("job-x"), Duration::from_secs(5)).await;
    assert_eq!(invalid.envelope.error_kind, Some(ErrorKind::InvalidInput), "{invalid:?}");
    let paths: Vec<String> = invalid.envelope.field_errors().into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["/Idempotency-Key"], "{invalid:?}");
}

/// One way to break a configuration.
type Change = Box<dyn Fn(&mut Value)>;

/// Each broken configuration is refused when saved, naming the field.
#[tokio::test]
async fn configurations_that_would_misbehave_are_refused_naming_the_field() {
    let shop = start(Duration::from_secs(60)).await;
    let cases: Vec<(&str, Change)> = vec![
        ("/functions/get_info", Box::new(|c| drop(c["functions"].as_object_mut().unwrap().remove("get_info")))),
        ("/functions/brew", Box::new(|c| c["functions"]["brew"] = c["functions"]["get_info"].clone())),
        (
            "/functions/place_order/request/body/sku",
            Box::new(|c| c["functions"]["place_order"]["request"]["body"]["sku"] = json!("{{ params.colour }}")),
        ),
        (
            "/functions/place_order/request/headers/X-Key",
            Box::new(|c| {
                c["functions"]["place_order"]["request"]["headers"]["X-Key"] = json!("{{ secrets.password }}")
            }),
        ),
        (
            "/functions/place_order/request/path",
            Box::new(|c| c["functions"]["place_order"]["request"]["path"] = json!("/../admin/orders")),
        ),
        (
            "/functions/place_order/request/path",
            Box::new(|c| c["functions"]["place_order"]["request"]["path"] = json!("/orders/{{ params.sku")),
        ),
        (
            "/functions/get_info/result/order_id",
            Box::new(|c| drop(c["functions"]["get_info"]["result"].as_object_mut().unwrap().remove("order_id"))),
        ),
        (
            "/functions/get_info/result/colour",
            Box::new(|c| c["functions"]["get_info"]["result"]["colour"] = json!("/colour")),
        ),
        (
            "/functions/get_info/result/status",
            Box::new(|c| c["functions"]["get_info"]["result"]["status"] = json!("status")),
        ),
        (
            "/functions/get_info/statuses/4xx",
            Box::new(|c| c["functions"]["get_info"]["statuses"] = json!({"4xx": "conflict"})),
        ),
        (
            "/functions/get_info/result/reference/expression",
            Box::new(|c| c["functions"]["get_info"]["result"]["reference"] = json!({"expression": "secrets.api_key"})),
        ),
        (
            "/functions/get_info/request/headers/Host",
            Box::new(|c| c["functions"]["get_info"]["request"]["headers"] = json!({"Host": "evil.example"})),
        ),
        (
            "/functions/get_info/request/path",
            Box::new(|c| c["functions"]["get_info"]["request"]["path"] = json!("/orders/{{ params.missing }}")),
        ),
        ("/base_url", Box::new(|c| c["base_url"] = json!("http://shop.example/v1"))),
        ("/base_url", Box::new(|c| c["base_url"] = json!("https://user:pw@shop.example/v1"))),
        ("/api_key", Box::new(|c| drop(c.as_object_mut().unwrap().remove("api_key")))),
        (
            "/functions/place_order/request/body/sku",
            Box::new(|c| c["functions"]["place_order"]["request"]["body"]["sku"] = json!("{{ config.api_key }}")),
        ),
    ];
    for (path, change) in cases {
        let mut config = shop.config.clone();
        change(&mut config);
        let errors = entry().validate_config(&config).expect_err(path);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&path), "expected an error at {path}, got {errors:?}");
        // Nothing is sent with a configuration that does not pass.
        let before = shop.shop.orders().len();
        let report = call(&config, "place_order", order(), Some("never"), Duration::from_secs(5)).await;
        assert_eq!(report.envelope.error_kind, Some(ErrorKind::InvalidInput), "{path}: {report:?}");
        assert_eq!(shop.shop.orders().len(), before, "{path}: an order was placed");
        // Messages never quote a secret.
        assert!(!format!("{errors:?}").contains(shop.shop.api_key()));
    }
}

/// A system that answers garbage, too much, never, or redirects elsewhere:
/// each is a clear error of the job, nothing panics, nothing follows the redirect.
#[tokio::test]
async fn hostile_answers_are_clear_errors() {
    use provisio_test_server_kit::{Hostile, hostile_router};
    let cases = [
        (Hostile::Page(200, "<html>not json</html>".into()), ErrorKind::Internal),
        (Hostile::Page(200, r#"{"id": 7, "status": "lost"}"#.into()), ErrorKind::Internal),
        (Hostile::Huge, ErrorKind::ProviderError),
        (Hostile::Redirect("https://evil.example/steal".into()), ErrorKind::ProviderError),
        (Hostile::Endless, ErrorKind::Transient),
    ];
    for (hostile, kind) in cases {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = provisio_test_server_kit::serve(listener, hostile_router(hostile), None);
        let mut config = example();
        config["base_url"] = json!(format!("{}/v1", server.url()));
        config["api_key"] = json!("k-hostile-123");
        let report = call(&config, "get_info", json!({"order_id": "ord_1"}), None, Duration::from_secs(2)).await;
        assert_eq!(report.envelope.error_kind, Some(kind), "{report:?}");
        assert!(report.http_log.iter().all(|e| !e.url.contains("evil.example")), "followed a redirect: {report:?}");
    }
}
