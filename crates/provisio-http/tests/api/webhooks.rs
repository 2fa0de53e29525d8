//! Billing systems out: webhook subscribers get signed deliveries of what
//! happens to services, retried while they are down, never in the way of
//! provisioning, and never sent to a private address unless allowed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// What a receiver got: headers and raw bodies.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on `listener` that records what it gets and answers 200.
fn receiver(listener: tokio::net::TcpListener) -> Received {
    let received: Received = Arc::default();
    let store = received.clone();
    let router = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push((headers, body.to_vec()));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    received
}

/// Checks `Provisio-Signature` of a body the way a subscriber would.
fn signed_by(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = headers["provisio-signature"].to_str().unwrap();
    let t: i64 = header.split(',').find_map(|p| p.strip_prefix("t=")).unwrap().parse().unwrap();
    (unix_now() - t).abs() <= 300 && signature(secret, t, body) == header
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_subscriber_gets_a_signed_service_activated_with_the_credentials_it_asked_for() {
    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let received = receiver(listener);
    let (status, made) = app
        .post(
            "/api/v1/webhooks",
            json!({"name": "billing", "url": url, "allow_private": true, "include_credentials": true,
            "event_types": ["service.activated", "job.failed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["secret"].as_str().unwrap().to_owned();
    // A subscriber that did not ask may not reach a loopback address.
    let (_, strict) =
        app.post("/api/v1/webhooks", json!({"name": "strict", "url": url, "event_types": ["service.activated"]})).await;

    let accepted = app.event(order_for("ann", "evt-db", "c-db", "demo-database", fields_for("demo-database", 1))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(service).await["service"]["status"], "active");
    wait_for("the delivery", || !received.lock().unwrap().is_empty()).await;
    let (headers, body) = received.lock().unwrap()[0].clone();
    assert!(signed_by(&secret, &headers, &body), "the signature holds");
    assert!(!signed_by("some-other-secret-value", &headers, &body));
    assert_eq!(headers["provisio-event"], "service.activated");
    let delivered: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(delivered["type"], "service.activated");
    assert_eq!(delivered["service"]["id"], service);
    assert_eq!(delivered["service"]["status"], "active");
    assert_eq!(delivered["id"], headers["provisio-delivery"].to_str().unwrap());
    let password = delivered["credentials"].as_object().unwrap().values().next().unwrap().as_str().unwrap().to_owned();

    // The delivery log has the delivery (recorded once the answer is in),
    // never the credentials; the audit says they went out.
    let path = format!("/api/v1/webhooks/{}/deliveries", made["id"]);
    let started = Instant::now();
    let log = loop {
        let log = app.get(&path).await;
        if log[0]["state"] == "delivered" {
            break log;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{log:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!log.to_string().contains(&password));
    let audit = app.get("/api/v1/audit").await;
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "service.credentials_sent"));
    assert!(!audit.to_string().contains(&password));
    // The strict subscriber's delivery is refused before any request is made.
    let started = Instant::now();
    loop {
        let log = app.get(&format!("/api/v1/webhooks/{}/deliveries", strict["id"])).await;
        if log[0]["last_error"].as_str().is_some_and(|e| e.contains("private or loopback")) {
            assert_ne!(log[0]["state"], "delivered");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{log:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(received.lock().unwrap().len(), 1, "nothing reached the receiver for the strict subscriber");
}

#[tokio::test]
async fn a_subscriber_that_is_down_gets_its_deliveries_later_and_provisioning_does_not_wait() {
    let app = spawn_app().await;
    // A port nobody listens on, for now.
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (status, made) = app
        .post(
            "/api/v1/webhooks",
            json!({"name": "down", "url": format!("http://{address}/hooks"), "allow_private": true,
            "event_types": ["service.activated"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let n = 30;
    for i in 0..n {
        app.event(order_for(
            "ann",
            &format!("evt-{i}"),
            &format!("c-{i}"),
            "demo-hosting",
            fields_for("demo-hosting", i),
        ))
        .await;
    }
    // Every service is active while not one delivery has got through.
    app.drained(Duration::from_secs(30)).await;
    assert_eq!(app.count_services("active").await, n as i64);
    let log = app.get(&format!("/api/v1/webhooks/{}/deliveries?limit=1000", made["id"])).await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), n);
    assert!(log.iter().all(|d| d["state"] != "delivered"), "{log:#?}");
    assert!(log.iter().any(|d| d["last_error"].as_str().is_some_and(|e| e.contains("cannot reach"))), "{log:#?}");

    // It comes back: every delivery arrives, once each.
    let received = receiver(tokio::net::TcpListener::bind(address).await.unwrap());
    wait_for("every delivery", || received.lock().unwrap().len() >= n).await;
    let started = Instant::now();
    loop {
        let log = app.get(&format!("/api/v1/webhooks/{}/deliveries?limit=1000", made["id"])).await;
        if log.as_array().unwrap().iter().all(|d| d["state"] == "delivered") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids: std::collections::BTreeSet<String> =
        received.lock().unwrap().iter().map(|(h, _)| h["provisio-delivery"].to_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), n);
}

#[tokio::test]
async fn subscriber_urls_and_event_types_are_checked_by_field() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"name": "a", "url": "ftp://example.com/x", "event_types": ["service.activated"]}), "/url"),
        (json!({"name": "a", "url": "https://user:pw@example.com/x", "event_types": ["service.activated"]}), "/url"),
        (json!({"name": "a", "url": "https://example.com/x", "event_types": ["service.exploded"]}), "/event_types"),
        (json!({"name": "a", "url": "https://example.com/x", "event_types": []}), "/event_types"),
        (json!({"name": "A b", "url": "https://example.com/x", "event_types": ["job.failed"]}), "/name"),
    ] {
        let (status, problem) = app.post("/api/v1/webhooks", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(problem.to_string().contains(field), "{field}: {problem}");
    }
    assert_eq!(app.get("/api/v1/webhooks").await, json!([]));
    // Only admins.
    let operator = app.token("operator", "operate").await;
    let (status, _) = app.call(Method::GET, "/api/v1/webhooks", Some(&operator), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
