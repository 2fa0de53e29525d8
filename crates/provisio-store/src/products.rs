//! Products and their provisioning options.

use serde_json::Value;

use crate::models::Product;
use crate::{Conn, StoreError, now_ms};

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
}

/// Inserts a product.
pub async fn insert(conn: &mut Conn, row: &ProductRow) -> Result<i64, StoreError> {
    let now = now_ms();
    Ok(sqlx::query_scalar(
        "INSERT INTO products (slug, name, blueprint, provider, deployment, configuration_id, strategy, \
         attribute_filters, setup_function, provision_fields, rules, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&row.slug)
    .bind(&row.name)
    .bind(&row.blueprint)
    .bind(&row.provider)
    .bind(&row.deployment)
    .bind(row.configuration_id)
    .bind(&row.strategy)
    .bind(row.attribute_filters.to_string())
    .bind(&row.setup_function)
    .bind(row.provision_fields.to_string())
    .bind(row.rules.to_string())
    .bind(now)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Replaces a product's options (the blueprint stays).
pub async fn update(conn: &mut Conn, id: i64, row: &ProductRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE products SET slug = ?, name = ?, provider = ?, deployment = ?, configuration_id = ?, strategy = ?, \
         attribute_filters = ?, setup_function = ?, provision_fields = ?, rules = ?, updated_at = ? WHERE id = ?",
    )
    .bind(&row.slug)
    .bind(&row.name)
    .bind(&row.provider)
    .bind(&row.deployment)
    .bind(row.configuration_id)
    .bind(&row.strategy)
    .bind(row.attribute_filters.to_string())
    .bind(&row.setup_function)
    .bind(row.provision_fields.to_string())
    .bind(row.rules.to_string())
    .bind(now_ms())
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A product by id.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Product>, StoreError> {
    Ok(sqlx::query_as("SELECT * FROM products WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// A product by slug.
pub async fn get_by_slug(conn: &mut Conn, slug: &str) -> Result<Option<Product>, StoreError> {
    Ok(sqlx::query_as("SELECT * FROM products WHERE slug = ?")
        .bind(slug)
        .fetch_optional(conn)
        .await?)
}

/// Every product.
pub async fn list(conn: &mut Conn) -> Result<Vec<Product>, StoreError> {
    Ok(sqlx::query_as("SELECT * FROM products ORDER BY id")
        .fetch_all(conn)
        .await?)
}

/// Deletes a product no service uses.
pub async fn delete(conn: &mut Conn, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM products WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Advances the round-robin cursor; answers its previous value.
pub async fn next_round_robin(conn: &mut Conn, id: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE products SET round_robin_cursor = round_robin_cursor + 1 WHERE id = ? RETURNING round_robin_cursor - 1",
    )
    .bind(id)
    .fetch_one(conn)
    .await?)
}
