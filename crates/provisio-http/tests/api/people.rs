//! Clients and billing systems: single sign-on through the client API, the
//! client area's hand-off, passwords and credentials, signed events and
//! Stripe webhooks.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::Query;
use axum::http::StatusCode as AxumStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// The demo panel's login page, on loopback: what the simulated panel does
/// with a login link (works once, within its life).
async fn demo_panel(state_path: String) -> String {
    let page = move |Query(query): Query<HashMap<String, String>>| {
        let state_path = state_path.clone();
        async move {
            let (server, session) =
                (query.get("server").cloned().unwrap_or_default(), query.get("session").cloned().unwrap_or_default());
            match provisio_demo::redeem_login(&state_path, &server, &session).await.unwrap() {
                Ok(username) => (AxumStatus::OK, format!("logged in as {username}")),
                Err(provisio_demo::LoginRefused::Expired) => (AxumStatus::FORBIDDEN, "expired".to_owned()),
                Err(provisio_demo::LoginRefused::Unknown) => (AxumStatus::FORBIDDEN, "unknown or used".to_owned()),
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/login/", listener.local_addr().unwrap());
    let router = axum::Router::new().route("/login/", axum::routing::get(page));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

#[tokio::test]
async fn single_sign_on_opens_the_panel_once_and_never_while_suspended() {
    let app = spawn_app().await;
    let panel = demo_panel(app.demo_state.clone()).await;
    app.tune("demo-hosting-eu", json!({"panel_url": panel})).await;
    let (service, client) = app.hosting_for("ann", 1).await;
    let (_, other_client) = app.hosting_for("bob", 2).await;
    let session = app.session(client).await;
    let token = session["token"].as_str().unwrap();
    let login = format!("/client/v1/services/{service}/login");

    // 302 to a link the panel accepts once.
    let response = no_redirects().get(format!("{}{login}", app.address)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let link = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(link.starts_with(&panel), "{link}");
    let first = reqwest::get(&link).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.text().await.unwrap(), "logged in as user1");
    let again = reqwest::get(&link).await.unwrap();
    assert_eq!(again.status(), StatusCode::FORBIDDEN, "a link works once");

    // A link past its life is refused.
    app.tune("demo-hosting-eu", json!({"login_ttl_secs": 1})).await;
    let response = no_redirects().get(format!("{}{login}", app.address)).bearer_auth(token).send().await.unwrap();
    let link = response.headers()["location"].to_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let late = reqwest::get(&link).await.unwrap();
    assert_eq!((late.status(), late.text().await.unwrap().as_str()), (StatusCode::FORBIDDEN, "expired"));

    // Another client's session is told the service does not exist.
    let other = app.session(other_client).await;
    let (status, _) = app.call(Method::GET, &login, other["token"].as_str(), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Suspended: refused, saying why, and nothing reaches the panel.
    app.event(later("evt-overdue", "contract.overdue", service, json!({}))).await;
    assert_eq!(app.settled(service).await["service"]["status"], "suspended");
    let (status, problem) = app.call(Method::GET, &login, Some(token), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("suspended"), "{problem}");
    // The client's view says so before they try.
    let (_, view) = app.call(Method::GET, &format!("/client/v1/services/{service}"), Some(token), None).await;
    let login_function = view["functions"].as_array().unwrap().iter().find(|f| f["name"] == "get_login_url").unwrap();
    assert_eq!(login_function["available"], false, "{view:#}");
}

#[tokio::test]
async fn a_hand_off_link_opens_the_client_area_once() {
    let app = spawn_app().await;
    let (service, client) = app.hosting_for("ann", 1).await;
    app.hosting_for("bob", 2).await;
    let session = app.session(client).await;
    let handoff = session["handoff_url"].as_str().unwrap();
    let url = if handoff.starts_with('/') { format!("{}{handoff}", app.address) } else { handoff.to_owned() };

    let response = no_redirects().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/client"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    // The cookie reads the client's own services, and only theirs.
    let mine: Value = no_redirects()
        .get(format!("{}/client/v1/services", app.address))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = mine.as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [service]);
    // Never a secret or a staff field in a client's view.
    let text = mine.to_string();
    for leak in ["owner_mark", "configuration_id", "last_error", "debug", "[REDACTED]"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    // The cookie changes nothing: an unsafe method needs the bearer token.
    let status = no_redirects()
        .post(format!("{}/client/v1/services/{service}/password", app.address))
        .header("cookie", &pair)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Used once: refused after.
    let again = no_redirects().get(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    // Ending the client's sessions ends the browser's too (within a second).
    let (status, _) = app.request(Method::DELETE, &format!("/api/v1/clients/{client}/sessions"), None).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let status = no_redirects()
        .get(format!("{}/client/v1/services", app.address))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_change_is_never_echoed_and_a_client_cannot_re_aim_a_function() {
    let app = spawn_app().await;
    let (service, client) = app.hosting_for("ann", 1).await;
    app.hosting_for("bob", 2).await;
    let token = app.session(client).await["token"].as_str().unwrap().to_owned();
    let path = format!("/client/v1/services/{service}/password");

    let chosen = "Chosen-Passw0rd-9431";
    let (status, answer) = app.call(Method::POST, &path, Some(&token), Some(json!({"password": chosen}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"]["status"], "ok", "{answer}");
    assert!(answer.get("generated_password").is_none());
    let (status, generated) = app.call(Method::POST, &path, Some(&token), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{generated}");
    let password = generated["generated_password"].as_str().unwrap();
    assert!(provisio_sdk::formats::is_password(password), "{password}");
    // Neither password is kept anywhere staff can read.
    let stored = [app.get("/api/v1/audit").await, app.service(service).await, app.get("/api/v1/jobs?limit=1000").await];
    for text in stored.iter().map(Value::to_string) {
        assert!(!text.contains(chosen) && !text.contains(password), "{text}");
    }
    // What names the service is not the client's to change.
    let (status, problem) = app
        .call(
            Method::POST,
            &format!("/client/v1/services/{service}/actions/get_login_url"),
            Some(&token),
            Some(json!({"username": "user2"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "/username");
    // Staff-only functions are not the client's either.
    let (status, _) = app
        .call(Method::POST, &format!("/client/v1/services/{service}/actions/terminate"), Some(&token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(app.service(service).await["service"]["status"], "active");
}

#[tokio::test]
async fn credentials_answered_at_setup_are_revealed_to_their_client_and_audited() {
    let app = spawn_app().await;
    let accepted = app.event(order_for("ann", "evt-db", "c-db", "demo-database", fields_for("demo-database", 1))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    let detail = app.settled(service).await;
    assert_eq!(detail["service"]["status"], "active", "{detail:#}");
    let client = detail["service"]["client_id"].as_i64().unwrap();
    let (_, bob) = app.hosting_for("bob", 2).await;
    let token = app.session(client).await["token"].as_str().unwrap().to_owned();
    let path = format!("/client/v1/services/{service}/credentials");

    let (status, revealed) = app.call(Method::POST, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{revealed}");
    let credentials = revealed["credentials"].as_object().unwrap();
    assert!(!credentials.is_empty(), "the demo database answers a generated password: {revealed}");
    let secret = credentials.values().next().unwrap().as_str().unwrap().to_owned();
    // Not in the client's or staff's views of the service.
    let (_, view) = app.call(Method::GET, &format!("/client/v1/services/{service}"), Some(&token), None).await;
    assert!(!view.to_string().contains(&secret));
    assert!(!app.service(service).await.to_string().contains(&secret));
    // Another client: not found. Staff who may only read: forbidden.
    let bob_token = app.session(bob).await["token"].as_str().unwrap().to_owned();
    assert_eq!(app.call(Method::POST, &path, Some(&bob_token), None).await.0, StatusCode::NOT_FOUND);
    let reader = app.token("reader", "read").await;
    let staff_path = format!("/api/v1/services/{service}/credentials");
    assert_eq!(app.call(Method::POST, &staff_path, Some(&reader), None).await.0, StatusCode::FORBIDDEN);
    // Each reveal is audited by who, with field names, never values.
    let audit = app.get("/api/v1/audit").await;
    let reveals: Vec<&Value> =
        audit.as_array().unwrap().iter().filter(|e| e["action"] == "service.credentials_reveal").collect();
    assert_eq!(reveals.len(), 1);
    assert!(reveals[0]["actor"].as_str().unwrap().starts_with(&format!("client:{client}/")));
    assert!(!audit.to_string().contains(&secret));
}

/// A Stripe event as Stripe sends it: the `invoice` fixture of Stripe's own
/// OpenAPI repository (see fixtures/stripe/SOURCE.md), made the first
/// invoice of a subscription in the current API shape.
fn stripe_invoice_paid(event_id: &str) -> Value {
    let mut invoice: Value = serde_json::from_str(include_str!("fixtures/stripe/invoice.json")).unwrap();
    invoice["billing_reason"] = json!("subscription_create");
    invoice["status"] = json!("paid");
    invoice["customer_email"] = json!("ann@example.com");
    invoice["customer_name"] = json!("Ann Lee");
    invoice["parent"] = json!({"type": "subscription_details", "quote_details": null, "subscription_details": {
        "metadata": {"provisio_domain": "shop.example.net", "provisio_username": "shopuser"},
        "subscription": "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"}});
    invoice["lines"]["data"][0]["pricing"] = json!({"type": "price_details", "unit_amount_decimal": "1000",
        "price_details": {"price": "price_1PgafmB7WZ01zgkW6dKueIc5", "product": "prod_QXgOJ0ki9Uwn1e"}});
    json!({"id": event_id, "object": "event", "api_version": "2026-07-29.dahlia", "created": unix_now(),
           "data": {"object": invoice}, "livemode": false, "pending_webhooks": 1,
           "request": {"id": null, "idempotency_key": null}, "type": "invoice.paid"})
}

async fn count(app: &TestApp, path: &str) -> usize {
    app.get(path).await.as_array().unwrap().len()
}

#[tokio::test]
async fn a_stripe_invoice_paid_activates_a_service_and_bad_signatures_change_nothing() {
    let app = spawn_app().await;
    let secret = "whsec_test_5f1c0aa3e9d84b7c";
    let (status, source) = app
        .post(
            "/api/v1/sources",
            json!({"name": "stripe-live", "kind": "stripe", "secret": secret,
            "mapping": {"prices": {"price_1PgafmB7WZ01zgkW6dKueIc5": "demo-hosting"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    assert!(source.get("secret").is_none() && !source.to_string().contains(secret), "a given secret is never answered");
    let url = format!("{}/api/v1/sources/stripe-live/stripe", app.address);
    let send = |body: Vec<u8>, header: String| {
        let url = url.clone();
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json; charset=utf-8")
                .header("Stripe-Signature", header)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let body = serde_json::to_vec_pretty(&stripe_invoice_paid("evt_1QwErTy")).unwrap();

    // Refused, changing nothing: a wrong secret, a stale time, a body not signed.
    let now = unix_now();
    let before = (count(&app, "/api/v1/services").await, count(&app, "/api/v1/jobs").await);
    for (label, header) in [
        ("wrong secret", signature("whsec_someone_else", now, &body)),
        ("stale", signature(secret, now - 301, &body)),
        ("other body", signature(secret, now, b"{}")),
        ("no v1", format!("t={now}")),
    ] {
        let (status, problem) = send(body.clone(), header).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {problem}");
    }
    assert_eq!((count(&app, "/api/v1/services").await, count(&app, "/api/v1/jobs").await), before);

    // Signed the documented way: accepted, and the service becomes active.
    // While a secret is rolled, Stripe signs with both: any v1 may match.
    let header = format!("{},v1={}", signature(secret, now, &body), "ab".repeat(32));
    let (status, accepted) = send(body.clone(), header.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    let detail = app.settled(service).await;
    assert_eq!(detail["service"]["status"], "active", "{detail:#}");
    assert_eq!(detail["service"]["external_id"], "stripe:sub_1Pgc6rB7WZ01zgkWNy0Cn5nw");
    assert_eq!(detail["service"]["identifier"], "shopuser");
    assert_eq!(detail["client"]["external_id"], "stripe:cus_QXg1o8vcGmoR32");

    // The same request again is a replay: refused.
    let jobs = count(&app, "/api/v1/jobs").await;
    let (status, problem) = send(body.clone(), header).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    // Stripe's own retry signs anew: taken as the duplicate it is, no new job.
    let (status, again) = send(body.clone(), signature(secret, now + 1, &body)).await;
    assert_eq!((status, again["duplicate"].clone()), (StatusCode::ACCEPTED, json!(true)), "{again}");
    assert_eq!(count(&app, "/api/v1/jobs").await, jobs);

    // An event type nobody maps is acknowledged and ignored.
    let other =
        serde_json::to_vec(&json!({"id": "evt_2", "type": "charge.refunded", "data": {"object": {"id": "ch_1"}}}))
            .unwrap();
    let (status, ignored) = send(other.clone(), signature(secret, unix_now(), &other)).await;
    assert_eq!((status, ignored["ignored"].clone()), (StatusCode::OK, json!(true)), "{ignored}");
    // A cancelled subscription ends the service.
    let deleted = serde_json::to_vec(
        &json!({"id": "evt_3", "object": "event", "type": "customer.subscription.deleted", "created": unix_now(),
        "data": {"object": serde_json::from_str::<Value>(include_str!("fixtures/stripe/subscription.json")).unwrap()}}),
    )
    .unwrap();
    let (status, accepted) = send(deleted.clone(), signature(secret, unix_now(), &deleted)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(app.settled(service).await["service"]["status"], "terminated");
}

#[tokio::test]
async fn events_signed_by_a_source_need_no_token_and_are_taken_once() {
    let app = spawn_app().await;
    let (status, source) = app.post("/api/v1/sources", json!({"name": "whmcs", "kind": "provisio"})).await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let secret = source["secret"].as_str().unwrap().to_owned();
    assert!(!app.get("/api/v1/sources").await.to_string().contains(&secret), "shown once");
    // A Stripe mapping on a source of our own format is refused by name, at creation and later.
    let (status, problem) =
        app.post("/api/v1/sources", json!({"name": "other", "kind": "provisio", "mapping": {}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem.to_string().contains("/mapping"), "{problem}");
    let patch = format!("/api/v1/sources/{}", source["id"]);
    assert_eq!(app.request(Method::PATCH, &patch, Some(json!({"mapping": {}}))).await.0, StatusCode::CONFLICT);
    let body =
        serde_json::to_vec(&order("evt-signed-1", "c-signed", "demo-hosting", fields_for("demo-hosting", 1))).unwrap();
    let send = |source: &'static str, header: String| {
        let (url, body) = (format!("{}/api/v1/events", app.address), body.clone());
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("Provisio-Source", source)
                .header("Provisio-Signature", header)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let header = signature(&secret, unix_now(), &body);
    assert_eq!(send("nobody", header.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(send("whmcs", signature("not-the-secret-at-all", unix_now(), &body)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(count(&app, "/api/v1/services").await, 0);
    assert_eq!(send("whmcs", header.clone()).await, StatusCode::ACCEPTED);
    assert_eq!(send("whmcs", header).await, StatusCode::UNAUTHORIZED, "a replay");
    // Switched off: refused at once.
    let id = source["id"].as_i64().unwrap();
    let (status, _) =
        app.request(Method::PATCH, &format!("/api/v1/sources/{id}"), Some(json!({"enabled": false}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(send("whmcs", signature(&secret, unix_now(), &body)).await, StatusCode::UNAUTHORIZED);
    // The audit log names the source behind nothing it did not do, and staff behind the switch.
    let audit = app.get("/api/v1/audit").await;
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "source.update" && e["actor"] == "token:test"));
}

#[tokio::test]
async fn hostile_signatures_codes_cookies_and_floods_are_refused_cleanly() {
    let app = spawn_app().await;
    let (_, source) = app.post("/api/v1/sources", json!({"name": "whmcs", "kind": "provisio"})).await;
    let secret = source["secret"].as_str().unwrap().to_owned();
    let body = serde_json::to_vec(&order("evt-h", "c-h", "demo-hosting", fields_for("demo-hosting", 1))).unwrap();
    let good = signature(&secret, unix_now(), &body);
    let v1 = good.split_once(",v1=").unwrap().1.to_owned();
    for header in [
        "t=abc,v1=zz".to_owned(),
        format!("v1={v1}"),
        format!("t={},v1={v1}", i64::MIN),
        format!("t={},v1={v1}", i64::MAX),
        format!("t={},{}", unix_now(), "v1=00,".repeat(1000)),
        "=,=,,t=,v1=".to_owned(),
    ] {
        let status = reqwest::Client::new()
            .post(format!("{}/api/v1/events", app.address))
            .header("Provisio-Source", "whmcs")
            .header("Provisio-Signature", header.clone())
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:.80}");
    }
    // A signed body that is not JSON is refused by name, after the signature.
    let junk = b"not json".to_vec();
    let status = reqwest::Client::new()
        .post(format!("{}/api/v1/events", app.address))
        .header("Provisio-Source", "whmcs")
        .header("Provisio-Signature", signature(&secret, unix_now(), &junk))
        .body(junk)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for code in ["pch_".to_owned(), format!("pch_{}", "a".repeat(8000)), "' OR 1=1 --".to_owned()] {
        let status = no_redirects()
            .get(format!("{}/client/handoff", app.address))
            .query(&[("code", code)])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = no_redirects()
        .get(format!("{}/client/v1/services", app.address))
        .header("cookie", format!("provisio_client=pcs_{}", "f".repeat(4000)))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(count(&app, "/api/v1/services").await, 0);

    // A client flooding live reads gets 200 or 503 with Retry-After, within
    // the configuration's limits; staff are served meanwhile.
    let (service, client) = app.hosting_for("ann", 2).await;
    app.tune("demo-hosting-eu", json!({"latency_ms": 300})).await;
    let id = app
        .get("/api/v1/configurations")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "demo-hosting-eu")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, _) =
        app.request(Method::PATCH, &format!("/api/v1/configurations/{id}"), Some(json!({"max_concurrency": 1}))).await;
    assert_eq!(status, StatusCode::OK);
    let token = app.session(client).await["token"].as_str().unwrap().to_owned();
    let flood: Vec<_> = (0..40)
        .map(|_| {
            let request =
                no_redirects().get(format!("{}/client/v1/services/{service}/info", app.address)).bearer_auth(&token);
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let started = std::time::Instant::now();
    assert_eq!(app.request(Method::GET, "/api/v1/services", None).await.0, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2), "staff kept waiting during a client's flood");
    let (mut served, mut busy) = (0, 0);
    for answer in flood {
        let response = answer.await.unwrap();
        match response.status() {
            StatusCode::OK => served += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(served >= 1 && busy >= 1, "served {served}, busy {busy}");
}
