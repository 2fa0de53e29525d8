//! `ssl-certificates/acme` against pebble (Let's Encrypt's test authority),
//! which validates the DNS-01 records against a real PowerDNS server that
//! the provider writes to through a `dns-hosting` peer configuration.
//!
//! Servers come from `PROVISIO_TEST_ACME_DIRECTORY`, `PROVISIO_TEST_ACME_ROOTS`
//! and `PROVISIO_TEST_PDNS_*`, which `scripts/test-servers start` prints.
//! Without them the tests say so and pass outside CI, and fail in CI.

use std::sync::Arc;
use std::time::Duration;

use provisio_conformance::{Harness, dig, unique};
use provisio_sdk::invoke::CallReport;
use provisio_sdk::{BoxFuture, CallOptions, ErrorKind, PeerAccess, Peers, ProviderError, UserMessage, invoke};
use serde_json::{Value, json};

struct Servers {
    directory: String,
    roots: String,
    pdns: Value,
    dns: String,
}

fn servers() -> Option<Servers> {
    let [directory, roots, api, key, dns] = provisio_conformance::test_servers([
        "PROVISIO_TEST_ACME_DIRECTORY",
        "PROVISIO_TEST_ACME_ROOTS",
        "PROVISIO_TEST_PDNS_API",
        "PROVISIO_TEST_PDNS_API_KEY",
        "PROVISIO_TEST_PDNS_DNS",
    ])?;
    let pdns = json!({"api_url": api, "api_key": key, "nameservers": ["ns1.provisio-test.net"]});
    Some(Servers { directory, roots, pdns, dns })
}

/// What the engine does for a provider: runs another configuration's
/// function. Here the only peer is the PowerDNS configuration "dns-main".
struct TestPeers(Value);

impl Peers for TestPeers {
    fn call<'a>(
        &'a self,
        configuration: &'a str,
        function: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<CallReport, ProviderError>> {
        Box::pin(async move {
            if configuration != "dns-main" {
                return Err(ProviderError::provider(UserMessage::new(format!(
                    "The configuration {configuration} cannot be used: no configuration has this name"
                ))));
            }
            let options = CallOptions { timeout: Duration::from_secs(20), ..CallOptions::default() };
            Ok(invoke::call(&provisio_powerdns::entry(), &self.0, function, &params, &options).await)
        })
    }
}

fn openssl(args: &[&str]) -> String {
    let output =
        std::process::Command::new("openssl").args(args).output().expect("openssl runs (apt-get install openssl)");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A fresh zone on PowerDNS and a harness whose provider may certify names in it.
async fn setup(servers: &Servers) -> Harness {
    let zone = format!("{}.com", unique(10));
    let options = CallOptions { timeout: Duration::from_secs(20), ..CallOptions::default() };
    let created =
        invoke::call(&provisio_powerdns::entry(), &servers.pdns, "create_zone", &json!({"zone": zone}), &options).await;
    assert!(created.envelope.is_ok(), "{:?}", created.envelope);
    let account_key = openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let config = json!({"directory_url": servers.directory, "account_key_pem": account_key,
        "dns_configuration": "dns-main", "issue_wait_secs": 15,
        // pebble's HTTPS certificate is self-signed; what it issues chains to its own roots.
        "accept_invalid_certs": true});
    let mut harness = Harness::new(provisio_acme::entry(), config);
    harness.options = CallOptions {
        timeout: Duration::from_secs(60),
        peers: Some(PeerAccess(Arc::new(TestPeers(servers.pdns.clone())))),
        ..CallOptions::default()
    };
    harness.domain = zone;
    harness
}

#[tokio::test]
async fn passes_the_conformance_suite_and_the_certificate_chains_to_pebbles_root() {
    let Some(servers) = servers() else { return };
    let harness = setup(&servers).await;
    let issued = provisio_conformance::ssl_certificates(&harness).await;

    let dir = tempfile::tempdir().unwrap();
    let chain_path = dir.path().join("chain.pem");
    let key_path = dir.path().join("key.pem");
    let root_path = dir.path().join("root.pem");
    std::fs::write(&chain_path, issued["certificate_pem"].as_str().unwrap()).unwrap();
    std::fs::write(&key_path, issued["private_key_pem"].as_str().unwrap()).unwrap();
    let root = std::process::Command::new("curl").args(["-fsk", &servers.roots]).output().expect("curl runs");
    assert!(root.status.success(), "pebble's management API answers its root");
    std::fs::write(&root_path, &root.stdout).unwrap();
    let (chain, key, root) = (chain_path.to_str().unwrap(), key_path.to_str().unwrap(), root_path.to_str().unwrap());

    // The chain verifies against pebble's root, for the names ordered...
    let verified = openssl(&["verify", "-CAfile", root, "-untrusted", chain, chain]);
    assert!(verified.trim_end().ends_with("OK"), "{verified}");
    let names = openssl(&["x509", "-in", chain, "-noout", "-ext", "subjectAltName"]);
    let common_name = issued["common_name"].as_str().unwrap();
    assert!(
        names.contains(&format!("DNS:{common_name}")) && names.contains(&format!("DNS:www.{common_name}")),
        "{names}"
    );
    // ...and the private key answered is the certificate's.
    let certificate_key = openssl(&["x509", "-in", chain, "-noout", "-pubkey"]);
    assert_eq!(certificate_key, openssl(&["pkey", "-in", key, "-pubout"]));

    // The challenge records served their purpose and are gone.
    let challenge = dig(&servers.dns, &format!("_acme-challenge.{common_name}"), "TXT");
    assert!(matches!(challenge.as_str(), "NXDOMAIN" | "NOERROR"), "no TXT record is left: {challenge}");
}

#[tokio::test]
async fn a_name_outside_the_dns_configurations_zones_is_refused_plainly() {
    let Some(servers) = servers() else { return };
    let harness = setup(&servers).await;
    let name = format!("{}.org", unique(12));
    let refused = harness.fails("create", json!({"common_name": name}), ErrorKind::ProviderError).await;
    assert!(refused.message.as_str().contains("No zone of the DNS configuration dns-main holds"), "{refused:?}");

    let mut elsewhere = harness.clone();
    elsewhere.config["dns_configuration"] = json!("dns-other");
    let refused = elsewhere.fails("create", json!({"common_name": harness.domain}), ErrorKind::ProviderError).await;
    assert!(refused.message.as_str().contains("dns-other cannot be used"), "{refused:?}");
}

#[tokio::test]
async fn a_bad_account_key_is_named() {
    let Some(servers) = servers() else { return };
    let mut harness = setup(&servers).await;
    harness.config["account_key_pem"] = json!("not a key");
    let refused =
        harness.fails("get_info", json!({"certificate_id": "https://x/order/1"}), ErrorKind::ProviderError).await;
    assert!(refused.message.as_str().contains("account_key_pem"), "{refused:?}");
}

#[tokio::test]
async fn the_attempt_log_shows_the_authority_and_the_dns_writes_but_no_key() {
    let Some(servers) = servers() else { return };
    let harness = setup(&servers).await;
    let name = format!("log.{}", harness.domain);
    let report =
        invoke::call(&harness.entry, &harness.config, "create", &json!({"common_name": name}), &harness.options).await;
    assert!(report.envelope.is_ok(), "{:?}", report.envelope);
    let log = serde_json::to_string(&report.http_log).unwrap();
    assert!(log.contains("/order-plz") || log.contains("new-order"), "the order request is logged: {log}");
    assert!(log.contains("_acme-challenge"), "the DNS write through the peer is logged: {log}");
    assert!(!log.contains("PRIVATE KEY"), "no key in the log");
    let account_key = harness.config["account_key_pem"].as_str().unwrap();
    let key_body = account_key.lines().nth(1).unwrap();
    assert!(!log.contains(key_body), "no account key in the log");
}

#[tokio::test]
async fn test_connection_finds_the_account_or_says_the_authority_is_unreachable() {
    let Some(servers) = servers() else { return };
    let harness = setup(&servers).await;
    let found = invoke::test_connection(&harness.entry, &harness.config, &harness.options).await.envelope;
    assert!(found.is_ok(), "{found:?}");
    assert!(found.data.unwrap()["message"].as_str().unwrap().contains("knows the account"));

    let mut away = harness.config.clone();
    away["directory_url"] = json!("https://127.0.0.1:9/dir");
    let unreachable = invoke::test_connection(&harness.entry, &away, &harness.options).await.envelope;
    assert_eq!(unreachable.error_kind, Some(ErrorKind::Transient), "{unreachable:?}");
    assert!(unreachable.message.as_str().contains("could not be reached"), "{unreachable:?}");
}
