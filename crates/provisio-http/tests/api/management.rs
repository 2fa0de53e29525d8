//! Configurations (secrets write-only and encrypted at rest), products,
//! on-demand actions, job listing and retry, authentication.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "Vault-S3cret-9f8e7d";

#[tokio::test]
async fn configuration_secrets_are_write_only_and_not_in_the_stored_bytes() {
    let app = spawn_app().await;
    let body = json!({"name": "secret-hosting", "provider": "shared-hosting/demo",
                      "values": {"state_path": app.demo_state, "server": "vault1", "api_key": SECRET}});
    let (status, created) = app.post("/api/v1/configurations", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["config_values"]["api_key"], "[REDACTED]");
    assert_eq!(created["secrets_set"], json!(["/api_key"]));

    // It works: the test uses the real key (the simulator requires it from now on).
    let (status, tested) = app.post(&format!("/api/v1/configurations/{id}/test"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tested["status"], "ok", "{tested}");

    // A patch that leaves the secret out (or echoes the mask) keeps it.
    let (status, _) = app
        .request(
            Method::PATCH,
            &format!("/api/v1/configurations/{id}"),
            Some(json!({"values": {"latency_ms": 1, "api_key": "[REDACTED]"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, tested) = app.post(&format!("/api/v1/configurations/{id}/test"), json!({})).await;
    assert_eq!(tested["status"], "ok", "the key survived the patch: {tested}");

    // A product on it, a service, an action: nothing answers the secret.
    let product = json!({"slug": "vault-hosting", "name": "v", "blueprint": "shared-hosting",
                         "deployment": {"type": "static", "configuration_id": id}, "provision_fields": {"package_name": "basic"}});
    assert_eq!(app.post("/api/v1/products", product).await.0, StatusCode::CREATED);
    let accepted = app.event(order("v1", "vc1", "vault-hosting", fields_for("demo-hosting", 1))).await;
    let service = accepted["service_id"].as_i64().unwrap();
    app.settled(service).await;
    let (_, login) = app.post(&format!("/api/v1/services/{service}/actions/get_login_url"), json!({})).await;
    assert_eq!(login["envelope"]["status"], "ok", "{login}");

    // A wrong key: the simulator echoes it in its error, which must be redacted.
    let (status, _) = app
        .request(
            Method::PATCH,
            &format!("/api/v1/configurations/{id}"),
            Some(json!({"values": {"api_key": "Wrong-Key-0000"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, failed) = app.post(&format!("/api/v1/services/{service}/actions/get_info"), json!({})).await;
    assert_eq!(failed["envelope"]["error_kind"], "provider_error", "{failed}");

    let mut everything = String::new();
    for path in [
        "/api/v1/configurations",
        &format!("/api/v1/configurations/{id}"),
        &format!("/api/v1/services/{service}"),
        "/api/v1/jobs",
        "/api/v1/audit",
    ] {
        everything.push_str(&app.get(path).await.to_string());
    }
    for job in app.get(&format!("/api/v1/jobs?service_id={service}")).await.as_array().unwrap() {
        everything.push_str(&app.get(&format!("/api/v1/jobs/{}", job["id"])).await.to_string());
    }
    everything.push_str(&failed.to_string());
    assert!(everything.contains("[REDACTED]"));
    for secret in [SECRET, "Wrong-Key-0000"] {
        assert!(!everything.contains(secret), "{secret} leaked through the API");
    }

    // Not in the database files either (WAL included).
    let stored = app.stored_bytes();
    assert!(!stored.is_empty());
    for bytes in stored {
        for secret in [SECRET, "Wrong-Key-0000"] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} stored");
        }
    }
}

#[tokio::test]
async fn invalid_configurations_and_products_name_the_field() {
    let app = spawn_app().await;
    let cases = [
        ("/api/v1/configurations", json!({"name": "x", "provider": "shared-hosting/nope"}), "/provider"),
        (
            "/api/v1/configurations",
            json!({"name": "x", "provider": "shared-hosting/demo", "values": {"latency_ms": "slow"}}),
            "/values/latency_ms",
        ),
        (
            "/api/v1/products",
            json!({"slug": "Bad Slug", "name": "x", "blueprint": "coffee", "deployment": {"type": "dynamic", "strategy": "fill"}}),
            "/slug",
        ),
        (
            "/api/v1/products",
            json!({"slug": "p", "name": "x", "blueprint": "coffee", "deployment": {"type": "dynamic", "strategy": "most"}}),
            "/deployment",
        ),
        (
            "/api/v1/products",
            json!({"slug": "p", "name": "x", "blueprint": "coffee", "deployment": {"type": "static", "configuration_id": 1}}),
            "/deployment/configuration_id",
        ),
        (
            "/api/v1/products",
            json!({"slug": "p", "name": "x", "blueprint": "coffee", "setup_function": "get_info", "deployment": {"type": "dynamic", "strategy": "fill"}}),
            "/setup_function",
        ),
        (
            "/api/v1/products",
            json!({"slug": "p", "name": "x", "blueprint": "coffee", "rules": [{"event": "order.paid", "function": "explode"}], "deployment": {"type": "dynamic", "strategy": "fill"}}),
            "/rules/0/function",
        ),
    ];
    for (path, body, field) in cases {
        let (status, problem) = app.post(path, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {problem}");
        let paths: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
        assert!(paths.iter().any(|p| p.starts_with(field)), "expected {field} in {paths:?}");
    }
    // A taken name is a conflict, still naming the field.
    let (status, problem) =
        app.post("/api/v1/configurations", json!({"name": "demo-dns", "provider": "dns-hosting/demo"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["errors"][0]["path"], "/name");
    let (status, problem) = app.request(Method::GET, "/api/v1/jobs?status=exploded", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["path"], "?status");
}

#[tokio::test]
async fn product_rules_override_the_defaults() {
    let app = spawn_app().await;
    let (status, body) = app
        .request(
            Method::PATCH,
            "/api/v1/products/demo-hosting",
            Some(json!({"rules": [
                {"event": "contract.overdue", "function": "terminate", "when_status": ["active"]},
                {"event": "support.reset", "function": "change_package", "params": {"package_name": "premium"}}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let service = app.event(order("r1", "rc1", "demo-hosting", fields_for("demo-hosting", 1))).await["service_id"]
        .as_i64()
        .unwrap();
    app.settled(service).await;
    let accepted = app.event(later("r2", "support.reset", service, json!({}))).await;
    assert_eq!(accepted["jobs"][0]["function"], "change_package");
    assert_eq!(app.settled(service).await["service"]["provision_data"]["package_name"], "premium");
    let accepted = app.event(later("r3", "contract.overdue", service, json!({}))).await;
    assert_eq!(accepted["jobs"][0]["function"], "terminate");
    assert_eq!(app.settled(service).await["service"]["status"], "terminated");
}

#[tokio::test]
async fn staff_actions_jobs_and_auth() {
    let app = spawn_app().await;
    let service = app.event(order("a1", "ac1", "demo-database", fields_for("demo-database", 1))).await["service_id"]
        .as_i64()
        .unwrap();
    let detail = app.settled(service).await;
    assert_eq!(detail["service"]["status"], "active");
    // The generated password was returned once; it is not kept in provision data.
    assert!(detail["service"]["provision_data"].get("password").is_none(), "{detail:#}");
    let (_, create) = app.request(Method::GET, &format!("/api/v1/jobs/{}", detail["jobs"][0]["id"]), None).await;
    assert_eq!(create["attempts"][0]["envelope"]["data"]["password"], "[REDACTED]", "{create}");

    // A query runs at once; a lifecycle function goes through the queue.
    let (status, usage) = app.post(&format!("/api/v1/services/{service}/actions/get_usage"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["envelope"]["status"], "ok");
    let (status, suspended) =
        app.post(&format!("/api/v1/services/{service}/actions/suspend"), json!({"reason": "abuse"})).await;
    assert_eq!(status, StatusCode::OK, "{suspended}");
    assert_eq!(suspended["job"]["state"], "succeeded");
    assert_eq!(app.service(service).await["service"]["status"], "suspended");
    // Not allowed in this status.
    let (status, problem) = app.post(&format!("/api/v1/services/{service}/actions/change_password"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, _) = app.post(&format!("/api/v1/services/{service}/actions/explode"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let jobs = app.get(&format!("/api/v1/jobs?status=succeeded&service_id={service}")).await;
    let functions: Vec<&str> = jobs.as_array().unwrap().iter().map(|j| j["function"].as_str().unwrap()).collect();
    assert_eq!(functions, ["suspend", "get_usage", "create"]);
    let (status, problem) = app.post(&format!("/api/v1/jobs/{}/retry", jobs[0]["id"]), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "only failed jobs: {problem}");

    // Every staff change is in the audit log.
    let audit = app.get("/api/v1/audit").await;
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"service.action") && actions.contains(&"product.create"), "{actions:?}");

    // No token, a wrong token.
    let response = app.client.get(format!("{}/api/v1/services", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let response = app.client.get(format!("{}/api/v1/services", app.address)).bearer_auth("nope").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let health: Value = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
}

/// Secret params from events and staff actions (a chosen password) reach
/// the provider but are stored only sealed: not in jobs, events, provision
/// data, API answers or the database file.
#[tokio::test]
async fn secret_params_from_events_and_actions_are_sealed() {
    let app = spawn_app().await;
    const CHOSEN: &str = "Chosen-Passw0rd-4711";
    const NEW: &str = "Staff-Set-Passw0rd-4712";
    let mut event = order("s1", "sc1", "demo-database", json!({"database": "sealed_db", "password": CHOSEN}));
    event["data"] = json!({"note": "hello"});
    let service = app.event(event).await["service_id"].as_i64().unwrap();
    let detail = app.settled(service).await;
    assert_eq!(detail["service"]["status"], "active", "{detail:#}");
    let created = app.get(&format!("/api/v1/jobs/{}", detail["jobs"][0]["id"])).await;
    // A chosen password is not generated, so none comes back.
    assert!(created["attempts"][0]["envelope"]["data"].get("password").is_none_or(Value::is_null), "{created}");

    let hosting = app.event(order("s2", "sc2", "demo-hosting", fields_for("demo-hosting", 7))).await["service_id"]
        .as_i64()
        .unwrap();
    app.settled(hosting).await;
    let (status, changed) =
        app.post(&format!("/api/v1/services/{hosting}/actions/change_password"), json!({"password": NEW})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["envelope"]["status"], "ok");
    assert_eq!(changed["job"]["args"]["password"], "[REDACTED]");

    let mut everything = String::new();
    for path in [
        format!("/api/v1/services/{service}"),
        format!("/api/v1/services/{hosting}"),
        "/api/v1/jobs".into(),
        "/api/v1/audit".into(),
    ] {
        everything.push_str(&app.get(&path).await.to_string());
    }
    for job in app.get("/api/v1/jobs?limit=1000").await.as_array().unwrap() {
        everything.push_str(&app.get(&format!("/api/v1/jobs/{}", job["id"])).await.to_string());
    }
    for secret in [CHOSEN, NEW] {
        assert!(!everything.contains(secret), "{secret} answered by the API");
    }
    let stored = app.stored_bytes();
    assert!(!stored.is_empty());
    for bytes in stored {
        for secret in [CHOSEN, NEW] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} stored");
        }
    }
}
