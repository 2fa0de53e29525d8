//! Provisio's HTTP API: JSON over axum, errors as RFC 9457 problem
//! documents with field paths.
//!
//! - [`staff`]: `/api/v1`, staff tokens with scopes;
//! - [`client`]: `/client/v1`, client sessions, and the client area's hand-off;
//! - [`billing`]: events from billing systems (staff token or signature) and Stripe;
//! - [`auth`]: who is calling and what they may do.
//!
//! Handlers parse and answer; everything they do is an [`Engine`] call.
//! Secrets never appear in an answer: configurations show secret fields as
//! `"[REDACTED]"`, and stored attempts are redacted before they are stored.

mod auth;
mod billing;
mod client;
pub mod openapi;
mod problem;
pub mod server;
mod staff;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use provisio_engine::principal::Principal;
use provisio_engine::{Engine, EngineError};
use serde_json::{Value, json};

pub use problem::Problem;

#[derive(Clone)]
struct AppState {
    engine: Engine,
    /// Credentials recently found live, by digest: the caller and when it
    /// was checked (see [`auth`]).
    principals: Arc<RwLock<HashMap<String, (Principal, Instant)>>>,
    /// Where clients reach this server (`https://provisio.example.com`), for
    /// hand-off links; without it they are paths.
    public_url: Option<String>,
}

/// How the router is set up.
#[derive(Debug, Clone, Default)]
pub struct RouterOptions {
    /// Where clients reach this server, for absolute hand-off links and
    /// `Secure` cookies when it is `https://`.
    pub public_url: Option<String>,
    /// Other routes served beside the API (the web console), under the same
    /// request ids, body limit and error handling.
    pub pages: Option<Router>,
}

/// The API router.
pub fn router(engine: Engine) -> Router {
    router_with(engine, RouterOptions::default())
}

/// The API router, with options.
pub fn router_with(engine: Engine, options: RouterOptions) -> Router {
    let state = AppState { engine, principals: Arc::default(), public_url: options.public_url };
    let not_found = || async { Problem::new(StatusCode::NOT_FOUND, "No such endpoint") };
    let api = staff::routes()
        .route("/events", post(billing::ingest))
        .route("/sources/{name}/stripe", post(billing::stripe))
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::identify_staff));
    let client_api = client::routes()
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::identify_client));
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::identify_staff));
    Router::new()
        .merge(metrics)
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_document))
        .route("/client/handoff", get(client::handoff))
        .nest("/api/v1", api)
        .nest("/client/v1", client_api)
        .with_state(state)
        .merge(options.pages.unwrap_or_default())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(problems_only))
        .layer(middleware::from_fn(request_id))
}

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// Gives every request an id: the caller's `X-Request-Id` when it is short
/// and plain, else a new one. It is answered back and set on the request's
/// log span, so a log line can be matched to a request.
async fn request_id(mut request: Request, next: Next) -> Response {
    use tracing::Instrument;
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned);
    let id = given.unwrap_or_else(|| provisio_engine::vault::random_token("req_")[..24].to_owned());
    let value = HeaderValue::from_str(&id).expect("checked characters");
    request.headers_mut().insert("x-request-id", value.clone());
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(status = response.status().as_u16(), ms = started.elapsed().as_millis() as u64, "answered")
    });
    response.headers_mut().insert("x-request-id", value);
    response
}

/// Every error answer is a problem document, also those axum makes itself
/// (413 body too large, 405 method not allowed, 400 bad path).
async fn problems_only(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    // Pages (the console) answer their errors as pages.
    let is_page = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem || is_page {
        return response;
    }
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("The body is larger than {} KiB", MAX_BODY / 1024),
        StatusCode::METHOD_NOT_ALLOWED => "This endpoint does not answer that method".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "The body must be application/json".to_owned(),
        other => other.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let mut problem = Problem::new(status, detail).into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}

type ApiResult = Result<Response, Problem>;

fn ok(status: StatusCode, value: impl serde::Serialize) -> ApiResult {
    Ok((status, Json(value)).into_response())
}

/// Marks an answer as never to be cached (it holds a secret shown once).
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Parses a JSON body, answering a problem that says where it broke.
fn body(bytes: &Bytes, headers: &HeaderMap) -> Result<Value, Problem> {
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if !content_type.starts_with("application/json") {
        return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "The body must be application/json"));
    }
    serde_json::from_slice(bytes).map_err(|err| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            format!("The body is not valid JSON (line {}, column {})", err.line(), err.column()),
        )
    })
}

/// A day (`2026-11-30`, the start of it, UTC) or a time (RFC 3339), in Unix milliseconds.
fn parse_day(text: &str, field: &str) -> Result<i64, Problem> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| Problem::from(EngineError::invalid(field, "must be a day (2026-11-30) or an RFC 3339 time")))
}

fn id(text: &str, what: &str) -> Result<i64, Problem> {
    text.parse().map_err(|_| Problem::new(StatusCode::NOT_FOUND, format!("No {what} {text}")))
}

/// Query parameters: typed, with unknown keys and bad values named.
struct Params(HashMap<String, String>);

impl Params {
    fn new(query: HashMap<String, String>, allowed: &[&str]) -> Result<Params, Problem> {
        if let Some(key) = query.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Problem::from(EngineError::invalid(
                format!("?{key}"),
                format!("is not a filter here (use {})", allowed.join(", ")),
            )));
        }
        Ok(Params(query))
    }

    fn text(&self, key: &str, choices: Option<&[&str]>) -> Result<Option<String>, Problem> {
        match (self.0.get(key), choices) {
            (Some(value), Some(choices)) if !choices.contains(&value.as_str()) => Err(Problem::from(
                EngineError::invalid(format!("?{key}"), format!("must be one of {}", choices.join(", "))),
            )),
            (value, _) => Ok(value.cloned()),
        }
    }

    fn number(&self, key: &str) -> Result<Option<i64>, Problem> {
        self.0
            .get(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| Problem::from(EngineError::invalid(format!("?{key}"), "must be an integer")))
            })
            .transpose()
    }

    fn limit(&self) -> Result<i64, Problem> {
        self.limit_at_most(1000)
    }

    fn limit_at_most(&self, most: i64) -> Result<i64, Problem> {
        let limit = self.number("limit")?.unwrap_or(most.min(100));
        if !(1..=most).contains(&limit) {
            return Err(Problem::from(EngineError::invalid("?limit", format!("must be between 1 and {most}"))));
        }
        Ok(limit)
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    // Read-only: a health probe never queues behind (or adds to) the writer's work.
    match state.engine.queries().health().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format, for a scraper holding a `read` token.
async fn metrics(_: auth::Staff<auth::Read>, State(state): State<AppState>) -> ApiResult {
    let text = state.engine.queries().metrics_text().await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response())
}

async fn openapi_document(State(state): State<AppState>) -> Response {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(|| openapi::document(state.engine.registry())).clone()).into_response()
}

pub(crate) const SERVICE_STATUSES: &[&str] =
    &["pending", "provisioning", "active", "suspended", "terminated", "failed"];
pub(crate) const JOB_STATES: &[&str] = &["queued", "running", "retrying", "succeeded", "failed", "skipped"];
