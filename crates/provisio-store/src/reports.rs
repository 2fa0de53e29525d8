//! The SQL behind reports and usage samples. Times are Unix milliseconds;
//! days are UTC dates (`YYYY-MM-DD`).

use serde_json::Value;

use crate::{Conn, StoreError, all, exec, now_ms};

/// Records a usage sample.
pub async fn add_sample(
    conn: &mut Conn,
    service_id: i64,
    configuration_id: Option<i64>,
    data: &Value,
) -> Result<(), StoreError> {
    exec(
        conn,
        "INSERT INTO usage_samples (service_id, configuration_id, sampled_at, data) VALUES (?, ?, ?, ?)",
        crate::params![service_id, configuration_id, now_ms(), data.to_string()],
    )
    .await?;
    Ok(())
}

/// Live services whose blueprint is one of `blueprints`, with the time of
/// their latest sample (0 if none), least recently sampled first.
pub async fn due_for_sampling(conn: &mut Conn, blueprints: &[&str], limit: i64) -> Result<Vec<(i64, i64)>, StoreError> {
    let sql = format!(
        "SELECT s.id, COALESCE((SELECT MAX(sampled_at) FROM usage_samples u WHERE u.service_id = s.id), 0) AS last
         FROM services s JOIN products p ON p.id = s.product_id
         WHERE s.status IN ('active', 'suspended') AND s.configuration_id IS NOT NULL AND {}
         ORDER BY last, s.id LIMIT ?1",
        crate::sql::in_list("p.blueprint", 2, blueprints.len())
    );
    let mut values = crate::params![limit];
    values.extend(blueprints.iter().map(crate::sql::Bind::bind));
    all(conn, &sql, values, |r| Ok((r.get(0)?, r.get(1)?))).await
}

/// Per configuration: name, blueprint, enabled, max services, live
/// services (provisioning, active or suspended), all services.
pub async fn capacity(conn: &mut Conn) -> Result<Vec<(String, String, bool, Option<i64>, i64, i64)>, StoreError> {
    all(
        conn,
        "SELECT c.name, c.blueprint, c.enabled, c.max_services,
                COUNT(s.id) FILTER (WHERE s.status IN ('provisioning', 'active', 'suspended')),
                COUNT(s.id)
         FROM configurations c LEFT JOIN services s ON s.configuration_id = c.id
         GROUP BY c.id ORDER BY c.blueprint, c.name",
        (),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )
    .await
}

/// Jobs succeeded and failed, as integers on every backend.
const OUTCOMES: &str = "SUM(CASE WHEN j.state = 'succeeded' THEN 1 ELSE 0 END), \
                        SUM(CASE WHEN j.state = 'failed' THEN 1 ELSE 0 END)";

/// Per day, blueprint and configuration: jobs finished succeeded and failed.
pub async fn jobs_per_day(
    conn: &mut Conn,
    from: i64,
    to: i64,
) -> Result<Vec<(String, String, String, i64, i64)>, StoreError> {
    let sql = format!(
        "SELECT {}, p.blueprint, COALESCE(c.name, '(none)'), {OUTCOMES}
         FROM jobs j JOIN services s ON s.id = j.service_id JOIN products p ON p.id = s.product_id
              LEFT JOIN configurations c ON c.id = j.configuration_id
         WHERE j.finished_at >= ?1 AND j.finished_at < ?2 AND j.state IN ('succeeded', 'failed')
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        conn.utc_day("j.finished_at")
    );
    all(conn, &sql, crate::params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).await
}

/// Jobs finished per hour in `[from, to)` (UTC, `YYYY-MM-DD HH:00`):
/// succeeded and failed, over every blueprint and configuration.
pub async fn jobs_per_hour(conn: &mut Conn, from: i64, to: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let sql = format!(
        "SELECT {}, {OUTCOMES}
         FROM jobs j
         WHERE j.finished_at >= ?1 AND j.finished_at < ?2 AND j.state IN ('succeeded', 'failed')
         GROUP BY 1 ORDER BY 1",
        conn.utc_hour("j.finished_at")
    );
    all(conn, &sql, crate::params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).await
}

/// Services first active in the period: id, product slug, when their
/// order was paid (the first `order.paid` or `invoice.paid` received) and
/// when they first became active.
pub async fn activations(conn: &mut Conn, from: i64, to: i64) -> Result<Vec<(i64, String, i64, i64)>, StoreError> {
    all(
        conn,
        "SELECT id, slug, paid_at, active_at FROM (
             SELECT s.id, p.slug,
                    (SELECT MIN(e.received_at) FROM events e WHERE e.service_id = s.id AND e.type IN ('order.paid', 'invoice.paid')) AS paid_at,
                    (SELECT MIN(h.at) FROM service_history h WHERE h.service_id = s.id AND h.to_status = 'active') AS active_at
             FROM services s JOIN products p ON p.id = s.product_id) AS firsts
         WHERE paid_at IS NOT NULL AND active_at IS NOT NULL AND active_at >= ?1 AND active_at < ?2
         ORDER BY id",
        crate::params![from, to],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    ).await
}

/// What needs staff: failed jobs (not retried since) and failed services,
/// as (kind, service id, product slug, function or status, message, at).
pub async fn attention(conn: &mut Conn) -> Result<Vec<(String, i64, String, String, Option<String>, i64)>, StoreError> {
    all(
        conn,
        "SELECT 'job', j.service_id, p.slug, j.function, j.message, j.finished_at
         FROM jobs j JOIN services s ON s.id = j.service_id JOIN products p ON p.id = s.product_id
         WHERE j.state = 'failed' AND s.status != 'terminated'
         UNION ALL
         SELECT 'service', s.id, p.slug, s.status, s.last_error, s.updated_at
         FROM services s JOIN products p ON p.id = s.product_id WHERE s.status = 'failed'
         ORDER BY 6 DESC LIMIT 1000",
        (),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )
    .await
}

/// Usage samples in the period: service id, configuration name, day, data.
pub async fn samples(conn: &mut Conn, from: i64, to: i64) -> Result<Vec<(i64, String, String, Value)>, StoreError> {
    let sql = format!(
        "SELECT u.service_id, COALESCE(c.name, '(none)'), {}, u.data
         FROM usage_samples u LEFT JOIN configurations c ON c.id = u.configuration_id
         WHERE u.sampled_at >= ?1 AND u.sampled_at < ?2 ORDER BY u.service_id, u.sampled_at",
        conn.utc_day("u.sampled_at")
    );
    let rows: Vec<(i64, String, String, String)> =
        all(conn, &sql, crate::params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).await?;
    Ok(rows
        .into_iter()
        .map(|(id, configuration, day, data)| {
            (id, configuration, day, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect())
}
