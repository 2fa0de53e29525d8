//! The staff HTTP API: JSON over axum, bearer tokens, errors as RFC 9457
//! problem documents with field paths.
//!
//! Handlers parse and answer; everything they do is an [`Engine`] call.
//! Secrets never appear in an answer: configurations show secret fields as
//! `"[REDACTED]"`, and stored attempts are redacted before they are stored.

pub mod openapi;
mod problem;
pub mod server;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use provisio_engine::{Engine, EngineError};
use provisio_store::{events, jobs, products, services};
use serde_json::{Value, json};

pub use problem::Problem;

#[derive(Clone)]
struct AppState {
    engine: Engine,
    /// Tokens recently found live, by digest: name and when it was checked.
    /// An entry is trusted for [`TOKEN_RECHECK`], so a revoked token stops
    /// working within that time without a database read per request.
    known_tokens: Arc<RwLock<HashMap<String, (String, Instant)>>>,
}

/// How long a token found live is trusted before it is looked up again.
const TOKEN_RECHECK: Duration = Duration::from_secs(1);

/// Who made a request (the token's name), for the audit log.
#[derive(Clone)]
struct Actor(String);

/// The API router.
pub fn router(engine: Engine) -> Router {
    let state = AppState { engine, known_tokens: Arc::default() };
    let api = Router::new()
        .route("/blueprints", get(blueprints))
        .route("/blueprints/{id}", get(blueprint))
        .route("/providers", get(providers))
        .route("/providers/{blueprint}/{provider}", get(provider))
        .route("/configurations", get(configurations).post(create_configuration))
        .route("/configurations/{id}", get(configuration).patch(update_configuration).delete(delete_configuration))
        .route("/configurations/{id}/test", post(test_configuration))
        .route("/products", get(list_products).post(create_product))
        .route("/products/{key}", get(product).patch(update_product))
        .route("/clients", get(clients).post(create_client))
        .route("/clients/{id}", get(client))
        .route("/services", get(list_services))
        .route("/services/{id}", get(service))
        .route("/services/{id}/events", get(service_events))
        .route("/services/{id}/history", get(service_history))
        .route("/services/{id}/actions/{function}", post(action))
        .route("/events", post(ingest))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/retry", post(retry_job))
        .route("/audit", get(audit))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", axum::routing::delete(revoke_token))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "No such endpoint") })
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_document))
        .nest("/api/v1", api)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(problems_only))
        .with_state(state)
}

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// Every error answer is a problem document, also those axum makes itself
/// (413 body too large, 405 method not allowed, 400 bad path).
async fn problems_only(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
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

async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Problem::new(StatusCode::UNAUTHORIZED, "A staff token is required (Authorization: Bearer TOKEN)")
            .into_response();
    };
    let digest = state.engine.vault().digest(token);
    let cached = state
        .known_tokens
        .read()
        .expect("token cache lock")
        .get(&digest)
        .filter(|(_, checked)| checked.elapsed() < TOKEN_RECHECK)
        .map(|(name, _)| name.clone());
    let name = match cached {
        Some(name) => Some(name),
        None => match state.engine.authenticate(token).await {
            Ok(Some(found)) => {
                let mut cache = state.known_tokens.write().expect("token cache lock");
                // Entries of revoked or unused tokens do not pile up.
                cache.retain(|_, (_, checked)| checked.elapsed() < TOKEN_RECHECK);
                cache.insert(digest, (found.name.clone(), Instant::now()));
                Some(found.name)
            }
            Ok(None) => {
                state.known_tokens.write().expect("token cache lock").remove(&digest);
                None
            }
            Err(err) => return Problem::from(err).into_response(),
        },
    };
    match name {
        Some(name) => {
            request.extensions_mut().insert(Actor(format!("token:{name}")));
            next.run(request).await
        }
        None => Problem::new(StatusCode::UNAUTHORIZED, "The staff token is not valid").into_response(),
    }
}

type ApiResult = Result<Response, Problem>;

fn ok(status: StatusCode, value: impl serde::Serialize) -> ApiResult {
    Ok((status, Json(value)).into_response())
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
    match state.engine.store().check().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}

async fn openapi_document(State(state): State<AppState>) -> Response {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(|| openapi::document(state.engine.registry())).clone()).into_response()
}

async fn blueprints(State(state): State<AppState>) -> ApiResult {
    ok(StatusCode::OK, state.engine.registry().blueprints().iter().map(|b| b.to_json()).collect::<Vec<_>>())
}

async fn blueprint(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let blueprint =
        state.engine.registry().blueprint(&key).map_err(|e| Problem::new(StatusCode::NOT_FOUND, e.to_string()))?;
    ok(StatusCode::OK, blueprint.to_json())
}

async fn providers(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let params = Params::new(query, &["blueprint"])?;
    let blueprint = params.text("blueprint", None)?;
    let list: Vec<Value> =
        state.engine.registry().providers(blueprint.as_deref()).iter().map(|p| p.to_json()).collect();
    ok(StatusCode::OK, list)
}

async fn provider(State(state): State<AppState>, Path((blueprint, provider)): Path<(String, String)>) -> ApiResult {
    let entry = state
        .engine
        .registry()
        .provider(&format!("{blueprint}/{provider}"))
        .map_err(|e| Problem::new(StatusCode::NOT_FOUND, e.to_string()))?;
    ok(StatusCode::OK, entry.to_json())
}

async fn configurations(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let params = Params::new(query, &["blueprint"])?;
    ok(StatusCode::OK, state.engine.configurations(params.text("blueprint", None)?).await?)
}

async fn create_configuration(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let created = state.engine.create_configuration(&actor.0.0, &body(&bytes, &headers)?).await?;
    ok(StatusCode::CREATED, created)
}

async fn configuration(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    ok(StatusCode::OK, state.engine.configuration_view(id(&key, "configuration")?).await?)
}

async fn update_configuration(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let updated =
        state.engine.update_configuration(&actor.0.0, id(&key, "configuration")?, &body(&bytes, &headers)?).await?;
    ok(StatusCode::OK, updated)
}

async fn delete_configuration(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    Path(key): Path<String>,
) -> ApiResult {
    state.engine.delete_configuration(&actor.0.0, id(&key, "configuration")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn test_configuration(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    Path(key): Path<String>,
) -> ApiResult {
    ok(StatusCode::OK, state.engine.test_configuration(&actor.0.0, id(&key, "configuration")?).await?)
}

async fn list_products(State(state): State<AppState>) -> ApiResult {
    ok(StatusCode::OK, state.engine.products().await?)
}

async fn create_product(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    ok(StatusCode::CREATED, state.engine.create_product(&actor.0.0, &body(&bytes, &headers)?).await?)
}

async fn product(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    ok(StatusCode::OK, state.engine.product(&key).await?)
}

async fn update_product(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    ok(StatusCode::OK, state.engine.update_product(&actor.0.0, &key, &body(&bytes, &headers)?).await?)
}

async fn clients(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let params = Params::new(query, &["limit", "before"])?;
    ok(StatusCode::OK, state.engine.clients(params.limit()?, params.number("before")?).await?)
}

async fn create_client(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    ok(StatusCode::CREATED, state.engine.create_client(&actor.0.0, &body(&bytes, &headers)?).await?)
}

async fn client(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let (client, services) = state.engine.client(id(&key, "client")?).await?;
    ok(StatusCode::OK, json!({"client": client, "services": services}))
}

pub(crate) const SERVICE_STATUSES: &[&str] =
    &["pending", "provisioning", "active", "suspended", "terminated", "failed"];
pub(crate) const JOB_STATES: &[&str] = &["queued", "running", "retrying", "succeeded", "failed", "skipped"];

async fn list_services(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let params = Params::new(query, &["status", "product", "client_id", "configuration_id", "limit", "before"])?;
    let product_id = match params.text("product", None)? {
        Some(key) => Some(state.engine.product(&key).await?.id),
        None => None,
    };
    let filter = services::ServiceFilter {
        status: params.text("status", Some(SERVICE_STATUSES))?,
        product_id,
        client_id: params.number("client_id")?,
        configuration_id: params.number("configuration_id")?,
        before_id: params.number("before")?,
        limit: params.limit()?,
    };
    let list = state
        .engine
        .store()
        .read(move |conn| Box::pin(async move { Ok::<_, EngineError>(services::list(conn, &filter).await?) }))
        .await?;
    ok(StatusCode::OK, list)
}

/// How much of a service's jobs, history and events its detail shows; the
/// rest is paged (`/services/{id}/events`, `/history`, `/jobs?service_id=`),
/// so one service's past never makes an answer unbounded.
const DETAIL_JOBS: i64 = 50;
const DETAIL_HISTORY: i64 = 50;
const DETAIL_EVENTS: i64 = 20;

async fn service(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let service_id = id(&key, "service")?;
    let detail = state
        .engine
        .store()
        .read(move |conn| {
            Box::pin(async move {
                let service = services::get(conn, service_id)
                    .await?
                    .ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))?;
                let product = products::get(conn, service.product_id).await?;
                let client = provisio_store::clients::get(conn, service.client_id).await?;
                let filter =
                    jobs::JobFilter { service_id: Some(service_id), limit: DETAIL_JOBS + 1, ..Default::default() };
                let mut service_jobs = jobs::list(conn, &filter).await?;
                let more_jobs = service_jobs.len() as i64 > DETAIL_JOBS;
                service_jobs.truncate(DETAIL_JOBS as usize);
                service_jobs.reverse();
                let mut history = services::history_page(conn, service_id, None, DETAIL_HISTORY + 1).await?;
                let more_history = history.len() as i64 > DETAIL_HISTORY;
                history.truncate(DETAIL_HISTORY as usize);
                history.reverse();
                let mut recent = events::page_for_service(conn, service_id, None, DETAIL_EVENTS + 1).await?;
                let more_events = recent.len() as i64 > DETAIL_EVENTS;
                recent.truncate(DETAIL_EVENTS as usize);
                recent.reverse();
                // Payloads are fetched one page at a time from /events.
                let recent: Vec<Value> = recent
                    .into_iter()
                    .map(|e| {
                        json!({"id": e.id, "external_id": e.external_id, "type": e.event_type,
                               "occurred_at": e.occurred_at, "received_at": e.received_at})
                    })
                    .collect();
                Ok::<_, EngineError>(json!({
                    "service": service,
                    "product": product.map(|p| p.slug),
                    "client": client,
                    "jobs": service_jobs,
                    "history": history,
                    "events": recent,
                    "more": {"jobs": more_jobs, "history": more_history, "events": more_events},
                }))
            })
        })
        .await?;
    ok(StatusCode::OK, detail)
}

/// What a service's paged listing shows.
#[derive(Clone, Copy)]
enum ServicePage {
    /// Its events, payloads included (at most 100 a page: payloads are large).
    Events,
    /// Its history.
    History,
}

async fn service_events(state: State<AppState>, key: Path<String>, query: Query<HashMap<String, String>>) -> ApiResult {
    service_page(state, key, query, ServicePage::Events).await
}

async fn service_history(
    state: State<AppState>,
    key: Path<String>,
    query: Query<HashMap<String, String>>,
) -> ApiResult {
    service_page(state, key, query, ServicePage::History).await
}

/// A page of a service's events or history, newest first.
async fn service_page(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    page: ServicePage,
) -> ApiResult {
    let service_id = id(&key, "service")?;
    let params = Params::new(query, &["limit", "before"])?;
    let most = match page {
        ServicePage::Events => 100,
        ServicePage::History => 1000,
    };
    let (before, limit) = (params.number("before")?, params.limit_at_most(most)?);
    let rows = state
        .engine
        .store()
        .read(move |conn| {
            Box::pin(async move {
                services::get(conn, service_id)
                    .await?
                    .ok_or_else(|| EngineError::NotFound(format!("no service {service_id}")))?;
                let rows = match page {
                    ServicePage::Events => json!(events::page_for_service(conn, service_id, before, limit).await?),
                    ServicePage::History => json!(services::history_page(conn, service_id, before, limit).await?),
                };
                Ok::<_, EngineError>(rows)
            })
        })
        .await?;
    ok(StatusCode::OK, rows)
}

async fn action(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    Path((key, function)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let outcome = state.engine.run_action(&actor.0.0, id(&key, "service")?, &function, body(&bytes, &headers)?).await?;
    ok(StatusCode::OK, outcome)
}

async fn ingest(State(state): State<AppState>, headers: HeaderMap, bytes: Bytes) -> ApiResult {
    let accepted = state.engine.ingest(&body(&bytes, &headers)?).await?;
    ok(StatusCode::ACCEPTED, accepted)
}

async fn list_jobs(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let params = Params::new(query, &["status", "service_id", "event_id", "limit", "before"])?;
    let filter = jobs::JobFilter {
        state: params.text("status", Some(JOB_STATES))?,
        service_id: params.number("service_id")?,
        event_id: params.number("event_id")?,
        before_id: params.number("before")?,
        limit: params.limit()?,
    };
    let list = state
        .engine
        .store()
        .read(move |conn| Box::pin(async move { Ok::<_, EngineError>(jobs::list(conn, &filter).await?) }))
        .await?;
    ok(StatusCode::OK, list)
}

async fn job(State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let (job, attempts) = state.engine.job(id(&key, "job")?).await?;
    ok(StatusCode::OK, json!({"job": job, "attempts": attempts}))
}

async fn retry_job(State(state): State<AppState>, actor: axum::Extension<Actor>, Path(key): Path<String>) -> ApiResult {
    ok(StatusCode::OK, state.engine.retry_job(&actor.0.0, id(&key, "job")?).await?)
}

async fn audit(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let params = Params::new(query, &["limit", "before"])?;
    let (limit, before) = (params.limit()?, params.number("before")?);
    let list = state
        .engine
        .store()
        .read(move |conn| {
            Box::pin(async move { Ok::<_, EngineError>(provisio_store::audit::list(conn, limit, before).await?) })
        })
        .await?;
    ok(StatusCode::OK, list)
}

async fn list_tokens(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let params = Params::new(query, &["limit", "before"])?;
    ok(StatusCode::OK, state.engine.tokens(params.limit()?, params.number("before")?).await?)
}

async fn create_token(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    ok(StatusCode::CREATED, state.engine.create_token(&actor.0.0, &body(&bytes, &headers)?).await?)
}

async fn revoke_token(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    Path(key): Path<String>,
) -> ApiResult {
    ok(StatusCode::OK, state.engine.revoke_token(&actor.0.0, id(&key, "token")?).await?)
}
