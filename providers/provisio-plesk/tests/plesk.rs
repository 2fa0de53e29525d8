//! `shared-hosting/plesk` against the Plesk test server (in this process,
//! over HTTPS with its own CA): the conformance suite, then what Plesk makes
//! special: a slow subscription, customers made by hand, credentials, TLS,
//! single sign-on and usage.

use std::time::Duration;

use provisio_conformance::{Harness, OWNER_A, OWNER_B, unique};
use provisio_plesk_test_server::{Options, Plesk};
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use provisio_test_server_kit::{Running, Tls, serve};
use serde_json::{Value, json};

struct Panel {
    plesk: Plesk,
    running: Running,
}

impl Panel {
    async fn start() -> Panel {
        let plesk = Plesk::new(Options::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = serve(listener, plesk.router(), Some(Tls::generate(&[])));
        Panel { plesk, running }
    }

    fn config(&self) -> Value {
        json!({"api_url": self.running.url(), "secret_key": self.plesk.options().secret_key,
               "ca_cert_pem": self.running.ca_pem})
    }

    fn harness(&self) -> Harness {
        Harness::new(provisio_plesk::entry(), self.config())
    }
}

fn create(username: Option<&str>, domain: &str) -> Value {
    let mut params = json!({"domain": domain, "package_name": "basic", "email": "owner@provisio-test.com"});
    if let Some(username) = username {
        params["username"] = json!(username);
    }
    params
}

#[tokio::test]
async fn the_plesk_provider_passes_the_shared_hosting_suite() {
    let panel = Panel::start().await;
    provisio_conformance::run(&panel.harness()).await;
    assert!(panel.plesk.subscriptions().is_empty(), "{:?}", panel.plesk.subscriptions());
    assert!(panel.plesk.customers().is_empty(), "{:?}", panel.plesk.customers());
}

#[tokio::test]
async fn login_and_password_work_as_well_as_a_key() {
    let panel = Panel::start().await;
    let mut h = panel.harness();
    h.config = json!({"api_url": panel.running.url(), "login": "admin", "password": panel.plesk.options().password,
                      "ca_cert_pem": panel.running.ca_pem});
    let name = unique(8);
    h.ok("create", create(Some(&name), &format!("{name}.provisio-test.com"))).await;
    h.ok("terminate", json!({"username": name})).await;
}

#[tokio::test]
async fn a_slow_subscription_is_outcome_unknown_then_adopted_never_made_twice() {
    let panel = Panel::start().await;
    panel.plesk.set_add_delay(Duration::from_secs(3));
    let mut impatient = panel.harness();
    impatient.options.timeout = Duration::from_millis(1500);
    for username in [Some(unique(8)), None] {
        let domain = format!("{}.provisio-test.com", unique(9));
        let params = create(username.as_deref(), &domain);
        impatient.fails("create", params.clone(), ErrorKind::OutcomeUnknown).await;
        let retried = panel.harness().ok("create", params).await;
        assert_eq!(retried["domain"], json!(domain));
        let made: Vec<_> = panel.plesk.subscriptions().into_iter().filter(|s| s.name == domain).collect();
        assert_eq!(made.len(), 1, "{:?}", panel.plesk.subscriptions());
    }
    assert_eq!(panel.plesk.customers().len(), 2);
}

#[tokio::test]
async fn a_customer_made_by_hand_or_for_another_service_is_a_conflict() {
    let panel = Panel::start().await;
    let h = panel.harness();
    let name = unique(8);
    panel.plesk.add_customer(&name, "someone@provisio-test.com");
    h.fails("create", create(Some(&name), &format!("{name}.provisio-test.com")), ErrorKind::Conflict).await;
    h.fails("terminate", json!({"username": name}), ErrorKind::Conflict).await;
    assert_eq!(panel.plesk.customers(), std::slice::from_ref(&name), "untouched");

    let theirs = unique(8);
    let domain = format!("{theirs}.provisio-test.com");
    h.with_owner(Some(OWNER_A)).ok("create", create(Some(&theirs), &domain)).await;
    h.with_owner(Some(OWNER_B)).fails("create", create(Some(&theirs), &domain), ErrorKind::Conflict).await;
    h.with_owner(Some(OWNER_B))
        .fails("change_password", json!({"username": theirs, "password": "N3w-Passw0rd"}), ErrorKind::Conflict)
        .await;
    // Another customer asking for a domain that is already hosted.
    let other = unique(8);
    h.with_owner(Some(OWNER_B)).fails("create", create(Some(&other), &domain), ErrorKind::Conflict).await;
    // A generated name skips a login someone holds.
    let made = h.ok("create", create(None, &format!("{name}.provisio-test.net"))).await;
    assert_ne!(made["username"], json!(name), "{made}");
}

#[tokio::test]
async fn refusals_name_the_field_and_bad_credentials_hint_at_the_key() {
    let panel = Panel::start().await;
    let h = panel.harness();
    let mut gold = create(Some(&unique(8)), "gold.provisio-test.com");
    gold["package_name"] = json!("gold");
    let refused = h.fails("create", gold, ErrorKind::InvalidInput).await;
    assert!(
        refused.field_errors().iter().any(|e| e.path == "/package_name" && e.message.contains("basic")),
        "{refused:#?}"
    );
    let mut config = panel.config();
    config["secret_key"] = json!("WRONG-KEY-WRONG-KEY");
    let report = invoke::call(
        &provisio_plesk::entry(),
        &config,
        "get_info",
        &json!({"username": "alice"}),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", report.envelope);
    assert!(report.envelope.message.as_str().contains("secret_key"), "{:#?}", report.envelope);
    assert!(!serde_json::to_string(&report.http_log).unwrap().contains("WRONG-KEY-WRONG-KEY"));
    let good = invoke::test_connection(&provisio_plesk::entry(), &panel.config(), &CallOptions::default()).await;
    assert!(good.envelope.is_ok(), "{:#?}", good.envelope);
    assert!(!serde_json::to_string(&good.http_log).unwrap().contains(&panel.plesk.options().secret_key));
    // Neither a key nor a login: the configuration is refused, naming the field.
    let report = invoke::call(
        &provisio_plesk::entry(),
        &json!({"api_url": panel.running.url()}),
        "get_info",
        &json!({"username": "alice"}),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::InvalidInput), "{:#?}", report.envelope);
}

#[tokio::test]
async fn tls_is_verified_by_default_until_the_servers_ca_is_trusted() {
    let panel = Panel::start().await;
    let entry = provisio_plesk::entry();
    let absent = json!({"username": "nobodyhere"});
    let mut untrusted = panel.config();
    untrusted.as_object_mut().unwrap().remove("ca_cert_pem");
    let refused = invoke::call(&entry, &untrusted, "get_info", &absent, &CallOptions::default()).await;
    assert_eq!(refused.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", refused.envelope);
    assert!(refused.envelope.message.as_str().contains("ca_cert_pem"), "{:#?}", refused.envelope);
    assert_eq!(panel.plesk.requests(), 0, "the key was never sent");
    let trusted = invoke::call(&entry, &panel.config(), "get_info", &absent, &CallOptions::default()).await;
    assert_eq!(trusted.envelope.error_kind, Some(ErrorKind::NotFound), "{:#?}", trusted.envelope);
    untrusted["accept_invalid_certs"] = json!(true);
    let opted_out = invoke::call(&entry, &untrusted, "get_info", &absent, &CallOptions::default()).await;
    assert_eq!(opted_out.envelope.error_kind, Some(ErrorKind::NotFound), "{:#?}", opted_out.envelope);
}

#[tokio::test]
async fn the_sign_on_link_works_once_and_usage_reads_the_subscription() {
    let panel = Panel::start().await;
    let h = panel.harness();
    let name = unique(8);
    let domain = format!("{name}.provisio-test.com");
    h.ok("create", create(Some(&name), &domain)).await;
    provisio_sdk::http::install_crypto_provider();
    let tls = provisio_sdk::tls::client_config(panel.running.ca_pem.as_deref()).unwrap();
    let browser = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let link = h.ok("get_login_url", json!({"username": name, "client_ip": "192.0.2.99"})).await;
    let url = link["login_url"].as_str().unwrap();
    assert!(url.contains("/enterprise/rsession_init.php?PLESKSESSID="), "{url}");
    let first = browser.get(url).send().await.unwrap();
    assert_eq!(first.status(), 302);
    assert!(first.headers()["set-cookie"].to_str().unwrap().starts_with("PLESKSESSID="));
    assert_eq!(browser.get(url).send().await.unwrap().status(), 401, "a second use is refused");
    h.fails("get_login_url", json!({"username": name, "area": "webmail"}), ErrorKind::InvalidInput).await;

    assert!(panel.plesk.set_usage(&domain, 14 * 1024 * 1024, 5 * 1024 * 1024, 3, 2));
    let usage = h.ok("get_usage", json!({"username": name})).await;
    assert_eq!(usage["disk_mb"]["used"], json!(14.0));
    assert_eq!(usage["bandwidth_mb"]["used"], json!(5.0));
    assert_eq!((usage["mailboxes"]["used"].clone(), usage["databases"]["used"].clone()), (json!(3.0), json!(2.0)));

    h.ok("change_password", json!({"username": name, "password": "N3w-Passw0rd"})).await;
    assert_eq!(panel.plesk.customer_password(&name).as_deref(), Some("N3w-Passw0rd"));
    h.ok("suspend", json!({"username": name})).await;
    assert_eq!(panel.plesk.subscriptions()[0].status, 16);
    h.ok("change_package", json!({"username": name, "package_name": "premium"})).await;
    assert_eq!(panel.plesk.subscriptions()[0].plan.as_deref(), Some("premium"));
}

/// A server that is not Plesk, or is hostile: each answer is a prompt error
/// naming the problem; a redirect is never followed; an XML bomb (entities
/// in a DTD) is refused before any expansion.
#[tokio::test]
async fn hostile_or_broken_servers_are_errors_within_the_deadline_and_nothing_expands() {
    use provisio_test_server_kit::{Hostile, hostile_router};
    let elsewhere = Panel::start().await;
    let bomb = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE packet [<!ENTITY a \"aaaaaaaaaa\">{}]><packet>&a9;</packet>",
        (1..10)
            .map(|n| format!(
                "<!ENTITY a{n} \"{}\">",
                format!("&a{};", if n == 1 { String::new() } else { (n - 1).to_string() }).repeat(10)
            ))
            .collect::<String>()
    );
    let cases = [
        (Hostile::Huge, ErrorKind::ProviderError, "larger than"),
        (Hostile::Endless, ErrorKind::Transient, "in time"),
        (
            Hostile::Redirect(format!("{}/enterprise/control/agent.php", elsewhere.running.url())),
            ErrorKind::ProviderError,
            "302",
        ),
        (Hostile::Page(200, "<html>Login".into()), ErrorKind::ProviderError, "not an XML API packet"),
        (Hostile::Page(502, "Bad Gateway".into()), ErrorKind::Transient, "HTTP 502"),
        (Hostile::Xml(bomb), ErrorKind::ProviderError, "not an XML API packet"),
        (
            Hostile::Xml("<packet><customer><get/></customer></packet>".into()),
            ErrorKind::ProviderError,
            "without a result",
        ),
    ];
    for (hostile, kind, says) in cases {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = serve(listener, hostile_router(hostile.clone()), None);
        let config = json!({"api_url": running.url(), "secret_key": "KEY-THAT-MUST-STAY"});
        let options = CallOptions { timeout: Duration::from_secs(2), ..CallOptions::default() };
        let started = std::time::Instant::now();
        let report =
            invoke::call(&provisio_plesk::entry(), &config, "get_info", &json!({"username": "alice"}), &options).await;
        assert!(started.elapsed() < Duration::from_secs(4), "{:?} took {:?}", kind, started.elapsed());
        assert_eq!(report.envelope.error_kind, Some(kind), "{:#?}", report.envelope);
        assert!(report.envelope.message.as_str().contains(says), "{:#?}", report.envelope);
    }
    assert_eq!(elsewhere.plesk.requests(), 0, "the redirect's target was never called");
}

/// Passwords Provisio makes, passwords with XML's special characters, and
/// the session ids Plesk answers are in no exchange of the call's log.
#[tokio::test]
async fn generated_passwords_escaped_passwords_and_sessions_stay_out_of_the_log() {
    let panel = Panel::start().await;
    let entry = provisio_plesk::entry();
    let options = CallOptions { owner: Some(OWNER_A.into()), ..CallOptions::default() };
    let name = unique(8);
    let created =
        invoke::call(&entry, &panel.config(), "create", &create(Some(&name), "gen.provisio-test.com"), &options).await;
    assert!(created.envelope.is_ok(), "{:#?}", created.envelope);
    let password = panel.plesk.customer_password(&name).unwrap();
    assert!(!serde_json::to_string(&created.http_log).unwrap().contains(&password), "the generated password leaked");
    let special = "N3w&Pass<w0rd>";
    let changed = invoke::call(
        &entry,
        &panel.config(),
        "change_password",
        &json!({"username": name, "password": special}),
        &options,
    )
    .await;
    assert!(changed.envelope.is_ok(), "{:#?}", changed.envelope);
    assert_eq!(panel.plesk.customer_password(&name).as_deref(), Some(special));
    let log = serde_json::to_string(&changed.http_log).unwrap();
    assert!(!log.contains("N3w&amp;Pass&lt;w0rd&gt;") && !log.contains(special), "{log}");
    let login = invoke::call(&entry, &panel.config(), "get_login_url", &json!({"username": name}), &options).await;
    let url = login.envelope.data.as_ref().unwrap()["login_url"].as_str().unwrap().to_owned();
    let id = url.split("PLESKSESSID=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    assert!(!serde_json::to_string(&login.http_log).unwrap().contains(&id), "the session id leaked");
}
