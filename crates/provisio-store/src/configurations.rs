//! Provision configurations.

use std::collections::HashMap;

use serde_json::Value;

use crate::models::Configuration;
use crate::{Conn, StoreError, all, exec, maybe, now_ms, one};

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
    one(
        conn,
        "INSERT INTO configurations (blueprint, provider, name, config_values, attributes, max_services, \
         max_concurrency, rate_per_minute, enabled, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        crate::params![
            row.blueprint,
            row.provider,
            row.name,
            row.config_values.to_string(),
            row.attributes.to_string(),
            row.max_services,
            row.max_concurrency,
            row.rate_per_minute,
            row.enabled,
            now,
            now
        ],
        |r| r.get(0),
    )
    .await
}

/// Replaces everything but the blueprint, provider and secrets.
pub async fn update(conn: &mut Conn, id: i64, row: &ConfigurationRow) -> Result<bool, StoreError> {
    let changed = exec(
        conn,
        "UPDATE configurations SET name = ?, config_values = ?, attributes = ?, max_services = ?, \
         max_concurrency = ?, rate_per_minute = ?, enabled = ?, updated_at = ? WHERE id = ?",
        crate::params![
            row.name,
            row.config_values.to_string(),
            row.attributes.to_string(),
            row.max_services,
            row.max_concurrency,
            row.rate_per_minute,
            row.enabled,
            now_ms(),
            id
        ],
    )
    .await?;
    Ok(changed == 1)
}

/// Stores the encrypted secret fields.
pub async fn set_secrets(conn: &mut Conn, id: i64, secrets: Option<&[u8]>) -> Result<(), StoreError> {
    exec(conn, "UPDATE configurations SET secrets = ? WHERE id = ?", crate::params![secrets, id]).await?;
    Ok(())
}

/// One configuration.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Configuration>, StoreError> {
    maybe(conn, "SELECT * FROM configurations WHERE id = ?", [id], Configuration::from_row).await
}

/// One configuration, by its (unique) name.
pub async fn get_by_name(conn: &mut Conn, name: &str) -> Result<Option<Configuration>, StoreError> {
    maybe(conn, "SELECT * FROM configurations WHERE name = ?", [name], Configuration::from_row).await
}

/// Every configuration, optionally of one blueprint.
pub async fn list(conn: &mut Conn, blueprint: Option<&str>) -> Result<Vec<Configuration>, StoreError> {
    all(
        conn,
        "SELECT * FROM configurations WHERE (?1 IS NULL OR blueprint = ?1) ORDER BY id",
        [blueprint],
        Configuration::from_row,
    )
    .await
}

/// Deletes a configuration no service uses; answers whether it existed.
pub async fn delete(conn: &mut Conn, id: i64) -> Result<bool, StoreError> {
    Ok(exec(conn, "DELETE FROM configurations WHERE id = ?", [id]).await? == 1)
}

/// How many services (not terminated) each configuration holds.
pub async fn service_counts(conn: &mut Conn) -> Result<HashMap<i64, i64>, StoreError> {
    // Kept by triggers on services (migration 0012 on SQLite, 0002 on PostgreSQL).
    let rows = all(conn, "SELECT id, live_services FROM configurations WHERE live_services > 0", (), |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .await?;
    Ok(rows.into_iter().collect())
}

/// How many services (not terminated) one configuration holds.
pub async fn service_count(conn: &mut Conn, id: i64) -> Result<i64, StoreError> {
    Ok(maybe(conn, "SELECT live_services FROM configurations WHERE id = ?", [id], |r| r.get(0)).await?.unwrap_or(0))
}

/// How many services reference a configuration at all.
pub async fn references(conn: &mut Conn, id: i64) -> Result<i64, StoreError> {
    one(conn, "SELECT COUNT(*) FROM services WHERE configuration_id = ?", [id], |r| r.get(0)).await
}
