//! The console through the real router (API and console together, as
//! `provisio serve` mounts them), over HTTP, with a real store, the demo
//! seed and the worker: sign-in and its cookie, CSRF, origin, fixation,
//! sign-out, scopes, secrets never in a page, and the client area.

use std::time::{Duration, Instant};

use provisio_engine::{Engine, Settings, Vault};
use provisio_store::StoreOptions;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

const SECRET: &str = "never-in-a-page-7c1e";

struct App {
    address: String,
    engine: Engine,
    _dir: tempfile::TempDir,
    demo_state: String,
}

async fn spawn(public_url: Option<&str>) -> App {
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let store =
        provisio_store_sqlite::open(StoreOptions::new(format!("sqlite://{}", dir.path().join("p.db").display())))
            .await
            .unwrap();
    let settings = Settings {
        poll_interval: Duration::from_millis(50),
        retry_base: Duration::from_millis(20),
        retry_cap: Duration::from_millis(100),
        usage_interval: None,
        ..Settings::default()
    };
    let engine = Engine::new(store, provisio_providers::registry(), Vault::new(&[7; 32]), settings);
    engine.access().check_secrets_key().await.unwrap();
    let demo_state = dir.path().join("demo.sqlite").display().to_string();
    engine.catalog().seed_demo(&demo_state).await.unwrap();
    for (username, scope) in [("ann", "admin"), ("rob", "read")] {
        let body = json!({"username": username, "scope": scope, "password": "long-enough-pass-1"});
        engine.access().create_staff_user("test", &body).await.unwrap();
    }
    let worker = engine.clone();
    tokio::spawn(async move { worker.worker().run(std::future::pending()).await });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let console = provisio_console::ConsoleOptions { public_url: public_url.map(str::to_owned) };
    let pages = provisio_console::router(engine.clone(), console);
    let options = provisio_http::RouterOptions { public_url: public_url.map(str::to_owned), pages: Some(pages) };
    let router = provisio_http::router_with(engine.clone(), options);
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    App { address, engine, _dir: dir, demo_state }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in; answers the cookie header value to send back.
async fn sign_in(app: &App, username: &str) -> String {
    let response = browser()
        .post(format!("{}/login", app.address))
        .form(&[("username", username), ("password", "long-enough-pass-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(app: &App, cookie: &str, path: &str) -> (StatusCode, String) {
    let response = browser().get(format!("{}{path}", app.address)).header(COOKIE, cookie).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Waits (at most 20 s) until a service reaches `status`.
async fn wait_for_status(app: &App, service: i64, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.engine.queries().service_detail(service).await.unwrap().service.status != status {
        assert!(Instant::now() < deadline, "service {service} never became {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new session of `client`, through its hand-off link: the cookie to send back.
async fn client_cookie(app: &App, client: i64) -> String {
    let code = app.engine.access().open_client_session("test", client, &json!({})).await.unwrap().handoff_code;
    let response = browser().get(format!("{}/client/handoff?code={code}", app.address)).send().await.unwrap();
    response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned()
}

fn csrf_in(html: &str) -> String {
    let at = html.find(r#"name="_csrf" value=""#).expect("a form with a CSRF token") + r#"name="_csrf" value=""#.len();
    html[at..at + 64].to_owned()
}

async fn post(app: &App, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser().post(format!("{}{path}", app.address)).header(COOKIE, cookie).form(form).send().await.unwrap()
}

fn configuration_form<'a>(csrf: &'a str, name: &'a str, state: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("_csrf", csrf),
        ("provider", "shared-hosting/demo"),
        ("/name", name),
        ("/values/state_path", state),
        ("/values/server", "eu9"),
        ("/values/api_key", SECRET),
        ("/attributes", r#"{"location": "eu"}"#),
    ]
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_a_new_session_each_time() {
    let app = spawn(None).await;
    // No session: every staff page sends you to sign in.
    let response = browser().get(format!("{}/configurations", app.address)).send().await.unwrap();
    assert_eq!((response.status(), response.headers()[LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/login"));
    let response = browser()
        .post(format!("{}/login", app.address))
        .form(&[("username", "ann"), ("password", "long-enough-pass-1")])
        .send()
        .await
        .unwrap();
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    // Fixation: a token planted before sign-in is not what sign-in answers,
    // and is worth nothing.
    let planted = "provisio_staff=pst_planted0000000000000000000000000000000000000000000000000000000000";
    let response = browser()
        .post(format!("{}/login", app.address))
        .header(COOKIE, planted)
        .form(&[("username", "ann"), ("password", "long-enough-pass-1")])
        .send()
        .await
        .unwrap();
    let fresh = response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_ne!(fresh, planted);
    assert_ne!(fresh, set.split(';').next().unwrap());
    assert_eq!(page(&app, planted, "/").await.0, StatusCode::SEE_OTHER);
    assert_eq!(page(&app, &fresh, "/").await.0, StatusCode::OK);
    // A wrong password shows the form again with the engine's one answer.
    let response = browser()
        .post(format!("{}/login", app.address))
        .form(&[("username", "ann"), ("password", "wrong-wrong-wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.text().await.unwrap().contains("wrong username or password"));
}

#[tokio::test]
async fn behind_https_the_cookie_is_secure() {
    let app = spawn(Some("https://console.example")).await;
    let response = browser()
        .post(format!("{}/login", app.address))
        .form(&[("username", "ann"), ("password", "long-enough-pass-1")])
        .send()
        .await
        .unwrap();
    let set = response.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("__Host-provisio_staff=") && set.contains("; Secure"), "{set}");
}

#[tokio::test]
async fn a_form_without_its_token_or_from_another_site_changes_nothing() {
    let app = spawn(None).await;
    let cookie = sign_in(&app, "ann").await;
    let (_, html) = page(&app, &cookie, "/configurations/new?provider=shared-hosting/demo").await;
    let csrf = csrf_in(&html);
    let before = app.engine.queries().configurations(None).await.unwrap().len();
    let state = app.demo_state.clone();
    // No token, a wrong one, another session's, and the right one from another site.
    let other = sign_in(&app, "ann").await;
    let (_, other_html) = page(&app, &other, "/").await;
    let other_csrf = csrf_in(&other_html);
    for token in ["", "0000", other_csrf.as_str()] {
        let response = post(&app, &cookie, "/configurations", &configuration_form(token, "eu-9", &state)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "token {token:?}");
    }
    let response = browser()
        .post(format!("{}/configurations", app.address))
        .header(COOKIE, &cookie)
        .header("origin", "http://evil.example")
        .form(&configuration_form(&csrf, "eu-9", &state))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.engine.queries().configurations(None).await.unwrap().len(), before);
    // Sign-out needs the token too, then ends the session everywhere.
    assert_eq!(post(&app, &cookie, "/logout", &[("_csrf", "nope")]).await.status(), StatusCode::FORBIDDEN);
    let response = post(&app, &cookie, "/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(page(&app, &cookie, "/").await.0, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_configuration_added_through_the_generated_form_keeps_its_secret_out_of_every_page() {
    let app = spawn(None).await;
    let cookie = sign_in(&app, "ann").await;
    let (status, html) = page(&app, &cookie, "/configurations/new?provider=shared-hosting/demo").await;
    assert_eq!(status, StatusCode::OK);
    for field in [r#"name="/values/api_key""#, r#"type="password""#, r#"name="/values/latency_ms""#] {
        assert!(html.contains(field), "{field}");
    }
    let csrf = csrf_in(&html);
    // A bad number is named beside its field, and the typed secret is not echoed.
    let mut bad = configuration_form(&csrf, "eu-9", &app.demo_state);
    bad.push(("/values/latency_ms", "soon"));
    let response = post(&app, &cookie, "/configurations", &bad).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    assert!(html.contains("latency ms must be a whole number") && !html.contains(SECRET), "{html}");
    // The engine's own field errors land on the form too (a taken name).
    let taken = configuration_form(&csrf, "demo-hosting-eu", &app.demo_state);
    let response = post(&app, &cookie, "/configurations", &taken).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    assert!(html.contains("name is taken") && !html.contains(SECRET), "{html}");
    let response = post(&app, &cookie, "/configurations", &configuration_form(&csrf, "eu-9", &app.demo_state)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    let (_, html) = page(&app, &cookie, &location).await;
    assert!(html.contains(r#"<span class="secret-state">set</span>"#), "{html}");
    let stored = app.engine.queries().configurations(None).await.unwrap();
    let record = stored.iter().find(|r| r.configuration.name == "eu-9").unwrap();
    assert_eq!(record.configuration.attributes, json!({"location": "eu"}));
    assert_eq!(record.secrets_set, ["/api_key"]);
    // Saving again with the secret left empty keeps it; the test runs.
    let csrf = csrf_in(&html);
    let form =
        [("_csrf", csrf.as_str()), ("provider", "shared-hosting/demo"), ("/name", "eu-9b"), ("/max_services", "50")];
    assert_eq!(post(&app, &cookie, &location, &form).await.status(), StatusCode::SEE_OTHER);
    let record = app.engine.queries().configuration_record(record.configuration.id).await.unwrap();
    assert_eq!((record.configuration.name.as_str(), record.configuration.max_services), ("eu-9b", Some(50)));
    assert_eq!(record.secrets_set, ["/api_key"]);
    let response = post(&app, &cookie, &format!("{location}/test"), &[("_csrf", &csrf)]).await;
    assert!(response.text().await.unwrap().contains("Connected."));
    // No page shows the secret.
    for path in ["/", "/configurations", location.as_str(), "/services"] {
        let (_, html) = page(&app, &cookie, path).await;
        assert!(!html.contains(SECRET), "{path}");
    }
}

#[tokio::test]
async fn read_staff_see_but_cannot_change_configurations() {
    let app = spawn(None).await;
    let cookie = sign_in(&app, "rob").await;
    let (status, html) = page(&app, &cookie, "/configurations").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("Add a configuration"));
    assert_eq!(page(&app, &cookie, "/configurations/new").await.0, StatusCode::FORBIDDEN);
    let (_, html) = page(&app, &cookie, "/").await;
    let csrf = csrf_in(&html);
    let form = configuration_form(&csrf, "eu-9", &app.demo_state);
    assert_eq!(post(&app, &cookie, "/configurations", &form).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_client_sees_only_its_own_services_and_opens_the_panel_login() {
    let app = spawn(None).await;
    let mut services = Vec::new();
    for (client, domain) in [("alpha", "alpha.example.net"), ("beta", "beta.example.net")] {
        let event = json!({
            "id": format!("ev-{client}"), "type": "order.paid",
            "service": {"external_id": format!("c-{client}"), "product": "demo-hosting",
                        "client": {"external_id": client, "name": client, "email": format!("{client}@example.com")},
                        "fields": {"domain": domain, "username": client}},
            "data": {}
        });
        services.push(app.engine.ingest().event(&event).await.unwrap().service_id);
    }
    for id in &services {
        wait_for_status(&app, *id, "active").await;
    }
    let alpha = app.engine.queries().service_detail(services[0]).await.unwrap().service.client_id;
    let opened = app.engine.access().open_client_session("test", alpha, &json!({})).await.unwrap();
    let response =
        browser().get(format!("{}/client/handoff?code={}", app.address, opened.handoff_code)).send().await.unwrap();
    assert_eq!(response.headers()[LOCATION], "/client");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let (status, html) = page(&app, &cookie, "/client").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("alpha") && !html.contains("beta.example.net"), "{html}");
    let (status, html) = page(&app, &cookie, &format!("/client/services/{}", services[0])).await;
    assert_eq!(status, StatusCode::OK);
    let login = format!("/client/v1/services/{}/login", services[0]);
    assert!(html.contains(&login), "{html}");
    // The button's link goes to the panel's one-time login URL.
    let response = browser().get(format!("{}{login}", app.address)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    // Another client's service is not found, by URL too; staff pages are not theirs.
    assert_eq!(page(&app, &cookie, &format!("/client/services/{}", services[1])).await.0, StatusCode::NOT_FOUND);
    assert_eq!(page(&app, &cookie, "/").await.0, StatusCode::SEE_OTHER);
    // No client session: no client area.
    assert_eq!(page(&app, "", "/client").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admins_manage_staff_users_and_tokens_and_secrets_are_shown_once() {
    let app = spawn(None).await;
    let cookie = sign_in(&app, "ann").await;
    let (status, html) = page(&app, &cookie, "/access").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_in(&html);
    let response =
        post(&app, &cookie, "/access/users", &[("_csrf", &csrf), ("username", "cy"), ("scope", "operate")]).await;
    let html = response.text().await.unwrap();
    let generated =
        html.split("shown this once: ").nth(1).expect("a generated password").split('<').next().unwrap().to_owned();
    assert_eq!(generated.len(), 20, "{html}");
    let (_, again) = page(&app, &cookie, "/access").await;
    assert!(!again.contains(&generated), "shown once only");
    let response =
        post(&app, &cookie, "/access/tokens", &[("_csrf", &csrf), ("name", "billing"), ("scope", "operate")]).await;
    let html = response.text().await.unwrap();
    let secret = html.split("shown this once: ").nth(1).expect("a token secret").split('<').next().unwrap().to_owned();
    let api = reqwest::Client::new().get(format!("{}/api/v1/services", app.address));
    assert_eq!(api.try_clone().unwrap().bearer_auth(&secret).send().await.unwrap().status(), StatusCode::OK);
    let tokens = app.engine.queries().tokens(10, None).await.unwrap();
    let billing = tokens.iter().find(|t| t.name == "billing").unwrap().id;
    let response = post(&app, &cookie, &format!("/access/tokens/{billing}/revoke"), &[("_csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(api.bearer_auth(&secret).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // A bad name is refused by field and changes nothing.
    let response =
        post(&app, &cookie, "/access/tokens", &[("_csrf", &csrf), ("name", "no spaces!"), ("scope", "read")]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("name "));
    // Switching cy off; read staff cannot reach the page at all.
    let cy = app.engine.queries().staff_users().await.unwrap().into_iter().find(|u| u.username == "cy").unwrap();
    let response =
        post(&app, &cookie, &format!("/access/users/{}", cy.id), &[("_csrf", &csrf), ("disabled", "true")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(app.engine.queries().staff_users().await.unwrap().iter().any(|u| u.username == "cy" && u.disabled));
    let reader = sign_in(&app, "rob").await;
    assert_eq!(page(&app, &reader, "/access").await.0, StatusCode::FORBIDDEN);
    let (_, html) = page(&app, &reader, "/").await;
    let form = [("_csrf", csrf_in(&html)), ("name", "sneaky".into()), ("scope", "admin".into())];
    let response = browser()
        .post(format!("{}/access/tokens", app.address))
        .header(COOKIE, &reader)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn reports_download_as_csv_and_the_audit_log_is_paged() {
    let app = spawn(None).await;
    let cookie = sign_in(&app, "rob").await;
    let (status, html) = page(&app, &cookie, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"role="img""#) || html.contains("Nothing to show yet."), "charts or their empty state");
    let response = browser()
        .get(format!("{}/reports/capacity.csv?days=7", app.address))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let csv = response.text().await.unwrap();
    assert!(csv.starts_with("configuration,") && csv.contains("demo-hosting-eu"), "{csv}");
    assert_eq!(page(&app, &cookie, "/reports/nonsense").await.0, StatusCode::NOT_FOUND);
    assert_eq!(page(&app, &cookie, "/reports/jobs?days=-5").await.0, StatusCode::OK);
    let (status, html) = page(&app, &cookie, "/audit").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("staff_user.create") && html.contains("user:rob"), "{html}");
}

#[tokio::test]
async fn a_client_changes_its_password_only_with_its_own_form() {
    let app = spawn(None).await;
    let event = json!({
        "id": "ev-pw", "type": "order.paid",
        "service": {"external_id": "c-pw", "product": "demo-hosting",
                    "client": {"external_id": "pw", "name": "pw", "email": "pw@example.com"},
                    "fields": {"domain": "pw.example.net", "username": "pwuser"}},
        "data": {}
    });
    let service = app.engine.ingest().event(&event).await.unwrap().service_id;
    wait_for_status(&app, service, "active").await;
    let client = app.engine.queries().service_detail(service).await.unwrap().service.client_id;
    let cookie = client_cookie(&app, client).await;
    let (_, html) = page(&app, &cookie, &format!("/client/services/{service}")).await;
    let csrf = csrf_in(&html);
    // Usage, live, as bars against limits.
    assert_eq!(
        page(&app, &cookie, &format!("/client/services/{service}/usage")).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let usage_path = format!("/client/services/{service}/usage");
    assert_eq!(post(&app, &cookie, &usage_path, &[("_csrf", "forged")]).await.status(), StatusCode::FORBIDDEN);
    let response = post(&app, &cookie, &usage_path, &[("_csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let usage = response.text().await.unwrap();
    assert!(usage.contains("disk mb") && (usage.contains("<meter") || usage.contains("no limit")), "{usage}");
    let path = format!("/client/services/{service}/password");
    assert_eq!(post(&app, &cookie, &path, &[("password", "")]).await.status(), StatusCode::FORBIDDEN);
    // Another session of the same client has its own token.
    let other = client_cookie(&app, client).await;
    assert_eq!(post(&app, &other, &path, &[("_csrf", &csrf)]).await.status(), StatusCode::FORBIDDEN);
    let response = post(&app, &cookie, &path, &[("_csrf", &csrf), ("password", "")]).await;
    let html = response.text().await.unwrap();
    assert!(html.contains("The password was changed.") && html.contains("shown this once"), "{html}");
    // A chosen password is never shown back.
    let response = post(&app, &cookie, &path, &[("_csrf", &csrf), ("password", "Chosen-Passw0rd-xyz")]).await;
    let html = response.text().await.unwrap();
    assert!(html.contains("The password was changed.") && !html.contains("Chosen-Passw0rd-xyz"), "{html}");
}

#[tokio::test]
async fn a_huge_form_is_refused_before_it_is_read() {
    let app = spawn(None).await;
    let cookie = sign_in(&app, "ann").await;
    let big = format!("_csrf=x&/name={}", "a".repeat(2 * 1024 * 1024));
    let response = browser()
        .post(format!("{}/configurations", app.address))
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_workbench_runs_anything_on_given_values_but_only_reads_on_a_stored_configuration() {
    let app = spawn(None).await;
    let cookie = sign_in(&app, "ann").await;
    let (status, html) = page(&app, &cookie, "/workbench?provider=shared-hosting/demo").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_in(&html);
    let values = json!({"state_path": app.demo_state, "server": "bench1", "api_key": SECRET}).to_string();
    let params = json!({"username": "benchy", "domain": "benchy.example.net", "package_name": "basic", "email": "b@example.com"})
        .to_string();
    let form = [
        ("_csrf", csrf.as_str()),
        ("provider", "shared-hosting/demo"),
        ("configuration", ""),
        ("values", values.as_str()),
        ("function", "create"),
        ("params", params.as_str()),
    ];
    let response = post(&app, &cookie, "/workbench", &form).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("&quot;status&quot;: &quot;ok&quot;") && html.contains("HTTP log (redacted)"), "{html}");
    // The answer's fields are carried into the next call's params; the secret typed in is not shown again.
    assert!(html.contains("server_hostname"), "{html}");
    assert!(!html.contains(SECRET), "{html}");
    // A stored configuration: a read runs, a change is refused and nothing is called.
    let stored = app.engine.queries().configurations(None).await.unwrap();
    let eu = stored.iter().find(|c| c.configuration.name == "demo-hosting-eu").unwrap().configuration.id.to_string();
    let mut refused = form;
    refused[2] = ("configuration", eu.as_str());
    let response = post(&app, &cookie, "/workbench", &refused).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("runs only reads"));
    let mut read = refused;
    read[4] = ("function", "get_info");
    let response = post(&app, &cookie, "/workbench", &read).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Bad JSON is named; non-admins cannot reach it; it is audited without values.
    let mut bad = form;
    bad[5] = ("params", "{nope");
    let response = post(&app, &cookie, "/workbench", &bad).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("/params is not valid JSON"));
    let reader = sign_in(&app, "rob").await;
    assert_eq!(page(&app, &reader, "/workbench").await.0, StatusCode::FORBIDDEN);
    let audit = app.engine.queries().audit(50, None).await.unwrap();
    let calls: Vec<_> = audit.iter().filter(|e| e.action == "workbench.call").collect();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|e| !e.details.to_string().contains(SECRET)));
}

#[tokio::test]
async fn a_job_page_shows_each_attempt_with_its_redacted_log() {
    let app = spawn(None).await;
    let event = json!({
        "id": "ev-job", "type": "order.paid",
        "service": {"external_id": "c-job", "product": "demo-hosting",
                    "client": {"external_id": "jb", "name": "jb", "email": "jb@example.com"},
                    "fields": {"domain": "jb.example.net", "username": "jbuser"}},
        "data": {}
    });
    let accepted = app.engine.ingest().event(&event).await.unwrap();
    let job = accepted.jobs[0].id;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.engine.queries().job(job).await.unwrap().0.state != "succeeded" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cookie = sign_in(&app, "rob").await;
    let (status, html) = page(&app, &cookie, &format!("/jobs/{job}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Attempt 1: create") && html.contains("HTTP log (redacted)"), "{html}");
    assert_eq!(page(&app, &cookie, "/jobs/999999").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_add_webhook_subscribers_whose_secret_is_shown_once() {
    let app = spawn(None).await;
    let cookie = sign_in(&app, "ann").await;
    let (status, html) = page(&app, &cookie, "/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_in(&html);
    let form = |url: &'static str, private: bool| {
        let mut form = vec![
            ("_csrf", csrf.clone()),
            ("name", "billing".to_owned()),
            ("url", url.to_owned()),
            ("event_types", "service.activated".to_owned()),
            ("event_types", "job.failed".to_owned()),
        ];
        if private {
            form.push(("allow_private", "true".to_owned()));
        }
        form
    };
    let send = |form: Vec<(&'static str, String)>| {
        browser().post(format!("{}/webhooks", app.address)).header(COOKIE, &cookie).form(&form).send()
    };
    // A URL that is not http(s) is refused by field (a private address is refused when sending).
    let refused = send(form("ftp://billing.example/hook", false)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("url "));
    let made = send(form("http://127.0.0.1:9/hook", true)).await.unwrap();
    let html = made.text().await.unwrap();
    let secret = html.split("shown this once: ").nth(1).expect("a secret").split('<').next().unwrap().to_owned();
    assert!(secret.len() >= 16);
    let (_, listing) = page(&app, &cookie, "/webhooks").await;
    assert!(listing.contains("billing") && !listing.contains(&secret));
    let id = app.engine.queries().webhooks().await.unwrap()[0].id;
    let response = post(&app, &cookie, &format!("/webhooks/{id}"), &[("_csrf", &csrf), ("enabled", "false")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!app.engine.queries().webhook(id).await.unwrap().enabled);
    assert_eq!(page(&app, &cookie, &format!("/webhooks/{id}")).await.0, StatusCode::OK);
    let reader = sign_in(&app, "rob").await;
    assert_eq!(page(&app, &reader, "/webhooks").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_client_whose_setup_failed_reads_why_in_words_meant_for_it() {
    let app = spawn(None).await;
    // A server that fails every call, and a product always set up on it.
    let catalog = app.engine.catalog();
    let flaky = json!({"name": "flaky", "provider": "shared-hosting/demo",
                       "values": {"state_path": app.demo_state, "server": "flaky1", "transient_rate": 1.0}});
    let flaky = catalog.create_configuration("test", &flaky).await.unwrap().configuration.id;
    let product = json!({"slug": "flaky-hosting", "name": "Flaky", "blueprint": "shared-hosting",
                         "deployment": {"type": "static", "configuration_id": flaky},
                         "provision_fields": {"package_name": "basic"}});
    catalog.create_product("test", &product).await.unwrap();
    let event = json!({
        "id": "ev-bad", "type": "order.paid",
        "service": {"external_id": "c-bad", "product": "flaky-hosting",
                    "client": {"external_id": "bad", "name": "bad", "email": "bad@example.com"},
                    "fields": {"domain": "bad.example.net", "username": "baduser"}},
        "data": {}
    });
    let service = app.engine.ingest().event(&event).await.unwrap().service_id;
    wait_for_status(&app, service, "failed").await;
    let client = app.engine.queries().service_detail(service).await.unwrap().service.client_id;
    let cookie = client_cookie(&app, client).await;
    let (status, html) = page(&app, &cookie, &format!("/client/services/{service}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Setting this service up did not work:"), "{html}");
    assert!(!html.contains("debug") && !html.contains("http_log"), "{html}");
}

#[tokio::test]
async fn the_events_page_lists_every_services_events_newest_first_without_payloads() {
    let app = spawn(None).await;
    for n in 0..3 {
        let event = json!({
            "id": format!("ev-list-{n}"), "type": "order.paid",
            "service": {"external_id": format!("c-list-{n}"), "product": "demo-dns",
                        "client": {"external_id": "lister", "name": "l", "email": "l@example.com"},
                        "fields": {"zone": format!("list{n}.example.com")}},
            "data": {"note": "payload-marker-should-not-show"}
        });
        app.engine.ingest().event(&event).await.unwrap();
    }
    let cookie = sign_in(&app, "rob").await;
    let (status, html) = page(&app, &cookie, "/events").await;
    assert_eq!(status, StatusCode::OK);
    let (first, last) = (html.find("ev-list-2").unwrap(), html.find("ev-list-0").unwrap());
    assert!(first < last, "newest first");
    assert!(!html.contains("payload-marker-should-not-show"));
    assert_eq!(page(&app, &cookie, "/events?before=nonsense").await.0, StatusCode::OK);
    let (status, html) = page(&app, &cookie, "/reports/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Jobs per day"));
}
