//! The audit log: who did what.

use serde_json::Value;

use crate::models::AuditEntry;
use crate::{Conn, StoreError, now_ms};

/// Records one action.
pub async fn record(
    conn: &mut Conn,
    actor: &str,
    action: &str,
    subject: &str,
    details: &Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(now_ms())
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(details.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Entries, newest first.
pub async fn list(
    conn: &mut Conn,
    limit: i64,
    before_id: Option<i64>,
) -> Result<Vec<AuditEntry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT * FROM audit_log WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
    )
    .bind(before_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
