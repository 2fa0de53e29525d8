//! A flaky provider: 30% transient failures and 5% unknown outcomes over 500
//! orders. Every service ends active and the provider holds no duplicate.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_orders_against_a_flaky_provider_end_active_without_duplicates() {
    let mut options = AppOptions::default();
    options.settings.max_attempts = 30;
    let app = spawn_app_with(options).await;
    let faults = json!({"transient_rate": 0.3, "outcome_unknown_rate": 0.05});
    app.tune("demo-hosting-eu", faults.clone()).await;
    // Cups ready at once: this is about faults, not brewing time.
    let mut instant = faults;
    instant["operation_secs"] = json!(0);
    app.tune("demo-coffee-machine", instant).await;

    // Half hosting (reconciled by get_info), half coffee (deduplicated by the
    // job's idempotency key alone: a second brew would be a second cup).
    for n in 0..500 {
        let product = if n % 2 == 0 { "demo-hosting" } else { "demo-coffee" };
        app.event(order(&format!("evt-{n}"), &format!("contract-{n}"), product, fields_for(product, n))).await;
    }
    app.drained(Duration::from_secs(120)).await;

    let active = app.count_services("active").await;
    if active != 500 {
        for service in app.get("/api/v1/services?limit=1000").await.as_array().unwrap() {
            if service["status"] != "active" {
                let detail = app.service(service["id"].as_i64().unwrap()).await;
                for job in detail["jobs"].as_array().unwrap() {
                    eprintln!("{:#}", app.get(&format!("/api/v1/jobs/{}", job["id"])).await);
                }
                eprintln!("{detail:#}");
            }
        }
    }
    assert_eq!(active, 500);
    assert_eq!(app.count_jobs(&["failed", "skipped"]).await, 0);
    let census = provisio_demo::state::census(&app.demo_state).await.unwrap();
    assert_eq!(census.services[&("shared-hosting".into(), "hosting-eu1".into())], 250);
    assert_eq!(census.services[&("coffee".into(), "kitchen".into())], 250, "one cup per order");
    assert!(census.duplicates().is_empty(), "{:?}", census.duplicates());

    // The faults really happened, and unknown outcomes were reconciled.
    let attempts = app
        .engine
        .store()
        .read(|conn| {
            Box::pin(async move {
                let mut all = Vec::new();
                for id in 1..=500 {
                    all.extend(provisio_store::jobs::attempts(conn, id).await?);
                }
                Ok::<_, provisio_store::StoreError>(all)
            })
        })
        .await
        .unwrap();
    let count = |outcome: &str| attempts.iter().filter(|a| a.outcome == outcome).count();
    assert!(count("transient") > 50, "transient {}", count("transient"));
    assert!(count("outcome_unknown") > 5, "outcome_unknown {}", count("outcome_unknown"));
    assert!(attempts.iter().any(|a| a.function == "get_info"), "some unknown outcomes were reconciled with get_info");
    // Every create the simulated panel received is an attempt on record (none
    // sent blindly), and every unknown outcome was checked before the next try.
    let creates = attempts.iter().filter(|a| a.function == "create").count() as i64;
    assert_eq!(census.calls[&("shared-hosting".into(), "create".into())], creates);
    assert_eq!(
        census.calls[&("coffee".into(), "brew".into())],
        attempts.iter().filter(|a| a.function == "brew").count() as i64
    );
    assert_invariants(&app).await;
}
