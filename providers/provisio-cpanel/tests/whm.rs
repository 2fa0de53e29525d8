//! `shared-hosting/cpanel` against the WHM test server (in this process,
//! over HTTPS with its own CA): the conformance suite, then what WHM makes
//! special: slow account creation, accounts made by hand, resellers, bad
//! tokens, TLS and single sign-on.

use std::time::Duration;

use provisio_conformance::{Harness, OWNER_A, OWNER_B, unique};
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use provisio_test_server_kit::{Running, Tls, serve};
use provisio_whm_test_server::{Options, Whm};
use serde_json::{Value, json};

struct Panel {
    whm: Whm,
    running: Running,
}

impl Panel {
    async fn start(options: Options) -> Panel {
        let whm = Whm::new(options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = serve(listener, whm.router(), Some(Tls::generate(&[])));
        Panel { whm, running }
    }

    fn config(&self) -> Value {
        json!({"api_url": self.running.url(), "username": "root", "api_token": self.whm.options().root_token,
               "ca_cert_pem": self.running.ca_pem})
    }

    fn harness(&self) -> Harness {
        Harness::new(provisio_cpanel::entry(), self.config())
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
async fn the_cpanel_provider_passes_the_shared_hosting_suite() {
    let panel = Panel::start(Options::default()).await;
    provisio_conformance::run(&panel.harness()).await;
    // Everything the suite made, it removed.
    assert!(panel.whm.accounts().is_empty(), "{:?}", panel.whm.accounts());
}

#[tokio::test]
async fn a_slow_createacct_is_outcome_unknown_then_adopted_never_made_twice() {
    let panel = Panel::start(Options::default()).await;
    panel.whm.set_create_delay(Duration::from_secs(3));
    let mut impatient = panel.harness();
    impatient.options.timeout = Duration::from_millis(1500);
    for username in [Some(unique(8)), None] {
        let domain = format!("{}.provisio-test.com", unique(9));
        let params = create(username.as_deref(), &domain);
        let first = impatient.fails("create", params.clone(), ErrorKind::OutcomeUnknown).await;
        assert!(first.message.as_str().contains("may have taken effect"), "{first:#?}");
        // The engine reconciles with get_info when it knows the name; a
        // generated name is found again by the retried create.
        let retried = panel.harness().ok("create", params).await;
        let made: Vec<_> = panel.whm.accounts().into_iter().filter(|a| a.0 == retried["username"]).collect();
        assert_eq!(made.len(), 1, "{:?}", panel.whm.accounts());
        assert_eq!(retried["domain"], json!(domain));
        if let Some(username) = &username {
            assert_eq!(retried["username"], json!(username));
            let info = panel.harness().ok("get_info", json!({"username": username})).await;
            assert_eq!(info["state"], "active");
        }
    }
    assert_eq!(panel.whm.accounts().len(), 2, "two creates, two accounts");
}

#[tokio::test]
async fn an_account_made_by_hand_or_for_another_service_is_a_conflict() {
    let panel = Panel::start(Options::default()).await;
    let h = panel.harness();
    let name = unique(8);
    panel.whm.add_account(&name, &format!("{name}.provisio-test.com"), "basic", "owner@provisio-test.com");
    let refused =
        h.fails("create", create(Some(&name), &format!("{name}.provisio-test.com")), ErrorKind::Conflict).await;
    assert!(refused.message.as_str().contains("belongs to another service"), "{refused:#?}");
    h.fails("terminate", json!({"username": name}), ErrorKind::Conflict).await;
    h.fails("change_password", json!({"username": name, "password": "N3w-Passw0rd"}), ErrorKind::Conflict).await;
    assert_eq!(panel.whm.accounts().len(), 1, "the hand-made account is untouched");

    // Service B cannot take service A's account, even knowing its name.
    let theirs = unique(8);
    let domain = format!("{theirs}.provisio-test.com");
    h.with_owner(Some(OWNER_A)).ok("create", create(Some(&theirs), &domain)).await;
    h.with_owner(Some(OWNER_B)).fails("create", create(Some(&theirs), &domain), ErrorKind::Conflict).await;
    h.with_owner(Some(OWNER_B)).fails("suspend", json!({"username": theirs}), ErrorKind::Conflict).await;

    // A generated name skips names others hold: the domain's first choice is taken.
    let taken = format!("{name}.provisio-test.net");
    let made = h.ok("create", create(None, &taken)).await;
    assert_ne!(made["username"], json!(name), "{made}");
    assert!(made["username"].as_str().unwrap().starts_with(&name[..7]), "{made}");
}

#[tokio::test]
async fn whm_refusals_map_to_kinds_naming_the_field() {
    let panel = Panel::start(Options::default()).await;
    let h = panel.harness();
    // cPanel reserves names starting with "test" and refuses the rest of its list.
    for name in ["testshop", "root", "cpanelx"] {
        let refused = h.fails("create", create(Some(name), "shop.provisio-test.com"), ErrorKind::InvalidInput).await;
        let paths: Vec<String> = refused.field_errors().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["/username"], "{refused:#?}");
    }
    let mut gold = create(Some(&unique(8)), "gold.provisio-test.com");
    gold["package_name"] = json!("gold");
    let refused = h.fails("create", gold, ErrorKind::InvalidInput).await;
    assert!(
        refused.field_errors().iter().any(|e| e.path == "/package_name" && e.message.contains("basic")),
        "{refused:#?}"
    );
    // Another account's 8-character prefix is a clash on cPanel.
    let name = unique(8);
    h.ok("create", create(Some(&name), &format!("{name}.provisio-test.com"))).await;
    h.fails("create", create(Some(&format!("{name}x")), "other.provisio-test.com"), ErrorKind::Conflict).await;
    assert_eq!(panel.whm.accounts().len(), 1);
}

#[tokio::test]
async fn a_bad_token_is_a_provider_error_with_a_hint_and_the_token_never_shows() {
    let panel = Panel::start(Options::default()).await;
    let mut config = panel.config();
    config["api_token"] = json!("WRONGTOKENWRONGTOKEN");
    let report = invoke::call(
        &provisio_cpanel::entry(),
        &config,
        "get_info",
        &json!({"username": "alice"}),
        &CallOptions::default(),
    )
    .await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", report.envelope);
    assert!(report.envelope.message.as_str().contains("api_token"), "{:#?}", report.envelope);
    let log = serde_json::to_string(&report.http_log).unwrap();
    assert!(!log.contains("WRONGTOKENWRONGTOKEN"), "{log}");
    let good = invoke::test_connection(&provisio_cpanel::entry(), &panel.config(), &CallOptions::default()).await;
    assert!(good.envelope.is_ok(), "{:#?}", good.envelope);
    assert!(!serde_json::to_string(&good.http_log).unwrap().contains(&panel.whm.options().root_token));
    let data = good.envelope.data.unwrap();
    assert_eq!(data["details"]["version"], json!(provisio_whm_test_server::VERSION), "{data}");
}

#[tokio::test]
async fn tls_is_verified_by_default_until_the_servers_ca_is_trusted() {
    let panel = Panel::start(Options::default()).await;
    let entry = provisio_cpanel::entry();
    let absent = json!({"username": "nobodyhere"});
    let mut untrusted = panel.config();
    untrusted.as_object_mut().unwrap().remove("ca_cert_pem");
    let refused = invoke::call(&entry, &untrusted, "get_info", &absent, &CallOptions::default()).await;
    assert_eq!(refused.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", refused.envelope);
    assert!(refused.envelope.message.as_str().contains("ca_cert_pem"), "{:#?}", refused.envelope);
    assert_eq!(panel.whm.requests(), 0, "nothing reached the server: the token was never sent");
    // Its own CA, or the explicit opt-out, lets the call through.
    let trusted = invoke::call(&entry, &panel.config(), "get_info", &absent, &CallOptions::default()).await;
    assert_eq!(trusted.envelope.error_kind, Some(ErrorKind::NotFound), "{:#?}", trusted.envelope);
    untrusted["accept_invalid_certs"] = json!(true);
    let opted_out = invoke::call(&entry, &untrusted, "get_info", &absent, &CallOptions::default()).await;
    assert_eq!(opted_out.envelope.error_kind, Some(ErrorKind::NotFound), "{:#?}", opted_out.envelope);
    // Another server's CA is not this one's.
    let other = Panel::start(Options::default()).await;
    let mut wrong = panel.config();
    wrong["ca_cert_pem"] = json!(other.running.ca_pem);
    let refused = invoke::call(&entry, &wrong, "get_info", &absent, &CallOptions::default()).await;
    assert_eq!(refused.envelope.error_kind, Some(ErrorKind::ProviderError), "{:#?}", refused.envelope);
}

#[tokio::test]
async fn the_sign_on_link_works_once_and_never_while_suspended() {
    let panel = Panel::start(Options::default()).await;
    let h = panel.harness();
    let name = unique(8);
    h.ok("create", create(Some(&name), &format!("{name}.provisio-test.com"))).await;
    provisio_sdk::http::install_crypto_provider();
    let tls = provisio_sdk::tls::client_config(panel.running.ca_pem.as_deref()).unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for area in ["control_panel", "webmail"] {
        let link = h.ok("get_login_url", json!({"username": name, "area": area})).await;
        let url = link["login_url"].as_str().unwrap();
        let first = client.get(url).send().await.unwrap();
        assert_eq!(first.status(), 302, "{url}");
        assert!(first.headers()["set-cookie"].to_str().unwrap().starts_with("cpsession="));
        let landing = first.headers()["location"].to_str().unwrap();
        assert!(landing.contains(if area == "webmail" { "webmail" } else { "frontend" }), "{landing}");
        assert_eq!(client.get(url).send().await.unwrap().status(), 401, "a second use is refused");
    }
    h.ok("suspend", json!({"username": name, "reason": "overdue"})).await;
    let refused = h.fails("get_login_url", json!({"username": name}), ErrorKind::ProviderError).await;
    assert!(refused.message.as_str().contains("suspended"), "{refused:#?}");
}

#[tokio::test]
async fn a_reseller_acts_only_on_its_own_accounts() {
    let options = Options { resellers: vec![("shopreseller".into(), "RESELLERTOKEN123".into())], ..Options::default() };
    let panel = Panel::start(options).await;
    let root = panel.harness();
    let mut reseller = panel.harness();
    reseller.config["username"] = json!("shopreseller");
    reseller.config["api_token"] = json!("RESELLERTOKEN123");
    let mine = unique(8);
    reseller.ok("create", create(Some(&mine), &format!("{mine}.provisio-test.com"))).await;
    let owner = panel.whm.accounts().into_iter().find(|a| a.0 == mine).unwrap().2;
    assert_eq!(owner, "shopreseller");
    let roots = unique(8);
    root.ok("create", create(Some(&roots), &format!("{roots}.provisio-test.com"))).await;
    // Root's account does not exist as far as the reseller can tell.
    reseller.fails("get_info", json!({"username": roots}), ErrorKind::NotFound).await;
    reseller.fails("terminate", json!({"username": roots}), ErrorKind::NotFound).await;
    let test = invoke::test_connection(&reseller.entry, &reseller.config, &CallOptions::default()).await;
    assert_eq!(test.envelope.data.unwrap()["details"]["accounts"], json!(1));
}

#[tokio::test]
async fn usage_reads_disk_from_the_summary_and_traffic_from_showbw() {
    let panel = Panel::start(Options::default()).await;
    let h = panel.harness();
    let name = unique(8);
    h.ok("create", create(Some(&name), &format!("{name}.provisio-test.com"))).await;
    assert!(panel.whm.set_usage(&name, 14, 321, 5 * 1024 * 1024));
    let usage = h.ok("get_usage", json!({"username": name})).await;
    assert_eq!(usage["disk_mb"], json!({"used": 14.0, "limit": null}));
    assert_eq!(usage["bandwidth_mb"], json!({"used": 5.0, "limit": null}));
    assert_eq!(usage["inodes"]["used"], json!(321.0));
}

/// A server that is not WHM, or is hostile: each answer is a prompt error
/// that names the problem, within the call's deadline; a redirect is never
/// followed (the token would go with it).
#[tokio::test]
async fn hostile_or_broken_servers_are_errors_within_the_deadline_and_redirects_are_not_followed() {
    use provisio_test_server_kit::{Hostile, hostile_router};
    let elsewhere = Panel::start(Options::default()).await;
    let cases = [
        (Hostile::Huge, ErrorKind::ProviderError, "larger than"),
        (Hostile::Endless, ErrorKind::Transient, "in time"),
        (Hostile::Redirect(format!("{}/json-api/version", elsewhere.running.url())), ErrorKind::ProviderError, "302"),
        (Hostile::Page(200, "<html>Login</html>".into()), ErrorKind::ProviderError, "not WHM API 1"),
        (Hostile::Page(500, "Internal Server Error".into()), ErrorKind::Transient, "HTTP 500"),
        (Hostile::Page(200, r#"{"metadata":{}}"#.into()), ErrorKind::ProviderError, "metadata.result"),
    ];
    for (hostile, kind, says) in cases {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = serve(listener, hostile_router(hostile.clone()), None);
        let config = json!({"api_url": running.url(), "api_token": "TOKEN-THAT-MUST-STAY"});
        let options = CallOptions { timeout: Duration::from_secs(2), ..CallOptions::default() };
        let started = std::time::Instant::now();
        let report =
            invoke::call(&provisio_cpanel::entry(), &config, "get_info", &json!({"username": "alice"}), &options).await;
        assert!(started.elapsed() < Duration::from_secs(4), "{hostile:?} took {:?}", started.elapsed());
        assert_eq!(report.envelope.error_kind, Some(kind), "{hostile:?}: {:#?}", report.envelope);
        assert!(report.envelope.message.as_str().contains(says), "{hostile:?}: {:#?}", report.envelope);
    }
    assert_eq!(elsewhere.whm.requests(), 0, "the redirect's target was never called");
}

/// The contact email is the customer's to edit in cPanel. Dropping the mark,
/// adding a second address or writing another mark neither lets the account
/// escape its service's suspension and termination nor hands it to anyone
/// else: its service knows it by its domain and creation time.
#[tokio::test]
async fn a_customer_editing_the_contact_email_neither_escapes_its_service_nor_hands_the_account_over() {
    let panel = Panel::start(Options::default()).await;
    let h = panel.harness();
    let name = unique(8);
    let made = h.ok("create", create(Some(&name), &format!("{name}.provisio-test.com"))).await;
    // The engine hands later calls the service's stored result.
    let mut service = h.clone();
    service.options.provision_data = made.as_object().unwrap().clone();
    let marked = panel.whm.accounts()[0].4.clone();
    let edits = [
        "owner@provisio-test.com".to_owned(),
        format!("{marked}, second@provisio-test.com"),
        "owner+prv-madeup123@provisio-test.com".to_owned(),
    ];
    for edited in &edits {
        assert!(panel.whm.set_contact_email(&name, edited));
        assert_eq!(service.ok("suspend", json!({"username": name, "reason": "overdue"})).await["state"], "suspended");
        assert_eq!(service.ok("unsuspend", json!({"username": name})).await["state"], "active");
        // Another service, with nothing stored, gets no hold of it.
        h.with_owner(Some(OWNER_B)).fails("suspend", json!({"username": name}), ErrorKind::Conflict).await;
    }
    // With the mark in the first of two addresses, the mark alone still says whose it is.
    assert!(panel.whm.set_contact_email(&name, &format!("{marked}, second@provisio-test.com")));
    h.ok("get_info", json!({"username": name})).await;
    service.ok("terminate", json!({"username": name})).await;
    assert!(panel.whm.accounts().is_empty());
}

/// Passwords Provisio makes and sign-on sessions WHM answers are in no
/// exchange of the call's log.
#[tokio::test]
async fn generated_passwords_and_sign_on_sessions_stay_out_of_the_log() {
    let panel = Panel::start(Options::default()).await;
    let entry = provisio_cpanel::entry();
    let options = CallOptions { owner: Some(OWNER_A.into()), ..CallOptions::default() };
    let name = unique(8);
    let created =
        invoke::call(&entry, &panel.config(), "create", &create(Some(&name), "gen.provisio-test.com"), &options).await;
    assert!(created.envelope.is_ok(), "{:#?}", created.envelope);
    let password = panel.whm.password(&name).unwrap();
    assert!(!serde_json::to_string(&created.http_log).unwrap().contains(&password), "the generated password leaked");
    let login = invoke::call(&entry, &panel.config(), "get_login_url", &json!({"username": name}), &options).await;
    let url = login.envelope.data.as_ref().unwrap()["login_url"].as_str().unwrap().to_owned();
    let session = url.split("session=").nth(1).unwrap().to_owned();
    let log = serde_json::to_string(&login.http_log).unwrap();
    assert!(!log.contains(&session) && !log.contains(&url), "{log}");
    let decoded: String = url::form_urlencoded::parse(format!("s={session}").as_bytes()).next().unwrap().1.into_owned();
    assert!(!log.contains(&decoded), "{log}");
}
