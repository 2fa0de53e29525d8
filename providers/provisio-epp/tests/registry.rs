//! `domain-names/epp` against the EPP test registry (in this process, over
//! TLS with its own CA, every frame validated against the IETF schemas):
//! the conformance suite, then renewals whose answers are lost, transfers,
//! other registrars' domains, credentials and TLS.

use std::time::Duration;

use provisio_conformance::{Harness, OWNER_A, OWNER_B, unique};
use provisio_epp_test_server::{Options, Registry};
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use serde_json::{Value, json};

struct Test {
    registry: Registry,
    ca: String,
    port: u16,
    _task: tokio::task::JoinHandle<()>,
}

impl Test {
    async fn start(options: Options) -> Test {
        let registry = Registry::new(options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = provisio_test_server_kit::Tls::generate(&[]);
        let task = registry.serve(listener, &tls);
        Test { registry, ca: tls.ca_pem.clone(), port, _task: task }
    }

    fn config(&self) -> Value {
        let (id, pw) = &self.registry.options().registrars[0];
        json!({"host": "localhost", "port": self.port, "username": id, "password": pw, "ca_cert_pem": self.ca})
    }

    fn harness(&self) -> Harness {
        Harness::new(provisio_epp::entry(), self.config())
    }

    /// Nothing the provider sent, and nothing the registry answered, broke the schemas.
    fn assert_valid(&self) {
        assert_eq!(self.registry.invalid_commands(), 0, "{:?}", self.registry.last_invalid());
        assert_eq!(self.registry.invalid_answers(), 0, "{:?}", self.registry.last_invalid());
    }
}

fn contact(email: &str) -> Value {
    json!({"name": "Ann Lee", "email": email, "phone": "+442071234567", "address1": "1 High Street",
           "city": "London", "postcode": "N1 1AA", "country_code": "GB"})
}

fn register(domain: &str) -> Value {
    json!({"domain": domain, "years": 1, "contacts": {"registrant": contact("ann@provisio-test.com")},
           "nameservers": ["ns1.provisio-test.com", "ns2.provisio-test.com"]})
}

#[tokio::test]
async fn the_epp_provider_passes_the_domain_names_suite_with_every_frame_valid() {
    let test = Test::start(Options::default()).await;
    let mut h = test.harness();
    let incoming = format!("{}.net", unique(10));
    test.registry.add_domain("other-registrar", &incoming, "Xfer-Code-123");
    h.incoming = Some((incoming.clone(), "Xfer-Code-123".into()));
    provisio_conformance::run(&h).await;
    test.assert_valid();
    // The transfer the suite asked for is pending at the registry.
    assert_eq!(test.registry.domain(&incoming).unwrap().0, "other-registrar");
}

#[tokio::test]
async fn a_renew_whose_answer_is_lost_is_done_once() {
    let test = Test::start(Options::default()).await;
    let h = test.harness();
    let domain = format!("{}.com", unique(10));
    let info = h.ok("register", register(&domain)).await;
    let (_, before) = test.registry.domain(&domain).unwrap();
    let mut job = h.clone();
    job.options.idempotency_key = Some("renew-job-1".into());
    job.options.provision_data = info.as_object().cloned().unwrap();
    // The registry renews, then the connection drops before the answer.
    test.registry.drop_answer_to("renew");
    job.fails("renew", json!({"domain": domain, "years": 1}), ErrorKind::OutcomeUnknown).await;
    let (_, after_first) = test.registry.domain(&domain).unwrap();
    assert_eq!(after_first, before.checked_add_months(chrono::Months::new(12)).unwrap(), "renewed once");
    // The engine retries the job: same key, same stored expiry.
    let retried = job.ok("renew", json!({"domain": domain, "years": 1})).await;
    let (_, after_retry) = test.registry.domain(&domain).unwrap();
    // The domain's authInfo (its transfer key) is in no exchange of the log.
    let auth = test.registry.auth_info(&domain).unwrap();
    let report = invoke::call(&h.entry, &h.config, "get_info", &json!({"domain": domain}), &h.options).await;
    assert!(report.envelope.is_ok(), "{:#?}", report.envelope);
    assert!(!serde_json::to_string(&report.http_log).unwrap().contains(&auth), "the authInfo leaked");
    assert_eq!(after_retry, after_first, "the retry did not renew again");
    assert_eq!(retried["expires_at"].as_str().unwrap()[..10], after_first.to_rfc3339()[..10]);
    test.assert_valid();
}

#[tokio::test]
async fn another_registrars_or_another_services_domain_is_a_conflict() {
    let test = Test::start(Options::default()).await;
    let h = test.harness();
    let theirs = format!("{}.com", unique(10));
    test.registry.add_domain("other-registrar", &theirs, "their-code");
    h.fails("register", register(&theirs), ErrorKind::Conflict).await;
    h.fails("get_info", json!({"domain": theirs}), ErrorKind::Conflict).await;
    h.fails("renew", json!({"domain": theirs, "years": 1}), ErrorKind::Conflict).await;
    let mine = format!("{}.com", unique(10));
    h.with_owner(Some(OWNER_A)).ok("register", register(&mine)).await;
    let b = h.with_owner(Some(OWNER_B));
    b.fails("register", register(&mine), ErrorKind::Conflict).await;
    b.fails("get_epp_code", json!({"domain": mine}), ErrorKind::Conflict).await;
    b.fails("set_lock", json!({"domain": mine, "locked": false}), ErrorKind::Conflict).await;
    test.assert_valid();
}

#[tokio::test]
async fn a_transfer_in_is_pending_then_completes_when_the_registry_approves_it() {
    let test = Test::start(Options { transfer_after: Duration::from_millis(300), ..Options::default() }).await;
    let h = test.harness();
    let domain = format!("{}.org", unique(10));
    test.registry.add_domain("other-registrar", &domain, "Good-Code-42");
    h.fails("transfer", json!({"domain": domain, "epp_code": "wrong-code"}), ErrorKind::InvalidInput).await;
    let status = h.ok("transfer", json!({"domain": domain, "epp_code": "Good-Code-42"})).await;
    assert_eq!(status["status"], "pending_transfer");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = h.ok("get_status", json!({"domain": domain})).await;
    assert_eq!(status["status"], "active", "{status}");
    assert_eq!(test.registry.domain(&domain).unwrap().0, test.registry.options().registrars[0].0);
    // Both registrars were told by poll message.
    assert_eq!(test.registry.queued("other-registrar"), 2);
    assert_eq!(test.registry.queued(&test.registry.options().registrars[0].0), 1);
    test.assert_valid();
}

#[tokio::test]
async fn bad_credentials_and_an_untrusted_registry_are_provider_errors_and_sessions_are_bounded() {
    let test = Test::start(Options { max_sessions: 1, ..Options::default() }).await;
    let mut config = test.config();
    config["password"] = json!("wrong-password");
    let report =
        invoke::call(&provisio_epp::entry(), &config, "get_info", &json!({"domain": "a.com"}), &CallOptions::default())
            .await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", report.envelope);
    assert!(report.envelope.message.as_str().contains("password"), "{:#?}", report.envelope);
    let mut untrusted = test.config();
    untrusted.as_object_mut().unwrap().remove("ca_cert_pem");
    let report = invoke::call(
        &provisio_epp::entry(),
        &untrusted,
        "get_info",
        &json!({"domain": "a.com"}),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", report.envelope);
    assert!(report.envelope.message.as_str().contains("ca_cert_pem"), "{:#?}", report.envelope);
    // One session allowed: many calls at once share it, in turn.
    let mut config = test.config();
    config["sessions"] = json!(1);
    let h = Harness::new(provisio_epp::entry(), config);
    let checks = (0..8).map(|_| h.ok("check_availability", json!({"domains": [format!("{}.com", unique(8))]})));
    for answer in futures::future::join_all(checks).await {
        assert_eq!(answer["domains"][0]["available"], true);
    }
    assert!(test.registry.sessions(&test.registry.options().registrars[0].0) <= 1);
    test.assert_valid();
}

/// A server that is not a registry, or a hostile one: a frame claiming
/// gigabytes, a greeting that is not XML, one that offers no domains, and
/// silence. Each is a prompt error naming the problem; nothing hangs.
#[tokio::test]
async fn hostile_or_broken_servers_are_prompt_errors() {
    use tokio::io::AsyncWriteExt;
    let frame = |xml: &str| {
        let mut bytes = ((xml.len() + 4) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(xml.as_bytes());
        bytes
    };
    let no_domains = "<?xml version=\"1.0\"?><epp xmlns=\"urn:ietf:params:xml:ns:epp-1.0\"><greeting><svID>x</svID><svDate>2026-01-01T00:00:00Z</svDate><svcMenu><version>1.0</version><lang>en</lang><objURI>urn:ietf:params:xml:ns:host-1.0</objURI></svcMenu></greeting></epp>";
    let cases: Vec<(Vec<u8>, ErrorKind, &str)> = vec![
        (u32::MAX.to_be_bytes().to_vec(), ErrorKind::ProviderError, "greeting is not EPP"),
        (frame("this is not XML"), ErrorKind::ProviderError, "greeting is not EPP"),
        (frame(no_domains), ErrorKind::ProviderError, "does not offer"),
        (Vec::new(), ErrorKind::Transient, "in time"),
    ];
    for (greeting, kind, says) in cases {
        let tls = provisio_test_server_kit::Tls::generate(&[]);
        let acceptor = tls.acceptor();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (acceptor, greeting) = (acceptor.clone(), greeting.clone());
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(socket).await else { return };
                    let _ = stream.write_all(&greeting).await;
                    let _ = stream.flush().await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        let config = json!({"host": "localhost", "port": port, "username": "provisio", "password": "Secret-1234",
                            "ca_cert_pem": tls.ca_pem});
        let options = CallOptions { timeout: Duration::from_secs(2), ..CallOptions::default() };
        let started = std::time::Instant::now();
        let report =
            invoke::call(&provisio_epp::entry(), &config, "get_info", &json!({"domain": "a.com"}), &options).await;
        assert!(started.elapsed() < Duration::from_secs(4), "{says}: took {:?}", started.elapsed());
        assert_eq!(report.envelope.error_kind, Some(kind), "{says}: {:#?}", report.envelope);
        assert!(report.envelope.message.as_str().contains(says), "{says}: {:#?}", report.envelope);
        server.abort();
    }
}

/// A configuration edited while its sessions are open (here: fewer
/// sessions) gets a new pool, and the old pool's idle sessions are closed:
/// they would otherwise count against the registrar's session limit beside
/// the new ones, until the registry refused every login with 2502.
#[tokio::test]
async fn an_edited_configuration_closes_its_old_sessions() {
    let test = Test::start(Options { max_sessions: 2, ..Options::default() }).await;
    let clid = test.registry.options().registrars[0].0.clone();
    let h = test.harness();
    let checks = (0..6).map(|_| h.ok("check_availability", json!({"domains": [format!("{}.com", unique(8))]})));
    futures::future::join_all(checks).await;
    assert_eq!(test.registry.sessions(&clid), 2, "two sessions open and idle");
    let mut edited = test.config();
    edited["sessions"] = json!(1);
    let h = Harness::new(provisio_epp::entry(), edited);
    let mut answer = h.call("check_availability", json!({"domains": ["fresh-name.com"]})).await;
    if answer.error_kind == Some(ErrorKind::Transient) {
        // The registry may not have seen the old connections close yet.
        tokio::time::sleep(Duration::from_millis(300)).await;
        answer = h.call("check_availability", json!({"domains": ["fresh-name.com"]})).await;
    }
    assert!(answer.is_ok(), "{answer:#?}");
    let started = std::time::Instant::now();
    while test.registry.sessions(&clid) > 1 {
        assert!(started.elapsed() < Duration::from_secs(5), "the old sessions stayed open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    test.assert_valid();
}
