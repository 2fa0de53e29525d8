//! Event sources (billing systems that sign what they send) and the
//! signatures they have already used.

use serde_json::Value;

use crate::models::EventSource;
use crate::{Conn, StoreError, all, exec, maybe, now_ms, one};

/// Adds source `id` (from [`next_id`]); a taken name is a unique
/// violation, an id another writer took first is `Busy`.
pub async fn insert(
    conn: &mut Conn,
    id: i64,
    name: &str,
    kind: &str,
    mapping: &Value,
    secrets: &[u8],
) -> Result<EventSource, StoreError> {
    let now = now_ms();
    maybe(
        conn,
        "INSERT INTO event_sources (id, name, kind, secrets, mapping, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING *",
        crate::params![id, name, kind, secrets, mapping.to_string(), now, now],
        EventSource::from_row,
    )
    .await?
    .ok_or_else(|| StoreError::Busy(format!("event source {id} was created by another writer")))
}

/// The id the next source will get (its secret is sealed to it before the insert).
pub async fn next_id(conn: &mut Conn) -> Result<i64, StoreError> {
    one(conn, "SELECT COALESCE(MAX(id), 0) + 1 FROM event_sources", (), |r| r.get(0)).await
}

/// A source by name.
pub async fn by_name(conn: &mut Conn, name: &str) -> Result<Option<EventSource>, StoreError> {
    maybe(conn, "SELECT * FROM event_sources WHERE name = ?", [name], EventSource::from_row).await
}

/// A source by id.
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<EventSource>, StoreError> {
    maybe(conn, "SELECT * FROM event_sources WHERE id = ?", [id], EventSource::from_row).await
}

/// Every source, by name.
pub async fn list(conn: &mut Conn) -> Result<Vec<EventSource>, StoreError> {
    all(conn, "SELECT * FROM event_sources ORDER BY name", (), EventSource::from_row).await
}

/// Changes a source's secret, mapping or switch.
pub async fn update(
    conn: &mut Conn,
    id: i64,
    secrets: Option<&[u8]>,
    mapping: Option<&Value>,
    enabled: Option<bool>,
) -> Result<Option<EventSource>, StoreError> {
    maybe(
        conn,
        "UPDATE event_sources SET secrets = COALESCE(?, secrets), mapping = COALESCE(?, mapping),
                enabled = COALESCE(?, enabled), updated_at = ?
         WHERE id = ? RETURNING *",
        crate::params![secrets, mapping.map(Value::to_string), enabled, now_ms(), id],
        EventSource::from_row,
    )
    .await
}

/// Deletes a source and its receipts.
pub async fn delete(conn: &mut Conn, id: i64) -> Result<bool, StoreError> {
    exec(conn, "DELETE FROM source_receipts WHERE source_id = ?", [id]).await?;
    Ok(exec(conn, "DELETE FROM event_sources WHERE id = ?", [id]).await? > 0)
}

/// Records a signature as used; answers false when it was used before.
pub async fn receipt(conn: &mut Conn, source_id: i64, signature_digest: &str) -> Result<bool, StoreError> {
    let inserted = exec(
        conn,
        "INSERT INTO source_receipts (source_id, signature_digest, received_at) VALUES (?, ?, ?)
         ON CONFLICT DO NOTHING",
        crate::params![source_id, signature_digest, now_ms()],
    )
    .await?;
    Ok(inserted == 1)
}

/// Forgets receipts older than `older_than_ms` (past the tolerance a replay
/// is refused by its timestamp alone).
pub async fn prune_receipts(conn: &mut Conn, older_than_ms: i64) -> Result<usize, StoreError> {
    exec(conn, "DELETE FROM source_receipts WHERE received_at < ?", [now_ms() - older_than_ms]).await
}
