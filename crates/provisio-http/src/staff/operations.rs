//! Staff: services, jobs and actions.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use super::views::{self, AttemptView, EventView, HistoryView, JobView, ServiceDetailView, ServiceView};
use crate::auth::{Operate, Read, Staff};
use crate::{ApiResult, AppState, JOB_STATES, Params, Problem, SERVICE_STATUSES, body, id, ok};
use provisio_store::{jobs, services};

pub(super) async fn list_services(
    _: Staff<Read>,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["status", "product", "client_id", "configuration_id", "limit", "before"])?;
    let product_id = match params.text("product", None)? {
        Some(key) => Some(state.engine.queries().product(&key).await?.id),
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
    ok(StatusCode::OK, views::all::<_, ServiceView>(state.engine.queries().services(filter).await?))
}

pub(super) async fn service(_: Staff<Read>, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    ok(StatusCode::OK, ServiceDetailView::from(state.engine.queries().service_detail(id(&key, "service")?).await?))
}

/// What a service's paged listing shows.
#[derive(Clone, Copy)]
enum ServicePage {
    /// Its events, payloads included (at most 100 a page: payloads are large).
    Events,
    /// Its history.
    History,
}

pub(super) async fn service_events(
    _: Staff<Read>,
    state: State<AppState>,
    key: Path<String>,
    query: Query<HashMap<String, String>>,
) -> ApiResult {
    service_page(state, key, query, ServicePage::Events).await
}

pub(super) async fn service_history(
    _: Staff<Read>,
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
    match page {
        ServicePage::Events => ok(
            StatusCode::OK,
            views::all::<_, EventView>(state.engine.queries().service_events(service_id, before, limit).await?),
        ),
        ServicePage::History => ok(
            StatusCode::OK,
            views::all::<_, HistoryView>(state.engine.queries().service_history(service_id, before, limit).await?),
        ),
    }
}

pub(super) async fn action(
    State(state): State<AppState>,
    staff: Staff<Operate>,
    Path((key, function)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let outcome = state
        .engine
        .actions()
        .run_action(&staff.principal, id(&key, "service")?, &function, body(&bytes, &headers)?)
        .await?;
    ok(StatusCode::OK, json!({"job": JobView::from(outcome.job), "envelope": outcome.envelope}))
}

pub(super) async fn list_jobs(
    _: Staff<Read>,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["status", "service_id", "event_id", "limit", "before"])?;
    let filter = jobs::JobFilter {
        state: params.text("status", Some(JOB_STATES))?,
        service_id: params.number("service_id")?,
        event_id: params.number("event_id")?,
        before_id: params.number("before")?,
        limit: params.limit()?,
    };
    ok(StatusCode::OK, views::all::<_, JobView>(state.engine.queries().jobs(filter).await?))
}

/// `GET /api/v1/drift`: differences sync found, newest first (`?open=false` for all).
pub(super) async fn list_drift(
    _: Staff<Read>,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["open", "limit"])?;
    let open = params.text("open", Some(&["true", "false"]))?.as_deref() != Some("false");
    ok(StatusCode::OK, views::all::<_, views::DriftView>(state.engine.queries().drifts(open, params.limit()?).await?))
}

pub(super) async fn job(_: Staff<Read>, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let (job, attempts) = state.engine.queries().job(id(&key, "job")?).await?;
    ok(StatusCode::OK, json!({"job": JobView::from(job), "attempts": views::all::<_, AttemptView>(attempts)}))
}

pub(super) async fn retry_job(
    State(state): State<AppState>,
    staff: Staff<Operate>,
    Path(key): Path<String>,
) -> ApiResult {
    ok(StatusCode::OK, JobView::from(state.engine.actions().retry_job(&staff.actor(), id(&key, "job")?).await?))
}

/// Credentials the client must know, revealed to staff (audited).
pub(super) async fn reveal_credentials(
    staff: Staff<Operate>,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult {
    let revealed = state.engine.actions().reveal_credentials(&staff.principal, id(&key, "service")?).await?;
    Ok(crate::no_store(ok(StatusCode::OK, json!({"credentials": revealed}))?))
}

/// Opens a session for a client (the billing system's single sign-on into the client area).
pub(super) async fn open_client_session(
    staff: Staff<Operate>,
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let opened = state
        .engine
        .access()
        .open_client_session(&staff.actor(), id(&key, "client")?, &body(&bytes, &headers)?)
        .await?;
    let handoff_path = format!("/client/handoff?code={}", opened.handoff_code);
    let handoff_url = match &state.public_url {
        Some(base) => format!("{}{handoff_path}", base.trim_end_matches('/')),
        None => handoff_path,
    };
    let answer = json!({
        "session_id": opened.session.id,
        "client_id": opened.session.client_id,
        "token": opened.token,
        "expires_at": opened.session.expires_at,
        "handoff_url": handoff_url,
        "handoff_expires_at": opened.session.handoff_expires_at,
    });
    Ok(crate::no_store(ok(StatusCode::CREATED, answer)?))
}

/// Ends every session of a client.
pub(super) async fn end_client_sessions(
    staff: Staff<Operate>,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult {
    let ended = state.engine.access().end_client_sessions(&staff.actor(), id(&key, "client")?).await?;
    ok(StatusCode::OK, json!({"ended": ended}))
}

/// The help desk's view of a service (live answers reused for 30 seconds).
pub(super) async fn service_summary(
    staff: Staff<Read>,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult {
    ok(StatusCode::OK, state.engine.queries().service_summary(&staff.principal, id(&key, "service")?).await?)
}

/// `GET /api/v1/reports/{name}?from=&to=&format=json|csv`.
pub(super) async fn report(
    _: Staff<Read>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    let kind = provisio_engine::reports::ReportKind::parse(&name).ok_or_else(|| {
        let names: Vec<&str> = provisio_engine::reports::ReportKind::ALL.iter().map(|k| k.name()).collect();
        Problem::new(StatusCode::NOT_FOUND, format!("No report {name} (there are {})", names.join(", ")))
    })?;
    let params = Params::new(query, &["from", "to", "format"])?;
    let day_ms = 86_400_000;
    let to = match params.text("to", None)? {
        Some(text) => crate::parse_day(&text, "?to")?,
        // The end of today.
        None => (provisio_store::now_ms() / day_ms + 1) * day_ms,
    };
    let from = match params.text("from", None)? {
        Some(text) => crate::parse_day(&text, "?from")?,
        None => to - 30 * day_ms,
    };
    let wants_csv = params.text("format", Some(&["json", "csv"]))?.as_deref() == Some("csv")
        || headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("text/csv"));
    let report = state.engine.queries().report(kind, from, to).await?;
    if wants_csv {
        let disposition = format!("attachment; filename=\"{}.csv\"", kind.name());
        return Ok((
            StatusCode::OK,
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (axum::http::header::CONTENT_DISPOSITION, disposition),
            ],
            report.to_csv(),
        )
            .into_response());
    }
    ok(StatusCode::OK, report.to_json(from, to))
}
