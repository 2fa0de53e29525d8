//! Billing events to jobs: every default rule of every blueprint, event
//! idempotency, and invalid events that change nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Runs an event for a service and answers the function of the job it made
/// (or None) and the service's status once settled.
async fn step(app: &TestApp, id: &str, event_type: &str, service: i64, data: Value) -> (Option<String>, Value) {
    let accepted = app.event(later(id, event_type, service, data)).await;
    let function = accepted["jobs"].as_array().unwrap().first().map(|j| j["function"].as_str().unwrap().to_owned());
    let detail = app.settled(service).await;
    for job in detail["jobs"].as_array().unwrap() {
        assert_eq!(job["state"], "succeeded", "{job:#}");
    }
    (function, detail)
}

#[tokio::test]
async fn default_rules_of_every_blueprint() {
    let app = spawn_app().await;
    for (n, product) in provisio_engine::demo::PRODUCTS.iter().enumerate() {
        let contract = format!("contract-{product}");
        let accepted = app.event(order(&format!("{product}-paid"), &contract, product, fields_for(product, n))).await;
        let service = accepted["service_id"].as_i64().unwrap();
        let setup = app.engine.queries().product(product).await.unwrap().setup_function;
        assert_eq!(accepted["jobs"][0]["function"], json!(setup), "{product}");
        let detail = app.settled(service).await;
        assert_eq!(detail["service"]["status"], "active", "{product}: {detail:#}");
        assert!(detail["service"]["identifier"].is_string(), "{product}: the identifier is recorded");
        assert!(detail["service"]["configuration_id"].is_i64());

        let blueprint =
            app.engine.registry().blueprint(&app.engine.queries().product(product).await.unwrap().blueprint).unwrap();
        let has = |f: &str| blueprint.function(f).is_some();
        if has("suspend") {
            let (function, detail) =
                step(&app, &format!("{product}-overdue"), "contract.overdue", service, json!({})).await;
            assert_eq!(function.as_deref(), Some("suspend"), "{product}");
            assert_eq!(detail["service"]["status"], "suspended", "{product}");
            // invoice.paid on a suspended service lifts the suspension.
            let (function, detail) =
                step(&app, &format!("{product}-invoice"), "invoice.paid", service, json!({})).await;
            assert_eq!(function.as_deref(), Some("unsuspend"), "{product}");
            assert_eq!(detail["service"]["status"], "active", "{product}");
            app.event(later(&format!("{product}-overdue-2"), "contract.overdue", service, json!({}))).await;
            let (function, detail) =
                step(&app, &format!("{product}-unsuspended"), "contract.unsuspended", service, json!({})).await;
            assert_eq!(function.as_deref(), Some("unsuspend"), "{product}");
            assert_eq!(detail["service"]["status"], "active", "{product}");
        }
        if has("change_package") {
            let package = json!({"package_name": "standard", "package_identifier": "standard"});
            let (function, detail) =
                step(&app, &format!("{product}-upgraded"), "contract.upgraded", service, package).await;
            assert_eq!(function.as_deref(), Some("change_package"), "{product}");
            let data = &detail["service"]["provision_data"];
            assert!(
                data["package_name"] == "standard" || data["package_identifier"] == "standard",
                "{product}: {data}"
            );
        }
        if has("renew") {
            let before = detail["service"]["provision_data"]["expires_at"].clone();
            let (function, detail) =
                step(&app, &format!("{product}-renewed"), "contract.renewed", service, json!({"years": 1})).await;
            assert_eq!(function.as_deref(), Some("renew"), "{product}");
            if detail["service"]["provision_data"]["expires_at"] == before {
                let job = detail["jobs"].as_array().unwrap().last().unwrap()["id"].as_i64().unwrap();
                eprintln!("{:#}", app.get(&format!("/api/v1/jobs/{job}")).await);
            }
            assert_ne!(detail["service"]["provision_data"]["expires_at"], before, "{product}");
        }
        if has("terminate") {
            let (function, detail) =
                step(&app, &format!("{product}-cancelled"), "contract.cancelled", service, json!({})).await;
            assert_eq!(function.as_deref(), Some("terminate"), "{product}");
            assert_eq!(detail["service"]["status"], "terminated", "{product}");
        } else {
            // No terminate in the blueprint: cancelling makes no job.
            let accepted =
                app.event(later(&format!("{product}-cancelled"), "contract.cancelled", service, json!({}))).await;
            assert_eq!(accepted["jobs"], json!([]), "{product}");
        }
    }
    // Terminated at the provider too: the demo state holds no hosting account any more.
    let census = provisio_demo::state::census(&app.demo_state).await.unwrap();
    assert_eq!(census.services.get(&("shared-hosting".into(), "hosting-eu1".into())), None);
    assert!(census.duplicates().is_empty());
}

#[tokio::test]
async fn a_duplicate_event_makes_no_second_job() {
    let app = spawn_app().await;
    let event = order("evt-dup", "contract-dup", "demo-coffee", json!({}));
    let first = app.event(event.clone()).await;
    let second = app.event(event).await;
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["jobs"][0]["id"], first["jobs"][0]["id"]);
    assert_eq!(second["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(second["service_id"], first["service_id"]);
    let detail = app.settled(first["service_id"].as_i64().unwrap()).await;
    // One brew (the cup, followed until ready, may add a follow job).
    let brews: Vec<&Value> = detail["jobs"].as_array().unwrap().iter().filter(|j| j["function"] == "brew").collect();
    assert_eq!(brews.len(), 1, "{detail:#}");
    assert_eq!(brews[0]["state"], "succeeded");
    let census = provisio_demo::state::census(&app.demo_state).await.unwrap();
    assert_eq!(census.services.values().sum::<i64>(), 1, "one cup brewed");
}

#[tokio::test]
async fn invalid_events_get_422_with_field_paths_and_change_nothing() {
    let app = spawn_app_with(AppOptions { worker: false, ..AppOptions::default() }).await;
    let good = order("evt-1", "contract-1", "demo-hosting", json!({"domain": "a.example.net", "username": "ann"}));
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut broken = good.clone();
    broken.as_object_mut().unwrap().remove("id");
    cases.push((broken, "/id"));
    let mut broken = good.clone();
    broken["type"] = json!("Order Paid!");
    cases.push((broken, "/type"));
    let mut broken = good.clone();
    broken["service"]["client"]["email"] = json!("not-an-email");
    cases.push((broken, "/service/client/email"));
    let mut broken = good.clone();
    broken["service"].as_object_mut().unwrap().remove("product");
    cases.push((broken, "/service/product"));
    let mut broken = good.clone();
    broken["service"]["product"] = json!("no-such-product");
    cases.push((broken, "/service/product"));
    let mut broken = good.clone();
    broken["service"]["fields"]["domain"] = json!("not a domain");
    cases.push((broken, "/service/fields/domain"));
    let mut broken = good.clone();
    broken["service"] = json!({"fields": {}});
    cases.push((broken, "/service"));
    cases.push((later("evt-2", "order.paid", 999, json!({})), "/service/id"));
    let mut broken = good.clone();
    broken["occurred_at"] = json!("yesterday");
    cases.push((broken, "/occurred_at"));

    for (body, path) in cases {
        let (status, problem) = app.post("/api/v1/events", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {problem}");
        let paths: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
        assert!(paths.contains(&path), "expected {path} in {paths:?}");
        assert_eq!(problem["status"], 422);
    }
    // Not JSON at all.
    let response = app
        .client
        .post(format!("{}/api/v1/events", app.address))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    assert_eq!(app.count_jobs(&["queued", "running", "retrying", "succeeded", "failed", "skipped"]).await, 0);
    let services = app.get("/api/v1/services").await;
    assert_eq!(services, json!([]), "no service was created");
    let clients = app.get("/api/v1/clients").await;
    assert_eq!(clients.as_array().unwrap().len(), 1, "only the demo client");
    // The good event still goes through afterwards.
    app.event(good).await;
}

#[tokio::test]
async fn events_in_order_one_job_at_a_time_per_service() {
    let app = spawn_app().await;
    app.tune("demo-hosting-eu", json!({"latency_ms": 100})).await;
    let accepted = app.event(order("o-1", "c-1", "demo-hosting", fields_for("demo-hosting", 1))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    // Sent at once, before the create has finished: they must run after it, in order.
    app.event(later("o-2", "contract.overdue", service, json!({}))).await;
    app.event(later("o-3", "contract.unsuspended", service, json!({}))).await;
    app.event(later("o-4", "contract.cancelled", service, json!({}))).await;
    let detail = app.settled(service).await;
    let functions: Vec<&str> =
        detail["jobs"].as_array().unwrap().iter().map(|j| j["function"].as_str().unwrap()).collect();
    assert_eq!(functions, ["create", "suspend", "unsuspend", "terminate"]);
    let statuses: Vec<&str> =
        detail["history"].as_array().unwrap().iter().map(|h| h["to_status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["pending", "provisioning", "active", "suspended", "active", "terminated"]);
    // Finished one after another, never overlapping.
    let jobs = detail["jobs"].as_array().unwrap();
    for pair in jobs.windows(2) {
        let (first, second) = (&pair[0], &pair[1]);
        let attempts = app.get(&format!("/api/v1/jobs/{}", second["id"])).await;
        let started = attempts["attempts"][0]["started_at"].as_str().unwrap().to_owned();
        assert!(first["finished_at"].as_str().unwrap() <= started.as_str(), "{first:#}\n{second:#}");
    }
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_changes_nothing_and_the_job_is_reconciled() {
    let app = spawn_app_with(AppOptions { worker: false, ..AppOptions::default() }).await;
    let accepted = app.event(order("lease-1", "lease-c1", "demo-hosting", fields_for("demo-hosting", 1))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    let claimed = app.engine.worker().claim(10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // The worker stalls past its lease: another takes the job back.
    let taken = take_back_running(&app).await;
    assert_eq!(taken.len(), 1);
    // The stalled worker finishes its call: its attempt is kept, nothing else changes.
    app.engine.worker().run_claimed(claimed.into_iter().next().unwrap()).await;
    let job = app.get(&format!("/api/v1/jobs/{}", accepted["jobs"][0]["id"])).await;
    assert_eq!(job["job"]["state"], "retrying");
    assert_eq!(job["job"]["reconcile"], true);
    assert_eq!(job["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(app.service(service).await["service"]["status"], "provisioning");
    // The next worker reconciles: the account exists, so it is adopted, not created again.
    let next = app.engine.worker().claim(10).await.unwrap();
    app.engine.worker().run_claimed(next.into_iter().next().unwrap()).await;
    let detail = app.service(service).await;
    assert_eq!(detail["service"]["status"], "active");
    let job = app.get(&format!("/api/v1/jobs/{}", accepted["jobs"][0]["id"])).await;
    assert_eq!(job["attempts"][1]["function"], "get_info", "{job:#}");
    assert!(job["job"]["message"].as_str().unwrap().contains("Adopted"));
    let census = provisio_demo::state::census(&app.demo_state).await.unwrap();
    assert!(census.duplicates().is_empty());
}

#[tokio::test]
async fn a_password_answered_after_the_lease_was_taken_back_is_kept() {
    let app = spawn_app_with(AppOptions { worker: false, ..AppOptions::default() }).await;
    let accepted = app.event(order("late-1", "late-c1", "demo-database", json!({"database": "latedb"}))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    let claimed = app.engine.worker().claim(10).await.unwrap();
    take_back_running(&app).await;
    // The stalled worker's create generated the password; it is not applied, but kept.
    app.engine.worker().run_claimed(claimed.into_iter().next().unwrap()).await;
    // Another worker adopts the database (get_info answers no password).
    let next = app.engine.worker().claim(10).await.unwrap();
    app.engine.worker().run_claimed(next.into_iter().next().unwrap()).await;
    let detail = app.service(service).await;
    assert_eq!(detail["service"]["status"], "active");
    let stored = app
        .engine
        .store()
        .read(move |conn| Box::pin(async move { provisio_store::services::get(conn, service).await }))
        .await
        .unwrap()
        .unwrap();
    let secrets = app.engine.vault().open_fields(&format!("service:{service}"), stored.secrets.as_deref()).unwrap();
    let password = secrets.get("/password").and_then(|p| p.as_str()).unwrap_or_default();
    assert!(password.len() >= 12, "the generated password was lost: {secrets:?}");
    assert!(!detail.to_string().contains(password), "the password is sealed, not shown");
}

#[tokio::test]
async fn reconciliation_never_adopts_another_services_resource() {
    let app = spawn_app_with(AppOptions { worker: false, ..AppOptions::default() }).await;
    // A second configuration on the same (simulated) server: the engine cannot see the clash.
    let state = app.demo_state.clone();
    let (status, twin) = app
        .post(
            "/api/v1/configurations",
            json!({"name": "db-twin", "provider": "databases/demo",
                                                 "values": {"state_path": state, "server": "db1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{twin}");
    let product = json!({"slug": "twin", "name": "twin", "blueprint": "databases",
                         "deployment": {"type": "static", "configuration_id": twin["id"]}});
    assert_eq!(app.post("/api/v1/products", product).await.0, StatusCode::CREATED);
    let alice = app.event(order_for("alice", "a1", "ca", "demo-database", json!({"database": "shared"}))).await;
    let next = app.engine.worker().claim(10).await.unwrap();
    app.engine.worker().run_claimed(next.into_iter().next().unwrap()).await;
    assert_eq!(app.service(alice["service_id"].as_i64().unwrap()).await["service"]["status"], "active");

    // Mallory's create on the twin "may have happened" (its worker died): the check finds
    // Alice's database under another owner mark, and the job fails instead of adopting it.
    let mallory = app.event(order_for("mallory", "m1", "cm", "twin", json!({"database": "shared"}))).await;
    let claimed = app.engine.worker().claim(10).await.unwrap();
    take_back_running(&app).await;
    drop(claimed);
    let next = app.engine.worker().claim(10).await.unwrap();
    assert!(next[0].job.reconcile, "the taken-back job is reconciled first");
    app.engine.worker().run_claimed(next.into_iter().next().unwrap()).await;
    let detail = app.service(mallory["service_id"].as_i64().unwrap()).await;
    assert_eq!(detail["service"]["status"], "failed", "{detail:#}");
    assert!(detail["service"]["last_error"].as_str().unwrap().contains("belongs to another service"), "{detail:#}");
    let census = provisio_demo::state::census(&app.demo_state).await.unwrap();
    assert_eq!(census.calls.get(&("databases".into(), "create".into())), Some(&1), "nothing was created for Mallory");
}

#[tokio::test]
async fn event_data_cannot_point_a_job_at_another_account() {
    let app = spawn_app().await;
    let mine = app.event(order("mine", "c-mine", "demo-hosting", fields_for("demo-hosting", 1))).await["service_id"]
        .as_i64()
        .unwrap();
    let theirs =
        app.event(order("theirs", "c-theirs", "demo-hosting", fields_for("demo-hosting", 2))).await["service_id"]
            .as_i64()
            .unwrap();
    app.settled(mine).await;
    app.settled(theirs).await;
    // An overdue event for my service that names their username, in data and fields.
    let event = json!({"id": "sneaky", "type": "contract.overdue",
                       "service": {"id": mine, "fields": {"username": "user2"}}, "data": {"username": "user2"}});
    app.event(event).await;
    let detail = app.settled(mine).await;
    assert_eq!(detail["service"]["status"], "suspended");
    assert_eq!(detail["service"]["identifier"], "user1");
    assert_eq!(app.service(theirs).await["service"]["identifier"], "user2");
    let theirs_at_provider = app.post(&format!("/api/v1/services/{theirs}/actions/get_info"), json!({})).await.1;
    assert_eq!(theirs_at_provider["envelope"]["data"]["state"], "active", "{theirs_at_provider}");
}

/// Every running job's worker stalls past its lease, and the jobs are taken
/// back (as the heartbeat of another worker would); answers their ids.
async fn take_back_running(app: &TestApp) -> Vec<i64> {
    app.engine
        .store()
        .write(|conn| {
            Box::pin(async move {
                provisio_store::jobs::expire_running_leases(conn).await?;
                provisio_store::jobs::take_back_expired(conn, provisio_store::now_ms()).await
            })
        })
        .await
        .unwrap()
}

/// A setup the system only begins (a demo transfer that completes a second
/// later) leaves the service provisioning with a follow waiting (origin
/// `follow`, due later); the follow activates it, with no new event. A
/// follow whose operation has been pending past the blueprint's deadline
/// fails the service, saying why.
#[tokio::test]
async fn a_pending_transfer_is_followed_until_done_and_one_past_its_deadline_fails() {
    let mut options = AppOptions::default();
    options.settings.follow_interval = std::time::Duration::from_millis(300);
    let app = spawn_app_with(options).await;
    app.tune("demo-registrar", json!({"operation_secs": 1})).await;
    let configurations = app.get("/api/v1/configurations").await;
    let registrar =
        configurations.as_array().unwrap().iter().find(|c| c["name"] == "demo-registrar").unwrap()["id"].clone();
    let (status, product) = app
        .post(
            "/api/v1/products",
            json!({"slug": "demo-transfer", "name": "Demo transfer", "blueprint": "domain-names",
                   "setup_function": "transfer", "deployment": {"type": "static", "configuration_id": registrar}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{product}");
    let accepted = app
        .event(order("f1", "f-c1", "demo-transfer", json!({"domain": "moving.com", "epp_code": "Code-12345"})))
        .await;
    let service = accepted["service_id"].as_i64().unwrap();
    let waiting = wait_until(&app, service, |d| {
        d["jobs"].as_array().unwrap().iter().any(|j| j["origin"] == "follow" && j["state"] == "queued")
    })
    .await;
    assert_eq!(waiting["service"]["status"], "provisioning", "{waiting:#}");
    assert_eq!(waiting["service"]["provision_data"]["status"], "pending_transfer");
    let done = wait_until(&app, service, |d| d["service"]["status"] == "active").await;
    assert_eq!(done["service"]["provision_data"]["status"], "active", "{done:#}");
    let events = app.get(&format!("/api/v1/services/{service}/events")).await;
    assert_eq!(events.as_array().unwrap().len(), 1, "no event but the order: {events:#}");

    // A transfer that never completes: its follow is made to look 15 days old.
    app.tune("demo-registrar", json!({"operation_secs": 86400})).await;
    let accepted =
        app.event(order("f2", "f-c2", "demo-transfer", json!({"domain": "stuck.com", "epp_code": "Code-12345"}))).await;
    let stuck = accepted["service_id"].as_i64().unwrap();
    let waiting = wait_until(&app, stuck, |d| {
        d["jobs"].as_array().unwrap().iter().any(|j| j["origin"] == "follow" && j["state"] == "queued")
    })
    .await;
    let follow =
        waiting["jobs"].as_array().unwrap().iter().find(|j| j["origin"] == "follow").unwrap()["id"].as_i64().unwrap();
    let long_ago = provisio_store::now_ms() - 15 * 24 * 3600 * 1000;
    app.engine
        .store()
        .write(move |conn| {
            Box::pin(async move {
                let args = json!({"follow_since": long_ago, "follow_round": 20});
                provisio_store::jobs::backdate(conn, follow, &args, 0).await
            })
        })
        .await
        .unwrap();
    let failed = wait_until(&app, stuck, |d| d["service"]["status"] == "failed").await;
    assert!(failed.to_string().contains("did not complete it within 336 hours"), "{failed:#}");
}

/// A cup the machine is still brewing leaves its service provisioning; the
/// follow is due when the machine says the cup will be ready (not on the
/// usual 30-second schedule), and activates it with no new event.
#[tokio::test]
async fn a_brewing_cup_is_followed_at_its_ready_time() {
    let app = spawn_app().await;
    app.tune("demo-coffee-machine", json!({"operation_secs": 2})).await;
    let accepted = app.event(order("cup-1", "cup-c1", "demo-coffee", fields_for("demo-coffee", 1))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    let waiting = wait_until(&app, service, |d| {
        d["jobs"].as_array().unwrap().iter().any(|j| j["origin"] == "follow" && j["state"] == "queued")
    })
    .await;
    assert_eq!(waiting["service"]["status"], "provisioning", "{waiting:#}");
    let ready_at =
        chrono::DateTime::parse_from_rfc3339(waiting["service"]["provision_data"]["ready_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
    let done = wait_until(&app, service, |d| d["service"]["status"] == "active").await;
    assert_eq!(done["service"]["provision_data"]["status"], "ready", "{done:#}");
    let follow = done["jobs"].as_array().unwrap().iter().find(|j| j["origin"] == "follow").unwrap().clone();
    let job = app.get(&format!("/api/v1/jobs/{}", follow["id"])).await;
    let called = chrono::DateTime::parse_from_rfc3339(job["attempts"][0]["started_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(called >= ready_at && called < ready_at + 3_000, "followed at its ready time: {job:#}");
    let events = app.get(&format!("/api/v1/services/{service}/events")).await;
    assert_eq!(events.as_array().unwrap().len(), 1, "no event but the order: {events:#}");
}

/// Waits (10 s at most) until the service's detail satisfies `check`.
async fn wait_until(app: &TestApp, service: i64, check: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let detail = app.service(service).await;
        if check(&detail) {
            return detail;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{detail:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
