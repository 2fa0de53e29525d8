//! Billing events as received.

use serde_json::Value;

use crate::models::Event;
use crate::{Conn, StoreError, all, maybe, now_ms, one};

/// Records an event; a known external id is a unique violation.
pub async fn insert(conn: &mut Conn, event: &NewEvent<'_>) -> Result<i64, StoreError> {
    one(
        conn,
        "INSERT INTO events (external_id, type, service_id, payload, occurred_at, received_at, body_digest) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        crate::params![
            event.external_id,
            event.event_type,
            event.service_id,
            event.payload.to_string(),
            event.occurred_at,
            now_ms(),
            event.body_digest
        ],
        |r| r.get(0),
    )
    .await
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// The billing system's id.
    pub external_id: &'a str,
    pub event_type: &'a str,
    pub service_id: i64,
    /// The body as kept (secret values masked).
    pub payload: &'a Value,
    pub occurred_at: Option<&'a str>,
    /// A keyed digest of the whole body as received, to tell a resend from a reuse of the id.
    pub body_digest: &'a str,
}

/// An event by our id.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Event>, StoreError> {
    maybe(conn, "SELECT * FROM events WHERE id = ?", [id], Event::from_row).await
}

/// An event by the billing system's id.
pub async fn get_by_external(conn: &mut Conn, external_id: &str) -> Result<Option<Event>, StoreError> {
    maybe(conn, "SELECT * FROM events WHERE external_id = ?", [external_id], Event::from_row).await
}

/// A page of a service's events, newest first: at most `limit`, older than `before`.
pub async fn page_for_service(
    conn: &mut Conn,
    service_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    all(
        conn,
        "SELECT * FROM events WHERE service_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
        crate::params![service_id, before, limit],
        Event::from_row,
    )
    .await
}

/// A page of every service's events, newest first, as summaries (id,
/// billing system's id, type, service, received at): payloads stay out.
pub async fn recent(
    conn: &mut Conn,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, String, String, i64, i64)>, StoreError> {
    all(
        conn,
        "SELECT id, external_id, type, service_id, received_at FROM events
         WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        crate::params![before, limit],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
    .await
}
