//! Clients.

use crate::models::Client;
use crate::{Conn, StoreError, all, maybe, now_ms, one};

/// The client with this external id, created (or its name and email
/// refreshed) from what the billing system says.
pub async fn upsert_external(
    conn: &mut Conn,
    external_id: &str,
    name: &str,
    email: &str,
) -> Result<Client, StoreError> {
    one(
        conn,
        "INSERT INTO clients (external_id, name, email, created_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (external_id) DO UPDATE SET name = excluded.name, email = excluded.email RETURNING *",
        crate::params![external_id, name, email, now_ms()],
        Client::from_row,
    )
    .await
}

/// A client, with or without an external id.
pub async fn insert(conn: &mut Conn, external_id: Option<&str>, name: &str, email: &str) -> Result<Client, StoreError> {
    one(
        conn,
        "INSERT INTO clients (external_id, name, email, created_at) VALUES (?, ?, ?, ?) RETURNING *",
        crate::params![external_id, name, email, now_ms()],
        Client::from_row,
    )
    .await
}

/// A client by id.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Client>, StoreError> {
    maybe(conn, "SELECT * FROM clients WHERE id = ?", [id], Client::from_row).await
}

/// The clients of `ids`, by id.
pub async fn get_many(conn: &mut Conn, ids: &[i64]) -> Result<std::collections::HashMap<i64, Client>, StoreError> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let sql = format!("SELECT * FROM clients WHERE {}", crate::sql::in_list("id", 1, ids.len()));
    let values: Vec<_> = ids.iter().map(crate::sql::Bind::bind).collect();
    Ok(all(conn, &sql, values, Client::from_row).await?.into_iter().map(|c| (c.id, c)).collect())
}

/// A client by external id.
pub async fn get_by_external(conn: &mut Conn, external_id: &str) -> Result<Option<Client>, StoreError> {
    maybe(conn, "SELECT * FROM clients WHERE external_id = ?", [external_id], Client::from_row).await
}

/// The clients whose e-mail is `email` (letter case aside), at most `limit`.
pub async fn by_email(conn: &mut Conn, email: &str, limit: i64) -> Result<Vec<Client>, StoreError> {
    all(
        conn,
        "SELECT * FROM clients WHERE lower(email) = lower(?1) ORDER BY id LIMIT ?2",
        crate::params![email, limit],
        Client::from_row,
    )
    .await
}

/// Clients, newest first.
pub async fn list(conn: &mut Conn, limit: i64, before_id: Option<i64>) -> Result<Vec<Client>, StoreError> {
    all(
        conn,
        "SELECT * FROM clients WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        crate::params![before_id, limit],
        Client::from_row,
    )
    .await
}
