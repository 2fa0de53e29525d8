//! The invariants no crash, retry or fault may break, read back from the
//! database (crash and fault tests run this after the dust settles):
//! - per (configuration, identifier) at most one live service;
//! - each configuration's kept count of live services is the true count;
//! - per service at most one job running at a time: attempts of different
//!   jobs never overlap in time;
//! - a setup or terminate attempt that follows an `outcome_unknown` one, or
//!   a job's first recorded attempt after its worker died (its earlier
//!   claim left no record), starts with a reconciling `get_info` (unless its
//!   blueprint's services are named by the vendor, in `keyed`: those are
//!   deduplicated by the job's idempotency key alone).

use crate::{Conn, StoreError, all, one};

/// One row of the attempt history: service, job, attempt number, function,
/// outcome, start, end, and whether the job is a setup or terminate.
type Row = (i64, i64, i64, String, String, i64, i64, bool);

/// Every broken invariant, described; empty when all hold.
pub async fn violations(conn: &mut Conn, keyed: &[&str]) -> Result<Vec<String>, StoreError> {
    let mut found = Vec::new();
    let holders: Vec<(i64, String, i64)> = all(
        conn,
        "SELECT configuration_id, identifier, COUNT(*) FROM services WHERE status <> 'terminated' \
         AND identifier IS NOT NULL AND configuration_id IS NOT NULL GROUP BY 1, 2 HAVING COUNT(*) > 1",
        (),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .await?;
    for (configuration, identifier, count) in holders {
        found.push(format!("{identifier} is held by {count} live services on configuration {configuration}"));
    }
    // The count each configuration keeps (for capacity) is the count of its services.
    let miscounted: Vec<(i64, i64, i64)> = all(
        conn,
        "SELECT c.id, c.live_services, (SELECT COUNT(*) FROM services s \
         WHERE s.configuration_id = c.id AND s.status <> 'terminated') FROM configurations c",
        (),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .await?;
    for (configuration, kept, counted) in miscounted.into_iter().filter(|(_, kept, counted)| kept != counted) {
        found.push(format!("configuration {configuration} counts {kept} live services but holds {counted}"));
    }
    let sql = format!(
        "SELECT j.service_id, j.id, a.number, a.function, a.outcome, a.started_at, a.finished_at, \
         CASE WHEN (j.function = p.setup_function AND {}) OR j.function = 'terminate' THEN 1 ELSE 0 END \
         FROM job_attempts a JOIN jobs j ON j.id = a.job_id JOIN services s ON s.id = j.service_id \
         JOIN products p ON p.id = s.product_id ORDER BY j.service_id, a.started_at, a.id",
        crate::sql::not_in_list("p.blueprint", 1, keyed.len())
    );
    let attempts: Vec<Row> = all(conn, &sql, keyed.iter().map(crate::sql::Bind::bind).collect::<Vec<_>>(), |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
    })
    .await?;
    for pair in attempts.windows(2) {
        let ((service, job_a, _, _, _, _, end_a, _), (service_b, job_b, _, _, _, start_b, _, _)) = (&pair[0], &pair[1]);
        if service == service_b && job_a != job_b && end_a > start_b {
            found.push(format!("jobs {job_a} and {job_b} of service {service} ran at the same time"));
        }
    }
    let mut by_job: std::collections::BTreeMap<i64, Vec<&Row>> = Default::default();
    for row in &attempts {
        by_job.entry(row.1).or_default().push(row);
    }
    for (job, mut rows) in by_job {
        rows.sort_by_key(|r| (r.2, r.5));
        let Some(first) = rows.first() else { continue };
        let reconciled = first.7;
        if reconciled && first.2 > 1 && first.3 != "get_info" {
            found.push(format!("job {job}: its first recorded attempt ({}) was not a reconciling get_info", first.2));
        }
        for pair in rows.windows(2) {
            let (before, next) = (pair[0], pair[1]);
            if reconciled && before.4 == "outcome_unknown" && next.2 > before.2 && next.3 != "get_info" {
                found.push(format!("job {job}: attempt {} after an unknown outcome was not a check", next.2));
            }
        }
    }
    Ok(found)
}

/// How many rows each table an event can add to holds (tests prove with it
/// that a refused request changed nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCounts {
    pub events: i64,
    pub services: i64,
    pub clients: i64,
    pub jobs: i64,
    pub history: i64,
}

/// The store's [`RowCounts`], in one snapshot.
pub async fn row_counts(conn: &mut Conn) -> Result<RowCounts, StoreError> {
    one(
        conn,
        "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM services), (SELECT COUNT(*) FROM clients), \
         (SELECT COUNT(*) FROM jobs), (SELECT COUNT(*) FROM service_history)",
        (),
        |r| {
            Ok(RowCounts {
                events: r.get(0)?,
                services: r.get(1)?,
                clients: r.get(2)?,
                jobs: r.get(3)?,
                history: r.get(4)?,
            })
        },
    )
    .await
}
