//! The audit log: who did what.

use serde_json::Value;

use crate::models::AuditEntry;
use crate::{Conn, StoreError, all, exec, now_ms};

/// Records one action.
pub async fn record(
    conn: &mut Conn,
    actor: &str,
    action: &str,
    subject: &str,
    details: &Value,
) -> Result<(), StoreError> {
    exec(
        conn,
        "INSERT INTO audit_log (at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)",
        crate::params![now_ms(), actor, action, subject, details.to_string()],
    )
    .await?;
    Ok(())
}

/// Entries, newest first.
pub async fn list(conn: &mut Conn, limit: i64, before_id: Option<i64>) -> Result<Vec<AuditEntry>, StoreError> {
    all(
        conn,
        "SELECT * FROM audit_log WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        crate::params![before_id, limit],
        AuditEntry::from_row,
    )
    .await
}
