//! The test shop through real HTTP: what a caller that places orders relies
//! on (one order per idempotency key, orders found by reference, cancel
//! before shipping) and what it must be refused.

use std::time::Duration;

use provisio_shop_test_server::{Options, Shop};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Running {
    shop: Shop,
    url: String,
    client: reqwest::Client,
    _server: provisio_test_server_kit::Running,
}

async fn start(options: Options) -> Running {
    client_crypto();
    let shop = Shop::new(options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = provisio_test_server_kit::serve(listener, shop.router(), None);
    Running { url: server.url(), shop, client: reqwest::Client::new(), _server: server }
}

/// reqwest is built without a TLS provider of its own: this test's is ring.
fn client_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn order(reference: &str) -> Value {
    json!({
        "sku": "MUG-01",
        "quantity": 2,
        "reference": reference,
        "ship_to": {"name": "Ann Example", "line1": "1 High Street", "city": "Leeds", "postcode": "LS1 1AA", "country": "GB"}
    })
}

impl Running {
    async fn place(&self, key: &str, body: &Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self
            .client
            .post(format!("{}/v1/orders", self.url))
            .bearer_auth(self.shop.api_key())
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap())
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(self.shop.api_key())
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn faults(&self, asked: Value) {
        let response = self
            .client
            .post(format!("{}/_faults", self.url))
            .bearer_auth(self.shop.api_key())
            .json(&asked)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn one_order_per_idempotency_key_even_when_sent_many_times_at_once() {
    let shop = start(Options::default()).await;
    let body = order("svc-1");
    let answers = futures_join(20, || shop.place("key-1", &body)).await;
    let created = answers.iter().filter(|(s, _, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{answers:?}");
    let replays: Vec<_> = answers.iter().filter(|(s, _, _)| *s == StatusCode::OK).collect();
    assert_eq!(replays.len(), 19);
    assert!(replays.iter().all(|(_, h, _)| h.get("idempotent-replayed").is_some_and(|v| v == "true")));
    let ids: std::collections::BTreeSet<_> = answers.iter().map(|(_, _, o)| o["id"].to_string()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(shop.shop.orders().len(), 1);
    // The same key with another body is refused, naming the key.
    let (status, _, problem) = shop.place("key-1", &order("svc-2")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["error"]["field"], "Idempotency-Key");
    assert_eq!(shop.shop.orders().len(), 1);
}

/// Runs `n` calls at once (polled together: the server sees them concurrently).
async fn futures_join<F, Fut, T>(n: usize, call: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    futures::future::join_all((0..n).map(|_| call())).await
}

#[tokio::test]
async fn orders_ship_are_found_by_reference_and_are_cancelled_only_before_shipping() {
    let shop = start(Options { ship_after: Duration::from_millis(300), ..Options::default() }).await;
    let (status, _, first) = shop.place("a", &order("svc-9")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["status"], "accepted");
    assert_eq!(first["tracking"], Value::Null);
    let (_, _, second) = shop.place("b", &order("svc-9")).await;
    let (status, found) = shop.call(reqwest::Method::GET, "/v1/orders?reference=svc-9").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["orders"].as_array().unwrap().len(), 2);
    let (_, none) = shop.call(reqwest::Method::GET, "/v1/orders?reference=svc-0").await;
    assert_eq!(none["orders"], json!([]));
    // Cancelled before shipping; again, the same answer.
    let path = format!("/v1/orders/{}/cancel", second["id"].as_str().unwrap());
    let (status, cancelled) = shop.call(reqwest::Method::POST, &path).await;
    assert_eq!((status, cancelled["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    let (status, again) = shop.call(reqwest::Method::POST, &path).await;
    assert_eq!((status, &again), (StatusCode::OK, &cancelled));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (status, shipped) =
        shop.call(reqwest::Method::GET, &format!("/v1/orders/{}", first["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shipped["status"], "shipped");
    assert!(shipped["tracking"].as_str().is_some_and(|t| t.starts_with("TRK")));
    let (status, problem) =
        shop.call(reqwest::Method::POST, &format!("/v1/orders/{}/cancel", first["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["error"]["code"], "shipped");
    let (status, _) = shop.call(reqwest::Method::GET, "/v1/orders/ord_999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_keys_and_hostile_bodies_are_refused_by_field_and_change_nothing() {
    let shop = start(Options { max_orders: 2, ..Options::default() }).await;
    let url = format!("{}/v1/orders", shop.url);
    // No key, a wrong key, a key of another length.
    for auth in [None, Some("Bearer nope"), Some("Basic Zm9vOmJhcg=="), Some("Bearer ")] {
        let mut request = shop.client.post(&url).header("Idempotency-Key", "k").json(&order("r"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    let faults = shop.client.post(format!("{}/_faults", shop.url)).json(&json!({"fail_next": 5})).send().await.unwrap();
    assert_eq!(faults.status(), StatusCode::UNAUTHORIZED);
    // Bodies wrong in one field each.
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut with = |change: &dyn Fn(&mut Value), field: &'static str| {
        let mut body = order("r");
        change(&mut body);
        cases.push((body, field));
    };
    with(&|b| b["quantity"] = json!("two"), "quantity");
    with(&|b| b["quantity"] = json!(0), "quantity");
    with(&|b| b["quantity"] = json!(101), "quantity");
    with(&|b| b["sku"] = json!("MUG 01; DROP"), "sku");
    with(&|b| b["reference"] = json!("x".repeat(65)), "reference");
    with(&|b| b["reference"] = json!(""), "reference");
    with(&|b| b["ship_to"]["country"] = json!("Britain"), "ship_to.country");
    with(&|b| b["ship_to"]["name"] = json!("Ann\u{0}Example"), "ship_to.name");
    with(&|b| b.as_object_mut().unwrap().remove("sku").map(drop).unwrap_or(()), "sku");
    with(&|b| b["ship_to"].as_object_mut().unwrap().remove("city").map(drop).unwrap_or(()), "ship_to.city");
    for (body, field) in &cases {
        let (status, _, problem) = shop.place("k", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(problem["error"]["field"], *field, "{problem}");
    }
    // An unknown field, no key, a hostile key, not JSON, too big.
    let mut extra = order("r");
    extra["admin"] = json!(true);
    assert_eq!(shop.place("k", &extra).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    for key in ["", "a b", &"k".repeat(256)] {
        let (status, _, problem) = shop.place(key, &order("r")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{key:?}");
        assert_eq!(problem["error"]["field"], "Idempotency-Key");
    }
    let not_json = shop
        .client
        .post(&url)
        .bearer_auth(shop.shop.api_key())
        .header("Idempotency-Key", "k")
        .header("content-type", "application/json")
        .body("{\"sku\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let mut huge = order("r");
    huge["ship_to"]["line1"] = json!("x".repeat(20_000));
    let (status, _, problem) = shop.place("k", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert!(shop.shop.orders().is_empty(), "nothing refused was placed");
    // Overload: a full shop refuses new orders, and still replays old ones.
    assert_eq!(shop.place("1", &order("r1")).await.0, StatusCode::CREATED);
    assert_eq!(shop.place("2", &order("r2")).await.0, StatusCode::CREATED);
    assert_eq!(shop.place("3", &order("r3")).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shop.place("1", &order("r1")).await.0, StatusCode::OK);
    assert_eq!(shop.shop.orders().len(), 2);
}

#[tokio::test]
async fn faults_fail_before_placing_or_hold_the_answer_after_placing() {
    let shop = start(Options::default()).await;
    shop.faults(json!({"fail_next": 1})).await;
    let (status, _, problem) = shop.place("f", &order("svc-f")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["error"]["code"], "unavailable");
    assert!(shop.shop.orders().is_empty(), "a failed call places nothing");
    // Accepted, then the answer held past the caller's patience.
    shop.faults(json!({"timeout_next": 1, "hold_ms": 2_000})).await;
    let impatient = shop
        .client
        .post(format!("{}/v1/orders", shop.url))
        .bearer_auth(shop.shop.api_key())
        .header("Idempotency-Key", "t")
        .timeout(Duration::from_millis(300))
        .json(&order("svc-t"))
        .send()
        .await;
    assert!(impatient.is_err_and(|e| e.is_timeout()));
    assert_eq!(shop.shop.orders().len(), 1, "the order was placed before the answer was held");
    // Asked again with the same key: the same order, at once.
    let (status, headers, replayed) = shop.place("t", &order("svc-t")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("idempotent-replayed").is_some());
    assert_eq!(replayed["reference"], "svc-t");
    assert_eq!(shop.shop.orders().len(), 1);
    // A delay slows every answer.
    shop.faults(json!({"delay_ms": 200})).await;
    let started = std::time::Instant::now();
    assert_eq!(shop.call(reqwest::Method::GET, "/v1/orders?reference=svc-t").await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn the_binary_runs_on_its_own_and_prints_where_and_how() {
    use tokio::io::AsyncBufReadExt;
    client_crypto();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_provisio-shop-test-server"))
        .args(["--listen", "127.0.0.1:0", "--plain", "--api-key", "k3y"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = std::collections::HashMap::new();
    while printed.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
        let (name, value) = line.split_once('=').unwrap();
        printed.insert(name.to_owned(), value.to_owned());
    }
    assert_eq!(printed["SHOP_API_KEY"], "k3y");
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orders", printed["SHOP_URL"]))
        .bearer_auth("k3y")
        .header("Idempotency-Key", "first")
        .json(&order("standalone"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}
