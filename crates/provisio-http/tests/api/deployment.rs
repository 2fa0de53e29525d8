//! Dynamic deployment: least-used spreading, capacity, attributes, and a
//! retry that succeeds once capacity is added.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn dynamic_deployment_spreads_by_least_used_and_respects_capacity_and_attributes() {
    let app = spawn_app_with(AppOptions { demo: false, ..AppOptions::default() }).await;
    let state = app.demo_state.clone();
    let mut ids = HashMap::new();
    for (name, location, max) in [("eu-a", "eu", 2), ("eu-b", "eu", 3), ("us-a", "us", 10)] {
        let body = json!({"name": name, "provider": "shared-hosting/demo", "attributes": {"location": location},
                          "max_services": max, "values": {"state_path": state, "server": name}});
        let (status, created) = app.post("/api/v1/configurations", body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        ids.insert(name, created["id"].as_i64().unwrap());
    }
    let product = json!({"slug": "eu-hosting", "name": "EU hosting", "blueprint": "shared-hosting",
                         "deployment": {"type": "dynamic", "strategy": "least_used", "attributes": {"location": "eu"}},
                         "provision_fields": {"package_name": "basic"}});
    let (status, body) = app.post("/api/v1/products", product).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let mut services = Vec::new();
    for n in 0..6 {
        let accepted =
            app.event(order(&format!("e{n}"), &format!("c{n}"), "eu-hosting", fields_for("demo-hosting", n))).await;
        let service = accepted["service_id"].as_i64().unwrap();
        services.push(service);
        app.settled(service).await;
    }
    let mut placed: HashMap<i64, usize> = HashMap::new();
    for service in &services[..5] {
        let detail = app.service(*service).await;
        assert_eq!(detail["service"]["status"], "active", "{detail:#}");
        *placed.entry(detail["service"]["configuration_id"].as_i64().unwrap()).or_default() += 1;
    }
    // Least used first: a, b, a, b, then a is full (2) and b takes the fifth.
    assert_eq!(placed.get(&ids["eu-a"]), Some(&2));
    assert_eq!(placed.get(&ids["eu-b"]), Some(&3));
    assert_eq!(placed.get(&ids["us-a"]), None, "attributes keep services out of us");
    let census = provisio_demo::state::census(&state).await.unwrap();
    assert_eq!(census.services[&("shared-hosting".into(), "eu-a".into())], 2);
    assert_eq!(census.services[&("shared-hosting".into(), "eu-b".into())], 3);

    // The sixth found no room: the job failed with a clear message.
    let sixth = app.service(services[5]).await;
    assert_eq!(sixth["service"]["status"], "failed");
    let job = &sixth["jobs"][0];
    assert_eq!(job["state"], "failed");
    assert!(job["message"].as_str().unwrap().contains("No capacity"), "{job}");

    // Staff add capacity, retry the job, and it succeeds.
    let (status, body) = app
        .request(Method::PATCH, &format!("/api/v1/configurations/{}", ids["eu-a"]), Some(json!({"max_services": 3})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.post(&format!("/api/v1/jobs/{}/retry", job["id"]), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let detail = app.settled(services[5]).await;
    assert_eq!(detail["service"]["status"], "active", "{detail:#}");
    assert_eq!(detail["service"]["configuration_id"], ids["eu-a"]);
}

#[tokio::test]
async fn round_robin_and_fill() {
    let app = spawn_app_with(AppOptions { demo: false, ..AppOptions::default() }).await;
    let state = app.demo_state.clone();
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let body = json!({"name": name, "provider": "coffee/demo", "max_services": 10, "values": {"state_path": state, "server": name}});
        ids.push(app.post("/api/v1/configurations", body).await.1["id"].as_i64().unwrap());
    }
    for (slug, strategy) in [("rr", "round_robin"), ("fill", "fill")] {
        let body = json!({"slug": slug, "name": slug, "blueprint": "coffee", "provision_fields": {"size": "small"},
                          "deployment": {"type": "dynamic", "strategy": strategy}});
        assert_eq!(app.post("/api/v1/products", body).await.0, StatusCode::CREATED);
    }
    let mut rr = Vec::new();
    let mut fill = Vec::new();
    for n in 0..6 {
        for (slug, placed) in [("rr", &mut rr), ("fill", &mut fill)] {
            let accepted = app.event(order(&format!("{slug}{n}"), &format!("{slug}-c{n}"), slug, json!({}))).await;
            let detail = app.settled(accepted["service_id"].as_i64().unwrap()).await;
            placed.push(detail["service"]["configuration_id"].as_i64().unwrap());
        }
    }
    assert_eq!(rr, [ids[0], ids[1], ids[2], ids[0], ids[1], ids[2]]);
    // fill keeps to the first until it is full (10 services, shared with round robin's).
    assert!(fill.iter().all(|id| *id == ids[0]), "{fill:?}");
}

#[tokio::test]
async fn rate_limit_per_configuration() {
    let app = spawn_app_with(AppOptions { demo: false, ..AppOptions::default() }).await;
    let state = app.demo_state.clone();
    let body = json!({"name": "slow-lane", "provider": "coffee/demo", "rate_per_minute": 2,
                      "values": {"state_path": state, "server": "slow-lane", "operation_secs": 0}});
    let id = app.post("/api/v1/configurations", body).await.1["id"].as_i64().unwrap();
    let product = json!({"slug": "limited", "name": "limited", "blueprint": "coffee", "provision_fields": {"size": "small"},
                         "deployment": {"type": "static", "configuration_id": id}});
    assert_eq!(app.post("/api/v1/products", product).await.0, StatusCode::CREATED);
    // order.placed only records the service; order.paid sets it up.
    let placed = app
        .event(json!({"id": "p0", "type": "order.placed", "service": {"external_id": "l0", "product": "limited",
                      "client": {"name": "Ann", "email": "ann@example.com"}}}))
        .await;
    assert_eq!(placed["jobs"], json!([]));
    for n in 0..4 {
        app.event(order(&format!("l{n}-paid"), &format!("l{n}"), "limited", json!({}))).await;
    }
    let started = std::time::Instant::now();
    while app.count_services("active").await < 2 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the first two calls never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The worker polls every 50 ms: ten polls later the window still holds the rest.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.count_services("active").await, 2, "two calls per minute");
    assert_eq!(app.count_jobs(&["queued", "retrying"]).await, 2, "the rest wait for the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_bounds_the_calls_in_flight_per_configuration() {
    let app = spawn_app_with(AppOptions { demo: false, ..AppOptions::default() }).await;
    let state = app.demo_state.clone();
    let body = json!({"name": "narrow", "provider": "coffee/demo", "max_concurrency": 2,
                      "values": {"state_path": state, "server": "narrow", "latency_ms": 300}});
    let id = app.post("/api/v1/configurations", body).await.1["id"].as_i64().unwrap();
    let product = json!({"slug": "narrow", "name": "narrow", "blueprint": "coffee", "provision_fields": {"size": "small"},
                         "deployment": {"type": "static", "configuration_id": id}});
    assert_eq!(app.post("/api/v1/products", product).await.0, StatusCode::CREATED);
    for n in 0..8 {
        app.event(order(&format!("n{n}"), &format!("n{n}"), "narrow", json!({}))).await;
    }
    app.drained(std::time::Duration::from_secs(30)).await;
    assert_eq!(app.count_services("active").await, 8);
    // From the attempts' own times: never more than two calls at once, and two at once did happen.
    let spans = app
        .engine
        .store()
        .read(|conn| {
            Box::pin(async move {
                let mut all = Vec::new();
                for id in 1..=8 {
                    all.extend(
                        provisio_store::jobs::attempts(conn, id)
                            .await?
                            .into_iter()
                            .map(|a| (a.started_at, a.finished_at)),
                    );
                }
                Ok::<_, provisio_store::StoreError>(all)
            })
        })
        .await
        .unwrap();
    let most =
        spans.iter().map(|(start, _)| spans.iter().filter(|(s, e)| s <= start && start < e).count()).max().unwrap();
    assert_eq!(most, 2, "calls in flight at once: {spans:?}");
}
