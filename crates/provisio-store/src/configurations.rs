//! Provision configurations.

use std::collections::HashMap;

use serde_json::Value;

use crate::models::Configuration;
use crate::{Conn, StoreError, now_ms};

/// A configuration to insert or the full new state of one to update.
#[derive(Debug, Clone)]
pub struct ConfigurationRow {
    pub blueprint: String,
    pub provider: String,
    pub name: String,
    pub config_values: Value,
    pub attributes: Value,
    pub max_services: Option<i64>,
    pub max_concurrency: i64,
    pub rate_per_minute: Option<i64>,
    pub enabled: bool,
}

/// Inserts a configuration (secrets are set separately, once the id is known).
pub async fn insert(conn: &mut Conn, row: &ConfigurationRow) -> Result<i64, StoreError> {
    let now = now_ms();
    let id = sqlx::query_scalar(
        "INSERT INTO configurations (blueprint, provider, name, config_values, attributes, max_services, \
         max_concurrency, rate_per_minute, enabled, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&row.blueprint)
    .bind(&row.provider)
    .bind(&row.name)
    .bind(row.config_values.to_string())
    .bind(row.attributes.to_string())
    .bind(row.max_services)
    .bind(row.max_concurrency)
    .bind(row.rate_per_minute)
    .bind(row.enabled)
    .bind(now)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Replaces everything but the blueprint, provider and secrets.
pub async fn update(conn: &mut Conn, id: i64, row: &ConfigurationRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE configurations SET name = ?, config_values = ?, attributes = ?, max_services = ?, \
         max_concurrency = ?, rate_per_minute = ?, enabled = ?, updated_at = ? WHERE id = ?",
    )
    .bind(&row.name)
    .bind(row.config_values.to_string())
    .bind(row.attributes.to_string())
    .bind(row.max_services)
    .bind(row.max_concurrency)
    .bind(row.rate_per_minute)
    .bind(row.enabled)
    .bind(now_ms())
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the encrypted secret fields.
pub async fn set_secrets(
    conn: &mut Conn,
    id: i64,
    secrets: Option<&[u8]>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE configurations SET secrets = ? WHERE id = ?")
        .bind(secrets)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// One configuration.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Configuration>, StoreError> {
    Ok(sqlx::query_as("SELECT * FROM configurations WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Every configuration, optionally of one blueprint.
pub async fn list(
    conn: &mut Conn,
    blueprint: Option<&str>,
) -> Result<Vec<Configuration>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT * FROM configurations WHERE (?1 IS NULL OR blueprint = ?1) ORDER BY id",
    )
    .bind(blueprint)
    .fetch_all(conn)
    .await?)
}

/// Deletes a configuration no service uses; answers whether it existed.
pub async fn delete(conn: &mut Conn, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM configurations WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// How many services (not terminated) each configuration holds.
pub async fn service_counts(conn: &mut Conn) -> Result<HashMap<i64, i64>, StoreError> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT configuration_id, COUNT(*) FROM services \
         WHERE configuration_id IS NOT NULL AND status <> 'terminated' GROUP BY configuration_id",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// How many services reference a configuration at all.
pub async fn references(conn: &mut Conn, id: i64) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM services WHERE configuration_id = ?")
            .bind(id)
            .fetch_one(conn)
            .await?,
    )
}
