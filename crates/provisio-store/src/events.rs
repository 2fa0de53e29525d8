//! Billing events as received.

use serde_json::Value;

use crate::models::Event;
use crate::{Conn, StoreError, now_ms};

/// Records an event; a known external id is a unique violation.
pub async fn insert(
    conn: &mut Conn,
    external_id: &str,
    event_type: &str,
    service_id: i64,
    payload: &Value,
    occurred_at: Option<&str>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO events (external_id, type, service_id, payload, occurred_at, received_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(external_id)
    .bind(event_type)
    .bind(service_id)
    .bind(payload.to_string())
    .bind(occurred_at)
    .bind(now_ms())
    .fetch_one(conn)
    .await?)
}

/// An event by the billing system's id.
pub async fn get_by_external(
    conn: &mut Conn,
    external_id: &str,
) -> Result<Option<Event>, StoreError> {
    Ok(sqlx::query_as("SELECT * FROM events WHERE external_id = ?")
        .bind(external_id)
        .fetch_optional(conn)
        .await?)
}

/// An event by our id.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Event>, StoreError> {
    Ok(sqlx::query_as("SELECT * FROM events WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// A service's events, oldest first.
pub async fn for_service(conn: &mut Conn, service_id: i64) -> Result<Vec<Event>, StoreError> {
    Ok(
        sqlx::query_as("SELECT * FROM events WHERE service_id = ? ORDER BY id")
            .bind(service_id)
            .fetch_all(conn)
            .await?,
    )
}
