//! Support and reporting: after a scripted day of orders, a failure and
//! usage samples, each report answers the numbers the script expects, as
//! JSON and as CSV; the help desk's summary; the usage collector.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn rows(report: &Value) -> &Vec<Value> {
    report["rows"].as_array().unwrap()
}

async fn csv(app: &TestApp, name: &str) -> Vec<Vec<String>> {
    let response = app
        .client
        .get(format!("{}/api/v1/reports/{name}?format=csv", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = response.text().await.unwrap();
    text.lines().map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

#[tokio::test]
async fn a_scripted_day_gives_the_expected_numbers_in_json_and_csv() {
    let app = spawn_app().await;
    // Three hosting orders that succeed; a database order whose server refuses every call.
    let mut hosting = Vec::new();
    for n in 0..3 {
        hosting.push(app.hosting_for("ann", n).await.0);
    }
    app.tune("demo-database", json!({"transient_rate": 1.0})).await;
    let failed =
        app.event(order("evt-db", "c-db", "demo-database", fields_for("demo-database", 1))).await["service_id"]
            .as_i64()
            .unwrap();
    assert_eq!(app.settled(failed).await["service"]["status"], "failed");
    // Two usage samples of each hosting service.
    for _ in 0..2 {
        for id in &hosting {
            assert!(app.engine.worker().sample_usage(*id).await.unwrap());
        }
    }

    let capacity = app.get("/api/v1/reports/capacity").await;
    let eu = rows(&capacity).iter().find(|r| r["configuration"] == "demo-hosting-eu").unwrap();
    assert_eq!((eu["live_services"].clone(), eu["blueprint"].clone()), (json!(3), json!("shared-hosting")));
    let database = rows(&capacity).iter().find(|r| r["configuration"] == "demo-database").unwrap();
    assert_eq!(database["live_services"], 0);

    let jobs = app.get("/api/v1/reports/jobs").await;
    let hosting_jobs = rows(&jobs).iter().find(|r| r["configuration"] == "demo-hosting-eu").unwrap();
    assert_eq!((hosting_jobs["succeeded"].clone(), hosting_jobs["failed"].clone()), (json!(3), json!(0)));
    let database_jobs = rows(&jobs).iter().find(|r| r["configuration"] == "demo-database").unwrap();
    assert_eq!((database_jobs["succeeded"].clone(), database_jobs["failed"].clone()), (json!(0), json!(1)));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(hosting_jobs["day"], today);

    let activation = app.get("/api/v1/reports/activation").await;
    let all = rows(&activation).iter().find(|r| r["product"] == "(all)").unwrap();
    assert_eq!(all["services"], 3);
    let (p50, p95) = (all["p50_seconds"].as_f64().unwrap(), all["p95_seconds"].as_f64().unwrap());
    assert!(0.0 <= p50 && p50 <= p95 && p95 < 30.0, "{all}");

    let attention = app.get("/api/v1/reports/attention").await;
    let kinds: Vec<(&str, i64)> =
        rows(&attention).iter().map(|r| (r["kind"].as_str().unwrap(), r["service_id"].as_i64().unwrap())).collect();
    assert_eq!(kinds.len(), 2, "{attention:#}");
    assert!(kinds.contains(&("job", failed)) && kinds.contains(&("service", failed)));

    let usage = app.get("/api/v1/reports/usage-services").await;
    let disk: Vec<&Value> = rows(&usage).iter().filter(|r| r["metric"] == "disk_mb").collect();
    assert_eq!(disk.len(), 3, "one row per service and day: {usage:#}");
    let by_configuration = app.get("/api/v1/reports/usage-configurations").await;
    let mailboxes = rows(&by_configuration).iter().find(|r| r["metric"] == "mailboxes").unwrap();
    // Each demo account has one mailbox: three services, three mailboxes.
    assert_eq!((mailboxes["total_of_peaks"].clone(), mailboxes["services"].clone()), (json!(3.0), json!(3)));

    // The same numbers as CSV.
    let table = csv(&app, "jobs").await;
    assert_eq!(table[0], ["day", "blueprint", "configuration", "succeeded", "failed"]);
    assert!(
        table.contains(&vec![today.clone(), "shared-hosting".into(), "demo-hosting-eu".into(), "3".into(), "0".into()]),
        "{table:?}"
    );
    let table = csv(&app, "capacity").await;
    assert!(table.iter().any(|r| r[0] == "demo-hosting-eu" && r[3] == "3"), "{table:?}");

    // A period with nothing in it, and bad periods named.
    let empty = app.get("/api/v1/reports/jobs?from=2020-01-01&to=2020-02-01").await;
    assert!(rows(&empty).is_empty());
    let (status, problem) = app.request(reqwest::Method::GET, "/api/v1/reports/jobs?from=yesterday", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "?from");
    let reversed = app.get("/api/v1/reports/jobs?from=2026-02-01&to=2026-01-01").await;
    assert!(rows(&reversed).is_empty(), "a period that ends before it starts is empty");
    assert_eq!(app.request(reqwest::Method::GET, "/api/v1/reports/nothing", None).await.0, StatusCode::NOT_FOUND);

    // The help desk's summary, live answers reused.
    let summary = app.get(&format!("/api/v1/services/{}/summary", hosting[0])).await;
    assert_eq!(summary["configuration"], "demo-hosting-eu");
    assert_eq!(summary["live"]["answers"]["get_info"]["status"], "ok", "{summary:#}");
    assert!(summary["jobs"][0]["message"].is_string());
    let again = app.get(&format!("/api/v1/services/{}/summary", hosting[0])).await;
    assert_eq!(summary["live"]["at"], again["live"]["at"], "reused within 30 seconds");
    assert!(!summary.to_string().contains("debug"));
    // A read-only token sees the summary but makes no provider call.
    let reader = app.token("reader", "read").await;
    let (status, read_only) =
        app.call(reqwest::Method::GET, &format!("/api/v1/services/{}/summary", hosting[1]), Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(read_only["live"]["omitted"].is_string(), "{read_only:#}");
}

#[tokio::test]
async fn the_usage_collector_samples_live_services_by_itself() {
    let mut options = AppOptions::default();
    options.settings.usage_interval = Some(Duration::from_millis(300));
    let app = spawn_app_with(options).await;
    let (service, _) = app.hosting_for("ann", 1).await;
    let started = std::time::Instant::now();
    loop {
        let usage = app.get("/api/v1/reports/usage-services").await;
        if rows(&usage).iter().any(|r| r["service_id"] == service) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no sample: {usage:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
