//! `/metrics`: read by a third-party Prometheus text-format parser, its
//! counters moving after a scripted run.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

async fn scrape(app: &TestApp, token: &str) -> prometheus_parse::Scrape {
    let response = app.client.get(format!("{}/metrics", app.address)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The sum of a metric's samples whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_move_after_a_scripted_run() {
    let app = spawn_app().await;
    let reader = app.token("prometheus", "read").await;
    let before = scrape(&app, &reader).await;
    assert_eq!(value(&before, "provisio_events_total", &[("type", "order.paid")]), 0.0);

    // Three orders, one of them to a server that refuses every call.
    app.tune("demo-database", json!({"transient_rate": 1.0})).await;
    for n in 0..2 {
        app.event(order(&format!("evt-h-{n}"), &format!("c-h-{n}"), "demo-hosting", fields_for("demo-hosting", n)))
            .await;
    }
    app.event(order("evt-db", "c-db", "demo-database", fields_for("demo-database", 1))).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    drop(listener);
    let (status, _) = app
        .post(
            "/api/v1/webhooks",
            json!({"name": "down", "url": url, "allow_private": true, "event_types": ["job.succeeded"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.event(order("evt-h-9", "c-h-9", "demo-hosting", fields_for("demo-hosting", 9))).await;
    let started = std::time::Instant::now();
    loop {
        let after = scrape(&app, &reader).await;
        let succeeded =
            value(&after, "provisio_job_attempts_total", &[("outcome", "succeeded"), ("blueprint", "shared-hosting")]);
        let retried = value(
            &after,
            "provisio_job_attempts_total",
            &[("outcome", "retrying"), ("configuration", "demo-database")],
        );
        let webhooks = value(&after, "provisio_webhook_deliveries_total", &[("outcome", "retrying")]);
        // The gauge is read from the store and the counters from this process, not
        // in one instant: a job recorded between the two shows in the counter first.
        let stored = value(&after, "provisio_jobs", &[("state", "succeeded")]);
        if succeeded >= 3.0 && retried >= 1.0 && webhooks >= 1.0 && stored >= 3.0 {
            assert_eq!(value(&after, "provisio_events_total", &[("type", "order.paid")]), 4.0);
            let calls = value(
                &after,
                "provisio_provider_call_duration_seconds",
                &[("configuration", "demo-hosting-eu"), ("function", "create")],
            );
            assert!(calls >= 3.0, "{calls}");
            assert!(after.samples.iter().any(|s| s.metric == "provisio_queue_depth"));
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "succeeded {succeeded}, retried {retried}, webhooks {webhooks}, stored {stored}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Only staff read it; a client session may not.
    let accepted = app.event(order_for("bob", "evt-b", "c-b", "demo-hosting", fields_for("demo-hosting", 5))).await;
    let client = app.settled(accepted["service_id"].as_i64().unwrap()).await["service"]["client_id"].as_i64().unwrap();
    let session = app.session(client).await;
    assert_eq!(app.call(Method::GET, "/metrics", session["token"].as_str(), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.call(Method::GET, "/metrics", None, None).await.0, StatusCode::UNAUTHORIZED);
}
