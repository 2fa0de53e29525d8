//! `domain-names/nominet` against the EPP test registry in Nominet mode
//! (over TLS, every frame validated against the IETF schemas and ours for
//! Nominet's namespaces): the conformance suite, the registrant's type,
//! releases to another tag (at once, or by handshake), domains pushed to us
//! (accepted, rejected or left as configured), cancellations, two-character
//! tags and a hostile caller's release of someone else's domain.

use provisio_conformance::{Harness, OWNER_A, OWNER_B, unique};
use provisio_epp_test_server::{Options, Registry};
use provisio_sdk::{CallOptions, ErrorKind, Notice, NoticeKind, invoke};
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

    fn tag(&self) -> String {
        self.registry.options().registrars[0].0.clone()
    }

    fn other(&self) -> String {
        self.registry.options().registrars[1].0.clone()
    }

    fn config(&self, handshakes: &str) -> Value {
        let (tag, pw) = &self.registry.options().registrars[0];
        json!({"host": "localhost", "port": self.port, "tag": tag, "password": pw, "ca_cert_pem": self.ca,
               "handshakes": handshakes})
    }

    fn harness(&self, handshakes: &str) -> Harness {
        Harness::new(provisio_epp::nominet::entry(), self.config(handshakes))
    }

    fn assert_valid(&self) {
        assert_eq!(self.registry.invalid_commands(), 0, "{:?}", self.registry.last_invalid());
        assert_eq!(self.registry.invalid_answers(), 0, "{:?}", self.registry.last_invalid());
    }
}

fn contact(email: &str, organisation: Option<&str>, country: &str) -> Value {
    let mut c = json!({"name": "Ann Lee", "email": email, "phone": "+442071234567", "address1": "1 High Street",
                       "city": "London", "postcode": "N1 1AA", "country_code": country});
    if let Some(org) = organisation {
        c["organisation"] = json!(org);
    }
    c
}

fn register(domain: &str) -> Value {
    json!({"domain": domain, "years": 1, "contacts": {"registrant": contact("ann@provisio-test.com", None, "GB")},
           "nameservers": ["ns1.provisio-test.com", "ns2.provisio-test.com"]})
}

/// The next notice, and its acknowledgement after the caller looked.
async fn next_notice(h: &Harness) -> Option<Notice> {
    let report = invoke::notice(&h.entry, &h.config, None, &h.options).await;
    assert!(report.envelope.is_ok(), "{:#?}", report.envelope);
    let notice: Option<Notice> = report.envelope.data.and_then(|d| serde_json::from_value(d).ok());
    if let Some(notice) = &notice {
        let acked = invoke::notice(&h.entry, &h.config, Some(&notice.id), &h.options).await;
        assert!(acked.envelope.is_ok(), "{:#?}", acked.envelope);
    }
    notice
}

#[tokio::test]
async fn the_nominet_provider_passes_the_domain_names_suite_with_every_frame_valid() {
    let test = Test::start(Options::nominet()).await;
    let mut h = test.harness("leave");
    let incoming = format!("{}.co.uk", unique(10));
    test.registry.add_domain(&test.other(), &incoming, "");
    h.incoming = Some((incoming.clone(), "unused-in-uk".into()));
    provisio_conformance::run(&h).await;
    test.assert_valid();
    // Nothing was asked of the registry: the domain waits for its release.
    assert_eq!(test.registry.domain(&incoming).unwrap().0, test.other());
}

#[tokio::test]
async fn the_registrant_carries_nominets_type_and_there_is_no_epp_code() {
    let test = Test::start(Options::nominet()).await;
    let h = test.harness("leave");
    let person = format!("{}.co.uk", unique(10));
    let info = h.ok("register", register(&person)).await;
    assert_eq!(info["status"], "active");
    let (_, registrant, _) = test.registry.domain_details(&person).unwrap();
    assert_eq!(test.registry.contact_type(&registrant).unwrap().0.as_deref(), Some("IND"));
    // A foreign organisation is FOTHER; the type follows a change of registrant.
    let changed =
        json!({"domain": person, "contacts": {"registrant": contact("ann@provisio-test.com", Some("Lee SARL"), "FR")}});
    h.ok("update_contacts", changed).await;
    assert_eq!(test.registry.contact_type(&registrant).unwrap().0.as_deref(), Some("FOTHER"));
    let envelope = h.fails("get_epp_code", json!({"domain": person}), ErrorKind::Unsupported).await;
    assert!(envelope.message.as_str().contains("get_epp_code"), "{envelope:#?}");
    test.assert_valid();
}

#[tokio::test]
async fn a_release_moves_the_domain_away_and_its_message_says_so_once() {
    let test = Test::start(Options::nominet()).await;
    let h = test.harness("leave").with_owner(Some(OWNER_A));
    let domain = format!("{}.co.uk", unique(10));
    h.ok("register", register(&domain)).await;
    // Another service may not release it; nor may it go to our own tag or a made-up one.
    let b = h.with_owner(Some(OWNER_B));
    b.fails("release", json!({"domain": domain, "registrar_tag": test.other()}), ErrorKind::Conflict).await;
    h.rejects("release", json!({"domain": domain, "registrar_tag": test.tag()}), "/registrar_tag").await;
    h.rejects("release", json!({"domain": domain, "registrar_tag": "NO-SUCH-TAG"}), "/registrar_tag").await;
    h.rejects("release", json!({"domain": domain, "registrar_tag": "lower-case"}), "/registrar_tag").await;
    assert_eq!(test.registry.domain(&domain).unwrap().0, test.tag(), "nothing moved");
    // To a tag that takes it at once.
    let released = h.ok("release", json!({"domain": domain, "registrar_tag": test.other()})).await;
    assert_eq!(released["status"], "transferred_away", "{released}");
    assert_eq!(test.registry.domain(&domain).unwrap().0, test.other());
    // Released again (the first answer lost): the same answer, nothing sent.
    let again = h.ok("release", json!({"domain": domain, "registrar_tag": test.other()})).await;
    assert_eq!(again["status"], "transferred_away");
    let notice = next_notice(&h).await.expect("the release is announced");
    assert_eq!((notice.kind, notice.identifier.as_str()), (NoticeKind::TransferredAway, domain.as_str()), "{notice:?}");
    assert!(next_notice(&h).await.is_none());
    test.assert_valid();
}

#[tokio::test]
async fn a_release_to_a_tag_that_handshakes_waits_and_a_refusal_keeps_the_domain() {
    let test = Test::start(Options { handshake_tags: vec!["OTHER-TAG".into()], ..Options::nominet() }).await;
    let h = test.harness("leave");
    let domain = format!("{}.co.uk", unique(10));
    h.ok("register", register(&domain)).await;
    let pending = h.ok("release", json!({"domain": domain, "registrar_tag": test.other()})).await;
    assert_eq!(pending["status"], "pending_transfer", "{pending}");
    // Offered once: a second release while it waits is refused, clearly.
    let envelope =
        h.fails("release", json!({"domain": domain, "registrar_tag": test.other()}), ErrorKind::ProviderError).await;
    assert!(envelope.message.as_str().contains("already offered"), "{envelope:#?}");
    // The receiver (the other tag, as a Nominet client) rejects the case.
    let theirs = Harness::new(
        provisio_epp::nominet::entry(),
        json!({"host": "localhost", "port": test.port, "tag": test.other(),
               "password": test.registry.options().registrars[1].1, "ca_cert_pem": test.ca, "handshakes": "reject"}),
    );
    let offer = next_notice(&theirs).await.expect("the offer reaches them");
    assert_eq!(offer.kind, NoticeKind::Other, "rejected: {offer:?}");
    assert!(offer.message.contains("rejected"), "{offer:?}");
    assert_eq!(test.registry.domain(&domain).unwrap().0, test.tag(), "still ours");
    let refusal = next_notice(&h).await.expect("we hear of the refusal");
    assert_eq!((refusal.kind, refusal.identifier.as_str()), (NoticeKind::Other, domain.as_str()), "{refusal:?}");
    assert_eq!(h.ok("get_info", json!({"domain": domain})).await["status"], "active");
    test.assert_valid();
}

#[tokio::test]
async fn domains_pushed_to_us_arrive_as_transfers_in_accepted_or_left_as_configured() {
    let test = Test::start(Options { handshake_tags: vec!["PROVISIO-TAG".into()], ..Options::nominet() }).await;
    let (first, second) = (format!("{}.co.uk", unique(10)), format!("{}.org.uk", unique(10)));
    test.registry.add_domain(&test.other(), &first, "");
    test.registry.add_domain(&test.other(), &second, "");
    // The service asked for the first: pending, with what the client must do.
    let h = test.harness("leave");
    // The registrant of the domains the test registry holds for the other tag.
    let holder = json!({"registrant": contact("someone@example.net", None, "GB")});
    // No code proves a .uk transfer: the order must name the registrant.
    h.rejects("transfer", json!({"domain": first, "epp_code": "none"}), "/contacts").await;
    let status = h.ok("transfer", json!({"domain": first, "epp_code": "none", "contacts": holder})).await;
    assert_eq!(status["status"], "pending_transfer");
    assert!(status["message"].as_str().unwrap().contains(&test.tag()), "{status}");
    let nowhere = json!({"domain": format!("{}.co.uk", unique(10)), "epp_code": "x", "contacts": holder});
    h.fails("transfer", nowhere, ErrorKind::NotFound).await;
    // Left for staff: the case stays open, the message is recorded.
    assert_eq!(test.registry.release(&first, &test.tag()), Some(1001));
    let left = next_notice(&h).await.unwrap();
    assert_eq!((left.kind, left.identifier.as_str()), (NoticeKind::Other, first.as_str()));
    assert!(left.message.contains("waits for an answer"), "{left:?}");
    assert_eq!(test.registry.open_cases(&test.tag()).len(), 1);
    // Accepted: the domain is ours, and the notice says it arrived.
    assert_eq!(test.registry.release(&second, &test.tag()), Some(1001));
    let accepting = test.harness("accept");
    let arrived = next_notice(&accepting).await.unwrap();
    assert_eq!((arrived.kind, arrived.identifier.as_str()), (NoticeKind::TransferredIn, second.as_str()));
    assert_eq!(test.registry.domain(&second).unwrap().0, test.tag());
    // Our own notice of the move (rcData with the domain's data) follows.
    let moved = next_notice(&accepting).await.unwrap();
    assert_eq!((moved.kind, moved.identifier.as_str()), (NoticeKind::TransferredIn, second.as_str()), "{moved:?}");
    // Without a handshake it just arrives; the service that asked follows it to active.
    test.registry.set_handshake(&test.tag(), false);
    let third = format!("{}.co.uk", unique(10));
    test.registry.add_domain(&test.other(), &third, "");
    assert_eq!(test.registry.release(&third, &test.tag()), Some(1000));
    let pushed = next_notice(&h).await.unwrap();
    assert_eq!((pushed.kind, pushed.identifier.as_str()), (NoticeKind::TransferredIn, third.as_str()));
    let mut following = h.clone();
    following.options.provision_data =
        json!({"status": "pending_transfer", "contacts": holder}).as_object().cloned().unwrap();
    let arrived = following.ok("get_status", json!({"domain": third})).await;
    assert_eq!(
        (arrived["status"].as_str(), arrived["transferred_in"].as_bool()),
        (Some("active"), Some(true)),
        "{arrived}"
    );
    // Arrived with another registrant than the order named: not the service's, staff must look.
    let mut impostor = h.clone();
    impostor.options.provision_data = json!({"status": "pending_transfer",
        "contacts": {"registrant": contact("impostor@example.com", None, "GB")}})
    .as_object()
    .cloned()
    .unwrap();
    let refused = impostor.ok("get_status", json!({"domain": third})).await;
    assert_eq!(refused["status"], "cancelled", "{refused}");
    assert!(refused.get("transferred_in").is_none(), "{refused}");
    let change = json!({"domain": third, "nameservers": ["ns1.a.net", "ns2.a.net"]});
    impostor.fails("update_nameservers", change, ErrorKind::Conflict).await;
    // A domain nobody asked for is not this service's to read.
    h.fails("get_status", json!({"domain": first}), ErrorKind::Conflict).await;
    test.assert_valid();
}

#[tokio::test]
async fn an_accepted_case_read_again_after_a_crash_is_still_a_transfer_in() {
    let test = Test::start(Options { handshake_tags: vec!["PROVISIO-TAG".into()], ..Options::nominet() }).await;
    let h = test.harness("accept");
    let domain = format!("{}.co.uk", unique(10));
    test.registry.add_domain(&test.other(), &domain, "");
    assert_eq!(test.registry.release(&domain, &test.tag()), Some(1001));
    // Read (the case is accepted) but not acknowledged: the crash.
    let report = invoke::notice(&h.entry, &h.config, None, &h.options).await;
    let first: Notice = serde_json::from_value(report.envelope.data.unwrap()).unwrap();
    assert_eq!(first.kind, NoticeKind::TransferredIn);
    // Read again: the case is gone, the domain is ours: the same notice.
    let again = next_notice(&h).await.unwrap();
    assert_eq!((again.id.as_str(), again.kind), (first.id.as_str(), NoticeKind::TransferredIn));
    test.assert_valid();
}

#[tokio::test]
async fn a_cancelled_domain_is_a_deletion_and_two_character_tags_log_in_with_a_hash() {
    let test = Test::start(Options {
        registrars: vec![("XY".into(), "Fourteen-chars-1".into()), ("OTHER-TAG".into(), "Fourteen-chars-2".into())],
        ..Options::nominet()
    })
    .await;
    let h = test.harness("leave");
    let domain = format!("{}.co.uk", unique(10));
    h.ok("register", register(&domain)).await;
    assert_eq!(test.registry.domain(&domain).unwrap().0, "#XY", "a two-character tag is written as it logs in");
    assert!(test.registry.cancel_domain(&domain));
    let notice = next_notice(&h).await.unwrap();
    assert_eq!((notice.kind, notice.identifier.as_str()), (NoticeKind::Deleted, domain.as_str()));
    // A password shorter than Nominet's 14 characters is refused before any call.
    let mut config = test.config("leave");
    config["password"] = json!("short-pass-13");
    let report = invoke::call(
        &provisio_epp::nominet::entry(),
        &config,
        "get_info",
        &json!({"domain": domain}),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::InvalidInput), "{:#?}", report.envelope);
    assert!(format!("{:?}", report.envelope).contains("password"), "{:#?}", report.envelope);
    test.assert_valid();
}
