//! Staff: blueprints, providers, configurations, products and clients.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::views::{ClientView, ConfigurationView, ProductView, ServiceView, all};
use crate::auth::{Admin, Operate, Read, Staff};
use crate::{ApiResult, AppState, Params, Problem, body, id, ok};

pub(super) async fn blueprints(_: Staff<Read>, State(state): State<AppState>) -> ApiResult {
    ok(StatusCode::OK, state.engine.registry().blueprints().iter().map(|b| b.to_json()).collect::<Vec<_>>())
}

pub(super) async fn blueprint(_: Staff<Read>, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let blueprint =
        state.engine.registry().blueprint(&key).map_err(|e| Problem::new(StatusCode::NOT_FOUND, e.to_string()))?;
    ok(StatusCode::OK, blueprint.to_json())
}

pub(super) async fn providers(
    _: Staff<Read>,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["blueprint"])?;
    let blueprint = params.text("blueprint", None)?;
    let list: Vec<Value> =
        state.engine.registry().providers(blueprint.as_deref()).iter().map(|p| p.to_json()).collect();
    ok(StatusCode::OK, list)
}

pub(super) async fn provider(
    _: Staff<Read>,
    State(state): State<AppState>,
    Path((blueprint, provider)): Path<(String, String)>,
) -> ApiResult {
    let entry = state
        .engine
        .registry()
        .provider(&format!("{blueprint}/{provider}"))
        .map_err(|e| Problem::new(StatusCode::NOT_FOUND, e.to_string()))?;
    ok(StatusCode::OK, entry.to_json())
}

pub(super) async fn configurations(
    _: Staff<Read>,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["blueprint"])?;
    ok(
        StatusCode::OK,
        all::<_, ConfigurationView>(state.engine.queries().configurations(params.text("blueprint", None)?).await?),
    )
}

pub(super) async fn create_configuration(
    State(state): State<AppState>,
    staff: Staff<Admin>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let created = state.engine.catalog().create_configuration(&staff.actor(), &body(&bytes, &headers)?).await?;
    ok(StatusCode::CREATED, ConfigurationView::from(created))
}

pub(super) async fn configuration(_: Staff<Read>, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    ok(
        StatusCode::OK,
        ConfigurationView::from(state.engine.queries().configuration_record(id(&key, "configuration")?).await?),
    )
}

pub(super) async fn update_configuration(
    State(state): State<AppState>,
    staff: Staff<Admin>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let updated = state
        .engine
        .catalog()
        .update_configuration(&staff.actor(), id(&key, "configuration")?, &body(&bytes, &headers)?)
        .await?;
    ok(StatusCode::OK, ConfigurationView::from(updated))
}

pub(super) async fn delete_configuration(
    State(state): State<AppState>,
    staff: Staff<Admin>,
    Path(key): Path<String>,
) -> ApiResult {
    state.engine.catalog().delete_configuration(&staff.actor(), id(&key, "configuration")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn test_configuration(
    State(state): State<AppState>,
    staff: Staff<Admin>,
    Path(key): Path<String>,
) -> ApiResult {
    ok(StatusCode::OK, state.engine.catalog().test_configuration(&staff.actor(), id(&key, "configuration")?).await?)
}

pub(super) async fn import_configuration(
    State(state): State<AppState>,
    staff: Staff<Admin>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let id = id(&key, "configuration")?;
    ok(StatusCode::OK, state.engine.catalog().import(&staff.actor(), id, &body(&bytes, &headers)?).await?)
}

pub(super) async fn list_products(_: Staff<Read>, State(state): State<AppState>) -> ApiResult {
    ok(StatusCode::OK, all::<_, ProductView>(state.engine.queries().products().await?))
}

pub(super) async fn create_product(
    State(state): State<AppState>,
    staff: Staff<Admin>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let created = state.engine.catalog().create_product(&staff.actor(), &body(&bytes, &headers)?).await?;
    ok(StatusCode::CREATED, ProductView::from(created))
}

pub(super) async fn product(_: Staff<Read>, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    ok(StatusCode::OK, ProductView::from(state.engine.queries().product(&key).await?))
}

pub(super) async fn update_product(
    State(state): State<AppState>,
    staff: Staff<Admin>,
    Path(key): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let updated = state.engine.catalog().update_product(&staff.actor(), &key, &body(&bytes, &headers)?).await?;
    ok(StatusCode::OK, ProductView::from(updated))
}

pub(super) async fn clients(
    _: Staff<Read>,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let params = Params::new(query, &["limit", "before"])?;
    ok(
        StatusCode::OK,
        all::<_, ClientView>(state.engine.queries().clients(params.limit()?, params.number("before")?).await?),
    )
}

pub(super) async fn create_client(
    State(state): State<AppState>,
    staff: Staff<Operate>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let created = state.engine.catalog().create_client(&staff.actor(), &body(&bytes, &headers)?).await?;
    ok(StatusCode::CREATED, ClientView::from(created))
}

pub(super) async fn client(_: Staff<Read>, State(state): State<AppState>, Path(key): Path<String>) -> ApiResult {
    let (client, services) = state.engine.queries().client(id(&key, "client")?).await?;
    let services: Vec<ServiceView> = all(services);
    ok(StatusCode::OK, json!({"client": ClientView::from(client), "services": services}))
}
