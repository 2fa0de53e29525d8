//! Clients.

use crate::models::Client;
use crate::{Conn, StoreError, now_ms};

/// The client with this external id, created (or its name and email
/// refreshed) from what the billing system says.
pub async fn upsert_external(
    conn: &mut Conn,
    external_id: &str,
    name: &str,
    email: &str,
) -> Result<Client, StoreError> {
    Ok(sqlx::query_as(
        "INSERT INTO clients (external_id, name, email, created_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (external_id) DO UPDATE SET name = excluded.name, email = excluded.email RETURNING *",
    )
    .bind(external_id)
    .bind(name)
    .bind(email)
    .bind(now_ms())
    .fetch_one(conn)
    .await?)
}

/// A client without an external id.
pub async fn insert(
    conn: &mut Conn,
    external_id: Option<&str>,
    name: &str,
    email: &str,
) -> Result<Client, StoreError> {
    Ok(sqlx::query_as("INSERT INTO clients (external_id, name, email, created_at) VALUES (?, ?, ?, ?) RETURNING *")
        .bind(external_id)
        .bind(name)
        .bind(email)
        .bind(now_ms())
        .fetch_one(conn)
        .await?)
}

/// A client by id.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Client>, StoreError> {
    Ok(sqlx::query_as("SELECT * FROM clients WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// A client by external id.
pub async fn get_by_external(
    conn: &mut Conn,
    external_id: &str,
) -> Result<Option<Client>, StoreError> {
    Ok(
        sqlx::query_as("SELECT * FROM clients WHERE external_id = ?")
            .bind(external_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Clients, newest first.
pub async fn list(
    conn: &mut Conn,
    limit: i64,
    before_id: Option<i64>,
) -> Result<Vec<Client>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT * FROM clients WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
    )
    .bind(before_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
