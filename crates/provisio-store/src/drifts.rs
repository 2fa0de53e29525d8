//! Drift: differences between a service's record and its system, found by
//! sync, each open until resolved (accepted, repaired, or gone).

use serde_json::Value;

use crate::{Conn, StoreError, all, exec, maybe, now_ms};

/// A difference found.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub id: i64,
    pub service_id: i64,
    pub field: String,
    pub recorded: Value,
    pub real: Value,
    pub detected_at: i64,
    pub seen_at: i64,
    pub resolved_at: Option<i64>,
    pub resolution: Option<String>,
}

impl Drift {
    fn from_row(row: &crate::Row) -> Result<Self, StoreError> {
        let json = |name: &str| -> Result<Value, StoreError> {
            let text: String = row.get(name)?;
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        };
        Ok(Drift {
            id: row.get("id")?,
            service_id: row.get("service_id")?,
            field: row.get("field")?,
            recorded: json("recorded")?,
            real: json("real")?,
            detected_at: row.get("detected_at")?,
            seen_at: row.get("seen_at")?,
            resolved_at: row.get("resolved_at")?,
            resolution: row.get("resolution")?,
        })
    }
}

/// Records a difference on `field`: a new drift (answered `true`), or the
/// open one seen again with what is real now.
pub async fn found(
    conn: &mut Conn,
    service_id: i64,
    field: &str,
    recorded: &Value,
    real: &Value,
) -> Result<(Drift, bool), StoreError> {
    let now = now_ms();
    if let Some(open) = open_on(conn, service_id, field).await? {
        exec(
            conn,
            "UPDATE drifts SET recorded = ?, real = ?, seen_at = ? WHERE id = ?",
            crate::params![recorded.to_string(), real.to_string(), now, open.id],
        )
        .await?;
        return Ok((Drift { recorded: recorded.clone(), real: real.clone(), seen_at: now, ..open }, false));
    }
    exec(
        conn,
        "INSERT INTO drifts (service_id, field, recorded, real, detected_at, seen_at) VALUES (?, ?, ?, ?, ?, ?)",
        crate::params![service_id, field, recorded.to_string(), real.to_string(), now, now],
    )
    .await?;
    let made = open_on(conn, service_id, field).await?.expect("just inserted");
    Ok((made, true))
}

/// The open drift of a service on `field`.
pub async fn open_on(conn: &mut Conn, service_id: i64, field: &str) -> Result<Option<Drift>, StoreError> {
    maybe(
        conn,
        "SELECT * FROM drifts WHERE service_id = ? AND field = ? AND resolved_at IS NULL",
        crate::params![service_id, field],
        Drift::from_row,
    )
    .await
}

/// A service's open drifts.
pub async fn open_for(conn: &mut Conn, service_id: i64) -> Result<Vec<Drift>, StoreError> {
    all(
        conn,
        "SELECT * FROM drifts WHERE service_id = ? AND resolved_at IS NULL ORDER BY id",
        [service_id],
        Drift::from_row,
    )
    .await
}

/// Closes a drift, saying how.
pub async fn resolve(conn: &mut Conn, id: i64, resolution: &str) -> Result<(), StoreError> {
    exec(
        conn,
        "UPDATE drifts SET resolved_at = ?, resolution = ? WHERE id = ? AND resolved_at IS NULL",
        crate::params![now_ms(), resolution, id],
    )
    .await?;
    Ok(())
}

/// Drifts, newest first: open ones only, or all.
pub async fn list(conn: &mut Conn, open_only: bool, limit: i64) -> Result<Vec<Drift>, StoreError> {
    all(
        conn,
        "SELECT * FROM drifts WHERE (?1 = 0 OR (resolved_at IS NULL \
         AND service_id NOT IN (SELECT id FROM services WHERE status = 'terminated'))) ORDER BY id DESC LIMIT ?2",
        crate::params![open_only, limit],
        Drift::from_row,
    )
    .await
}

/// Services due a sync: live, deployed, compared last before `cutoff` (or
/// never, created before it), with no unfinished job; oldest first, with
/// their configuration.
pub async fn due_for_sync(
    conn: &mut Conn,
    blueprints: &[&str],
    cutoff: i64,
    limit: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let sql = format!(
        "SELECT s.id, s.configuration_id FROM services s JOIN products p ON p.id = s.product_id \
         WHERE s.status IN ('active', 'suspended') AND s.configuration_id IS NOT NULL \
         AND COALESCE(s.synced_at, s.created_at) <= ?1 \
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.service_id = s.id AND j.state IN ('queued', 'retrying', 'running')) \
         AND {} ORDER BY COALESCE(s.synced_at, s.created_at), s.id LIMIT ?2",
        crate::sql::in_list("p.blueprint", 3, blueprints.len())
    );
    let mut values = crate::params![cutoff, limit];
    values.extend(blueprints.iter().map(crate::sql::Bind::bind));
    all(conn, &sql, values, |r| Ok((r.get(0)?, r.get(1)?))).await
}

/// Unfinished sync jobs per configuration.
pub async fn open_syncs(conn: &mut Conn) -> Result<std::collections::HashMap<i64, i64>, StoreError> {
    let rows: Vec<(i64, i64)> = all(
        conn,
        "SELECT s.configuration_id, COUNT(*) FROM jobs j JOIN services s ON s.id = j.service_id \
         WHERE j.origin = 'sync' AND j.state IN ('queued', 'retrying', 'running') AND s.configuration_id IS NOT NULL \
         GROUP BY s.configuration_id",
        (),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .await?;
    Ok(rows.into_iter().collect())
}

/// Whether a service is still due a sync: compared last at or before
/// `cutoff` (or never, created before it) and with no unfinished job of
/// any origin (another scheduler may have just queued one).
pub async fn still_due(conn: &mut Conn, service_id: i64, cutoff: i64) -> Result<bool, StoreError> {
    Ok(maybe(
        conn,
        "SELECT 1 FROM services s WHERE s.id = ?1 AND s.status IN ('active', 'suspended') \
         AND COALESCE(s.synced_at, s.created_at) <= ?2 \
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.service_id = s.id AND j.state IN ('queued', 'retrying', 'running'))",
        crate::params![service_id, cutoff],
        |r| r.get::<_, i64>(0),
    )
    .await?
    .is_some())
}

/// Marks a service compared now.
pub async fn synced(conn: &mut Conn, service_id: i64) -> Result<(), StoreError> {
    exec(conn, "UPDATE services SET synced_at = ? WHERE id = ?", crate::params![now_ms(), service_id]).await?;
    Ok(())
}
