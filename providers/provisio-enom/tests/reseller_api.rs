//! `domain-names/enom` against the Enom test server (in this process, over
//! HTTPS with its own CA): the conformance suite, a renew retried after its
//! answer was lost, other accounts' domains, credentials and TLS.

use std::time::Duration;

use provisio_conformance::{Harness, unique};
use provisio_enom_test_server::{Enom, Options};
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use serde_json::{Value, json};

struct Test {
    enom: Enom,
    running: provisio_test_server_kit::Running,
}

impl Test {
    async fn start() -> Test {
        let enom = Enom::new(Options { transfer_after: Duration::from_millis(300), ..Options::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = provisio_test_server_kit::serve(
            listener,
            enom.router(),
            Some(provisio_test_server_kit::Tls::generate(&[])),
        );
        Test { enom, running }
    }

    fn config(&self) -> Value {
        let (uid, token) = &self.enom.options().accounts[0];
        json!({"api_url": format!("{}/interface.asp", self.running.url()), "uid": uid, "api_token": token,
               "ca_cert_pem": self.running.ca_pem})
    }

    fn harness(&self) -> Harness {
        Harness::new(provisio_enom::entry(), self.config())
    }
}

fn register(domain: &str) -> Value {
    json!({"domain": domain, "years": 1, "contacts": {"registrant": {"name": "Ann Lee", "email": "ann@provisio-test.com",
           "phone": "+442071234567", "address1": "1 High Street", "city": "London", "postcode": "N1 1AA",
           "country_code": "GB"}}, "nameservers": ["ns1.provisio-test.com", "ns2.provisio-test.com"]})
}

#[tokio::test]
async fn the_enom_provider_passes_the_domain_names_suite() {
    let test = Test::start().await;
    let mut h = test.harness();
    let incoming = format!("{}.net", unique(10));
    test.enom.add_domain("otherreseller", &incoming, "Xfer-Code-123");
    h.incoming = Some((incoming.clone(), "Xfer-Code-123".into()));
    provisio_conformance::run(&h).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.ok("get_status", json!({"domain": incoming})).await["status"], "active");
}

#[tokio::test]
async fn a_renew_retried_after_its_answer_was_lost_is_done_once() {
    let test = Test::start().await;
    let h = test.harness();
    let domain = format!("{}.com", unique(10));
    let info = h.ok("register", register(&domain)).await;
    let (_, before) = test.enom.domain(&domain).unwrap();
    let mut job = h.clone();
    job.options.provision_data = info.as_object().cloned().unwrap();
    job.ok("renew", json!({"domain": domain, "years": 1})).await;
    job.ok("renew", json!({"domain": domain, "years": 1})).await;
    let (_, after) = test.enom.domain(&domain).unwrap();
    assert_eq!(after, before.checked_add_months(chrono::Months::new(12)).unwrap(), "renewed once");
}

#[tokio::test]
async fn another_accounts_domain_is_not_ours_and_bad_credentials_say_so() {
    let test = Test::start().await;
    let h = test.harness();
    let theirs = format!("{}.com", unique(10));
    test.enom.add_domain("otherreseller", &theirs, "their-code");
    h.fails("register", register(&theirs), ErrorKind::Conflict).await;
    h.fails("get_info", json!({"domain": theirs}), ErrorKind::NotFound).await;
    let mut config = test.config();
    config["api_token"] = json!("wrong-token");
    let report = invoke::call(
        &provisio_enom::entry(),
        &config,
        "get_info",
        &json!({"domain": "a.com"}),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", report.envelope);
    assert!(report.envelope.message.as_str().contains("api_token"), "{:#?}", report.envelope);
    assert!(!serde_json::to_string(&report.http_log).unwrap().contains("wrong-token"));
    let mut untrusted = test.config();
    untrusted.as_object_mut().unwrap().remove("ca_cert_pem");
    let report = invoke::call(
        &provisio_enom::entry(),
        &untrusted,
        "get_info",
        &json!({"domain": "a.com"}),
        &CallOptions::default(),
    )
    .await;
    assert!(report.envelope.message.as_str().contains("ca_cert_pem"), "{:#?}", report.envelope);
}
