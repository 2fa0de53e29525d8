//! Staff: the audit log and staff tokens.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::views::{AuditView, DeliveryView, SourceView, StaffUserView, TokenView, WebhookView, WithSecret, all};
use crate::auth::{Admin, Read, Staff};
use crate::{ApiResult, AppState, Params, body, id, ok};

pub(super) async fn audit(
    _: Staff<Read>,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["limit", "before"])?;
    let (limit, before) = (params.limit()?, params.number("before")?);
    ok(StatusCode::OK, all::<_, AuditView>(state.engine.queries().audit(limit, before).await?))
}

pub(super) async fn list_tokens(
    _: Staff<Admin>,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["limit", "before"])?;
    ok(
        StatusCode::OK,
        all::<_, TokenView>(state.engine.queries().tokens(params.limit()?, params.number("before")?).await?),
    )
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    staff: Staff<Admin>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let created = state.engine.access().create_token(&staff.actor(), &body(&bytes, &headers)?).await?;
    ok(StatusCode::CREATED, WithSecret::new(TokenView::from(created.token), "secret", Some(created.secret)))
}

pub(super) async fn revoke_token(
    State(state): State<AppState>,
    staff: Staff<Admin>,
    Path(key): Path<String>,
) -> ApiResult {
    ok(StatusCode::OK, TokenView::from(state.engine.access().revoke_token(&staff.actor(), id(&key, "token")?).await?))
}

pub(super) async fn list_sources(_: Staff<Admin>, State(state): State<AppState>) -> ApiResult {
    ok(StatusCode::OK, all::<_, SourceView>(state.engine.queries().sources().await?))
}

pub(super) async fn create_source(
    staff: Staff<Admin>,
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let created = state.engine.catalog().create_source(&staff.actor(), &body(&bytes, &headers)?).await?;
    let answer = WithSecret::new(SourceView::from(created.source), "secret", created.secret);
    Ok(crate::no_store(ok(StatusCode::CREATED, answer)?))
}

pub(super) async fn source(_: Staff<Admin>, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    ok(StatusCode::OK, SourceView::from(state.engine.queries().source(id(&key, "event source")?).await?))
}

pub(super) async fn update_source(
    staff: Staff<Admin>,
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let updated = state
        .engine
        .catalog()
        .update_source(&staff.actor(), id(&key, "event source")?, &body(&bytes, &headers)?)
        .await?;
    ok(StatusCode::OK, SourceView::from(updated))
}

pub(super) async fn delete_source(
    staff: Staff<Admin>,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult {
    state.engine.catalog().delete_source(&staff.actor(), id(&key, "event source")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_webhooks(_: Staff<Admin>, State(state): State<AppState>) -> ApiResult {
    ok(StatusCode::OK, all::<_, WebhookView>(state.engine.queries().webhooks().await?))
}

pub(super) async fn create_webhook(
    staff: Staff<Admin>,
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let created = state.engine.catalog().create_webhook(&staff.actor(), &body(&bytes, &headers)?).await?;
    let answer = WithSecret::new(WebhookView::from(created.subscriber), "secret", created.secret);
    Ok(crate::no_store(ok(StatusCode::CREATED, answer)?))
}

pub(super) async fn webhook(_: Staff<Admin>, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    ok(StatusCode::OK, WebhookView::from(state.engine.queries().webhook(id(&key, "webhook")?).await?))
}

pub(super) async fn update_webhook(
    staff: Staff<Admin>,
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let updated =
        state.engine.catalog().update_webhook(&staff.actor(), id(&key, "webhook")?, &body(&bytes, &headers)?).await?;
    ok(StatusCode::OK, WebhookView::from(updated))
}

pub(super) async fn delete_webhook(
    staff: Staff<Admin>,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult {
    state.engine.catalog().delete_webhook(&staff.actor(), id(&key, "webhook")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn webhook_deliveries(
    _: Staff<Admin>,
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["limit", "before"])?;
    let list = state
        .engine
        .queries()
        .webhook_deliveries(id(&key, "webhook")?, params.limit()?, params.number("before")?)
        .await?;
    ok(StatusCode::OK, all::<_, DeliveryView>(list))
}

/// `POST /api/v1/login`: a staff user signs in (no token needed).
pub(super) async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    // Counted per address before anything else (even a malformed body),
    // so spraying passwords across accounts costs the sprayer, not the hash slots.
    if let Some(Extension(ConnectInfo(peer))) = peer {
        state.engine.access().count_sign_in(peer.ip())?;
    }
    let login = state.engine.access().staff_login(&body(&bytes, &headers)?).await?;
    Ok(crate::no_store(ok(StatusCode::OK, login)?))
}

/// `POST /api/v1/logout`: ends the caller's staff session.
pub(super) async fn logout(_: Staff<Read>, State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let token = crate::auth::bearer(&headers).unwrap_or_default().to_owned();
    state.engine.access().staff_logout(&token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_users(_: Staff<Admin>, State(state): State<AppState>) -> ApiResult {
    ok(StatusCode::OK, all::<_, StaffUserView>(state.engine.queries().staff_users().await?))
}

pub(super) async fn create_user(
    staff: Staff<Admin>,
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let created = state.engine.access().create_staff_user(&staff.actor(), &body(&bytes, &headers)?).await?;
    let answer = WithSecret::new(StaffUserView::from(created.user), "generated_password", created.generated_password);
    Ok(crate::no_store(ok(StatusCode::CREATED, answer)?))
}

pub(super) async fn update_user(
    staff: Staff<Admin>,
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let updated = state
        .engine
        .access()
        .update_staff_user(&staff.actor(), id(&key, "staff user")?, &body(&bytes, &headers)?)
        .await?;
    ok(StatusCode::OK, StaffUserView::from(updated))
}
