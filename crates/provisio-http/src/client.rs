//! The client API, `/client/v1`: a client's own services and what the
//! blueprint lets clients do with them. Every answer is a view built here
//! for clients (never a stored row): no secret, no staff diagnostics, no
//! other client's anything. Another client's service is `404`, exactly as a
//! service that does not exist.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use provisio_engine::actions::ActionOutcome;
use provisio_engine::queries::ClientService;
use serde_json::{Map, Value, json};

use crate::auth::{CLIENT_COOKIE, ClientCaller};
use crate::{ApiResult, AppState, Params, Problem, body, id, no_store, ok};

/// The client routes (every one behind [`crate::auth::identify_client`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(services))
        .route("/services/{id}", get(service))
        .route("/services/{id}/info", get(info))
        .route("/services/{id}/usage", get(usage))
        .route("/services/{id}/login", get(login))
        .route("/services/{id}/password", post(password))
        .route("/services/{id}/credentials", post(credentials))
        .route("/services/{id}/actions/{function}", post(action))
}

/// An action's outcome as the client sees it: the job's id and state, and
/// the provider's answer without staff diagnostics.
fn outcome_view(outcome: &ActionOutcome) -> Value {
    json!({
        "job_id": outcome.job.id,
        "state": outcome.job.state,
        "result": outcome.envelope.as_ref().map(|e| e.for_client()),
    })
}

async fn services(
    client: ClientCaller,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["limit", "before"])?;
    let found =
        state.engine.queries().client_services(client.client_id, params.limit()?, params.number("before")?).await?;
    let views: Vec<ClientService> =
        found.into_iter().map(|(s, p)| ClientService::of(state.engine.registry(), s, p)).collect();
    ok(StatusCode::OK, views)
}

async fn service(client: ClientCaller, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let (service, product) = state.engine.queries().client_service(client.client_id, id(&key, "service")?).await?;
    ok(StatusCode::OK, ClientService::of(state.engine.registry(), service, product))
}

async fn run(client: &ClientCaller, state: &AppState, key: &str, function: &str, args: Value) -> ApiResult {
    let outcome = state.engine.actions().run_action(&client.principal, id(key, "service")?, function, args).await?;
    ok(StatusCode::OK, outcome_view(&outcome))
}

async fn info(client: ClientCaller, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    run(&client, &state, &key, "get_info", json!({})).await
}

async fn usage(client: ClientCaller, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    run(&client, &state, &key, "get_usage", json!({})).await
}

async fn action(
    client: ClientCaller,
    State(state): State<AppState>,
    Path((key, function)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let args = body(&bytes, &headers)?;
    let outcome = run(&client, &state, &key, &function, args).await?;
    Ok(no_store(outcome))
}

/// Single sign-on: `302` to the provider's one-time login link, or a page
/// that posts the provider's form fields to it.
async fn login(client: ClientCaller, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let outcome = state.engine.actions().login(&client.principal, id(&key, "service")?).await?;
    let envelope = outcome.envelope.ok_or_else(|| Problem::new(StatusCode::BAD_GATEWAY, "The login did not answer"))?;
    let data = match (envelope.is_ok(), envelope.data) {
        (true, Some(data)) => data,
        _ => return Err(Problem::new(StatusCode::BAD_GATEWAY, envelope.message.to_string())),
    };
    let url = data["login_url"].as_str().unwrap_or_default();
    let location = HeaderValue::from_str(url)
        .map_err(|_| Problem::new(StatusCode::BAD_GATEWAY, "The login link is not a valid address"))?;
    let mut response = match data.get("post_fields").and_then(Value::as_object) {
        None => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Some(fields) => post_form(url, fields),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The link is a credential: it must not leak to the panel's referrer logs.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(response)
}

/// A page that posts `fields` to `url` at once (the panel's sign-on form).
fn post_form(url: &str, fields: &Map<String, Value>) -> Response {
    let nonce = provisio_engine::vault::random_token("");
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            format!(r#"<input type="hidden" name="{}" value="{}">"#, escape(k), escape(&value))
        })
        .collect();
    let html = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Logging in…</title></head><body>
<form method="post" action="{action}">{inputs}<noscript><button type="submit">Continue to the control panel</button></noscript></form>
<script nonce="{nonce}">document.forms[0].submit();</script></body></html>"#,
        action = escape(url),
    );
    let origin = url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    let csp = format!("default-src 'none'; script-src 'nonce-{nonce}'; form-action {origin}; base-uri 'none'");
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// Escapes text for an HTML attribute or text node. Five characters do not
/// justify a template engine here; the console (its own issue) brings one.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Sets the password the client logs in with: the one in the body, or a
/// generated one shown in this answer only. Neither is stored or echoed.
async fn password(
    client: ClientCaller,
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let input = body(&bytes, &headers)?;
    let object = input
        .as_object()
        .ok_or_else(|| Problem::from(provisio_engine::EngineError::invalid("/", "must be a JSON object")))?;
    if let Some(other) = object.keys().find(|k| *k != "password") {
        return Err(
            provisio_engine::EngineError::invalid(format!("/{other}"), "is not accepted here (only password)").into()
        );
    }
    let password = match object.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(provisio_engine::EngineError::invalid("/password", "must be a string").into()),
    };
    let change = state.engine.actions().change_password(&client.principal, id(&key, "service")?, password).await?;
    let mut answer = outcome_view(&change.outcome);
    if let Some(generated) = change.generated_password {
        answer["generated_password"] = json!(generated);
    }
    Ok(no_store(ok(StatusCode::OK, answer)?))
}

/// Credentials the provider answered at setup (a generated password, a
/// private key), revealed to their client; each reveal is audited.
async fn credentials(client: ClientCaller, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let revealed = state.engine.actions().reveal_credentials(&client.principal, id(&key, "service")?).await?;
    Ok(no_store(ok(StatusCode::OK, json!({"credentials": revealed}))?))
}

/// `GET /client/handoff?code=…`: redeems a hand-off code once and opens the
/// client area in this browser (a session cookie), then goes there.
pub async fn handoff(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> ApiResult {
    let code = query.get("code").map(String::as_str).unwrap_or_default();
    let Some((token, session)) = state.engine.access().redeem_handoff(code).await? else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "This sign-in link is not valid: it works once, for two minutes; ask for a new one",
        ));
    };
    let max_age = ((session.expires_at - provisio_store::now_ms()) / 1000).max(0);
    let secure = state.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let cookie = format!(
        "{CLIENT_COOKIE}={token}; Path=/client; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/client")]).into_response();
    let headers = response.headers_mut();
    headers.insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("a token is header-safe"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(response)
}
