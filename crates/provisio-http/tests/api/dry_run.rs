//! `POST /api/v1/events?dry_run=true`: what an event would do, without
//! doing it. For every demo product and every standard event its default
//! rules answer, the dry run answers the jobs the real event then makes;
//! nothing a dry run sees is kept; and it is the staff's only.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn dry_run(app: &TestApp, event: &Value) -> (StatusCode, Value) {
    app.post("/api/v1/events?dry_run=true", event.clone()).await
}

fn functions(jobs: &Value) -> Vec<String> {
    jobs.as_array().unwrap().iter().map(|j| j["function"].as_str().unwrap().to_owned()).collect()
}

/// Every row the store holds that an event could add: events, services,
/// clients, jobs and service history (reserved names are services' columns).
async fn census(app: &TestApp) -> provisio_store::invariants::RowCounts {
    app.engine
        .store()
        .read(|conn| Box::pin(async move { provisio_store::invariants::row_counts(conn).await }))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dry_run_answers_the_jobs_the_real_event_makes_for_every_default_rule() {
    let app = spawn_app().await;
    let products = [
        "demo-hosting",
        "demo-domain",
        "demo-dns",
        "demo-database",
        "demo-license",
        "demo-coffee",
        "demo-queue",
        "demo-mqtt",
    ];
    for (n, product) in products.into_iter().enumerate() {
        let order = order(&format!("p{n}"), &format!("plan-{n}"), product, fields_for(product, n));
        let before = census(&app).await;
        let (status, plan) = dry_run(&app, &order).await;
        assert_eq!(status, StatusCode::OK, "{plan:#}");
        assert_eq!(census(&app).await, before, "{product}: a dry run keeps nothing");
        assert_eq!(plan["service"]["new"], true, "{plan:#}");
        let accepted = app.event(order).await;
        assert_eq!(accepted["duplicate"], false, "the dry run did not use up the event id");
        assert_eq!(functions(&plan["jobs"]), functions(&accepted["jobs"]), "{product} order.paid: {plan:#}");
        let service = accepted["service_id"].as_i64().unwrap();
        app.settled(service).await;
        for (k, event_type) in [
            "contract.renewed",
            "contract.overdue",
            "invoice.paid",
            "contract.unsuspended",
            "contract.upgraded",
            "contract.cancelled",
        ]
        .into_iter()
        .enumerate()
        {
            let data = if event_type == "contract.upgraded" { json!({"package_name": "standard"}) } else { json!({}) };
            let event = later(&format!("p{n}-{k}"), event_type, service, data);
            let (status, plan) = dry_run(&app, &event).await;
            assert_eq!(status, StatusCode::OK, "{plan:#}");
            assert_eq!(plan["service"]["id"], json!(service));
            let accepted = app.event(event).await;
            assert_eq!(functions(&plan["jobs"]), functions(&accepted["jobs"]), "{product} {event_type}: {plan:#}");
            let detail = app.settled(service).await;
            assert_eq!(
                plan["service"]["projected_after"], detail["service"]["status"],
                "{product} {event_type}: {plan:#}"
            );
        }
    }
}

#[tokio::test]
async fn a_dry_run_explains_rules_params_and_placement_and_masks_secrets() {
    let app = spawn_app().await;
    let mut fields = fields_for("demo-hosting", 1);
    fields["password"] = json!("Secret-Passw0rd-77");
    let (status, plan) = dry_run(&app, &order("x1", "explain-1", "demo-hosting", fields)).await;
    assert_eq!(status, StatusCode::OK, "{plan:#}");
    assert!(!plan.to_string().contains("Secret-Passw0rd-77"), "the password is masked: {plan:#}");
    assert_eq!(plan["jobs"][0]["params"]["password"], "[REDACTED]", "{plan:#}");
    assert_eq!(plan["jobs"][0]["params"]["username"], "user1", "{plan:#}");
    let placed = &plan["jobs"][0]["configuration"];
    assert_eq!(placed["name"], "demo-hosting-eu", "{plan:#}");
    assert!(placed["why"].as_str().unwrap().contains("dynamic"), "{plan:#}");
    let rules = plan["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["function"] == "create" && r["matches"] == true), "{plan:#}");
    assert_eq!(plan["service"]["projected_after"], "active");
    // A rule that does not apply says why.
    let accepted = app.event(order("x2", "explain-2", "demo-hosting", fields_for("demo-hosting", 2))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    app.settled(service).await;
    let (_, plan) = dry_run(&app, &later("x3", "contract.unsuspended", service, json!({}))).await;
    assert!(plan["jobs"].as_array().unwrap().is_empty(), "{plan:#}");
    let why = plan["rules"][0]["why"].as_str().unwrap();
    assert!(why.contains("suspended") && why.contains("active"), "{plan:#}");
    // An event received before: a duplicate, nothing would run.
    let (_, plan) = dry_run(&app, &order("x2", "explain-2", "demo-hosting", fields_for("demo-hosting", 2))).await;
    assert_eq!(plan["duplicate"], true, "{plan:#}");
    assert!(plan["jobs"].as_array().unwrap().is_empty(), "{plan:#}");
}

#[tokio::test]
async fn a_dry_run_is_the_staffs_and_refuses_what_the_event_would_refuse() {
    let app = spawn_app().await;
    let event = order("y1", "guard-1", "demo-hosting", fields_for("demo-hosting", 1));
    let url = format!("{}/api/v1/events?dry_run=true", app.address);
    // No token, a read-only token, and a signature in place of a token: refused.
    let anonymous = app.client.post(&url).json(&event).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let reader = app.token("reader", "read").await;
    let read_only = app.client.post(&url).bearer_auth(&reader).json(&event).send().await.unwrap();
    assert_eq!(read_only.status(), StatusCode::FORBIDDEN);
    let signed = app
        .client
        .post(&url)
        .header("provisio-source", "billing")
        .header("provisio-signature", "t=1,v1=00")
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::UNAUTHORIZED);
    // Hostile input: named, nothing kept.
    let before = census(&app).await;
    let mut bad = event.clone();
    bad["service"]["fields"]["username"] = json!("Not A Username!");
    let (status, problem) = dry_run(&app, &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
    assert!(problem.to_string().contains("/service/fields/username"), "{problem:#}");
    let (status, problem) = app.post("/api/v1/events?dry_run=maybe", event.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
    assert!(problem.to_string().contains("?dry_run"), "{problem:#}");
    let (status, problem) = app.post("/api/v1/events?dry=true", event.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem:#}");
    // Many at once: each answers, none is kept.
    let app = &app;
    let plans = (0..50).map(|n| {
        let event = order(&format!("z{n}"), &format!("flood-{n}"), "demo-hosting", fields_for("demo-hosting", n + 10));
        async move { dry_run(app, &event).await.0 }
    });
    for status in futures::future::join_all(plans).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(census(app).await, before, "nothing a dry run saw was kept");
}
