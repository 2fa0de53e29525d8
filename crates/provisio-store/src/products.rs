//! Products and their provisioning options.

use serde_json::Value;

use crate::models::Product;
use crate::{Conn, StoreError, all, exec, maybe, now_ms, one};

/// A product to insert, or the full new state of one to update.
#[derive(Debug, Clone)]
pub struct ProductRow {
    pub slug: String,
    pub name: String,
    pub blueprint: String,
    pub provider: Option<String>,
    pub deployment: String,
    pub configuration_id: Option<i64>,
    pub strategy: Option<String>,
    pub attribute_filters: Value,
    pub setup_function: String,
    pub provision_fields: Value,
    pub rules: Value,
    /// `report`, `accept` or `repair`.
    pub drift_response: String,
}

/// Inserts a product.
pub async fn insert(conn: &mut Conn, row: &ProductRow) -> Result<i64, StoreError> {
    let now = now_ms();
    one(
        conn,
        "INSERT INTO products (slug, name, blueprint, provider, deployment, configuration_id, strategy, \
         attribute_filters, setup_function, provision_fields, rules, drift_response, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        crate::params![
            row.slug,
            row.name,
            row.blueprint,
            row.provider,
            row.deployment,
            row.configuration_id,
            row.strategy,
            row.attribute_filters.to_string(),
            row.setup_function,
            row.provision_fields.to_string(),
            row.rules.to_string(),
            row.drift_response,
            now,
            now
        ],
        |r| r.get(0),
    )
    .await
}

/// Replaces a product's options (the blueprint stays).
pub async fn update(conn: &mut Conn, id: i64, row: &ProductRow) -> Result<bool, StoreError> {
    let changed = exec(
        conn,
        "UPDATE products SET slug = ?, name = ?, provider = ?, deployment = ?, configuration_id = ?, strategy = ?, \
         attribute_filters = ?, setup_function = ?, provision_fields = ?, rules = ?, drift_response = ?, updated_at = ? \
         WHERE id = ?",
        crate::params![
            row.slug,
            row.name,
            row.provider,
            row.deployment,
            row.configuration_id,
            row.strategy,
            row.attribute_filters.to_string(),
            row.setup_function,
            row.provision_fields.to_string(),
            row.rules.to_string(),
            row.drift_response,
            now_ms(),
            id
        ],
    ).await?;
    Ok(changed == 1)
}

/// A product by id.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Product>, StoreError> {
    maybe(conn, "SELECT * FROM products WHERE id = ?", [id], Product::from_row).await
}

/// A product by slug.
pub async fn get_by_slug(conn: &mut Conn, slug: &str) -> Result<Option<Product>, StoreError> {
    maybe(conn, "SELECT * FROM products WHERE slug = ?", [slug], Product::from_row).await
}

/// Every product.
pub async fn list(conn: &mut Conn) -> Result<Vec<Product>, StoreError> {
    all(conn, "SELECT * FROM products ORDER BY id", (), Product::from_row).await
}

/// Advances the round-robin cursor; answers its previous value.
pub async fn next_round_robin(conn: &mut Conn, id: i64) -> Result<i64, StoreError> {
    one(
        conn,
        "UPDATE products SET round_robin_cursor = round_robin_cursor + 1 WHERE id = ? RETURNING round_robin_cursor - 1",
        [id],
        |r| r.get(0),
    )
    .await
}
