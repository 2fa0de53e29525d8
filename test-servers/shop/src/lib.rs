//! A drop-shipper test shop: the kind of small REST API a business sells
//! through without any provider written for it (the seed's "connect to a
//! drop shipper and transparently place an order"). Provisio's generic HTTP
//! provider is configured for it; anyone may run it on its own.
//!
//! The API (JSON in and out, `Authorization: Bearer KEY` on every call):
//!
//! - `POST /v1/orders` with `Idempotency-Key: K` (1 to 255 visible ASCII
//!   characters) and `{"sku", "quantity", "reference", "ship_to": {"name",
//!   "line1", "city", "postcode", "country"}}`: `201` and the order. The same
//!   key with the same body again answers the same order (`200`,
//!   `Idempotent-Replayed: true`); with another body, `422`. Keys are kept
//!   for the server's life.
//! - `GET /v1/orders/{id}`: the order. `status` is `accepted`, then
//!   `shipped` (with a `tracking` number) once `ship_after` has passed, or
//!   `cancelled`.
//! - `GET /v1/orders?reference=R`: `{"orders": [...]}`, the orders placed
//!   with that reference (how a caller that lost an answer finds its order).
//! - `POST /v1/orders/{id}/cancel`: the order, `cancelled`; again, the same;
//!   a shipped order cannot be: `409`.
//!
//! Errors are `{"error": {"code", "message", "field"?}}` with `400` (not
//! JSON), `401` (no or wrong key), `404`, `409`, `413` (body over 16 KiB),
//! `422` (a field is wrong: `field` names it), `503` (a fault asked for, or
//! the shop is full).
//!
//! Faults, for tests (`POST /_faults`, same key): `{"delay_ms": N}` answers
//! every call N ms late; `{"fail_next": N}` answers the next N calls `503`
//! before doing anything; `{"timeout_next": N}` does the next N calls and
//! then holds their answers for `hold_ms` (default 30 s), so a caller times
//! out after its order was accepted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How the shop runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The API key every call must carry.
    pub api_key: String,
    /// How long after acceptance an order ships.
    pub ship_after: Duration,
    /// Orders the shop holds at most (a hostile caller cannot fill memory).
    pub max_orders: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            api_key: provisio_test_server_kit::random_secret(32),
            ship_after: Duration::from_secs(5),
            max_orders: 100_000,
        }
    }
}

/// One order, as the API answers it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Order {
    pub id: String,
    pub status: String,
    pub sku: String,
    pub quantity: u32,
    pub reference: String,
    pub ship_to: Address,
    pub tracking: Option<String>,
    pub created_at: String,
    pub cancelled_at: Option<String>,
}

/// Where an order goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub city: String,
    pub postcode: String,
    pub country: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    sku: String,
    quantity: u32,
    reference: String,
    ship_to: Address,
}

#[derive(Debug, Default)]
struct Faults {
    delay: Duration,
    fail_next: u32,
    timeout_next: u32,
    hold: Duration,
}

#[derive(Debug)]
struct Stored {
    order: Order,
    placed: std::time::Instant,
}

#[derive(Debug, Default)]
struct Book {
    orders: Vec<Stored>,
    /// Idempotency key to the order it made and the body that made it.
    keys: HashMap<String, (usize, NewOrder)>,
    faults: Faults,
}

/// The shop: cheap to clone, one book behind them all.
#[derive(Debug, Clone)]
pub struct Shop {
    options: Arc<Options>,
    book: Arc<Mutex<Book>>,
}

/// An error answer.
struct Problem {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Problem {
        Problem { status, code, message: message.into(), field: None }
    }

    fn field(field: &str, message: impl Into<String>) -> Problem {
        Problem {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}

impl Shop {
    pub fn new(options: Options) -> Shop {
        Shop { options: Arc::new(options), book: Arc::default() }
    }

    pub fn api_key(&self) -> &str {
        &self.options.api_key
    }
    /// Sets faults as `POST /_faults` does; answers the faults now in force.
    pub fn set_faults(&self, asked: &FaultRequest) -> Value {
        let mut book = self.book.lock().expect("shop book");
        let faults = &mut book.faults;
        if let Some(ms) = asked.delay_ms {
            faults.delay = Duration::from_millis(ms.min(60_000));
        }
        if let Some(n) = asked.fail_next {
            faults.fail_next = n;
        }
        if let Some(n) = asked.timeout_next {
            faults.timeout_next = n;
            faults.hold = Duration::from_millis(asked.hold_ms.unwrap_or(30_000).min(120_000));
        }
        json!({
            "delay_ms": faults.delay.as_millis() as u64,
            "fail_next": faults.fail_next,
            "timeout_next": faults.timeout_next,
            "hold_ms": faults.hold.as_millis() as u64,
        })
    }

    /// Every order placed so far, in order (what tests count).
    pub fn orders(&self) -> Vec<Order> {
        let mut book = self.book.lock().expect("shop book");
        let ship_after = self.options.ship_after;
        book.orders.iter_mut().map(|s| advanced(s, ship_after).clone()).collect()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/orders", post(place).get(find))
            .route("/v1/orders/{id}", get(show))
            .route("/v1/orders/{id}/cancel", post(cancel))
            .route("/_faults", post(faults))
            .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
            .layer(DefaultBodyLimit::max(16 * 1024))
            .with_state(self.clone())
    }

    /// The call carries the shop's API key as a bearer token.
    fn authorized(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let presented = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if constant_time_eq(presented.as_bytes(), self.options.api_key.as_bytes()) {
            Ok(())
        } else {
            Err(Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API key is required"))
        }
    }

    /// Checks the key, then applies the faults asked for: `Ok(hold)` is how
    /// long to hold the answer once the call is done.
    async fn admit(&self, headers: &HeaderMap) -> Result<Duration, Problem> {
        self.authorized(headers)?;
        let (delay, fail, hold) = {
            let mut book = self.book.lock().expect("shop book");
            let faults = &mut book.faults;
            let fail = faults.fail_next > 0;
            faults.fail_next = faults.fail_next.saturating_sub(1);
            let hold = if !fail && faults.timeout_next > 0 {
                faults.timeout_next -= 1;
                faults.hold
            } else {
                Duration::ZERO
            };
            (faults.delay, fail, hold)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if fail {
            return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the shop is busy; try again"));
        }
        Ok(hold)
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The order as it is now: shipped once its time has come.
fn advanced(stored: &mut Stored, ship_after: Duration) -> &Order {
    if stored.order.status == "accepted" && stored.placed.elapsed() >= ship_after {
        stored.order.status = "shipped".into();
        stored.order.tracking = Some(format!("TRK{}", stored.order.id.trim_start_matches("ord_")));
    }
    &stored.order
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Answers after holding it (a fault), so the caller may give up first.
async fn held(hold: Duration, response: Response) -> Response {
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    response
}

fn check(order: &NewOrder) -> Result<(), Problem> {
    let text = |field: &str, value: &str, max: usize| -> Result<(), Problem> {
        if value.trim().is_empty() {
            return Err(Problem::field(field, format!("{field} is required")));
        }
        if value.chars().count() > max {
            return Err(Problem::field(field, format!("{field} is longer than {max} characters")));
        }
        if value.chars().any(char::is_control) {
            return Err(Problem::field(field, format!("{field} contains control characters")));
        }
        Ok(())
    };
    text("sku", &order.sku, 64)?;
    if !order.sku.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Problem::field("sku", "sku may hold only letters, digits, '-' and '_'"));
    }
    if !(1..=100).contains(&order.quantity) {
        return Err(Problem::field("quantity", "quantity must be 1 to 100"));
    }
    text("reference", &order.reference, 64)?;
    let to = &order.ship_to;
    text("ship_to.name", &to.name, 100)?;
    text("ship_to.line1", &to.line1, 100)?;
    text("ship_to.city", &to.city, 64)?;
    text("ship_to.postcode", &to.postcode, 16)?;
    if to.country.len() != 2 || !to.country.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(Problem::field("ship_to.country", "ship_to.country must be an ISO 3166-1 alpha-2 code"));
    }
    Ok(())
}

/// A body that did not decode, as a problem naming the field where serde can.
fn undecoded(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(err) => {
            let message = err.body_text();
            // axum reports "…target type: PATH: what is wrong"; a missing
            // field is named in the text instead.
            let missing = message
                .split_once("missing field `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(name, _)| name.to_owned());
            let path = message
                .split_once(": ")
                .and_then(|(_, rest)| rest.split_once(": "))
                .map(|(path, _)| path.to_owned())
                .filter(|path| !path.is_empty() && path != "." && !path.contains(' '));
            let field = match (path, missing) {
                (Some(path), Some(name)) => Some(format!("{path}.{name}")),
                (path, name) => path.or(name),
            };
            Problem { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid_field", message, field }
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be JSON (Content-Type: application/json)",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the body is over 16 KiB")
        }
        other => Problem::new(StatusCode::BAD_REQUEST, "bad_request", other.body_text()),
    }
}

async fn place(
    State(shop): State<Shop>,
    headers: HeaderMap,
    body: Result<axum::Json<NewOrder>, JsonRejection>,
) -> Result<Response, Problem> {
    let hold = shop.admit(&headers).await?;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::field(
            "Idempotency-Key",
            "the Idempotency-Key header (1 to 255 visible characters) is required",
        ));
    }
    let axum::Json(new) = body.map_err(undecoded)?;
    check(&new)?;
    let (status, order) = {
        let mut book = shop.book.lock().expect("shop book");
        let ship_after = shop.options.ship_after;
        if let Some((index, first)) = book.keys.get(&key) {
            if *first != new {
                return Err(Problem::field(
                    "Idempotency-Key",
                    "this Idempotency-Key was used with another request; keys may only be used again with the same body",
                ));
            }
            let index = *index;
            (StatusCode::OK, advanced(&mut book.orders[index], ship_after).clone())
        } else {
            if book.orders.len() >= shop.options.max_orders {
                return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "full", "the shop takes no more orders"));
            }
            let order = Order {
                id: format!("ord_{:06}", book.orders.len() + 1),
                status: "accepted".into(),
                sku: new.sku.clone(),
                quantity: new.quantity,
                reference: new.reference.clone(),
                ship_to: new.ship_to.clone(),
                tracking: None,
                created_at: now(),
                cancelled_at: None,
            };
            let index = book.orders.len();
            book.orders.push(Stored { order: order.clone(), placed: std::time::Instant::now() });
            book.keys.insert(key, (index, new));
            (StatusCode::CREATED, order)
        }
    };
    let mut response = (status, axum::Json(order)).into_response();
    if status == StatusCode::OK {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(held(hold, response).await)
}

async fn show(State(shop): State<Shop>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Problem> {
    let hold = shop.admit(&headers).await?;
    let order = {
        let mut book = shop.book.lock().expect("shop book");
        let ship_after = shop.options.ship_after;
        let stored = book.orders.iter_mut().find(|s| s.order.id == id).ok_or_else(no_order)?;
        advanced(stored, ship_after).clone()
    };
    Ok(held(hold, axum::Json(order).into_response()).await)
}

#[derive(Debug, Deserialize)]
struct Filter {
    reference: Option<String>,
}

async fn find(
    State(shop): State<Shop>,
    headers: HeaderMap,
    query: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let hold = shop.admit(&headers).await?;
    let Query(filter) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let Some(reference) = filter.reference.filter(|r| !r.is_empty()) else {
        return Err(Problem::field("reference", "reference is required"));
    };
    let orders: Vec<Order> = {
        let mut book = shop.book.lock().expect("shop book");
        let ship_after = shop.options.ship_after;
        book.orders
            .iter_mut()
            .filter(|s| s.order.reference == reference)
            .map(|s| advanced(s, ship_after).clone())
            .collect()
    };
    Ok(held(hold, axum::Json(json!({ "orders": orders })).into_response()).await)
}

async fn cancel(State(shop): State<Shop>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Problem> {
    let hold = shop.admit(&headers).await?;
    let order = {
        let mut book = shop.book.lock().expect("shop book");
        let ship_after = shop.options.ship_after;
        let stored = book.orders.iter_mut().find(|s| s.order.id == id).ok_or_else(no_order)?;
        let status = advanced(stored, ship_after).status.clone();
        match status.as_str() {
            "shipped" => {
                return Err(Problem::new(StatusCode::CONFLICT, "shipped", "a shipped order cannot be cancelled"));
            }
            "accepted" => {
                stored.order.status = "cancelled".into();
                stored.order.cancelled_at = Some(now());
            }
            _ => {}
        }
        stored.order.clone()
    };
    Ok(held(hold, axum::Json(order).into_response()).await)
}

fn no_order() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no such order")
}

/// Faults to set (`POST /_faults`, or [`Shop::set_faults`] in process);
/// what is left out stays as it was.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// Answer every call this many ms late (at most 60 s).
    pub delay_ms: Option<u64>,
    /// Answer the next N calls `503` before doing anything.
    pub fail_next: Option<u32>,
    /// Do the next N calls, then hold their answers for `hold_ms`.
    pub timeout_next: Option<u32>,
    /// How long held answers wait (default 30 s, at most 120 s).
    pub hold_ms: Option<u64>,
}

async fn faults(
    State(shop): State<Shop>,
    headers: HeaderMap,
    body: Result<axum::Json<FaultRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    shop.authorized(&headers)?;
    let axum::Json(asked) = body.map_err(undecoded)?;
    Ok(axum::Json(shop.set_faults(&asked)).into_response())
}
