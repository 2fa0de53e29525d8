//! Sync and drift, through the engine with the demo providers and a real
//! PowerDNS: an account suspended behind the engine's back (through the
//! workbench) is found by the next sync and reported, then repaired once
//! the product says repair; a renewal made at the registrar is accepted; a
//! zone deleted by hand at PowerDNS is reported missing.

use std::time::{Duration, Instant};

use provisio_engine::workbench::WorkbenchTarget;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn syncing_app() -> TestApp {
    let mut options = AppOptions::default();
    options.settings.sync_interval = Some(Duration::from_millis(300));
    spawn_app_with(options).await
}

/// Waits (15 s at most) until the drift list (`?open=false`: all) satisfies `check`.
async fn wait_for_drift(app: &TestApp, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let listed = app.get("/api/v1/drift?open=false").await;
        let drift = listed.as_array().unwrap().clone();
        if check(&drift) {
            return drift;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{listed:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A function run by hand on a service's configuration, as a developer
/// would from the workbench (with the configuration's own values).
async fn behind_the_engines_back(app: &TestApp, service: i64, provider: &str, function: &str, params: Value) -> Value {
    let detail = app.service(service).await;
    let configuration = app.get(&format!("/api/v1/configurations/{}", detail["service"]["configuration_id"])).await;
    let values = configuration["config_values"].clone();
    let report = app
        .engine
        .catalog()
        .workbench_call("developer", provider, WorkbenchTarget::AdHoc(values), function, &params)
        .await
        .unwrap();
    assert!(report.envelope.is_ok(), "{:#?}", report.envelope);
    report.envelope.data.unwrap_or_default()
}

#[tokio::test]
async fn an_account_suspended_behind_the_engines_back_is_reported_then_repaired() {
    let app = syncing_app().await;
    let accepted = app.event(order("d1", "drift-1", "demo-hosting", fields_for("demo-hosting", 1))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(service).await["service"]["status"], "active");
    behind_the_engines_back(&app, service, "shared-hosting/demo", "suspend", json!({"username": "user1"})).await;

    // Reported (the product's default): recorded active, suspended at the panel; nothing changes.
    let drift = wait_for_drift(&app, |d| d.iter().any(|d| d["service_id"] == service && d["field"] == "state")).await;
    let found = drift.iter().find(|d| d["field"] == "state").unwrap();
    assert_eq!((found["recorded"].as_str(), found["real"].as_str()), (Some("active"), Some("suspended")), "{found:#}");
    assert!(found["resolved_at"].is_null());
    let events = app.get(&format!("/api/v1/services/{service}/events")).await;
    assert!(events.as_array().unwrap().iter().any(|e| e["type"] == "drift.detected"), "{events:#}");
    assert_eq!(app.service(service).await["service"]["status"], "active");
    // Seen again by later syncs, it stays one drift.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again = app.get("/api/v1/drift").await;
    assert_eq!(again.as_array().unwrap().iter().filter(|d| d["service_id"] == service).count(), 1, "{again:#}");

    // The product says repair: the next sync queues an unsuspend, and the account is active again.
    let (status, changed) =
        app.request(Method::PATCH, "/api/v1/products/demo-hosting", Some(json!({"drift_response": "repair"}))).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["drift_response"], "repair");
    // Resolved once a later sync finds the panel as recorded.
    let drift =
        wait_for_drift(&app, |d| d.iter().any(|d| d["service_id"] == service && d["resolution"] == "gone")).await;
    assert!(drift.iter().all(|d| d["service_id"] != service || !d["resolved_at"].is_null()), "{drift:#?}");
    let detail = app.settled(service).await;
    let jobs = detail["jobs"].as_array().unwrap();
    assert!(
        jobs.iter().any(|j| j["function"] == "unsuspend" && j["origin"] == "repair" && j["state"] == "succeeded"),
        "{detail:#}"
    );
    let info =
        behind_the_engines_back(&app, service, "shared-hosting/demo", "get_info", json!({"username": "user1"})).await;
    assert_eq!(info["state"], "active", "repaired at the panel");
    assert_eq!(detail["service"]["status"], "active");
    // A bad product setting is named.
    let (status, problem) =
        app.request(Method::PATCH, "/api/v1/products/demo-hosting", Some(json!({"drift_response": "ignore"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem.to_string().contains("/drift_response"), "{problem}");
}

/// A product rule on `drift.detected` runs like any event's: here it
/// unsuspends an account found suspended while its service is active; the
/// next sync finds nothing different and the drift is gone.
#[tokio::test]
async fn a_rule_on_drift_detected_runs_like_any_events() {
    let app = syncing_app().await;
    let rules = json!([{"event": "drift.detected", "function": "unsuspend", "when_status": ["active"]}]);
    let (status, changed) =
        app.request(Method::PATCH, "/api/v1/products/demo-hosting", Some(json!({"rules": rules}))).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let accepted = app.event(order("u1", "rule-1", "demo-hosting", fields_for("demo-hosting", 3))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    app.settled(service).await;
    behind_the_engines_back(&app, service, "shared-hosting/demo", "suspend", json!({"username": "user3"})).await;
    let drift =
        wait_for_drift(&app, |d| d.iter().any(|d| d["service_id"] == service && d["resolution"] == "gone")).await;
    assert!(drift.iter().any(|d| d["field"] == "state"), "{drift:#?}");
    let detail = app.settled(service).await;
    let jobs = detail["jobs"].as_array().unwrap();
    assert!(
        jobs.iter().any(|j| j["function"] == "unsuspend"
            && j["origin"] == "event:drift.detected"
            && j["state"] == "succeeded"),
        "{detail:#}"
    );
    let info =
        behind_the_engines_back(&app, service, "shared-hosting/demo", "get_info", json!({"username": "user3"})).await;
    assert_eq!(info["state"], "active");
}

#[tokio::test]
async fn a_renewal_made_at_the_registrar_is_accepted_when_the_product_says_so() {
    let app = syncing_app().await;
    let (status, _) =
        app.request(Method::PATCH, "/api/v1/products/demo-domain", Some(json!({"drift_response": "accept"}))).await;
    assert_eq!(status, StatusCode::OK);
    let accepted = app.event(order("r1", "renewed-1", "demo-domain", fields_for("demo-domain", 1))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    let before = app.settled(service).await["service"]["provision_data"]["expires_at"].clone();
    let renewed = behind_the_engines_back(
        &app,
        service,
        "domain-names/demo",
        "renew",
        json!({"domain": "brand1.com", "years": 1}),
    )
    .await;
    assert_ne!(renewed["expires_at"], before);
    let drift = wait_for_drift(&app, |d| {
        d.iter().any(|d| d["service_id"] == service && d["field"] == "expires_at" && d["resolution"] == "accepted")
    })
    .await;
    assert!(drift.iter().all(|d| d["service_id"] != service || d["field"] == "expires_at"), "{drift:#?}");
    let detail = app.service(service).await;
    assert_eq!(detail["service"]["provision_data"]["expires_at"], renewed["expires_at"], "{detail:#}");
}

#[tokio::test]
async fn a_zone_deleted_by_hand_at_powerdns_is_reported_missing() {
    let Some(values) = crate::real::powerdns() else { return };
    let app = syncing_app().await;
    let product = crate::real::product_on(&app, "pdns-drift", "dns-hosting/powerdns", &values).await;
    let zone = format!("{}.com", provisio_conformance::unique(10));
    let accepted = app.event(order("z1", "zone-drift-1", &product, json!({"zone": zone}))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(service).await["service"]["status"], "active");
    // Deleted at PowerDNS itself, not through Provisio.
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/api/v1/servers/localhost/zones/{zone}.",
            values["api_url"].as_str().unwrap().trim_end_matches('/')
        ))
        .header("X-API-Key", values["api_key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let drift =
        wait_for_drift(&app, |d| d.iter().any(|d| d["service_id"] == service && d["field"] == "existence")).await;
    let missing = drift.iter().find(|d| d["field"] == "existence").unwrap();
    assert_eq!(missing["real"], "missing", "{missing:#}");
    assert_eq!(app.service(service).await["service"]["status"], "active", "reported, not acted on");
}

/// Syncs are jobs: a configuration's rate limit holds for them. Twenty
/// accounts are made on a configuration allowing 40 calls a minute, then
/// synced every 300 ms: in the seconds that follow, creates and syncs
/// together never pass 40, though syncs keep asking for more.
#[tokio::test]
async fn syncs_keep_their_configurations_rate_limit() {
    let app = syncing_app().await;
    let configurations = app.get("/api/v1/configurations").await;
    let eu = configurations.as_array().unwrap().iter().find(|c| c["name"] == "demo-hosting-eu").unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, changed) =
        app.request(Method::PATCH, &format!("/api/v1/configurations/{eu}"), Some(json!({"rate_per_minute": 40}))).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let started = provisio_store::now_ms();
    for n in 0..20 {
        app.event(order(&format!("rl{n}"), &format!("rate-{n}"), "demo-hosting", fields_for("demo-hosting", 100 + n)))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (all, syncs) = app
        .engine
        .store()
        .read(move |conn| {
            Box::pin(async move {
                let starts = provisio_store::jobs::attempt_spans(conn, eu, started).await?;
                let syncs = starts.iter().filter(|a| a.origin == "sync").count();
                Ok::<_, provisio_store::StoreError>((starts.len(), syncs))
            })
        })
        .await
        .unwrap();
    assert!(syncs > 0, "syncs ran ({all} calls)");
    assert!(all <= 40, "{all} calls in a minute on a configuration allowing 40 ({syncs} syncs)");
    let waiting = app.count_jobs(&["queued", "retrying"]).await;
    assert!(waiting > 0, "syncs wait for room rather than pass the limit");
}
