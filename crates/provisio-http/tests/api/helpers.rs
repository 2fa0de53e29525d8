//! `spawn_app()`: a fresh database, the engine with the demo seed, the
//! worker and the router on a loopback port.

use std::time::{Duration, Instant};

use provisio_engine::{Engine, Settings, Vault};
use provisio_store::StoreOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token-0123456789";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    pub demo_state: String,
    /// The scratch PostgreSQL database, when the suite runs on PostgreSQL.
    _database: Option<provisio_store_postgres::testing::Scratch>,
}

/// Options for [`spawn_app_with`].
pub struct AppOptions {
    pub settings: Settings,
    pub worker: bool,
    pub demo: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            settings: Settings {
                retry_base: Duration::from_millis(20),
                retry_cap: Duration::from_millis(200),
                poll_interval: Duration::from_millis(50),
                webhook_attempts: 1000,
                usage_interval: None,
                lease: Duration::from_secs(5),
                call_timeout: Duration::from_secs(5),
                ..Settings::default()
            },
            worker: true,
            demo: true,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    // PROVISIO_TEST_STORE=postgres runs the whole suite on PostgreSQL (a
    // scratch database per test), as CI does after running it on SQLite.
    let (store, database) = if std::env::var("PROVISIO_TEST_STORE").is_ok_and(|s| s == "postgres") {
        let (url, database) = provisio_store_postgres::testing::scratch().await;
        (provisio_store_postgres::open(StoreOptions::new(url)).await.unwrap(), Some(database))
    } else {
        let url = format!("sqlite://{}", dir.path().join("provisio.db").display());
        (provisio_store_sqlite::open(StoreOptions::new(url)).await.unwrap(), None)
    };
    let engine = Engine::new(store, provisio_providers::registry(), Vault::new(&[42; 32]), options.settings);
    engine.access().check_secrets_key().await.unwrap();
    engine.access().install_token("test", TOKEN).await.unwrap();
    let demo_state = dir.path().join("demo.sqlite").display().to_string();
    if options.demo {
        assert!(engine.catalog().seed_demo(&demo_state).await.unwrap());
    }
    if options.worker {
        let worker = engine.clone();
        tokio::spawn(async move { worker.worker().run(std::future::pending()).await });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let router = provisio_http::router(engine.clone());
    tokio::spawn(async move { axum_serve(listener, router).await });
    TestApp { address, client: reqwest::Client::new(), engine, dir, demo_state, _database: database }
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) {
    // As `provisio serve` does, the router learns the peer address.
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
}

impl TestApp {
    /// Every byte the store holds on disk (SQLite's file and journal) or
    /// dumps (PostgreSQL), to search for what must never be stored.
    pub fn stored_bytes(&self) -> Vec<Vec<u8>> {
        match &self._database {
            Some(database) => vec![database.dump()],
            // The database, its WAL and shared memory.
            None => std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|file| file.unwrap().path())
                .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with("provisio.db"))
                .map(|path| std::fs::read(path).unwrap())
                .collect(),
        }
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.address)).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.request(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(body)).await
    }

    /// Posts an event that must be accepted.
    pub async fn event(&self, body: Value) -> Value {
        let (status, answer) = self.post("/api/v1/events", body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        answer
    }

    pub async fn service(&self, id: i64) -> Value {
        self.get(&format!("/api/v1/services/{id}")).await
    }

    /// Waits until the service has no unfinished job; answers its detail.
    pub async fn settled(&self, id: i64) -> Value {
        let started = Instant::now();
        loop {
            let detail = self.service(id).await;
            let open = detail["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|j| matches!(j["state"].as_str(), Some("queued" | "running" | "retrying")));
            if !open {
                return detail;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "service {id} did not settle: {detail:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every job is finished.
    pub async fn drained(&self, timeout: Duration) {
        let started = Instant::now();
        loop {
            let open = self.count_jobs(&["queued", "running", "retrying"]).await;
            if open == 0 {
                return;
            }
            assert!(started.elapsed() < timeout, "{open} jobs still open");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn count_jobs(&self, states: &[&str]) -> i64 {
        let counts = self
            .engine
            .store()
            .read(|conn| Box::pin(async move { provisio_store::jobs::count_by_state(conn).await }))
            .await
            .unwrap();
        counts.into_iter().filter(|(s, _)| states.contains(&s.as_str())).map(|(_, n)| n).sum()
    }

    pub async fn count_services(&self, status: &str) -> i64 {
        let counts = self
            .engine
            .store()
            .read(|conn| Box::pin(async move { provisio_store::services::count_by_status(conn).await }))
            .await
            .unwrap();
        counts.into_iter().filter(|(s, _)| s == status).map(|(_, n)| n).sum()
    }

    /// Changes a demo configuration's values through the API.
    pub async fn tune(&self, configuration: &str, values: Value) {
        let list = self.get("/api/v1/configurations").await;
        let id = list.as_array().unwrap().iter().find(|c| c["name"] == configuration).unwrap()["id"].as_i64().unwrap();
        let (status, body) =
            self.request(Method::PATCH, &format!("/api/v1/configurations/{id}"), Some(json!({"values": values}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

impl TestApp {
    /// A new staff token with `scope`.
    pub async fn token(&self, name: &str, scope: &str) -> String {
        let (status, made) = self.post("/api/v1/tokens", json!({"name": name, "scope": scope})).await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        made["secret"].as_str().unwrap().to_owned()
    }

    /// A new session of a client: its answer (token, handoff_url...).
    pub async fn session(&self, client_id: i64) -> Value {
        let (status, opened) = self.post(&format!("/api/v1/clients/{client_id}/sessions"), json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{opened}");
        opened
    }

    /// An active demo hosting service of client `client` (an external id): (service id, client id).
    pub async fn hosting_for(&self, client: &str, n: usize) -> (i64, i64) {
        let accepted = self
            .event(order_for(
                client,
                &format!("evt-{client}-{n}"),
                &format!("c-{client}-{n}"),
                "demo-hosting",
                fields_for("demo-hosting", n),
            ))
            .await;
        let service_id = accepted["service_id"].as_i64().unwrap();
        let detail = self.settled(service_id).await;
        assert_eq!(detail["service"]["status"], "active", "{detail:#}");
        (service_id, detail["service"]["client_id"].as_i64().unwrap())
    }

    /// A request with another bearer token (or none), redirects not followed.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = no_redirects().request(method, format!("{}{path}", self.address));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// An HTTP client that answers redirects instead of following them.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `t=…,v1=…` for `body` under `secret`, computed as Stripe documents it:
/// HMAC-SHA256 of "<t>.<body>", hex.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An `order.paid` event for a new service.
pub fn order(event_id: &str, contract: &str, product: &str, fields: Value) -> Value {
    json!({
        "id": event_id, "type": "order.paid", "occurred_at": "2026-11-27T12:00:00Z",
        "service": {"id": null, "external_id": contract,
                    "client": {"external_id": "cust-7", "name": "Ann Lee", "email": "ann@example.com"},
                    "product": product, "fields": fields},
        "data": {}
    })
}

/// A later event about an existing service.
pub fn later(event_id: &str, event_type: &str, service_id: i64, data: Value) -> Value {
    json!({"id": event_id, "type": event_type, "service": {"id": service_id}, "data": data})
}

/// Customer fields a new service of each demo product needs.
pub fn fields_for(product: &str, n: usize) -> Value {
    match product {
        "demo-hosting" => {
            json!({"domain": format!("site{n}.example.net"), "username": format!("user{n}")})
        }
        "demo-domain" => json!({"domain": format!("brand{n}.com"),
            "contacts": {"registrant": {"name": "Ann Lee", "email": "ann@example.com", "phone": "+442071234567",
                "address1": "1 High St", "city": "London", "postcode": "N1", "country_code": "GB"}}}),
        "demo-dns" => json!({"zone": format!("zone{n}.com")}),
        "demo-database" => json!({"database": format!("db{n}")}),
        "demo-license" => json!({"ip": "192.0.2.7"}),
        "demo-coffee" => json!({"sugar": 1, "milk": "oat"}),
        "demo-queue" => json!({"vhost": format!("vhost{n}")}),
        "demo-mqtt" => json!({"username": format!("device{n}")}),
        other => panic!("unknown product {other}"),
    }
}

/// An `order.paid` event for a new service of another client.
pub fn order_for(client: &str, event_id: &str, contract: &str, product: &str, fields: Value) -> Value {
    let mut event = order(event_id, contract, product, fields);
    event["service"]["client"] =
        json!({"external_id": client, "name": format!("Client {client}"), "email": format!("{client}@example.com")});
    event
}

/// The invariants no fault may break (see `provisio_store::invariants`).
pub async fn assert_invariants(app: &TestApp) {
    let violations = app
        .engine
        .store()
        .read(|conn| Box::pin(async move { provisio_store::invariants::violations(conn, &keyed_blueprints()).await }))
        .await
        .unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
}

/// Blueprints whose services the vendor names (reconciled by idempotency key).
pub fn keyed_blueprints() -> Vec<&'static str> {
    provisio_providers::registry().blueprints().iter().filter(|b| !b.customer_names_services()).map(|b| b.id).collect()
}
