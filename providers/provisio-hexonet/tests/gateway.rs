//! `domain-names/hexonet` against the Hexonet test server (in this process,
//! over HTTPS with its own CA): the conformance suite, a renew whose answer
//! is lost, other accounts' domains, credentials and TLS.

use std::time::Duration;

use provisio_conformance::{Harness, unique};
use provisio_hexonet_test_server::{Hexonet, Options};
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use serde_json::{Value, json};

struct Test {
    hexonet: Hexonet,
    running: provisio_test_server_kit::Running,
}

impl Test {
    async fn start() -> Test {
        let hexonet = Hexonet::new(Options { transfer_after: Duration::from_millis(300), ..Options::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = provisio_test_server_kit::serve(
            listener,
            hexonet.router(),
            Some(provisio_test_server_kit::Tls::generate(&[])),
        );
        Test { hexonet, running }
    }

    fn config(&self) -> Value {
        let (login, password) = &self.hexonet.options().accounts[0];
        json!({"api_url": format!("{}/api/call.cgi", self.running.url()), "entity": "1234", "login": login,
               "password": password, "ca_cert_pem": self.running.ca_pem})
    }

    fn harness(&self) -> Harness {
        Harness::new(provisio_hexonet::entry(), self.config())
    }
}

fn register(domain: &str) -> Value {
    json!({"domain": domain, "years": 1, "contacts": {"registrant": {"name": "Ann Lee", "email": "ann@provisio-test.com",
           "phone": "+442071234567", "address1": "1 High Street", "city": "London", "postcode": "N1 1AA",
           "country_code": "GB"}}, "nameservers": ["ns1.provisio-test.com", "ns2.provisio-test.com"]})
}

#[tokio::test]
async fn the_hexonet_provider_passes_the_domain_names_suite() {
    let test = Test::start().await;
    let mut h = test.harness();
    let incoming = format!("{}.net", unique(10));
    test.hexonet.add_domain("other.user", &incoming, "Xfer-Code-123");
    h.incoming = Some((incoming.clone(), "Xfer-Code-123".into()));
    provisio_conformance::run(&h).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = h.ok("get_status", json!({"domain": incoming})).await;
    assert_eq!(status["status"], "active", "the transfer completed: {status}");
}

#[tokio::test]
async fn a_renew_whose_answer_is_lost_is_done_once() {
    let test = Test::start().await;
    let h = test.harness();
    let domain = format!("{}.com", unique(10));
    let info = h.ok("register", register(&domain)).await;
    let (_, before) = test.hexonet.domain(&domain).unwrap();
    let mut job = h.clone();
    job.options.idempotency_key = Some("renew-1".into());
    job.options.provision_data = info.as_object().cloned().unwrap();
    job.ok("renew", json!({"domain": domain, "years": 1})).await;
    // The same job again (its answer lost): the stored expiry is the old one.
    job.ok("renew", json!({"domain": domain, "years": 1})).await;
    let (_, after) = test.hexonet.domain(&domain).unwrap();
    assert_eq!(after, before.checked_add_months(chrono::Months::new(12)).unwrap(), "renewed once");
}

#[tokio::test]
async fn another_accounts_domain_is_a_conflict_or_unknown() {
    let test = Test::start().await;
    let h = test.harness();
    let theirs = format!("{}.com", unique(10));
    test.hexonet.add_domain("other.user", &theirs, "their-code");
    h.fails("register", register(&theirs), ErrorKind::Conflict).await;
    h.fails("get_info", json!({"domain": theirs}), ErrorKind::NotFound).await;
    h.fails("renew", json!({"domain": theirs, "years": 1}), ErrorKind::NotFound).await;
    // Same domain, another registrant: not adopted.
    let mine = format!("{}.com", unique(10));
    h.ok("register", register(&mine)).await;
    let mut other = register(&mine);
    other["contacts"]["registrant"]["email"] = json!("bob@provisio-test.com");
    h.fails("register", other, ErrorKind::Conflict).await;
}

#[tokio::test]
async fn bad_credentials_and_an_untrusted_gateway_are_provider_errors() {
    let test = Test::start().await;
    let mut config = test.config();
    config["password"] = json!("wrong-password");
    let report = invoke::call(
        &provisio_hexonet::entry(),
        &config,
        "get_info",
        &json!({"domain": "a.com"}),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", report.envelope);
    assert!(report.envelope.message.as_str().contains("credentials"), "{:#?}", report.envelope);
    assert!(!serde_json::to_string(&report.http_log).unwrap().contains("wrong-password"));
    let mut untrusted = test.config();
    untrusted.as_object_mut().unwrap().remove("ca_cert_pem");
    let report = invoke::call(
        &provisio_hexonet::entry(),
        &untrusted,
        "get_info",
        &json!({"domain": "a.com"}),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", report.envelope);
    assert!(report.envelope.message.as_str().contains("ca_cert_pem"), "{:#?}", report.envelope);
}
