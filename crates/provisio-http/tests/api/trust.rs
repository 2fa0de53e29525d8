//! What no client, retry or backlog may break: one live service per name on
//! a configuration, nested zones of one client only, one running job per
//! service, no configuration starving the others, order-time secrets for
//! the setup only, and redaction that never rewrites data.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_second_client_cannot_order_a_database_another_client_holds() {
    let app = spawn_app().await;
    let first = app.event(order_for("alice", "e1", "c1", "demo-database", json!({"database": "shop"}))).await;
    let first = first["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(first).await["service"]["status"], "active");

    let (status, problem) = app
        .post("/api/v1/events", order_for("mallory", "e2", "c2", "demo-database", json!({"database": "shop"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("already in use"), "{problem}");
    // Refused whole: no service, no event, no job for the second client.
    let services = app.get("/api/v1/services").await;
    assert_eq!(services.as_array().unwrap().len(), 1, "{services:#}");
    assert_eq!(app.count_jobs(&["queued", "running", "retrying", "succeeded", "failed", "skipped"]).await, 1);

    // The first client's database is untouched, and once it is cancelled the name is free again.
    app.event(later("e3", "contract.cancelled", first, json!({}))).await;
    assert_eq!(app.settled(first).await["service"]["status"], "terminated");
    let again = app.event(order_for("mallory", "e4", "c2", "demo-database", json!({"database": "shop"}))).await;
    let again = again["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(again).await["service"]["status"], "active");
    assert_invariants(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_of_one_name_make_exactly_one_live_service() {
    let app = spawn_app().await;
    let mut orders = Vec::new();
    for n in 0..40 {
        let event = order_for(
            &format!("client{n}"),
            &format!("e{n}"),
            &format!("c{n}"),
            "demo-database",
            json!({"database": "race"}),
        );
        let (client, address) = (app.client.clone(), app.address.clone());
        orders.push(tokio::spawn(async move {
            client
                .post(format!("{address}/api/v1/events"))
                .bearer_auth(TOKEN)
                .json(&event)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for order in orders {
        statuses.push(order.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::ACCEPTED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 39, "{statuses:?}");
    app.drained(Duration::from_secs(30)).await;
    assert_eq!(app.count_services("active").await, 1);
    assert_invariants(&app).await;
}

#[tokio::test]
async fn a_dynamic_product_refuses_a_taken_name_at_setup_and_creates_nothing() {
    let app = spawn_app().await;
    // demo-hosting picks its configuration at setup (dynamic): the name is reserved then.
    let fields = json!({"domain": "shop.example.net", "username": "shopuser"});
    let first = app.event(order_for("alice", "e1", "c1", "demo-hosting", fields.clone())).await;
    let first = first["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(first).await["service"]["status"], "active");
    let second = app.event(order_for("mallory", "e2", "c2", "demo-hosting", fields)).await;
    let second = second["service_id"].as_i64().unwrap();
    let detail = app.settled(second).await;
    assert_eq!(detail["service"]["status"], "failed", "{detail:#}");
    assert!(detail["service"]["configuration_id"].is_null(), "no configuration was given to the refused service");
    assert!(detail["service"]["last_error"].as_str().unwrap().contains("No capacity for shopuser"), "{detail:#}");
    // Its cancellation reaches nothing of the first client's.
    app.event(later("e3", "contract.cancelled", second, json!({}))).await;
    app.settled(second).await;
    assert_eq!(app.service(first).await["service"]["status"], "active");
    let census = provisio_demo::state::census(&app.demo_state).await.unwrap();
    assert_eq!(census.calls.get(&("shared-hosting".into(), "create".into())), Some(&1), "{census:?}");
    assert_eq!(census.calls.get(&("shared-hosting".into(), "terminate".into())), None, "{census:?}");
    assert_invariants(&app).await;
}

#[tokio::test]
async fn a_zone_inside_another_clients_zone_is_refused() {
    let app = spawn_app().await;
    let victim = app.event(order_for("alice", "e1", "c1", "demo-dns", json!({"zone": "victim.example.com"}))).await;
    app.settled(victim["service_id"].as_i64().unwrap()).await;
    for (n, zone) in ["www.victim.example.com", "WWW.Victim.Example.Com.", "example.com"].iter().enumerate() {
        let (status, problem) = app
            .post(
                "/api/v1/events",
                order_for("mallory", &format!("m{n}"), &format!("cm{n}"), "demo-dns", json!({"zone": zone})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{zone}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("another client"), "{problem}");
    }
    // The same client may nest its own zones.
    let own = app.event(order_for("alice", "e2", "c2", "demo-dns", json!({"zone": "shop.victim.example.com"}))).await;
    assert_eq!(app.settled(own["service_id"].as_i64().unwrap()).await["service"]["status"], "active");
    assert_invariants(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_retry_never_runs_beside_a_running_job_of_the_service() {
    let app = spawn_app().await;
    let accepted = app.event(order("e1", "c1", "demo-database", json!({"database": "slow"}))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    app.settled(service).await;
    // A job that fails for good (no such package), then a slow one.
    let (status, _) = app
        .request(
            Method::PATCH,
            "/api/v1/products/demo-database",
            Some(json!({"rules": [{"event": "custom.bad", "function": "suspend", "params": {"reason": 42}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let failed = app.event(later("e3", "custom.bad", service, json!({}))).await;
    let failed_job = failed["jobs"][0]["id"].as_i64().unwrap();
    app.settled(service).await;
    assert_eq!(app.get(&format!("/api/v1/jobs/{failed_job}")).await["job"]["state"], "failed");

    app.tune("demo-database", json!({"latency_ms": 1500})).await;
    let slow = app.event(later("e4", "contract.overdue", service, json!({}))).await;
    let slow_job = slow["jobs"][0]["id"].as_i64().unwrap();
    let started = Instant::now();
    while app.get(&format!("/api/v1/jobs/{slow_job}")).await["job"]["state"] != "running" {
        assert!(started.elapsed() < Duration::from_secs(10), "the slow job never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = app.post(&format!("/api/v1/jobs/{failed_job}/retry"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // While the slow job runs, the retried one waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.get(&format!("/api/v1/jobs/{slow_job}")).await["job"]["state"], "running");
    assert_ne!(app.get(&format!("/api/v1/jobs/{failed_job}")).await["job"]["state"], "running");
    app.settled(service).await;
    assert_invariants(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_backlog_does_not_delay_another_configuration() {
    let app = spawn_app().await;
    static_database_product(
        &app,
        "slow-database",
        json!({"name": "slow-db", "provider": "databases/demo", "rate_per_minute": 1,
                   "values": {"state_path": app.demo_state, "server": "slow1"}}),
    )
    .await;
    for n in 0..1000 {
        let event = order_for(
            "bulk",
            &format!("bulk{n}"),
            &format!("bulk{n}"),
            "slow-database",
            json!({"database": format!("bulk{n}")}),
        );
        app.engine.ingest().event(&event).await.unwrap();
    }
    // Let the worker take the one call the rate allows and meet the backlog.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let other = app.event(order_for("alice", "o1", "o1", "demo-database", json!({"database": "elsewhere"}))).await;
    let other = other["service_id"].as_i64().unwrap();
    loop {
        if app.service(other).await["service"]["status"] == "active" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "another configuration's job waited behind the backlog");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(app.count_jobs(&["queued"]).await >= 998, "the rate limit held");
}

#[tokio::test]
async fn change_password_without_a_password_generates_a_new_one() {
    let app = spawn_app().await;
    let fields = json!({"database": "secretive", "password": "Chosen-Password-1"});
    let accepted = app.event(order("e1", "c1", "demo-database", fields)).await;
    let service = accepted["service_id"].as_i64().unwrap();
    app.settled(service).await;
    let (status, outcome) = app.post(&format!("/api/v1/services/{service}/actions/change_password"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    let password = outcome["envelope"]["data"]["password"].as_str().unwrap();
    assert_ne!(password, "Chosen-Password-1", "the order-time password was reused");
    assert!(password.len() >= 12);
    // A password given with the call is used.
    let given = json!({"password": "Given-Password-22"});
    let (_, outcome) = app.post(&format!("/api/v1/services/{service}/actions/change_password"), given).await;
    assert_eq!(outcome["envelope"]["data"]["password"], "Given-Password-22");
}

#[tokio::test]
async fn a_secret_inside_a_name_never_rewrites_the_name() {
    let app = spawn_app().await;
    static_database_product(
        &app,
        "keyed-database",
        json!({"name": "keyed-db", "provider": "databases/demo",
                   "values": {"state_path": app.demo_state, "server": "keyed1", "api_key": "fanshop"}}),
    )
    .await;
    let accepted = app.event(order("e1", "c1", "keyed-database", json!({"database": "fanshop_db"}))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    let detail = app.settled(service).await;
    assert_eq!(detail["service"]["status"], "active", "{detail:#}");
    assert_eq!(detail["service"]["identifier"], "fanshop_db");
    assert_eq!(detail["service"]["provision_data"]["database"], "fanshop_db");
    for (n, (event, status)) in
        [("contract.overdue", "suspended"), ("contract.unsuspended", "active"), ("contract.cancelled", "terminated")]
            .iter()
            .enumerate()
    {
        app.event(later(&format!("k{n}"), event, service, json!({}))).await;
        let detail = app.settled(service).await;
        assert_eq!(detail["service"]["status"], *status, "{event}: {detail:#}");
        for job in detail["jobs"].as_array().unwrap() {
            assert_eq!(job["state"], "succeeded", "{job:#}");
        }
    }
    // Logs still hide the key itself.
    let job = app.service(service).await["jobs"][0]["id"].as_i64().unwrap();
    let attempts = app.get(&format!("/api/v1/jobs/{job}")).await.to_string();
    assert!(!attempts.contains("\"fanshop\""), "{attempts}");
}

#[tokio::test]
async fn moving_a_configuration_needs_its_secret_again() {
    let app = spawn_app().await;
    let (status, configuration) = app
        .post(
            "/api/v1/configurations",
            json!({"name": "keyed", "provider": "databases/demo",
                   "values": {"state_path": app.demo_state, "server": "keyed1", "api_key": "Stored-Key-123"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{configuration}");
    let path = format!("/api/v1/configurations/{}", configuration["id"]);
    // Pointing the stored key at another server without giving it again is refused, and changes nothing.
    let (status, problem) = app.request(Method::PATCH, &path, Some(json!({"values": {"server": "attacker"}}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "/values/api_key", "{problem}");
    assert_eq!(app.get(&path).await["config_values"]["server"], "keyed1");
    let (status, _) = app
        .request(Method::PATCH, &path, Some(json!({"values": {"server": "attacker", "api_key": "[REDACTED]"}})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Other fields change freely; with the key given again, so does the server.
    let (status, body) = app.request(Method::PATCH, &path, Some(json!({"values": {"latency_ms": 5}}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .request(Method::PATCH, &path, Some(json!({"values": {"server": "keyed2", "api_key": "Another-Key-456"}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audit = app.get("/api/v1/audit").await;
    let last = &audit[0];
    assert_eq!(last["action"], "configuration.update");
    assert_eq!(last["details"]["values"], json!(["api_key", "server"]), "{last:#}");
    assert!(!audit.to_string().contains("Another-Key-456"));
}

/// A `databases/demo` configuration from `configuration` and a static product
/// `slug` on it.
async fn static_database_product(app: &TestApp, slug: &str, configuration: serde_json::Value) {
    let (status, created) = app.post("/api/v1/configurations", configuration).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let product = json!({"slug": slug, "name": slug, "blueprint": "databases",
        "deployment": {"type": "static", "configuration_id": created["id"]}});
    assert_eq!(app.post("/api/v1/products", product).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn a_long_history_is_paged_and_its_pages_are_guarded() {
    let app = spawn_app().await;
    let accepted = app.event(order("e0", "c1", "demo-database", json!({"database": "busy"}))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    // 40 events of ~200 KiB each (an answer with every payload would be 8 MiB).
    let filler = "x".repeat(200 * 1024);
    for n in 1..=40 {
        // Known to the product, but with nothing to do for an active service: recorded, no job.
        app.event(later(&format!("e{n}"), "contract.unsuspended", service, json!({"note": filler}))).await;
    }
    let response =
        app.client.get(format!("{}/api/v1/services/{service}", app.address)).bearer_auth(TOKEN).send().await.unwrap();
    let text = response.text().await.unwrap();
    assert!(text.len() < 64 * 1024, "the detail is {} bytes", text.len());
    let detail: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(detail["events"].as_array().unwrap().len(), 20);
    assert_eq!(detail["more"]["events"], true);
    assert!(detail["events"][0].get("payload").is_none());

    // Pages, newest first, to the end.
    let mut seen = 0;
    let mut before = None::<i64>;
    loop {
        let path = match before {
            Some(id) => format!("/api/v1/services/{service}/events?limit=15&before={id}"),
            None => format!("/api/v1/services/{service}/events?limit=15"),
        };
        let page = app.get(&path).await;
        let page = page.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        seen += page.len();
        before = page.last().unwrap()["id"].as_i64();
    }
    assert_eq!(seen, 41);
    assert_eq!(app.get(&format!("/api/v1/services/{service}/history?limit=1")).await.as_array().unwrap().len(), 1);

    // Wrong caller, hostile input, too much at once.
    let anonymous = app.client.get(format!("{}/api/v1/services/{service}/events", app.address)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for (path, expected) in [
        (format!("/api/v1/services/{service}/events?limit=101"), StatusCode::UNPROCESSABLE_ENTITY),
        (format!("/api/v1/services/{service}/events?before=x"), StatusCode::UNPROCESSABLE_ENTITY),
        (format!("/api/v1/services/{service}/history?sort=asc"), StatusCode::UNPROCESSABLE_ENTITY),
        ("/api/v1/services/999/events".to_owned(), StatusCode::NOT_FOUND),
        ("/api/v1/services/x'--/history".to_owned(), StatusCode::NOT_FOUND),
    ] {
        let (status, problem) = app.request(Method::GET, &path, None).await;
        assert_eq!(status, expected, "{path}: {problem}");
        assert!(problem["detail"].is_string(), "{path}: {problem}");
    }
}

#[tokio::test]
async fn every_error_is_a_problem_document_and_the_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let url = |path: &str| format!("{}{path}", app.address);
    // Too large: 413, as a problem.
    let big = format!("{{\"id\": \"{}\"}}", "x".repeat(provisio_http::MAX_BODY + 1));
    let response = app
        .client
        .post(url("/api/v1/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    // A method the route does not answer: 405 with Allow, as a problem.
    let response = app.client.delete(url("/api/v1/events")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    // "Bearer" in any letter case (RFC 9110); other schemes and empty tokens are refused.
    for (header, expected) in [
        (format!("bearer {TOKEN}"), StatusCode::OK),
        (format!("BEARER {TOKEN}"), StatusCode::OK),
        (format!("Basic {TOKEN}"), StatusCode::UNAUTHORIZED),
        ("Bearer ".to_owned(), StatusCode::UNAUTHORIZED),
        (format!("Bearer{TOKEN}"), StatusCode::UNAUTHORIZED),
    ] {
        let response = app.client.get(url("/api/v1/services")).header("authorization", &header).send().await.unwrap();
        assert_eq!(response.status(), expected, "{header}");
    }
}

#[tokio::test]
async fn bad_orders_are_refused_at_the_door_and_change_nothing() {
    let app = spawn_app().await;
    let count = |app: &TestApp| {
        let app = app.engine.clone();
        async move {
            app.store()
                .read(|conn| {
                    Box::pin(async move {
                        let counts = provisio_store::invariants::row_counts(conn).await?;
                        Ok::<_, provisio_store::StoreError>((counts.services, counts.events, counts.jobs))
                    })
                })
                .await
                .unwrap()
        }
    };
    let before = count(&app).await;
    // What the setup function needs is checked now, each missing field named.
    let (status, problem) =
        app.post("/api/v1/events", order("e1", "c1", "demo-domain", json!({"domain": "brand.com"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem["errors"].as_array().unwrap().iter().any(|e| e["path"] == "/service/fields/contacts"), "{problem}");
    let (status, problem) = app.post("/api/v1/events", order("e2", "c2", "demo-database", json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "/service/fields/database", "{problem}");
    // A type no rule knows (a typo) creates no service that would stay pending forever.
    let mut typo = order("e3", "c3", "demo-database", json!({"database": "typo"}));
    typo["type"] = json!("order.payed");
    let (status, problem) = app.post("/api/v1/events", typo).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "/type");
    assert!(problem["detail"].as_str().unwrap().contains("order.paid"), "names what it knows: {problem}");
    assert_eq!(count(&app).await, before, "refused events changed something");

    // An order placed before payment may lack fields; its payment may not.
    let placed = app
        .event(json!({"id": "p1", "type": "order.placed", "service": {"external_id": "c4",
        "client": {"external_id": "cust-7", "name": "Ann Lee", "email": "ann@example.com"},
        "product": "demo-database", "fields": {}}}))
        .await;
    assert!(placed["jobs"].as_array().unwrap().is_empty());
    let paid = json!({"id": "p2", "type": "order.paid", "service": {"external_id": "c4"}});
    let (status, problem) = app.post("/api/v1/events", paid).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let paid =
        json!({"id": "p2", "type": "order.paid", "service": {"external_id": "c4", "fields": {"database": "late"}}});
    assert_eq!(app.post("/api/v1/events", paid).await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_reused_event_id_with_another_body_is_a_conflict() {
    let app = spawn_app().await;
    let first = order("e1", "c1", "demo-database", json!({"database": "one", "package_name": "basic"}));
    let accepted = app.event(first.clone()).await;
    // The same event again, keys in another order: a duplicate.
    let resent: serde_json::Value = serde_json::from_str(
        &serde_json::to_string(&json!({"data": {}, "service": first["service"], "type": "order.paid",
            "occurred_at": first["occurred_at"], "id": "e1"}))
        .unwrap(),
    )
    .unwrap();
    let again = app.event(resent).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], accepted["event_id"]);
    // The same id for another event: refused, nothing made.
    let (status, problem) =
        app.post("/api/v1/events", order("e1", "c2", "demo-database", json!({"database": "two"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("already used"), "{problem}");
    assert_eq!(app.get("/api/v1/services").await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_same_order_sent_many_times_at_once_is_recorded_once() {
    // On PostgreSQL the copies are written side by side; on SQLite one by one.
    let app = spawn_app().await;
    let event = order("e1", "c1", "demo-database", json!({"database": "once", "package_name": "basic"}));
    let copies: Vec<_> = (0..8)
        .map(|_| {
            let (client, address, event) = (app.client.clone(), app.address.clone(), event.clone());
            tokio::spawn(async move {
                let response = client
                    .post(format!("{address}/api/v1/events"))
                    .bearer_auth(TOKEN)
                    .json(&event)
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for copy in copies {
        let (status, answer) = copy.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        answers.push(answer);
    }
    assert_eq!(answers.iter().filter(|a| a["duplicate"] == false).count(), 1, "{answers:?}");
    assert!(answers.iter().all(|a| a["event_id"] == answers[0]["event_id"]));
    let service = answers[0]["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(service).await["service"]["status"], "active");
    assert_eq!(app.get("/api/v1/services").await.as_array().unwrap().len(), 1);
    assert_eq!(app.count_jobs(&["succeeded"]).await, 1);
    assert_invariants(&app).await;
}

#[tokio::test]
async fn action_params_are_checked_before_any_job_is_made() {
    let app = spawn_app().await;
    let accepted = app.event(order("e1", "c1", "demo-hosting", fields_for("demo-hosting", 1))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    app.settled(service).await;
    let jobs_before = app.count_jobs(&["succeeded", "failed", "queued", "running", "retrying", "skipped"]).await;
    for (function, body, path) in [
        ("get_login_url", json!({"licence_key": "typo"}), "/licence_key"),
        ("get_login_url", json!({"for_ip": "not an address"}), "/for_ip"),
        ("change_package", json!({"package_name": 42}), "/package_name"),
    ] {
        let (status, problem) = app.post(&format!("/api/v1/services/{service}/actions/{function}"), body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{function}: {problem}");
        assert_eq!(problem["errors"][0]["path"], path, "{problem}");
    }
    let jobs_after = app.count_jobs(&["succeeded", "failed", "queued", "running", "retrying", "skipped"]).await;
    assert_eq!(jobs_before, jobs_after, "a refused action made a job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_action_waits_for_the_running_job_of_its_service() {
    let app = spawn_app().await;
    let accepted = app.event(order("e1", "c1", "demo-database", json!({"database": "busydb"}))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    app.settled(service).await;
    app.tune("demo-database", json!({"latency_ms": 800})).await;
    let slow = app.event(later("e2", "contract.overdue", service, json!({}))).await;
    let slow_job = slow["jobs"][0]["id"].as_i64().unwrap();
    let started = Instant::now();
    while app.get(&format!("/api/v1/jobs/{slow_job}")).await["job"]["state"] != "running" {
        assert!(started.elapsed() < Duration::from_secs(10), "the slow job never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Asked while the suspension runs: it waits its turn, then answers.
    let (status, outcome) = app.post(&format!("/api/v1/services/{service}/actions/get_info"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["envelope"]["data"]["state"], "suspended", "it ran after the suspension: {outcome:#}");
    assert_invariants(&app).await;
}
